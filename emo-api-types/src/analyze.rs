//! Result of `emod analyze` and `POST /api/v1/analyze`: per-face and per-window expression
//! estimates and the fused per-second timeline. Nothing here is stored by the daemon.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use crate::Emotion;

/// What kind of media a file was analysed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Audio,
    Video,
}

/// A face box in pixels of the analysed image/frame (top-left origin).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FaceBox {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

/// One detected face with its expression estimate (7 FER-2013 classes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FaceEstimate {
    /// Seconds from the start of the file (0 for an image).
    pub t: f64,
    /// Frame index among the analysed frames (0 for an image).
    pub frame: u64,
    #[serde(rename = "box")]
    pub bbox: FaceBox,
    pub detection_score: f64,
    pub emotion: Emotion,
    pub confidence: f64,
    pub probabilities: BTreeMap<Emotion, f64>,
}

/// One speech window (3 s, hop 1 s) with its expression estimate (8 RAVDESS classes), present
/// only when voice activity was detected in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct VoiceEstimate {
    pub start: f64,
    pub end: f64,
    /// RMS level of the window in dBFS.
    pub level_dbfs: f64,
    pub voiced: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emotion: Option<Emotion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub probabilities: BTreeMap<Emotion, f64>,
    /// Confidence is below the speech model's abstain threshold: the live stream withholds
    /// such a window's label; fusion still counts it, with the little trust it earns.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abstained: bool,
    /// How unlike the training speech the window is (about 1 for training speech; fusion trusts
    /// the voice less beyond the manifest's `domain.ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_distance: Option<f64>,
}

/// One second of the fused timeline (7-class space, `calm` folded into `neutral`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FusedEstimate {
    pub start: f64,
    pub end: f64,
    pub emotion: Emotion,
    pub confidence: f64,
    pub probabilities: BTreeMap<Emotion, f64>,
    /// Which modalities contributed ("face", "voice").
    pub modalities: Vec<String>,
}

/// Summary over the whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AnalysisSummary {
    pub emotion: Emotion,
    pub confidence: f64,
    /// Mean fused probabilities over the timeline.
    pub distribution: BTreeMap<Emotion, f64>,
    /// Fraction of timeline seconds with a face / with voice activity.
    pub face_coverage: f64,
    pub voice_coverage: f64,
}

/// The analysis of one file. `error` is set (and the rest empty) when the file failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FileAnalysis {
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<MediaKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Fusion strategy used for `timeline` ("calibrated" or "mode").
    #[serde(default)]
    pub strategy: String,
    #[serde(default)]
    pub faces: Vec<FaceEstimate>,
    #[serde(default)]
    pub voice: Vec<VoiceEstimate>,
    #[serde(default)]
    pub timeline: Vec<FusedEstimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<AnalysisSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Body of `POST /api/v1/analyze` responses and of `emod analyze --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AnalyzeResponse {
    pub files: Vec<FileAnalysis>,
}

/// Body of `POST /api/v1/analyze`'s 422: the error envelope (`invalid_input`) and, when every
/// file failed, each file's analysis with its `error` (for no file at all or a malformed body
/// `files` is absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AnalyzeRefused {
    pub error: crate::ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileAnalysis>,
}
