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

/// Creates `dir` (and missing parents) readable by the owner only; a directory that already
/// exists is left as it is (it may be shared, e.g. `/tmp`).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The database and its `-wal`/`-shm` files are readable by the owner only. SQLite creates the
/// `-wal` and `-shm` files with the main file's permissions, so the main file is created (or
/// tightened, for databases created by earlier versions) first.
fn make_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the SQLite database {}", path.display()))?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = std::path::PathBuf::from(p);
        if let Ok(meta) = std::fs::metadata(&p) {
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).with_context(
                    || format!("cannot restrict the permissions of {}", p.display()),
                )?;
            }
        }
    }
    Ok(())
}

pub fn open(path: &Path, opts: &StoreOptions) -> anyhow::Result<Store> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    if path.as_os_str() != ":memory:" {
        make_private(path)?;
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
