//! Dashboard queries: distribution, timeline, heatmaps (the export is in `export.rs`, the
//! retention purge in `retention.rs`).
//!
//! Each query runs on the hourly roll-up when the requested range and bucket allow it (range
//! bounds on whole hours, buckets of an hour or more, a whole-hour time-zone offset) and on the raw
//! samples otherwise, so answers are exact either way and fast on millions of rows. The SQL is
//! built from integers and validated UUIDs only (nothing user-typed is spliced in) and uses
//! integer arithmetic both PostgreSQL and SQLite evaluate identically.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, SmallInt, Text};
use emo_api_types::{Bucket, Distribution, Emotion, Heatmap, HeatmapKind, Timeline, TimelinePoint};
use uuid::Uuid;

use super::rows::emotion_from_code;
use super::{ms_to_datetime, Store, StoreResult};
use crate::with_conn;

pub(super) const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// Stats filters resolved to ids, codes and epoch milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsFilter {
    pub user_id: Option<Uuid>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub emotion: Option<i16>,
    /// `None` = every modality (export); stats default to fused upstream.
    pub modality: Option<i16>,
    pub tz_offset_ms: i64,
}

const MINUTE_MS: i64 = 60_000;

/// Where one part of a query reads from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    Hourly,
    Minutely,
    Raw,
}

impl Source {
    /// (table, time column, count expression)
    fn sql(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Source::Hourly => ("sample_counts_hourly", "hour", "CAST(SUM(n) AS BIGINT)"),
            Source::Minutely => ("sample_counts_minute", "minute", "CAST(SUM(n) AS BIGINT)"),
            Source::Raw => ("samples", "t", "COUNT(*)"),
        }
    }
}

impl StatsFilter {
    /// Splits the query into parts whose counts add up to the exact answer: whole hours from
    /// the hourly roll-up, whole minutes at the range ends from the minute roll-up, and only
    /// sub-minute slivers from the raw samples. A roll-up is used only where its grain divides
    /// the bucket and, when the time zone matters, the time-zone shift.
    fn plan(&self, bucket_ms: i64, tz_matters: bool) -> Vec<(Source, StatsFilter)> {
        let grains: Vec<(Source, i64)> = [(Source::Hourly, HOUR_MS), (Source::Minutely, MINUTE_MS)]
            .into_iter()
            .filter(|(_, g)| {
                bucket_ms % g == 0 && (!tz_matters || self.tz_offset_ms.rem_euclid(*g) == 0)
            })
            .collect();
        let mut parts = Vec::new();
        split(self, &grains, &mut parts);
        parts
    }

    /// `WHERE` clause over `time_col` (prefixed columns when `alias` is set).
    pub(super) fn where_sql(&self, time_col: &str, alias: &str) -> String {
        let mut w = vec!["1 = 1".to_string()];
        if let Some(m) = self.modality {
            w.push(format!("{alias}modality = {m}"));
        }
        if let Some(u) = self.user_id {
            // Samples and roll-ups hold the user's compact key (`users.no`).
            w.push(format!(
                "{alias}user_no = (SELECT no FROM users WHERE id = '{}')",
                u.hyphenated()
            ));
        }
        if let Some(f) = self.from_ms {
            w.push(format!("{alias}{time_col} >= {f}"));
        }
        if let Some(t) = self.to_ms {
            w.push(format!("{alias}{time_col} < {t}"));
        }
        if let Some(e) = self.emotion {
            w.push(format!("{alias}emotion = {e}"));
        }
        w.join(" AND ")
    }
}

fn split(f: &StatsFilter, grains: &[(Source, i64)], out: &mut Vec<(Source, StatsFilter)>) {
    let Some(((source, g), finer)) = grains.split_first() else {
        out.push((Source::Raw, f.clone()));
        return;
    };
    let floor = |ms: i64| ms - ms.rem_euclid(*g);
    let inner_from = f.from_ms.map(|ms| floor(ms + g - 1));
    let inner_to = f.to_ms.map(floor);
    if let (Some(a), Some(b)) = (inner_from, inner_to) {
        if a >= b {
            split(f, finer, out);
            return;
        }
    }
    out.push((
        *source,
        StatsFilter {
            from_ms: inner_from,
            to_ms: inner_to,
            ..f.clone()
        },
    ));
    if let (Some(from), Some(a)) = (f.from_ms, inner_from) {
        if from != a {
            let edge = StatsFilter {
                from_ms: Some(from),
                to_ms: Some(a),
                ..f.clone()
            };
            split(&edge, finer, out);
        }
    }
    if let (Some(to), Some(b)) = (f.to_ms, inner_to) {
        if to != b {
            let edge = StatsFilter {
                from_ms: Some(b),
                to_ms: Some(to),
                ..f.clone()
            };
            split(&edge, finer, out);
        }
    }
}

