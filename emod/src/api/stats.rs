//! `/api/v1/stats/*`: the dashboard aggregates. Each takes the shared sample filters plus its own
//! parameters (its own query type), and rejects any other.

use actix_web::{web, HttpResponse};
use emo_api_types::{
    Bucket, Distribution, DistributionQuery, Heatmap, HeatmapKind, HeatmapQuery, Modality,
    Timeline, TimelineQuery,
};

use super::scope::resolve;
use super::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};

/// Longest range a minute-bucket timeline may span (keeps answers and queries bounded).
const MAX_MINUTE_RANGE_MS: i64 = 7 * 86_400_000;

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
    let d = state.reads.run(move || store.distribution(&f)).await??;
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
    let t = state
        .reads
        .run(move || store.timeline(&f, bucket))
        .await??;
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
    let h = state.reads.run(move || store.heatmap(&f, kind)).await??;
    Ok(HttpResponse::Ok().json(h))
}
