//! `GET /api/v1/audit`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use emo_api_types::{AuditEntry, Page};
use serde::Deserialize;

use super::AppState;
use crate::auth::{validate_username, AuthUser};
use crate::error::{AppError, AppResult};
use crate::store::audit::{AuditFilter, AuditRow};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    /// Only entries of this action (`read.export`, `session.backdated`, …).
    pub action: Option<String>,
    /// Only entries where this user is the actor or the user whose data or account it concerns.
    pub user: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only entries before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

impl AuditQuery {
    fn filter(&self) -> AppResult<AuditFilter> {
        let action = self
            .action
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty());
        if let Some(a) = action {
            let ok = a.len() <= 64
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok {
                return Err(AppError::query(
                    "action: at most 64 letters, digits, '.', '_' or '-'",
                ));
            }
        }
        let user = self
            .user
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty());
        if let Some(u) = user {
            validate_username(u).map_err(AppError::query)?;
        }
        if let (Some(f), Some(t)) = (self.from, self.to) {
            if f >= t {
                return Err(AppError::query("`from` must be before `to`"));
            }
        }
        Ok(AuditFilter {
            action: action.map(str::to_string),
            user: user.map(str::to_string),
            from_ms: self.from.map(|t| t.timestamp_millis()),
            to_ms: self.to.map(|t| t.timestamp_millis()),
        })
    }
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
    let filter = q.filter()?;
    state
        .audit()
        .record(
            &user,
            "read.audit",
            None,
            format!("limit={limit},offset={offset}{}", filter.describe()),
        )
        .await?;
    let store = state.store.clone();
    let (rows, total) = (state
        .reads
        .run(move || store.list_audit(&filter, limit as i64, offset as i64)))
    .await??;
    let items = rows
        .iter()
        .map(AuditRow::to_api)
        .collect::<Result<Vec<AuditEntry>, _>>()?;
    Ok(HttpResponse::Ok().json(super::paging::page(items, total, limit, offset)))
}
