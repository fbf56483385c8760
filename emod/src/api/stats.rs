//! `/api/v1/stats/*`: the dashboard aggregates. Each takes the shared sample filters plus its own
//! parameters (its own query type), and rejects any other.

use actix_web::{web, HttpResponse};
use emo_api_types::{
    Bucket, Distribution, DistributionQuery, Filters, Heatmap, HeatmapKind, HeatmapQuery, Modality,
    Timeline, TimelineQuery,
};

use super::{scope, AppState};
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::store::stats::StatsFilter;
use crate::store::{emotion_code, modality_code};

/// Longest range a minute-bucket timeline may span (keeps answers and queries bounded).
const MAX_MINUTE_RANGE_MS: i64 = 7 * 86_400_000;

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
    let user_id = scope::data_scope(state, user, q.agent.as_deref(), action, describe(q)).await?;
    Ok(StatsFilter {
        user_id,
        from_ms: q.from.map(|t| t.timestamp_millis()),
        to_ms: q.to.map(|t| t.timestamp_millis()),
        emotion: q.emotion.map(emotion_code),
        modality: q.modality.or(default_modality).map(modality_code),
        tz_offset_ms: tz * 60_000,
    })
}

#[utoipa::path(get, path = "/api/v1/stats/distribution", tag = "stats", params(DistributionQuery),
    responses((status = 200, body = Distribution)), security(("bearer" = [])))]
pub async fn distribution(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<DistributionQuery>,
) -> AppResult<HttpResponse> {
    let f = resolve(
        &state,
        &user,
        &q.filters(),
        None,
        "read.stats.distribution",
        Some(Modality::Fused),
    )
    .await?;
    let store = state.store.clone();
    let d = web::block(move || store.distribution(&f)).await??;
    Ok(HttpResponse::Ok().json(d))
}

#[utoipa::path(get, path = "/api/v1/stats/timeline", tag = "stats", params(TimelineQuery),
    responses((status = 200, body = Timeline)), security(("bearer" = [])))]
pub async fn timeline(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<TimelineQuery>,
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
        &q.filters(),
        q.tz_offset_minutes,
        "read.stats.timeline",
        Some(Modality::Fused),
    )
    .await?;
    let store = state.store.clone();
    let t = web::block(move || store.timeline(&f, bucket)).await??;
    Ok(HttpResponse::Ok().json(t))
}

#[utoipa::path(get, path = "/api/v1/stats/heatmap", tag = "stats", params(HeatmapQuery),
    responses((status = 200, body = Heatmap)), security(("bearer" = [])))]
pub async fn heatmap(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<HeatmapQuery>,
) -> AppResult<HttpResponse> {
    let kind = q.kind.unwrap_or(HeatmapKind::AgentEmotion);
    let f = resolve(
        &state,
        &user,
        &q.filters(),
        q.tz_offset_minutes,
        "read.stats.heatmap",
        Some(Modality::Fused),
    )
    .await?;
    let store = state.store.clone();
    let h = web::block(move || store.heatmap(&f, kind)).await??;
    Ok(HttpResponse::Ok().json(h))
}
