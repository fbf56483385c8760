//! EMO's capture sources: where the live pipeline's frames and audio come from.
//!
//! | form | camera | microphone |
//! | --- | --- | --- |
//! | `none` | no camera | no microphone |
//! | `auto` | the first V4L2 device (nokhwa) | ALSA's default capture device (cpal) |
//! | `0`, `1`, … | `/dev/videoN` | the N-th ALSA capture device of [`list_devices`] |
//! | a name (or `device:NAME`) | a camera whose name or path (`/dev/video2`) matches | an ALSA device id (`default`, `pulse`, `hw:CARD=PCH,DEV=0`) or description |
//! | `file:PATH` | the file's video, played at real-time pace, then the source ends | the file's audio, the same way |
//! | `ffmpeg:[OPTIONS ]INPUT` | any input the `ffmpeg` CLI opens (`rtsp://…`, `http://…`, `-f v4l2 /dev/video0`, `-re -f lavfi testsrc`) | the same, audio only |
//!
//! Every source runs on its own thread. A camera puts [`VideoFrame`]s into a [`FrameSlot`]
//! (latest frame wins: a slow consumer makes frames be dropped and counted, never queued); a
//! microphone sends 16 kHz mono [`AudioChunk`]s of ~100 ms into a bounded channel with
//! `try_send` (a full channel is an overrun, counted, never a wait). State changes arrive as
//! [`SourceEvent`]s: `active` once open, `lost` when a device disappears or an `ffmpeg:` input
//! dies (then it is reopened with a back-off of 0.5 s doubling up to 10 s and reported
//! `recovered`), `ended` when a `file:` source reaches its end. [`SourceHandle::stop`]
//! (on a camera or a microphone) and `Drop` return within a second in every state (`ffmpeg` children are
//! killed and reaped). Frames and audio are only held in memory, never written anywhere.
#![forbid(unsafe_code)]

mod alsa;
mod devices;
mod ffmpeg_source;
mod redact;
mod slot;
mod spec;
mod v4l;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub use devices::{
    list_devices, resolve, CameraInfo, Devices, MicrophoneInfo, Resolved, ResolvedSource,
};
pub use redact::redact_secrets;
pub use slot::FrameSlot;
pub use spec::SourceSpec;

use worker::Worker;

/// Sample rate of every [`AudioChunk`].
pub const SAMPLE_RATE: u32 = 16_000;
/// Samples in a full [`AudioChunk`] (100 ms).
pub const CHUNK_SAMPLES: usize = 1_600;
/// How long `open_*` waits for a source to deliver its first frame or audio before it answers
/// [`CaptureError::Unavailable`].
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(6);

/// Which of the two modalities a source feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Camera,
    Microphone,
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SourceKind::Camera => "camera",
            SourceKind::Microphone => "microphone",
        })
    }
}

/// A source's state, as reported by [`SourceEvent`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceState {
    /// Opened and delivering (sent once, after a successful open).
    Active,
    /// Failed mid-session; it is being reopened with back-off.
    Lost,
    /// Delivering again after [`SourceState::Lost`].
    Recovered,
    /// A `file:` source reached its end (or failed): it is not reopened.
    Ended,
}

impl std::fmt::Display for SourceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SourceState::Active => "active",
            SourceState::Lost => "lost",
            SourceState::Recovered => "recovered",
            SourceState::Ended => "ended",
        })
    }
}

/// A change of a source's state, with a message for people (device name, error).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SourceEvent {
    pub kind: SourceKind,
    pub state: SourceState,
    pub message: String,
}

/// One camera frame.
#[derive(Clone, Debug)]
pub struct VideoFrame {
    /// Wall-clock time when the frame was read from the device or `ffmpeg`.
    pub captured: SystemTime,
    pub image: image::RgbImage,
}

/// A piece of microphone audio, 16 kHz mono, samples in [-1, 1].
#[derive(Clone, Debug)]
pub struct AudioChunk {
    /// Wall-clock time of the first sample.
    pub captured: SystemTime,
    pub samples: Vec<f32>,
}

/// Why a source could not be opened.
#[derive(Debug)]
pub enum CaptureError {
    /// The source cannot be opened now (no such device, missing file, `ffmpeg` cannot open the
    /// input, nothing delivered within [`OPEN_TIMEOUT`], configured as `none`).
    Unavailable { source: SourceKind, message: String },
    /// A source form that cannot be parsed or used for this kind.
    InvalidSpec(String),
    /// Capture options out of range (fps, size).
    InvalidOptions(String),
}

impl CaptureError {
    pub(crate) fn unavailable(source: SourceKind, message: impl Into<String>) -> Self {
        CaptureError::Unavailable {
            source,
            message: message.into(),
        }
    }
}

/// Written with the secrets of any source URL it quotes replaced ([`redact_secrets`]): these
/// messages reach API clients and logs.
impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            CaptureError::Unavailable { source, message } => {
                format!("{source} unavailable: {message}")
            }
            CaptureError::InvalidSpec(m) => format!("invalid capture source: {m}"),
            CaptureError::InvalidOptions(m) => format!("invalid capture options: {m}"),
        };
        f.write_str(&redact_secrets(&text))
    }
}

// Written by hand: thiserror would take the `source` field for the error's cause.
impl std::error::Error for CaptureError {}

/// What a camera delivers. Frames are put into the slot at about `fps` (extra frames of the
/// device are skipped without decoding); `width`×`height` is what a device is asked for (the
/// closest mode it has is used) and what `file:`/`ffmpeg:` video is scaled to.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CameraOptions {
    pub fps: f64,
    pub width: u32,
    pub height: u32,
}

