//! Wire types shared by `emod` and its clients (`emo-tui`, scripts).
//!
//! This crate deliberately depends on nothing but serde, chrono and uuid so that any client can
//! use it without pulling a web framework or a database driver. The JSON shapes here are the
//! public contract of `/api/v1`: extend them, never change them.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

#[macro_use]
mod wire;
pub mod analyze;
pub mod error;
pub mod stats;

pub use error::{ApiError, ErrorCode};
pub use stats::*;

wire_enum! {
    /// An expression/emotion label. Faces use the 7 FER-2013 classes, speech adds `calm` (RAVDESS).
    /// Parsing also takes the datasets' spellings (RAVDESS "fearful", "surprised").
    #[derive(PartialOrd, Ord)]
    pub enum Emotion ("emotion") {
        Angry = "angry",
        Disgust = "disgust" | "disgusted",
        Fear = "fear" | "fearful",
        Happy = "happy",
        Sad = "sad",
        Surprise = "surprise" | "surprised",
        Neutral = "neutral",
        Calm = "calm",
    }
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

wire_enum! {
    /// Where an estimate came from.
    #[derive(PartialOrd, Ord)]
    pub enum Modality ("modality") {
        Face = "face",
        Voice = "voice",
        Fused = "fused",
    }
}

wire_enum! {
    pub enum Role ("role") {
        Agent = "agent",
        Admin = "admin",
    }
}

wire_enum! {
    pub enum SessionStatus ("status") {
        Running = "running",
        Stopped = "stopped",
        /// The daemon stopped (crash, power loss) while the session was running.
        Interrupted = "interrupted",
    }
}

wire_enum! {
    /// Why a session stopped (in its summary; absent for sessions stopped before it was recorded
    /// and for `interrupted` ones).
    pub enum EndReason ("end reason") {
        /// `POST /sessions/{id}/stop`, on this daemon or another one sharing the database.
        Requested = "requested",
        /// Every capture source ended (`file:` sources played to the end) and
        /// `capture.stop_when_sources_end` is on.
        SourcesEnded = "sources_ended",
        /// The user was disabled while the session ran.
        UserDisabled = "user_disabled",
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

wire_enum! {
    /// What a session's `sources` may name (`StartSession::sources`): this daemon's camera or
    /// microphone, or `remote`: samples posted over the API by a client that captures elsewhere.
    pub enum SessionSource ("source") {
        Camera = "camera",
        Microphone = "microphone",
        Remote = "remote",
    }
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
    /// Why the session stopped (absent for interrupted sessions and older summaries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
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
    /// New samples that will be stored (and were published live).
    pub accepted: usize,
    /// Samples of the batch the session already had (same modality and `t`): not stored again.
    /// Added later; older daemons omit it.
    #[serde(default)]
    pub duplicates: usize,
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
    /// Items in the whole listing; when `total_capped`, at least this many (large listings are
    /// not counted to the end).
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
    pub next_offset: Option<u64>,
    /// Where the next page starts, for listings that page by cursor (`?after=`): cheaper than a
    /// deep `offset` on a long listing. `None` on the last page or where unsupported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
    /// `total` is a lower bound: counting stopped there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub total_capped: bool,
}

filtered_query! {
    /// The sample filters that stats and export share (each endpoint's query adds its own
    /// parameters: [`DistributionQuery`], [`TimelineQuery`], [`HeatmapQuery`], [`ExportQuery`]).
    pub struct Filters {}
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

wire_enum! {
    /// State of a capture source, as the live stream and `GET /devices` report it.
    pub enum SourceState ("source state") {
        Active = "active",
        Lost = "lost",
        Recovered = "recovered",
        Ended = "ended",
    }
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
