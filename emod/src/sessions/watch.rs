//! The capturing session's watch: a daemon learns within about a second that the session it
//! captures for has ended elsewhere, or must end.
//!
//! Once a second (`CHECK_EVERY`) the daemon that captures reads its capturing session's row and
//! its user's row (two primary-key reads; at most one capturing session per daemon). Then:
//!
//! * the session is no longer `running` (stopped through another daemon sharing PostgreSQL, or
//!   by anything else that wrote the database): the sources are stopped and the session leaves
//!   this daemon's running set, its live streams get `stopped`;
//! * the user is disabled (`emod user disable` on any machine, or the API on any daemon): the
//!   session is stopped here with reason `user_disabled`;
//! * every source has ended (`file:` sources played out) and `capture.stop_when_sources_end`
//!   is on: the session is stopped with reason `sources_ended`.
//!
//! Why a periodic read rather than PostgreSQL `LISTEN/NOTIFY`: it works the same on SQLite,
//! where the other writer is the `emod` command line (`user disable`) on the same file; it needs
//! no connection held open per daemon and misses nothing while the database or the connection
//! was away (a notification sent while a listener reconnects is lost, a row is not); and it
//! notices every writer, including older daemons and SQL run by hand, which send no
//! notification. The cost is two indexed reads per second on a daemon that captures, none on
//! one that does not. When the database cannot be read, capture goes on (the samples wait in
//! the writer's spool) and the next tick checks again.
//!
//! Samples the pipeline emits between the stop elsewhere and this daemon noticing it are not
//! stored: the store refuses every sample after its session's `ended_at`
//! (`store::samples::insert_samples`).

use std::time::Duration;

use emo_api_types::{EndReason, SessionStatus};
use uuid::Uuid;

use super::Sessions;
use crate::store::StoreError;

/// How often the capturing session is checked (by a task `serve` runs for the daemon's life).
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// One check of the capturing session (nothing to do when this daemon does not capture).
pub async fn check_once(svc: &Sessions<'_>) {
    let Some(c) = svc.capture.capturing() else {
        return;
    };
    let store = svc.store.clone();
    let (sid, uid) = (c.session.to_string(), c.user.to_string());
    let read = crate::blocking(move || -> Result<_, StoreError> {
        Ok((store.session(&sid)?, store.user_by_id(&uid)?))
    })
    .await;
    let (session, user) = match read {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            tracing::debug!(session = %c.session, "capture watch: database not read: {e}");
            return;
        }
        Err(e) => {
            tracing::warn!(session = %c.session, "capture watch failed: {e}");
            return;
        }
    };
    let row = match session {
        Some((row, _)) if row.status == SessionStatus::Running.as_str() => row,
        _ => return ended_elsewhere(svc, c.session).await,
    };
    let reason = if user.is_none_or(|u| u.disabled) {
        EndReason::UserDisabled
    } else if c.sources_ended && svc.config.capture.stop_when_sources_end {
        EndReason::SourcesEnded
    } else {
        return;
    };
    match super::stop_because(svc, &row, None, reason).await {
        Ok(_) => {}
        // Stopped meanwhile by a request: its stop did the work.
        Err(e) if e.code() == emo_api_types::ErrorCode::SessionNotRunning => {}
        Err(e) => tracing::warn!(session = %c.session, %reason, "stopping the session failed: {e}"),
    }
}

/// The session was stopped elsewhere: stop its sources here (the drained windows lie after its
/// end and are not stored) and forget it.
async fn ended_elsewhere(svc: &Sessions<'_>, sid: Uuid) {
    svc.capture.stop(sid).await;
    super::forget_running(svc, sid);
    tracing::info!(session = %sid, "the session was stopped elsewhere; its capture stopped");
}