#[derive(QueryableByName)]
struct EmotionCount {
    #[diesel(sql_type = SmallInt)]
    emotion: i16,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct BucketCount {
    #[diesel(sql_type = BigInt)]
    b: i64,
    #[diesel(sql_type = SmallInt)]
    emotion: i16,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct AgentCount {
    #[diesel(sql_type = Text)]
    username: String,
    #[diesel(sql_type = SmallInt)]
    emotion: i16,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct WeekdayHourCount {
    #[diesel(sql_type = BigInt)]
    wd: i64,
    #[diesel(sql_type = BigInt)]
    h: i64,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Store {
    pub fn distribution(&self, f: &StatsFilter) -> StoreResult<Distribution> {
        let mut rows: Vec<EmotionCount> = Vec::new();
        for (source, part) in f.plan(HOUR_MS, false) {
            let (table, time_col, count) = source.sql();
            let sql = format!(
                "SELECT emotion, {count} AS n FROM {table} WHERE {} GROUP BY emotion",
                part.where_sql(time_col, "")
            );
            let part_rows: Vec<EmotionCount> =
                with_conn!(self, |c| diesel::sql_query(&sql).load(c)?);
            rows.extend(part_rows);
        }
        let mut counts = BTreeMap::new();
        let mut total = 0u64;
        for r in rows {
            *counts.entry(emotion_from_code(r.emotion)?).or_insert(0u64) += r.n as u64;
            total += r.n as u64;
        }
        let shares = counts
            .iter()
            .map(|(e, n)| (*e, *n as f64 / total.max(1) as f64))
            .collect();
        Ok(Distribution {
            total,
            counts,
            shares,
        })
    }

    pub fn timeline(&self, f: &StatsFilter, bucket: Bucket) -> StoreResult<Timeline> {
        let b = bucket.millis();
        let tz = f.tz_offset_ms;
        let mut rows: Vec<BucketCount> = Vec::new();
        for (source, part) in f.plan(b, true) {
            let (table, time_col, count) = source.sql();
            let sql = format!(
                "SELECT ((({time_col} + {tz}) / {b}) * {b} - {tz}) AS b, emotion, {count} AS n \
                 FROM {table} WHERE {} GROUP BY 1, emotion",
                part.where_sql(time_col, "")
            );
            let part_rows: Vec<BucketCount> =
                with_conn!(self, |c| diesel::sql_query(&sql).load(c)?);
            rows.extend(part_rows);
        }
        rows.sort_by_key(|r| r.b);
        let mut points: Vec<TimelinePoint> = Vec::new();
        for r in rows {
            let t = ms_to_datetime(r.b);
            if points.last().is_none_or(|p| p.t != t) {
                points.push(TimelinePoint {
                    t,
                    total: 0,
                    counts: BTreeMap::new(),
                });
            }
            if let Some(p) = points.last_mut() {
                p.total += r.n as u64;
                *p.counts.entry(emotion_from_code(r.emotion)?).or_insert(0) += r.n as u64;
            }
        }
        Ok(Timeline { bucket, points })
    }

    pub fn heatmap(&self, f: &StatsFilter, kind: HeatmapKind) -> StoreResult<Heatmap> {
        let heatmap = match kind {
            HeatmapKind::AgentEmotion => {
                let mut rows: Vec<AgentCount> = Vec::new();
                for (source, part) in f.plan(HOUR_MS, false) {
                    let (table, time_col, count) = source.sql();
                    let sql = format!(
                        "SELECT u.username AS username, x.emotion AS emotion, {} AS n \
                         FROM {table} x JOIN users u ON u.no = x.user_no WHERE {} \
                         GROUP BY u.username, x.emotion",
                        count.replace("SUM(n)", "SUM(x.n)"),
                        part.where_sql(time_col, "x.")
                    );
                    let part_rows: Vec<AgentCount> =
                        with_conn!(self, |c| diesel::sql_query(&sql).load(c)?);
                    rows.extend(part_rows);
                }
                let mut agents: Vec<String> = rows.iter().map(|r| r.username.clone()).collect();
                agents.sort();
                agents.dedup();
                let mut cells = vec![vec![0u64; Emotion::ALL.len()]; agents.len()];
                for r in &rows {
                    if let Ok(i) = agents.binary_search(&r.username) {
                        cells[i][emotion_from_code(r.emotion)?.index()] += r.n as u64;
                    }
                }
                Heatmap {
                    kind,
                    rows: agents,
                    columns: Emotion::ALL.iter().map(|e| e.to_string()).collect(),
                    cells,
                    max: 0,
                }
            }
            HeatmapKind::WeekdayHour => {
                let tz = f.tz_offset_ms;
                let mut rows: Vec<WeekdayHourCount> = Vec::new();
                for (source, part) in f.plan(HOUR_MS, true) {
                    let (table, time_col, count) = source.sql();
                    // 1970-01-01 was a Thursday: (days + 3) % 7 numbers Monday as 0.
                    let sql = format!(
                        "SELECT ((({time_col} + {tz}) / {DAY_MS}) + 3) % 7 AS wd, \
                         (({time_col} + {tz}) / {HOUR_MS}) % 24 AS h, {count} AS n \
                         FROM {table} WHERE {} GROUP BY 1, 2",
                        part.where_sql(time_col, "")
                    );
                    let part_rows: Vec<WeekdayHourCount> =
                        with_conn!(self, |c| diesel::sql_query(&sql).load(c)?);
                    rows.extend(part_rows);
                }
                let mut cells = vec![vec![0u64; 24]; 7];
                for r in rows {
                    cells[r.wd.rem_euclid(7) as usize][r.h.rem_euclid(24) as usize] += r.n as u64;
                }
                Heatmap {
                    kind,
                    rows: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                    columns: (0..24).map(|h| format!("{h:02}")).collect(),
                    cells,
                    max: 0,
                }
            }
        };
        let max = heatmap.cells.iter().flatten().copied().max().unwrap_or(0);
        Ok(Heatmap { max, ..heatmap })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(parts: &[(Source, StatsFilter)]) -> Vec<(Source, Option<i64>, Option<i64>)> {
        parts
            .iter()
            .map(|(s, p)| (*s, p.from_ms, p.to_ms))
            .collect()
    }

    #[test]
    fn plans_cover_the_range_exactly() {
        let (h, m) = (HOUR_MS, MINUTE_MS);
        let f = StatsFilter::default();
        assert_eq!(ranges(&f.plan(h, true)), vec![(Source::Hourly, None, None)]);
        assert_eq!(
            ranges(&f.plan(m, true)),
            vec![(Source::Minutely, None, None)]
        );
        assert_eq!(ranges(&f.plan(1000, true)), vec![(Source::Raw, None, None)]);
        // Unaligned ends: hours, then minutes, then raw slivers.
        let f = StatsFilter {
            from_ms: Some(5 * h + 10),
            to_ms: Some(9 * h + 2 * m + 20),
            ..Default::default()
        };
        assert_eq!(
            ranges(&f.plan(DAY_MS, true)),
            vec![
                (Source::Hourly, Some(6 * h), Some(9 * h)),
                (Source::Minutely, Some(5 * h + m), Some(6 * h)),
                (Source::Raw, Some(5 * h + 10), Some(5 * h + m)),
                (Source::Minutely, Some(9 * h), Some(9 * h + 2 * m)),
                (Source::Raw, Some(9 * h + 2 * m), Some(9 * h + 2 * m + 20)),
            ]
        );
        // Inside one minute: raw only.
        let f = StatsFilter {
            from_ms: Some(5 * h + 10),
            to_ms: Some(5 * h + 20),
            ..Default::default()
        };
        assert_eq!(
            ranges(&f.plan(h, false)),
            vec![(Source::Raw, Some(5 * h + 10), Some(5 * h + 20))]
        );
        // Half-hour zones skip the hourly roll-up where the zone matters, not for plain counts.
        let f = StatsFilter {
            tz_offset_ms: 30 * m,
            ..Default::default()
        };
        assert_eq!(f.plan(h, true)[0].0, Source::Minutely);
        assert_eq!(f.plan(h, false)[0].0, Source::Hourly);
        let f = StatsFilter {
            tz_offset_ms: 30 * 1000,
            ..Default::default()
        };
        assert_eq!(f.plan(h, true)[0].0, Source::Raw);
    }

    #[test]
    fn where_clause_uses_only_typed_values() {
        let f = StatsFilter {
            user_id: Some(Uuid::nil()),
            from_ms: Some(1),
            to_ms: Some(2),
            emotion: Some(3),
            modality: Some(2),
            tz_offset_ms: 0,
        };
        assert_eq!(
            f.where_sql("t", "s."),
            "1 = 1 AND s.modality = 2 \
             AND s.user_no = (SELECT no FROM users WHERE id = '00000000-0000-0000-0000-000000000000') \
             AND s.t >= 1 AND s.t < 2 AND s.emotion = 3"
        );
    }
}
