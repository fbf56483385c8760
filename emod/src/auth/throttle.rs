//! Login throttling (failures per username and address, with doubling lockouts), attempts
//! counted in windows (registrations, backdated starts), and the bound on concurrent hashing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::error::AppError;

/// Counts failed logins per key (a username *from one client address*, and the client address
/// alone), and bounds the password hashing everybody can trigger.
///
/// The user's key includes the address: counted per username alone, anybody could lock anybody
/// out by typing wrong passwords for their name. A key that reached its limit is locked for
/// [`Backoff::lock`], which doubles with each further lockout (up to `max`), so a patient
/// guesser from one address slows down exponentially while the user logs in from elsewhere.
///
/// A login *reserves* a failure on each of its keys before its password is checked
/// ([`LoginThrottle::reserve`]) and gives it back only when the password was right
/// ([`LoginThrottle::succeeded`]): concurrent guesses count while they are in flight, so no more
/// than the limit are ever verified (checking first and recording after let 60 concurrent
/// guesses through 40 checks with a limit of 5).
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Failures>>,
    /// Attempts counted per key in fixed windows: registrations per client address (every
    /// attempt counts), backdated session starts per user.
    registrations: Mutex<HashMap<String, (u32, Instant)>>,
    /// Permits for concurrent argon2 computations (≈ cores; each costs 19 MiB while it runs).
    hashing: Arc<tokio::sync::Semaphore>,
}

/// How long a login or registration waits for a hashing permit before it is refused with 429.
pub const HASH_QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Failed logins of one key.
struct Failures {
    /// Failures (and attempts in flight) since the last lockout or reset.
    n: u32,
    /// The latest failure or attempt; a lockout runs from here.
    last: Instant,
    /// Lockouts served so far: the next one lasts `base × 2^strikes`.
    strikes: u32,
}

/// How long a key that reached its limit is locked: `base` the first time, doubled with each
/// further lockout, at most `max`. Failures below the limit are forgotten after the current lock
/// length without any; the lockout history (strikes) after `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn lock(&self, strikes: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << strikes.min(30))
            .min(self.max.max(self.base))
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        LoginThrottle::with_hashing_permits(cores)
    }
}

fn count_in_window(
    map: &Mutex<HashMap<String, (u32, Instant)>>,
    keys: &[String],
    limits: &[u32],
    window: Duration,
) -> Result<(), u64> {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    map.retain(|_, (_, since)| now.duration_since(*since) < window);
    for (k, &max) in keys.iter().zip(limits) {
        if let Some((n, since)) = map.get(k) {
            if *n >= max {
                let left = window.saturating_sub(now.duration_since(*since));
                return Err(left.as_secs().max(1));
            }
        }
    }
    for k in keys {
        let e = map.entry(k.clone()).or_insert((0, now));
        e.0 += 1;
        e.1 = now;
    }
    Ok(())
}

impl LoginThrottle {
    pub fn with_hashing_permits(permits: usize) -> Self {
        LoginThrottle {
            failures: Mutex::default(),
            registrations: Mutex::default(),
            hashing: Arc::new(tokio::sync::Semaphore::new(permits.max(1))),
        }
    }

    /// Reserves one failure on every key, atomically: `Err(seconds to wait)` (and nothing
    /// reserved) if any key is locked (it reached `limits[i]` for `keys[i]` less than its lock
    /// length ago). A key whose lock has run out starts again from zero, with the next lock
    /// twice as long.
    pub fn reserve(&self, keys: &[String], limits: &[u32], backoff: Backoff) -> Result<(), u64> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let keep = backoff.max.max(backoff.base);
        map.retain(|_, f| now.duration_since(f.last) < keep);
        for (k, &max) in keys.iter().zip(limits) {
            let Some(f) = map.get_mut(k) else { continue };
            let lock = backoff.lock(f.strikes);
            let idle = now.duration_since(f.last);
            if f.n >= max {
                if idle < lock {
                    let left = lock - idle;
                    return Err(left.as_millis().div_ceil(1000).max(1) as u64);
                }
                f.n = 0;
                f.strikes = f.strikes.saturating_add(1);
            } else if idle >= lock {
                f.n = 0;
            }
        }
        for k in keys {
            let f = map.entry(k.clone()).or_insert(Failures {
                n: 0,
                last: now,
                strikes: 0,
            });
            f.n += 1;
            f.last = now;
        }
        Ok(())
    }

    /// The password was right: the user's failures are forgotten and the other keys' reserved
    /// failure is given back.
    pub fn succeeded(&self, user_key: &str, other_keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(user_key);
        for k in other_keys {
            if let Some(e) = map.get_mut(k) {
                e.n = e.n.saturating_sub(1);
            }
        }
    }

    /// Gives back a reservation that was not a verdict on the password (the database failed).
    pub fn release(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            if let Some(e) = map.get_mut(k) {
                e.n = e.n.saturating_sub(1);
            }
        }
    }

    /// Counts one registration attempt from `address`: `Err(seconds to wait)` past `limit` in
    /// `window` (0 = no limit).
    pub fn register_attempt(&self, address: &str, limit: u32, window: Duration) -> Result<(), u64> {
        self.attempt(format!("reg:{address}"), limit, window)
    }

    /// Counts one backdated session start by `user`, likewise.
    pub fn backdated_attempt(&self, user: Uuid, limit: u32, window: Duration) -> Result<(), u64> {
        self.attempt(format!("backdated:{user}"), limit, window)
    }

    fn attempt(&self, key: String, limit: u32, window: Duration) -> Result<(), u64> {
        if limit == 0 {
            return Ok(());
        }
        count_in_window(&self.registrations, &[key], &[limit], window)
    }

    /// Runs an argon2 computation with a hashing permit, off the async runtime. At most
    /// `permits` run at once (each holds 19 MiB while it runs); a caller that waits longer than
    /// [`HASH_QUEUE_WAIT`] gets 429 `too_many_attempts`.
    pub async fn hash_bounded<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let permit = tokio::time::timeout(HASH_QUEUE_WAIT, self.hashing.clone().acquire_owned())
            .await
            .map_err(|_| AppError::Throttled { retry_after: 1 })?
            .map_err(|_| AppError::Internal("hashing semaphore closed".into()))?;
        // The permit moves into the blocking task: it is held until the hash is done, even
        // when the client leaves and this future is dropped.
        crate::blocking(move || {
            let out = f();
            drop(permit);
            out
        })
        .await
    }
}
