//! `GET /api/v1/audit` and the helper every handler uses to write audit entries.

use actix_web::{web, HttpResponse};
use emo_api_types::{AuditEntry, Page};
use serde::Deserialize;

use super::AppState;
use crate::auth::AuthUser;
use crate::error::AppResult;
use crate::metrics::Metrics;
use crate::store::audit::AuditRow;
use crate::store::now_ms;

/// Writes one audit entry. Fails the request if it cannot be written: data is never served
/// unaudited.
pub async fn record(
    state: &web::Data<AppState>,
    actor: &AuthUser,
    action: &str,
    target_user: Option<String>,
    detail: String,
) -> AppResult<()> {
    if !state.config.privacy.audit_admin_reads && action.starts_with("read") {
        return Ok(());
    }
    let row = AuditRow {
        id: uuid::Uuid::now_v7().to_string(),
        at: now_ms(),
        actor_id: actor.id.to_string(),
        actor: actor.username.clone(),
        action: action.to_string(),
        target_user,
        detail,
    };
    let store = state.store.clone();
    web::block(move || store.insert_audit(&row)).await??;
    Metrics::inc(&state.metrics.audit_entries, 1);
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditEntry>), (status = 403, body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<AuditQuery>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let (limit, offset) = super::sessions::page_bounds(q.limit, q.offset)?;
    let store = state.store.clone();
    let (rows, total) = web::block(move || store.list_audit(limit as i64, offset as i64)).await??;
    let items: Vec<AuditEntry> = rows.iter().map(AuditRow::to_api).collect();
    Ok(HttpResponse::Ok().json(super::sessions::page(items, total, limit, offset)))
}
