//! Day partitions of the sample tables on PostgreSQL (`migrations-postgres/`): created ahead of
//! time, given the rows that arrived before their day had one, and dropped whole by retention.
//!
//! Each of `samples`, `sample_counts_hourly` and `sample_counts_minute` is partitioned by range
//! of its time column into UTC days, `<table>_pYYYYMMDD`, plus `<table>_default`, which takes
//! any row whose day has no partition: an insert never fails for lack of a partition, whatever
//! the clock of the daemon or the `started_at` of an upload says. [`Store::prepare_partitions`]
//! (at start and every hour) creates the partitions from yesterday to [`DAYS_AHEAD`] days
//! ahead, and moves rows that landed in a default partition into a new partition of their day.
//! [`Store::drop_partitions_before`] (retention) detaches and drops every day that ends at or
//! before the cutoff; the rest of the cutoff (the hours of the boundary day, rows in the default
//! partition) is deleted row by row by the caller, so the promise stays exact to the hour.
//!
//! SQLite has none of this: one table each, and retention deletes.

use std::collections::BTreeSet;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::{Db, Store, StoreError, StoreResult};

pub const DAY_MS: i64 = 86_400_000;
/// Days ahead of today whose partitions exist before their first sample does.
pub const DAYS_AHEAD: i64 = 7;
/// How long partition work waits for a table lock before it gives up until the next pass:
/// a lock request queued behind a long export would stall every insert queued behind it.
const LOCK_TIMEOUT: &str = "2s";

/// The partitioned tables and their time columns.
pub const PARTITIONED: [(&str, &str); 3] = [
    ("samples", "t"),
    ("sample_counts_hourly", "hour"),
    ("sample_counts_minute", "minute"),
];

/// The partition of `table` for UTC day `day` (days since 1970-01-01).
pub fn partition_name(table: &str, day: i64) -> String {
    let date = chrono::DateTime::from_timestamp(day * 86_400, 0)
        .unwrap_or_default()
        .format("%Y%m%d");
    format!("{table}_p{date}")
}

