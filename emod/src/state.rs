//! The daemon's shared state: storage, the writer, the live bus, the session service's running
//! set, the inference engine and the capture manager (built once at start by
//! [`crate::startup::prepare`]). HTTP handlers and the capture pipeline both work on it; nothing
//! here knows about HTTP. The services take only the parts they use ([`AppState::sessions`],
//! [`AppState::audit`] borrow them), so none of them imports this module.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{LoginThrottle, TokenCache};
use crate::capture::CaptureManager;
use crate::config::Config;
use crate::live::LiveBus;
use crate::metrics::Metrics;
use crate::sessions::running::RunningSessions;
use crate::shared_engine::SharedEngine;
use crate::store::writer::Writer;
use crate::store::Store;

/// Everything handlers share.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
    pub tokens: TokenCache,
    pub throttle: LoginThrottle,
    pub live: Arc<LiveBus>,
    pub running: RunningSessions,
    pub node: String,
    /// Permits for concurrent `/analyze` requests (`analyze.max_concurrent`).
    pub analyses: Arc<tokio::sync::Semaphore>,
    /// The inference engine, loaded once in the background at start and shared.
    pub engine: SharedEngine,
    /// This daemon's camera and microphone (one capturing session at a time).
    pub capture: CaptureManager,
    /// Permits for listing reads: part of the pool stays for writes and health checks.
    pub reads: crate::reads::ReadGate,
    /// Open live streams and running exports, bounded per user and in all.
    pub live_slots: crate::slots::Slots,
    pub export_slots: crate::slots::Slots,
    /// The sample keys of running sessions (duplicate re-posts are counted, not stored twice).
    pub seen: Arc<crate::ingest::SeenSamples>,
}

/// Hourly housekeeping: retention and expired tokens.
pub async fn maintenance(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    // The first tick completes at once: `serve` has just run that pass itself.
    tick.tick().await;
    loop {
        tick.tick().await;
        maintain_once(&state).await;
    }
}

/// One maintenance pass: expired tokens are purged, the coming days' partitions are created
/// (PostgreSQL) and data older than the retention period is deleted. `serve` runs one before it
/// accepts requests, so nothing past retention is ever served by a daemon that has just started
/// (and a test can rely on that instead of racing the task).
pub async fn maintain_once(state: &Arc<AppState>) {
    let st = state.clone();
    let res = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let now = crate::store::now_ms();
        st.store.purge_tokens(now)?;
        if let Err(e) = st.store.prepare_partitions(now) {
            // Nothing is lost meanwhile: rows without a day partition wait in the default one.
            tracing::warn!("day partitions not prepared: {e}");
        }
        let days = st.config.privacy.retention_days;
        if days > 0 {
            let (samples, sessions) = st.store.purge_before(now - days as i64 * 86_400_000)?;
            if samples + sessions > 0 {
                tracing::info!(samples, sessions, days, "retention: deleted old data");
            }
        }
        Ok(())
    })
    .await;
    match res {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("maintenance failed: {e:#}"),
        Err(e) => tracing::warn!("maintenance task failed: {e}"),
    }
}

impl AppState {
    /// The parts the session service works with (`crate::sessions`), borrowed for one call.
    pub fn sessions(&self) -> crate::sessions::Sessions<'_> {
        crate::sessions::Sessions {
            config: &self.config,
            store: &self.store,
            writer: &self.writer,
            live: &self.live,
            running: &self.running,
            capture: &self.capture,
            engine: &self.engine,
            metrics: &self.metrics,
            seen: &self.seen,
            throttle: &self.throttle,
            node: &self.node,
        }
    }

    /// The audit trail's writer (`crate::audit`).
    pub fn audit(&self) -> crate::audit::Audit<'_> {
        crate::audit::Audit {
            store: &self.store,
            metrics: &self.metrics,
            config: &self.config,
        }
    }
}
