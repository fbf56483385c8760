//! The JSON error body and the stable, snake_case error codes clients can match on.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Every failed request answers `{"error": "<code>", "message": "<human text>"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiError {
    pub error: String,
    pub message: String,
}

/// Stable error codes. The string form is part of the API contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: body is not valid JSON.
    MalformedJson,
    /// 400/422: JSON is well formed but a field has the wrong type or value.
    InvalidInput,
    /// 400: a query-string parameter is invalid.
    InvalidQuery,
    /// 400: `POST /sessions` without `"consent": true`.
    ConsentRequired,
    /// 401: no, unknown, expired or revoked token.
    Unauthenticated,
    /// 401: wrong username or password.
    InvalidCredentials,
    /// 403: authenticated but not allowed.
    Forbidden,
    /// 403: the account is disabled.
    AccountDisabled,
    /// 403: self-registration is switched off.
    RegistrationClosed,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 409: e.g. username taken.
    Conflict,
    /// 409: the session is not running.
    SessionNotRunning,
    /// 409: this user already has a running session.
    SessionAlreadyRunning,
    /// 409: this daemon's camera/microphone already capture for another session.
    CaptureBusy,
    /// 409: a requested capture source cannot be opened (the message names it).
    SourceUnavailable,
    /// 413: body over the configured limit.
    PayloadTooLarge,
    /// 415
    UnsupportedMediaType,
    /// 429: too many failed logins.
    TooManyAttempts,
    /// 429: the daemon is already doing as much of this work as it allows at once.
    TooManyRequests,
    /// 503: the database is unreachable and the spool is full (nothing was accepted).
    StorageUnavailable,
    /// 503: the inference models are not available.
    ModelsUnavailable,
    /// 500
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::AccountDisabled => "account_disabled",
            ErrorCode::RegistrationClosed => "registration_closed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::SessionNotRunning => "session_not_running",
            ErrorCode::SessionAlreadyRunning => "session_already_running",
            ErrorCode::CaptureBusy => "capture_busy",
            ErrorCode::SourceUnavailable => "source_unavailable",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::ModelsUnavailable => "models_unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedJson | ErrorCode::InvalidQuery | ErrorCode::ConsentRequired => 400,
            ErrorCode::InvalidInput => 422,
            ErrorCode::Unauthenticated | ErrorCode::InvalidCredentials => 401,
            ErrorCode::Forbidden | ErrorCode::AccountDisabled | ErrorCode::RegistrationClosed => {
                403
            }
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict
            | ErrorCode::SessionNotRunning
            | ErrorCode::SessionAlreadyRunning
            | ErrorCode::CaptureBusy
            | ErrorCode::SourceUnavailable => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::TooManyAttempts | ErrorCode::TooManyRequests => 429,
            ErrorCode::StorageUnavailable | ErrorCode::ModelsUnavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
