//! Wire types shared by `emod` and its clients (`emo-tui`, scripts).
//!
//! This crate deliberately depends on nothing but serde, chrono and uuid so that any client can
//! use it without pulling a web framework or a database driver. The JSON shapes here are the
//! public contract of `/api/v1`: extend them, never change them.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use utoipa::{IntoParams, ToSchema};

pub mod analyze;
pub mod error;
pub mod stats;

pub use error::{ApiError, ErrorCode};
pub use stats::*;

/// An expression/emotion label. Faces use the 7 FER-2013 classes, speech adds `calm` (RAVDESS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Emotion {
    Angry,
    Disgust,
    Fear,
    Happy,
    Sad,
    Surprise,
    Neutral,
    Calm,
}

impl Emotion {
    /// The 7 FER-2013 classes, in the order the face model emits them.
    pub const FACE: [Emotion; 7] = [
        Emotion::Angry,
        Emotion::Disgust,
        Emotion::Fear,
        Emotion::Happy,
        Emotion::Sad,
        Emotion::Surprise,
        Emotion::Neutral,
    ];
    /// All 8 labels: the 7 face classes followed by `calm`.
    pub const ALL: [Emotion; 8] = [
        Emotion::Angry,
        Emotion::Disgust,
        Emotion::Fear,
        Emotion::Happy,
        Emotion::Sad,
        Emotion::Surprise,
        Emotion::Neutral,
        Emotion::Calm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Emotion::Angry => "angry",
            Emotion::Disgust => "disgust",
            Emotion::Fear => "fear",
            Emotion::Happy => "happy",
            Emotion::Sad => "sad",
            Emotion::Surprise => "surprise",
            Emotion::Neutral => "neutral",
            Emotion::Calm => "calm",
        }
    }

    /// Index in [`Emotion::ALL`].
    pub fn index(self) -> usize {
        Emotion::ALL.iter().position(|e| *e == self).unwrap_or(0)
    }

    /// The 7-class space used by fusion and dashboards: `calm` folds into `neutral`.
    pub fn to_face_space(self) -> Emotion {
        match self {
            Emotion::Calm => Emotion::Neutral,
            other => other,
        }
    }
}

impl fmt::Display for Emotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Emotion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        // Accept the spellings used by the datasets too (RAVDESS "fearful", "surprised").
        let e = match lower.as_str() {
            "angry" => Emotion::Angry,
            "disgust" | "disgusted" => Emotion::Disgust,
            "fear" | "fearful" => Emotion::Fear,
            "happy" => Emotion::Happy,
            "sad" => Emotion::Sad,
            "surprise" | "surprised" => Emotion::Surprise,
            "neutral" => Emotion::Neutral,
            "calm" => Emotion::Calm,
            _ => return Err(format!("unknown emotion `{s}`")),
        };
        Ok(e)
    }
}

/// Where an estimate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Face,
    Voice,
    Fused,
}

impl Modality {
    pub const ALL: [Modality; 3] = [Modality::Face, Modality::Voice, Modality::Fused];
    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Face => "face",
            Modality::Voice => "voice",
            Modality::Fused => "fused",
        }
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Modality {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "face" => Ok(Modality::Face),
            "voice" => Ok(Modality::Voice),
            "fused" => Ok(Modality::Fused),
            _ => Err(format!("unknown modality `{s}` (face, voice or fused)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "agent" => Ok(Role::Agent),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("unknown role `{s}` (agent or admin)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    Running,
    Stopped,
    /// The daemon stopped (crash, power loss) while the session was running.
    Interrupted,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Running => "running",
            SessionStatus::Stopped => "stopped",
            SessionStatus::Interrupted => "interrupted",
        }
    }
}

impl FromStr for SessionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "running" => Ok(SessionStatus::Running),
            "stopped" => Ok(SessionStatus::Stopped),
            "interrupted" => Ok(SessionStatus::Interrupted),
            _ => Err(format!(
                "unknown status `{s}` (running, stopped or interrupted)"
            )),
        }
    }
}

/// Body of `POST /api/v1/auth/register` and `POST /api/v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Answer of `POST /api/v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LoginResponse {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /api/v1/users` (admin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    #[serde(default = "default_role")]
    pub role: Role,
    #[serde(default)]
    pub display_name: Option<String>,
}

fn default_role() -> Role {
    Role::Agent
}

/// Body of `PATCH /api/v1/users/{username}` (admin). Absent fields are left unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UpdateUser {
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// Body of `POST /api/v1/sessions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StartSession {
    /// The agent's explicit consent to expression estimation; required to be `true`.
    #[serde(default)]
    pub consent: bool,
    /// What feeds the session, e.g. `["camera", "microphone"]` or `["remote"]`.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Free-form label shown in dashboards.
    #[serde(default)]
    pub label: Option<String>,
    /// For clients uploading a session recorded earlier (offline capture): when it began.
    /// Defaults to now; may not lie in the future.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
}

/// Optional body of `POST /api/v1/sessions/{id}/stop`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StopSession {
    /// When the session ended (for uploads of earlier recordings); defaults to now.
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
}

