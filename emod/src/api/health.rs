//! `/healthz` (the process answers), `/readyz` (the database answers) and `/metrics`.

use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use emo_api_types::{ApiError, Health};

use super::AppState;
use crate::auth::AuthUser;
use crate::error::AppError;

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        database: None,
        pending_samples: None,
    })
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, description = "storage_unavailable", body = ApiError)))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.clone();
    let ok = matches!(web::block(move || store.ping()).await, Ok(Ok(())));
    state
        .metrics
        .database_up
        .store(ok as i64, std::sync::atomic::Ordering::Relaxed);
    if ok {
        HttpResponse::Ok().json(Health {
            status: "ready".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            database: Some(state.store.backend_name().into()),
            pending_samples: Some(state.writer.pending() as u64),
        })
    } else {
        HttpResponse::ServiceUnavailable().json(ApiError {
            error: emo_api_types::ErrorCode::StorageUnavailable,
            message: format!(
                "the database is unreachable; {} samples are waiting in the spool",
                state.writer.pending()
            ),
        })
    }
}

/// Prometheus text. Needs an admin's bearer token unless `server.metrics_public` is `true`, or
/// `auto` (the default) on a daemon listening on loopback only.
pub async fn metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    if !state.config.server.metrics_are_public() {
        AuthUser::extract(&req).await?.require_admin()?;
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render()))
}
