//! What an admin runs on a machine: `emod backup`, `emod doctor`, and the daemon under systemd
//! (readiness notification, journal-friendly log lines). Real daemon, real SQLite files, real
//! PostgreSQL, real models and ONNX Runtime.

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use chrono::Utc;
use common::*;
use diesel::{Connection, RunQueryDsl, SqliteConnection};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn models() -> PathBuf {
    std::env::var_os("EMO_TEST_MODELS_DIR").map_or_else(|| root().join("models"), PathBuf::from)
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct Fingerprint {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    users: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    sessions: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    samples: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    t_sum: i64,
}

/// Row counts and a checksum of the samples of a SQLite file, read without the daemon.
fn fingerprint(path: &Path) -> Fingerprint {
    let mut c = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    diesel::sql_query(
        "SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM sessions) AS sessions, \
         (SELECT count(*) FROM samples) AS samples, (SELECT coalesce(sum(t), 0) FROM samples) AS t_sum",
    )
    .get_result(&mut c)
    .unwrap()
}

fn integrity(path: &Path) -> String {
    #[derive(diesel::QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Text)]
        integrity_check: String,
    }
    let mut c = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    let r: Check = diesel::sql_query("PRAGMA integrity_check")
        .get_result(&mut c)
        .unwrap();
    r.integrity_check
}

#[test]
fn backup_of_a_live_sqlite_database_has_the_same_rows() {
    let env = Env::new(Backend::Sqlite).unwrap();
    let srv = env.start();
    let token = srv.register("alice");
    // Started two hours ago (an upload of an earlier recording): samples may not precede it.
    let started = (Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
    let sid = srv.start_session(&token, Some(&started));
    let emotions = ["happy", "sad", "neutral", "angry"];
    let t0 = Utc::now().timestamp_millis() - 3_600_000;
    let labels: Vec<&str> = (0..500).map(|i| emotions[i % 4]).collect();
    for k in 0..4 {
        let r = srv.post(
            &format!("/api/v1/sessions/{sid}/samples"),
            Some(&token),
            &fused_samples(t0 + k * 600_000, 1, &labels),
        );
        assert_eq!(r.status(), 201);
    }
    let db = env.sqlite_path();
    wait_until("2000 samples written", Duration::from_secs(60), || {
        fingerprint(&db).samples == 2000
    });
    // The daemon keeps running (and keeps the database open in WAL mode, where the newest rows
    // are still in the -wal file): the copy must contain them all the same.
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    assert!(path_exists(&wal), "the daemon's database is in WAL mode");
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("emo-backup.sqlite3");
    let out = env.emod().arg("backup").arg(&backup).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("2000 samples"), "{stdout}");
    assert_eq!(fingerprint(&backup), fingerprint(&db));
    assert_eq!(integrity(&backup), "ok");
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the backup holds personal data: owner-only");

    // Never overwrites: a second backup to the same file fails and leaves it as it was.
    let before = std::fs::read(&backup).unwrap();
    let out = env.emod().arg("backup").arg(&backup).output().unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("exists already"), "{stderr}");
    assert_eq!(std::fs::read(&backup).unwrap(), before);

    // While samples keep arriving, a backup is one consistent snapshot: an intact database
    // with a sample count between the counts before and after it.
    let writer_srv_base = srv.base.clone();
    let writer_token = token.clone();
    let writer_sid = sid.clone();
    let writer = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::new();
        for k in 0..20 {
            let body = fused_samples(t0 + 2_400_000 + k * 50_000, 1, &["happy"; 50]);
            let r = client
                .post(format!(
                    "{writer_srv_base}/api/v1/sessions/{writer_sid}/samples"
                ))
                .bearer_auth(&writer_token)
                .json(&body)
                .send()
                .unwrap();
            assert_eq!(r.status(), 201);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let during = dir.path().join("during.sqlite3");
    let out = env.emod().arg("backup").arg(&during).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    writer.join().unwrap();
    assert_eq!(integrity(&during), "ok");
    let n = fingerprint(&during).samples;
    assert!((2000..=3000).contains(&n), "{n} samples in the backup");
    drop(srv);
}

#[test]
fn backup_on_postgres_prints_the_pg_dump_command() {
    let Some(env) = Env::new(Backend::Postgres) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dump");
    let out = env.emod().arg("backup").arg(&file).output().unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("pg_dump --format=custom"), "{stderr}");
    assert!(!path_exists(&file), "nothing is written");
}

/// `emod doctor` with the checkout's models; returns (success, stdout).
fn doctor(env: &Env, extra: &[&str]) -> (bool, String) {
    let out = env
        .emod()
        .env("EMO_MODELS_DIR", models())
        .arg("doctor")
        .args(extra)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    (out.status.success(), format!("{stdout}{stderr}"))
}

fn line<'a>(out: &'a str, check: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(check))
        .unwrap_or_else(|| panic!("no `{check}` line in:\n{out}"))
}

