//! The session service: start (with consent, and with capture when the session asks for this
//! daemon's camera or microphone), stop, finish, recovery after a crash, the set of running
//! sessions, and sample ingest. HTTP handlers and the capture watch both call it; nothing here
//! knows about HTTP. It works on [`Sessions`], the parts of the daemon it uses (borrowed; built by
//! `AppState::sessions`), not on the whole state, and it answers with the domain error
//! [`AppError`] that `api/error_response.rs` maps to HTTP.

pub mod running;
pub mod validate;
pub mod watch;

use std::time::{Duration, Instant};

use emo_api_types::{
    EndReason, ErrorCode, LiveEvent, SampleBatch, SessionStatus, SessionSummary, StartSession,
};
use uuid::Uuid;

use std::sync::Arc;

use crate::audit::Audit;
use crate::auth::{AuthUser, LoginThrottle};
use crate::capture::{CaptureManager, CaptureRequest, Reservation};
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::ingest::{Ingest, SeenSamples};
use crate::live::LiveBus;
use crate::metrics::Metrics;
use crate::shared_engine::SharedEngine;
use crate::store::sessions::SessionFilter;
use crate::store::writer::Writer;
use crate::store::{now_ms, parse_uuid, SessionRow, Store, StoreError};
use emo_api_types::SessionSource;
pub use running::{RunningInfo, RunningSessions};
use validate::{EARLIEST_MS, SKEW_MS};

/// What the session service uses, borrowed from the daemon's state for one call.
pub struct Sessions<'a> {
    pub config: &'a Config,
    pub store: &'a Store,
    pub writer: &'a Writer,
    pub live: &'a Arc<LiveBus>,
    pub running: &'a RunningSessions,
    pub capture: &'a CaptureManager,
    pub engine: &'a SharedEngine,
    pub metrics: &'a Arc<Metrics>,
    pub seen: &'a Arc<SeenSamples>,
    /// For the per-user bound on backdated starts.
    pub throttle: &'a LoginThrottle,
    /// This daemon's `server.node_name`: the sessions it recovers after a crash are its own.
    pub node: &'a String,
}

impl Sessions<'_> {
    /// The ingest path (writer + live bus) for posted samples and the capture pipeline alike.
    pub fn ingest(&self) -> Ingest {
        Ingest {
            writer: self.writer.clone(),
            live: self.live.clone(),
            store: self.store.clone(),
            seen: self.seen.clone(),
        }
    }

    fn audit(&self) -> Audit<'_> {
        Audit {
            store: self.store,
            metrics: self.metrics,
            config: self.config,
        }
    }
}

/// Each backdated start writes an audit row: bounded per user and hour
/// (`auth.max_backdated_sessions_per_hour`), checked before anything is opened.
fn limit_backdated(svc: &Sessions<'_>, user: &AuthUser) -> AppResult<()> {
    // Each backdated start writes an audit row: bounded per user, before anything is done.
    svc
        .throttle
        .backdated_attempt(
            user.id,
            svc.config.auth.max_backdated_sessions_per_hour,
            std::time::Duration::from_secs(3600),
        )
        .map_err(|retry_after| AppError::Limited {
            message: format!(
                "too many backdated session starts in the last hour (auth.max_backdated_sessions_per_hour = {}); try again in {retry_after} s",
                svc.config.auth.max_backdated_sessions_per_hour
            ),
            retry_after,
        })?;
    Ok(())
}

/// The sources a start request names, checked; empty = the configured capture sources.
fn requested_sources(svc: &Sessions<'_>, sources: &[String]) -> AppResult<Vec<SessionSource>> {
    if sources.len() > 16 {
        return Err(AppError::invalid("at most 16 sources"));
    }
    let mut out: Vec<SessionSource> = Vec::new();
    for s in sources {
        let src: SessionSource = s.parse().map_err(AppError::invalid)?;
        if !out.contains(&src) {
            out.push(src);
        }
    }
    if out.contains(&SessionSource::Remote) && out.len() > 1 {
        return Err(AppError::invalid(
            "`remote` (samples posted over the API) cannot be combined with camera or microphone",
        ));
    }
    if out.is_empty() {
        out = svc.config.capture.default_sources();
    }
    Ok(out)
}

