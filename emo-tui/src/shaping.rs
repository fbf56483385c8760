//! Pure data shaping for the widgets: time parsing, bucketing, scaling and the heatmap colour
//! ramp. Nothing here draws; everything here is unit-tested.

use std::collections::BTreeMap;

use chrono::{
    DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Utc,
};
use emo_api_types::{Bucket, Emotion, EndReason, Modality, Sample, TimelinePoint};

/// The earliest instant a date field accepts (the API speaks RFC 3339: four-digit years).
pub fn earliest_time() -> DateTime<Utc> {
    DateTime::<Utc>::from_naive_utc_and_offset(
        NaiveDate::from_ymd_opt(1, 1, 1)
            .unwrap_or(NaiveDate::MIN)
            .and_time(NaiveTime::MIN),
        Utc,
    )
}

/// The latest instant a date field accepts (the last second of year 9999).
pub fn latest_time() -> DateTime<Utc> {
    DateTime::<Utc>::from_naive_utc_and_offset(
        NaiveDate::from_ymd_opt(9999, 12, 31)
            .unwrap_or(NaiveDate::MAX)
            .and_hms_opt(23, 59, 59)
            .unwrap_or(NaiveDateTime::MAX),
        Utc,
    )
}

/// Parses a date-range field. Accepted: empty (unbounded), `today`, `yesterday`, `now`,
/// relative `-30m`, `-24h`, `-7d`, `-2w`, `YYYY-MM-DD`, `YYYY-MM-DD HH:MM`, RFC 3339.
/// Dates without a time are local midnight; with `end = true` a bare date means the *end* of
/// that day (the next midnight), so `from 2026-01-01 to 2026-01-01` covers the whole day.
///
/// Never panics, whatever is typed: anything unreadable or outside years 1..=9999 is an `Err`
/// with a sentence for the status line.
pub fn parse_time_input(
    s: &str,
    now: DateTime<Utc>,
    end: bool,
    tz: FixedOffset,
) -> Result<Option<DateTime<Utc>>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let t = parse_time_bound(s, now, end, tz)?;
    if t < earliest_time() || t > latest_time() {
        return Err(format!("`{s}` is out of range (years 1 to 9999)"));
    }
    Ok(Some(t))
}

fn parse_time_bound(
    s: &str,
    now: DateTime<Utc>,
    end: bool,
    tz: FixedOffset,
) -> Result<DateTime<Utc>, String> {
    let out_of_range = || format!("`{s}` is out of range (years 1 to 9999)");
    let local_midnight = |d: NaiveDate| -> Result<DateTime<Utc>, String> {
        let d = if end { d.succ_opt() } else { Some(d) };
        d.and_then(|d| {
            tz.from_local_datetime(&d.and_time(NaiveTime::MIN))
                .single()
                .map(|t| t.with_timezone(&Utc))
        })
        .ok_or_else(out_of_range)
    };
    let today = now.with_timezone(&tz).date_naive();
    match s.to_ascii_lowercase().as_str() {
        "now" => return Ok(now),
        "today" => return local_midnight(today),
        "yesterday" => {
            return today
                .pred_opt()
                .ok_or_else(out_of_range)
                .and_then(local_midnight)
        }
        _ => {}
    }
    // Relative: `-` then digits then a unit. Split on characters, not bytes (`-5€`).
    if let Some(rel) = s.strip_prefix('-') {
        if rel.starts_with(|c: char| c.is_ascii_digit()) {
            let split = rel.find(|c: char| !c.is_ascii_digit()).unwrap_or(rel.len());
            let (num, unit) = rel.split_at(split);
            let unit = unit.trim();
            let too_far = || format!("`{s}` is too far back");
            let n: i64 = num.parse().map_err(|_| too_far())?;
            let d = match unit {
                "m" => TimeDelta::try_minutes(n),
                "h" => TimeDelta::try_hours(n),
                "d" => TimeDelta::try_days(n),
                "w" => TimeDelta::try_weeks(n),
                "" => return Err(format!("`{s}` needs a unit: m, h, d or w (e.g. -7d)")),
                _ => return Err(format!("unknown unit in `{s}` (use m, h, d or w)")),
            };
            return d
                .and_then(|d| now.checked_sub_signed(d))
                .ok_or_else(too_far);
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return local_midnight(d);
    }
    for fmt in ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return tz
                .from_local_datetime(&dt)
                .single()
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(out_of_range);
        }
    }
    Err(format!(
        "cannot read `{s}` as a time (try 2026-01-31, 2026-01-31 14:00, -7d, today)"
    ))
}

