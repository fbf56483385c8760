//! Sessions, sample ingest (batched, idempotent, with the hourly roll-up) and summaries.

use std::collections::{BTreeMap, HashMap};

use diesel::connection::SimpleConnection;
use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::upsert::excluded;
use emo_api_types::{Emotion, Modality, SessionStatus, SessionSummary};

use super::rows::{emotion_code, emotion_from_code, modality_from_code, probability_columns};
use super::schema::{
    sample_counts_hourly, sample_counts_minute, samples, samples_in, sessions, users,
};
use super::{Db, SampleRow, SessionRow, Store, StoreError, StoreResult};
use crate::with_conn;

/// Rows per INSERT statement: 14 bound columns each keeps a statement under SQLite's 32,766
/// and PostgreSQL's 65,535 parameter limits.
pub const INSERT_CHUNK: usize = 2000;

const HOUR_MS: i64 = 3_600_000;

/// One `n` column: a row count from raw SQL.
#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

macro_rules! staged_sample {
    ($([$column:ident $emotion:ident])*) => {
        #[derive(Insertable)]
        #[diesel(table_name = samples_in, treat_none_as_default_value = false)]
        struct StagedSample<'a> {
            session_id: &'a str,
            user_id: &'a str,
            t: i64,
            modality: i16,
            emotion: i16,
            confidence: f32,
            $($column: Option<f32>,)*
        }

        impl<'a> From<&'a SampleRow> for StagedSample<'a> {
            fn from(r: &'a SampleRow) -> Self {
                StagedSample {
                    session_id: &r.session_id,
                    user_id: &r.user_id,
                    t: r.t,
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

/// Adds newly stored samples to the hourly and minute roll-ups (SQLite path; PostgreSQL does
/// the same server-side in the insert statement).
macro_rules! upsert_rollups {
    ($c:expr, $new:expr) => {
        for ((user, hour, m, e), n) in rollup_of($new, HOUR_MS) {
            diesel::insert_into(sample_counts_hourly::table)
                .values((
                    sample_counts_hourly::user_id.eq(user),
                    sample_counts_hourly::hour.eq(hour),
                    sample_counts_hourly::modality.eq(m),
                    sample_counts_hourly::emotion.eq(e),
                    sample_counts_hourly::n.eq(n),
                ))
                .on_conflict((
                    sample_counts_hourly::user_id,
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
                    sample_counts_minute::user_id.eq(user),
                    sample_counts_minute::minute.eq(minute),
                    sample_counts_minute::modality.eq(m),
                    sample_counts_minute::emotion.eq(e),
                    sample_counts_minute::n.eq(n),
                ))
                .on_conflict((
                    sample_counts_minute::user_id,
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

/// The rows of `$rows` whose session has not ended before their time: a sample after its
/// session's `ended_at` is never stored, whoever submitted it (a pipeline on a daemon that has
/// not yet learnt its session was stopped on another one, a batch racing a stop). Runs inside
/// the insert's transaction; on PostgreSQL the session rows are read `FOR SHARE`, so a stop
/// that commits meanwhile waits for this batch instead of interleaving with it.
macro_rules! within_session_end {
    ($c:expr, $rows:expr $(, $lock:ident)?) => {{
        let mut ids: Vec<&str> = $rows.iter().map(|r| r.session_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let ends: HashMap<String, i64> = sessions::table
            .filter(sessions::id.eq_any(ids))
            .filter(sessions::ended_at.is_not_null())
            .select((sessions::id, sessions::ended_at.assume_not_null()))
            $(.$lock())?
            .load::<(String, i64)>($c)?
            .into_iter()
            .collect();
        let after_end = |r: &SampleRow| ends.get(&r.session_id).is_some_and(|end| r.t > *end);
        let refused = $rows.iter().filter(|r| after_end(r)).count();
        if refused == 0 {
            std::borrow::Cow::Borrowed($rows)
        } else {
            tracing::info!(refused, "samples after their session's end not stored");
            std::borrow::Cow::Owned(
                $rows.iter().filter(|r| !after_end(r)).cloned().collect::<Vec<SampleRow>>(),
            )
        }
    }};
}

/// Session list filters, already resolved to ids and epoch milliseconds.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub user_id: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub dominant: Option<i16>,
    pub status: Option<SessionStatus>,
    pub limit: i64,
    pub offset: i64,
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
    pub fn insert_session(&self, row: &SessionRow) -> StoreResult<()> {
        with_conn!(self, |c| {
            diesel::insert_into(sessions::table)
                .values(row)
                .execute(c)?;
            Ok(())
        })
    }

    /// The session and its owner's username.
    pub fn session(&self, id: &str) -> StoreResult<Option<(SessionRow, String)>> {
        with_conn!(self, |c| {
            Ok(sessions::table
                .inner_join(users::table)
                .filter(sessions::id.eq(id))
                .select((SessionRow::as_select(), users::username))
                .first(c)
                .optional()?)
        })
    }

    pub fn list_sessions(
        &self,
        f: &SessionFilter,
    ) -> StoreResult<(Vec<(SessionRow, String)>, i64)> {
        macro_rules! filtered {
            () => {{
                let mut q = sessions::table.inner_join(users::table).into_boxed();
                if let Some(u) = &f.user_id {
                    q = q.filter(sessions::user_id.eq(u.clone()));
                }
                if let Some(from) = f.from_ms {
                    q = q.filter(sessions::started_at.ge(from));
                }
                if let Some(to) = f.to_ms {
                    q = q.filter(sessions::started_at.lt(to));
                }
                if let Some(d) = f.dominant {
                    q = q.filter(sessions::dominant.eq(d));
                }
                if let Some(s) = f.status {
                    q = q.filter(sessions::status.eq(s.as_str()));
                }
                q
            }};
        }
        with_conn!(self, |c| {
            let total: i64 = filtered!().count().get_result(c)?;
            let rows = filtered!()
                .order((sessions::started_at.desc(), sessions::id.desc()))
                .limit(f.limit)
                .offset(f.offset)
                .select((SessionRow::as_select(), users::username))
                .load(c)?;
            Ok((rows, total))
        })
    }

    /// Marks a running session finished with its summary. Returns false if it was not running.
    pub fn finish_session(
        &self,
        id: &str,
        status: SessionStatus,
        ended_at: i64,
        summary: &SessionSummary,
    ) -> StoreResult<bool> {
        let json = serde_json::to_string(summary).map_err(|e| StoreError::Other(e.to_string()))?;
        let dominant = summary.dominant.map(emotion_code);
        with_conn!(self, |c| {
            let n = diesel::update(
                sessions::table
                    .filter(sessions::id.eq(id))
                    .filter(sessions::status.eq(SessionStatus::Running.as_str())),
            )
            .set((
                sessions::status.eq(status.as_str()),
                sessions::ended_at.eq(Some(ended_at)),
                sessions::summary.eq(Some(json)),
                sessions::dominant.eq(dominant),
            ))
            .execute(c)?;
            Ok(n == 1)
        })
    }

    /// Sessions of `node` still marked running (left over by a crash).
    pub fn running_sessions_of_node(&self, node: &str) -> StoreResult<Vec<SessionRow>> {
        with_conn!(self, |c| {
            Ok(sessions::table
                .filter(sessions::node.eq(node))
                .filter(sessions::status.eq(SessionStatus::Running.as_str()))
                .select(SessionRow::as_select())
                .load(c)?)
        })
    }

    /// Inserts samples inside one transaction and keeps the hourly roll-up in step. PostgreSQL
    /// takes the batch by binary `COPY` into a staging table then one `INSERT … SELECT`; SQLite
    /// by multi-row `INSERT`s. Rows already stored (same session, modality and time) are skipped,
    /// so replaying a batch after an ambiguous failure cannot double-count. Returns rows inserted.
    pub fn insert_samples(&self, rows: &[SampleRow]) -> StoreResult<usize> {
        if rows.is_empty() {
            return Ok(0);
        }
        match &self.db {
            Db::Pg(pool) => {
                let mut guard = pool.get()?;
                let c: &mut diesel::PgConnection = &mut guard;
                c.transaction::<_, StoreError, _>(|c| {
                    let rows = within_session_end!(c, rows, for_share);
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
                           RETURNING user_id, t, modality, emotion), \
                         h AS (INSERT INTO sample_counts_hourly \
                           SELECT user_id, t - t % 3600000, modality, emotion, COUNT(*) FROM ins GROUP BY 1, 2, 3, 4 \
                           ON CONFLICT (user_id, hour, modality, emotion) DO UPDATE SET n = sample_counts_hourly.n + excluded.n), \
                         m AS (INSERT INTO sample_counts_minute \
                           SELECT user_id, t - t % 60000, modality, emotion, COUNT(*) FROM ins GROUP BY 1, 2, 3, 4 \
                           ON CONFLICT (user_id, minute, modality, emotion) DO UPDATE SET n = sample_counts_minute.n + excluded.n) \
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
                    let rows = within_session_end!(c, rows);
                    let mut new = Vec::new();
                    for chunk in rows.chunks(INSERT_CHUNK) {
                        let part: Vec<(String, i64, i16, i16)> =
                            diesel::insert_into(samples::table)
                                .values(chunk)
                                .on_conflict_do_nothing()
                                .returning((
                                    samples::user_id,
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

    /// One page of a session's samples in (t, modality) order: after the `after` key (keyset
    /// paging) or from `offset`; and their number, counted to at most [`COUNT_CAP`].
    pub fn list_samples(
        &self,
        session_id: &str,
        modality: Option<i16>,
        after: Option<(i64, i16)>,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<SampleRow>, Counted)> {
        macro_rules! filtered {
            () => {{
                let mut q = samples::table
                    .filter(samples::session_id.eq(session_id))
                    .into_boxed();
                if let Some(m) = modality {
                    q = q.filter(samples::modality.eq(m));
                }
                q
            }};
        }
        // Counting stops at COUNT_CAP + 1 rows, in the database: `limit=1` on a 5.8 M-sample
        // session took 0.8 s for an exact COUNT(*). Built from a parsed UUID and an integer only.
        let count_sql = format!(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM samples WHERE session_id = '{}'{} LIMIT {}) s",
            super::rows::parse_uuid(session_id)?.hyphenated(),
            modality.map_or(String::new(), |m| format!(" AND modality = {m}")),
            COUNT_CAP + 1
        );
        with_conn!(self, |c| {
            let seen = diesel::sql_query(&count_sql).get_result::<CountRow>(c)?.n;
            let total = Counted {
                count: seen.min(COUNT_CAP),
                capped: seen > COUNT_CAP,
            };
            let mut q = filtered!();
            if let Some((t, m)) = after {
                q = q.filter(
                    samples::t
                        .gt(t)
                        .or(samples::t.eq(t).and(samples::modality.gt(m))),
                );
            }
            let rows = q
                .order((samples::t.asc(), samples::modality.asc()))
                .limit(limit)
                .offset(offset)
                .select(SampleRow::as_select())
                .load(c)?;
            Ok((rows, total))
        })
    }

    pub fn last_sample_t(&self, session_id: &str) -> StoreResult<Option<i64>> {
        with_conn!(self, |c| {
            Ok(samples::table
                .filter(samples::session_id.eq(session_id))
                .select(diesel::dsl::max(samples::t))
                .first(c)?)
        })
    }

    /// The newest `limit` (modality, t) keys of a session's stored samples: what ingest already
    /// has, so a re-post after a restart is counted as the duplicate it is.
    pub fn sample_keys(&self, session_id: &str, limit: usize) -> StoreResult<Vec<(i16, i64)>> {
        with_conn!(self, |c| {
            Ok(samples::table
                .filter(samples::session_id.eq(session_id))
                .order(samples::t.desc())
                .limit(limit as i64)
                .select((samples::modality, samples::t))
                .load(c)?)
        })
    }

    pub fn count_samples(&self, session_id: Option<&str>) -> StoreResult<i64> {
        with_conn!(self, |c| {
            let n = match session_id {
                Some(id) => samples::table
                    .filter(samples::session_id.eq(id))
                    .count()
                    .get_result(c)?,
                None => samples::table.count().get_result(c)?,
            };
            Ok(n)
        })
    }

    /// Aggregates a session's samples: distribution (fused estimates when there are any, else
    /// face, else voice), dominant emotion, per-modality counts and second-level coverage.
    pub fn compute_summary(
        &self,
        session_id: &str,
        started_at: i64,
        ended_at: i64,
    ) -> StoreResult<SessionSummary> {
        let (groups, seconds): (Vec<SummaryGroup>, Vec<(i16, i64)>) = with_conn!(self, |c| {
            let groups = samples::table
                .filter(samples::session_id.eq(session_id))
                .group_by((samples::modality, samples::emotion))
                .select((
                    samples::modality,
                    samples::emotion,
                    count_star(),
                    sql::<diesel::sql_types::Nullable<diesel::sql_types::Double>>(
                        "CAST(SUM(confidence) AS DOUBLE PRECISION)",
                    ),
                ))
                .load::<(i16, i16, i64, Option<f64>)>(c)?;
            let seconds = samples::table
                .filter(samples::session_id.eq(session_id))
                .group_by(samples::modality)
                .select((samples::modality, sql::<BigInt>("COUNT(DISTINCT t / 1000)")))
                .load::<(i16, i64)>(c)?;
            Ok::<_, StoreError>((groups, seconds))
        })?;
        summarize(&groups, &seconds, started_at, ended_at)
    }
}

/// Counts of newly stored samples per (user, time bucket of `grain` ms, modality, emotion).
fn rollup_of(
    rows: &[(String, i64, i16, i16)],
    grain: i64,
) -> HashMap<(String, i64, i16, i16), i64> {
    let mut rollup = HashMap::new();
    for (user, t, m, e) in rows {
        *rollup
            .entry((user.clone(), t - t.rem_euclid(grain), *m, *e))
            .or_default() += 1;
    }
    rollup
}

/// (modality, emotion, count, sum of confidence) of one session.
type SummaryGroup = (i16, i16, i64, Option<f64>);

/// Pure aggregation behind [`Store::compute_summary`], unit-tested on its own.
pub fn summarize(
    groups: &[(i16, i16, i64, Option<f64>)],
    seconds: &[(i16, i64)],
    started_at: i64,
    ended_at: i64,
) -> StoreResult<SessionSummary> {
    let duration_ms = (ended_at - started_at).max(0);
    let session_secs = ((duration_ms + 999) / 1000).max(1) as f64;
    let mut samples: BTreeMap<Modality, u64> = BTreeMap::new();
    for (m, _, n, _) in groups {
        *samples.entry(modality_from_code(*m)?).or_default() += *n as u64;
    }
    let basis = [Modality::Fused, Modality::Face, Modality::Voice]
        .into_iter()
        .find(|m| samples.get(m).copied().unwrap_or(0) > 0);
    let mut counts: BTreeMap<Emotion, u64> = BTreeMap::new();
    let mut conf_sum = 0.0;
    let mut total = 0u64;
    if let Some(basis) = basis {
        for (m, e, n, s) in groups {
            if modality_from_code(*m)? == basis {
                *counts.entry(emotion_from_code(*e)?).or_default() += *n as u64;
                conf_sum += s.unwrap_or(0.0);
                total += *n as u64;
            }
        }
    }
    let distribution = counts
        .iter()
        .map(|(e, n)| (*e, *n as f64 / total.max(1) as f64))
        .collect();
    // Ties resolve to the emotion listed first (stable, documented).
    let dominant = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(e, _)| *e);
    let coverage = seconds
        .iter()
        .map(|(m, secs)| {
            Ok((
                modality_from_code(*m)?,
                (*secs as f64 / session_secs).min(1.0),
            ))
        })
        .collect::<StoreResult<_>>()?;
    Ok(SessionSummary {
        distribution,
        dominant,
        samples,
        coverage,
        mean_confidence: (total > 0).then(|| (conf_sum / total as f64 * 1e6).round() / 1e6),
        duration_seconds: duration_ms as f64 / 1000.0,
        end_reason: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_prefers_fused_and_breaks_ties_by_label_order() {
        // fused: happy 3, sad 3, neutral 1; face: angry 10
        let groups = vec![
            (2, 3, 3, Some(2.7)),
            (2, 4, 3, Some(1.5)),
            (2, 6, 1, Some(0.5)),
            (0, 0, 10, Some(9.0)),
        ];
        let seconds = vec![(2, 7), (0, 5)];
        let s = summarize(&groups, &seconds, 0, 10_000).unwrap();
        assert_eq!(s.dominant, Some(Emotion::Happy));
        assert!((s.distribution[&Emotion::Happy] - 3.0 / 7.0).abs() < 1e-12);
        assert!(!s.distribution.contains_key(&Emotion::Angry));
        assert_eq!(s.samples[&Modality::Face], 10);
        assert_eq!(s.samples[&Modality::Fused], 7);
        assert!((s.coverage[&Modality::Fused] - 0.7).abs() < 1e-12);
        assert!((s.mean_confidence.unwrap() - 4.7 / 7.0).abs() < 1e-6);
        assert_eq!(s.duration_seconds, 10.0);
    }

    #[test]
    fn empty_session_has_no_dominant() {
        let s = summarize(&[], &[], 0, 0).unwrap();
        assert_eq!(s.dominant, None);
        assert!(s.distribution.is_empty());
        assert_eq!(s.mean_confidence, None);
    }

    #[test]
    fn face_only_session_uses_face_estimates() {
        let s = summarize(&[(0, 5, 2, Some(1.0))], &[(0, 2)], 0, 1000).unwrap();
        assert_eq!(s.dominant, Some(Emotion::Surprise));
        assert_eq!(s.coverage[&Modality::Face], 1.0);
    }
}
