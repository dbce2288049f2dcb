//! The one place application errors become gRPC status codes.

use tonic::metadata::MetadataValue;
use tonic::Status;

use crate::app::{AppError, AuthError};
use crate::storage::StoreError;

/// The standard gRPC retry hint (milliseconds), which grpc clients with retry policies obey.
pub const RETRY_PUSHBACK_METADATA: &str = "grpc-retry-pushback-ms";

impl From<AppError> for Status {
    fn from(error: AppError) -> Status {
        match error {
            AppError::Unauthenticated(AuthError::Unavailable) => {
                Status::unavailable("the gateway cannot check keys just now; retry shortly")
            }
            AppError::Unauthenticated(reason) => {
                tracing::info!(%reason, "unauthenticated call refused");
                Status::unauthenticated("a valid API key is required: send `authorization: Bearer <key>`")
            }
            AppError::PermissionDenied(message) => Status::permission_denied(message),
            AppError::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
            AppError::NotFound(message) => Status::not_found(message),
            AppError::AlreadyExists(message) => Status::already_exists(message),
            AppError::FailedPrecondition(message) => Status::failed_precondition(message),
            AppError::ResourceExhausted(message) => Status::resource_exhausted(message),
            AppError::RateLimited { retry_after, .. } => {
                let millis = retry_after.as_millis().max(1);
                let mut status = Status::resource_exhausted(error.to_string());
                status.metadata_mut().insert(RETRY_PUSHBACK_METADATA, MetadataValue::from(millis as u64));
                status
            }
            AppError::Overloaded => {
                let mut status = Status::unavailable(error.to_string());
                status.metadata_mut().insert(RETRY_PUSHBACK_METADATA, MetadataValue::from(100u64));
                status
            }
            AppError::DeadlineExceeded(message) => Status::deadline_exceeded(message),
            AppError::UploadInterrupted(message) => Status::cancelled(message),
            // Another writer won a race: retrying the request is safe and will succeed.
            AppError::Store(StoreError::Conflict(message)) => {
                tracing::warn!(%message, "concurrent update; the client may retry");
                Status::aborted("a concurrent update got there first; retry the request")
            }
            AppError::Store(StoreError::Database(sqlx::Error::PoolTimedOut)) => Status::unavailable("the database is busy; retry shortly"),
            // Internal details stay in the server's log.
            AppError::Store(_) | AppError::Internal(_) => {
                tracing::error!(%error, "internal error");
                Status::internal("internal error; the gateway's log has the details")
            }
        }
    }
}
