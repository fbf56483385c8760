//! `emod backup FILE`: a consistent copy of the database while the daemon keeps running.
//!
//! SQLite: `VACUUM INTO` reads the database inside one read transaction, so the copy is one
//! consistent snapshot even while the daemon writes (WAL mode lets both proceed), and it is a
//! compact, self-contained database file (no `-wal` to copy along). PostgreSQL has its own tool
//! for that, `pg_dump`; this command prints the invocation instead of re-implementing it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::Connection;

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the copy. It must not exist yet: a backup never overwrites a file.
    /// Created readable by its owner only (0600): it holds personal data.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

pub fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    if !config.database.url.is_empty() {
        let url = crate::store::postgres::redact(&config.database.url);
        eprintln!(
            "emod backup copies the embedded SQLite database only; this daemon uses PostgreSQL ({url}).\n\
             Back it up with PostgreSQL's own tool, e.g.:\n  \
             pg_dump --format=custom --file={} '{url}'\n\
             (put the password in ~/.pgpass or PGPASSWORD, not on the command line), and restore with pg_restore.",
            args.file.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let db = config.sqlite_path()?;
    if !db.is_file() {
        anyhow::bail!(
            "the SQLite database {} does not exist (nothing to back up)",
            db.display()
        );
    }
    let rows = backup_sqlite(&db, &args.file)?;
    println!(
        "backed up {} to {} ({rows} samples, {} bytes)",
        db.display(),
        args.file.display(),
        std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0)
    );
    Ok(ExitCode::SUCCESS)
}

/// Copies `db` into `dest` (which must not exist) with `VACUUM INTO`; returns the number of
/// samples in the copy, read back from it as a check that it opens.
pub fn backup_sqlite(db: &Path, dest: &Path) -> anyhow::Result<i64> {
    use std::os::unix::fs::OpenOptionsExt;
    // Created here, empty, exclusively and 0600: an existing file is refused atomically, and
    // SQLite writes into the empty file keeping its mode (it would otherwise follow the umask).
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .with_context(|| {
            if dest.exists() {
                format!(
                    "{} exists already: a backup never overwrites a file",
                    dest.display()
                )
            } else {
                format!("cannot create {}", dest.display())
            }
        })?;
    let result = (|| -> anyhow::Result<i64> {
        let dest_str = dest
            .to_str()
            .with_context(|| format!("{} is not valid UTF-8", dest.display()))?;
        let db_str = db
            .to_str()
            .with_context(|| format!("{} is not valid UTF-8", db.display()))?;
        let mut conn = diesel::SqliteConnection::establish(db_str)
            .with_context(|| format!("cannot open {}", db.display()))?;
        // Wait for the daemon's writer instead of failing with SQLITE_BUSY.
        conn.batch_execute("PRAGMA busy_timeout = 30000;")?;
        conn.batch_execute(&format!("VACUUM INTO {}", sql_string(dest_str)))
            .with_context(|| format!("VACUUM INTO {} failed", dest.display()))?;
        drop(conn);
        std::fs::File::open(dest)?.sync_all()?;
        let mut copy = diesel::SqliteConnection::establish(dest_str)
            .with_context(|| format!("cannot open the copy {}", dest.display()))?;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        use diesel::RunQueryDsl;
        let c: Count =
            diesel::sql_query("SELECT count(*) AS n FROM samples").get_result(&mut copy)?;
        Ok(c.n)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    result
}

/// `s` as an SQL string literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_are_doubled() {
        assert_eq!(super::sql_string("/tmp/a'b"), "'/tmp/a''b'");
    }
}
