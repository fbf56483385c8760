//! Embedded SQLite backend: the zero-set-up default for a single machine.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::SqliteConnection;

use super::{Db, Store, StoreOptions};

/// WAL lets dashboards read while the writer inserts; `busy_timeout` makes concurrent writers
/// wait instead of failing with SQLITE_BUSY.
#[derive(Debug)]
struct Pragmas {
    busy_timeout: Duration,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON;",
            self.busy_timeout.as_millis()
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

pub fn open(path: &Path, opts: &StoreOptions) -> anyhow::Result<Store> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    let url = path
        .to_str()
        .with_context(|| format!("SQLite path {} is not valid UTF-8", path.display()))?;
    let manager = ConnectionManager::<SqliteConnection>::new(url);
    let pool = Pool::builder()
        .max_size(opts.pool_size)
        .connection_timeout(opts.connect_timeout)
        .connection_customizer(Box::new(Pragmas {
            busy_timeout: Duration::from_secs(10),
        }))
        .build(manager)
        .with_context(|| format!("cannot open SQLite database {}", path.display()))?;
    Ok(Store {
        db: Db::Sqlite(pool),
        describe: format!("sqlite:{}", path.display()),
    })
}
