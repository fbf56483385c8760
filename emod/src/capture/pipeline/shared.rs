//! What the pipeline's threads share: the fuser, how far each source has delivered, and the
//! stop flag.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use emo_api_types::Emotion;
use emo_capture::FrameSlot;
use emo_inference::stream::Fuser;

use crate::config::CaptureConfig;
use crate::ingest::Ingest;
use crate::metrics::Metrics;

/// A stalled source holds fused windows back at most this long.
pub(super) const MAX_HOLD: f64 = 1.0;

pub(super) fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub(super) fn now_secs() -> f64 {
    secs(SystemTime::now())
}

/// State the pipeline threads share.
pub(super) struct Shared {
    pub(super) stop: AtomicBool,
    pub(super) fuser: Mutex<Fuser>,
    /// Capture time up to which each source's data has been pushed into the fuser (f64 bits).
    pub(super) face_mark: AtomicU64,
    pub(super) voice_mark: AtomicU64,
    /// Nothing new can change the voice of a second ending before this: the next window ends
    /// one hop after the last one (f64 bits).
    pub(super) voice_settled: AtomicU64,
    pub(super) camera_live: AtomicBool,
    pub(super) microphone_live: AtomicBool,
    /// Sources opened for the session that have not reported `ended` (a file played to its
    /// end); a lost device is reopened and never counts as ended.
    pub(super) sources_left: std::sync::atomic::AtomicUsize,
    pub(super) frames_processed: AtomicU64,
}

pub(super) fn load(a: &AtomicU64) -> f64 {
    f64::from_bits(a.load(Ordering::Acquire))
}

pub(super) fn store(a: &AtomicU64, v: f64) {
    a.store(v.to_bits(), Ordering::Release);
}

impl Shared {
    /// Fusion from `origin` (seconds) on, nothing pushed yet.
    pub(super) fn new(origin: f64, cfg: &CaptureConfig, camera: bool, microphone: bool) -> Self {
        Self {
            stop: AtomicBool::new(false),
            fuser: Mutex::new(Fuser::new(
                origin,
                1.0,
                cfg.strategy(),
                // The engine's weights are set by the fuse thread: loading the engine here would
                // block the HTTP worker that started the session.
                Default::default(),
            )),
            face_mark: AtomicU64::new(origin.to_bits()),
            voice_mark: AtomicU64::new(origin.to_bits()),
            voice_settled: AtomicU64::new(origin.to_bits()),
            camera_live: AtomicBool::new(camera),
            microphone_live: AtomicBool::new(microphone),
            sources_left: std::sync::atomic::AtomicUsize::new(
                usize::from(camera) + usize::from(microphone),
            ),
            frames_processed: AtomicU64::new(0),
        }
    }
}

/// What the fuse thread (and its stats) need besides the shared state.
pub(super) struct FuseCtx {
    pub(super) session: uuid::Uuid,
    pub(super) user: uuid::Uuid,
    pub(super) ingest: Ingest,
    pub(super) metrics: Arc<Metrics>,
    pub(super) slot: Option<Arc<FrameSlot>>,
    pub(super) voice_labels: Vec<Emotion>,
}
