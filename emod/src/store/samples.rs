//! Samples: batched, idempotent ingest with the hourly and minute roll-ups, and the reads of one
//! session's samples (pages, counts, the newest keys). Sessions themselves, and their summaries,
//! are in `sessions.rs`; whole-range reads (stats, export) in `stats.rs` and `export.rs`.
//!
//! Rows are compact (`migrations/2026-12-09-000001_compact_samples`): the session's and user's
//! integer keys instead of their UUIDs, probabilities in 1e-4 units. The primary key
//! (session_no, modality, t) is the only per-session index, so a session's samples in
//! (t, modality) order are read as three ascending key ranges, one per modality, merged.

use std::collections::HashMap;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};
use diesel::upsert::excluded;

use super::rows::{probability_columns, CompactSample, StoredSample, PROBABILITY_COLUMNS};
use super::schema::{
    sample_counts_hourly, sample_counts_minute, samples, samples_in, sessions, users,
};
use super::{Db, SampleRow, Store, StoreError, StoreResult};
use crate::with_conn;

/// Rows per INSERT statement: 14 bound columns each keeps a statement under SQLite's 32,766
/// and PostgreSQL's 65,535 parameter limits.
pub const INSERT_CHUNK: usize = 2000;

const HOUR_MS: i64 = 3_600_000;

/// The three modality codes (face, voice, fused): a session's key ranges.
const MODALITIES: [i16; 3] = [0, 1, 2];

/// One `n` column: a row count from raw SQL.
#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// One nullable `t` column.
#[derive(QueryableByName)]
struct MaxT {
    #[diesel(sql_type = Nullable<BigInt>)]
    t: Option<i64>,
}

/// One key of a stored sample.
#[derive(QueryableByName)]
struct Key {
    #[diesel(sql_type = diesel::sql_types::SmallInt)]
    modality: i16,
    #[diesel(sql_type = BigInt)]
    t: i64,
}

macro_rules! staged_sample {
    ($([$column:ident $emotion:ident])*) => {
        /// A [`CompactSample`] for the per-connection staging table that PostgreSQL's `COPY`
        /// fills (diesel's `Insertable` names one table).
        #[derive(Insertable)]
        #[diesel(table_name = samples_in, treat_none_as_default_value = false)]
        struct StagedSample {
            t: i64,
            session_no: i32,
            user_no: i32,
            modality: i16,
            emotion: i16,
            confidence: i16,
            $($column: i16,)*
        }

        impl From<&CompactSample> for StagedSample {
            fn from(r: &CompactSample) -> Self {
                StagedSample {
                    t: r.t,
                    session_no: r.session_no,
                    user_no: r.user_no,
                    modality: r.modality,
                    emotion: r.emotion,
                    confidence: r.confidence,
                    $($column: r.$column,)*
                }
            }
        }
    };
}
probability_columns!(staged_sample);

/// The columns a read selects from `samples` (alias `s`), in [`StoredSample`]'s names.
pub(super) fn sample_columns(alias: &str) -> String {
    let mut cols: Vec<String> = ["t", "modality", "emotion", "confidence"]
        .iter()
        .map(|c| format!("{alias}{c}"))
        .collect();
    cols.extend(
        PROBABILITY_COLUMNS
            .iter()
            .map(|(c, _)| format!("{alias}{c}")),
    );
    cols.join(", ")
}

