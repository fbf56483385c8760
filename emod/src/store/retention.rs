//! The retention purge: data older than `privacy.retention_days` goes, hour-aligned so the
//! roll-ups stay exact.

use diesel::prelude::*;

use super::stats::HOUR_MS;
use super::{Store, StoreResult};
use crate::with_conn;

impl Store {
    /// Deletes data older than `cutoff_ms` (aligned down to the hour so the roll-up stays exact).
    /// On PostgreSQL whole days go first, as partitions (`partitions.rs`); what is left before
    /// the cutoff (the boundary day's hours, rows in a default partition; on SQLite, all of it)
    /// is deleted. Returns (samples, sessions) deleted, the dropped days' samples estimated.
    pub fn purge_before(&self, cutoff_ms: i64) -> StoreResult<(usize, usize)> {
        let cutoff = cutoff_ms - cutoff_ms.rem_euclid(HOUR_MS);
        let dropped = self.drop_partitions_before(cutoff)? as usize;
        let (samples, sessions) = with_conn!(self, |c| {
            c.transaction::<_, super::StoreError, _>(|c| {
                // Deleting a year of a contact centre may take longer than any request should:
                // exempt from `database.statement_timeout_secs` (PostgreSQL; a no-op elsewhere).
                if matches!(&self.db, super::Db::Pg(_)) {
                    diesel::sql_query("SET LOCAL statement_timeout = 0").execute(c)?;
                }
                let samples = diesel::sql_query(format!("DELETE FROM samples WHERE t < {cutoff}"))
                    .execute(c)?;
                diesel::sql_query(format!(
                    "DELETE FROM sample_counts_hourly WHERE hour < {cutoff}"
                ))
                .execute(c)?;
                diesel::sql_query(format!(
                    "DELETE FROM sample_counts_minute WHERE minute < {cutoff}"
                ))
                .execute(c)?;
                // A session's samples lie between its start and its end (none is stored after
                // `ended_at`), so those of a session that ended before the cutoff went with the
                // rows above: deleting them by session as well read every partition's primary
                // key (20 s a purge at 100 M samples).
                let old_sessions = format!("status <> 'running' AND ended_at < {cutoff}");
                let sessions =
                    diesel::sql_query(format!("DELETE FROM sessions WHERE {old_sessions}"))
                        .execute(c)?;
                Ok((samples, sessions))
            })
        })?;
        Ok((samples + dropped, sessions))
    }
}
