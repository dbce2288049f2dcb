//! Proto messages to domain values and back. Amounts cross the API as decimal strings and
//! dates as `YYYY-MM-DD`; anything malformed is an `InvalidArgument` naming the field.


use super::proto;
use crate::app::{AckStatus, Acknowledgment, AppError, FileSummary, LineOutcome, LineProblemView, RegistryOutcome, Submission, UploadEnd};
use crate::domain::access::Role;
use crate::domain::Bucket;
use crate::domain::{CaseNumber, Money};
use crate::formats::{DeclaredTotals, RemittanceFormat};
use crate::app::CollectionView;
use crate::domain::distribution::RunSummary;
use crate::domain::CollectionSource;

/// The API's enums from the stored names (`APPLIED`, `CURRENT`, …): one place, so a name the
/// proto does not know shows as UNSPECIFIED instead of failing an answer.
pub fn line_status(name: &str) -> proto::LineStatus {
    match name {
        "APPLIED" => proto::LineStatus::Applied,
        "APPLIED_BY_SSN" => proto::LineStatus::AppliedBySsn,
        "SUSPENSE" => proto::LineStatus::Suspense,
        "REJECTED" => proto::LineStatus::Rejected,
        _ => proto::LineStatus::Unspecified,
    }
}

pub fn severity(name: &str) -> proto::Severity {
    match name {
        "ERROR" => proto::Severity::Error,
        "WARNING" => proto::Severity::Warning,
        "NOTICE" => proto::Severity::Notice,
        _ => proto::Severity::Unspecified,
    }
}

pub fn remittance_format(name: &str) -> proto::RemittanceFormat {
    match name {
        "CSV" => proto::RemittanceFormat::Csv,
        "XML" => proto::RemittanceFormat::Xml,
        "NACHA" => proto::RemittanceFormat::Nacha,
        _ => proto::RemittanceFormat::Unspecified,
    }
}

pub fn collection_status(name: &str) -> proto::CollectionStatus {
    match name {
        "PENDING" => proto::CollectionStatus::Pending,
        "DISTRIBUTED" => proto::CollectionStatus::Distributed,
        "REVERSED" => proto::CollectionStatus::Reversed,
        _ => proto::CollectionStatus::Unspecified,
    }
}

pub fn collection_source(source: CollectionSource) -> proto::CollectionSource {
    match source {
        CollectionSource::Payroll => proto::CollectionSource::Payroll,
        CollectionSource::Online => proto::CollectionSource::Online,
        CollectionSource::Manual => proto::CollectionSource::Manual,
    }
}

pub fn bucket(bucket: Bucket) -> proto::Bucket {
    match bucket {
        Bucket::Current => proto::Bucket::Current,
        Bucket::Arrears => proto::Bucket::Arrears,
        Bucket::Unapplied => proto::Bucket::Unapplied,
        Bucket::Correction => proto::Bucket::Correction,
        Bucket::Refunded => proto::Bucket::Refunded,
    }
}

pub fn role(role: Role) -> proto::Role {
    match role {
        Role::Vendor => proto::Role::Vendor,
        Role::Employer => proto::Role::Employer,
        Role::PaymentSite => proto::Role::PaymentSite,
        Role::BackOffice => proto::Role::BackOffice,
        Role::Admin => proto::Role::Admin,
    }
}

/// A role a request names; UNSPECIFIED or unknown is a wrong field.
pub fn role_of(field: &'static str, value: i32) -> Result<Role, AppError> {
    match proto::Role::try_from(value) {
        Ok(proto::Role::Vendor) => Ok(Role::Vendor),
        Ok(proto::Role::Employer) => Ok(Role::Employer),
        Ok(proto::Role::PaymentSite) => Ok(Role::PaymentSite),
        Ok(proto::Role::BackOffice) => Ok(Role::BackOffice),
        Ok(proto::Role::Admin) => Ok(Role::Admin),
        _ => Err(AppError::invalid(field, "the role is ROLE_VENDOR, ROLE_EMPLOYER, ROLE_PAYMENT_SITE, ROLE_BACK_OFFICE or ROLE_ADMIN")),
    }
}

/// An instant the gateway recorded as RFC 3339 text, as a Timestamp (unset if unreadable).
pub fn timestamp(rfc3339: &str) -> Option<prost_types::Timestamp> {
    let instant = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    Some(prost_types::Timestamp { seconds: instant.timestamp(), nanos: instant.timestamp_subsec_nanos() as i32 })
}

pub fn case_number(field: &'static str, text: &str) -> Result<CaseNumber, AppError> {
    CaseNumber::parse(text).map_err(|e| AppError::invalid(field, e.to_string()))
}

pub fn amount(field: &'static str, text: &str) -> Result<Money, AppError> {
    Money::parse(text.trim()).map_err(|e| AppError::invalid(field, e.to_string()))
}

// Dates are read the same way by every transport.
pub use crate::app::{date_field as date, optional_date_field as optional_date};

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
                .map(|p| proto::RegistryProblem { line: p.line, field: p.field.to_owned(), code: p.code.to_string(), message: p.message })
                .collect(),
        }
    }
}

