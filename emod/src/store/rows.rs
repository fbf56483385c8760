//! Database rows and their conversion to the API types.

use std::collections::BTreeMap;

use diesel::prelude::*;
use emo_api_types::{Emotion, Modality, Role, Sample, SampleIn, Session, SessionStatus, User};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ms_to_datetime;
use super::schema::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub role: String,
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: i64,
}

impl UserRow {
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Agent)
    }
    pub fn to_api(&self) -> User {
        User {
            id: parse_uuid(&self.id),
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            role: self.role(),
            disabled: self.disabled,
            created_at: ms_to_datetime(self.created_at),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct TokenRow {
    pub token_hash: String,
    pub user_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub node: String,
    pub status: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub consent_at: i64,
    pub sources: String,
    pub label: Option<String>,
    pub summary: Option<String>,
    pub dominant: Option<i16>,
}

impl SessionRow {
    pub fn status(&self) -> SessionStatus {
        self.status.parse().unwrap_or(SessionStatus::Interrupted)
    }
    pub fn to_api(&self, username: &str) -> Session {
        Session {
            id: parse_uuid(&self.id),
            user_id: parse_uuid(&self.user_id),
            username: username.to_string(),
            status: self.status(),
            started_at: ms_to_datetime(self.started_at),
            ended_at: self.ended_at.map(ms_to_datetime),
            consent_at: ms_to_datetime(self.consent_at),
            sources: serde_json::from_str(&self.sources).unwrap_or_default(),
            label: self.label.clone(),
            summary: self
                .summary
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
        }
    }
}

/// A sample as stored. Serializable so the writer can spool it to disk on shutdown.
/// `None` binds SQL NULL (not DEFAULT), which lets SQLite take a whole batch as one
/// multi-row INSERT.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = samples, treat_none_as_default_value = false)]
pub struct SampleRow {
    pub session_id: String,
    pub user_id: String,
    pub t: i64,
    pub modality: i16,
    pub emotion: i16,
    pub confidence: f32,
    pub p_angry: Option<f32>,
    pub p_disgust: Option<f32>,
    pub p_fear: Option<f32>,
    pub p_happy: Option<f32>,
    pub p_sad: Option<f32>,
    pub p_surprise: Option<f32>,
    pub p_neutral: Option<f32>,
    pub p_calm: Option<f32>,
}

impl SampleRow {
    pub fn from_api(session_id: Uuid, user_id: Uuid, s: &SampleIn) -> SampleRow {
        let p = |e: Emotion| s.probabilities.get(&e).map(|v| *v as f32);
        SampleRow {
            session_id: session_id.to_string(),
            user_id: user_id.to_string(),
            t: s.t.timestamp_millis(),
            modality: modality_code(s.modality),
            emotion: emotion_code(s.emotion),
            confidence: s.confidence as f32,
            p_angry: p(Emotion::Angry),
            p_disgust: p(Emotion::Disgust),
            p_fear: p(Emotion::Fear),
            p_happy: p(Emotion::Happy),
            p_sad: p(Emotion::Sad),
            p_surprise: p(Emotion::Surprise),
            p_neutral: p(Emotion::Neutral),
            p_calm: p(Emotion::Calm),
        }
    }

    pub fn probabilities(&self) -> BTreeMap<Emotion, f64> {
        let values = [
            self.p_angry,
            self.p_disgust,
            self.p_fear,
            self.p_happy,
            self.p_sad,
            self.p_surprise,
            self.p_neutral,
            self.p_calm,
        ];
        Emotion::ALL
            .iter()
            .zip(values)
            .filter_map(|(e, v)| v.map(|v| (*e, round6(v))))
            .collect()
    }

    pub fn to_api(&self) -> Sample {
        Sample {
            session_id: parse_uuid(&self.session_id),
            t: ms_to_datetime(self.t),
            modality: modality_from_code(self.modality),
            emotion: emotion_from_code(self.emotion),
            confidence: round6(self.confidence),
            probabilities: self.probabilities(),
        }
    }
}

/// f32 → f64 without the noise digits (0.91f32 would print as 0.9100000262260437).
pub fn round6(v: f32) -> f64 {
    (v as f64 * 1e6).round() / 1e6
}

pub fn emotion_code(e: Emotion) -> i16 {
    e.index() as i16
}

pub fn emotion_from_code(c: i16) -> Emotion {
    Emotion::ALL
        .get(c as usize)
        .copied()
        .unwrap_or(Emotion::Neutral)
}

pub fn modality_code(m: Modality) -> i16 {
    match m {
        Modality::Face => 0,
        Modality::Voice => 1,
        Modality::Fused => 2,
    }
}

pub fn modality_from_code(c: i16) -> Modality {
    match c {
        0 => Modality::Face,
        1 => Modality::Voice,
        _ => Modality::Fused,
    }
}

pub fn parse_uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).unwrap_or_default()
}
