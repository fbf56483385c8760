//! Export pages: samples with their user's name, in (t, session, modality) order, by cursor.
//!
//! Neither way of reading a page sorts more than a page's worth of time (issue 30: the samples
//! have no (user, t) index, and on PostgreSQL their index on t is BRIN, which finds rows by time
//! but does not return them in order):
//! * **one agent** (`agent=`): that user's sessions in start order, each read through the
//!   primary key (session, modality, t) as up to three ascending ranges, merged; sessions are
//!   taken a few at a time until the page is full and the next session starts after its last row;
//! * **everyone**: a time window from the cursor on, read by the index on t and sorted; a window
//!   that holds less than a page grows eightfold until it does or reaches the end.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use emo_api_types::ExportRow;

use super::rows::parse_uuid;
use super::stats::StatsFilter;
use super::{now_ms, Store, StoreResult, StoredSample};
use crate::with_conn;

#[derive(QueryableByName)]
struct ExportSql {
    #[diesel(embed)]
    sample: StoredSample,
    #[diesel(sql_type = Text)]
    username: String,
}

#[derive(QueryableByName)]
struct SessionKey {
    #[diesel(sql_type = Integer)]
    no: i32,
    #[diesel(sql_type = BigInt)]
    started_at: i64,
}

#[derive(QueryableByName)]
struct Earliest {
    #[diesel(sql_type = Nullable<BigInt>)]
    t: Option<i64>,
}

/// Where an export page ends; the next page starts strictly after it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportCursor {
    pub t: i64,
    pub session_id: String,
    pub modality: i16,
}

/// The first window an export of everyone reads (it grows eightfold while it holds less than a
/// page): at a contact centre's 600 samples a second, a minute holds 36,000.
const FIRST_WINDOW_MS: i64 = 60_000;
/// Sessions read per statement when exporting one agent.
const SESSIONS_PER_READ: usize = 16;
/// Samples are never more than this ahead of the daemon's clock (`sessions/validate.rs`).
const AHEAD_MS: i64 = 60_000;

impl Store {
    /// One page of export rows in (t, session, modality) order, starting after `after`.
    pub fn export_page(
        &self,
        f: &StatsFilter,
        after: Option<&ExportCursor>,
        limit: i64,
    ) -> StoreResult<Vec<ExportRow>> {
        let after = match after {
            Some(c) => Some((
                c.t,
                parse_uuid(&c.session_id)?.hyphenated().to_string(),
                c.modality,
            )),
            None => None,
        };
        let rows = match f.user_id {
            Some(user) => self.export_one_user(f, user, after.as_ref(), limit)?,
            None => self.export_everyone(f, after.as_ref(), limit)?,
        };
        rows.into_iter()
            .map(|r| {
                let sample = r.sample.to_api()?;
                Ok(ExportRow {
                    session_id: sample.session_id,
                    username: r.username,
                    t: sample.t,
                    modality: sample.modality,
                    emotion: sample.emotion,
                    confidence: sample.confidence,
                    probabilities: sample.probabilities,
                })
            })
            .collect()
    }