/// Start a session for `user` with consent. Capture sources are opened before the session is
/// stored, so a source that cannot be opened starts nothing (409 `source_unavailable`), and a
/// second capturing session on this daemon gets 409 `capture_busy`.
pub async fn start(
    svc: &Sessions<'_>,
    user: &AuthUser,
    body: StartSession,
) -> AppResult<SessionRow> {
    if !body.consent {
        return Err(AppError::new(
            ErrorCode::ConsentRequired,
            "starting a session needs the agent's explicit consent: send \"consent\": true",
        ));
    }
    let now = now_ms();
    let started_at = started_at(svc, &body, now)?;
    validate::text("label", body.label.as_deref().unwrap_or(""), 200)?;
    let sources = requested_sources(svc, &body.sources)?;
    let capture: Vec<SessionSource> = sources
        .iter()
        .copied()
        .filter(|s| *s != SessionSource::Remote)
        .collect();
    if !capture.is_empty() && body.started_at.is_some() {
        return Err(AppError::invalid(
            "started_at is for uploads of earlier recordings; a capturing session starts now",
        ));
    }
    if body.started_at.is_some() {
        limit_backdated(svc, user)?;
    }
    refuse_second_session(svc, user).await?;
    let id = Uuid::now_v7();
    // Devices first: nothing is stored for a session that cannot capture.
    let reservation = if capture.is_empty() {
        None
    } else {
        let req = CaptureRequest {
            session: id,
            user: user.id,
            sources: capture,
        };
        Some(svc.capture.open(req, svc.config).await?)
    };
    if let Some(t) = body.started_at {
        // Uploads of earlier recordings are allowed but visible: who dated which session back.
        svc.audit()
            .record(
                user,
                "session.backdated",
                Some(user.username.clone()),
                format!("session={id} started_at={}", t.to_rfc3339()),
            )
            .await?;
    }
    let row = SessionRow {
        id: id.to_string(),
        user_id: user.id.to_string(),
        node: svc.node.clone(),
        status: SessionStatus::Running.as_str().into(),
        started_at,
        ended_at: None,
        consent_at: now,
        sources: serde_json::to_string(&sources.iter().map(|s| s.as_str()).collect::<Vec<_>>())
            .unwrap_or_else(|_| "[]".into()),
        label: body.label,
        summary: None,
        dominant: None,
    };
    insert_running(svc, &row).await?;
    go_live(svc, user, id, started_at, reservation);
    tracing::info!(session = %id, user = %user.username, sources = ?sources, "session started with consent");
    Ok(row)
}

/// When the session began (milliseconds): now, or for an upload of an earlier recording the
/// `started_at` it names, which may lie neither in the future nor further back than
/// `privacy.max_backdate_hours`.
fn started_at(svc: &Sessions<'_>, body: &StartSession, now: i64) -> AppResult<i64> {
    let max_age_ms = svc.config.privacy.max_backdate_hours as i64 * 3_600_000;
    match body.started_at {
        Some(t) if t.timestamp_millis() > now + SKEW_MS => {
            Err(AppError::invalid("started_at lies in the future"))
        }
        Some(t) if t.timestamp_millis() < EARLIEST_MS => {
            Err(AppError::invalid("started_at lies before 2000-01-01"))
        }
        Some(t) if t.timestamp_millis() < now - max_age_ms => Err(AppError::invalid(format!(
            "started_at lies more than {} hours in the past (privacy.max_backdate_hours)",
            svc.config.privacy.max_backdate_hours
        ))),
        Some(t) => Ok(t.timestamp_millis()),
        None => Ok(now),
    }
}

/// 409 `session_already_running` when `user` has a running session.
async fn refuse_second_session(svc: &Sessions<'_>, user: &AuthUser) -> AppResult<()> {
    let store = svc.store.clone();
    let uid = user.id.to_string();
    let running = crate::blocking(move || {
        store.list_sessions(&SessionFilter {
            user_id: Some(uid),
            status: Some(SessionStatus::Running),
            limit: 1,
            ..Default::default()
        })
    })
    .await??;
    match running.0.first() {
        Some((existing, _)) => Err(AppError::new(
            ErrorCode::SessionAlreadyRunning,
            format!("session {} is still running; stop it first", existing.id),
        )),
        None => Ok(()),
    }
}

/// Store the new running session; a concurrent start of the same user that got there first is
/// 409 `session_already_running`.
async fn insert_running(svc: &Sessions<'_>, row: &SessionRow) -> AppResult<()> {
    let store = svc.store.clone();
    let insert = row.clone();
    match crate::blocking(move || store.insert_session(&insert)).await? {
        Ok(()) => Ok(()),
        // Lost a race with a concurrent start: the unique index allows one running session.
        Err(StoreError::Conflict(_)) => Err(AppError::new(
            ErrorCode::SessionAlreadyRunning,
            "another session of this user is already running; stop it first",
        )),
        Err(e) => Err(e.into()),
    }
}