impl From<CollectionView> for proto::Collection {
    fn from(record: CollectionView) -> Self {
        proto::Collection {
            collection_id: record.collection_id,
            obligor_id: record.obligor_id.to_string(),
            case_number: record.case_number.map(|c| c.to_string()).unwrap_or_default(),
            source: collection_source(record.source) as i32,
            amount: record.amount.to_string(),
            effective_date: record.effective_date.to_string(),
            status: collection_status(&record.status) as i32,
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
                unapplied: zero.clone(),
                corrections: zero,
                ..Default::default()
            };
        };
        proto::RunDistributionResponse {
            run_id: Some(run.run_id.to_string()),
            collections: run.collections,
            pools: run.pools,
            obligors: run.obligors,
            allocations: run.allocations,
            total: run.total.to_string(),
            current: run.current.to_string(),
            arrears: run.arrears.to_string(),
            unapplied: run.unapplied.to_string(),
            corrections: run.corrections.to_string(),
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
    let total = match header.declared_total.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(amount("declared_total", text)?),
    };
    Ok(Submission { format, batch_id: header.batch_id, declared: DeclaredTotals { line_count: header.declared_line_count, total } })
}

fn problems(problems: Vec<LineProblemView>) -> Vec<proto::LineProblem> {
    problems
        .into_iter()
        .map(|p| proto::LineProblem { code: p.code, field: p.field, severity: severity(&p.severity) as i32, message: p.message })
        .collect()
}

pub fn remittance_line(line: LineOutcome) -> proto::RemittanceLine {
    proto::RemittanceLine { line: line.line, status: line_status(&line.status) as i32, problems: problems(line.problems) }
}

/// A list's employer filter: `None` when empty.
pub fn optional_fein(field: &'static str, text: &str) -> Result<Option<crate::domain::Fein>, AppError> {
    match text.trim() {
        "" => Ok(None),
        text => crate::domain::Fein::parse(text).map(Some).map_err(|e| AppError::invalid(field, e.to_string())),
    }
}

/// The filters of a file list; every wrong one is reported.
pub fn file_query(request: &proto::ListRemittancesRequest) -> Result<crate::app::FileQuery, AppError> {
    let fein = optional_fein("employer_fein", &request.employer_fein);
    let from = optional_date("received_from", &request.received_from);
    let to = optional_date("received_to", &request.received_to);
    match (fein, from, to) {
        (Ok(employer_fein), Ok(received_from), Ok(received_to)) => Ok(crate::app::FileQuery {
            sender: Some(request.sender.trim().to_owned()).filter(|s| !s.is_empty()),
            employer_fein,
            received_from,
            received_to,
        }),
        (fein, from, to) => Err(AppError::every_field([fein.err(), from.err(), to.err()])),
    }
}

/// Which lines of a file to stream.
pub fn line_filter(request: &proto::StreamRemittanceLinesRequest) -> Result<crate::app::LineFilter, AppError> {
    let mut statuses = Vec::new();
    for value in &request.statuses {
        let name = match proto::LineStatus::try_from(*value) {
            Ok(proto::LineStatus::Applied) => "APPLIED",
            Ok(proto::LineStatus::AppliedBySsn) => "APPLIED_BY_SSN",
            Ok(proto::LineStatus::Suspense) => "SUSPENSE",
            Ok(proto::LineStatus::Rejected) => "REJECTED",
            _ => return Err(AppError::invalid("statuses", "each status is one of LineStatus's values but UNSPECIFIED")),
        };
        statuses.push(name.to_owned());
    }
    let problem_code = Some(request.problem_code.trim().to_owned()).filter(|c| !c.is_empty());
    Ok(crate::app::LineFilter { statuses, problem_code })
}

pub fn remittance_summary(summary: FileSummary) -> proto::RemittanceSummary {
    let counts = summary.counts;
    proto::RemittanceSummary {
        sender: summary.sender,
        batch_id: summary.batch_id,
        format: remittance_format(&summary.format) as i32,
        receive_time: timestamp(&summary.received_at),
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
            status: match ack.status {
                AckStatus::Accepted => proto::AcknowledgmentStatus::Accepted,
                AckStatus::Refused => proto::AcknowledgmentStatus::Refused,
                AckStatus::Duplicate => proto::AcknowledgmentStatus::Duplicate,
            } as i32,
            format: remittance_format(&ack.format) as i32,
            line_count: counts.line_count,
            total_amount: counts.total.to_string(),
            applied: counts.applied,
            applied_by_ssn: counts.applied_by_ssn,
            suspense: counts.suspense,
            rejected: counts.rejected,
            file_problem: ack.file_problem.map(|p| proto::FileProblem {
                code: p.code.to_string(),
                position: p.position,
                message: p.message,
            }),
            lines: ack
                .lines
                .into_iter()
                .map(|l| proto::RemittanceLine { line: l.line, status: line_status(&l.status) as i32, problems: problems(l.problems) })
                .collect(),
            lines_truncated: ack.lines_truncated,
            duplicate_of: ack.duplicate_of,
            replayed: ack.replayed,
            receive_time: timestamp(&ack.received_at),
        }
    }
}
