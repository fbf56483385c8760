//! Dashboard aggregates (`/api/v1/stats/*`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use crate::Emotion;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Minute,
    Hour,
    Day,
}

impl Bucket {
    pub fn millis(self) -> i64 {
        match self {
            Bucket::Minute => 60_000,
            Bucket::Hour => 3_600_000,
            Bucket::Day => 86_400_000,
        }
    }
}

impl std::str::FromStr for Bucket {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "minute" => Ok(Bucket::Minute),
            "hour" => Ok(Bucket::Hour),
            "day" => Ok(Bucket::Day),
            _ => Err(format!("unknown bucket `{s}` (minute, hour or day)")),
        }
    }
}

/// `GET /api/v1/stats/distribution`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Distribution {
    pub total: u64,
    pub counts: BTreeMap<Emotion, u64>,
    /// `counts / total`, 0 when empty.
    pub shares: BTreeMap<Emotion, f64>,
}

/// One bucket of a timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TimelinePoint {
    /// Bucket start.
    pub t: DateTime<Utc>,
    pub total: u64,
    pub counts: BTreeMap<Emotion, u64>,
}

/// `GET /api/v1/stats/timeline?bucket=minute|hour|day`; empty buckets are omitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Timeline {
    pub bucket: Bucket,
    pub points: Vec<TimelinePoint>,
}

/// `GET /api/v1/stats/heatmap?kind=agent_emotion`: `cells[i][j]` counts agent `rows[i]` × emotion `columns[j]`.
/// `kind=weekday_hour`: rows are weekdays Monday..Sunday, columns hours 0..23 (UTC shifted by `tz_offset_minutes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Heatmap {
    pub kind: HeatmapKind,
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    pub cells: Vec<Vec<u64>>,
    pub max: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HeatmapKind {
    AgentEmotion,
    WeekdayHour,
}

impl std::str::FromStr for HeatmapKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "agent_emotion" => Ok(HeatmapKind::AgentEmotion),
            "weekday_hour" => Ok(HeatmapKind::WeekdayHour),
            _ => Err(format!(
                "unknown heatmap kind `{s}` (agent_emotion or weekday_hour)"
            )),
        }
    }
}
