//! Database rows and their conversion to the API types.
//!
//! A row that does not convert (a malformed id, an unknown code or role, unreadable JSON) is a
//! [`StoreError::Other`] naming the row and the value: a corrupt database must show up as an
//! error, never as a nil id, a `fused` or a `neutral` that nobody stored.

use std::collections::BTreeMap;

use diesel::prelude::*;
use emo_api_types::{Emotion, Modality, Role, Sample, SampleIn, Session, SessionStatus, User};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::schema::*;
use super::{ms_to_datetime, StoreError, StoreResult};

/// Calls `$m!` with the eight probability columns of `samples` (and of its staging twin
/// `samples_in`) as `[column Emotion]` pairs in `Emotion::ALL` order. Row types, their
/// conversions and raw SQL are generated from this one list; `schema.rs` names the columns again
/// because diesel's `table!` has to.
macro_rules! probability_columns {
    ($m:ident) => {
        $m! {
            [p_angry Angry] [p_disgust Disgust] [p_fear Fear] [p_happy Happy]
            [p_sad Sad] [p_surprise Surprise] [p_neutral Neutral] [p_calm Calm]
        }
    };
}
pub(crate) use probability_columns;

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
    pub fn role(&self) -> StoreResult<Role> {
        parse_field("users.role", &self.role)
    }
    pub fn to_api(&self) -> StoreResult<User> {
        Ok(User {
            id: parse_uuid(&self.id)?,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            role: self.role()?,
            disabled: self.disabled,
            created_at: ms_to_datetime(self.created_at),
        })
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
    pub fn status(&self) -> StoreResult<SessionStatus> {
        parse_field("sessions.status", &self.status)
    }
    pub fn to_api(&self, username: &str) -> StoreResult<Session> {
        Ok(Session {
            id: parse_uuid(&self.id)?,
            user_id: parse_uuid(&self.user_id)?,
            username: username.to_string(),
            status: self.status()?,
            started_at: ms_to_datetime(self.started_at),
            ended_at: self.ended_at.map(ms_to_datetime),
            consent_at: ms_to_datetime(self.consent_at),
            sources: parse_json("sessions.sources", &self.sources)?,
            label: self.label.clone(),
            summary: match self.summary.as_deref() {
                Some(text) => Some(parse_json("sessions.summary", text)?),
                None => None,
            },
        })
    }
}

macro_rules! sample_rows {
    ($([$column:ident $emotion:ident])*) => {
        /// A sample as submitted: what ingest hands the writer, and what the writer spools to
        /// disk while the database is away (so its serde shape is a file format: keep it).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct SampleRow {
            pub session_id: String,
            pub user_id: String,
            pub t: i64,
            pub modality: i16,
            pub emotion: i16,
            pub confidence: f32,
            $(pub $column: Option<f32>,)*
        }

        /// A sample as the `samples` table holds it (`migrations/2026-12-09-000001_compact_samples`):
        /// the session's and user's compact keys, and confidence and probabilities in units of
        /// [`PROBABILITY_UNIT`] with [`ABSENT`] for a class the modality has no estimate of.
        #[derive(Debug, Clone, PartialEq, Insertable)]
        #[diesel(table_name = samples, treat_none_as_default_value = false)]
        pub struct CompactSample {
            pub t: i64,
            pub session_no: i32,
            pub user_no: i32,
            pub modality: i16,
            pub emotion: i16,
            pub confidence: i16,
            $(pub $column: i16,)*
        }

        /// A stored sample read back, with its session's id joined in (the reads select
        /// `x.id AS session_id` from `sessions x`).
        #[derive(Debug, Clone, PartialEq, QueryableByName)]
        pub struct StoredSample {
            #[diesel(sql_type = diesel::sql_types::Text)]
            pub session_id: String,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            pub t: i64,
            #[diesel(sql_type = diesel::sql_types::SmallInt)]
            pub modality: i16,
            #[diesel(sql_type = diesel::sql_types::SmallInt)]
            pub emotion: i16,
            #[diesel(sql_type = diesel::sql_types::SmallInt)]
            pub confidence: i16,
            $(
                #[diesel(sql_type = diesel::sql_types::SmallInt)]
                pub $column: i16,
            )*
        }

        /// The probability columns' names with their emotions, in `Emotion::ALL` order.
        pub const PROBABILITY_COLUMNS: [(&str, Emotion); 8] =
            [$((stringify!($column), Emotion::$emotion)),*];

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
                    $($column: p(Emotion::$emotion),)*
                }
            }

            /// The row to store, once its session's and user's keys are known.
            pub fn compact(&self, session_no: i32, user_no: i32) -> CompactSample {
                CompactSample {
                    t: self.t,
                    session_no,
                    user_no,
                    modality: self.modality,
                    emotion: self.emotion,
                    confidence: to_units(Some(self.confidence)),
                    $($column: to_units(self.$column),)*
                }
            }
        }

        impl StoredSample {
            pub fn probabilities(&self) -> BTreeMap<Emotion, f64> {
                [$((Emotion::$emotion, self.$column)),*]
                    .into_iter()
                    .filter_map(|(e, v)| from_units(v).map(|v| (e, v)))
                    .collect()
            }
        }
    };
}
probability_columns!(sample_rows);

/// Stored probabilities are integers in units of 1/10,000: four decimals, finer than any
/// estimate here means, in 2 bytes instead of 4.
pub const PROBABILITY_UNIT: f64 = 1e-4;
/// The stored value of a class the modality has no estimate of (a face has no `calm`).
pub const ABSENT: i16 = -1;

