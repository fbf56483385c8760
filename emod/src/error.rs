//! One error type for the daemon's domain (sessions, ingest, auth, storage). Each variant carries
//! a stable snake_case code ([`ErrorCode`], from the wire types), so clients can match on `error`
//! and never on prose. Nothing here knows about HTTP: `api/error_response.rs` turns it into a
//! response (status, `Retry-After`, `WWW-Authenticate`, the JSON body), so the domain can be
//! called without a web framework (the CLI's benches do).

use emo_api_types::ErrorCode;

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

pub type AppResult<T> = Result<T, AppError>;
