//! `/api/v1/sessions`: start, stop, list, get, and per-window samples in and out.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use emo_api_types::{
    Accepted, Emotion, ErrorCode, LiveEvent, Modality, Page, Sample, SampleBatch, Session,
    SessionStatus, StartSession, StopSession,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{audit, scope, AppState};
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::metrics::Metrics;
use crate::store::sessions::SessionFilter;
use crate::store::{
    emotion_code, modality_code, now_ms, parse_uuid, SampleRow, SessionRow, StoreError,
};

/// Most samples one request may carry.
pub const MAX_BATCH: usize = 10_000;
/// Allowed clock skew between a capture client and the daemon.
const SKEW_MS: i64 = 60_000;
/// 2000-01-01T00:00:00Z. Older timestamps are typos or clock faults; refusing them also keeps
/// every stored time positive, which the roll-up arithmetic (`t - t % 3600000`) relies on.
const EARLIEST_MS: i64 = 946_684_800_000;

#[derive(Debug, Clone, Copy)]
struct RunningInfo {
    user_id: Uuid,
    started_at: i64,
    checked: Instant,
}

/// Sessions known to be running, so sample ingest needs no database round trip and keeps
/// working while the database is down.
#[derive(Default)]
pub struct RunningSessions {
    map: Mutex<HashMap<Uuid, RunningInfo>>,
}

impl RunningSessions {
    fn get(&self, id: Uuid) -> Option<RunningInfo> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied()
    }
    fn put(&self, id: Uuid, info: RunningInfo) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, info);
    }
    fn remove(&self, id: Uuid) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

pub fn page_bounds(limit: Option<u64>, offset: Option<u64>) -> AppResult<(u64, u64)> {
    page_bounds_max(limit, offset, 1000)
}

fn page_bounds_max(limit: Option<u64>, offset: Option<u64>, max: u64) -> AppResult<(u64, u64)> {
    let limit = limit.unwrap_or(50.min(max));
    if limit == 0 || limit > max {
        return Err(AppError::query(format!(
            "limit must be between 1 and {max}"
        )));
    }
    let offset = offset.unwrap_or(0);
    // Databases take a signed 64-bit OFFSET; anything near that is no real page anyway.
    if offset > MAX_OFFSET {
        return Err(AppError::query(format!(
            "offset must be between 0 and {MAX_OFFSET}"
        )));
    }
    Ok((limit, offset))
}

/// The largest accepted `offset` (far beyond any real table, far below `i64::MAX`).
const MAX_OFFSET: u64 = 1 << 40;

pub fn page<T>(items: Vec<T>, total: i64, limit: u64, offset: u64) -> Page<T> {
    let total = total.max(0) as u64;
    let next = offset.saturating_add(items.len() as u64);
    Page {
        next_offset: (next < total && !items.is_empty()).then_some(next),
        items,
        total,
        offset,
        limit,
    }
}

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

/// Loads a session the caller may see: agents get 404 for sessions that are not theirs; admins
/// reading another user's session are audited.
pub(crate) async fn visible_session(
    state: &web::Data<AppState>,
    user: &AuthUser,
    id: Uuid,
    action: &str,
) -> AppResult<(SessionRow, String)> {
    let store = state.store.clone();
    let (row, owner) = web::block(move || store.session(&id.to_string()))
        .await??
        .ok_or_else(|| AppError::not_found("session"))?;
    if parse_uuid(&row.user_id) != user.id {
        if !user.is_admin() {
            return Err(AppError::not_found("session"));
        }
        audit::record(
            state,
            user,
            action,
            Some(owner.clone()),
            format!("session={id}"),
        )
        .await?;
    }
    Ok((row, owner))
}

