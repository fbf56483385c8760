//! `GET /api/v1/devices`: the cameras and microphones this daemon sees, and what `[capture]`
//! resolves to. No camera or no sound card gives empty lists, not an error.

use actix_web::{web, HttpResponse};
use emo_api_types::Devices;

use super::AppState;
use crate::auth::AuthUser;
use crate::error::AppResult;

#[utoipa::path(get, path = "/api/v1/devices", tag = "capture",
    responses((status = 200, body = Devices), (status = 401, body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn list(state: web::Data<AppState>, _user: AuthUser) -> AppResult<HttpResponse> {
    let cfg = state.config.capture.clone();
    let capturing = state.capture.busy();
    // Enumerating devices opens them briefly: off the HTTP workers.
    let devices = crate::blocking(move || crate::capture::devices(&cfg, capturing)).await?;
    Ok(HttpResponse::Ok().json(devices))
}
