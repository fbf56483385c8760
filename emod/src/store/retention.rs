//! The retention purge: data older than `privacy.retention_days` goes, hour-aligned so the
//! roll-ups stay exact.

use diesel::prelude::*;

use super::stats::HOUR_MS;
use super::{Store, StoreResult};
use crate::with_conn;

impl Store {
    /// Deletes data older than `cutoff_ms` (aligned down to the hour so the roll-up stays exact).
    /// Returns (samples, sessions) deleted.
    pub fn purge_before(&self, cutoff_ms: i64) -> StoreResult<(usize, usize)> {
        let cutoff = cutoff_ms - cutoff_ms.rem_euclid(HOUR_MS);
        with_conn!(self, |c| {
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
                let old_sessions = format!(
                    "SELECT id FROM sessions WHERE status <> 'running' AND ended_at < {cutoff}"
                );
                // Samples have no foreign key (ingest speed): delete those of the old sessions
                // explicitly, as ON DELETE CASCADE used to.
                diesel::sql_query(format!(
                    "DELETE FROM samples WHERE session_id IN ({old_sessions})"
                ))
                .execute(c)?;
                let sessions =
                    diesel::sql_query(format!("DELETE FROM sessions WHERE id IN ({old_sessions})"))
                        .execute(c)?;
                Ok((samples, sessions))
            })
        })
    }
}
