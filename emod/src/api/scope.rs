//! Who may see what: agents only their own data, admins everything, and every admin read of
//! someone else's data lands in the audit log before the data is served.

use actix_web::web;
use emo_api_types::{Filters, Modality};
use uuid::Uuid;

use super::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::store::stats::StatsFilter;
use crate::store::{emotion_code, modality_code, parse_uuid};

/// Resolves the `agent` filter for `user` into the user id to restrict to (`None` = everyone),
/// writing an audit entry when an admin reads beyond their own data.
pub async fn data_scope(
    state: &web::Data<AppState>,
    user: &AuthUser,
    agent: Option<&str>,
    action: &str,
    detail: String,
) -> AppResult<Option<Uuid>> {
    let agent = agent.map(str::trim).filter(|a| !a.is_empty());
    if !user.is_admin() {
        return match agent {
            Some(name) if name != user.username => {
                Err(AppError::forbidden("agents can only see their own data"))
            }
            _ => Ok(Some(user.id)),
        };
    }
    match agent {
        Some(name) if name == user.username => Ok(Some(user.id)),
        Some(name) => {
            let store = state.store.clone();
            let lookup = name.to_string();
            let row = web::block(move || store.user_by_name(&lookup))
                .await??
                .ok_or_else(|| AppError::not_found(&format!("agent `{name}`")))?;
            state
                .audit()
                .record(user, action, Some(name.to_string()), detail)
                .await?;
            Ok(Some(parse_uuid(&row.id)?))
        }
        None => {
            state.audit().record(user, action, None, detail).await?;
            Ok(None)
        }
    }
}

/// The filters as one line of audit detail.
pub fn describe(f: &Filters) -> String {
    let mut parts = Vec::new();
    if let Some(a) = &f.agent {
        parts.push(format!("agent={a}"));
    }
    if let Some(from) = f.from {
        parts.push(format!("from={}", from.to_rfc3339()));
    }
    if let Some(to) = f.to {
        parts.push(format!("to={}", to.to_rfc3339()));
    }
    if let Some(e) = f.emotion {
        parts.push(format!("emotion={e}"));
    }
    if let Some(m) = f.modality {
        parts.push(format!("modality={m}"));
    }
    parts.join(" ")
}

/// Validates the query and resolves it (with access checks and auditing) into a store filter.
pub async fn resolve(
    state: &web::Data<AppState>,
    user: &AuthUser,
    q: &Filters,
    tz_offset_minutes: Option<i64>,
    action: &str,
    default_modality: Option<Modality>,
) -> AppResult<StatsFilter> {
    if let (Some(f), Some(t)) = (q.from, q.to) {
        if f >= t {
            return Err(AppError::query("`from` must be before `to`"));
        }
    }
    let tz = tz_offset_minutes.unwrap_or(0);
    if !(-840..=840).contains(&tz) {
        return Err(AppError::query(
            "tz_offset_minutes must be between -840 and 840",
        ));
    }
    let user_id = data_scope(state, user, q.agent.as_deref(), action, describe(q)).await?;
    Ok(StatsFilter {
        user_id,
        from_ms: q.from.map(|t| t.timestamp_millis()),
        to_ms: q.to.map(|t| t.timestamp_millis()),
        emotion: q.emotion.map(emotion_code),
        modality: q.modality.or(default_modality).map(modality_code),
        tz_offset_ms: tz * 60_000,
    })
}
