//! A share of the database pool kept free of listing reads (issue 28, item 5): sample pages,
//! exports, statistics, session and audit listings take a read permit first, and there are fewer
//! permits than pooled connections. Sixteen expensive reads at once used to take every connection:
//! `/readyz` said 503, the writer timed out and another user's stop failed. Now at least
//! [`reserve`] connections stay for the writer, health checks, logins and stops; a read that
//! waits longer than the pool's connect timeout for a permit answers 503, as it would have
//! waiting for a connection.

use std::sync::Arc;
use std::time::Duration;

use emo_api_types::ErrorCode;

use crate::error::{AppError, AppResult};

/// Connections kept free of listing reads: a quarter of the pool, at least 2, and at least one
/// connection left for reads.
pub fn reserve(pool_size: u32) -> u32 {
    (pool_size / 4).max(2).min(pool_size.saturating_sub(1))
}

/// Permits for listing reads.
#[derive(Clone)]
pub struct ReadGate {
    permits: Arc<tokio::sync::Semaphore>,
    wait: Duration,
}

impl ReadGate {
    pub fn new(pool_size: u32, wait: Duration) -> Self {
        let n = pool_size.saturating_sub(reserve(pool_size)).max(1);
        ReadGate {
            permits: Arc::new(tokio::sync::Semaphore::new(n as usize)),
            wait,
        }
    }

    /// Runs the read `f` on the blocking pool once a permit is free.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> AppResult<T> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                // Its own message: the generic storage_unavailable one says "unreachable".
                AppError::new(
                    ErrorCode::StorageUnavailable,
                    "too many database reads at once (part of the pool is kept for writes and health checks); try again shortly",
                )
            })?
            .map_err(|_| AppError::Internal("read permits closed".into()))?;
        crate::blocking(move || {
            let out = f();
            drop(permit);
            out
        })
        .await
    }

    /// Permits free now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_a_quarter_at_least_two_and_leaves_one_for_reads() {
        assert_eq!(reserve(8), 2);
        assert_eq!(reserve(20), 5);
        assert_eq!(reserve(3), 2);
        assert_eq!(reserve(2), 1);
        assert_eq!(reserve(1), 0);
        assert_eq!(ReadGate::new(8, Duration::from_secs(1)).available(), 6);
        assert_eq!(ReadGate::new(1, Duration::from_secs(1)).available(), 1);
    }

    #[tokio::test]
    async fn a_read_waits_for_a_permit_and_then_says_unavailable() {
        let gate = ReadGate::new(3, Duration::from_millis(200));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let held = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.run(move || rx.recv().ok()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let e = gate.run(|| 1).await.err().unwrap();
        assert_eq!(e.code(), emo_api_types::ErrorCode::StorageUnavailable);
        tx.send(()).unwrap();
        held.await.unwrap().unwrap();
        assert_eq!(gate.run(|| 2).await.unwrap(), 2);
    }
}