/// A timeline bucket that gives a useful number of points for the range.
pub fn choose_bucket(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Bucket {
    let Some(from) = from else {
        return Bucket::Day;
    };
    let span = to.unwrap_or(now) - from;
    if span <= Duration::hours(6) {
        Bucket::Minute
    } else if span <= Duration::days(14) {
        Bucket::Hour
    } else {
        Bucket::Day
    }
}

/// The emotions a chart shows: the 7 face classes, plus `calm` only when it has data.
pub fn shown_emotions(has_calm: bool) -> Vec<Emotion> {
    let mut v = Emotion::FACE.to_vec();
    if has_calm {
        v.push(Emotion::Calm);
    }
    v
}

/// Re-buckets a (sparse) stats timeline into `width` columns over `[from, to)`: for each emotion,
/// the percentage (0..=100) of that column's estimates. Empty columns are 0.
/// Missing bounds are taken from the data.
pub fn timeline_columns(
    points: &[TimelinePoint],
    bucket: Bucket,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    width: usize,
    emotions: &[Emotion],
) -> Vec<(Emotion, Vec<u64>)> {
    let width = width.max(1);
    if points.is_empty() {
        return emotions.iter().map(|e| (*e, vec![0; width])).collect();
    }
    let first = points.iter().map(|p| p.t).min().unwrap_or_default();
    let last = points.iter().map(|p| p.t).max().unwrap_or_default()
        + Duration::milliseconds(bucket.millis());
    let from = from.unwrap_or(first);
    let to = to.unwrap_or(last).max(from + Duration::milliseconds(1));
    let span = (to - from).num_milliseconds().max(1) as i128;
    // Fewer buckets than columns: compute one value per bucket, then stretch (no fake gaps).
    let buckets = (span as u64).div_ceil(bucket.millis().max(1) as u64).max(1) as usize;
    let out = timeline_into(points, from, to, span, width.min(buckets), emotions);
    stretch(out, width)
}

/// Widens each series to `width` by repeating values (nearest-lower index).
fn stretch(series: Vec<(Emotion, Vec<u64>)>, width: usize) -> Vec<(Emotion, Vec<u64>)> {
    series
        .into_iter()
        .map(|(e, v)| {
            if v.len() >= width || v.is_empty() {
                return (e, v);
            }
            let n = v.len();
            (e, (0..width).map(|c| v[c * n / width]).collect())
        })
        .collect()
}

fn timeline_into(
    points: &[TimelinePoint],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    span: i128,
    width: usize,
    emotions: &[Emotion],
) -> Vec<(Emotion, Vec<u64>)> {
    let mut out: Vec<(Emotion, Vec<u64>)> = emotions.iter().map(|e| (*e, vec![0; width])).collect();
    let mut totals = vec![0u64; width];
    let mut counts: Vec<BTreeMap<Emotion, u64>> = vec![BTreeMap::new(); width];
    for p in points {
        if p.t < from || p.t >= to {
            continue;
        }
        let col = (((p.t - from).num_milliseconds() as i128) * width as i128 / span) as usize;
        let col = col.min(width - 1);
        totals[col] += p.total;
        for (e, c) in &p.counts {
            *counts[col].entry(e.to_face_space_if(emotions)).or_default() += c;
        }
    }
    for (e, series) in out.iter_mut() {
        for col in 0..width {
            let c = counts[col].get(e).copied().unwrap_or(0);
            if let Some(v) = (c * 100 + totals[col] / 2).checked_div(totals[col]) {
                series[col] = v;
            }
        }
    }
    out
}

trait FoldIfAbsent {
    fn to_face_space_if(self, shown: &[Emotion]) -> Emotion;
}

impl FoldIfAbsent for Emotion {
    /// Folds `calm` into `neutral` when the chart does not show `calm`.
    fn to_face_space_if(self, shown: &[Emotion]) -> Emotion {
        if shown.contains(&self) {
            self
        } else {
            self.to_face_space()
        }
    }
}

/// The modality a session timeline shows by default: fused if present, else face, else voice.
pub fn preferred_modality(samples: &[Sample]) -> Option<Modality> {
    [Modality::Fused, Modality::Face, Modality::Voice]
        .into_iter()
        .find(|m| samples.iter().any(|s| s.modality == *m))
}

/// Per-emotion series (0..=100) of one session's samples of `modality`, in `width` columns over
/// `[start, end]`: the mean probability of the emotion among the samples of each column (a sample
/// without probabilities counts as 100 % for its label). Columns without samples are 0.
pub fn sample_columns(
    samples: &[Sample],
    modality: Modality,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    width: usize,
    emotions: &[Emotion],
) -> Vec<(Emotion, Vec<u64>)> {
    let width = width.max(1);
    let span = (end - start).num_milliseconds().max(1) as i128;
    // Samples come about once a second: never use more columns than seconds.
    let secs = (span as u64).div_ceil(1000).max(1) as usize;
    if secs < width {
        return stretch(
            sample_columns(samples, modality, start, end, secs, emotions),
            width,
        );
    }
    let mut sums: Vec<BTreeMap<Emotion, f64>> = vec![BTreeMap::new(); width];
    let mut n = vec![0u32; width];
    for s in samples.iter().filter(|s| s.modality == modality) {
        let off = (s.t - start).num_milliseconds().max(0) as i128;
        let col = ((off * width as i128 / span) as usize).min(width - 1);
        n[col] += 1;
        if s.probabilities.is_empty() {
            *sums[col]
                .entry(s.emotion.to_face_space_if(emotions))
                .or_default() += 1.0;
        } else {
            for (e, p) in &s.probabilities {
                *sums[col].entry(e.to_face_space_if(emotions)).or_default() += p.clamp(0.0, 1.0);
            }
        }
    }
    emotions
        .iter()
        .map(|e| {
            let series = (0..width)
                .map(|c| {
                    if n[c] == 0 {
                        0
                    } else {
                        let v = sums[c].get(e).copied().unwrap_or(0.0) / n[c] as f64;
                        (v * 100.0).round().clamp(0.0, 100.0) as u64
                    }
                })
                .collect();
            (*e, series)
        })
        .collect()
}

/// Number of heatmap intensity levels, 0 (empty) included.
pub const HEAT_LEVELS: u8 = 5;

/// Intensity level of a heatmap cell: 0 for an empty cell, else 1..=HEAT_LEVELS-1 (linear in
/// `count / max`, rounded up so that any non-zero cell is visible).
pub fn heat_level(count: u64, max: u64) -> u8 {
    if count == 0 || max == 0 {
        return 0;
    }
    // In u128: `count * steps` must not overflow for any count the server sends.
    let steps = (HEAT_LEVELS - 1) as u128;
    let l = (count.min(max) as u128 * steps).div_ceil(max as u128);
    l.clamp(1, steps) as u8
}

/// The glyph for a level: readable without colour (NO_COLOR, monochrome terminals).
pub fn heat_glyph(level: u8) -> char {
    match level {
        0 => '·',
        1 => '░',
        2 => '▒',
        3 => '▓',
        _ => '█',
    }
}

/// Legend entries: (level, "lo–hi") count ranges for each level given the map's maximum.
pub fn heat_legend(max: u64) -> Vec<(u8, String)> {
    let mut v = vec![(0u8, "0".to_string())];
    if max == 0 {
        return v;
    }
    let steps = (HEAT_LEVELS - 1) as u64;
    let mut prev_hi = 0u64;
    for l in 1..=steps {
        // Largest count with level <= l: floor(l * max / steps) (in u128: no overflow).
        let hi = (l as u128 * max as u128 / steps as u128) as u64;
        if hi > prev_hi {
            let lo = prev_hi + 1;
            let label = if lo == hi {
                format!("{hi}")
            } else {
                format!("{lo}-{hi}")
            };
            v.push((l as u8, label));
            prev_hi = hi;
        }
    }
    v
}

/// Length in cells of a horizontal bar for `share` (0..=1) in `width` cells.
pub fn bar_len(share: f64, width: usize) -> usize {
    if !share.is_finite() || share <= 0.0 || width == 0 {
        return 0;
    }
    ((share.min(1.0) * width as f64).round() as usize).clamp(1, width)
}

/// Why a session stopped, as the session detail says it after "stopped" (short: the detail's
/// first line has to fit 80 columns with the times and the label).
pub fn end_reason_text(r: EndReason) -> &'static str {
    match r {
        EndReason::Requested => "on request",
        EndReason::SourcesEnded => "sources ended",
        EndReason::UserDisabled => "user disabled",
    }
}

