//! `/api/v1/stats/*`: the dashboard aggregates, all sharing the same filters.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use emo_api_types::{Bucket, Distribution, Emotion, Heatmap, HeatmapKind, Modality, Timeline};
use serde::Deserialize;

use super::{scope, AppState};
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::store::stats::StatsFilter;
use crate::store::{emotion_code, modality_code};

/// Longest range a minute-bucket timeline may span (keeps answers and queries bounded).
const MAX_MINUTE_RANGE_MS: i64 = 7 * 86_400_000;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Username; agents may only name themselves. Absent = all agents (admins).
    pub agent: Option<String>,
    /// Inclusive lower bound on sample time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound on sample time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    pub emotion: Option<Emotion>,
    /// Which estimates to count (default `fused`).
    pub modality: Option<Modality>,
    /// Timeline bucket: minute, hour (default) or day.
    pub bucket: Option<Bucket>,
    /// Heatmap: agent_emotion (default) or weekday_hour.
    pub kind: Option<HeatmapKind>,
    /// Shift applied before bucketing by day or weekday/hour, in minutes east of UTC (-840..=840).
    pub tz_offset_minutes: Option<i64>,
    /// Export only: csv (default) or json.
    pub format: Option<String>,
}

impl StatsQuery {
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = &self.agent {
            parts.push(format!("agent={a}"));
        }
        if let Some(f) = self.from {
            parts.push(format!("from={}", f.to_rfc3339()));
        }
        if let Some(t) = self.to {
            parts.push(format!("to={}", t.to_rfc3339()));
        }
        if let Some(e) = self.emotion {
            parts.push(format!("emotion={e}"));
        }
        if let Some(m) = self.modality {
            parts.push(format!("modality={m}"));
        }
        parts.join(" ")
    }
}

/// Validates the query and resolves it (with access checks and auditing) into a store filter.
pub async fn resolve(
    state: &web::Data<AppState>,
    user: &AuthUser,
    q: &StatsQuery,
    action: &str,
    default_modality: Option<Modality>,
) -> AppResult<StatsFilter> {
    if let (Some(f), Some(t)) = (q.from, q.to) {
        if f >= t {
            return Err(AppError::query("`from` must be before `to`"));
        }
    }
    let tz = q.tz_offset_minutes.unwrap_or(0);
    if !(-840..=840).contains(&tz) {
        return Err(AppError::query(
            "tz_offset_minutes must be between -840 and 840",
        ));
    }
    let user_id = scope::data_scope(state, user, q.agent.as_deref(), action, q.describe()).await?;
    Ok(StatsFilter {
        user_id,
        from_ms: q.from.map(|t| t.timestamp_millis()),
        to_ms: q.to.map(|t| t.timestamp_millis()),
        emotion: q.emotion.map(emotion_code),
        modality: q.modality.or(default_modality).map(modality_code),
        tz_offset_ms: tz * 60_000,
    })
}

#[utoipa::path(get, path = "/api/v1/stats/distribution", tag = "stats", params(StatsQuery),
    responses((status = 200, body = Distribution)), security(("bearer" = [])))]
pub async fn distribution(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<StatsQuery>,
) -> AppResult<HttpResponse> {
    let f = resolve(
        &state,
        &user,
        &q,
        "read.stats.distribution",
        Some(Modality::Fused),
    )
    .await?;
    let store = state.store.clone();
    let d = web::block(move || store.distribution(&f)).await??;
    Ok(HttpResponse::Ok().json(d))
}

#[utoipa::path(get, path = "/api/v1/stats/timeline", tag = "stats", params(StatsQuery),
    responses((status = 200, body = Timeline)), security(("bearer" = [])))]
pub async fn timeline(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<StatsQuery>,
) -> AppResult<HttpResponse> {
    let bucket = q.bucket.unwrap_or(Bucket::Hour);
    if bucket == Bucket::Minute {
        match (q.from, q.to) {
            (Some(f), Some(t)) if (t - f).num_milliseconds() <= MAX_MINUTE_RANGE_MS => {}
            _ => {
                return Err(AppError::query(
                    "bucket=minute needs `from` and `to` at most 7 days apart",
                ))
            }
        }
    }
    let f = resolve(
        &state,
        &user,
        &q,
        "read.stats.timeline",
        Some(Modality::Fused),
    )
    .await?;
    let store = state.store.clone();
    let t = web::block(move || store.timeline(&f, bucket)).await??;
    Ok(HttpResponse::Ok().json(t))
}

#[utoipa::path(get, path = "/api/v1/stats/heatmap", tag = "stats", params(StatsQuery),
    responses((status = 200, body = Heatmap)), security(("bearer" = [])))]
pub async fn heatmap(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<StatsQuery>,
) -> AppResult<HttpResponse> {
    let kind = q.kind.unwrap_or(HeatmapKind::AgentEmotion);
    let f = resolve(
        &state,
        &user,
        &q,
        "read.stats.heatmap",
        Some(Modality::Fused),
    )
    .await?;
    let store = state.store.clone();
    let h = web::block(move || store.heatmap(&f, kind)).await??;
    Ok(HttpResponse::Ok().json(h))
}
