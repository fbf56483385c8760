//! What `serve` (and `emod bench live`) do before accepting work: open and migrate the store,
//! replay the spool, start the writer and the engine, build the [`AppState`], and mark sessions
//! an earlier crash left running as interrupted. Above both the state and the session service,
//! so that the state does not import the service that takes it.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{LoginThrottle, TokenCache};
use crate::capture::CaptureManager;
use crate::config::Config;
use crate::live::LiveBus;
use crate::metrics::Metrics;
use crate::sessions::running::RunningSessions;
use crate::shared_engine::SharedEngine;
use crate::slots::Slots;
use crate::state::AppState;
use crate::store::writer::{replay_spool, Writer, WriterOptions};
use crate::store::Store;

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
    let (live_slots, export_slots) = Slots::from_config(&config.server);
    let reads = crate::reads::ReadGate::new(
        config.database.pool_size,
        std::time::Duration::from_secs(config.database.connect_timeout_secs.max(1)),
    );
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
        live_slots,
        export_slots,
        reads,
        node,
    };
    let recovered = crate::sessions::recover_interrupted(&state.sessions()).await?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "sessions left running by an earlier crash marked interrupted"
        );
    }
    Ok(state)
}
