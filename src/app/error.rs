//! The application layer's errors. `grpc::status` maps each to one gRPC status code.

use crate::storage::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A request field is malformed or out of range; the client must change the request.
    #[error("{field}: {message}")]
    InvalidArgument { field: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    /// The request would reuse something unique (a sender's batch id) for something else.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the state of things does not allow it now (an account still
    /// being validated, a second bank account).
    #[error("{0}")]
    FailedPrecondition(String),
    /// An upload or request exceeds a configured limit.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The client's upload stream failed or was cancelled.
    #[error("the upload was interrupted: {0}")]
    UploadInterrupted(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
        AppError::InvalidArgument { field, message: message.into() }
    }
}
