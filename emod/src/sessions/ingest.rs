//! Samples into storage and onto the live stream: the one path for samples posted over the API
//! and samples produced by this daemon's capture pipeline.
//!
//! A sample is identified by (session, modality, t) and stored once (inserts are idempotent).
//! Ingest remembers the keys each running session already has, so a re-posted sample is
//! answered as a duplicate (`accepted` counts only what will really be stored), never takes a
//! place in the writer queue, and is never published live a second time.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use emo_api_types::{ErrorCode, LiveEvent, Sample, SampleIn};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::live::LiveBus;
use crate::store::rows::modality_code;
use crate::store::writer::{SubmitError, Writer};
use crate::store::{SampleRow, Store, StoreError};

/// The keys of one running session's samples, stored or waiting in the writer.
#[derive(Default)]
struct SessionKeys {
    keys: HashSet<(i16, i64)>,
    /// False until the session's stored keys were loaded from the database (the session may
    /// predate this process); until then only this process's own submissions are known.
    loaded: bool,
}

/// Per running session, the sample keys it holds. Entries go when the session finishes.
#[derive(Default)]
pub struct SeenSamples {
    map: Mutex<HashMap<Uuid, SessionKeys>>,
}

impl SeenSamples {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, SessionKeys>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session is new in this process: nothing of it is stored yet.
    pub fn started(&self, session: Uuid) {
        self.lock().insert(
            session,
            SessionKeys {
                keys: HashSet::new(),
                loaded: true,
            },
        );
    }

    pub fn forget(&self, session: Uuid) {
        self.lock().remove(&session);
    }

    fn is_loaded(&self, session: Uuid) -> bool {
        self.lock().get(&session).is_some_and(|k| k.loaded)
    }
}

/// Outcome of a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    /// New samples queued for storage (and published live).
    pub accepted: usize,
    /// Samples the session already had: not stored again, not published again.
    pub duplicates: usize,
}

/// Cheap to clone; the capture pipeline keeps one on its own thread.
#[derive(Clone)]
pub struct Ingest {
    pub writer: Writer,
    pub live: Arc<LiveBus>,
    pub store: Store,
    pub seen: Arc<SeenSamples>,
}

impl Ingest {
    /// Makes sure the session's stored keys are known (a database read, once per session and
    /// process; blocking). When the database is unreachable this is retried at the next
    /// submission, and meanwhile only this process's own submissions count as duplicates (the
    /// database still stores every sample once).
    pub fn load_keys(&self, session: Uuid) {
        if self.seen.is_loaded(session) {
            return;
        }
        let stored = match self.store.sample_keys(&session.to_string()) {
            Ok(k) => k,
            Err(StoreError::Unavailable(e)) => {
                tracing::warn!(%session, "stored sample keys not loaded, the database is unreachable: {e}");
                return;
            }
            Err(e) => {
                tracing::warn!(%session, "stored sample keys not loaded: {e}");
                return;
            }
        };
        let mut map = self.seen.lock();
        let entry = map.entry(session).or_default();
        entry.keys.extend(stored);
        entry.loaded = true;
    }

    /// Queue already validated samples for the database (through the outage spool) and
    /// publish them live; samples the session already has are counted, not queued. Nothing is
    /// accepted when the spool is full (503) or this user's quota is used up (429).
    pub fn submit(&self, session: Uuid, user: Uuid, samples: &[SampleIn]) -> AppResult<Submitted> {
        let mut map = self.seen.lock();
        let known = map.entry(session).or_default();
        let mut fresh: Vec<&SampleIn> = Vec::with_capacity(samples.len());
        let mut batch_keys = HashSet::with_capacity(samples.len());
        for s in samples {
            let key = (modality_code(s.modality), s.t.timestamp_millis());
            if !known.keys.contains(&key) && batch_keys.insert(key) {
                fresh.push(s);
            }
        }
        let duplicates = samples.len() - fresh.len();
        if fresh.is_empty() {
            return Ok(Submitted {
                accepted: 0,
                duplicates,
            });
        }
        let rows: Vec<SampleRow> = fresh
            .iter()
            .map(|s| SampleRow::from_api(session, user, s))
            .collect();
        // The keys are remembered only once the writer took the rows, under the same lock, so
        // two concurrent posts of one sample accept it exactly once.
        let n = self.writer.submit(rows).map_err(|e| match e {
            SubmitError::UserQuota { .. } => AppError::new(
                ErrorCode::TooManyRequests,
                format!("{e}; nothing was accepted, retry after a few seconds"),
            ),
            SubmitError::SpoolFull(e) => AppError::new(
                ErrorCode::StorageUnavailable,
                format!("the database is unreachable and {e}; nothing was accepted, retry later"),
            ),
        })?;
        known.keys.extend(batch_keys);
        drop(map);
        for s in fresh {
            self.live.publish(
                session,
                LiveEvent::Sample(Sample {
                    session_id: session,
                    t: s.t,
                    modality: s.modality,
                    emotion: s.emotion,
                    confidence: s.confidence,
                    probabilities: s.probabilities.clone(),
                }),
            );
        }
        Ok(Submitted {
            accepted: n,
            duplicates,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_sessions_count_as_loaded_and_forget_drops_them() {
        let seen = SeenSamples::default();
        let id = Uuid::now_v7();
        assert!(!seen.is_loaded(id));
        seen.started(id);
        assert!(seen.is_loaded(id));
        seen.forget(id);
        assert!(!seen.is_loaded(id));
    }
}
