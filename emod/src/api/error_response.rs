//! How a domain error ([`AppError`]) becomes an HTTP response: the status from its code, the
//! headers a client needs to retry or authenticate, and the `{error, message}` JSON body. Internal
//! details are logged, never sent.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use emo_api_types::{ApiError, ErrorCode};

use crate::error::AppError;

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