/// Per-session aggregate, computed when a session stops.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SessionSummary {
    /// Share of windows per emotion (fused samples when present, else all samples).
    pub distribution: BTreeMap<Emotion, f64>,
    /// Dominant (most frequent) emotion; `None` for an empty session.
    pub dominant: Option<Emotion>,
    /// Number of samples per modality.
    pub samples: BTreeMap<Modality, u64>,
    /// Fraction of the session's seconds that have at least one sample of the modality.
    pub coverage: BTreeMap<Modality, f64>,
    /// Mean confidence of the samples the distribution was computed from.
    pub mean_confidence: Option<f64>,
    pub duration_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub status: SessionStatus,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub consent_at: DateTime<Utc>,
    pub sources: Vec<String>,
    pub label: Option<String>,
    pub summary: Option<SessionSummary>,
}

/// One per-window estimate, as posted by a capture client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SampleIn {
    pub t: DateTime<Utc>,
    pub modality: Modality,
    pub emotion: Emotion,
    pub confidence: f64,
    #[serde(default)]
    pub probabilities: BTreeMap<Emotion, f64>,
}

/// Body of `POST /api/v1/sessions/{id}/samples`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SampleBatch {
    pub samples: Vec<SampleIn>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Accepted {
    pub accepted: usize,
}

/// A stored sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Sample {
    pub session_id: Uuid,
    pub t: DateTime<Utc>,
    pub modality: Modality,
    pub emotion: Emotion,
    pub confidence: f64,
    pub probabilities: BTreeMap<Emotion, f64>,
}

/// A row of `GET /api/v1/export`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ExportRow {
    pub session_id: Uuid,
    pub username: String,
    pub t: DateTime<Utc>,
    pub modality: Modality,
    pub emotion: Emotion,
    pub confidence: f64,
    pub probabilities: BTreeMap<Emotion, f64>,
}

/// A page of results. `next_offset` is `None` on the last page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
    pub next_offset: Option<u64>,
}

/// Filters shared by session lists, stats and export (query string).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams, ToSchema))]
pub struct Filters {
    /// Username of the agent; agents may only name themselves.
    pub agent: Option<String>,
    /// Inclusive lower bound (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    pub emotion: Option<Emotion>,
    pub status: Option<SessionStatus>,
    /// Which estimates stats count; default `fused`.
    pub modality: Option<Modality>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditEntry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target_user: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    pub status: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_samples: Option<u64>,
}

/// An event on the live stream (`GET /api/v1/sessions/{id}/live`, server-sent events).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    Sample(Sample),
    Stopped {
        session_id: Uuid,
    },
    /// A capture source of the session changed state (`active`, `lost`, `recovered`, `ended`).
    Source {
        source: String,
        state: SourceState,
        message: String,
    },
    /// Capture pipeline figures, every few seconds while capturing.
    Stats(CaptureStats),
}

/// State of a capture source, as the live stream and `GET /devices` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    Active,
    Lost,
    Recovered,
    Ended,
}

/// Throughput and latency of the live pipeline (latency = capture time → event sent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CaptureStats {
    /// Frames per second delivered by the camera source (recent average).
    pub fps_in: f64,
    /// Frames per second analysed.
    pub fps_processed: f64,
    /// Frames skipped since the session started because a newer one had arrived.
    pub frames_dropped: u64,
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
}

/// `GET /api/v1/devices`: what this daemon can capture from, and what `[capture]` resolves to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Devices {
    pub cameras: Vec<CameraDevice>,
    pub microphones: Vec<MicrophoneDevice>,
    /// `[capture] camera` as configured, and what it resolves to now (`null`: nothing).
    pub camera: ConfiguredSource,
    pub microphone: ConfiguredSource,
    /// Whether this daemon is capturing for a session right now.
    pub capturing: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CameraDevice {
    pub index: u32,
    pub name: String,
    pub formats: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MicrophoneDevice {
    pub name: String,
    pub default: bool,
    pub sample_rates: Vec<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConfiguredSource {
    pub configured: String,
    pub resolved: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emotion_round_trips_and_accepts_dataset_spellings() {
        for e in Emotion::ALL {
            assert_eq!(e.as_str().parse::<Emotion>().unwrap(), e);
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(json, format!("\"{}\"", e.as_str()));
        }
        assert_eq!("Fearful".parse::<Emotion>().unwrap(), Emotion::Fear);
        assert_eq!("surprised".parse::<Emotion>().unwrap(), Emotion::Surprise);
        assert!("bored".parse::<Emotion>().is_err());
        assert_eq!(Emotion::Calm.to_face_space(), Emotion::Neutral);
        assert_eq!(Emotion::Calm.index(), 7);
    }

    #[test]
    fn sample_batch_matches_contract() {
        let body = r#"{"samples":[{"t":"2026-01-02T03:04:05Z","modality":"fused","emotion":"happy",
            "confidence":0.91,"probabilities":{"angry":0.01,"happy":0.91}}]}"#;
        let b: SampleBatch = serde_json::from_str(body).unwrap();
        assert_eq!(b.samples[0].emotion, Emotion::Happy);
        assert_eq!(b.samples[0].modality, Modality::Fused);
        assert!(serde_json::from_str::<SampleBatch>(
            r#"{"samples":[{"t":"x","modality":"fused","emotion":"happy","confidence":1}]}"#
        )
        .is_err());
    }
}
