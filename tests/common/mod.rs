//! Test harness: the real `emod` binary on a loopback port, against a fresh SQLite file or a
//! fresh PostgreSQL database created (and dropped) for the test.
#![allow(dead_code)]

pub mod media;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, RunQueryDsl};
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};

pub const PASSWORD: &str = "correct-horse-battery";

pub fn admin_url() -> String {
    std::env::var("EMO_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn require_postgres() -> bool {
    env_flag("EMO_REQUIRE_POSTGRES")
}

/// Whether a switch such as `EMO_REQUIRE_POSTGRES` is on: `1`, `true` or `yes` (any case).
pub fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// Reports a test that skips itself: `SKIPPED: <reason>` on stderr (which cargo shows only
/// for failing tests) and `<test>: <reason>` appended to the file named by `EMO_SKIP_LOG`,
/// which `packaging/test.sh` counts and prints after the run so a skip is never silent.
pub fn skipped(reason: &str) {
    eprintln!("SKIPPED: {reason}");
    if let Some(path) = std::env::var_os("EMO_SKIP_LOG") {
        let test = std::thread::current()
            .name()
            .unwrap_or("<unnamed test>")
            .to_string();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{test}: {reason}");
        }
    }
}

/// A throw-away PostgreSQL database, dropped when this goes out of scope.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

/// Another client holding `LOCK TABLE ... IN EXCLUSIVE MODE` in an open transaction: the daemon's
/// writes to that table wait behind it until [`TableLock::release`] (or `max` passes, or drop).
pub struct TableLock {
    release: std::sync::mpsc::Sender<()>,
    holder: Option<std::thread::JoinHandle<()>>,
}

impl TableLock {
    /// Commit the holding transaction and wait until the lock is gone.
    pub fn release(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        let _ = self.release.send(());
        if let Some(h) = self.holder.take() {
            h.join().unwrap();
        }
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        self.finish();
    }
}

impl PgDb {
    /// Lock `table` from another connection until the returned guard is released (at most `max`):
    /// writes wait, reads go on.
    pub fn lock_table(&self, table: &str, max: Duration) -> TableLock {
        self.lock_table_in(table, "EXCLUSIVE", max)
    }

    /// [`PgDb::lock_table`] in `mode` (`ACCESS EXCLUSIVE`: reads wait too).
    pub fn lock_table_in(&self, table: &str, mode: &str, max: Duration) -> TableLock {
        let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let (url, sql) = (
            self.url.clone(),
            format!("LOCK TABLE {table} IN {mode} MODE"),
        );
        let holder = std::thread::spawn(move || {
            let mut c = PgConnection::establish(&url).unwrap();
            diesel::sql_query("BEGIN").execute(&mut c).unwrap();
            diesel::sql_query(sql).execute(&mut c).unwrap();
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(max);
            diesel::sql_query("COMMIT").execute(&mut c).unwrap();
        });
        locked_rx.recv().unwrap();
        TableLock {
            release,
            holder: Some(holder),
        }
    }

    /// `None` (after reporting the skip, see [`skipped`]) when no server is reachable, unless
    /// `EMO_REQUIRE_POSTGRES` is `1`/`true`/`yes`, which makes that a failure.
    pub fn create() -> Option<PgDb> {
        let admin = admin_url();
        let mut conn = match PgConnection::establish(&admin) {
            Ok(c) => c,
            Err(e) => {
                if require_postgres() {
                    panic!(
                        "EMO_REQUIRE_POSTGRES is set but PostgreSQL at {admin} is unreachable: {e}"
                    );
                }
                skipped(&format!(
                    "PostgreSQL at {admin} is unreachable; set EMO_TEST_DATABASE_URL"
                ));
                return None;
            }
        };
        let name = format!("emo_test_{}", uuid::Uuid::new_v4().simple());
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .expect("CREATE DATABASE");
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Some(PgDb {
            url: format!("{base}/{name}"),
            name,
        })
    }

    pub fn admin_sql(&self, sql: &str) {
        let mut conn = PgConnection::establish(&admin_url()).expect("admin connection");
        diesel::sql_query(sql).execute(&mut conn).expect(sql);
    }

    /// Refuses new connections and kills the existing ones: a real outage as the daemon sees it.
    pub fn cut(&self) {
        self.admin_sql(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            self.name
        ));
        self.kill_connections();
    }

    /// Ends every open connection to the test database (the daemon's pool reconnects).
    pub fn kill_connections(&self) {
        self.admin_sql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        ));
    }

    pub fn restore(&self) {
        self.admin_sql(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            self.name
        ));
    }

    pub fn count(&self, table: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = PgConnection::establish(&self.url).expect("test db connection");
        let rows: Vec<N> = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .load(&mut conn)
            .expect("count");
        rows[0].n
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&admin_url()) {
            let _ = diesel::sql_query(format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                self.name
            ))
            .execute(&mut conn);
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the daemon keeps its data, reused across restarts.
pub struct Env {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub pg: Option<PgDb>,
    pub extra: Vec<(String, String)>,
}

