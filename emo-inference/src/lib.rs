//! EMO's inference engine (ONNX Runtime through `ort`), kept out of the daemon crate so that
//! `emod analyze|eval|bench` and the live pipelines share one code path.
//!
//! * [`runtime`] — find/load `libonnxruntime` (load-dynamic), sessions, execution providers.
//! * [`manifest`] — `models/manifest.toml`.
//! * [`face`] — BlazeFace decoding + weighted NMS, eye-aligned crops, expression classifier.
//! * [`features`], [`audio`], [`speech`] — log-mel/MFCC on rustfft, resampling, VAD, speech model.
//! * [`fusion`] — calibrated log-linear late fusion and the seed's `mode`; [`reliability`] and
//!   [`voice_domain`] — how far each window's face and voice are trusted.
//! * [`limits`], [`ffmpeg`] — what decoding one file may cost; child processes that cannot hang.
//! * [`stream`], [`tracker`] — speech over pushed chunks, per-second fusion, the subject's face.
//! * [`analyze`] — files (image / audio / video via the `ffmpeg` CLI) → estimates + timeline.
//! * [`eval`], [`bench`] — the code behind `emod eval` and `emod bench`.
#![forbid(unsafe_code)]

pub mod audio;
pub mod av_eval;
pub mod bench;
pub mod classifier;
pub mod engine;
pub mod eval;
pub mod expression;
pub mod face;
pub mod features;
pub mod ffmpeg;
pub mod fusion;
pub mod fusion_eval;
pub mod fusion_sessions;
pub mod limits;
pub mod manifest;
pub mod media;
pub mod model_precision;
pub mod reliability;
pub mod runtime;
pub mod session_trust;
pub mod speaker_norm;
pub mod speech;
pub mod stream;
pub mod tracker;
pub mod voice_domain;

pub use engine::{Engine, EngineOptions};
pub use limits::MediaLimits;
pub use model_precision::{PrecisionChoice, PrecisionPolicy};
pub use runtime::{ExecProvider, RuntimeConfig, RuntimeInfo};

/// Errors of the inference engine. Every message is one line and names what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Runtime(String),
    #[error("{0}")]
    Manifest(String),
    #[error("{0}")]
    Model(String),
    #[error("{0}")]
    Inference(String),
    #[error("{0}")]
    Media(String),
    /// The file is over a [`MediaLimits`] bound (or declares an absurd sample rate): final, no
    /// other decoder is tried.
    #[error("{0}")]
    Limit(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
