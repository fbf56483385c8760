//! PostgreSQL backend: pool set-up. Many daemons can share one database.

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::PgConnection;

use super::{Db, Store, StoreOptions};

pub fn open(url: &str, opts: &StoreOptions) -> anyhow::Result<Store> {
    let manager = ConnectionManager::<PgConnection>::new(url);
    let pool = Pool::builder()
        .max_size(opts.pool_size)
        .min_idle(Some(0))
        .connection_timeout(opts.connect_timeout)
        .test_on_check_out(true)
        .connection_customizer(Box::new(StatementTimeout(opts.statement_timeout)))
        .build_unchecked(manager);
    let describe = redact(url);
    pool.get()
        .with_context(|| format!("cannot connect to PostgreSQL at {describe}"))?;
    Ok(Store {
        db: Db::Pg(pool),
        describe,
    })
}

/// Sets `statement_timeout` on each new connection: a read that would run longer (a deep page of
/// a huge session, an unbounded count) is cancelled by the server and answered 503 instead of
/// holding a pooled connection (issue 28, item 5).
#[derive(Debug)]
struct StatementTimeout(std::time::Duration);

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for StatementTimeout {
    fn on_acquire(&self, c: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        c.batch_execute(&format!("SET statement_timeout = {}", self.0.as_millis()))
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// `postgres://user:secret@host/db?password=x` → `postgres://user:***@host/db?password=***`.
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = redact_userinfo(base);
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_password_only() {
        assert_eq!(
            super::redact("postgres://u:pw@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(super::redact("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(super::redact("postgres:///d"), "postgres:///d");
        assert_eq!(
            super::redact("postgres://u@h/d?sslmode=require&password=s3cret&x=1"),
            "postgres://u@h/d?sslmode=require&password=***&x=1"
        );
        assert_eq!(
            super::redact("postgres://u:pw@h/d?PassWord=a?b&sslpassword=c"),
            "postgres://u:***@h/d?PassWord=***&sslpassword=***"
        );
    }
}