/// A stored session starts taking samples: the running set knows it, and its capture (if any)
/// starts feeding it.
fn go_live(
    svc: &Sessions<'_>,
    user: &AuthUser,
    id: Uuid,
    started_at: i64,
    reservation: Option<Reservation>,
) {
    svc.running.put(
        id,
        RunningInfo {
            user_id: user.id,
            started_at,
            checked: Instant::now(),
        },
    );
    svc.seen.started(id);
    if let Some(r) = reservation {
        svc.capture.run(
            r,
            svc.ingest(),
            svc.engine.clone(),
            svc.metrics.clone(),
            svc.config,
        );
    }
    Metrics::inc(&svc.metrics.sessions_started, 1);
}

/// Loads a session the caller may see: agents get 404 for sessions that are not theirs; admins
/// reading another user's session are audited.
pub async fn visible(
    svc: &Sessions<'_>,
    user: &AuthUser,
    id: Uuid,
    action: &str,
) -> AppResult<(SessionRow, String)> {
    let store = svc.store.clone();
    let (row, owner) = crate::blocking(move || store.session(&id.to_string()))
        .await??
        .ok_or_else(|| AppError::not_found("session"))?;
    if parse_uuid(&row.user_id)? != user.id {
        if !user.is_admin() {
            return Err(AppError::not_found("session"));
        }
        svc.audit()
            .record(user, action, Some(owner.clone()), format!("session={id}"))
            .await?;
    }
    Ok((row, owner))
}

/// Stop a running session: capture (if any) is drained first, then every pending sample is
/// flushed and the summary stored.
pub async fn stop(
    svc: &Sessions<'_>,
    row: &SessionRow,
    ended_at: Option<i64>,
) -> AppResult<SessionRow> {
    stop_because(svc, row, ended_at, EndReason::Requested).await
}

/// [`stop`], recording why the session ended in its summary.
pub async fn stop_because(
    svc: &Sessions<'_>,
    row: &SessionRow,
    ended_at: Option<i64>,
    reason: EndReason,
) -> AppResult<SessionRow> {
    if row.status()? != SessionStatus::Running {
        return Err(AppError::new(
            ErrorCode::SessionNotRunning,
            "the session is not running",
        ));
    }
    let now = now_ms();
    let sid = parse_uuid(&row.id)?;
    if let Some(t) = ended_at {
        // The daemon's clock decides when "now" is (one second for rounding).
        if t < row.started_at || t > now + 1000 {
            return Err(AppError::invalid(
                "ended_at must lie between the session start and now",
            ));
        }
    }
    // Posts already queuing a batch finish (their samples go into the summary), later ones get
    // 409 `session_not_running`.
    svc.running.close_gate(sid).await;
    svc.capture.stop(sid).await;
    // Without an explicit end the session ends once its capture is drained: the last windows
    // the drain emitted lie before it (samples after `ended_at` are never stored).
    let ended_at = ended_at.unwrap_or_else(|| now_ms().max(row.started_at));
    let summary = match finish(svc, row, SessionStatus::Stopped, ended_at, Some(reason)).await {
        Ok(s) => s,
        Err(e) => {
            svc.running.reopen_gate(sid);
            return Err(e);
        }
    };
    let mut stopped = row.clone();
    stopped.status = SessionStatus::Stopped.as_str().into();
    stopped.ended_at = Some(ended_at);
    stopped.summary = serde_json::to_string(&summary).ok();
    tracing::info!(session = %sid, reason = %reason, "session stopped");
    Ok(stopped)
}

/// Flushes the session's pending samples, stores the summary and closes the session.
async fn finish(
    svc: &Sessions<'_>,
    row: &SessionRow,
    status: SessionStatus,
    ended_at: i64,
    reason: Option<EndReason>,
) -> AppResult<SessionSummary> {
    // Only this session's user's samples are waited for: another user's backlog (bounded by
    // writer.user_quota) must not make this stop time out.
    let writer = svc.writer.clone();
    let owner = row.user_id.clone();
    let flushed =
        crate::blocking(move || writer.flush_user(&owner, Duration::from_secs(15))).await?;
    if !flushed {
        return Err(AppError::new(
            ErrorCode::StorageUnavailable,
            "samples are still waiting for the database; try stopping again shortly",
        ));
    }
    let store = svc.store.clone();
    let (id, started) = (row.id.clone(), row.started_at);
    let (summary, done) = crate::blocking(move || -> Result<_, StoreError> {
        let mut summary = store.compute_summary(&id, started, ended_at)?;
        summary.end_reason = reason;
        let done = store.finish_session(&id, status, ended_at, &summary)?;
        Ok((summary, done))
    })
    .await??;
    if !done {
        return Err(AppError::new(
            ErrorCode::SessionNotRunning,
            "the session is not running",
        ));
    }
    let sid = parse_uuid(&row.id)?;
    forget_running(svc, sid);
    Metrics::inc(&svc.metrics.sessions_stopped, 1);
    Ok(summary)
}