/// Adds newly stored samples to the hourly and minute roll-ups (SQLite path; PostgreSQL does
/// the same server-side in the insert statement).
macro_rules! upsert_rollups {
    ($c:expr, $new:expr) => {
        for ((user, hour, m, e), n) in rollup_of($new, HOUR_MS) {
            diesel::insert_into(sample_counts_hourly::table)
                .values((
                    sample_counts_hourly::user_no.eq(user),
                    sample_counts_hourly::hour.eq(hour),
                    sample_counts_hourly::modality.eq(m),
                    sample_counts_hourly::emotion.eq(e),
                    sample_counts_hourly::n.eq(n),
                ))
                .on_conflict((
                    sample_counts_hourly::user_no,
                    sample_counts_hourly::hour,
                    sample_counts_hourly::modality,
                    sample_counts_hourly::emotion,
                ))
                .do_update()
                .set(
                    sample_counts_hourly::n
                        .eq(sample_counts_hourly::n + excluded(sample_counts_hourly::n)),
                )
                .execute($c)?;
        }
        for ((user, minute, m, e), n) in rollup_of($new, 60_000) {
            diesel::insert_into(sample_counts_minute::table)
                .values((
                    sample_counts_minute::user_no.eq(user),
                    sample_counts_minute::minute.eq(minute),
                    sample_counts_minute::modality.eq(m),
                    sample_counts_minute::emotion.eq(e),
                    sample_counts_minute::n.eq(n),
                ))
                .on_conflict((
                    sample_counts_minute::user_no,
                    sample_counts_minute::minute,
                    sample_counts_minute::modality,
                    sample_counts_minute::emotion,
                ))
                .do_update()
                .set(
                    sample_counts_minute::n
                        .eq(sample_counts_minute::n + excluded(sample_counts_minute::n)),
                )
                .execute($c)?;
        }
    };
}

/// The rows of `$rows` to store, compacted: each gets its session's and user's keys, read from
/// the session rows inside the insert's transaction. A sample after its session's `ended_at` is
/// never stored, whoever submitted it (a pipeline on a daemon that has not yet learnt its
/// session was stopped on another one, a batch racing a stop); nor is one whose session no
/// longer exists (a spool replayed after the retention purge removed it). On PostgreSQL the
/// session rows are read `FOR SHARE`, so a stop that commits meanwhile waits for this batch
/// instead of interleaving with it. The rows come sorted by (session, modality, t): appended in
/// that order, each session's primary-key entries fill their index pages instead of splitting
/// them in half.
macro_rules! compact_rows {
    ($c:expr, $rows:expr $(, $lock:ident)?) => {{
        let mut ids: Vec<&str> = $rows.iter().map(|r| r.session_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let keys: HashMap<String, (i32, i32, Option<i64>)> = sessions::table
            .inner_join(users::table)
            .filter(sessions::id.eq_any(ids))
            .select((sessions::id, sessions::no, users::no, sessions::ended_at))
            $(.$lock())?
            .load::<(String, i32, i32, Option<i64>)>($c)?
            .into_iter()
            .map(|(id, s, u, end)| (id, (s, u, end)))
            .collect();
        let (mut after_end, mut orphans) = (0usize, 0usize);
        let mut out: Vec<CompactSample> = Vec::with_capacity($rows.len());
        for r in $rows.iter() {
            match keys.get(&r.session_id) {
                None => orphans += 1,
                Some((_, _, Some(end))) if r.t > *end => after_end += 1,
                Some((s, u, _)) => out.push(r.compact(*s, *u)),
            }
        }
        if after_end > 0 {
            tracing::info!(refused = after_end, "samples after their session's end not stored");
        }
        if orphans > 0 {
            tracing::warn!(refused = orphans, "samples of sessions that no longer exist not stored");
        }
        out.sort_unstable_by_key(|r| (r.session_no, r.modality, r.t));
        out
    }};
}

/// Most samples a listing counts exactly; past it `total` says "at least" (`Page::total_capped`).
pub const COUNT_CAP: i64 = 100_000;

/// A count that may have stopped at [`COUNT_CAP`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub count: i64,
    pub capped: bool,
}

