//! `GET /api/v1/audit`.

use actix_web::{web, HttpResponse};
use emo_api_types::{AuditEntry, Page};
use serde::Deserialize;

use super::AppState;
use crate::auth::AuthUser;
use crate::error::AppResult;
use crate::store::audit::AuditRow;

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
    let (limit, offset) = super::paging::page_bounds(q.limit, q.offset)?;
    crate::audit::record(
        &state,
        &user,
        "read.audit",
        None,
        format!("limit={limit},offset={offset}"),
    )
    .await?;
    let store = state.store.clone();
    let (rows, total) = web::block(move || store.list_audit(limit as i64, offset as i64)).await??;
    let items = rows
        .iter()
        .map(AuditRow::to_api)
        .collect::<Result<Vec<AuditEntry>, _>>()?;
    Ok(HttpResponse::Ok().json(super::paging::page(items, total, limit, offset)))
}
