//! The one place application errors become gRPC status codes, with the google.rpc error
//! details a client can act on without parsing the message: every refusal carries an
//! `ErrorInfo` (a stable reason in the domain `gateway.fspc`); a wrong request carries a
//! `BadRequest` naming every wrong field; a refusal to retry later carries `RetryInfo`; a
//! state that refuses the call carries a `PreconditionFailure`.

use std::collections::HashMap;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::app::{AppError, AuthError};
use crate::domain::ProblemCode;
use crate::storage::StoreError;

/// The standard gRPC retry hint (milliseconds), which grpc clients with retry policies obey.
pub const RETRY_PUSHBACK_METADATA: &str = "grpc-retry-pushback-ms";

/// The `ErrorInfo.domain` of every error the gateway sends.
pub const ERROR_DOMAIN: &str = "gateway.fspc";

/// How long a client should wait before retrying a shed call or a busy database.
const SHORT_RETRY: Duration = Duration::from_millis(100);

/// A status with its details: `ErrorInfo` always, and what else `details` adds.
fn status(
    code: Code,
    message: impl Into<String>,
    reason: ProblemCode,
    metadata: &[(&str, &str)],
    details: impl FnOnce(&mut ErrorDetails),
) -> Status {
    let mut all = ErrorDetails::new();
    let metadata: HashMap<String, String> = metadata.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    all.set_error_info(reason.as_str(), ERROR_DOMAIN, metadata);
    details(&mut all);
    Status::with_error_details(code, message, all)
}

fn retry_after(mut status: Status, after: Duration) -> Status {
    let millis = after.as_millis().max(1) as u64;
    status.metadata_mut().insert(RETRY_PUSHBACK_METADATA, MetadataValue::from(millis));
    status
}

impl From<AppError> for Status {
    fn from(error: AppError) -> Status {
        let none = |_: &mut ErrorDetails| {};
        match error {
            AppError::Unauthenticated(AuthError::Unavailable) => {
                let message = "the gateway cannot check keys just now; retry shortly";
                let unavailable = status(Code::Unavailable, message, ProblemCode::KeyStoreUnavailable, &[], |d| {
                    d.set_retry_info(Some(SHORT_RETRY));
                });
                retry_after(unavailable, SHORT_RETRY)
            }
            AppError::Unauthenticated(reason) => {
                tracing::info!(%reason, "unauthenticated call refused");
                let message = "a valid API key is required: send `authorization: Bearer <key>`";
                status(Code::Unauthenticated, message, ProblemCode::ApiKeyRequired, &[], none)
            }
            AppError::PermissionDenied(message) => status(Code::PermissionDenied, message, ProblemCode::RoleNotAllowed, &[], none),
            AppError::InvalidArgument { field, ref message } => {
                let description = message.clone();
                status(Code::InvalidArgument, error.to_string(), ProblemCode::InvalidField, &[("field", field)], |d| {
                    d.add_bad_request_violation(field, description);
                })
            }
            AppError::InvalidFields(ref violations) => {
                let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
                let joined = fields.join(",");
                status(Code::InvalidArgument, error.to_string(), ProblemCode::InvalidField, &[("field", &joined)], |d| {
                    for violation in violations {
                        d.add_bad_request_violation(violation.field.clone(), violation.description.clone());
                    }
                })
            }
            AppError::NotFound(message) => status(Code::NotFound, message, ProblemCode::NotFound, &[], none),
            AppError::AlreadyExists { reason, subject, message } => {
                status(Code::AlreadyExists, message, reason, &[("subject", &subject)], none)
            }
            AppError::FailedPrecondition { reason, subject, message } => {
                let description = message.clone();
                status(Code::FailedPrecondition, message, reason, &[("subject", &subject)], |d| {
                    d.add_precondition_failure_violation(reason.as_str(), subject.clone(), description);
                })
            }
            AppError::ResourceExhausted(message) => status(Code::ResourceExhausted, message, ProblemCode::LimitExceeded, &[], none),
            AppError::RateLimited { what, retry_after: after } => {
                let message = AppError::RateLimited { what, retry_after: after }.to_string();
                let millis = after.as_millis().max(1).to_string();
                let refused = status(Code::ResourceExhausted, message, ProblemCode::RateLimited, &[("retry_after_ms", &millis)], |d| {
                    d.set_retry_info(Some(after));
                });
                retry_after(refused, after)
            }
            AppError::Overloaded => {
                let shed = status(Code::Unavailable, AppError::Overloaded.to_string(), ProblemCode::Overloaded, &[], |d| {
                    d.set_retry_info(Some(SHORT_RETRY));
                });
                retry_after(shed, SHORT_RETRY)
            }
            AppError::DeadlineExceeded(message) => status(Code::DeadlineExceeded, message, ProblemCode::DeadlineExceeded, &[], none),
            AppError::UploadInterrupted(message) => status(Code::Cancelled, message, ProblemCode::UploadInterrupted, &[], none),
            // Another writer won a race: retrying the request is safe and will succeed.
            AppError::Store(StoreError::Conflict(message)) => {
                tracing::warn!(%message, "concurrent update; the client may retry");
                status(Code::Aborted, "a concurrent update got there first; retry the request", ProblemCode::ConcurrentUpdate, &[], none)
            }
            // Still conflicting after the server's own retries: the client's retry is safe.
            AppError::Store(ref store) if store.is_transient_conflict() => {
                tracing::warn!(%store, "transaction undone by a concurrent one after retries; the client may retry");
                let aborted = status(Code::Aborted, "a concurrent update got in the way; retry the request", ProblemCode::ConcurrentUpdate, &[], |d| {
                    d.set_retry_info(Some(SHORT_RETRY));
                });
                retry_after(aborted, SHORT_RETRY)
            }
            AppError::Store(ref store) if store.is_unavailable() => {
                tracing::warn!(%store, "the database is unavailable");
                let busy = status(Code::Unavailable, "the database is busy; retry shortly", ProblemCode::DatabaseBusy, &[], |d| {
                    d.set_retry_info(Some(SHORT_RETRY));
                });
                retry_after(busy, SHORT_RETRY)
            }
            // Internal details stay in the server's log.
            AppError::Store(_) | AppError::Internal(_) => {
                tracing::error!(%error, "internal error");
                status(Code::Internal, "internal error; the gateway's log has the details", ProblemCode::Internal, &[], none)
            }
        }
    }
}
