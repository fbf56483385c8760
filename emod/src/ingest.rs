//! Samples into storage and onto the live stream: the one path for samples posted over the API
//! and samples produced by this daemon's capture pipeline.
//!
//! A sample is identified by (session, modality, t) and stored once (inserts are idempotent).
//! Ingest remembers the keys each running session already has, so a re-posted sample is
//! answered as a duplicate (`accepted` counts only what will really be stored), never takes a
//! place in the writer queue, and is never published live a second time.
//!
//! Density (issue 28, item 6): a real session makes about one estimate per modality per second
//! (remote clients at most one per video frame). Two samples of one modality closer than
//! [`MIN_SPACING_MS`] (in one batch, or a batch and what the session already has) refuse the
//! batch with 422: a backdated session took 5.77 M samples in 60 s before. The keys remembered per
//! session are bounded ([`MAX_SESSION_KEYS`], the newest kept): a re-post of a sample older than
//! those is not recognised here, but the store's key still keeps it from being stored twice.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use emo_api_types::{ErrorCode, LiveEvent, Sample, SampleIn};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::live::LiveBus;
use crate::store::rows::modality_code;
use crate::store::writer::{SubmitError, Writer};
use crate::store::{SampleRow, Store, StoreError};

/// Closest two samples of one modality may be, in milliseconds (10 per second: a video frame rate).
pub const MIN_SPACING_MS: i64 = 100;
/// Most sample keys remembered per session (an 8-hour session at 1/s × 3 modalities is 86,400;
/// each key costs ~40 bytes, so at most ~10 MB per session).
pub const MAX_SESSION_KEYS: usize = 262_144;

/// A key of `modality` other than `t` itself within [`MIN_SPACING_MS`] of `t`.
fn crowded(keys: &BTreeSet<(i64, i16)>, modality: i16, t: i64) -> Option<i64> {
    let lo = t.saturating_sub(MIN_SPACING_MS - 1);
    let hi = t.saturating_add(MIN_SPACING_MS - 1);
    keys.range((lo, i16::MIN)..=(hi, i16::MAX))
        .find(|(u, m)| *m == modality && *u != t)
        .map(|(u, _)| *u)
}

/// The keys of one running session's samples, stored or waiting in the writer, as (t, modality):
/// ordered by time, so that neighbours in time and the oldest are cheap to find.
#[derive(Default)]
struct SessionKeys {
    keys: BTreeSet<(i64, i16)>,
    /// False until the session's stored keys were loaded from the database (the session may
    /// predate this process); until then only this process's own submissions are known.
    loaded: bool,
}

impl SessionKeys {
    /// Remember `keys`; past [`MAX_SESSION_KEYS`] the oldest quarter is forgotten.
    fn remember(&mut self, keys: impl IntoIterator<Item = (i64, i16)>) {
        self.keys.extend(keys);
        if self.keys.len() > MAX_SESSION_KEYS {
            let cut = *self
                .keys
                .iter()
                .nth(self.keys.len() - MAX_SESSION_KEYS * 3 / 4)
                .expect("longer than the bound");
            self.keys = self.keys.split_off(&cut);
        }
    }
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
                keys: BTreeSet::new(),
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
        let stored = match self
            .store
            .sample_keys(&session.to_string(), MAX_SESSION_KEYS)
        {
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
        entry.remember(stored.into_iter().map(|(m, t)| (t, m)));
        entry.loaded = true;
    }

    /// Queue already validated samples for the database (through the outage spool) and
    /// publish them live; samples the session already has are counted, not queued. Nothing is
    /// accepted when the spool is full (503) or this user's quota is used up (429).
    pub fn submit(&self, session: Uuid, user: Uuid, samples: &[SampleIn]) -> AppResult<Submitted> {
        let mut map = self.seen.lock();
        let known = map.entry(session).or_default();
        let mut fresh: Vec<&SampleIn> = Vec::with_capacity(samples.len());
        let mut batch_keys = BTreeSet::new();
        for (i, s) in samples.iter().enumerate() {
            let (m, t) = (modality_code(s.modality), s.t.timestamp_millis());
            if known.keys.contains(&(t, m)) || batch_keys.contains(&(t, m)) {
                continue;
            }
            let near = crowded(&known.keys, m, t).or_else(|| crowded(&batch_keys, m, t));
            if let Some(u) = near {
                return Err(AppError::invalid(format!(
                    "samples[{i}]: a {} estimate {} ms from another of this session; at most one per {MIN_SPACING_MS} ms per modality",
                    s.modality,
                    (t - u).abs()
                )));
            }
            batch_keys.insert((t, m));
            fresh.push(s);
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
        known.remember(batch_keys);
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
    fn neighbours_within_the_spacing_of_the_same_modality_crowd() {
        let keys: BTreeSet<(i64, i16)> = [(1_000, 0), (1_000, 1), (2_000, 0)].into();
        assert_eq!(crowded(&keys, 0, 1_099), Some(1_000));
        assert_eq!(crowded(&keys, 0, 901), Some(1_000));
        assert_eq!(crowded(&keys, 0, 1_100), None, "100 ms apart is allowed");
        assert_eq!(
            crowded(&keys, 2, 1_050),
            None,
            "another modality does not count"
        );
        assert_eq!(
            crowded(&keys, 0, 1_000),
            None,
            "the same key is a duplicate, not a neighbour"
        );
        assert_eq!(crowded(&keys, 0, i64::MAX), None);
    }

    #[test]
    fn remembered_keys_are_bounded_and_the_newest_kept() {
        let mut k = SessionKeys::default();
        k.remember((0..MAX_SESSION_KEYS as i64 + 1).map(|t| (t * 100, 0)));
        assert!(k.keys.len() <= MAX_SESSION_KEYS, "{}", k.keys.len());
        assert!(k.keys.len() >= MAX_SESSION_KEYS / 2);
        assert!(k.keys.contains(&(MAX_SESSION_KEYS as i64 * 100, 0)));
        assert!(!k.keys.contains(&(0, 0)));
    }

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
