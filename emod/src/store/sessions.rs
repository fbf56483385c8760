//! Sessions: their rows (start, list, finish, the running ones of a node) and their summaries.
//! The samples themselves are in `samples.rs`.

use std::collections::BTreeMap;

use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use emo_api_types::{Emotion, Modality, SessionStatus, SessionSummary};

use super::rows::{emotion_code, emotion_from_code, modality_from_code};
use super::schema::{samples, sessions, users};
use super::{next_no, Db, SessionRow, Store, StoreError, StoreResult};
use crate::with_conn;

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

impl Store {
    /// Stores a new session with the next compact key (`no`, what its samples refer to).
    pub fn insert_session(&self, row: &SessionRow) -> StoreResult<()> {
        match &self.db {
            Db::Pg(pool) => {
                let mut guard = pool.get()?;
                let c: &mut diesel::PgConnection = &mut guard;
                c.transaction::<_, StoreError, _>(|c| {
                    let no = next_no!(c, "sessions", pg);
                    diesel::insert_into(sessions::table)
                        .values((row, sessions::no.eq(no)))
                        .execute(c)?;
                    Ok(())
                })
            }
            Db::Sqlite(pool) => {
                let mut guard = pool.get()?;
                let c: &mut diesel::SqliteConnection = &mut guard;
                c.immediate_transaction::<_, StoreError, _>(|c| {
                    let no = next_no!(c, "sessions");
                    diesel::insert_into(sessions::table)
                        .values((row, sessions::no.eq(no)))
                        .execute(c)?;
                    Ok(())
                })
            }
        }
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

    /// Aggregates a session's samples: distribution (fused estimates when there are any, else
    /// face, else voice), dominant emotion, per-modality counts and second-level coverage.
    pub fn compute_summary(
        &self,
        session_id: &str,
        started_at: i64,
        ended_at: i64,
    ) -> StoreResult<SessionSummary> {
        let Some(no) = self.session_no(session_id)? else {
            return summarize(&[], &[], started_at, ended_at);
        };
        let (groups, seconds): (Vec<SummaryGroup>, Vec<(i16, i64)>) = with_conn!(self, |c| {
            let groups = samples::table
                .filter(samples::session_no.eq(no))
                .group_by((samples::modality, samples::emotion))
                .select((
                    samples::modality,
                    samples::emotion,
                    count_star(),
                    sql::<diesel::sql_types::Nullable<diesel::sql_types::Double>>(
                        // Stored in units of 1e-4 (rows::PROBABILITY_UNIT).
                        "CAST(SUM(confidence) AS DOUBLE PRECISION) / 10000",
                    ),
                ))
                .load::<(i16, i16, i64, Option<f64>)>(c)?;
            let seconds = samples::table
                .filter(samples::session_no.eq(no))
                .group_by(samples::modality)
                .select((samples::modality, sql::<BigInt>("COUNT(DISTINCT t / 1000)")))
                .load::<(i16, i64)>(c)?;
            Ok::<_, StoreError>((groups, seconds))
        })?;
        summarize(&groups, &seconds, started_at, ended_at)
    }
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