impl Store {
    /// Stores a batch in one transaction. PostgreSQL: binary `COPY` into a per-connection
    /// staging table, then a single statement inserts and rolls up; SQLite: chunked multi-row
    /// `INSERT`s. Rows already stored (same session, modality and time) are skipped, so
    /// replaying a batch after an ambiguous failure cannot double-count. Returns rows inserted.
    pub fn insert_samples(&self, rows: &[SampleRow]) -> StoreResult<usize> {
        if rows.is_empty() {
            return Ok(0);
        }
        match &self.db {
            Db::Pg(pool) => {
                let mut guard = pool.get()?;
                let c: &mut diesel::PgConnection = &mut guard;
                c.transaction::<_, StoreError, _>(|c| {
                    let rows = compact_rows!(c, rows, for_share);
                    if rows.is_empty() {
                        return Ok(0);
                    }
                    c.batch_execute(
                        "CREATE TEMP TABLE IF NOT EXISTS samples_in (LIKE samples) ON COMMIT DELETE ROWS",
                    )?;
                    let staged: Vec<StagedSample> = rows.iter().map(StagedSample::from).collect();
                    diesel::copy_from(samples_in::table)
                        .from_insertable(&staged)
                        .execute(c)?;
                    // One statement: insert what is new, and roll exactly that up per hour and minute.
                    let counts: Vec<CountRow> = diesel::sql_query(
                        "WITH ins AS (INSERT INTO samples SELECT * FROM samples_in ON CONFLICT DO NOTHING \
                           RETURNING user_no, t, modality, emotion), \
                         h AS (INSERT INTO sample_counts_hourly \
                           SELECT user_no, t - t % 3600000, modality, emotion, COUNT(*) FROM ins GROUP BY 1, 2, 3, 4 \
                           ON CONFLICT (user_no, hour, modality, emotion) DO UPDATE SET n = sample_counts_hourly.n + excluded.n), \
                         m AS (INSERT INTO sample_counts_minute \
                           SELECT user_no, t - t % 60000, modality, emotion, COUNT(*) FROM ins GROUP BY 1, 2, 3, 4 \
                           ON CONFLICT (user_no, minute, modality, emotion) DO UPDATE SET n = sample_counts_minute.n + excluded.n) \
                         SELECT COUNT(*) AS n FROM ins",
                    )
                    .load(c)?;
                    let n = counts.first().map(|r| r.n as usize).unwrap_or(0);
                    Ok(n)
                })
            }
            Db::Sqlite(pool) => {
                let mut guard = pool.get()?;
                let c: &mut diesel::SqliteConnection = &mut guard;
                // IMMEDIATE: the write lock is taken (waiting up to busy_timeout) before the
                // session read below. A deferred transaction that has read cannot wait for the
                // write lock when another connection holds it: SQLite answers busy at once, and
                // the batch was set aside while readers were told nothing was pending
                // (storage_failures::reads_fail_rather_than_miss_accepted_samples::sqlite).
                c.immediate_transaction::<_, StoreError, _>(|c| {
                    let rows = compact_rows!(c, rows);
                    let mut new = Vec::new();
                    for chunk in rows.chunks(INSERT_CHUNK) {
                        let part: Vec<(i32, i64, i16, i16)> = diesel::insert_into(samples::table)
                            .values(chunk)
                            .on_conflict_do_nothing()
                            .returning((
                                samples::user_no,
                                samples::t,
                                samples::modality,
                                samples::emotion,
                            ))
                            .get_results(c)?;
                        new.extend(part);
                    }
                    let n = new.len();
                    upsert_rollups!(c, &new);
                    Ok(n)
                })
            }
        }
    }

    /// The compact key of session `id` (`None`: no such session).
    pub fn session_no(&self, id: &str) -> StoreResult<Option<i32>> {
        with_conn!(self, |c| {
            Ok(sessions::table
                .filter(sessions::id.eq(id))
                .select(sessions::no)
                .first::<i32>(c)
                .optional()?)
        })
    }

