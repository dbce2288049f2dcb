//! Proto messages to domain values and back. Amounts cross the API as decimal strings and
//! dates as `YYYY-MM-DD`; anything malformed is an `InvalidArgument` naming the field.

use chrono::NaiveDate;

use super::proto;
use crate::app::{Acknowledgment, AppError, RegistryOutcome, Submission, UploadEnd};
use crate::domain::month::parse_iso_date;
use crate::domain::{CaseNumber, Money};
use crate::formats::{DeclaredTotals, RemittanceFormat};
use crate::storage::remittance::{RemittanceSummary, StoredLine, StoredProblem};
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

/// The end an upload declares.
pub fn upload_end(end: proto::UploadEnd) -> UploadEnd {
    UploadEnd { byte_count: end.byte_count, sha256: end.sha256 }
}

pub fn submission(header: proto::RemittanceHeader) -> Result<Submission, AppError> {
    let format = match proto::RemittanceFormat::try_from(header.format) {
        Ok(proto::RemittanceFormat::Csv) => RemittanceFormat::Csv,
        Ok(proto::RemittanceFormat::Xml) => RemittanceFormat::Xml,
        Ok(proto::RemittanceFormat::Nacha) => RemittanceFormat::Nacha,
        _ => return Err(AppError::invalid("format", "the format is CSV, XML or NACHA")),
    };
    let total = if header.declared_total.trim().is_empty() { None } else { Some(amount("declared_total", &header.declared_total)?) };
    Ok(Submission { format, batch_id: header.batch_id, declared: DeclaredTotals { line_count: header.declared_line_count, total } })
}

fn problems(problems: Vec<StoredProblem>) -> Vec<proto::LineProblem> {
    problems.into_iter().map(|p| proto::LineProblem { code: p.code, field: p.field, severity: p.severity, message: p.message }).collect()
}

pub fn remittance_line(line: StoredLine) -> proto::RemittanceLine {
    proto::RemittanceLine { line: line.line, status: line.status, problems: problems(line.problems) }
}

pub fn remittance_summary(summary: RemittanceSummary) -> proto::RemittanceSummary {
    let counts = summary.counts;
    proto::RemittanceSummary {
        batch_id: summary.batch_id,
        format: summary.format,
        received_at: summary.received_at,
        line_count: counts.line_count,
        total_amount: counts.total.to_string(),
        applied: counts.applied,
        applied_by_ssn: counts.applied_by_ssn,
        suspense: counts.suspense,
        rejected: counts.rejected,
    }
}

impl From<Acknowledgment> for proto::RemittanceAcknowledgment {
    fn from(ack: Acknowledgment) -> Self {
        let counts = ack.counts;
        proto::RemittanceAcknowledgment {
            batch_id: ack.batch_id,
            status: ack.status.as_str().to_owned(),
            format: ack.format,
            line_count: counts.line_count,
            total_amount: counts.total.to_string(),
            applied: counts.applied,
            applied_by_ssn: counts.applied_by_ssn,
            suspense: counts.suspense,
            rejected: counts.rejected,
            file_problem: ack.file_problem.map(|p| proto::FileProblem {
                code: p.code.to_owned(),
                position: p.position,
                message: p.message,
            }),
            lines: ack
                .lines
                .into_iter()
                .map(|l| proto::RemittanceLine { line: l.line, status: l.status, problems: problems(l.problems) })
                .collect(),
            lines_truncated: ack.lines_truncated,
            duplicate_of: ack.duplicate_of.unwrap_or_default(),
            replayed: ack.replayed,
            received_at: ack.received_at,
        }
    }
}