impl Env {
    pub fn new(backend: Backend) -> Option<Env> {
        let pg = match backend {
            Backend::Postgres => Some(PgDb::create()?),
            Backend::Sqlite => None,
        };
        Some(Env {
            backend,
            dir: tempfile::tempdir().expect("tempdir"),
            pg,
            extra: Vec::new(),
        })
    }

    pub fn with(mut self, key: &str, value: &str) -> Env {
        self.extra.push((key.into(), value.into()));
        self
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("emo.sqlite3")
    }

    pub fn spool_dir(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// Environment for any `emod` command against this data.
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut v = vec![
            (
                "EMO_WRITER_SPOOL_DIR".to_string(),
                self.spool_dir().display().to_string(),
            ),
            ("EMO_LOG".into(), "warn".into()),
            ("EMO_SERVER_NODE_NAME".into(), "test-node".into()),
            (
                "EMO_CONFIG".into(),
                self.dir.path().join("none.toml").display().to_string(),
            ),
        ];
        match &self.pg {
            Some(pg) => v.push(("EMO_DATABASE_URL".into(), pg.url.clone())),
            None => v.push((
                "EMO_SQLITE_PATH".into(),
                self.sqlite_path().display().to_string(),
            )),
        }
        v.extend(self.extra.iter().cloned());
        v
    }

    /// Runs SQL statements on this environment's database directly, outside the daemon: to seed
    /// rows as older versions wrote them, or to make the database misbehave (triggers, locks).
    pub fn sql(&self, statements: &str) {
        use diesel::connection::SimpleConnection;
        match &self.pg {
            Some(pg) => PgConnection::establish(&pg.url)
                .expect("test db connection")
                .batch_execute(statements),
            None => diesel::SqliteConnection::establish(self.sqlite_path().to_str().unwrap())
                .expect("sqlite connection")
                .batch_execute(statements),
        }
        .unwrap_or_else(|e| panic!("{statements}: {e}"));
    }

    /// The rows of `query`, which must return one text column named `r`.
    pub fn sql_lines(&self, query: &str) -> Vec<String> {
        #[derive(diesel::QueryableByName)]
        struct Line {
            #[diesel(sql_type = diesel::sql_types::Text)]
            r: String,
        }
        match &self.pg {
            Some(pg) => diesel::sql_query(query)
                .load::<Line>(&mut PgConnection::establish(&pg.url).expect("test db connection")),
            None => diesel::sql_query(query).load::<Line>(
                &mut diesel::SqliteConnection::establish(self.sqlite_path().to_str().unwrap())
                    .expect("sqlite connection"),
            ),
        }
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .into_iter()
        .map(|l| l.r)
        .collect()
    }

    pub fn emod(&self) -> Command {
        let mut cmd = Command::new(emod_bin());
        // The config file named by EMO_CONFIG must exist; an empty one means all defaults.
        let _ = std::fs::write(self.dir.path().join("none.toml"), "");
        for (k, v) in self.vars() {
            cmd.env(k, v);
        }
        cmd.env_remove("RUST_LOG");
        cmd
    }