#[test]
fn doctor_passes_on_a_good_setup_and_names_what_is_broken() {
    let env = Env::new(Backend::Sqlite).unwrap();
    // Before any start there is no database yet: that is what it says.
    let (ok, out) = doctor(&env, &[]);
    assert!(!ok, "{out}");
    assert!(line(&out, "database").contains("does not exist"), "{out}");
    assert!(
        !path_exists(&env.sqlite_path()),
        "doctor must not create the database"
    );
    // An existing but unmigrated database.
    SqliteConnection::establish(env.sqlite_path().to_str().unwrap()).unwrap();
    let (ok, out) = doctor(&env, &[]);
    assert!(!ok && line(&out, "database").contains("pending"), "{out}");

    let out = env.emod().arg("migrate").output().unwrap();
    assert!(out.status.success());
    let (ok, out) = doctor(&env, &[]);
    assert!(ok, "{out}");
    for check in [
        "config",
        "database",
        "onnxruntime",
        "models",
        "devices",
        "spool",
        "disk",
    ] {
        let l = line(&out, check);
        assert!(
            l.contains(" ok ") || (check == "devices" && l.contains(" WARN ")),
            "{l}"
        );
    }
    assert!(line(&out, "models").contains("3 models load"), "{out}");
    assert!(out.contains("all checks passed"), "{out}");

    // Samples waiting in the spool are counted (a warning: the next start writes them).
    std::fs::create_dir_all(env.spool_dir()).unwrap();
    std::fs::write(
        env.spool_dir()
            .join("pending-20260101T000000.000Z-1-0.jsonl"),
        "{}\n{}\n{}\n",
    )
    .unwrap();
    let (ok, out) = doctor(&env, &[]);
    assert!(ok, "{out}");
    let l = line(&out, "spool");
    assert!(
        l.contains("WARN") && l.contains("3 sample(s) in 1 file(s)"),
        "{l}"
    );

    // Deliberate breaks, one at a time: each fails and is named.
    // A model directory that does not exist (through the config file, as an admin would).
    let cfg = env.dir.path().join("broken-models.toml");
    std::fs::write(&cfg, "[models]\ndir = \"/nonexistent/models\"\n").unwrap();
    let out = env
        .emod()
        .env("EMO_CONFIG", &cfg)
        .env_remove("EMO_MODELS_DIR")
        .arg("doctor")
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(line(&stdout, "models").contains("FAILED"), "{stdout}");
    assert!(
        line(&stdout, "models").contains("/nonexistent/models"),
        "{stdout}"
    );
    assert!(stdout.contains("failed: models"), "{stdout}");
    assert!(line(&stdout, "database").contains(" ok "), "{stdout}");

    let out = env
        .emod()
        .env("EMO_MODELS_DIR", models())
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .arg("doctor")
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert!(!out.status.success());
    assert!(line(&stdout, "onnxruntime").contains("FAILED"), "{stdout}");

    let out = env
        .emod()
        .env("EMO_MODELS_DIR", models())
        .env(
            "EMO_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{}/emo", free_port()),
        )
        .env("EMO_DATABASE_CONNECT_TIMEOUT_SECS", "1")
        .arg("doctor")
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert!(!out.status.success());
    assert!(line(&stdout, "database").contains("FAILED"), "{stdout}");
    assert!(line(&stdout, "models").contains(" ok "), "{stdout}");
    assert!(stdout.contains("failed: database"), "{stdout}");

    let out = env
        .emod()
        .env("EMO_MODELS_DIR", models())
        .env("EMO_CAPTURE_CAMERA", "/dev/video-emo-test-absent")
        .arg("doctor")
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert!(!out.status.success());
    assert!(line(&stdout, "devices").contains("FAILED"), "{stdout}");

    let (ok, out) = doctor(&env, &["--min-free-mib", "999999999999"]);
    assert!(!ok && line(&out, "disk").contains("FAILED"), "{out}");

    let bad = env.dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = \"nowhere\"\n").unwrap();
    let out = env
        .emod()
        .env("EMO_CONFIG", &bad)
        .arg("doctor")
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert!(!out.status.success());
    assert!(line(&stdout, "config").contains("FAILED"), "{stdout}");
}

#[test]
fn doctor_checks_postgres_reachable_and_migrated() {
    let Some(env) = Env::new(Backend::Postgres) else {
        return;
    };
    let (ok, out) = doctor(&env, &[]);
    assert!(!ok && line(&out, "database").contains("pending"), "{out}");
    assert!(env.emod().arg("migrate").output().unwrap().status.success());
    let (ok, out) = doctor(&env, &[]);
    assert!(ok, "{out}");
    assert!(line(&out, "database").contains("postgres"), "{out}");
}

/// systemd's side of `Type=notify`: a datagram socket named by NOTIFY_SOCKET, and a journal
/// stream named by JOURNAL_STREAM (here: the file stderr goes to, which is what systemd checks
/// too: device and inode of stderr).
#[test]
fn under_systemd_ready_is_sent_once_the_api_answers_and_logs_suit_the_journal() {
    let env = Env::new(Backend::Sqlite).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let meta = log.metadata().unwrap();
    let mut child = env
        .emod()
        .env("EMO_LOG", "info")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("no READY=1 within 60 s");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.starts_with("READY=1\n"), "{msg}");
    let addr = msg
        .split("STATUS=serving on ")
        .nth(1)
        .unwrap_or_else(|| panic!("no address in {msg:?}"))
        .trim()
        .to_string();
    // Ready means answering, at once.
    let r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap()
        .get(format!("{addr}/healthz"))
        .send()
        .expect("the API answers when READY=1 arrives");
    assert_eq!(r.status(), 200);
    common_sigterm(&mut child, &log_path);
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("emod listening")),
        "{text}"
    );
    for l in &lines {
        assert!(
            l.starts_with('<') && l.as_bytes().get(2) == Some(&b'>'),
            "every line carries its priority: {l}"
        );
        assert!(!l.contains('\u{1b}'), "no colours for the journal: {l}");
        // The journal timestamps lines itself: none of our own (`2026-...T...Z`).
        assert!(!l[3..].starts_with("20"), "no timestamp: {l}");
    }
}

/// SIGTERM, and emod must exit with status 0 within 30 s (as `Server::sigterm` in common).
fn common_sigterm(child: &mut std::process::Child, log: &std::path::Path) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(
                status.success(),
                "emod exited with {status} after SIGTERM; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("emod did not stop on SIGTERM");
}
