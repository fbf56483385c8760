//! What the store can tell about itself for `emod bench store`: bytes on disk per table, and
//! (PostgreSQL) whether a query reads `samples` without using an index.

use std::sync::{Arc, Mutex};

use diesel::connection::InstrumentationEvent;
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

    /// PostgreSQL: runs `run` on this store (a pool of one connection) and returns each
    /// statement it ran whose plan reads `samples` (any partition) other than through an
    /// index's leading column at a cost that matters ([`COSTLY`]): a sequential scan, or an
    /// index scan whose condition leaves the index's first column free (PostgreSQL then walks
    /// the whole index, and still calls it `Index Cond`), i.e. a query no index serves. The statements are caught by diesel's instrumentation and explained
    /// afterwards; statements with bound parameters are not (none of the dashboard's read
    /// samples). Empty on SQLite.
    pub fn full_scans_of_samples(
        &self,
        run: impl FnOnce(&Store) -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<String>> {
        let Db::Pg(pool) = &self.db else {
            return Ok(Vec::new());
        };
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        {
            let mut c = pool.get()?;
            let s = seen.clone();
            c.set_instrumentation(move |event: InstrumentationEvent<'_>| {
                if let InstrumentationEvent::StartQuery { query, .. } = event {
                    if let Ok(mut v) = s.lock() {
                        v.push(query.to_string());
                    }
                }
            });
        }
        run(self)?;
        let statements =
            std::mem::take(&mut *seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
        let mut found = Vec::new();
        for sql in statements {
            let Some(text) = sql.strip_suffix(" -- binds: []") else {
                continue;
            };
            if !text.contains("samples") || !text.trim_start().starts_with("SELECT") {
                continue;
            }
            let plan: Vec<PlanLine> =
                with_conn!(self, |c| diesel::sql_query(format!("EXPLAIN {text}"))
                    .load(c)?);
            let lines: Vec<String> = plan.into_iter().map(|l| l.line).collect();
            let lookup = |index: &str| self.index_head(index).ok().flatten();
            if let Some(node) = full_scan(&lines, lookup) {
                found.push(format!("{node}\n  in: {text}"));
            }
        }
        if let Ok(mut c) = pool.get() {
            c.set_instrumentation(|_: InstrumentationEvent<'_>| {});
        }
        Ok(found)
    }

    /// The table and first key column of index `index` (`None`: no such index).
    fn index_head(&self, index: &str) -> StoreResult<Option<(String, String)>> {
        #[derive(QueryableByName)]
        struct Head {
            #[diesel(sql_type = diesel::sql_types::Text)]
            rel: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            col: String,
        }
        let found: Vec<Head> = with_conn!(self, |c| {
            diesel::sql_query(
            "SELECT CAST(t.relname AS TEXT) AS rel, CAST(a.attname AS TEXT) AS col \
             FROM pg_class i JOIN pg_index x ON x.indexrelid = i.oid JOIN pg_class t ON t.oid = x.indrelid \
             JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0] \
             WHERE i.relname = $1"
        )
        .bind::<diesel::sql_types::Text, _>(index)
        .load(c)?
        });
        Ok(found.into_iter().next().map(|h| (h.rel, h.col)))
    }
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

/// Whether `name` is `samples` or one of its partitions.
fn is_samples(name: &str) -> bool {
    name == "samples" || name.starts_with("samples_p") || name == "samples_default"
}

/// Plan nodes cheaper than this (PostgreSQL's cost units: about a few hundred pages) are never
/// counted: an empty default partition or a day with a handful of rows may be read whole.
pub const COSTLY: f64 = 1000.0;

/// The first plan node that reads `samples` or one of its partitions other than through an
/// index's leading column, at an estimated cost of at least [`COSTLY`]: `Seq Scan on samples…`,
/// or an index scan (`Index [Only] Scan using I on …`, `Bitmap Index Scan on I`) of an index of
/// samples whose `Index Cond:` does not constrain its first column. `head` names an index's
/// table and first column.
pub fn full_scan(
    plan: &[String],
    head: impl Fn(&str) -> Option<(String, String)>,
) -> Option<String> {
    let cost = |node: &str| {
        node.split("..")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|c| c.parse::<f64>().ok())
            .unwrap_or(f64::INFINITY)
    };
    let word_after = |s: &str, key: &str| {
        s.split(key)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_string)
    };
    for (i, line) in plan.iter().enumerate() {
        let node = line.trim_start().trim_start_matches("->").trim_start();
        if cost(node) < COSTLY {
            continue;
        }
        let index = if node.starts_with("Seq Scan") || node.starts_with("Parallel Seq Scan") {
            if word_after(node, " on ").is_some_and(|r| is_samples(&r)) {
                return Some(node.to_string());
            }
            continue;
        } else if node.starts_with("Index Scan") || node.starts_with("Index Only Scan") {
            word_after(node, " using ")
        } else if node.starts_with("Bitmap Index Scan") {
            word_after(node, " on ")
        } else {
            continue;
        };
        let Some((table, first)) = index.as_deref().and_then(&head) else {
            continue;
        };
        if !is_samples(&table) {
            continue;
        }
        let depth = line.len() - line.trim_start().len();
        let leading = plan[i + 1..]
            .iter()
            .take_while(|l| {
                let d = l.len() - l.trim_start().len();
                d > depth && !l.trim_start().starts_with("->")
            })
            .any(|l| {
                let l = l.trim_start();
                l.starts_with("Index Cond:") && l.contains(&format!("({first} "))
            });
        if !leading {
            return Some(node.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::full_scan;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    fn head(index: &str) -> Option<(String, String)> {
        match index {
            "samples_p20261208_t_idx" => Some(("samples_p20261208".into(), "t".into())),
            "samples_p20261208_pkey" => Some(("samples_p20261208".into(), "session_no".into())),
            "samples_default_pkey" => Some(("samples_default".into(), "session_no".into())),
            "users_no" => Some(("users".into(), "no".into())),
            _ => None,
        }
    }

    #[test]
    fn full_scans_of_samples_are_told_from_index_reads() {
        let brin = lines(
            "Limit  (cost=1.0..2.0 rows=1 width=8)
  ->  Bitmap Heap Scan on samples_p20261208 s  (cost=1.0..2.0 rows=1 width=8)
        Recheck Cond: ((t >= 1) AND (t < 2))
        ->  Bitmap Index Scan on samples_p20261208_t_idx  (cost=0.0..1.0 rows=1 width=0)
              Index Cond: ((t >= 1) AND (t < 2))",
        );
        assert_eq!(full_scan(&brin, head), None);
        let pk = lines(
            "Limit
  ->  Index Scan using samples_p20261208_pkey on samples_p20261208  (cost=0.4..5000.0 rows=9 width=8)
        Index Cond: ((session_no = 3) AND (modality = 2))",
        );
        assert_eq!(full_scan(&pk, head), None);
        // A condition on a later column only: the whole index is walked.
        let not_leading = lines(
            "Limit
  ->  Index Scan using samples_p20261208_pkey on samples_p20261208  (cost=0.4..5000.0 rows=9 width=8)
        Index Cond: ((t >= 1) AND (t < 2))",
        );
        assert!(full_scan(&not_leading, head)
            .unwrap()
            .starts_with("Index Scan using"));
        let whole_index = lines(
            "Aggregate
  ->  Index Only Scan using samples_default_pkey on samples_default  (cost=0.4..5000.0 rows=9 width=8)
        Filter: ((t >= 1) AND (t < 2))",
        );
        assert!(full_scan(&whole_index, head)
            .unwrap()
            .starts_with("Index Only Scan"));
        let seq =
            lines("Seq Scan on samples  (cost=0.00..3600.00 rows=1 width=8)\n  Filter: (t > 1)");
        assert!(full_scan(&seq, head)
            .unwrap()
            .starts_with("Seq Scan on samples"));
        // A nearly empty partition may be read whole.
        let tiny = lines("Seq Scan on samples_default  (cost=0.00..25.88 rows=6 width=8)");
        assert_eq!(full_scan(&tiny, head), None);
        // Other tables may be read any way.
        let other = lines(
            "Seq Scan on sample_counts_hourly_p20261208  (cost=0.00..9000.00 rows=1 width=8)\n\
             Seq Scan on users u  (cost=0.00..9000.00 rows=1 width=8)\n\
             Index Only Scan using users_no on users  (cost=0.00..9000.00 rows=1 width=8)",
        );
        assert_eq!(full_scan(&other, head), None);
    }
}