    /// `emod user add NAME --role ROLE --password-stdin`
    pub fn add_user(&self, name: &str, role: &str) {
        let mut child = self
            .emod()
            .args(["user", "add", name, "--role", role, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn emod user add");
        writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "user add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `emod serve` on a port the system picks (`--listen 127.0.0.1:0`) and learns it
    /// from `--port-file`: a port chosen by the test and released before emod binds it could be
    /// taken by another process in between.
    pub fn start(&self) -> Server {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = self.dir.path().join(format!("emod-{n}.log"));
        let port_file = self.dir.path().join(format!("emod-{n}.port"));
        let _ = std::fs::remove_file(&port_file);
        let mut child = self
            .emod()
            .args(["serve", "--listen", "127.0.0.1:0", "--port-file"])
            .arg(&port_file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn emod serve");
        let addr = wait_port_file(&port_file, &mut child, &log);
        let server = Server {
            base: format!("http://{addr}"),
            child: Some(child),
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            log,
        };
        server.wait_healthy();
        server
    }
}

/// The address `emod serve --port-file` wrote; panics with the log if emod exits first.
pub fn wait_port_file(port_file: &Path, child: &mut Child, log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(port_file) {
            let addr = text.trim().to_string();
            if !addr.is_empty() {
                return addr;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "emod serve exited ({status}) before listening; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "emod serve did not write its port file; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A port that was free a moment ago. `Env::start` does not use it (emod binds port 0 itself);
/// it is for tests that need an address nobody listens on.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    pub base: String,
    pub child: Option<Child>,
    pub client: Client,
    pub log: PathBuf,
}

impl Server {
    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = self.client.get(format!("{}/healthz", self.base)).send() {
                if r.status().is_success() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("emod did not become healthy; log:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut r = self.client.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().expect("GET")
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut r = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().expect("POST")
    }

    pub fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut r = self.client.patch(self.url(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().expect("PATCH")
    }

    pub fn login(&self, user: &str) -> String {
        let r = self.post(
            "/api/v1/auth/login",
            None,
            &json!({"username": user, "password": PASSWORD}),
        );
        assert_eq!(r.status(), 200, "login {user}");
        r.json::<Value>().unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn register(&self, user: &str) -> String {
        let r = self.post(
            "/api/v1/auth/register",
            None,
            &json!({"username": user, "password": PASSWORD}),
        );
        assert_eq!(r.status(), 201, "register {user}");
        self.login(user)
    }

    /// Starts a session (optionally back-dated) and returns its id.
    pub fn start_session(&self, token: &str, started_at: Option<&str>) -> String {
        let mut body = json!({"consent": true, "sources": ["remote"]});
        if let Some(t) = started_at {
            body["started_at"] = json!(t);
        }
        let r = self.post("/api/v1/sessions", Some(token), &body);
        assert_eq!(r.status(), 201);
        r.json::<Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// SIGTERM, and emod must exit with status 0: a clean shutdown (capture stopped, pending
    /// samples written or spooled). A daemon that fails its shutdown, panics or is killed by a
    /// signal fails the test with its log.
    pub fn sigterm(&mut self) {
        let status = self
            .sigterm_status()
            .expect("sigterm: emod was not running");
        assert!(
            status.success(),
            "emod exited with {status} after SIGTERM; log:\n{}",
            self.log_text()
        );
    }

    /// SIGTERM, then the exit status (`None` when the daemon was not running).
    pub fn sigterm_status(&mut self) -> Option<std::process::ExitStatus> {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        self.wait_exit()
    }

    pub fn sigkill(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
        }
        self.wait_exit();
    }

    fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(Some(st)) = child.try_wait() {
                    return Some(st);
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "emod did not exit; log:\n{}",
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `{"error": code}` of a failed response, with its status.
pub fn error_of(r: Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap_or(Value::Null);
    (
        status,
        body["error"]
            .as_str()
            .unwrap_or("<no error code>")
            .to_string(),
    )
}

/// Fused samples at `start + i*step` seconds with the given emotions.
pub fn fused_samples(start_ms: i64, step_s: i64, emotions: &[&str]) -> Value {
    let samples: Vec<Value> = emotions
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let t = chrono::DateTime::from_timestamp_millis(start_ms + i as i64 * step_s * 1000)
                .unwrap();
            json!({"t": t.to_rfc3339(), "modality": "fused", "emotion": e, "confidence": 0.8,
                   "probabilities": {*e: 0.8, "neutral": if *e == "neutral" { 0.0 } else { 0.2 }}})
        })
        .collect();
    let samples: Vec<Value> = samples
        .into_iter()
        .map(|mut s| {
            if s["emotion"] == "neutral" {
                s["probabilities"] = json!({"neutral": 1.0});
                s["confidence"] = json!(1.0);
            }
            s
        })
        .collect();
    json!({ "samples": samples })
}

/// Runs the test body once per backend, each in its own test function.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn sqlite() {
                let f: fn(Backend) = $body;
                f(Backend::Sqlite);
            }
            #[test]
            fn postgres() {
                let f: fn(Backend) = $body;
                f(Backend::Postgres);
            }
        }
    };
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}

/// The workspace's root directory (every package that includes this harness is one level down).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("a package directory inside the workspace")
        .to_path_buf()
}

/// The `emod` binary: cargo's own for emod's tests; for another package's tests (emo-tui's
/// `tui_tmux`), which cargo builds no emod for, the one `EMOD_BIN` names (relative to the
/// workspace root). Nothing is built here: a missing binary fails with what to do.
pub fn emod_bin() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_emod") {
        return PathBuf::from(p);
    }
    let Some(p) = std::env::var_os("EMOD_BIN").filter(|p| !p.is_empty()) else {
        panic!(
            "EMOD_BIN is not set: these tests run the emod binary and build nothing. Run \
             packaging/test.sh, or `cargo build -p emod` and set EMOD_BIN=target/debug/emod"
        );
    };
    let p = workspace_root().join(p);
    assert!(
        p.is_file(),
        "EMOD_BIN={} is not a file: build it first (`cargo build -p emod`)",
        p.display()
    );
    p
}