/// The day of a partition named by [`partition_name`] (`None` for any other name).
pub fn day_of(table: &str, name: &str) -> Option<i64> {
    let digits = name.strip_prefix(table)?.strip_prefix("_p")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let date = chrono::NaiveDate::parse_from_str(digits, "%Y%m%d").ok()?;
    Some(
        date.and_hms_opt(0, 0, 0)?
            .and_utc()
            .timestamp()
            .div_euclid(86_400),
    )
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Day {
    #[diesel(sql_type = BigInt)]
    day: i64,
}

#[derive(QueryableByName)]
struct Estimate {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The day partitions of `table` that exist now, by day.
fn existing(c: &mut PgConnection, table: &str) -> StoreResult<Vec<(i64, String)>> {
    let names: Vec<Name> = diesel::sql_query(
        "SELECT CAST(k.relname AS TEXT) AS name FROM pg_inherits i \
         JOIN pg_class k ON k.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
         WHERE p.relname = $1",
    )
    .bind::<Text, _>(table)
    .load(c)?;
    Ok(names
        .into_iter()
        .filter_map(|n| day_of(table, &n.name).map(|d| (d, n.name)))
        .collect())
}

/// Whether `table` is partitioned here (the PostgreSQL migrations have run).
fn is_partitioned(c: &mut PgConnection, table: &str) -> StoreResult<bool> {
    let found: Vec<Name> = diesel::sql_query(
        "SELECT CAST(relname AS TEXT) AS name FROM pg_class WHERE relname = $1 AND relkind = 'p'",
    )
    .bind::<Text, _>(table)
    .load(c)?;
    Ok(!found.is_empty())
}

/// Creates the partition of `table` for `day`, moving that day's rows out of the default
/// partition first (a default partition may not hold rows of an attached partition's range).
/// One transaction; concurrent daemons are serialised by an advisory lock and the one that
/// comes second finds the partition there.
fn create(c: &mut PgConnection, table: &str, col: &str, day: i64) -> StoreResult<bool> {
    let name = partition_name(table, day);
    let (lo, hi) = (day * DAY_MS, (day + 1) * DAY_MS);
    c.transaction::<_, StoreError, _>(|c| {
        c.batch_execute(&format!(
            "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; \
             SELECT pg_advisory_xact_lock(hashtext('emo.partitions'))"
        ))?;
        if existing(c, table)?.iter().any(|(d, _)| *d == day) {
            return Ok(false);
        }
        // The default partition is locked against inserts while its rows of this day move:
        // one arriving between the move and the attach would make the attach fail.
        c.batch_execute(&format!(
            "LOCK TABLE {table}_default IN SHARE ROW EXCLUSIVE MODE; \
             CREATE TABLE {name} (LIKE {table}); \
             WITH moved AS (DELETE FROM {table}_default WHERE {col} >= {lo} AND {col} < {hi} RETURNING *) \
               INSERT INTO {name} SELECT * FROM moved; \
             ALTER TABLE {name} ADD CONSTRAINT {name}_range CHECK ({col} >= {lo} AND {col} < {hi}); \
             ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi}); \
             ALTER TABLE {name} DROP CONSTRAINT {name}_range"
        ))?;
        Ok(true)
    })
}

impl Store {
    /// Creates the day partitions from yesterday to [`DAYS_AHEAD`] days after `now_ms`, and one
    /// for each day that has rows waiting in a default partition. Returns the partitions created.
    /// A no-op on SQLite.
    pub fn prepare_partitions(&self, now_ms: i64) -> StoreResult<Vec<String>> {
        let today = now_ms.div_euclid(DAY_MS);
        self.ensure_partitions((today - 1) * DAY_MS, (today + DAYS_AHEAD + 1) * DAY_MS)
    }

    /// Creates the day partitions of every day that `[from_ms, to_ms)` touches, and one for each
    /// day that has rows waiting in a default partition (`emod bench store` prepares the days
    /// it seeds this way). Returns the partitions created. A no-op on SQLite.
    pub fn ensure_partitions(&self, from_ms: i64, to_ms: i64) -> StoreResult<Vec<String>> {
        let Db::Pg(pool) = &self.db else {
            return Ok(Vec::new());
        };
        let mut guard = pool.get()?;
        let c: &mut PgConnection = &mut guard;
        let mut created = Vec::new();
        for (table, col) in PARTITIONED {
            if !is_partitioned(c, table)? {
                continue;
            }
            let have: BTreeSet<i64> = existing(c, table)?.into_iter().map(|(d, _)| d).collect();
            let mut want: BTreeSet<i64> =
                (from_ms.div_euclid(DAY_MS)..=(to_ms - 1).div_euclid(DAY_MS)).collect();
            let waiting: Vec<Day> = diesel::sql_query(format!(
                "SELECT DISTINCT CAST(FLOOR({col} / {DAY_MS}.0) AS BIGINT) AS day FROM {table}_default"
            ))
            .load(c)?;
            want.extend(waiting.into_iter().map(|d| d.day));
            for day in want.difference(&have) {
                if create(c, table, col, *day)? {
                    created.push(partition_name(table, *day));
                }
            }
        }
        if !created.is_empty() {
            tracing::info!(partitions = created.len(), "day partitions created");
        }
        Ok(created)
    }

    /// Detaches and drops every day partition that ends at or before `cutoff_ms`. Returns the
    /// planner's estimate of the samples dropped (counting them exactly would read each day
    /// once more). A no-op on SQLite.
    pub fn drop_partitions_before(&self, cutoff_ms: i64) -> StoreResult<u64> {
        let Db::Pg(pool) = &self.db else {
            return Ok(0);
        };
        let mut guard = pool.get()?;
        let c: &mut PgConnection = &mut guard;
        let mut samples = 0u64;
        for (table, _) in PARTITIONED {
            if !is_partitioned(c, table)? {
                continue;
            }
            for (day, name) in existing(c, table)? {
                if (day + 1) * DAY_MS > cutoff_ms {
                    continue;
                }
                c.transaction::<_, StoreError, _>(|c| {
                    if table == "samples" {
                        let est: Estimate = diesel::sql_query(
                            "SELECT CAST(GREATEST(reltuples, 0) AS BIGINT) AS n FROM pg_class WHERE relname = $1",
                        )
                        .bind::<Text, _>(&name)
                        .get_result(c)?;
                        samples += est.n as u64;
                    }
                    c.batch_execute(&format!(
                        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; \
                         ALTER TABLE {table} DETACH PARTITION {name}; DROP TABLE {name}"
                    ))?;
                    Ok(())
                })?;
                tracing::info!(partition = %name, "retention: day partition dropped");
            }
        }
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip_to_their_day() {
        let day = 1_765_152_000_000 / DAY_MS; // 2025-12-08
        assert_eq!(partition_name("samples", day), "samples_p20251208");
        assert_eq!(day_of("samples", "samples_p20251208"), Some(day));
        assert_eq!(day_of("samples", "samples_default"), None);
        assert_eq!(day_of("samples", "sample_counts_hourly_p20251208"), None);
        assert_eq!(day_of("samples", "samples_p2025120"), None);
        assert_eq!(day_of("samples", "samples_p2025120x"), None);
        assert_eq!(
            day_of(
                "sample_counts_minute",
                &partition_name("sample_counts_minute", 0)
            ),
            Some(0)
        );
    }
}
