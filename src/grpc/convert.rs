//! Proto messages to domain values and back. Amounts cross the API as decimal strings and
//! dates as `YYYY-MM-DD`; anything malformed is an `InvalidArgument` naming the field.

use chrono::NaiveDate;

use super::proto;
use crate::app::{AppError, RegistryOutcome};
use crate::domain::month::parse_iso_date;
use crate::domain::{CaseNumber, Money};
use crate::storage::{CollectionRecord, RunSummary};

pub fn case_number(field: &'static str, text: &str) -> Result<CaseNumber, AppError> {
    CaseNumber::parse(text).map_err(|e| AppError::invalid(field, e.to_string()))
}

pub fn amount(field: &'static str, text: &str) -> Result<Money, AppError> {
    Money::parse(text.trim()).map_err(|e| AppError::invalid(field, e.to_string()))
}

pub fn date(field: &'static str, text: &str) -> Result<NaiveDate, AppError> {
    parse_iso_date(text.trim()).ok_or_else(|| AppError::invalid(field, format!("`{text}` is not a date written YYYY-MM-DD")))
}

pub fn optional_date(field: &'static str, text: &str) -> Result<Option<NaiveDate>, AppError> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        date(field, text).map(Some)
    }
}

impl From<RegistryOutcome> for proto::ImportRegistryResponse {
    fn from(outcome: RegistryOutcome) -> Self {
        proto::ImportRegistryResponse {
            applied: outcome.applied,
            rows: outcome.rows,
            added: outcome.added,
            updated: outcome.updated,
            unchanged: outcome.unchanged,
            problems: outcome
                .problems
                .into_iter()
                .map(|p| proto::RegistryProblem { line: p.line, field: p.field.to_owned(), code: p.code.to_owned(), message: p.message })
                .collect(),
        }
    }
}

impl From<CollectionRecord> for proto::Collection {
    fn from(record: CollectionRecord) -> Self {
        proto::Collection {
            collection_id: record.collection_id,
            obligor_id: record.obligor_id.to_string(),
            case_number: record.case_number.map(|c| c.to_string()).unwrap_or_default(),
            source: record.source.as_str().to_owned(),
            amount: record.amount.to_string(),
            effective_date: record.effective_date.to_string(),
            status: record.status,
        }
    }
}

impl From<Option<RunSummary>> for proto::RunDistributionResponse {
    fn from(summary: Option<RunSummary>) -> Self {
        let Some(run) = summary else {
            let zero = Money::ZERO.to_string();
            return proto::RunDistributionResponse {
                total: zero.clone(),
                current: zero.clone(),
                arrears: zero.clone(),
                unapplied: zero,
                ..Default::default()
            };
        };
        proto::RunDistributionResponse {
            run_id: run.run_id.to_string(),
            collections: run.collections,
            pools: run.pools,
            obligors: run.obligors,
            allocations: run.allocations,
            total: run.total.to_string(),
            current: run.current.to_string(),
            arrears: run.arrears.to_string(),
            unapplied: run.unapplied.to_string(),
        }
    }
}