/// This daemon no longer takes samples for `sid` (stopped here or elsewhere): it leaves the
/// running set, and its live streams get `stopped` and close.
fn forget_running(svc: &Sessions<'_>, sid: Uuid) {
    svc.running.remove(sid);
    svc.seen.forget(sid);
    svc.live
        .publish(sid, LiveEvent::Stopped { session_id: sid });
    svc.live.close(sid);
}

/// At start: this node's sessions still marked running were cut off by a crash. Everything
/// flushed before the crash is kept; the session becomes `interrupted` with a summary.
pub async fn recover_interrupted(svc: &Sessions<'_>) -> anyhow::Result<usize> {
    let store = svc.store.clone();
    let node = svc.node.clone();
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

/// Lets samples accepted a moment ago reach the database before a read, so a client that posts
/// and then lists or exports sees its own samples. When they cannot be written within 2 s (the
/// database is down or refuses the writer, or the writer is still replaying a spool after an
/// outage), the read fails with 503 `storage_unavailable` instead of silently returning data
/// without them: an export that looks complete but is not is worse than a retry.
///
/// A read waits only for the samples of its own scope (`Some(user)`: that user's; `None`, an
/// admin's read of everyone: all): another user posting large batches in a loop does not make
/// it wait, or fail (issue 28, item 4: before, all 12 of a reader's requests got 503 while
/// someone else posted 10,000-sample batches).
pub async fn read_your_writes(svc: &Sessions<'_>, scope: Option<Uuid>) -> AppResult<()> {
    let writer = svc.writer.clone();
    let wait = Duration::from_secs(2);
    let written = crate::blocking(move || match scope {
        Some(user) => writer.flush_user(&user.to_string(), wait),
        None => writer.flush(wait),
    })
    .await?;
    if !written {
        return Err(crate::store::StoreError::Unavailable(
            "samples accepted earlier are not written yet; retry shortly".into(),
        )
        .into());
    }
    Ok(())
}

/// Validate and ingest a batch posted by the session's owner.
pub async fn post_samples(
    svc: &Sessions<'_>,
    user: &AuthUser,
    id: Uuid,
    batch: &SampleBatch,
) -> AppResult<crate::ingest::Submitted> {
    let info = running_info(svc, id).await?;
    if info.user_id != user.id {
        return Err(AppError::not_found("session"));
    }
    if svc.capture.is_capturing(id) {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "this session's samples come from the daemon's own capture; it takes no posted samples",
        ));
    }
    validate::validate_batch(batch, info.started_at, now_ms()).map_err(AppError::invalid)?;
    let ingest = svc.ingest();
    let loader = ingest.clone();
    crate::blocking(move || loader.load_keys(id)).await?;
    let Some(_pass) = svc.running.enter(id) else {
        return Err(AppError::new(
            ErrorCode::SessionNotRunning,
            "the session is stopping or stopped; nothing was accepted",
        ));
    };
    ingest.submit(id, user.id, &batch.samples)
}

/// How long a cached "running" answer is trusted: a session stopped through another daemon
/// sharing the database refuses posted samples here at most this long after.
const RUNNING_FRESH: Duration = Duration::from_secs(2);

/// The running session `id`, from the cache when fresh, else the database; when the database is
/// down a cached entry of any age is used.
pub async fn running_info(svc: &Sessions<'_>, id: Uuid) -> AppResult<RunningInfo> {
    let cached = svc.running.get(id);
    if let Some(c) = cached.filter(|c| c.checked.elapsed() < RUNNING_FRESH) {
        return Ok(c);
    }
    let store = svc.store.clone();
    match crate::blocking(move || store.session(&id.to_string())).await? {
        Ok(Some((row, _))) => {
            if row.status()? != SessionStatus::Running {
                svc.running.remove(id);
                return Err(AppError::new(
                    ErrorCode::SessionNotRunning,
                    "the session is not running",
                ));
            }
            let info = RunningInfo {
                user_id: parse_uuid(&row.user_id)?,
                started_at: row.started_at,
                checked: Instant::now(),
            };
            svc.running.put(id, info);
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
