//! This daemon's camera and microphone, owned by at most one session at a time.
//!
//! [`CaptureManager::open`] reserves the devices and opens the requested sources before the
//! session is stored (so a source that cannot be opened starts nothing); [`CaptureManager::run`]
//! then starts the [`pipeline`] for the session, and [`CaptureManager::stop`] drains it. Frames
//! and audio live only in memory, inside the pipeline.

pub mod pipeline;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use emo_api_types::{ConfiguredSource, Devices, ErrorCode};
use emo_capture::{CameraOptions, SourceSpec};
use uuid::Uuid;

use crate::config::{CaptureConfig, Config};
use crate::error::{AppError, AppResult};
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::shared_engine::SharedEngine;

/// A session asking for this daemon's devices.
#[derive(Debug, Clone)]
pub struct CaptureRequest {
    pub session: Uuid,
    pub user: Uuid,
    pub sources: Vec<emo_api_types::SessionSource>,
}

/// Sources opened for a session that is not stored yet. Dropping it closes them and frees the
/// devices (the session could not be stored).
pub struct Reservation {
    req: CaptureRequest,
    opened: Option<pipeline::Opened>,
    slot: Arc<Mutex<Slot>>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.opened.is_some() {
            let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if matches!(*s, Slot::Reserved(id) if id == self.req.session) {
                *s = Slot::Free;
            }
        }
    }
}

#[derive(Default)]
enum Slot {
    #[default]
    Free,
    Reserved(Uuid),
    Running(Box<pipeline::Running>),
}

/// What [`CaptureManager::capturing`] reports.
#[derive(Debug, Clone, Copy)]
pub struct Capturing {
    pub session: Uuid,
    pub user: Uuid,
    pub sources_ended: bool,
}

/// One capturing session per daemon.
#[derive(Default)]
pub struct CaptureManager {
    slot: Arc<Mutex<Slot>>,
}

impl CaptureManager {
    /// Reserve the devices for `req.session` and open its sources (409 `capture_busy` when
    /// another session captures, 409 `source_unavailable` naming a source that cannot open).
    pub async fn open(&self, req: CaptureRequest, config: &Config) -> AppResult<Reservation> {
        {
            let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            match &*s {
                Slot::Free => *s = Slot::Reserved(req.session),
                Slot::Reserved(_) | Slot::Running(_) => {
                    return Err(AppError::new(
                        ErrorCode::CaptureBusy,
                        "this daemon's camera and microphone already capture for another session",
                    ))
                }
            }
        }
        let mut reservation = Reservation {
            req: req.clone(),
            opened: None,
            slot: self.slot.clone(),
        };
        let cfg = config.capture.clone();
        let sources = req.sources.clone();
        let opened = crate::blocking(move || pipeline::Opened::open(&sources, &cfg)).await?;
        match opened {
            Ok(o) => {
                reservation.opened = Some(o);
                Ok(reservation)
            }
            Err(e) => {
                *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Slot::Free;
                Err(AppError::new(
                    ErrorCode::SourceUnavailable,
                    emo_capture::redact_secrets(&e),
                ))
            }
        }
    }

    /// Start the pipeline of a stored session.
    pub fn run(
        &self,
        mut r: Reservation,
        ingest: Ingest,
        engine: SharedEngine,
        metrics: Arc<Metrics>,
        config: &Config,
    ) {
        let Some(opened) = r.opened.take() else {
            return;
        };
        let running = pipeline::Running::start(
            r.req.clone(),
            opened,
            ingest,
            engine,
            metrics,
            &config.capture,
        );
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Slot::Running(Box::new(running));
    }

    /// Whether `session` is the one capturing.
    pub fn is_capturing(&self, session: Uuid) -> bool {
        matches!(&*self.slot.lock().unwrap_or_else(|e| e.into_inner()),
            Slot::Running(r) if r.session() == session)
    }