/// A probability in [0, 1] as stored (`None` → [`ABSENT`]; values outside [0, 1] are clamped:
/// validation refuses them before they get here).
pub fn to_units(p: Option<f32>) -> i16 {
    match p {
        Some(v) if v.is_finite() => ((v as f64).clamp(0.0, 1.0) / PROBABILITY_UNIT).round() as i16,
        _ => ABSENT,
    }
}

/// A stored probability back (`None` for [`ABSENT`] or any other negative value).
pub fn from_units(u: i16) -> Option<f64> {
    (u >= 0).then(|| u as f64 / 10_000.0)
}

impl StoredSample {
    pub fn to_api(&self) -> StoreResult<Sample> {
        Ok(Sample {
            session_id: parse_uuid(&self.session_id)?,
            t: ms_to_datetime(self.t),
            modality: modality_from_code(self.modality)?,
            emotion: emotion_from_code(self.emotion)?,
            confidence: from_units(self.confidence)
                .ok_or_else(|| corrupt("samples.confidence", self.confidence, "negative"))?,
            probabilities: self.probabilities(),
        })
    }
}

pub fn emotion_code(e: Emotion) -> i16 {
    e.index() as i16
}

pub fn emotion_from_code(c: i16) -> StoreResult<Emotion> {
    usize::try_from(c)
        .ok()
        .and_then(|i| Emotion::ALL.get(i).copied())
        .ok_or_else(|| corrupt("emotion code", c, "not an index of Emotion::ALL"))
}

pub fn modality_code(m: Modality) -> i16 {
    match m {
        Modality::Face => 0,
        Modality::Voice => 1,
        Modality::Fused => 2,
    }
}

pub fn modality_from_code(c: i16) -> StoreResult<Modality> {
    Modality::ALL
        .into_iter()
        .find(|m| modality_code(*m) == c)
        .ok_or_else(|| corrupt("modality code", c, "not 0 (face), 1 (voice) or 2 (fused)"))
}

pub fn parse_uuid(s: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(s).map_err(|e| corrupt("id", s, e))
}

/// A column's text parsed by the wire enum's `FromStr`.
fn parse_field<T: std::str::FromStr<Err = String>>(column: &str, text: &str) -> StoreResult<T> {
    text.parse().map_err(|e| corrupt(column, text, e))
}

/// A JSON column.
fn parse_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| corrupt(column, text, e))
}

/// The error for a stored value that does not convert.
pub fn corrupt(
    what: &str,
    value: impl std::fmt::Display,
    why: impl std::fmt::Display,
) -> StoreError {
    StoreError::Other(format!("corrupt row: {what} `{value}`: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_columns_follow_emotion_order_and_names() {
        let emotions: Vec<Emotion> = PROBABILITY_COLUMNS.iter().map(|(_, e)| *e).collect();
        assert_eq!(emotions, Emotion::ALL);
        for (column, e) in PROBABILITY_COLUMNS {
            assert_eq!(column, format!("p_{e}"));
        }
    }

    /// Stored probabilities keep four decimals (issue 30): every value rounds to its nearest
    /// 1e-4 step and comes back as that step; absent, negative stored values and non-finite
    /// inputs never turn into a probability.
    #[test]
    fn probabilities_are_stored_in_steps_of_1e4() {
        for (v, units) in [
            (0.0, 0),
            (1.0, 10_000),
            (0.75, 7_500),
            (0.12345, 1_235),
            (0.99996, 10_000),
        ] {
            assert_eq!(to_units(Some(v)), units, "{v}");
            assert_eq!(from_units(units), Some(units as f64 / 10_000.0));
        }
        assert_eq!(to_units(None), ABSENT);
        assert_eq!(to_units(Some(f32::NAN)), ABSENT);
        assert_eq!(to_units(Some(1.5)), 10_000);
        assert_eq!(to_units(Some(-0.2)), 0);
        assert_eq!(from_units(ABSENT), None);
        assert_eq!(from_units(-7), None);
        // Within half a step of what was sent, for every f32 step of a grid.
        for i in 0..=1000 {
            let v = i as f32 / 1000.0;
            let back = from_units(to_units(Some(v))).unwrap();
            assert!((back - v as f64).abs() <= 0.5e-4 + 1e-9, "{v} -> {back}");
        }
    }

    #[test]
    fn corrupt_values_are_errors_not_defaults() {
        for e in Emotion::ALL {
            assert_eq!(emotion_from_code(emotion_code(e)).unwrap(), e);
        }
        for m in Modality::ALL {
            assert_eq!(modality_from_code(modality_code(m)).unwrap(), m);
        }
        let err = |r: StoreResult<_>| match r {
            Err(StoreError::Other(msg)) => msg,
            _ => panic!("expected an error"),
        };
        assert!(err(emotion_from_code(8).map(|_| ())).contains("emotion code `8`"));
        assert!(err(emotion_from_code(-1).map(|_| ())).contains("corrupt row"));
        assert!(err(modality_from_code(3).map(|_| ())).contains("modality code `3`"));
        assert!(err(parse_uuid("garbage").map(|_| ())).contains("id `garbage`"));
        let mut user = UserRow {
            id: Uuid::new_v4().to_string(),
            username: "ann".into(),
            display_name: None,
            role: "agent".into(),
            password_hash: String::new(),
            disabled: false,
            created_at: 0,
        };
        assert_eq!(user.to_api().unwrap().role, Role::Agent);
        user.role = "overlord".into();
        assert!(err(user.to_api().map(|_| ())).contains("users.role `overlord`"));
        let session = SessionRow {
            id: Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            node: "n".into(),
            status: "running".into(),
            started_at: 0,
            ended_at: None,
            consent_at: 0,
            sources: "not json".into(),
            label: None,
            summary: None,
            dominant: None,
        };
        assert!(err(session.to_api("ann").map(|_| ())).contains("sessions.sources"));
    }
}
