//! The console's errors, and the one place that maps the application's errors to HTTP
//! status codes (as `grpc::status` maps them to gRPC codes).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::app::AppError;

/// Why a page could not be shown or a form not done.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The state of things does not allow it (an item already worked).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooMany(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<AppError> for ConsoleError {
    fn from(error: AppError) -> ConsoleError {
        let message = error.to_string();
        match error {
            AppError::Unauthenticated(_) => ConsoleError::Forbidden("sign in again".to_owned()),
            AppError::PermissionDenied(_) => ConsoleError::Forbidden(message),
            AppError::InvalidArgument { .. } | AppError::InvalidFields(_) => ConsoleError::BadRequest(message),
            AppError::NotFound(_) => ConsoleError::NotFound(message),
            AppError::AlreadyExists { .. } | AppError::FailedPrecondition { .. } => ConsoleError::Conflict(message),
            AppError::ResourceExhausted(_) | AppError::RateLimited { .. } => ConsoleError::TooMany(message),
            AppError::Overloaded | AppError::DeadlineExceeded(_) | AppError::UploadInterrupted(_) => ConsoleError::Unavailable(message),
            AppError::Store(ref store) if store.is_unavailable() => {
                ConsoleError::Unavailable("the database is not answering; try again shortly".to_owned())
            }
            other => {
                // The details stay in the server's log: they may name tables or values.
                tracing::error!(error = %other, "console: internal error");
                ConsoleError::Internal("something went wrong on the gateway; the error is in its log".to_owned())
            }
        }
    }
}

impl ConsoleError {
    pub fn status(&self) -> StatusCode {
        match self {
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Conflict(_) => StatusCode::CONFLICT,
            ConsoleError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ConsoleError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ConsoleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ConsoleError::BadRequest(_) => "That request cannot be done",
            ConsoleError::Forbidden(_) => "Not allowed",
            ConsoleError::NotFound(_) => "Not found",
            ConsoleError::Conflict(_) => "Already done",
            ConsoleError::TooMany(_) => "Too many requests",
            ConsoleError::Unavailable(_) => "Try again shortly",
            ConsoleError::Internal(_) => "Something went wrong",
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let body = super::page::error_page(self.title(), &self.to_string());
        (self.status(), body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ProblemCode;

    #[test]
    fn application_errors_map_to_http_statuses() {
        let status = |error: AppError| ConsoleError::from(error).status();
        assert_eq!(status(AppError::PermissionDenied("no".into())), StatusCode::FORBIDDEN);
        assert_eq!(status(AppError::invalid("batch_id", "empty")), StatusCode::BAD_REQUEST);
        assert_eq!(status(AppError::NotFound("gone".into())), StatusCode::NOT_FOUND);
        assert_eq!(status(AppError::precondition(ProblemCode::SuspenseItemNotOpen, "suspense:1", "worked")), StatusCode::CONFLICT);
        assert_eq!(status(AppError::Overloaded), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(AppError::Internal("table x".into())), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!ConsoleError::from(AppError::Internal("table x".into())).to_string().contains("table x"), "internals stay in the log");
    }
}
