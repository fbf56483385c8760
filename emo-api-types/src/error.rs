//! The JSON error body and the stable, snake_case error codes clients can match on.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Every failed request answers `{"error": "<code>", "message": "<human text>"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiError {
    pub error: ErrorCode,
    pub message: String,
}

/// Declares [`ErrorCode`] from one list: each code's wire name and HTTP status are written once,
/// and serde, [`ErrorCode::as_str`] and [`ErrorCode::http_status`] are all derived from it.
// `$wire` is a `tt`, not a `literal`: utoipa's derive does not see through the invisible group a
// `literal` fragment is wrapped in, and would document the Rust variant names instead.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $name:ident = $wire:tt, $status:literal;)*) => {
        /// Stable error codes. The string form is part of the API contract.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(ToSchema))]
        pub enum ErrorCode {
            $($(#[doc = $doc])* #[serde(rename = $wire)] $name,)*
            /// A code this build does not know (sent by a newer daemon): clients fall back to
            /// the message. The daemon never sends it.
            #[serde(rename = "unknown", other)]
            Unknown,
        }

        impl ErrorCode {
            /// Every code the daemon may send (all but [`ErrorCode::Unknown`]).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => $wire,)*
                    ErrorCode::Unknown => "unknown",
                }
            }

            /// The HTTP status that goes with the code.
            pub fn http_status(self) -> u16 {
                match self {
                    $(ErrorCode::$name => $status,)*
                    ErrorCode::Unknown => 500,
                }
            }
        }
    };
}

error_codes! {
    /// 400: body is not valid JSON.
    MalformedJson = "malformed_json", 400;
    /// 422: JSON is well formed but a field has the wrong type or value.
    InvalidInput = "invalid_input", 422;
    /// 400: a query-string parameter is invalid.
    InvalidQuery = "invalid_query", 400;
    /// 400: `POST /sessions` without `"consent": true`.
    ConsentRequired = "consent_required", 400;
    /// 401: no, unknown, expired or revoked token.
    Unauthenticated = "unauthenticated", 401;
    /// 401: wrong username or password.
    InvalidCredentials = "invalid_credentials", 401;
    /// 403: authenticated but not allowed.
    Forbidden = "forbidden", 403;
    /// 403: the account is disabled.
    AccountDisabled = "account_disabled", 403;
    /// 403: self-registration is switched off.
    RegistrationClosed = "registration_closed", 403;
    /// 404
    NotFound = "not_found", 404;
    /// 405
    MethodNotAllowed = "method_not_allowed", 405;
    /// 409: e.g. username taken.
    Conflict = "conflict", 409;
    /// 409: the session is not running.
    SessionNotRunning = "session_not_running", 409;
    /// 409: this user already has a running session.
    SessionAlreadyRunning = "session_already_running", 409;
    /// 409: this daemon's camera/microphone already capture for another session.
    CaptureBusy = "capture_busy", 409;
    /// 409: a requested capture source cannot be opened (the message names it).
    SourceUnavailable = "source_unavailable", 409;
    /// 413: body over the configured limit.
    PayloadTooLarge = "payload_too_large", 413;
    /// 415
    UnsupportedMediaType = "unsupported_media_type", 415;
    /// 429: too many failed logins.
    TooManyAttempts = "too_many_attempts", 429;
    /// 429: the daemon is already doing as much of this work as it allows at once.
    TooManyRequests = "too_many_requests", 429;
    /// 503: the database is unreachable and the spool is full (nothing was accepted).
    StorageUnavailable = "storage_unavailable", 503;
    /// 503: the inference models are not available.
    ModelsUnavailable = "models_unavailable", 503;
    /// 500
    Internal = "internal", 500;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_travel_as_their_snake_case_names_and_unknown_ones_still_parse() {
        for c in ErrorCode::ALL {
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), *c);
        }
        assert_eq!(
            serde_json::to_string(&ErrorCode::SessionAlreadyRunning).unwrap(),
            "\"session_already_running\""
        );
        let e: ApiError =
            serde_json::from_str(r#"{"error":"a_code_from_2030","message":"m"}"#).unwrap();
        assert_eq!(e.error, ErrorCode::Unknown);
    }
}
