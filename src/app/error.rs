//! The application layer's errors. `grpc::status` maps each to one gRPC status code.

use std::time::Duration;

use super::access::AuthError;
use crate::domain::codes::{CodeKind, ProblemCode};
use crate::storage::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request presented no valid credentials. Which check failed is logged, not told.
    #[error("a valid API key is required ({0})")]
    Unauthenticated(AuthError),
    /// The caller's role may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A request field is malformed or out of range; the client must change the request.
    #[error("{field}: {message}")]
    InvalidArgument { field: &'static str, message: String },
    /// Several fields are wrong: every one is reported at once, not the first only.
    #[error("{}", .0.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; "))]
    InvalidFields(Vec<FieldViolation>),
    #[error("{0}")]
    NotFound(String),
    /// The request would reuse something unique (a sender's batch id) for something else.
    /// `reason` is an API error code; `subject` names what is taken (`batch:ACME-1`).
    #[error("{message}")]
    AlreadyExists { reason: ProblemCode, subject: String, message: String },
    /// The request is valid but the state of things does not allow it now (an account still
    /// being validated, a second bank account). `reason` is an API error code; `subject` names
    /// the thing whose state refuses it (`payer:12`).
    #[error("{message}")]
    FailedPrecondition { reason: ProblemCode, subject: String, message: String },
    /// An upload or request exceeds a configured limit.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The caller sent more than its rate allows; it may try again after `retry_after`.
    #[error("{what}: retry after {} ms", retry_after.as_millis())]
    RateLimited { what: &'static str, retry_after: Duration },
    /// The server is at its limit of requests in flight and sheds this one.
    #[error("the gateway is at capacity; retry shortly")]
    Overloaded,
    /// The request took longer than its deadline, or its upload stalled.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The client's upload stream failed or was cancelled.
    #[error("the upload was interrupted: {0}")]
    UploadInterrupted(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// One wrong field of a request, by its name in the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl AppError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
        AppError::InvalidArgument { field, message: message.into() }
    }

    pub fn already_exists(reason: ProblemCode, subject: impl Into<String>, message: impl Into<String>) -> AppError {
        debug_assert!(reason.is(CodeKind::ApiError), "{reason} is not an API error reason");
        AppError::AlreadyExists { reason, subject: subject.into(), message: message.into() }
    }

    pub fn precondition(reason: ProblemCode, subject: impl Into<String>, message: impl Into<String>) -> AppError {
        debug_assert!(reason.is(CodeKind::ApiError), "{reason} is not an API error reason");
        AppError::FailedPrecondition { reason, subject: subject.into(), message: message.into() }
    }

    /// Every field's problem at once: `checks` are the results of converting each field.
    pub fn collect_fields(errors: impl IntoIterator<Item = AppError>) -> Option<AppError> {
        let mut violations = Vec::new();
        for error in errors {
            match error {
                AppError::InvalidArgument { field, message } => violations.push(FieldViolation { field: field.to_owned(), description: message }),
                AppError::InvalidFields(more) => violations.extend(more),
                other => return Some(other),
            }
        }
        match violations.len() {
            0 => None,
            _ => Some(AppError::InvalidFields(violations)),
        }
    }

    /// The one error that reports every wrong field of a request: `errors` are the results of
    /// converting each field, `None` for one that was right (at least one is wrong).
    pub fn every_field(errors: impl IntoIterator<Item = Option<AppError>>) -> AppError {
        AppError::collect_fields(errors.into_iter().flatten()).unwrap_or_else(|| AppError::Internal("no field error to report".into()))
    }

    /// The outcome the audit trail records for a call that ended in this error.
    pub fn outcome(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::PermissionDenied(_) => "PERMISSION_DENIED",
            AppError::InvalidArgument { .. } | AppError::InvalidFields(_) => "INVALID_ARGUMENT",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::AlreadyExists { .. } => "ALREADY_EXISTS",
            AppError::FailedPrecondition { .. } => "FAILED_PRECONDITION",
            AppError::ResourceExhausted(_) | AppError::RateLimited { .. } => "RESOURCE_EXHAUSTED",
            AppError::Overloaded => "OVERLOADED",
            AppError::DeadlineExceeded(_) => "DEADLINE_EXCEEDED",
            AppError::UploadInterrupted(_) => "UPLOAD_INTERRUPTED",
            AppError::Store(_) | AppError::Internal(_) => "ERROR",
        }
    }
}

/// A date field as a client writes it (`YYYY-MM-DD`, spaces around ignored), for every
/// transport.
pub fn date_field(field: &'static str, text: &str) -> Result<chrono::NaiveDate, AppError> {
    crate::domain::month::parse_iso_date(text.trim())
        .ok_or_else(|| AppError::invalid(field, format!("`{}` is not a date written YYYY-MM-DD", crate::domain::excerpt(text))))
}

/// An optional date field: empty is none.
pub fn optional_date_field(field: &'static str, text: &str) -> Result<Option<chrono::NaiveDate>, AppError> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        date_field(field, text).map(Some)
    }
}
