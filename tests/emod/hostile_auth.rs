//! Attacks on accounts, connections, logs and data at rest (issue 18: items 3, 5, 6, 8, 9 and
//! the low ones), replayed against the real `emod` binary. Each test does what the audit did and
//! asserts the daemon refuses it, stays bounded and keeps serving.
use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use reqwest::blocking::Client;
use serde_json::{json, Value};

/// `POST /api/v1/auth/login` from `n` threads released at the same instant; the statuses and
/// error codes, in no particular order.
fn concurrent_logins(srv: &Server, n: usize, body: impl Fn(usize) -> Value) -> Vec<(u16, String)> {
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let url = srv.url("/api/v1/auth/login");
            let body = body(i);
            std::thread::spawn(move || {
                let client = Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .unwrap();
                barrier.wait();
                error_of(client.post(url).json(&body).send().expect("login"))
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn count(results: &[(u16, String)], status: u16, code: &str) -> usize {
    results
        .iter()
        .filter(|(s, c)| *s == status && c == code)
        .count()
}

/// A line of `/proc/<pid>/status` in kB (`VmRSS`, `VmHWM`).
fn proc_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

// ---------------------------------------------------------------------------------------------
// Item 3: login throttling under concurrency, and memory under a login flood.

both_backends!(concurrent_guesses_get_no_more_checks_than_the_limit, |b| {
    let Some(env) = Env::new(b) else { return };
    env.add_user("alice", "agent");
    let srv = env.start();
    // 60 wrong passwords for one user at once. Checking the count before the argon2 check and
    // recording after let 40 of them be verified with a limit of 5.
    let results = concurrent_logins(
        &srv,
        60,
        |i| json!({"username": "alice", "password": format!("wrong-password-{i}")}),
    );
    let (n401, n429) = (
        count(&results, 401, "invalid_credentials"),
        count(&results, 429, "too_many_attempts"),
    );
    eprintln!("60 concurrent wrong passwords: {n401} × 401, {n429} × 429");
    assert_eq!(n401 + n429, 60, "{results:?}");
    assert!(
        n401 <= 5,
        "{n401} passwords verified (limit 5): {results:?}"
    );
    // Locked: the right password is refused too.
    let r = srv.post(
        "/api/v1/auth/login",
        None,
        &json!({"username": "alice", "password": PASSWORD}),
    );
    assert_eq!(error_of(r), (429, "too_many_attempts".into()));
    // ... from this address only: alice herself, elsewhere, is not locked out.
    let r = from_address(&srv, "127.0.0.2", "alice", PASSWORD);
    assert_eq!(r.status(), 200, "alice from another address");
});

/// `POST /api/v1/auth/login` with the connection's source address bound to `source` (any
/// 127.0.0.0/8 address reaches the loopback listener): a second client on another address.
fn from_address(
    srv: &Server,
    source: &str,
    user: &str,
    password: &str,
) -> reqwest::blocking::Response {
    Client::builder()
        .local_address(source.parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
        .post(srv.url("/api/v1/auth/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .expect("login")
}

/// Low item: the lockout was per username, so anybody could lock anybody out. Now it is per
/// username and client address: an attacker on 127.0.0.1 locks only itself out of alice's
/// account (alice logs in from 127.0.0.2 meanwhile), and each further lockout of the attacker
/// lasts twice as long (Retry-After 1, 2, 4 s with `lockout_secs = 1`).
#[test]
fn lockout_is_per_user_and_address_with_growing_back_off() {
    let env = Env::new(Backend::Sqlite)
        .unwrap()
        .with("EMO_AUTH_MAX_FAILED_LOGINS", "3")
        .with("EMO_AUTH_LOCKOUT_SECS", "1")
        .with("EMO_AUTH_LOCKOUT_MAX_SECS", "60");
    env.add_user("alice", "agent");
    let srv = env.start();
    let attack = || from_address(&srv, "127.0.0.1", "alice", "wrong-password-guess");
    for (round, lock) in [1u64, 2, 4].into_iter().enumerate() {
        for i in 0..3 {
            assert_eq!(
                error_of(attack()),
                (401, "invalid_credentials".into()),
                "round {round}, try {i}"
            );
        }
        let r = attack();
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(error_of(r), (429, "too_many_attempts".into()));
        assert_eq!(retry, lock, "round {round}: Retry-After");
        // The attacker's right guess would be refused too, but alice elsewhere is let in.
        let r = from_address(&srv, "127.0.0.1", "alice", PASSWORD);
        assert_eq!(r.status(), 429);
        let r = from_address(&srv, "127.0.0.2", "alice", PASSWORD);
        assert_eq!(r.status(), 200, "round {round}: alice from another address");
        std::thread::sleep(Duration::from_millis(retry * 1000 + 150));
    }
}

#[test]
fn a_login_flood_does_not_exhaust_memory() {
    let env = Env::new(Backend::Sqlite)
        .unwrap()
        // Every one of the 200 attempts reaches the password check: what bounds memory here is
        // the hashing semaphore, not the per-address lockout.
        .with("EMO_AUTH_MAX_FAILED_LOGINS_PER_ADDRESS", "100000");
    let srv = env.start();
    let pid = srv.child.as_ref().unwrap().id();
    let base_kb = proc_kb(pid, "VmRSS");
    let t0 = Instant::now();
    let results = concurrent_logins(
        &srv,
        200,
        |i| json!({"username": format!("nobody{i}"), "password": "guess-guess-guess"}),
    );
    let took = t0.elapsed();
    let (n401, n429) = (
        count(&results, 401, "invalid_credentials"),
        count(&results, 429, "too_many_attempts"),
    );
    let peak_kb = proc_kb(pid, "VmHWM");
    let after_kb = proc_kb(pid, "VmRSS");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    eprintln!(
        "200 concurrent unknown-user logins in {took:?}: {n401} × 401, {n429} × 429; \
         RSS {} MB before, peak {} MB, {} MB after ({cores} cores)",
        base_kb / 1024,
        peak_kb / 1024,
        after_kb / 1024
    );
    assert_eq!(n401 + n429, 200, "{results:?}");
    // Each argon2 check works in 19 MiB. Allocated per check, 200 concurrent checks took the
    // daemon from 0.9 to 4.7 GB, and glibc kept it (one semaphore alone still reached 1 GB here:
    // every blocking thread's arena kept its copy). Now at most one check per core runs, in
    // memory reused from a pool: growth ≤ one 19 MiB buffer per core + 128 MiB for 200
    // connections, threads and allocator slack. Measured: 36 → 89 MB on 2 cores.
    let growth_bound_kb = (cores * 19 + 128) * 1024;
    assert!(
        peak_kb.saturating_sub(base_kb) < growth_bound_kb,
        "RSS grew by {} MB (bound {} MB)",
        (peak_kb - base_kb) / 1024,
        growth_bound_kb / 1024
    );
    assert!(
        peak_kb < 600 * 1024 || cores > 16,
        "peak {} MB",
        peak_kb / 1024
    );
    assert!(after_kb < 600 * 1024 || cores > 16);
    assert_eq!(srv.get("/healthz", None).status(), 200);
}

#[test]
fn registration_is_throttled_per_address() {
    let env = Env::new(Backend::Sqlite)
        .unwrap()
        .with("EMO_AUTH_MAX_REGISTRATIONS_PER_ADDRESS", "3");
    let srv = env.start();
    srv.register("reg1");
    // Failed attempts count too (each may cost a hash, each probes a name).
    let r = srv.post(
        "/api/v1/auth/register",
        None,
        &json!({"username": "reg1", "password": PASSWORD}),
    );
    assert_eq!(error_of(r).0, 409);
    srv.register("reg2");
    let r = srv.post(
        "/api/v1/auth/register",
        None,
        &json!({"username": "reg3", "password": PASSWORD}),
    );
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(error_of(r), (429, "too_many_attempts".into()));
    // Logins are not affected.
    srv.login("reg2");
}

// ---------------------------------------------------------------------------------------------
// Item 5: display names.

both_backends!(
    display_names_refuse_control_characters_and_are_capped,
    |b| {
        let Some(env) = Env::new(b) else { return };
        env.add_user("root", "admin");
        let srv = env.start();
        let admin = srv.login("root");
        let bad = [
            "Eve\u{1b}]2;pwned\u{7}\u{1b}[5;5H".to_string(),
            "two\nlines".to_string(),
            "\u{9b}31m".to_string(),
            "x".repeat(101),
            "x".repeat(1_000_000),
        ];
        for (i, name) in bad.iter().enumerate() {
            let r = srv.post(
                "/api/v1/users",
                Some(&admin),
                &json!({"username": format!("u{i}"), "password": PASSWORD, "display_name": name}),
            );
            assert_eq!(error_of(r), (422, "invalid_input".into()), "create {i}");
        }
        let ok = "Ännä Ø'Brien-Łukasz ".repeat(5);
        assert_eq!(ok.chars().count(), 100);
        let r = srv.post(
            "/api/v1/users",
            Some(&admin),
            &json!({"username": "ann", "password": PASSWORD, "display_name": ok}),
        );
        assert_eq!(r.status(), 201);
        for (i, name) in bad.iter().enumerate() {
            let r = srv.patch(
                "/api/v1/users/ann",
                Some(&admin),
                &json!({"display_name": name}),
            );
            assert_eq!(error_of(r), (422, "invalid_input".into()), "patch {i}");
        }
        let u: Value = srv.get("/api/v1/users/ann", Some(&admin)).json().unwrap();
        assert_eq!(u["display_name"], ok);
        // Nothing refused was stored.
        let all: Value = srv.get("/api/v1/users", Some(&admin)).json().unwrap();
        assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
        // The command line applies the same rule.
        let out = env
            .emod()
            .args([
                "user",
                "add",
                "eve",
                "--display-name",
                "a\u{1b}[2Jb",
                "--password-stdin",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
    }
);

#[test]
fn user_list_does_not_print_stored_control_characters() {
    use diesel::{Connection, RunQueryDsl};
    let env = Env::new(Backend::Sqlite).unwrap();
    env.add_user("old", "agent");
    // A display name stored before they were refused (straight into the database).
    let mut c = diesel::SqliteConnection::establish(env.sqlite_path().to_str().unwrap()).unwrap();
    diesel::sql_query(
        "UPDATE users SET display_name = 'x' || char(27) || ']2;pwned' || char(7) || 'y' \
         WHERE username = 'old'",
    )
    .execute(&mut c)
    .unwrap();
    let out = env.emod().args(["user", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("x]2;pwnedy"), "{text:?}");
    assert!(
        !text.chars().any(|c| c == '\u{1b}' || c == '\u{7}'),
        "{text:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Item 6: slow request bodies and heads.

/// Writes `head`, then one byte of `trickle` every 250 ms, until the server closes the
/// connection; returns how long that took (or `None` if it stayed open for `give_up`).
fn trickle(
    addr: &str,
    head: String,
    trickle: &'static [u8],
    give_up: Duration,
) -> Option<Duration> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    if s.write_all(head.as_bytes()).is_err() {
        return Some(t0.elapsed());
    }
    let mut i = 0;
    let mut buf = [0u8; 4096];
    while t0.elapsed() < give_up {
        match s.read(&mut buf) {
            Ok(0) => return Some(t0.elapsed()),
            Ok(_) => continue, // the 408, then EOF
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(t0.elapsed()),
        }
        if s.write_all(&trickle[i % trickle.len()..][..1]).is_err() {
            return Some(t0.elapsed());
        }
        i += 1;
    }
    None
}

#[test]
fn slow_bodies_and_heads_are_cut_off() {
    let env = Env::new(Backend::Sqlite)
        .unwrap()
        .with("EMO_SERVER_BODY_TIMEOUT_SECS", "3");
    let srv = env.start();
    let addr = srv.base.trim_start_matches("http://").to_string();
    let give_up = Duration::from_secs(30);
    let mut handles = Vec::new();
    // 50 logins that send their headers, then trickle a body they said is 100 kB.
    for _ in 0..50 {
        let head = format!(
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: 100000\r\n\r\n{{\"username\":\""
        );
        let addr = addr.clone();
        handles.push((
            "body",
            std::thread::spawn(move || trickle(&addr, head, b"aaaaaaaa", give_up)),
        ));
    }
    // 10 chunked bodies (actix drains a dropped chunked body instead of closing).
    for _ in 0..10 {
        let head = format!(
            "POST /api/v1/auth/register HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        let addr = addr.clone();
        handles.push((
            "chunked",
            std::thread::spawn(move || trickle(&addr, head, b"1\r\na\r\n", give_up)),
        ));
    }
    // 10 that never finish their headers.
    for _ in 0..10 {
        let head = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n");
        let addr = addr.clone();
        handles.push((
            "head",
            std::thread::spawn(move || trickle(&addr, head, b"X-a: b\r\n", give_up)),
        ));
    }
    // Meanwhile the daemon keeps answering.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        assert_eq!(srv.get("/healthz", None).status(), 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut worst: std::collections::BTreeMap<&str, Duration> = Default::default();
    for (kind, h) in handles {
        let closed = h.join().unwrap();
        let closed = closed.unwrap_or_else(|| panic!("a slow {kind} connection stayed open"));
        let w = worst.entry(kind).or_default();
        *w = (*w).max(closed);
    }
    eprintln!("slowest close per kind: {worst:?}");
    // Bodies: the 3 s deadline (+ the 2 s lingering close); heads: actix's 5 s.
    assert!(worst["body"] < Duration::from_secs(8), "{worst:?}");
    assert!(worst["chunked"] < Duration::from_secs(8), "{worst:?}");
    assert!(worst["head"] < Duration::from_secs(10), "{worst:?}");
    assert!(
        worst["body"] >= Duration::from_millis(2500),
        "closed before the deadline? {worst:?}"
    );
    assert_eq!(srv.get("/healthz", None).status(), 200);
    // A normal request with a body still works.
    srv.register("after");
}

// ---------------------------------------------------------------------------------------------
// Item 8: data at rest.

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn assert_private(p: &Path) {
    let m = mode(p);
    assert_eq!(m & 0o077, 0, "{} is {m:o}", p.display());
}

#[test]
fn the_database_and_its_directory_are_private() {
    let env = Env::new(Backend::Sqlite).unwrap();
    let data = env.dir.path().join("data");
    let db = data.join("emo.sqlite3");
    let env = env.with("EMO_SQLITE_PATH", &db.display().to_string());
    let mut srv = env.start();
    let token = srv.register("alice");
    let sid = srv.start_session(&token, None);
    let t0 = chrono::Utc::now().timestamp_millis();
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(&token),
        &fused_samples(t0, 1, &["happy"; 10]),
    );
    assert_eq!(r.status(), 201);
    let wal = data.join("emo.sqlite3-wal");
    let shm = data.join("emo.sqlite3-shm");
    wait_until("the WAL file", Duration::from_secs(10), || wal.exists());
    for p in [&data, &db, &wal, &shm] {
        assert_private(p);
    }
    assert_eq!(mode(&data), 0o700);
    srv.sigterm();
    for entry in std::fs::read_dir(&data).unwrap() {
        assert_private(&entry.unwrap().path());
    }
    // A database an earlier version left world-readable is tightened at start.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let srv = env.start();
    assert_eq!(mode(&db), 0o600);
    drop(srv);
}

#[test]
fn spool_files_are_private() {
    let Some(env) = Env::new(Backend::Postgres) else {
        return;
    };
    let env = env.with("EMO_DATABASE_CONNECT_TIMEOUT_SECS", "1");
    let mut srv = env.start();
    let token = srv.register("alice");
    let sid = srv.start_session(&token, None);
    let pg = env.pg.as_ref().unwrap();
    pg.cut();
    let t0 = chrono::Utc::now().timestamp_millis();
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(&token),
        &fused_samples(t0, 1, &["sad"; 20]),
    );
    assert_eq!(r.status(), 201);
    srv.sigterm();
    pg.restore();
    let spool = env.spool_dir();
    assert_eq!(mode(&spool), 0o700);
    let files: Vec<_> = std::fs::read_dir(&spool).unwrap().collect();
    assert_eq!(files.len(), 1, "log:\n{}", srv.log_text());
    for f in files {
        assert_eq!(mode(&f.unwrap().path()), 0o600);
    }
}

// ---------------------------------------------------------------------------------------------
// Item 9: log forging.

#[test]
fn login_usernames_cannot_forge_or_flood_the_log() {
    let env = Env::new(Backend::Sqlite).unwrap().with("EMO_LOG", "info");
    env.add_user("root", "admin");
    let srv = env.start();
    let before = std::fs::metadata(&srv.log).unwrap().len();
    let forged = "x\n2026-01-01T00:00:00Z  INFO emod::api::users: admin root granted\r\u{1b}[2J";
    let huge = "a".repeat(1_000_000);
    for name in [forged, huge.as_str()] {
        let t0 = Instant::now();
        let r = srv.post(
            "/api/v1/auth/login",
            None,
            &json!({"username": name, "password": "whatever-whatever"}),
        );
        let took = t0.elapsed();
        let (status, _) = error_of(r);
        assert!((400..500).contains(&status), "{status}");
        assert!(took < Duration::from_millis(1500), "{took:?}");
    }
    // A malformed name is not a failure of anyone's account: root is not locked.
    srv.login("root");
    std::thread::sleep(Duration::from_millis(200));
    let log = srv.log_text();
    let grew = std::fs::metadata(&srv.log).unwrap().len() - before;
    eprintln!("log grew by {grew} bytes for two hostile logins and one login");
    assert!(grew < 4096, "log grew by {grew} bytes:\n{log}");
    assert!(
        !log.lines().any(|l| l.contains("admin root granted")),
        "forged line in the log:\n{log}"
    );
    assert!(!log.contains('\u{1b}') && !log.contains('\r'), "{log:?}");
}

// ---------------------------------------------------------------------------------------------
// Low: admins, names, passwords, secrets, audit, metrics.

both_backends!(the_last_admin_stays_an_admin, |b| {
    let Some(env) = Env::new(b) else { return };
    env.add_user("root", "admin");
    let srv = env.start();
    let root = srv.login("root");
    for change in [json!({"role": "agent"}), json!({"disabled": true})] {
        let r = srv.patch("/api/v1/users/root", Some(&root), &change);
        assert_eq!(error_of(r), (409, "conflict".into()), "{change}");
    }
    let r = srv.post(
        "/api/v1/users",
        Some(&root),
        &json!({"username": "bob", "password": PASSWORD, "role": "admin"}),
    );
    assert_eq!(r.status(), 201);
    // With another admin, root may step down; then bob is the last one.
    let r = srv.patch("/api/v1/users/root", Some(&root), &json!({"role": "agent"}));
    assert_eq!(r.status(), 200);
    let bob = srv.login("bob");
    let r = srv.patch("/api/v1/users/bob", Some(&bob), &json!({"role": "agent"}));
    assert_eq!(error_of(r), (409, "conflict".into()));
    // The command line: `emod user role NAME agent|admin`, with the same rule.
    let role = |name: &str, role: &str| {
        let out = env
            .emod()
            .args(["user", "role", name, role])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, err) = role("bob", "agent");
    assert!(!ok && err.contains("last active admin"), "{err}");
    assert!(role("root", "admin").0);
    assert!(role("bob", "agent").0);
    let u: Value = srv
        .get("/api/v1/users/bob", Some(&srv.login("root")))
        .json()
        .unwrap();
    assert_eq!(u["role"], "agent");
});

both_backends!(two_admins_demoting_each_other_leave_one, |b| {
    let Some(env) = Env::new(b) else { return };
    // Every request reads the caller's role from the database (no token cache between rounds).
    let env = env.with("EMO_AUTH_TOKEN_CACHE_SECS", "0");
    env.add_user("root", "admin");
    env.add_user("bob", "admin");
    let srv = env.start();
    let admins = || {
        let out = env
            .emod()
            .args(["user", "list", "--json"])
            .output()
            .unwrap();
        let users: Value = serde_json::from_slice(&out.stdout).unwrap();
        users
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["role"] == "admin" && u["disabled"] == false)
            .count()
    };
    for round in 0..8 {
        // (Disabling revokes tokens: log in again each round.)
        let (root, bob) = (srv.login("root"), srv.login("bob"));
        // Each demotes the other at the same instant: checking first and updating after let
        // both pass the "another admin exists" check.
        let barrier = Arc::new(Barrier::new(2));
        let statuses: Vec<u16> = [("bob", root.clone()), ("root", bob.clone())]
            .into_iter()
            .map(|(target, token)| {
                let (barrier, url) = (barrier.clone(), srv.url(&format!("/api/v1/users/{target}")));
                let change = if round % 2 == 0 {
                    json!({"role": "agent"})
                } else {
                    json!({"disabled": true})
                };
                std::thread::spawn(move || {
                    let client = Client::new();
                    barrier.wait();
                    client
                        .patch(url)
                        .bearer_auth(token)
                        .json(&change)
                        .send()
                        .unwrap()
                        .status()
                        .as_u16()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert_eq!(admins(), 1, "round {round}: {statuses:?}");
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        for name in ["root", "bob"] {
            let ok = |args: &[&str]| env.emod().args(args).output().unwrap().status.success();
            assert!(ok(&["user", "role", name, "admin"]));
            assert!(ok(&["user", "enable", name]));
        }
        assert_eq!(admins(), 2);
    }
});

both_backends!(
    usernames_are_case_insensitive_and_registration_does_not_echo_them,
    |b| {
        let Some(env) = Env::new(b) else { return };
        env.add_user("root1", "admin");
        let srv = env.start();
        for name in ["Root1", "ROOT1", "root1"] {
            let r = srv.post(
                "/api/v1/auth/register",
                None,
                &json!({"username": name, "password": PASSWORD}),
            );
            assert_eq!(r.status(), 409, "{name}");
            let body: Value = r.json().unwrap();
            assert_eq!(body["error"], "conflict");
            let msg = body["message"].as_str().unwrap().to_lowercase();
            assert!(!msg.contains("root1") && !msg.contains("taken"), "{msg}");
        }
        // An admin creating users is told plainly.
        let admin = srv.login("root1");
        let r = srv.post(
            "/api/v1/users",
            Some(&admin),
            &json!({"username": "RoOt1", "password": PASSWORD}),
        );
        assert_eq!(error_of(r), (409, "conflict".into()));
        // The command line too.
        let out = env
            .emod()
            .args(["user", "add", "ROOT1", "--password-stdin"])
            .stdin(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                writeln!(c.stdin.take().unwrap(), "{PASSWORD}")?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(!out.status.success());
        let all: Value = srv.get("/api/v1/users", Some(&admin)).json().unwrap();
        assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    }
);

both_backends!(
    concurrent_registrations_of_one_name_in_several_cases_give_one_account,
    |b| {
        let Some(env) = Env::new(b) else { return };
        let env = env.with("EMO_AUTH_MAX_REGISTRATIONS_PER_ADDRESS", "0");
        let srv = env.start();
        for round in 0..10 {
            // Two at a time pass the hashing semaphore together and reach the insert together.
            let names = [format!("Case{round}"), format!("cASE{round}")];
            let barrier = Arc::new(Barrier::new(names.len()));
            let statuses: Vec<u16> = names
                .iter()
                .map(|name| {
                    let (barrier, url) = (barrier.clone(), srv.url("/api/v1/auth/register"));
                    let body = json!({"username": name, "password": PASSWORD});
                    std::thread::spawn(move || {
                        let client = Client::new();
                        barrier.wait();
                        client
                            .post(url)
                            .json(&body)
                            .send()
                            .unwrap()
                            .status()
                            .as_u16()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect();
            assert_eq!(
                statuses.iter().filter(|s| **s == 201).count(),
                1,
                "round {round}: {statuses:?}"
            );
            assert!(
                statuses.iter().all(|s| [201, 409].contains(s)),
                "{statuses:?}"
            );
        }
    }
);

#[test]
fn all_space_passwords_are_refused() {
    let env = Env::new(Backend::Sqlite).unwrap();
    env.add_user("root", "admin");
    let srv = env.start();
    let r = srv.post(
        "/api/v1/auth/register",
        None,
        &json!({"username": "spacey", "password": "            "}),
    );
    assert_eq!(error_of(r), (422, "invalid_input".into()));
    let admin = srv.login("root");
    let r = srv.patch(
        "/api/v1/users/root",
        Some(&admin),
        &json!({"password": " \t          "}),
    );
    assert_eq!(error_of(r), (422, "invalid_input".into()));
}

#[test]
fn database_passwords_in_the_url_query_are_redacted() {
    let env = Env::new(Backend::Sqlite).unwrap();
    // Nothing listens on port 9: `migrate` fails to connect and reports the URL.
    let url = "postgres://emo@127.0.0.1:9/emo?sslmode=disable&password=s3cr3t-pw";
    let show = env
        .emod()
        .args(["config", "show"])
        .env("EMO_DATABASE_URL", url)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(
        out.contains("password=***") && !out.contains("s3cr3t"),
        "{out}"
    );
    let migrate = env
        .emod()
        .args(["migrate"])
        .env("EMO_DATABASE_URL", url)
        .env("EMO_DATABASE_CONNECT_TIMEOUT_SECS", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&migrate.stderr);
    assert!(!migrate.status.success());
    assert!(
        err.contains("127.0.0.1") && !err.contains("s3cr3t"),
        "{err}"
    );
}

both_backends!(admin_reads_of_users_and_the_audit_are_audited, |b| {
    let Some(env) = Env::new(b) else { return };
    env.add_user("root", "admin");
    env.add_user("bob", "agent");
    let srv = env.start();
    let admin = srv.login("root");
    assert_eq!(srv.get("/api/v1/users", Some(&admin)).status(), 200);
    assert_eq!(srv.get("/api/v1/users/bob", Some(&admin)).status(), 200);
    assert_eq!(srv.get("/api/v1/audit", Some(&admin)).status(), 200);
    let page: Value = srv
        .get("/api/v1/audit?limit=100", Some(&admin))
        .json()
        .unwrap();
    let entries = page["items"].as_array().expect("items");
    let has = |action: &str, target: Option<&str>| {
        entries.iter().any(|e| {
            e["action"] == action
                && e["actor"] == "root"
                && target.is_none_or(|t| e["target_user"] == t)
        })
    };
    assert!(has("read.users", None), "{page}");
    assert!(has("read.user", Some("bob")), "{page}");
    assert!(has("read.audit", None), "{page}");
});

#[test]
fn metrics_can_require_an_admin() {
    // Default: public, as before.
    let env = Env::new(Backend::Sqlite).unwrap();
    let srv = env.start();
    assert_eq!(srv.get("/metrics", None).status(), 200);
    drop(srv);
    let env = Env::new(Backend::Sqlite)
        .unwrap()
        .with("EMO_SERVER_METRICS_PUBLIC", "false");
    env.add_user("root", "admin");
    let srv = env.start();
    assert_eq!(
        error_of(srv.get("/metrics", None)),
        (401, "unauthenticated".into())
    );
    let agent = srv.register("agent1");
    assert_eq!(
        error_of(srv.get("/metrics", Some(&agent))),
        (403, "forbidden".into())
    );
    let admin = srv.login("root");
    let r = srv.get("/metrics", Some(&admin));
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("emo_"));
}

/// Issue 28 item 13: a daemon listening beyond loopback does not tell anyone who reaches its
/// port whether someone is being captured: `/metrics` needs an admin by default there.
#[test]
fn metrics_are_not_public_off_loopback_by_default() {
    let env = Env::new(Backend::Sqlite).unwrap();
    env.add_user("root", "admin");
    let port_file = env.dir.path().join("any.port");
    let log = env.dir.path().join("any.log");
    let mut child = env
        .emod()
        .args(["serve", "--listen", "0.0.0.0:0", "--port-file"])
        .arg(&port_file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = wait_port_file(&port_file, &mut child, &log);
    let port = addr.rsplit_once(':').unwrap().1;
    let srv = Server {
        base: format!("http://127.0.0.1:{port}"),
        child: Some(child),
        client: Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        log,
    };
    wait_until("the daemon answers", Duration::from_secs(60), || {
        srv.client
            .get(srv.url("/healthz"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
    assert_eq!(
        error_of(srv.get("/metrics", None)),
        (401, "unauthenticated".into())
    );
    let admin = srv.login("root");
    let r = srv.get("/metrics", Some(&admin));
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("emo_capture_source_state"));
}

/// Reads `data:` lines of a live stream on a thread; the receiver gets each JSON event, and
/// `None` when the stream ends.
fn follow_live(srv: &Server, token: &str, sid: &str) -> std::sync::mpsc::Receiver<Option<Value>> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let req = srv
        .client
        .get(srv.url(&format!("/api/v1/sessions/{sid}/live")))
        .bearer_auth(token);
    std::thread::spawn(move || {
        let resp = req.send().unwrap();
        assert_eq!(resp.status(), 200);
        for line in std::io::BufReader::new(resp).lines() {
            let Ok(line) = line else { break };
            if let Some(d) = line.strip_prefix("data: ") {
                let _ = tx.send(serde_json::from_str(d).ok());
            }
        }
        let _ = tx.send(None);
    });
    rx
}

/// The `closed` event a stream ends with, and how long after `t0` it came.
fn closed_within(
    rx: &std::sync::mpsc::Receiver<Option<Value>>,
    t0: Instant,
    max: Duration,
) -> (Value, Duration) {
    loop {
        let left = max.saturating_sub(t0.elapsed());
        match rx.recv_timeout(left) {
            Ok(Some(v)) if v["type"] == "closed" => {
                let took = t0.elapsed();
                // Nothing follows it: the stream ends.
                assert!(matches!(rx.recv_timeout(Duration::from_secs(5)), Ok(None)));
                return (v, took);
            }
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without a `closed` event"),
            Err(_) => panic!("the stream was still open {max:?} later"),
        }
    }
}

/// Issue 28 item 7: open live streams are re-checked: a stream whose token was logged out, or
/// whose admin was demoted and disabled, ends within a few seconds with a `closed` event.
#[test]
fn live_streams_end_when_their_reader_loses_the_right() {
    let env = Env::new(Backend::Sqlite).unwrap();
    env.add_user("root", "admin");
    env.add_user("eve", "admin");
    let srv = env.start();
    let alice = srv.register("alice");
    let root = srv.login("root");
    let eve = srv.login("eve");
    let sid = srv.start_session(&alice, None);
    let by_root = follow_live(&srv, &root, &sid);
    let by_eve = follow_live(&srv, &eve, &sid);
    let by_alice = follow_live(&srv, &alice, &sid);
    std::thread::sleep(Duration::from_millis(500));

    let t0 = Instant::now();
    assert_eq!(
        srv.post("/api/v1/auth/logout", Some(&root), &json!({}))
            .status(),
        204
    );
    let (ev, took) = closed_within(&by_root, t0, Duration::from_secs(8));
    assert_eq!(ev["reason"], "token_revoked", "{ev}");
    eprintln!("logged-out stream closed after {took:?}");

    let root = srv.login("root");
    let t0 = Instant::now();
    let r = srv.patch(
        "/api/v1/users/eve",
        Some(&root),
        &json!({"role": "agent", "disabled": true}),
    );
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let (ev, took) = closed_within(&by_eve, t0, Duration::from_secs(8));
    assert!(
        ev["reason"] == "account_disabled" || ev["reason"] == "token_revoked",
        "{ev}"
    );
    eprintln!("disabled admin's stream closed after {took:?}");

    // The owner's stream goes on until the session stops.
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/stop"),
        Some(&alice),
        &json!({}),
    );
    assert_eq!(r.status(), 200);
    let mut last = None;
    while let Ok(Some(v)) = by_alice.recv_timeout(Duration::from_secs(5)) {
        last = Some(v);
    }
    assert_eq!(last.unwrap()["type"], "stopped");
}

/// Issue 28, item 8: live streams are bounded per user and in all (before: 1,100 streams by one
/// agent took every descriptor and `/healthz`, login and posts timed out); a closed stream gives
/// its place back.
#[test]
fn live_streams_are_bounded_per_user_and_in_all() {
    let env = Env::new(Backend::Sqlite)
        .unwrap()
        .with("EMO_SERVER_MAX_LIVE_STREAMS_PER_USER", "2")
        .with("EMO_SERVER_MAX_LIVE_STREAMS", "3");
    let srv = env.start();
    let ann = srv.register("ann");
    let bob = srv.register("bob");
    let (a_sid, b_sid) = (srv.start_session(&ann, None), srv.start_session(&bob, None));
    let open = |token: &str, sid: &str| {
        srv.client
            .get(srv.url(&format!("/api/v1/sessions/{sid}/live")))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    let a1 = open(&ann, &a_sid);
    let a2 = open(&ann, &a_sid);
    assert_eq!((a1.status().as_u16(), a2.status().as_u16()), (200, 200));
    let r = open(&ann, &a_sid);
    let retry = r.headers().get("retry-after").is_some();
    let (status, body): (u16, Value) = (r.status().as_u16(), r.json().unwrap());
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_attempts")),
        "{body}"
    );
    assert!(
        retry
            && body["message"]
                .as_str()
                .unwrap()
                .contains("you have 2 open"),
        "{body}"
    );
    let b1 = open(&bob, &b_sid);
    assert_eq!(b1.status(), 200);
    let (status, body) = error_of(open(&bob, &b_sid));
    assert_eq!(
        (status, body.as_str()),
        (429, "too_many_attempts"),
        "the total is reached"
    );
    // The API still answers while the streams are open.
    assert_eq!(srv.get("/healthz", None).status(), 200);
    // Closing a stream gives its place back: the daemon notices when a write fails, at the
    // latest at the second keep-alive comment (15 s apart) after the client left.
    drop(a1);
    wait_until(
        "a closed stream's place is given back",
        Duration::from_secs(45),
        || {
            let r = open(&bob, &b_sid);
            r.status() == 200
        },
    );
    drop((a2, b1));
}