    /// One page of a session's samples in (t, modality) order: after the `after` key (keyset
    /// paging) or from `offset`; and their number, counted to at most [`COUNT_CAP`].
    ///
    /// Each modality's rows are one ascending range of the primary key; the page is the first
    /// `limit` (after `offset`) of the three ranges merged, so no read sorts a whole session.
    pub fn list_samples(
        &self,
        session_id: &str,
        modality: Option<i16>,
        after: Option<(i64, i16)>,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<StoredSample>, Counted)> {
        let sid = super::rows::parse_uuid(session_id)?
            .hyphenated()
            .to_string();
        let Some(no) = self.session_no(&sid)? else {
            return Ok((
                Vec::new(),
                Counted {
                    count: 0,
                    capped: false,
                },
            ));
        };
        let only = modality.map_or(String::new(), |m| format!(" AND modality = {m}"));
        // Counting stops at COUNT_CAP + 1 rows, in the database: `limit=1` on a 5.8 M-sample
        // session took 0.8 s for an exact COUNT(*). Built from integers only.
        let count_sql = format!(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM samples WHERE session_no = {no}{only} LIMIT {}) s",
            COUNT_CAP + 1
        );
        let take = limit.saturating_add(offset);
        let cols = sample_columns("");
        let branches: Vec<String> = MODALITIES
            .iter()
            .filter(|m| modality.is_none_or(|only| only == **m))
            .map(|m| {
                // Keyset (t, modality) > (at, am): within modality m that is t > at, or t >= at
                // when m sorts after am.
                let from = match after {
                    Some((at, am)) if *m > am => format!(" AND t >= {at}"),
                    Some((at, _)) => format!(" AND t > {at}"),
                    None => String::new(),
                };
                format!(
                    "SELECT * FROM (SELECT {cols} FROM samples WHERE session_no = {no} AND modality = {m}{from} \
                     ORDER BY t LIMIT {take}) AS m{m}"
                )
            })
            .collect();
        let page_sql = format!(
            "SELECT '{sid}' AS session_id, u.* FROM ({}) AS u ORDER BY u.t, u.modality LIMIT {limit} OFFSET {offset}",
            branches.join(" UNION ALL ")
        );
        with_conn!(self, |c| {
            let seen = diesel::sql_query(&count_sql).get_result::<CountRow>(c)?.n;
            let total = Counted {
                count: seen.min(COUNT_CAP),
                capped: seen > COUNT_CAP,
            };
            let rows: Vec<StoredSample> = diesel::sql_query(&page_sql).load(c)?;
            Ok((rows, total))
        })
    }

    /// The time of a session's last stored sample (three index probes, one per modality).
    pub fn last_sample_t(&self, session_id: &str) -> StoreResult<Option<i64>> {
        let Some(no) = self.session_no(session_id)? else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT MAX(t) AS t FROM ({}) AS m",
            MODALITIES
                .iter()
                .map(|m| format!(
                    "SELECT * FROM (SELECT MAX(t) AS t FROM samples WHERE session_no = {no} AND modality = {m}) AS m{m}"
                ))
                .collect::<Vec<_>>()
                .join(" UNION ALL ")
        );
        with_conn!(self, |c| Ok(diesel::sql_query(&sql)
            .get_result::<MaxT>(c)?
            .t))
    }

    /// The newest `limit` (modality, t) keys of a session's stored samples: what ingest already
    /// has, so a re-post after a restart is counted as the duplicate it is.
    pub fn sample_keys(&self, session_id: &str, limit: usize) -> StoreResult<Vec<(i16, i64)>> {
        let Some(no) = self.session_no(session_id)? else {
            return Ok(Vec::new());
        };
        let sql = MODALITIES
            .iter()
            .map(|m| {
                format!(
                    "SELECT * FROM (SELECT modality, t FROM samples WHERE session_no = {no} AND modality = {m} \
                     ORDER BY t DESC LIMIT {limit}) AS m{m}"
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let mut keys: Vec<Key> = with_conn!(self, |c| diesel::sql_query(&sql).load(c)?);
        keys.sort_unstable_by(|a, b| b.t.cmp(&a.t).then(b.modality.cmp(&a.modality)));
        keys.truncate(limit);
        Ok(keys.into_iter().map(|k| (k.modality, k.t)).collect())
    }

    /// Stored samples: of one session, or all of them.
    pub fn count_samples(&self, session_id: Option<&str>) -> StoreResult<i64> {
        let no = match session_id {
            Some(id) => match self.session_no(id)? {
                Some(no) => Some(no),
                None => return Ok(0),
            },
            None => None,
        };
        with_conn!(self, |c| {
            let n = match no {
                Some(no) => samples::table
                    .filter(samples::session_no.eq(no))
                    .count()
                    .get_result(c)?,
                None => samples::table.count().get_result(c)?,
            };
            Ok(n)
        })
    }
}

/// Counts of newly stored samples per (user, time bucket of `grain` ms, modality, emotion).
fn rollup_of(rows: &[(i32, i64, i16, i16)], grain: i64) -> HashMap<(i32, i64, i16, i16), i64> {
    let mut rollup = HashMap::new();
    for (user, t, m, e) in rows {
        *rollup
            .entry((*user, t - t.rem_euclid(grain), *m, *e))
            .or_default() += 1;
    }
    rollup
}
