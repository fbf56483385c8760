//! The daemon's shared state, built once at start: storage, the writer, the live bus, the
//! session service's running set, the inference engine and the capture manager. HTTP handlers
//! and the capture pipeline both work on it; nothing here knows about HTTP.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{LoginThrottle, TokenCache};
use crate::capture::CaptureManager;
use crate::config::Config;
use crate::engine::SharedEngine;
use crate::live::LiveBus;
use crate::metrics::Metrics;
use crate::sessions::RunningSessions;
use crate::store::writer::{replay_spool, Writer, WriterOptions};
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
    /// The sample keys of running sessions (duplicate re-posts are counted, not stored twice).
    pub seen: Arc<crate::sessions::ingest::SeenSamples>,
}

/// Everything `serve` does before it accepts connections.
pub async fn prepare(config: Config) -> anyhow::Result<AppState> {
    let cfg = config.clone();
    let store = tokio::task::spawn_blocking(move || -> anyhow::Result<Store> {
        let store = Store::open(&cfg)?;
        let applied = store.migrate()?;
        if !applied.is_empty() {
            tracing::info!(?applied, "database migrated");
        }
        Ok(store)
    })
    .await??;
    let metrics = Arc::new(Metrics::default());
    metrics
        .database_up
        .store(1, std::sync::atomic::Ordering::Relaxed);
    let spool_dir = config.spool_dir().ok();
    if let Some(dir) = &spool_dir {
        let (s, d) = (store.clone(), dir.clone());
        let replayed = tokio::task::spawn_blocking(move || replay_spool(&s, &d)).await??;
        if replayed > 0 {
            tracing::info!(replayed, "wrote samples spooled at the last shutdown");
        }
    }
    let writer = Writer::start(
        store.clone(),
        WriterOptions {
            batch_size: config.writer.batch_size,
            flush_interval: Duration::from_millis(config.writer.flush_interval_ms.max(1)),
            capacity: config.writer.spool_capacity,
            spool_dir,
            connections: config.writer.connections,
            user_quota: config.writer.user_quota,
        },
        metrics.clone(),
    );
    let node = config.node_name();
    let analyses = Arc::new(tokio::sync::Semaphore::new(config.analyze.max_concurrent));
    let engine = SharedEngine::new(&config);
    engine.warm_up();
    let state = AppState {
        config,
        store,
        writer,
        metrics,
        tokens: TokenCache::default(),
        throttle: LoginThrottle::default(),
        live: Arc::new(LiveBus::default()),
        running: RunningSessions::default(),
        analyses,
        engine,
        capture: CaptureManager::default(),
        seen: Arc::default(),
        node,
    };
    let recovered = crate::sessions::recover_interrupted(&state).await?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "sessions left running by an earlier crash marked interrupted"
        );
    }
    Ok(state)
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

/// One maintenance pass: expired tokens are purged and data older than the retention period is
/// deleted. `serve` runs one before it accepts requests, so nothing past retention is ever served
/// by a daemon that has just started (and a test can rely on that instead of racing the task).
pub async fn maintain_once(state: &Arc<AppState>) {
    let st = state.clone();
    let res = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let now = crate::store::now_ms();
        st.store.purge_tokens(now)?;
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
    /// The ingest path (writer + live bus) for API samples and the capture pipeline alike.
    pub fn ingest(&self) -> crate::sessions::Ingest {
        crate::sessions::Ingest {
            writer: self.writer.clone(),
            live: self.live.clone(),
            store: self.store.clone(),
            seen: self.seen.clone(),
        }
    }
}
