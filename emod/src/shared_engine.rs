//! The inference engine, loaded once per daemon and shared by `/analyze` and live capture.
//!
//! Loading takes a second or two (ONNX Runtime and three models), so it starts in the
//! background when the daemon starts and callers that need it wait for it. A failed load (no
//! models, no ONNX Runtime) is reported to the caller and tried again on the next use, so an
//! admin who installs the models does not have to restart the daemon.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use emo_inference::manifest;
use emo_inference::{Engine, EngineOptions, ExecProvider, RuntimeConfig};

use crate::config::Config;

#[derive(Clone)]
pub struct SharedEngine {
    opts: Result<EngineOptions, String>,
    loaded: Arc<Mutex<Option<Arc<Engine>>>>,
    /// A background load ([`SharedEngine::warm_up`]) has not finished yet.
    loading: Arc<AtomicBool>,
}

impl SharedEngine {
    /// Engine options from the configuration; files from the network get `[analyze]` limits.
    pub fn new(config: &Config) -> Self {
        let opts = engine_options(config)
            .map(|mut o| {
                o.limits = config.analyze.limits();
                o
            })
            .map_err(|e| e.to_string());
        Self {
            opts,
            loaded: Arc::new(Mutex::new(None)),
            loading: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Start loading on a thread of its own (never on an HTTP worker).
    pub fn warm_up(&self) {
        let me = self.clone();
        self.loading.store(true, Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name("emod-engine-load".into())
            .spawn(move || {
                if let Err(e) = me.get() {
                    tracing::warn!("inference engine not loaded: {e}");
                }
                me.loading.store(false, Ordering::SeqCst);
            });
        if spawned.is_err() {
            self.loading.store(false, Ordering::SeqCst);
        }
    }

    /// Wait, at most `limit`, for a background load still in progress. The daemon calls it
    /// before it exits: leaving `main` while another thread is inside ONNX Runtime's session
    /// set-up (the expression model's precision timing takes seconds on a loaded machine) can
    /// crash the process in the runtime's teardown (SIGSEGV after a clean SIGTERM, seen in the
    /// test suite), which supervisors and scripts read as a failure.
    pub fn settle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.loading.load(Ordering::SeqCst) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// The engine, loading it now if needed (blocks: call from a worker thread).
    pub fn get(&self) -> Result<Arc<Engine>, String> {
        let mut g = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = g.as_ref() {
            return Ok(e.clone());
        }
        let opts = self.opts.clone()?;
        let e = Arc::new(Engine::load(&opts).map_err(|e| e.to_string())?);
        *g = Some(e.clone());
        Ok(e)
    }
}

/// The models directory: config `models.dir` (EMO_MODELS_DIR), else `./models`, else next to
/// the executable (see [`beside_executable`]), else `/usr/share/emo/models`.
pub fn models_dir(config: &Config) -> PathBuf {
    if !config.models.dir.trim().is_empty() {
        return PathBuf::from(config.models.dir.trim());
    }
    let exe = std::env::current_exe().ok();
    let candidates = std::iter::once(PathBuf::from("models"))
        .chain(exe.as_deref().map(beside_executable).unwrap_or_default())
        .chain([PathBuf::from("/usr/share/emo/models")]);
    for d in candidates {
        if d.join(manifest::MANIFEST_FILE).is_file() {
            return d;
        }
    }
    PathBuf::from("models")
}

/// Where models may sit relative to the program `exe`: `models/` beside it (an unpacked
/// archive), and for a program built in a cargo workspace (`…/target/release/emod`,
/// `…/target/debug/emod`, `…/target/TRIPLE/release/emod`) the workspace's `models/`, so that
/// `emod analyze` works from any directory.
fn beside_executable(exe: &Path) -> Vec<PathBuf> {
    let Some(dir) = exe.parent() else {
        return Vec::new();
    };
    let mut v = vec![dir.join("models")];
    if let Some(target) = dir.ancestors().take(3).find(|a| a.ends_with("target")) {
        if let Some(workspace) = target.parent() {
            v.push(workspace.join("models"));
        }
    }
    v
}

/// Runtime settings from `[onnxruntime]`.
pub fn runtime_config(config: &Config) -> anyhow::Result<RuntimeConfig> {
    let o = &config.onnxruntime;
    Ok(RuntimeConfig {
        library: (!o.library.trim().is_empty()).then(|| PathBuf::from(o.library.trim())),
        execution_provider: o
            .execution_provider
            .parse::<ExecProvider>()
            .map_err(|e| anyhow::anyhow!("onnxruntime.execution_provider: {e}"))?,
        intra_threads: o.intra_threads,
    })
}

pub fn engine_options(config: &Config) -> anyhow::Result<EngineOptions> {
    let mut o = EngineOptions::new(models_dir(config), runtime_config(config)?);
    o.expression_precision = config
        .models
        .expression_precision
        .parse()
        .map_err(|e| anyhow::anyhow!("models.expression_precision: {e}"))?;
    o.precision_cache = config.precision_cache_path();
    Ok(o)
}