impl Default for CameraOptions {
    fn default() -> Self {
        Self {
            fps: 10.0,
            width: 640,
            height: 480,
        }
    }
}

impl CameraOptions {
    fn validate(&self) -> Result<(), CaptureError> {
        if !(self.fps.is_finite() && self.fps > 0.0 && self.fps <= 240.0) {
            return Err(CaptureError::InvalidOptions(format!(
                "fps must be in (0, 240], not {}",
                self.fps
            )));
        }
        for (what, v) in [("width", self.width), ("height", self.height)] {
            if !(16..=7680).contains(&v) || v % 2 != 0 {
                return Err(CaptureError::InvalidOptions(format!(
                    "{what} must be an even number of pixels in 16..=7680, not {v}"
                )));
            }
        }
        Ok(())
    }
}

/// What a running source of either kind has: its capture thread, a description, and the pids
/// of its `ffmpeg` children. [`Camera`] and [`Microphone`] deref to it; dropping them stops it.
pub struct SourceHandle {
    worker: Worker,
    description: String,
    pids: Arc<Mutex<Vec<u32>>>,
}

impl SourceHandle {
    /// Stop capturing (idempotent). Returns within about a second.
    pub fn stop(&mut self) {
        self.worker.stop();
    }

    /// What was opened, for people ("/dev/video0 (HD Webcam)", "file:/x.mp4").
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Process ids of the `ffmpeg` children currently running for this source (empty for a
    /// V4L2 camera or an ALSA microphone), so callers can account for their CPU.
    pub fn child_pids(&self) -> Vec<u32> {
        self.pids.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the capture thread has finished (a `file:` source that ended, or stopped).
    pub fn is_finished(&self) -> bool {
        self.worker.is_finished()
    }
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        self.worker.stop();
    }
}

/// A running camera source. [`SourceHandle::stop`] or dropping it stops the capture thread (and
/// any `ffmpeg` child) within a second.
pub struct Camera(SourceHandle);

/// A running microphone source. Same lifecycle as [`Camera`].
pub struct Microphone {
    handle: SourceHandle,
    overruns: Arc<AtomicU64>,
}

impl Microphone {
    /// Audio dropped because a buffer was full: blocks the audio callback could not hand over,
    /// chunks the consumer's channel had no room for, and device overruns (ALSA xruns).
    pub fn overruns(&self) -> u64 {
        self.overruns.load(Ordering::Relaxed)
    }
}

impl std::ops::Deref for Camera {
    type Target = SourceHandle;
    fn deref(&self) -> &SourceHandle {
        &self.0
    }
}

impl std::ops::DerefMut for Camera {
    fn deref_mut(&mut self) -> &mut SourceHandle {
        &mut self.0
    }
}

impl std::ops::Deref for Microphone {
    type Target = SourceHandle;
    fn deref(&self) -> &SourceHandle {
        &self.handle
    }
}

impl std::ops::DerefMut for Microphone {
    fn deref_mut(&mut self) -> &mut SourceHandle {
        &mut self.handle
    }
}

/// Open a camera source. Fails fast with [`CaptureError::Unavailable`] when it cannot be opened
/// or delivers no frame within [`OPEN_TIMEOUT`]; once it returns, [`SourceState::Active`] has
/// been sent and frames are flowing into `slot`.
pub fn open_camera(
    spec: &SourceSpec,
    opts: &CameraOptions,
    slot: Arc<FrameSlot>,
    events: Sender<SourceEvent>,
) -> Result<Camera, CaptureError> {
    opts.validate()?;
    let kind = SourceKind::Camera;
    let pids = Arc::new(Mutex::new(Vec::new()));
    let (worker, description) = match spec {
        SourceSpec::None => {
            return Err(CaptureError::unavailable(
                kind,
                "the camera is configured as none",
            ))
        }
        SourceSpec::File(_) | SourceSpec::Ffmpeg(_) => {
            ffmpeg_source::open_video(spec, opts, slot, events, pids.clone())?
        }
        SourceSpec::Auto | SourceSpec::Index(_) | SourceSpec::Name(_) => {
            v4l::open(spec, opts, slot, events)?
        }
    };
    Ok(Camera(SourceHandle {
        worker,
        description,
        pids,
    }))
}

/// Open a microphone source: ALSA through cpal for `auto`, an index or a name; `ffmpeg` for
/// `file:` and `ffmpeg:`. Chunks go to `chunks` with `try_send` (never blocking); fails fast
/// like [`open_camera`].
pub fn open_microphone(
    spec: &SourceSpec,
    chunks: SyncSender<AudioChunk>,
    events: Sender<SourceEvent>,
) -> Result<Microphone, CaptureError> {
    let kind = SourceKind::Microphone;
    let overruns = Arc::new(AtomicU64::new(0));
    let pids = Arc::new(Mutex::new(Vec::new()));
    let (worker, description) = match spec {
        SourceSpec::None => {
            return Err(CaptureError::unavailable(
                kind,
                "the microphone is configured as none",
            ))
        }
        SourceSpec::File(_) | SourceSpec::Ffmpeg(_) => {
            ffmpeg_source::open_audio(spec, chunks, events, overruns.clone(), pids.clone())?
        }
        SourceSpec::Auto | SourceSpec::Index(_) | SourceSpec::Name(_) => {
            alsa::open(spec, chunks, events, overruns.clone())?
        }
    };
    Ok(Microphone {
        handle: SourceHandle {
            worker,
            description,
            pids,
        },
        overruns,
    })
}

/// The handles can be kept in shared state and asked for counters from any thread.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Camera>();
    send_sync::<Microphone>();
    send_sync::<FrameSlot>();
    send_sync::<CaptureError>();
    send_sync::<SourceEvent>();
};
