//! The sessions running on this daemon and the gate each one's posts pass (the session
//! service's own bookkeeping, held by [`crate::state::AppState`]; below both).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

#[derive(Debug, Clone, Copy)]
pub struct RunningInfo {
    pub user_id: Uuid,
    pub started_at: i64,
    pub(super) checked: Instant,
}

/// Sessions known to be running, so sample ingest needs no database round trip and keeps
/// working while the database is down.
#[derive(Default)]
pub struct RunningSessions {
    map: Mutex<HashMap<Uuid, RunningInfo>>,
    gates: Mutex<HashMap<Uuid, Gate>>,
}

/// Posts queuing a batch for a session, and whether it is stopping: a stop waits for the posts
/// already queuing (their samples are flushed into its summary) and refuses later ones (409),
/// so a batch answered 201 is always in the summary.
#[derive(Default)]
struct Gate {
    stopping: bool,
    posting: usize,
}

/// A post's permission to queue samples for a running session (see [`Gate`]).
pub struct PostPass<'a> {
    sessions: &'a RunningSessions,
    id: Uuid,
}

impl Drop for PostPass<'_> {
    fn drop(&mut self) {
        if let Some(g) = self.sessions.gates().get_mut(&self.id) {
            g.posting = g.posting.saturating_sub(1);
        }
    }
}

impl RunningSessions {
    fn gates(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Gate>> {
        self.gates.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A pass to queue samples for `id`; `None` when it stops or is no longer running here.
    pub(super) fn enter(&self, id: Uuid) -> Option<PostPass<'_>> {
        let mut gates = self.gates();
        self.get(id)?;
        let g = gates.entry(id).or_default();
        if g.stopping {
            return None;
        }
        g.posting += 1;
        Some(PostPass { sessions: self, id })
    }

    /// `id` starts stopping: no new pass is given, and this returns once the posts holding one
    /// have queued their samples.
    pub(super) async fn close_gate(&self, id: Uuid) {
        self.gates().entry(id).or_default().stopping = true;
        while self.gates().get(&id).is_some_and(|g| g.posting > 0) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The stop failed: posts are taken again.
    pub(super) fn reopen_gate(&self, id: Uuid) {
        if let Some(g) = self.gates().get_mut(&id) {
            g.stopping = false;
        }
    }

    pub(super) fn get(&self, id: Uuid) -> Option<RunningInfo> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied()
    }
    pub(super) fn put(&self, id: Uuid, info: RunningInfo) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, info);
    }
    pub(super) fn remove(&self, id: Uuid) {
        let mut gates = self.gates();
        gates.remove(&id);
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}
