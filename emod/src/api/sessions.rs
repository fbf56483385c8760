//! `/api/v1/sessions`: HTTP in and out of the session service ([`crate::sessions`]): parse,
//! authorise, call, map errors.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use emo_api_types::{
    Accepted, Emotion, ErrorCode, Modality, Page, Sample, SampleBatch, Session, SessionStatus,
    StartSession, StopSession,
};
use serde::Deserialize;
use uuid::Uuid;

use super::extract::Authed;
use super::{paging, scope, AppState};
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::sessions;
use crate::store::sessions::SessionFilter;
use crate::store::{emotion_code, modality_code, StoredSample};

fn parse_id(raw: &str) -> AppResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| AppError::not_found("session"))
}

/// An optional JSON body: empty means "no options"; anything else must be valid JSON of the
/// right shape (a broken body is an error, not silently ignored).
fn optional_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> AppResult<Option<T>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        if e.is_data() {
            AppError::invalid(format!("invalid request body: {e}"))
        } else {
            AppError::new(
                ErrorCode::MalformedJson,
                format!("body is not valid JSON: {e}"),
            )
        }
    })
}

#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", request_body = StartSession,
    responses((status = 201, body = Session), (status = 400, description = "consent_required", body = emo_api_types::ApiError),
        (status = 409, description = "session_already_running, capture_busy or source_unavailable", body = emo_api_types::ApiError),
        (status = 422, body = emo_api_types::ApiError),
        (status = 429, description = "too_many_attempts: too many backdated starts (auth.max_backdated_sessions_per_hour)", body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn start(
    state: web::Data<AppState>,
    Authed(user, body): Authed<web::Json<StartSession>>,
) -> AppResult<HttpResponse> {
    let row = sessions::start(&state.sessions(), &user, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(row.to_api(&user.username)?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Username; agents may only name themselves.
    pub agent: Option<String>,
    /// Sessions started at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Sessions started before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Dominant emotion of the session.
    pub emotion: Option<Emotion>,
    pub status: Option<SessionStatus>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", params(ListQuery),
    responses((status = 200, body = Page<Session>)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let (limit, offset) = paging::page_bounds(q.limit, q.offset)?;
    let detail = format!("agent={:?} from={:?} to={:?}", q.agent, q.from, q.to);
    let scope =
        scope::data_scope(&state, &user, q.agent.as_deref(), "read.sessions", detail).await?;
    let filter = SessionFilter {
        user_id: scope.map(|u| u.to_string()),
        from_ms: q.from.map(|t| t.timestamp_millis()),
        to_ms: q.to.map(|t| t.timestamp_millis()),
        dominant: q.emotion.map(emotion_code),
        status: q.status,
        limit: limit as i64,
        offset: offset as i64,
    };
    let store = state.store.clone();
    let (rows, total) = state
        .reads
        .run(move || store.list_sessions(&filter))
        .await??;
    let items = rows
        .iter()
        .map(|(r, u)| r.to_api(u))
        .collect::<Result<Vec<Session>, _>>()?;
    Ok(HttpResponse::Ok().json(paging::page(items, total, limit, offset)))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions", params(("id" = Uuid, Path)),
    responses((status = 200, body = Session), (status = 404, body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = parse_id(&path)?;
    let (row, owner) = sessions::visible(&state.sessions(), &user, id, "read.session").await?;
    Ok(HttpResponse::Ok().json(row.to_api(&owner)?))
}

#[utoipa::path(post, path = "/api/v1/sessions/{id}/stop", tag = "sessions", params(("id" = Uuid, Path)),
    request_body(content = Option<StopSession>, description = "optional"),
    responses((status = 200, body = Session), (status = 409, description = "session_not_running", body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn stop(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Bytes,
) -> AppResult<HttpResponse> {
    let id = parse_id(&path)?;
    let body = optional_json::<StopSession>(&body)?;
    let (row, owner) = sessions::visible(&state.sessions(), &user, id, "session.stop").await?;
    let ended_at = body.and_then(|b| b.ended_at).map(|t| t.timestamp_millis());
    let stopped = sessions::stop(&state.sessions(), &row, ended_at).await?;
    Ok(HttpResponse::Ok().json(stopped.to_api(&owner)?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SamplesQuery {
    pub modality: Option<Modality>,
    /// Page size, 1..=10000 (default 1000).
    pub limit: Option<u64>,
    /// At most 100,000; further pages by `after`.
    pub offset: Option<u64>,
    /// The previous page's `next_after`: the page after that sample (keyset paging; no offset).
    pub after: Option<String>,
}

/// Deepest `offset` for samples: a deep OFFSET makes the database read and skip every row before
/// it (4.6 s at 10^9 on a 5.8 M-sample session, holding a pooled connection); past it, `after`.
const MAX_SAMPLES_OFFSET: u64 = 100_000;

/// `t.modality` of the last sample of a page: where the next one starts.
fn cursor_of(r: &StoredSample) -> String {
    format!("{}.{}", r.t, r.modality)
}

fn parse_cursor(s: &str) -> AppResult<(i64, i16)> {
    s.split_once('.')
        .and_then(|(t, m)| Some((t.parse().ok()?, m.parse().ok()?)))
        .ok_or_else(|| AppError::query("`after` must be a page's `next_after`"))
}

#[utoipa::path(get, path = "/api/v1/sessions/{id}/samples", tag = "sessions",
    params(("id" = Uuid, Path), SamplesQuery),
    responses((status = 200, body = Page<Sample>), (status = 404, body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn samples(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    q: web::Query<SamplesQuery>,
) -> AppResult<HttpResponse> {
    let id = parse_id(&path)?;
    let (limit, offset) = paging::page_bounds_max(Some(q.limit.unwrap_or(1000)), q.offset, 10_000)?;
    if offset > MAX_SAMPLES_OFFSET {
        return Err(AppError::query(format!(
            "offset must be at most {MAX_SAMPLES_OFFSET}; page further with `after` (each page's `next_after`)"
        )));
    }
    let after = q.after.as_deref().map(parse_cursor).transpose()?;
    if after.is_some() && offset > 0 {
        return Err(AppError::query("use either `offset` or `after`, not both"));
    }
    let (row, _) = sessions::visible(&state.sessions(), &user, id, "read.samples").await?;
    let owner = crate::store::parse_uuid(&row.user_id)?;
    sessions::read_your_writes(&state.sessions(), Some(owner)).await?;
    let store = state.store.clone();
    let modality = q.modality.map(modality_code);
    let (rows, total) = state
        .reads
        .run(move || {
            store.list_samples(
                &id.to_string(),
                modality,
                after,
                limit as i64,
                offset as i64,
            )
        })
        .await??;
    let next_after = (rows.len() as u64 == limit)
        .then(|| rows.last().map(cursor_of))
        .flatten();
    let items = rows
        .iter()
        .map(StoredSample::to_api)
        .collect::<Result<Vec<Sample>, _>>()?;
    let mut page = paging::page(items, total.count, limit, offset);
    page.total_capped = total.capped;
    page.next_after = next_after;
    if after.is_some() {
        // A cursor page has no position to count from.
        page.next_offset = None;
    }
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(post, path = "/api/v1/sessions/{id}/samples", tag = "sessions",
    params(("id" = Uuid, Path)), request_body = SampleBatch,
    responses((status = 201, body = Accepted), (status = 409, description = "session_not_running", body = emo_api_types::ApiError),
        (status = 422, body = emo_api_types::ApiError),
        (status = 429, description = "too_many_requests: this user's samples waiting to be written reached writer.user_quota (Retry-After)", body = emo_api_types::ApiError),
        (status = 503, description = "storage_unavailable", body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn post_samples(
    state: web::Data<AppState>,
    path: web::Path<String>,
    Authed(user, body): Authed<web::Json<SampleBatch>>,
) -> AppResult<HttpResponse> {
    let id = parse_id(&path)?;
    let done = sessions::post_samples(&state.sessions(), &user, id, &body).await?;
    Ok(HttpResponse::Created().json(Accepted {
        accepted: done.accepted,
        duplicates: done.duplicates,
    }))
}
