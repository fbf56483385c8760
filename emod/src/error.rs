//! One error type for the whole daemon. Each variant maps to a stable snake_case code
//! ([`ErrorCode`]) and an HTTP status, so clients can match on `error` and never on prose.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use emo_api_types::{ApiError, ErrorCode};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{1}")]
    Code(ErrorCode, String),
    /// Too many failed logins; the client should wait `retry_after` seconds.
    #[error("too many failed logins; try again in {retry_after} s")]
    Throttled { retry_after: u64 },
    /// Some other per-user or global limit (429 `too_many_attempts` with `Retry-After`); the
    /// message says which.
    #[error("{message}")]
    Limited { message: String, retry_after: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError::Code(code, message.into())
    }
    pub fn not_found(what: &str) -> Self {
        AppError::new(ErrorCode::NotFound, format!("{what} not found"))
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::InvalidInput, message)
    }
    pub fn query(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::InvalidQuery, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::Forbidden, message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::Unauthenticated, message)
    }
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Code(c, _) => *c,
            AppError::Throttled { .. } | AppError::Limited { .. } => ErrorCode::TooManyAttempts,
            AppError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => AppError::not_found(&what),
            StoreError::Conflict(msg) => AppError::new(ErrorCode::Conflict, msg),
            StoreError::Unavailable(msg) => {
                tracing::warn!("database unavailable: {msg}");
                AppError::new(
                    ErrorCode::StorageUnavailable,
                    "the database is unreachable; try again shortly",
                )
            }
            StoreError::Other(msg) => AppError::Internal(msg),
        }
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(_: actix_web::error::BlockingError) -> Self {
        AppError::Internal("blocking task was cancelled".into())
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            // Never leak internals to clients; they are logged instead.
            AppError::Internal(detail) => {
                tracing::error!("internal error: {detail}");
                "internal server error".to_string()
            }
            other => other.to_string(),
        };
        let mut resp = HttpResponse::build(self.status_code());
        if let AppError::Throttled { retry_after } | AppError::Limited { retry_after, .. } = self {
            resp.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        if self.code() == ErrorCode::TooManyRequests {
            resp.insert_header((header::RETRY_AFTER, "5"));
        }
        if self.code() == ErrorCode::Unauthenticated || self.code() == ErrorCode::InvalidCredentials
        {
            resp.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"emo\""));
        }
        resp.json(ApiError {
            error: self.code(),
            message,
        })
    }
}

pub type AppResult<T> = Result<T, AppError>;
