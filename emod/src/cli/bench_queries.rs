//! The dashboard queries `emod bench store` times and, with `--check-plans`, holds to using an
//! index: every query the TUI dashboard and the API's stats and export make, with the admin's
//! filters (agent, date range, emotion) and without, over one hour, one day, one week and all
//! data. One list, so the plan check cannot miss a query the timings show.

use emo_api_types::{Bucket, HeatmapKind};

use crate::store::sessions::SessionFilter;
use crate::store::stats::StatsFilter;
use crate::store::Store;

/// The filters the queries use, relative to `day0` (midnight UTC yesterday: the seeded data
/// goes back in time from it).
pub struct Filters {
    all: StatsFilter,
    one: StatsFilter,
    week: StatsFilter,
    odd_range: StatsFilter,
    one_day: StatsFilter,
    one_hour: StatsFilter,
    agent_day: StatsFilter,
    agent_week: StatsFilter,
    all_sad: StatsFilter,
    agent_week_sad: StatsFilter,
    one_day_sad: StatsFilter,
    agent_day_sad: StatsFilter,
}

impl Filters {
    pub fn new(agent: uuid::Uuid, day0: i64) -> Filters {
        let hour = 3_600_000;
        let week_from = day0 - 7 * 86_400_000;
        let fused =
            |from_ms: Option<i64>, to_ms: Option<i64>, user_id: Option<uuid::Uuid>| StatsFilter {
                modality: Some(2),
                from_ms,
                to_ms,
                user_id,
                ..Default::default()
            };
        let all = fused(None, None, None);
        let one = fused(None, None, Some(agent));
        let week = fused(Some(week_from), Some(day0 + 86_400_000), None);
        let odd_range = fused(
            Some(week_from + 1_234_567),
            Some(day0 + 86_400_000 - 7_654_321),
            None,
        );
        let one_day = fused(Some(day0 + 8 * hour), Some(day0 + 16 * hour), None);
        let one_hour = fused(Some(day0 + 9 * hour), Some(day0 + 10 * hour), None);
        let agent_day = fused(Some(day0 + 8 * hour), Some(day0 + 16 * hour), Some(agent));
        let agent_week = fused(Some(week_from), Some(day0 + 86_400_000), Some(agent));
        let sad = |f: &StatsFilter| StatsFilter {
            emotion: Some(4),
            ..f.clone()
        };
        let (all_sad, agent_week_sad, one_day_sad) = (sad(&all), sad(&agent_week), sad(&one_day));
        let agent_day_sad = sad(&agent_day);
        Filters {
            all,
            one,
            week,
            odd_range,
            one_day,
            one_hour,
            agent_day,
            agent_week,
            all_sad,
            agent_week_sad,
            one_day_sad,
            agent_day_sad,
        }
    }
}

/// One dashboard query.
pub enum Query<'a> {
    Distribution(&'a StatsFilter),
    Timeline(&'a StatsFilter, Bucket),
    Heatmap(&'a StatsFilter, HeatmapKind),
    SessionsFirstPage,
    ExportFirstPage(&'a StatsFilter),
    /// A session's samples: a page of 500 at `offset`.
    SessionSamples(&'a str, i64),
}

impl Query<'_> {
    pub fn run(&self, store: &Store) -> anyhow::Result<()> {
        match self {
            Query::Distribution(f) => drop(store.distribution(f)?),
            Query::Timeline(f, b) => drop(store.timeline(f, *b)?),
            Query::Heatmap(f, k) => drop(store.heatmap(f, *k)?),
            Query::SessionsFirstPage => drop(store.list_sessions(&SessionFilter {
                limit: 50,
                ..Default::default()
            })?),
            Query::ExportFirstPage(f) => drop(store.export_page(f, None, 5000)?),
            Query::SessionSamples(sid, offset) => {
                drop(store.list_samples(sid, None, None, 500, *offset)?)
            }
        }
        Ok(())
    }
}

/// Every dashboard query, named, over `f`; `session` is one seeded session.
///
/// Long on purpose: one flat list, one entry per query the dashboard and the API make, so that
/// adding a query means adding one line where every other one is visible.
pub fn dashboard_queries<'a>(f: &'a Filters, session: &'a str) -> Vec<(&'static str, Query<'a>)> {
    vec![
        ("distribution, all agents", Query::Distribution(&f.all)),
        ("distribution, one agent", Query::Distribution(&f.one)),
        ("distribution, last week", Query::Distribution(&f.week)),
        (
            "distribution, week, unaligned (raw rows)",
            Query::Distribution(&f.odd_range),
        ),
        (
            "timeline by hour, all",
            Query::Timeline(&f.all, Bucket::Hour),
        ),
        (
            "timeline by day, one agent",
            Query::Timeline(&f.one, Bucket::Day),
        ),
        (
            "timeline by minute, one hour, all agents",
            Query::Timeline(&f.one_hour, Bucket::Minute),
        ),
        (
            "timeline by minute, one day, one agent",
            Query::Timeline(&f.agent_day, Bucket::Minute),
        ),
        (
            "timeline by minute, one day, all agents",
            Query::Timeline(&f.one_day, Bucket::Minute),
        ),
        (
            "heatmap agent x emotion, all",
            Query::Heatmap(&f.all, HeatmapKind::AgentEmotion),
        ),
        (
            "heatmap weekday x hour, all",
            Query::Heatmap(&f.all, HeatmapKind::WeekdayHour),
        ),
        (
            "distribution, one agent, one week",
            Query::Distribution(&f.agent_week),
        ),
        (
            "distribution, emotion sad, all",
            Query::Distribution(&f.all_sad),
        ),
        (
            "timeline by hour, one agent, week, sad",
            Query::Timeline(&f.agent_week_sad, Bucket::Hour),
        ),
        (
            "timeline by minute, one day, all, sad",
            Query::Timeline(&f.one_day_sad, Bucket::Minute),
        ),
        (
            "heatmap agent x emotion, one day",
            Query::Heatmap(&f.one_day, HeatmapKind::AgentEmotion),
        ),
        (
            "heatmap weekday x hour, one agent, week",
            Query::Heatmap(&f.agent_week, HeatmapKind::WeekdayHour),
        ),
        ("sessions list, first page", Query::SessionsFirstPage),
        (
            "export, first page (5,000 rows), one agent",
            Query::ExportFirstPage(&f.one),
        ),
        (
            "export, first page, all agents, one day",
            Query::ExportFirstPage(&f.one_day),
        ),
        (
            "export, first page, one agent, one day, sad",
            Query::ExportFirstPage(&f.agent_day_sad),
        ),
        (
            "session samples, first page (500)",
            Query::SessionSamples(session, 0),
        ),
        (
            "session samples, page at offset 3,000",
            Query::SessionSamples(session, 3000),
        ),
    ]
}
