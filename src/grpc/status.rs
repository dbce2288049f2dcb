//! The one place application errors become gRPC status codes.

use tonic::Status;

use crate::app::AppError;
use crate::storage::StoreError;

impl From<AppError> for Status {
    fn from(error: AppError) -> Status {
        match error {
            AppError::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
            AppError::NotFound(message) => Status::not_found(message),
            AppError::AlreadyExists(message) => Status::already_exists(message),
            AppError::FailedPrecondition(message) => Status::failed_precondition(message),
            AppError::ResourceExhausted(message) => Status::resource_exhausted(message),
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