#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", request_body = StartSession,
    responses((status = 201, body = Session), (status = 400, description = "consent_required", body = emo_api_types::ApiError),
        (status = 409, description = "session_already_running", body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn start(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<StartSession>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    if !body.consent {
        return Err(AppError::new(
            ErrorCode::ConsentRequired,
            "starting a session needs the agent's explicit consent: send \"consent\": true",
        ));
    }
    let now = now_ms();
    let started_at = match body.started_at {
        Some(t) if t.timestamp_millis() > now + SKEW_MS => {
            return Err(AppError::invalid("started_at lies in the future"))
        }
        Some(t) if t.timestamp_millis() < EARLIEST_MS => {
            return Err(AppError::invalid("started_at lies before 2000-01-01"))
        }
        Some(t) => t.timestamp_millis(),
        None => now,
    };
    if body.sources.len() > 16 || body.sources.iter().any(|s| s.len() > 200) {
        return Err(AppError::invalid(
            "at most 16 sources of at most 200 characters",
        ));
    }
    if body.label.as_ref().is_some_and(|l| l.len() > 200) {
        return Err(AppError::invalid("label is longer than 200 characters"));
    }
    let store = state.store.clone();
    let uid = user.id.to_string();
    let running = web::block(move || {
        store.list_sessions(&SessionFilter {
            user_id: Some(uid),
            status: Some(SessionStatus::Running),
            limit: 1,
            ..Default::default()
        })
    })
    .await??;
    if let Some((existing, _)) = running.0.first() {
        return Err(AppError::new(
            ErrorCode::SessionAlreadyRunning,
            format!("session {} is still running; stop it first", existing.id),
        ));
    }
    let id = Uuid::now_v7();
    let row = SessionRow {
        id: id.to_string(),
        user_id: user.id.to_string(),
        node: state.node.clone(),
        status: SessionStatus::Running.as_str().into(),
        started_at,
        ended_at: None,
        consent_at: now,
        sources: serde_json::to_string(&body.sources).unwrap_or_else(|_| "[]".into()),
        label: body.label,
        summary: None,
        dominant: None,
    };
    let store = state.store.clone();
    let insert = row.clone();
    match web::block(move || store.insert_session(&insert)).await? {
        Ok(()) => {}
        // Lost a race with a concurrent start: the unique index allows one running session.
        Err(StoreError::Conflict(_)) => {
            return Err(AppError::new(
                ErrorCode::SessionAlreadyRunning,
                "another session of this user is already running; stop it first",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    state.running.put(
        id,
        RunningInfo {
            user_id: user.id,
            started_at,
            checked: Instant::now(),
        },
    );
    Metrics::inc(&state.metrics.sessions_started, 1);
    tracing::info!(session = %id, user = %user.username, "session started with consent");
    Ok(HttpResponse::Created().json(row.to_api(&user.username)))
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
    let (limit, offset) = page_bounds(q.limit, q.offset)?;
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
    let (rows, total) = web::block(move || store.list_sessions(&filter)).await??;
    let items: Vec<Session> = rows.iter().map(|(r, u)| r.to_api(u)).collect();
    Ok(HttpResponse::Ok().json(page(items, total, limit, offset)))
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
    let (row, owner) = visible_session(&state, &user, id, "read.session").await?;
    Ok(HttpResponse::Ok().json(row.to_api(&owner)))
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
    let (row, owner) = visible_session(&state, &user, id, "session.stop").await?;
    if row.status() != SessionStatus::Running {
        return Err(AppError::new(
            ErrorCode::SessionNotRunning,
            "the session is not running",
        ));
    }
    let now = now_ms();
    let ended_at = match body.and_then(|b| b.ended_at) {
        Some(t) => {
            let t = t.timestamp_millis();
            if t < row.started_at || t > now + SKEW_MS {
                return Err(AppError::invalid(
                    "ended_at must lie between the session start and now",
                ));
            }
            t
        }
        None => now.max(row.started_at),
    };
    let summary = finish(&state, &row, SessionStatus::Stopped, ended_at).await?;
    let mut stopped = row.clone();
    stopped.status = SessionStatus::Stopped.as_str().into();
    stopped.ended_at = Some(ended_at);
    stopped.summary = serde_json::to_string(&summary).ok();
    tracing::info!(session = %id, "session stopped");
    Ok(HttpResponse::Ok().json(stopped.to_api(&owner)))
}

/// Flushes the session's pending samples, stores the summary and closes the session.
async fn finish(
    state: &web::Data<AppState>,
    row: &SessionRow,
    status: SessionStatus,
    ended_at: i64,
) -> AppResult<emo_api_types::SessionSummary> {
    let writer = state.writer.clone();
    let flushed = web::block(move || writer.flush(Duration::from_secs(15))).await?;
    if !flushed {
        return Err(AppError::new(
            ErrorCode::StorageUnavailable,
            "samples are still waiting for the database; try stopping again shortly",
        ));
    }
    let store = state.store.clone();
    let (id, started) = (row.id.clone(), row.started_at);
    let summary = web::block(move || -> Result<_, StoreError> {
        let summary = store.compute_summary(&id, started, ended_at)?;
        let done = store.finish_session(&id, status, ended_at, &summary)?;
        Ok((summary, done))
    })
    .await??;
    if !summary.1 {
        return Err(AppError::new(
            ErrorCode::SessionNotRunning,
            "the session is not running",
        ));
    }
    let sid = parse_uuid(&row.id);
    state.running.remove(sid);
    state
        .live
        .publish(sid, LiveEvent::Stopped { session_id: sid });
    state.live.close(sid);
    Metrics::inc(&state.metrics.sessions_stopped, 1);
    Ok(summary.0)
}

/// At start: this node's sessions still marked running were cut off by a crash. Everything
/// flushed before the crash is kept; the session becomes `interrupted` with a summary.
pub async fn recover_interrupted(state: &AppState) -> anyhow::Result<usize> {
    let store = state.store.clone();
    let node = state.node.clone();
    let n = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let rows = store.running_sessions_of_node(&node)?;
        for row in &rows {
            let last = store
                .last_sample_t(&row.id)?
                .unwrap_or(row.started_at)
                .max(row.started_at);
            let summary = store.compute_summary(&row.id, row.started_at, last)?;
            store.finish_session(&row.id, SessionStatus::Interrupted, last, &summary)?;
        }
        Ok(rows.len())
    })
    .await??;
    Ok(n)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SamplesQuery {
    pub modality: Option<Modality>,
    /// Page size, 1..=10000 (default 1000).
    pub limit: Option<u64>,
    pub offset: Option<u64>,
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
    let (limit, offset) = page_bounds_max(Some(q.limit.unwrap_or(1000)), q.offset, 10_000)?;
    visible_session(&state, &user, id, "read.samples").await?;
    read_your_writes(&state).await?;
    let store = state.store.clone();
    let modality = q.modality.map(modality_code);
    let (rows, total) = web::block(move || {
        store.list_samples(&id.to_string(), modality, limit as i64, offset as i64)
    })
    .await??;
    let items: Vec<Sample> = rows.iter().map(SampleRow::to_api).collect();
    Ok(HttpResponse::Ok().json(page(items, total, limit, offset)))
}

/// Gives samples accepted a moment ago a chance to reach the database before a read, so a
/// client that posts and then lists sees its own samples (bounded wait under heavy ingest).
pub async fn read_your_writes(state: &web::Data<AppState>) -> AppResult<()> {
    let writer = state.writer.clone();
    web::block(move || writer.flush(Duration::from_secs(2))).await?;
    Ok(())
}

/// Checks a batch; the message names the offending sample.
pub fn validate_batch(batch: &SampleBatch, started_at: i64, now: i64) -> Result<(), String> {
    if batch.samples.is_empty() {
        return Err("samples must not be empty".into());
    }
    if batch.samples.len() > MAX_BATCH {
        return Err(format!("at most {MAX_BATCH} samples per request"));
    }
    let mut seen = HashSet::new();
    for (i, s) in batch.samples.iter().enumerate() {
        let t = s.t.timestamp_millis();
        if t < started_at - SKEW_MS {
            return Err(format!("samples[{i}].t is before the session started"));
        }
        if t > now + SKEW_MS {
            return Err(format!("samples[{i}].t lies in the future"));
        }
        if !(0.0..=1.0).contains(&s.confidence) {
            return Err(format!("samples[{i}].confidence must be between 0 and 1"));
        }
        if s.emotion == Emotion::Calm && s.modality != Modality::Voice {
            return Err(format!(
                "samples[{i}]: `calm` exists only for voice estimates (face and fused use 7 classes)"
            ));
        }
        if s.probabilities.values().any(|p| !(0.0..=1.0).contains(p)) {
            return Err(format!(
                "samples[{i}].probabilities must each be between 0 and 1"
            ));
        }
        if !s.probabilities.is_empty() {
            let sum: f64 = s.probabilities.values().sum();
            if (sum - 1.0).abs() > 0.02 {
                return Err(format!("samples[{i}].probabilities sum to {sum:.3}, not 1"));
            }
        }
        if !seen.insert((s.modality, t)) {
            return Err(format!(
                "samples[{i}] repeats the {} estimate at {}",
                s.modality, s.t
            ));
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/sessions/{id}/samples", tag = "sessions",
    params(("id" = Uuid, Path)), request_body = SampleBatch,
    responses((status = 201, body = Accepted), (status = 409, description = "session_not_running", body = emo_api_types::ApiError),
        (status = 422, body = emo_api_types::ApiError), (status = 503, description = "storage_unavailable", body = emo_api_types::ApiError)),
    security(("bearer" = [])))]
pub async fn post_samples(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<SampleBatch>,
) -> AppResult<HttpResponse> {
    let id = parse_id(&path)?;
    let info = running_info(&state, id).await?;
    if info.user_id != user.id {
        return Err(AppError::not_found("session"));
    }
    let batch = body.into_inner();
    validate_batch(&batch, info.started_at, now_ms()).map_err(AppError::invalid)?;
    let rows: Vec<SampleRow> = batch
        .samples
        .iter()
        .map(|s| SampleRow::from_api(id, user.id, s))
        .collect();
    let n = state.writer.submit(rows).map_err(|e| {
        AppError::new(
            ErrorCode::StorageUnavailable,
            format!("the database is unreachable and {e}; nothing was accepted, retry later"),
        )
    })?;
    for s in &batch.samples {
        state.live.publish(
            id,
            LiveEvent::Sample(Sample {
                session_id: id,
                t: s.t,
                modality: s.modality,
                emotion: s.emotion,
                confidence: s.confidence,
                probabilities: s.probabilities.clone(),
            }),
        );
    }
    Ok(HttpResponse::Created().json(Accepted { accepted: n }))
}

/// The running session `id`, from the cache when fresh, else the database; when the database is
/// down a cached entry of any age is used.
async fn running_info(state: &web::Data<AppState>, id: Uuid) -> AppResult<RunningInfo> {
    let cached = state.running.get(id);
    if let Some(c) = cached.filter(|c| c.checked.elapsed() < Duration::from_secs(30)) {
        return Ok(c);
    }
    let store = state.store.clone();
    match web::block(move || store.session(&id.to_string())).await? {
        Ok(Some((row, _))) => {
            if row.status() != SessionStatus::Running {
                state.running.remove(id);
                return Err(AppError::new(
                    ErrorCode::SessionNotRunning,
                    "the session is not running",
                ));
            }
            let info = RunningInfo {
                user_id: parse_uuid(&row.user_id),
                started_at: row.started_at,
                checked: Instant::now(),
            };
            state.running.put(id, info);
            Ok(info)
        }
        Ok(None) => Err(AppError::not_found("session")),
        Err(StoreError::Unavailable(msg)) => match cached {
            Some(c) => Ok(c),
            None => Err(StoreError::Unavailable(msg).into()),
        },
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emo_api_types::SampleIn;
    use std::collections::BTreeMap;

    fn sample(t_ms: i64, modality: Modality, emotion: Emotion, conf: f64) -> SampleIn {
        SampleIn {
            t: DateTime::from_timestamp_millis(t_ms).unwrap(),
            modality,
            emotion,
            confidence: conf,
            probabilities: BTreeMap::new(),
        }
    }

    #[test]
    fn batch_validation_names_the_sample() {
        let ok = SampleBatch {
            samples: vec![sample(1_000_000, Modality::Fused, Emotion::Happy, 0.9)],
        };
        assert!(validate_batch(&ok, 1_000_000, 1_000_000).is_ok());
        let cases = [
            (
                sample(1_000_000, Modality::Fused, Emotion::Happy, 1.5),
                "confidence",
            ),
            (
                sample(1_000_000, Modality::Face, Emotion::Calm, 0.5),
                "calm",
            ),
            (
                sample(
                    1_000_000 + 3 * SKEW_MS,
                    Modality::Fused,
                    Emotion::Happy,
                    0.5,
                ),
                "future",
            ),
            (
                sample(
                    1_000_000 - 3 * SKEW_MS,
                    Modality::Fused,
                    Emotion::Happy,
                    0.5,
                ),
                "before",
            ),
        ];
        for (s, word) in cases {
            let b = SampleBatch {
                samples: vec![sample(1_000_000, Modality::Voice, Emotion::Calm, 0.5), s],
            };
            let err = validate_batch(&b, 1_000_000, 1_000_000).unwrap_err();
            assert!(err.starts_with("samples[1]") && err.contains(word), "{err}");
        }
        let mut p = sample(1_000_000, Modality::Fused, Emotion::Happy, 0.9);
        p.probabilities.insert(Emotion::Happy, 0.5);
        let err = validate_batch(&SampleBatch { samples: vec![p] }, 0, 1_000_000).unwrap_err();
        assert!(err.contains("sum"), "{err}");
        let dup = SampleBatch {
            samples: vec![
                sample(5, Modality::Face, Emotion::Sad, 0.1),
                sample(5, Modality::Face, Emotion::Sad, 0.1),
            ],
        };
        assert!(validate_batch(&dup, 0, 10).unwrap_err().contains("repeats"));
        assert!(validate_batch(&SampleBatch { samples: vec![] }, 0, 0).is_err());
    }

    #[test]
    fn pages() {
        let p = page(vec![1, 2], 5, 2, 0);
        assert_eq!(p.next_offset, Some(2));
        let p = page(vec![5], 5, 2, 4);
        assert_eq!(p.next_offset, None);
        assert!(page_bounds(Some(0), None).is_err());
        assert!(page_bounds(Some(1001), None).is_err());
        assert_eq!(page_bounds(None, Some(3)).unwrap(), (50, 3));
        // An offset that would turn negative as a database integer is a 400, not a 500/panic.
        assert!(page_bounds(None, Some(u64::MAX)).is_err());
        assert!(page_bounds(None, Some(i64::MAX as u64)).is_err());
        assert_eq!(
            page_bounds(None, Some(MAX_OFFSET)).unwrap(),
            (50, MAX_OFFSET)
        );
        assert_eq!(page(vec![1], 10, 1, u64::MAX).next_offset, None);
    }
}