/// `h:mm:ss` / `m:ss`.
pub fn fmt_duration(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 {
        secs.round() as u64
    } else {
        0
    };
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// Cycles through `None` then every option: the picker behind typed-or-picked filter fields.
pub fn cycle<T: Clone + PartialEq>(options: &[T], current: Option<&T>, forward: bool) -> Option<T> {
    if options.is_empty() {
        return None;
    }
    let pos = current.and_then(|c| options.iter().position(|o| o == c));
    let n = options.len();
    let next = match (pos, forward) {
        (None, true) => Some(0),
        (None, false) => Some(n - 1),
        (Some(i), true) if i + 1 < n => Some(i + 1),
        (Some(_), true) => None,
        (Some(0), false) => None,
        (Some(i), false) => Some(i - 1),
    };
    next.map(|i| options[i].clone())
}

/// Truncates to `width` characters with an ellipsis.
pub fn ellipsize(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn every_end_reason_has_its_own_words() {
        let words: std::collections::BTreeSet<_> =
            EndReason::ALL.iter().map(|r| end_reason_text(*r)).collect();
        assert_eq!(words.len(), EndReason::ALL.len());
        assert!(end_reason_text(EndReason::SourcesEnded).contains("sources ended"));
    }

    use super::*;
    use chrono::Datelike;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn parses_time_inputs() {
        let now = t("2026-03-10T15:30:00Z");
        let utc = FixedOffset::east_opt(0).unwrap();
        let p = |s: &str, end| parse_time_input(s, now, end, utc);
        assert_eq!(p("", false).unwrap(), None);
        assert_eq!(p("now", false).unwrap(), Some(now));
        assert_eq!(p("-7d", false).unwrap(), Some(t("2026-03-03T15:30:00Z")));
        assert_eq!(p("-90m", false).unwrap(), Some(t("2026-03-10T14:00:00Z")));
        assert_eq!(p("today", false).unwrap(), Some(t("2026-03-10T00:00:00Z")));
        assert_eq!(p("today", true).unwrap(), Some(t("2026-03-11T00:00:00Z")));
        assert_eq!(
            p("yesterday", false).unwrap(),
            Some(t("2026-03-09T00:00:00Z"))
        );
        assert_eq!(
            p("2026-01-31", false).unwrap(),
            Some(t("2026-01-31T00:00:00Z"))
        );
        assert_eq!(
            p("2026-01-31", true).unwrap(),
            Some(t("2026-02-01T00:00:00Z"))
        );
        assert_eq!(
            p("2026-01-31 14:05", true).unwrap(),
            Some(t("2026-01-31T14:05:00Z"))
        );
        assert_eq!(
            p("2026-01-31T14:05:00+01:00", false).unwrap(),
            Some(t("2026-01-31T13:05:00Z"))
        );
        assert!(p("next tuesday", false).is_err());
        assert!(p("-3y", false).is_err());
        // Local midnight in UTC+2 is 22:00 UTC the day before.
        let cest = FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(
            parse_time_input("2026-01-31", now, false, cest).unwrap(),
            Some(t("2026-01-30T22:00:00Z"))
        );
    }

    #[test]
    fn relative_times_with_odd_characters_or_huge_numbers_are_errors_not_panics() {
        let now = t("2026-03-10T15:30:00Z");
        let utc = FixedOffset::east_opt(0).unwrap();
        let p = |s: &str| parse_time_input(s, now, false, utc);
        // Multi-byte last characters used to panic in `split_at`.
        for s in ["-5€", "-é", "-5é", "-€", "-1日", "-٣d", "-5\u{301}"] {
            let e = p(s).unwrap_err();
            assert!(e.contains(s), "{s}: {e}");
        }
        assert!(p("-5€").unwrap_err().contains("unknown unit"));
        // Huge numbers used to panic in `Duration::days` / `now - d`.
        for s in [
            "-99999999d",
            "-99999999w",
            "-9999999999999h",
            "-9223372036854775807m",
            "-9223372036854775808m",
            "-99999999999999999999999d",
            "-3000000d",
        ] {
            let e = p(s).unwrap_err();
            assert!(
                e.contains("too far back") || e.contains("out of range"),
                "{s}: {e}"
            );
        }
        assert!(p("-5").unwrap_err().contains("needs a unit"));
        assert_eq!(p("-0d").unwrap(), Some(now));
        assert_eq!(
            p("- 7d").ok(),
            None,
            "a space after the sign is not a number"
        );
        assert_eq!(p("-7 d").unwrap(), Some(t("2026-03-03T15:30:00Z")));
        assert_eq!(p("-2w").unwrap(), Some(t("2026-02-24T15:30:00Z")));
        assert_eq!(p("-24h").unwrap(), Some(t("2026-03-09T15:30:00Z")));
        // The far past that is still a valid four-digit year is accepted.
        assert_eq!(p("-700000d").unwrap().map(|t| t.year() > 0), Some(true));
    }

    /// A table of odd inputs: none panics, each gives a sensible answer, in several time zones.
    #[test]
    fn odd_time_inputs_never_panic() {
        let now = t("2026-03-10T15:30:00Z");
        let ok_cases: &[(&str, Option<&str>)] = &[
            ("", None),
            ("   ", None),
            ("NOW", Some("2026-03-10T15:30:00Z")),
            (" Today ", Some("2026-03-10T00:00:00Z")),
            ("2026-03-10T15:30:00Z", Some("2026-03-10T15:30:00Z")),
            (
                "2026-03-10T15:30:00.5+00:00",
                Some("2026-03-10T15:30:00.5Z"),
            ),
            ("0001-01-01", Some("0001-01-01T00:00:00Z")),
            ("9999-12-31 23:59", Some("9999-12-31T23:59:00Z")),
            ("2024-02-29", Some("2024-02-29T00:00:00Z")),
        ];
        let utc = FixedOffset::east_opt(0).unwrap();
        for (s, want) in ok_cases {
            let got = parse_time_input(s, now, false, utc);
            assert_eq!(got, Ok(want.map(t)), "{s:?}");
        }
        let err_cases = [
            "-",
            "-d",
            "--5d",
            "-+5d",
            "-5-d",
            "é",
            "€€€",
            "-",
            "+5d",
            "5d",
            "0",
            "d",
            "-e5d",
            "2026-02-30",
            "2026-13-01",
            "2025-02-29",
            "2026-01-01 25:00",
            "0000-12-31",
            "10000-01-01",
            "+10000-01-01",
            "-0001-01-01",
            "262143-01-01",
            "999999999-01-01",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "\u{0}",
            "\t-\n",
            "2026-01-01\u{0}",
            "🙂",
            "-🙂",
            "-5🙂",
            "today!",
            "yesterday-ish",
        ];
        for s in err_cases {
            assert!(parse_time_input(s, now, false, utc).is_err(), "{s:?}");
        }
        // Every case in every time zone, as a start and as an end: never a panic, and an `Ok`
        // is always within the accepted range.
        let zones = [
            -12 * 3600,
            -(3 * 3600 + 1800),
            0,
            5 * 3600 + 2700,
            14 * 3600,
        ];
        let all = ok_cases.iter().map(|c| c.0).chain(err_cases).chain([
            "9999-12-31",
            "0001-01-01",
            "9999-12-31 23:59:59",
            "0001-01-01 00:00",
            "yesterday",
            "-1000000w",
            "-5€",
        ]);
        for s in all {
            for z in zones {
                let tz = FixedOffset::east_opt(z).unwrap();
                for end in [false, true] {
                    for now in [now, earliest_time(), latest_time()] {
                        if let Ok(Some(v)) = parse_time_input(s, now, end, tz) {
                            assert!(v >= earliest_time() && v <= latest_time(), "{s:?} {z}");
                        }
                    }
                }
            }
        }
        // A bare end date on the last day has no next midnight within range: an error.
        assert!(parse_time_input("9999-12-31", now, true, utc).is_err());
    }

    #[test]
    fn bucket_follows_range() {
        let now = t("2026-03-10T15:30:00Z");
        assert_eq!(choose_bucket(None, None, now), Bucket::Day);
        assert_eq!(
            choose_bucket(Some(now - Duration::hours(2)), None, now),
            Bucket::Minute
        );
        assert_eq!(
            choose_bucket(Some(now - Duration::days(7)), Some(now), now),
            Bucket::Hour
        );
        assert_eq!(
            choose_bucket(Some(now - Duration::days(60)), None, now),
            Bucket::Day
        );
    }

    fn point(ts: &str, counts: &[(Emotion, u64)]) -> TimelinePoint {
        TimelinePoint {
            t: t(ts),
            total: counts.iter().map(|c| c.1).sum(),
            counts: counts.iter().copied().collect(),
        }
    }

    #[test]
    fn timeline_rebuckets_into_columns_as_percentages() {
        let pts = vec![
            point(
                "2026-03-10T00:00:00Z",
                &[(Emotion::Happy, 3), (Emotion::Sad, 1)],
            ),
            point(
                "2026-03-10T01:00:00Z",
                &[(Emotion::Happy, 1), (Emotion::Calm, 1)],
            ),
            point("2026-03-10T03:00:00Z", &[(Emotion::Sad, 2)]),
        ];
        let emos = shown_emotions(false);
        let cols = timeline_columns(
            &pts,
            Bucket::Hour,
            Some(t("2026-03-10T00:00:00Z")),
            Some(t("2026-03-10T04:00:00Z")),
            4,
            &emos,
        );
        let get = |e: Emotion| cols.iter().find(|c| c.0 == e).unwrap().1.clone();
        assert_eq!(get(Emotion::Happy), vec![75, 50, 0, 0]);
        assert_eq!(get(Emotion::Sad), vec![25, 0, 0, 100]);
        // calm is not shown, so it folds into neutral.
        assert_eq!(get(Emotion::Neutral), vec![0, 50, 0, 0]);
        // Bounds from the data; 2 columns over 00:00..04:00.
        let cols = timeline_columns(&pts, Bucket::Hour, None, None, 2, &emos);
        assert_eq!(
            cols.iter().find(|c| c.0 == Emotion::Sad).unwrap().1,
            vec![17, 100]
        );
        // 4 hourly buckets over 8 columns: stretched, not gappy.
        let cols = timeline_columns(
            &pts,
            Bucket::Hour,
            Some(t("2026-03-10T00:00:00Z")),
            Some(t("2026-03-10T04:00:00Z")),
            8,
            &emos,
        );
        assert_eq!(
            cols.iter().find(|c| c.0 == Emotion::Happy).unwrap().1,
            vec![75, 75, 50, 50, 0, 0, 0, 0]
        );
        assert!(timeline_columns(&[], Bucket::Hour, None, None, 3, &emos)
            .iter()
            .all(|c| c.1 == vec![0, 0, 0]));
    }

    #[test]
    fn samples_become_mean_probability_columns() {
        let sid = uuid::Uuid::nil();
        let s = |ts: &str, m: Modality, e: Emotion, probs: &[(Emotion, f64)]| Sample {
            session_id: sid,
            t: t(ts),
            modality: m,
            emotion: e,
            confidence: 0.9,
            probabilities: probs.iter().copied().collect(),
        };
        let samples = vec![
            s(
                "2026-03-10T00:00:00Z",
                Modality::Fused,
                Emotion::Happy,
                &[(Emotion::Happy, 0.8), (Emotion::Sad, 0.2)],
            ),
            s(
                "2026-03-10T00:00:01Z",
                Modality::Fused,
                Emotion::Happy,
                &[(Emotion::Happy, 0.6), (Emotion::Sad, 0.4)],
            ),
            s("2026-03-10T00:00:03Z", Modality::Fused, Emotion::Sad, &[]),
            s("2026-03-10T00:00:03Z", Modality::Face, Emotion::Angry, &[]),
        ];
        assert_eq!(preferred_modality(&samples), Some(Modality::Fused));
        assert_eq!(preferred_modality(&samples[3..]), Some(Modality::Face));
        assert_eq!(preferred_modality(&[]), None);
        let emos = shown_emotions(false);
        let cols = sample_columns(
            &samples,
            Modality::Fused,
            t("2026-03-10T00:00:00Z"),
            t("2026-03-10T00:00:04Z"),
            2,
            &emos,
        );
        let get = |e: Emotion| cols.iter().find(|c| c.0 == e).unwrap().1.clone();
        assert_eq!(get(Emotion::Happy), vec![70, 0]);
        assert_eq!(get(Emotion::Sad), vec![30, 100]);
        assert_eq!(get(Emotion::Angry), vec![0, 0]);
    }

    #[test]
    fn heat_levels_and_legend() {
        assert_eq!(heat_level(0, 10), 0);
        assert_eq!(heat_level(1, 10), 1);
        assert_eq!(heat_level(5, 10), 2);
        assert_eq!(heat_level(6, 10), 3);
        assert_eq!(heat_level(10, 10), 4);
        assert_eq!(heat_level(12, 10), 4);
        assert_eq!(heat_level(3, 0), 0);
        assert_eq!(
            heat_legend(100),
            vec![
                (0, "0".into()),
                (1, "1-25".into()),
                (2, "26-50".into()),
                (3, "51-75".into()),
                (4, "76-100".into())
            ]
        );
        // Small maxima skip empty ranges and stay consistent with heat_level.
        let legend = heat_legend(2);
        assert_eq!(
            legend,
            vec![(0, "0".into()), (2, "1".into()), (4, "2".into())]
        );
        assert_eq!(heat_level(1, 2), 2);
        assert_eq!(heat_level(2, 2), 4);
        assert_eq!(heat_legend(0), vec![(0, "0".into())]);
        // Huge maxima do not overflow.
        assert_eq!(heat_level(u64::MAX, u64::MAX), 4);
        assert_eq!(heat_level(1, u64::MAX), 1);
        assert_eq!(heat_level(u64::MAX / 2, u64::MAX), 2);
        assert_eq!(heat_legend(u64::MAX).len(), 5);
        assert_ne!(heat_glyph(0), heat_glyph(4));
    }

    #[test]
    fn small_helpers() {
        assert_eq!(bar_len(0.0, 20), 0);
        assert_eq!(bar_len(0.001, 20), 1);
        assert_eq!(bar_len(0.5, 20), 10);
        assert_eq!(bar_len(2.0, 20), 20);
        assert_eq!(bar_len(f64::NAN, 20), 0);
        assert_eq!(bar_len(0.5, 0), 0);
        assert_eq!(fmt_duration(0.0), "0:00");
        assert_eq!(fmt_duration(75.4), "1:15");
        assert_eq!(fmt_duration(3725.0), "1:02:05");
        let opts = ["a", "b"];
        assert_eq!(cycle(&opts, None, true), Some("a"));
        assert_eq!(cycle(&opts, Some(&"a"), true), Some("b"));
        assert_eq!(cycle(&opts, Some(&"b"), true), None);
        assert_eq!(cycle(&opts, None, false), Some("b"));
        assert_eq!(cycle(&opts, Some(&"a"), false), None);
        assert_eq!(ellipsize("abcdef", 4), "abc…");
        assert_eq!(ellipsize("abc", 4), "abc");
    }
}
