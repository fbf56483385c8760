//! Dashboard aggregates (`/api/v1/stats/*`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use crate::Emotion;

wire_enum! {
    /// Width of a timeline bucket.
    pub enum Bucket ("bucket") {
        Minute = "minute",
        Hour = "hour",
        Day = "day",
    }
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

wire_enum! {
    /// What `GET /api/v1/export` writes.
    #[derive(Default)]
    pub enum ExportFormat ("format") {
        #[default]
        Csv = "csv",
        Json = "json",
    }
}

filtered_query! {
    /// Query of `GET /api/v1/stats/distribution`.
    pub struct DistributionQuery {}
}

filtered_query! {
    /// Query of `GET /api/v1/stats/timeline`.
    pub struct TimelineQuery {
        /// Bucket width: minute, hour (default) or day.
        pub bucket: Option<Bucket>,
        /// Shift applied before bucketing by day, in minutes east of UTC (-840..=840).
        pub tz_offset_minutes: Option<i64>,
    }
}

filtered_query! {
    /// Query of `GET /api/v1/stats/heatmap`.
    pub struct HeatmapQuery {
        /// agent_emotion (default) or weekday_hour.
        pub kind: Option<HeatmapKind>,
        /// Shift applied before bucketing by weekday/hour, in minutes east of UTC (-840..=840).
        pub tz_offset_minutes: Option<i64>,
    }
}

filtered_query! {
    /// Query of `GET /api/v1/export`.
    pub struct ExportQuery {
        /// csv (default) or json.
        pub format: Option<ExportFormat>,
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

wire_enum! {
    pub enum HeatmapKind ("heatmap kind") {
        AgentEmotion = "agent_emotion",
        WeekdayHour = "weekday_hour",
    }
}