    /// The session capturing now, with its user and whether all its sources have ended.
    pub fn capturing(&self) -> Option<Capturing> {
        match &*self.slot.lock().unwrap_or_else(|e| e.into_inner()) {
            Slot::Running(r) => Some(Capturing {
                session: r.session(),
                user: r.user(),
                sources_ended: r.sources_ended(),
            }),
            _ => None,
        }
    }

    /// Whether any session captures.
    pub fn busy(&self) -> bool {
        !matches!(
            &*self.slot.lock().unwrap_or_else(|e| e.into_inner()),
            Slot::Free
        )
    }

    /// Stop and drain `session`'s pipeline (no-op when it does not capture). Every completed
    /// window is submitted before this returns (at most about two seconds).
    pub async fn stop(&self, session: Uuid) {
        let running = {
            let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            match &*s {
                Slot::Running(r) if r.session() == session => match std::mem::take(&mut *s) {
                    Slot::Running(r) => Some(r),
                    _ => None,
                },
                _ => None,
            }
        };
        if let Some(r) = running {
            let _ = crate::blocking(move || r.stop()).await;
        }
    }

    /// Stop whatever captures (daemon shutdown).
    pub async fn shutdown(&self) {
        let running = {
            let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            match std::mem::take(&mut *s) {
                Slot::Running(r) => Some(r),
                other => {
                    *s = other;
                    None
                }
            }
        };
        if let Some(r) = running {
            let _ = crate::blocking(move || r.stop()).await;
        }
    }
}

/// What `[capture]` resolves to and which devices exist (`GET /devices`, `emod devices`).
pub fn devices(cfg: &CaptureConfig, capturing: bool) -> Devices {
    let found = emo_capture::list_devices();
    let resolve = |configured: &str, kind: emo_capture::SourceKind| -> ConfiguredSource {
        let resolved = match configured.parse::<SourceSpec>() {
            Ok(SourceSpec::None) | Err(_) => None,
            Ok(SourceSpec::Auto) => match kind {
                emo_capture::SourceKind::Camera => found
                    .cameras
                    .first()
                    .map(|c| format!("{} (index {})", c.name, c.index)),
                emo_capture::SourceKind::Microphone => found
                    .microphones
                    .iter()
                    .find(|m| m.default)
                    .or(found.microphones.first())
                    .map(|m| m.name.clone()),
            },
            Ok(other) => Some(emo_capture::redact_secrets(&other.to_string())),
        };
        // Any agent may read this: a camera URL's password stays in the configuration.
        ConfiguredSource {
            configured: emo_capture::redact_secrets(configured),
            resolved,
        }
    };
    Devices {
        camera: resolve(&cfg.camera, emo_capture::SourceKind::Camera),
        microphone: resolve(&cfg.microphone, emo_capture::SourceKind::Microphone),
        cameras: found
            .cameras
            .iter()
            .map(|c| emo_api_types::CameraDevice {
                index: c.index,
                name: c.name.clone(),
                formats: c.formats.clone(),
            })
            .collect(),
        microphones: found
            .microphones
            .iter()
            .map(|m| emo_api_types::MicrophoneDevice {
                name: m.name.clone(),
                default: m.default,
                sample_rates: m.sample_rates.clone(),
            })
            .collect(),
        capturing,
    }
}

/// Camera options from `[capture]`.
pub fn camera_options(cfg: &CaptureConfig) -> CameraOptions {
    CameraOptions {
        fps: cfg.fps,
        width: cfg.width,
        height: cfg.height,
    }
}

/// Channel capacity for audio chunks (~100 ms each): 5 s of slack before overruns count.
pub const AUDIO_CHUNKS: usize = 50;

/// The channels a pipeline reads.
pub struct Channels {
    pub audio: mpsc::Receiver<emo_capture::AudioChunk>,
    pub events: mpsc::Receiver<emo_capture::SourceEvent>,
}
