//! Storage: PostgreSQL or an embedded SQLite file, through diesel.
//!
//! Both backends share one schema and one SQL dialect (see `migrations/`); PostgreSQL then
//! partitions the sample tables by day (`migrations-postgres/`, `partitions.rs`). The [`Store`] holds a
//! pool of either kind; [`with_conn!`] runs the same diesel code against whichever it is, which
//! keeps one implementation of every query instead of two drifting copies. Diesel is
//! synchronous: callers on the async side use `web::block` / `spawn_blocking`.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub mod audit;
pub mod export;
pub mod introspect;
pub mod partitions;
pub mod postgres;
pub mod retention;
pub mod rows;
pub mod samples;
pub mod schema;
pub mod sessions;
pub mod sqlite;
pub mod stats;
pub mod users;
pub mod writer;

pub use rows::*;

/// The schema both backends share.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");
/// PostgreSQL's own steps, applied after [`MIGRATIONS`]: day partitions of the sample tables.
/// Their versions sort after every shared migration they build on.
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations-postgres");

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => StoreError::NotFound("record".into()),
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StoreError::Conflict(info.message().to_string())
            }
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                StoreError::Unavailable(info.message().to_string())
            }
            Error::DatabaseError(DatabaseErrorKind::UnableToSendCommand, info) => {
                StoreError::Unavailable(info.message().to_string())
            }
            Error::DatabaseError(_, info) if looks_like_connection_loss(info.message()) => {
                StoreError::Unavailable(info.message().to_string())
            }
            Error::BrokenTransactionManager => {
                StoreError::Unavailable("broken transaction manager".into())
            }
            other => StoreError::Other(other.to_string()),
        }
    }
}

/// libpq reports a server that went away with plain messages rather than SQLSTATEs.
fn looks_like_connection_loss(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "terminating connection",
        "server closed the connection",
        "connection to server",
        "no connection to the server",
        "could not receive data",
        "could not send data",
        "does not allow connections",
        "the database system is",
        "ssl connection has been closed",
        // `database.statement_timeout_secs` cancelled it: the database is too slow or locked
        // right now, which a retry may get past (the writer keeps the batch; a read says 503).
        "canceling statement due to statement timeout",
    ]
    .iter()
    .any(|p| m.contains(p))
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone)]
pub enum Db {
    Pg(Pool<ConnectionManager<PgConnection>>),
    Sqlite(Pool<ConnectionManager<SqliteConnection>>),
}

/// Runs `$body` with `$c` bound to a `&mut PgConnection` or `&mut SqliteConnection`; the body is
/// compiled once per backend, so the same diesel DSL serves both.
#[macro_export]
macro_rules! with_conn {
    ($store:expr, |$c:ident| $body:expr) => {{
        match &$store.db {
            $crate::store::Db::Pg(pool) => {
                let mut guard = pool.get()?;
                let $c: &mut diesel::PgConnection = &mut guard;
                $body
            }
            $crate::store::Db::Sqlite(pool) => {
                let mut guard = pool.get()?;
                let $c: &mut diesel::SqliteConnection = &mut guard;
                $body
            }
        }
    }};
}

/// The next compact key (`no`) of `users` or `sessions`, inside the inserting transaction:
/// MAX(no) + 1. On PostgreSQL a transaction-scoped advisory lock per table serialises the
/// daemons that insert at once (SQLite's write lock already does); the unique index on `no`
/// stays the last word.
macro_rules! next_no {
    ($c:expr, $table:literal, pg) => {{
        diesel::sql_query(concat!(
            "SELECT pg_advisory_xact_lock(hashtext('emo.",
            $table,
            ".no'))"
        ))
        .execute($c)?;
        next_no!($c, $table)
    }};
    ($c:expr, $table:literal) => {{
        diesel::sql_query(concat!(
            "SELECT CAST(COALESCE(MAX(no), 0) + 1 AS INTEGER) AS no FROM ",
            $table
        ))
        .get_result::<$crate::store::NextNo>($c)?
        .no
    }};
}
pub(crate) use next_no;

/// One `no` column (see [`next_no!`]).
#[derive(diesel::QueryableByName)]
pub(crate) struct NextNo {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub no: i32,
}

/// The storage handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub db: Db,
    /// Human-readable target for logs and `/readyz` (password stripped).
    pub describe: String,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub pool_size: u32,
    pub connect_timeout: Duration,
    /// PostgreSQL `statement_timeout` of every pooled connection (zero = none).
    pub statement_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

impl Store {
    /// Opens the configured database: PostgreSQL when `url` is set, else the SQLite file.
    pub fn open(config: &crate::Config) -> anyhow::Result<Store> {
        let opts = StoreOptions {
            pool_size: config.database.pool_size,
            connect_timeout: Duration::from_secs(config.database.connect_timeout_secs.max(1)),
            statement_timeout: Duration::from_secs(config.database.statement_timeout_secs),
        };
        if config.database.url.is_empty() {
            sqlite::open(&config.sqlite_path()?, &opts)
        } else {
            postgres::open(&config.database.url, &opts)
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.db {
            Db::Pg(_) => "postgres",
            Db::Sqlite(_) => "sqlite",
        }
    }

    /// Applies pending embedded migrations; returns their names.
    pub fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let applied: Vec<String> = match &self.db {
            Db::Pg(pool) => {
                let mut c = pool.get()?;
                let mut applied: Vec<String> = c
                    .run_pending_migrations(MIGRATIONS)
                    .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?
                    .iter()
                    .map(|v| v.to_string())
                    .collect();
                applied.extend(
                    c.run_pending_migrations(POSTGRES_MIGRATIONS)
                        .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?
                        .iter()
                        .map(|v| v.to_string()),
                );
                applied
            }
            Db::Sqlite(pool) => {
                let mut c = pool.get()?;
                c.run_pending_migrations(MIGRATIONS)
                    .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?
                    .iter()
                    .map(|v| v.to_string())
                    .collect()
            }
        };
        Ok(applied)
    }

    /// Refreshes planner statistics (after bulk loads). On PostgreSQL also summarises the BRIN
    /// ranges not summarised yet, as autovacuum does for the daemon's tables in time
    /// (`autosummarize`): until then a time-range read scans those ranges whole.
    pub fn analyze(&self) -> StoreResult<()> {
        with_conn!(self, |c| {
            c.batch_execute("ANALYZE")?;
            Ok::<_, StoreError>(())
        })?;
        if let Db::Pg(_) = self.db {
            with_conn!(self, |c| {
                c.batch_execute(
                    "SELECT brin_summarize_new_values(i.indexrelid) FROM pg_index i \
                     JOIN pg_class k ON k.oid = i.indexrelid JOIN pg_am a ON a.oid = k.relam \
                     WHERE a.amname = 'brin' AND k.relkind = 'i'",
                )?;
                Ok::<_, StoreError>(())
            })?;
        }
        Ok(())
    }

    /// Whether this is the PostgreSQL backend (which takes concurrent writers).
    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Pg(_))
    }

    /// A cheap round trip used by `/readyz` and by the writer to tell an outage from bad data.
    pub fn ping(&self) -> StoreResult<()> {
        with_conn!(self, |c| {
            c.batch_execute("SELECT 1")?;
            Ok(())
        })
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn ms_to_datetime(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
