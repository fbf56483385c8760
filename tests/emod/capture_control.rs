//! Who ends a capture: a stop through another daemon sharing the database, a user disabled
//! while captured, sources that have all ended. The real `emod` captures from ffmpeg-fed file
//! sources at real-time pace; the tests read the daemon's `/devices`, the API and the database.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::media::{speech, video};
use common::{error_of, Backend, Env, Server};
use serde_json::{json, Value};

fn models() -> PathBuf {
    std::env::var_os("EMO_TEST_MODELS_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"),
        PathBuf::from,
    )
}

/// Capture settings on top of `env`, both sources from `src`.
fn with_capture(env: Env, src: &str) -> Env {
    env.with("EMO_MODELS_DIR", &models().display().to_string())
        .with("EMO_ONNXRUNTIME_INTRA_THREADS", "1")
        .with("EMO_CAPTURE_CAMERA", src)
        .with("EMO_CAPTURE_MICROPHONE", src)
        .with("EMO_CAPTURE_FPS", "10")
}

/// A clip of the face photo with speech, `secs` long, as a `file:` source.
fn clip(dir: &Path, secs: u32) -> String {
    let v = video(dir, "clip.mp4", secs, Some(&speech(dir)));
    format!("file:{}", v.display())
}

fn start_capture(server: &Server, token: &str) -> String {
    let r = server.post(
        "/api/v1/sessions",
        Some(token),
        &json!({"consent": true, "sources": ["camera", "microphone"]}),
    );
    assert_eq!(r.status(), 201, "{}", server.log_text());
    r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn capturing(server: &Server, token: &str) -> bool {
    let d: Value = server.get("/api/v1/devices", Some(token)).json().unwrap();
    d["capturing"].as_bool().unwrap()
}

fn session(server: &Server, token: &str, id: &str) -> Value {
    server
        .get(&format!("/api/v1/sessions/{id}"), Some(token))
        .json()
        .unwrap()
}

/// Waits until the session has stored `n` fused samples (the pipeline runs).
fn wait_for_samples(server: &Server, token: &str, id: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page: Value = server
            .get(
                &format!("/api/v1/sessions/{id}/samples?modality=fused&limit=1"),
                Some(token),
            )
            .json()
            .unwrap();
        if page["total"].as_u64().unwrap_or(0) >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {n} fused samples in 30 s: {page}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How long until the daemon's `/devices` says it no longer captures (panics after `max`).
fn time_until_not_capturing(server: &Server, token: &str, max: Duration) -> Duration {
    let t0 = Instant::now();
    while capturing(server, token) {
        assert!(
            t0.elapsed() < max,
            "still capturing {max:?} after the session ended\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t0.elapsed()
}

/// Samples stored after their session's `ended_at`, and samples of `id` in all.
fn after_end(env: &Env, id: &str) -> (i64, i64) {
    let n = |q: String| env.sql_lines(&q)[0].parse::<i64>().unwrap();
    (
        n(format!(
            "SELECT CAST(COUNT(*) AS TEXT) AS r FROM samples s JOIN sessions x ON x.no = s.session_no \
             WHERE x.id = '{id}' AND s.t > x.ended_at"
        )),
        n(format!(
            "SELECT CAST(COUNT(*) AS TEXT) AS r FROM samples s JOIN sessions x ON x.no = s.session_no \
             WHERE x.id = '{id}'"
        )),
    )
}

/// The second daemon of a pair on one PostgreSQL database: its own node name, data directory
/// and spool, the same database and capture settings.
fn second_daemon(a: &Env, src: &str) -> Env {
    let pg = a.pg.as_ref().expect("PostgreSQL");
    let b = Env {
        backend: Backend::Postgres,
        dir: tempfile::tempdir().unwrap(),
        pg: None,
        extra: Vec::new(),
    };
    with_capture(b, src)
        .with("EMO_DATABASE_URL", &pg.url)
        .with("EMO_SERVER_NODE_NAME", "central")
}

/// Issue 28 item 1: an admin stops alice's capturing session through daemon B; daemon A, which
/// captures, stops its sources within a couple of seconds, stores nothing after `ended_at`,
/// and can capture again.
#[test]
fn a_stop_through_another_daemon_stops_the_capture() {
    let dir = tempfile::tempdir().unwrap();
    let src = clip(dir.path(), 60);
    let Some(env_a) = Env::new(Backend::Postgres) else {
        return;
    };
    let env_a = with_capture(env_a, &src);
    let env_b = second_daemon(&env_a, &src);
    env_a.add_user("alice", "agent");
    env_a.add_user("root", "admin");
    let a = env_a.start();
    let b = env_b.start();
    let alice = a.login("alice");
    let root = b.login("root");

    let id = start_capture(&a, &alice);
    wait_for_samples(&a, &alice, &id, 2);
    assert!(capturing(&a, &alice));

    let r = b.post(
        &format!("/api/v1/sessions/{id}/stop"),
        Some(&root),
        &json!({}),
    );
    assert_eq!(r.status(), 200, "{}", b.log_text());
    let stopped: Value = r.json().unwrap();
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(stopped["summary"]["end_reason"], "requested", "{stopped}");

    let took = time_until_not_capturing(&a, &alice, Duration::from_secs(3));
    eprintln!("daemon A stopped capturing {took:?} after the stop through B");
    // A few more seconds in which a pipeline left running would store 3 samples a second.
    std::thread::sleep(Duration::from_secs(3));
    let (late, total) = after_end(&env_a, &id);
    assert_eq!(late, 0, "{late} of {total} samples stored after ended_at");
    assert!(total > 0);
    // The session is stopped on A too, and A's devices are free for a new capture.
    assert_eq!(session(&a, &alice, &id)["status"], "stopped");
    let (status, code) = error_of(a.post(
        &format!("/api/v1/sessions/{id}/stop"),
        Some(&alice),
        &json!({}),
    ));
    assert_eq!((status, code.as_str()), (409, "session_not_running"));
    let again = start_capture(&a, &alice);
    wait_for_samples(&a, &alice, &again, 1);
    let r = a.post(
        &format!("/api/v1/sessions/{again}/stop"),
        Some(&alice),
        &json!({}),
    );
    assert_eq!(r.status(), 200, "{}", a.log_text());
    assert_eq!(after_end(&env_a, &again).0, 0);
}

/// `emod user disable NAME` run beside the daemon (the command line writes the database
/// directly: SQLite file or PostgreSQL).
fn disable(env: &Env, name: &str) {
    let out = env
        .emod()
        .args(["user", "disable", name])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// Issue 28 item 1: disabling the user stops their capture (reason `user_disabled`).
both_backends!(disabling_the_user_stops_their_capture, |backend| {
    let dir = tempfile::tempdir().unwrap();
    let src = clip(dir.path(), 60);
    let Some(env) = Env::new(backend) else {
        return;
    };
    let env = with_capture(env, &src);
    env.add_user("alice", "agent");
    env.add_user("root", "admin");
    let server = env.start();
    let alice = server.login("alice");
    let root = server.login("root");
    let id = start_capture(&server, &alice);
    wait_for_samples(&server, &alice, &id, 2);

    disable(&env, "alice");
    let took = time_until_not_capturing(&server, &root, Duration::from_secs(3));
    eprintln!("capture stopped {took:?} after the user was disabled");
    // The devices are free at once; the stop then flushes and stores the summary.
    let deadline = Instant::now() + Duration::from_secs(5);
    let s = loop {
        let s = session(&server, &root, &id);
        if s["status"] != "running" || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(s["status"], "stopped", "{s}");
    assert_eq!(s["summary"]["end_reason"], "user_disabled", "{s}");
    std::thread::sleep(Duration::from_secs(2));
    let (late, total) = after_end(&env, &id);
    assert_eq!(late, 0, "{late} of {total} samples stored after ended_at");
    assert!(total > 0);
});

// Issue 27 item 3: when every source has ended (a `file:` clip played out), the session stops
// by itself with reason `sources_ended`, and the devices are free.
both_backends!(a_session_whose_sources_all_ended_stops, |backend| {
    let dir = tempfile::tempdir().unwrap();
    let src = clip(dir.path(), 5);
    let Some(env) = Env::new(backend) else {
        return;
    };
    let env = with_capture(env, &src);
    env.add_user("alice", "agent");
    let server = env.start();
    let alice = server.login("alice");
    let id = start_capture(&server, &alice);
    // 5 s of media at real-time pace, the engine's start, one check.
    let deadline = Instant::now() + Duration::from_secs(30);
    let s = loop {
        let s = session(&server, &alice, &id);
        if s["status"] != "running" || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(s["status"], "stopped", "{s}\n{}", server.log_text());
    assert_eq!(s["summary"]["end_reason"], "sources_ended", "{s}");
    // How many samples the clip gave depends on how soon the engine was loaded (on a loaded
    // machine that may take longer than the clip); when the session ends does not.
    assert!(
        s["summary"]["duration_seconds"].as_f64().unwrap() > 0.0,
        "{s}"
    );
    assert!(!capturing(&server, &alice));
    assert_eq!(after_end(&env, &id).0, 0);
    // A new capture can start right away.
    let again = start_capture(&server, &alice);
    assert_ne!(again, id);
});

/// With `capture.stop_when_sources_end = false` the ended session stays running (as before).
#[test]
fn sources_ended_keeps_running_when_configured_so() {
    let dir = tempfile::tempdir().unwrap();
    let src = clip(dir.path(), 3);
    let env = with_capture(Env::new(Backend::Sqlite).unwrap(), &src)
        .with("EMO_CAPTURE_STOP_WHEN_SOURCES_END", "false");
    env.add_user("alice", "agent");
    let server = env.start();
    let alice = server.login("alice");
    let id = start_capture(&server, &alice);
    std::thread::sleep(Duration::from_secs(12));
    let s = session(&server, &alice, &id);
    assert_eq!(s["status"], "running", "{s}");
    let r = server.post(
        &format!("/api/v1/sessions/{id}/stop"),
        Some(&alice),
        &json!({}),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().unwrap()["summary"]["end_reason"],
        "requested"
    );
}

/// Issue 28 item 2: a camera URL's password and secret query parameters never leave the
/// process: not in `GET /devices` (any agent), the 409 `source_unavailable` message, the
/// daemon's log (at debug level), `emod config show` or `emod doctor`.
#[test]
fn source_url_secrets_never_leave_the_process() {
    const SECRETS: [&str; 2] = ["s3cr3t-pw", "t0k3n-value"];
    // Nobody listens on that port: ffmpeg fails to open it and says so.
    let url = format!(
        "ffmpeg:rtsp://cam-user:{}@127.0.0.1:{}/stream1?channel=1&token={}",
        SECRETS[0],
        common::free_port(),
        SECRETS[1]
    );
    let env = Env::new(Backend::Sqlite)
        .unwrap()
        .with("EMO_CAPTURE_CAMERA", &url)
        .with("EMO_CAPTURE_MICROPHONE", &url)
        .with("EMO_LOG", "debug");
    let leaks = |what: &str, text: &str| {
        for s in SECRETS {
            assert!(!text.contains(s), "{what} shows `{s}`:\n{text}");
        }
    };
    env.add_user("alice", "agent");
    let server = env.start();
    let alice = server.login("alice");
    let d = server.get("/api/v1/devices", Some(&alice)).text().unwrap();
    leaks("GET /devices", &d);
    let d: Value = serde_json::from_str(&d).unwrap();
    let shown = d["camera"]["configured"].as_str().unwrap();
    assert!(
        shown.starts_with("ffmpeg:rtsp://cam-user:***@127.0.0.1:")
            && shown.ends_with("/stream1?channel=1&token=***"),
        "{d}"
    );
    assert_eq!(d["camera"]["resolved"], shown, "{d}");
    for sources in [json!(["camera"]), json!(["microphone"])] {
        let r = server.post(
            "/api/v1/sessions",
            Some(&alice),
            &json!({"consent": true, "sources": sources}),
        );
        assert_eq!(r.status(), 409);
        let body = r.text().unwrap();
        assert!(body.contains("source_unavailable"), "{body}");
        leaks("409 source_unavailable", &body);
    }
    let show = env.emod().args(["config", "show"]).output().unwrap();
    assert!(show.status.success());
    let show = String::from_utf8_lossy(&show.stdout).into_owned();
    assert!(show.contains("cam-user:***@"), "{show}");
    leaks("emod config show", &show);
    let doctor = env.emod().arg("doctor").output().unwrap();
    leaks(
        "emod doctor",
        &format!(
            "{}{}",
            String::from_utf8_lossy(&doctor.stdout),
            String::from_utf8_lossy(&doctor.stderr)
        ),
    );
    drop(server);
    let log = std::fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(
        log.contains("cam-user:***@"),
        "the log never named the source:\n{log}"
    );
    leaks("the daemon's log", &log);
}

// Issue 28 item 9: a batch posted while its session stops is either refused (409) or in the
// summary, never answered 201 and left out of it.
both_backends!(
    a_batch_racing_the_stop_is_refused_or_summarised,
    |backend| {
        let Some(env) = Env::new(backend) else {
            return;
        };
        env.add_user("carol", "agent");
        let server = env.start();
        let carol = server.login("carol");
        let n = 5000;
        let (mut accepted, mut refused) = (0, 0);
        for i in 0..24u64 {
            let start = chrono::Utc::now() - chrono::Duration::hours(2);
            let id = server.start_session(&carol, Some(&start.to_rfc3339()));
            let emotions = vec!["happy"; n];
            let batch = common::fused_samples(start.timestamp_millis() + 1000, 1, &emotions);
            let (client, url, token) = (
                server.client.clone(),
                server.url(&format!("/api/v1/sessions/{id}/samples")),
                carol.clone(),
            );
            let post = std::thread::spawn(move || {
                let r = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&batch)
                    .send()
                    .unwrap();
                (r.status().as_u16(), r.text().unwrap())
            });
            // Stop at varying moments of the post's life.
            std::thread::sleep(Duration::from_millis((i % 8) * 15));
            let r = server.post(
                &format!("/api/v1/sessions/{id}/stop"),
                Some(&carol),
                &json!({}),
            );
            assert_eq!(r.status(), 200, "{}", server.log_text());
            let summary: Value = r.json().unwrap();
            let (status, body) = post.join().unwrap();
            let in_summary = summary["summary"]["samples"]["fused"].as_u64().unwrap_or(0);
            let stored: Value = server
                .get(
                    &format!("/api/v1/sessions/{id}/samples?limit=1"),
                    Some(&carol),
                )
                .json()
                .unwrap();
            let stored = stored["total"].as_u64().unwrap();
            match status {
                201 => {
                    accepted += 1;
                    assert_eq!(
                        (in_summary, stored),
                        (n as u64, n as u64),
                        "round {i}: answered 201 but the summary counts {in_summary}: {summary}"
                    );
                }
                409 => {
                    refused += 1;
                    assert!(body.contains("session_not_running"), "{body}");
                    assert_eq!(
                        (in_summary, stored),
                        (0, 0),
                        "round {i}: refused but stored"
                    );
                }
                other => panic!("round {i}: the post got {other}: {body}"),
            }
        }
        eprintln!("{accepted} batches accepted and summarised, {refused} refused");
    }
);
