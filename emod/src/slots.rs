//! Bounded long-lived responses (issue 28, items 3 and 8): how many live streams and exports one
//! user, and everybody together, may hold open. Each open one holds a [`Slot`]; dropping it (the
//! stream ends, the client leaves) gives the place back. Past a limit the request gets 429
//! `too_many_attempts` at once, before any work, so idle readers cannot take every file
//! descriptor or pin unbounded export buffers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::error::AppError;

/// Seconds a refused client is told to wait.
const RETRY_AFTER: u64 = 5;

#[derive(Default)]
struct Counts {
    total: usize,
    per_user: HashMap<Uuid, usize>,
}

/// One kind of bounded response (live streams, exports).
pub struct Slots {
    what: &'static str,
    per_user: usize,
    total: usize,
    counts: Arc<Mutex<Counts>>,
}

/// A place held until dropped.
pub struct Slot {
    user: Uuid,
    counts: Arc<Mutex<Counts>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_user.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_user.remove(&self.user);
            }
        }
    }
}

impl Slots {
    /// At most `per_user` open for one user and `total` for everybody (0 = no limit).
    pub fn new(what: &'static str, per_user: usize, total: usize) -> Self {
        Slots {
            what,
            per_user: if per_user == 0 { usize::MAX } else { per_user },
            total: if total == 0 { usize::MAX } else { total },
            counts: Arc::default(),
        }
    }

    /// A place for `user`, or 429 saying which limit was reached.
    pub fn take(&self, user: Uuid) -> Result<Slot, AppError> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mine = c.per_user.get(&user).copied().unwrap_or(0);
        if mine >= self.per_user || c.total >= self.total {
            let whose = if mine >= self.per_user {
                format!("you have {mine} open")
            } else {
                format!("the daemon has {} open", c.total)
            };
            return Err(AppError::Limited {
                message: format!(
                    "too many {} at once: {whose}; close one or retry later",
                    self.what
                ),
                retry_after: RETRY_AFTER,
            });
        }
        c.total += 1;
        *c.per_user.entry(user).or_insert(0) += 1;
        Ok(Slot {
            user,
            counts: self.counts.clone(),
        })
    }

    /// The live-stream and export places of `[server]`, the live total lowered to keep
    /// [`DESCRIPTOR_RESERVE`] descriptors free under this process's open-files limit.
    pub fn from_config(server: &crate::config::ServerConfig) -> (Slots, Slots) {
        let files = open_files_limit();
        let live = live_total(server.max_live_streams, files);
        if live < server.max_live_streams || server.max_live_streams == 0 {
            tracing::warn!(
                live,
                open_files = ?files,
                "server.max_live_streams lowered to keep {DESCRIPTOR_RESERVE} descriptors free under the open-files limit"
            );
        }
        (
            Slots::new("live streams", server.max_live_streams_per_user, live),
            Slots::new("exports", server.max_exports_per_user, server.max_exports),
        )
    }

    /// Open now (for metrics and tests).
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

/// The soft limit on open files of this process (`/proc/self/limits`), when it can be read.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Descriptors kept for everything but live streams (API requests, the database, capture,
/// ffmpeg children, logs).
pub const DESCRIPTOR_RESERVE: u64 = 256;

/// `wanted` live streams in all, lowered so that [`DESCRIPTOR_RESERVE`] descriptors stay free
/// under a soft open-files limit `limit` (each stream holds one socket).
pub fn live_total(wanted: usize, limit: Option<u64>) -> usize {
    match limit {
        Some(l) => {
            let room = l.saturating_sub(DESCRIPTOR_RESERVE).max(1) as usize;
            if wanted == 0 {
                room
            } else {
                wanted.min(room)
            }
        }
        None => wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_per_user_and_in_all_and_given_back_on_drop() {
        let s = Slots::new("exports", 2, 3);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let a1 = s.take(a).unwrap();
        let _a2 = s.take(a).unwrap();
        let e = s.take(a).err().unwrap();
        assert_eq!(e.code(), emo_api_types::ErrorCode::TooManyAttempts);
        let _b1 = s.take(b).unwrap();
        assert!(s.take(b).is_err(), "the total is reached");
        drop(a1);
        assert_eq!(s.open(), 2);
        let _b2 = s.take(b).unwrap();
        assert_eq!(s.open(), 3);
    }

    #[test]
    fn live_streams_leave_a_descriptor_reserve() {
        assert_eq!(live_total(512, Some(1024)), 512);
        assert_eq!(live_total(2048, Some(1024)), 768);
        assert_eq!(live_total(0, Some(1024)), 768);
        assert_eq!(live_total(512, None), 512);
        assert_eq!(live_total(512, Some(10)), 1);
    }
}
