//! What the store can tell about itself for `emod bench store`: bytes on disk per table, and
//! (PostgreSQL) whether a query read `samples` sequentially.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::{Db, Store, StoreResult};
use crate::with_conn;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Store {
    /// Bytes on disk of the samples and the roll-ups with their indexes (PostgreSQL: every
    /// partition of each; SQLite: the whole database file, which has no per-table sizes).
    pub fn bytes_on_disk(&self) -> StoreResult<u64> {
        let sql = match self.db {
            Db::Pg(_) => {
                "SELECT CAST(COALESCE(SUM(pg_total_relation_size(relid)), 0) AS BIGINT) AS n FROM ( \
                   SELECT relid FROM pg_partition_tree('samples') \
                   UNION ALL SELECT relid FROM pg_partition_tree('sample_counts_hourly') \
                   UNION ALL SELECT relid FROM pg_partition_tree('sample_counts_minute')) AS x"
            }
            Db::Sqlite(_) => {
                "SELECT CAST(p.page_count * s.page_size AS BIGINT) AS n \
                 FROM pragma_page_count() AS p, pragma_page_size() AS s"
            }
        };
        with_conn!(self, |c| {
            Ok(diesel::sql_query(sql).get_result::<Count>(c)?.n.max(0) as u64)
        })
    }

    /// PostgreSQL: turns sequential scans off on this store's connections (a pool of one, for
    /// the plan check), so that one happens only where no index can serve the query.
    pub fn disable_seqscan(&self) -> StoreResult<()> {
        if let Db::Pg(_) = self.db {
            with_conn!(self, |c| c.batch_execute("SET enable_seqscan = off")?);
        }
        Ok(())
    }

    /// PostgreSQL: sequential scans of `samples` (any partition) so far, by the statistics
    /// system, with this connection's pending statistics flushed first. 0 on SQLite.
    pub fn samples_seq_scans(&self) -> StoreResult<i64> {
        let Db::Pg(_) = self.db else {
            return Ok(0);
        };
        with_conn!(self, |c| {
            // Flushed when the backend goes idle after this statement.
            c.batch_execute("SELECT pg_stat_force_next_flush()")?;
            Ok(diesel::sql_query(
                "SELECT CAST(COALESCE(SUM(seq_scan), 0) AS BIGINT) AS n FROM pg_stat_user_tables \
                 WHERE relname = 'samples' OR relname = 'samples_default' OR relname LIKE 'samples\\_p%'",
            )
            .get_result::<Count>(c)?
            .n)
        })
    }
}