    /// Everyone's samples: growing time windows from the cursor (or the first session's start).
    fn export_everyone(
        &self,
        f: &StatsFilter,
        after: Option<&(i64, String, i16)>,
        limit: i64,
    ) -> StoreResult<Vec<ExportSql>> {
        let start = match (after.map(|a| a.0), f.from_ms) {
            (Some(a), Some(b)) => a.max(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            // No sample lies before its session's start.
            (None, None) => {
                let first: Earliest = with_conn!(self, |c| diesel::sql_query(
                    "SELECT MIN(started_at) AS t FROM sessions"
                )
                .get_result(c)?);
                match first.t {
                    Some(t) => t,
                    None => return Ok(Vec::new()),
                }
            }
        };
        let end = f.to_ms.unwrap_or(i64::MAX).min(now_ms() + AHEAD_MS + 1);
        let mut window = FIRST_WINDOW_MS;
        loop {
            let upto = start.saturating_add(window).min(end);
            let source = format!(
                "SELECT * FROM samples WHERE t >= {start} AND t < {upto}{}",
                filters(f)
            );
            let rows = self.page(&source, after, limit)?;
            if rows.len() as i64 >= limit || upto >= end {
                return Ok(rows);
            }
            window = window.saturating_mul(8);
        }
    }

    /// One user's samples: their sessions in start order, each through its primary key.
    fn export_one_user(
        &self,
        f: &StatsFilter,
        user: uuid::Uuid,
        after: Option<&(i64, String, i16)>,
        limit: i64,
    ) -> StoreResult<Vec<ExportSql>> {
        let lo = match (after.map(|a| a.0), f.from_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let mut cond = format!("user_id = '{}'", user.hyphenated());
        if let Some(lo) = lo {
            cond.push_str(&format!(" AND (ended_at IS NULL OR ended_at >= {lo})"));
        }
        if let Some(to) = f.to_ms {
            cond.push_str(&format!(" AND started_at < {to}"));
        }
        let sessions: Vec<SessionKey> = with_conn!(self, |c| diesel::sql_query(format!(
            "SELECT no, started_at FROM sessions WHERE {cond} ORDER BY started_at, id"
        ))
        .load(c)?);
        let modalities: Vec<i16> = match f.modality {
            Some(m) => vec![m],
            None => vec![0, 1, 2],
        };
        let mut range = String::new();
        if let Some(lo) = lo {
            range.push_str(&format!(" AND t >= {lo}"));
        }
        if let Some(to) = f.to_ms {
            range.push_str(&format!(" AND t < {to}"));
        }
        if let Some(e) = f.emotion {
            range.push_str(&format!(" AND emotion = {e}"));
        }
        let mut out: Vec<ExportSql> = Vec::new();
        for chunk in sessions.chunks(SESSIONS_PER_READ) {
            // Every later session starts after the page's last row: nothing of it belongs here.
            if out.len() as i64 >= limit
                && out.last().is_some_and(|r| chunk[0].started_at > r.sample.t)
            {
                break;
            }
            let parts: Vec<String> = chunk
                .iter()
                .flat_map(|s| modalities.iter().map(move |m| (s.no, *m)))
                .map(|(no, m)| {
                    // One more than a page: the cursor's own row may be among them.
                    format!(
                        "SELECT * FROM (SELECT * FROM samples WHERE session_no = {no} AND modality = {m}{range} \
                         ORDER BY t LIMIT {}) AS s{no}m{m}",
                        limit + 1
                    )
                })
                .collect();
            out.extend(self.page(&parts.join(" UNION ALL "), after, limit)?);
            out.sort_by(|a, b| {
                (a.sample.t, &a.sample.session_id, a.sample.modality).cmp(&(
                    b.sample.t,
                    &b.sample.session_id,
                    b.sample.modality,
                ))
            });
            out.truncate(limit.max(0) as usize);
        }
        Ok(out)
    }

    /// The first `limit` rows of `source` (a query over `samples`) after the cursor, in
    /// (t, session, modality) order, with their session's id and user's name.
    fn page(
        &self,
        source: &str,
        after: Option<&(i64, String, i16)>,
        limit: i64,
    ) -> StoreResult<Vec<ExportSql>> {
        let cursor = match after {
            Some((t, sid, m)) => format!(
                "WHERE s.t > {t} OR (s.t = {t} AND (x.id > '{sid}' OR (x.id = '{sid}' AND s.modality > {m})))"
            ),
            None => String::new(),
        };
        // Read by column name into `StoredSample`, whose columns (the probability columns
        // included) are declared once, in `rows.rs`.
        let sql = format!(
            "SELECT x.id AS session_id, {}, u.username FROM ({source}) AS s \
             JOIN sessions x ON x.no = s.session_no JOIN users u ON u.no = s.user_no \
             {cursor} ORDER BY s.t, x.id, s.modality LIMIT {limit}",
            super::samples::sample_columns("s.")
        );
        Ok(with_conn!(self, |c| diesel::sql_query(&sql).load(c)?))
    }
}

/// The filters other than time and user, as `AND …` on `samples`.
fn filters(f: &StatsFilter) -> String {
    let mut w = String::new();
    if let Some(m) = f.modality {
        w.push_str(&format!(" AND modality = {m}"));
    }
    if let Some(e) = f.emotion {
        w.push_str(&format!(" AND emotion = {e}"));
    }
    w
}
