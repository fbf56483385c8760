//! The `emod` command line: help, users, migrations, configuration.

use crate::common;

use std::io::Write;
use std::process::Stdio;

use common::*;

fn run(env: &Env, args: &[&str]) -> (bool, String, String) {
    let out = env.emod().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_explains_every_subcommand() {
    let env = Env::new(Backend::Sqlite).unwrap();
    let (ok, out, _) = run(&env, &["--help"]);
    assert!(ok);
    for sub in ["serve", "migrate", "user", "config"] {
        assert!(out.contains(sub), "--help lacks {sub}:\n{out}");
    }
    let (ok, out, _) = run(&env, &["user", "--help"]);
    assert!(ok);
    for sub in ["add", "list", "disable", "enable", "passwd"] {
        assert!(out.contains(sub), "user --help lacks {sub}:\n{out}");
    }
}

#[test]
fn users_from_the_command_line() {
    let env = Env::new(Backend::Sqlite).unwrap();
    let (ok, out, _) = run(&env, &["migrate"]);
    assert!(ok && out.contains("migration"), "{out}");
    let (ok, out, _) = run(&env, &["migrate"]);
    assert!(ok && out.contains("up to date"), "{out}");
    env.add_user("boss", "admin");
    env.add_user("agent1", "agent");
    // Duplicate, bad role, short password, no terminal and no --password-stdin.
    let (ok, _, err) = run(&env, &["user", "add", "boss", "--password-stdin"]);
    assert!(!ok && err.contains("taken"), "{err}");
    let (ok, _, err) = run(&env, &["user", "add", "x", "--role", "king"]);
    assert!(!ok && err.contains("king"), "{err}");
    let mut child = env
        .emod()
        .args(["user", "add", "shorty", "--password-stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "abc").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8"));
    let (ok, _, err) = run(&env, &["user", "add", "nopw"]);
    assert!(!ok && err.contains("--password-stdin"), "{err}");

    let (ok, out, _) = run(&env, &["user", "list", "--json"]);
    assert!(ok);
    let users: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 2);
    let (ok, _, _) = run(&env, &["user", "disable", "agent1"]);
    assert!(ok);
    let (_, out, _) = run(&env, &["user", "list"]);
    let line = out.lines().find(|l| l.starts_with("agent1")).unwrap();
    assert!(line.contains("disabled"), "{line}");
    let srv = env.start();
    let r = srv.post(
        "/api/v1/auth/login",
        None,
        &serde_json::json!({"username": "agent1", "password": PASSWORD}),
    );
    assert_eq!(error_of(r), (403, "account_disabled".into()));
    drop(srv);
    let (ok, _, _) = run(&env, &["user", "enable", "agent1"]);
    assert!(ok);
    let srv = env.start();
    srv.login("agent1");
    let (ok, _, err) = run(&env, &["user", "disable", "ghost"]);
    assert!(!ok && err.contains("ghost"), "{err}");

    // passwd: the new password works, the old one and the user's old tokens do not.
    let old_token = srv.login("agent1");
    let passwd = |user: &str, pw: &str| {
        let mut child = env
            .emod()
            .args(["user", "passwd", user, "--password-stdin"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{pw}").unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = passwd("agent1", "short");
    assert!(!ok && err.contains("at least 8"), "{err}");
    let (ok, err) = passwd("ghost", "a-new-long-password");
    assert!(!ok && err.contains("ghost"), "{err}");
    let (ok, err) = passwd("agent1", "a-new-long-password");
    assert!(ok, "{err}");
    drop(srv);
    let srv = env.start();
    let login = |pw: &str| {
        srv.post(
            "/api/v1/auth/login",
            None,
            &serde_json::json!({"username": "agent1", "password": pw}),
        )
    };
    assert_eq!(
        error_of(login(PASSWORD)),
        (401, "invalid_credentials".into())
    );
    assert_eq!(login("a-new-long-password").status(), 200);
    assert_eq!(
        error_of(srv.get("/api/v1/me", Some(&old_token))),
        (401, "unauthenticated".into()),
        "passwd revokes the old tokens"
    );
    let (ok, _, err) = run(&env, &["user", "passwd", "agent1"]);
    assert!(!ok && err.contains("--password-stdin"), "{err}");
}

#[test]
fn config_print_default_and_bad_config() {
    let env = Env::new(Backend::Sqlite).unwrap();
    let (ok, out, _) = run(&env, &["config", "print-default"]);
    assert!(ok && out.contains("[server]") && out.contains("listen = \"127.0.0.1:7878\""));
    let (ok, out, _) = run(&env, &["config", "show"]);
    assert!(ok && out.contains("spool_capacity"), "{out}");
    let bad = env.dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = 42\n").unwrap();
    let (ok, _, err) = run(&env, &["--config", bad.to_str().unwrap(), "serve"]);
    assert!(!ok && err.contains("bad.toml"), "{err}");
    let (ok, _, err) = run(&env, &["serve", "--listen", "nonsense"]);
    assert!(!ok && err.contains("nonsense"), "{err}");
}

#[test]
fn openapi_and_metrics() {
    let env = Env::new(Backend::Sqlite).unwrap();
    let srv = env.start();
    let doc: serde_json::Value = srv.get("/api/v1/openapi.json", None).json().unwrap();
    for p in [
        "/api/v1/auth/login",
        "/api/v1/sessions/{id}/samples",
        "/api/v1/stats/heatmap",
        "/api/v1/export",
    ] {
        assert!(doc["paths"].get(p).is_some(), "openapi lacks {p}");
    }
    assert!(doc["components"]["schemas"].get("SampleBatch").is_some());
    srv.get("/nope", None);
    let m = srv.get("/metrics", None).text().unwrap();
    assert!(
        m.contains("emo_http_responses_total{class=\"4xx\"} 1"),
        "{m}"
    );
    assert!(m.contains("# TYPE emo_samples_total counter"));
}

both_backends!(bench_store_seeds_and_times_every_dashboard_query, |b| {
    let Some(env) = Env::new(b) else { return };
    // On PostgreSQL the configured server is used (a throw-away database is created and dropped).
    let (ok, out, err) = run(
        &env,
        &[
            "bench",
            "store",
            "--samples",
            "200000",
            "--agents",
            "10",
            "--runs",
            "1",
            "--check-plans",
            "--json",
        ],
    );
    assert!(ok, "{err}\n{out}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The plan check (issue 30): with sequential scans off, every dashboard query finds an index
    // on samples; one that cannot (a dropped index, a query that defeats it) is named here.
    if env.pg.is_some() {
        assert_eq!(r["unindexed_reads"], serde_json::json!([]), "{r}");
    } else {
        assert!(r["unindexed_reads"].is_null(), "{r}");
    }
    let bytes = r["bytes_per_sample"].as_f64().unwrap();
    assert!(bytes.is_finite() && bytes > 0.0, "{r}");
    assert!(r["purge_one_day_ms"].as_f64().unwrap().is_finite(), "{r}");
    let backend = r["backend"].as_str().unwrap();
    assert_eq!(backend.starts_with("postgres"), env.pg.is_some(), "{r}");
    assert_eq!(r["samples"], 200_000);
    assert_eq!(r["sessions"], 56, "one-hour sessions of 3,600 samples");
    assert!(r["ingest_samples_per_second"].as_f64().unwrap() > 0.0);
    let queries = r["queries_ms"].as_array().unwrap();
    assert!(queries.len() >= 5, "{r}");
    // Each query is named once and really timed (a dropped or skipped query would show as a
    // missing name or a zero/non-finite time).
    let mut names = std::collections::BTreeSet::new();
    for q in queries {
        let name = q[0].as_str().unwrap_or_default();
        assert!(!name.is_empty() && names.insert(name.to_string()), "{q}");
        let (p50, p95) = (q[1].as_f64().unwrap(), q[2].as_f64().unwrap());
        assert!(p50.is_finite() && p50 > 0.0 && p95 >= p50, "{q}");
    }
    let (ok, _, err) = run(&env, &["bench", "store", "--agents", "0"]);
    assert!(!ok && err.contains("agents"), "{err}");
});

/// `emod devices`: no camera and (maybe) no sound card here is an empty list, not an error; what
/// `[capture]` resolves to is shown, and a bad capture setting names itself.
#[test]
fn devices_lists_sources_and_what_capture_resolves_to() {
    let env = Env::new(Backend::Sqlite)
        .unwrap()
        .with("EMO_CAPTURE_CAMERA", "file:/srv/demo.mp4")
        .with("EMO_CAPTURE_MICROPHONE", "none");
    let (ok, out, err) = run(&env, &["devices", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["cameras"].is_array() && v["microphones"].is_array(),
        "{v}"
    );
    assert_eq!(v["camera"]["configured"], "file:/srv/demo.mp4");
    assert_eq!(v["camera"]["resolved"], "file:/srv/demo.mp4");
    assert!(v["microphone"]["resolved"].is_null(), "{v}");
    let (ok, out, _) = run(&env, &["devices"]);
    assert!(ok && out.contains("capture.microphone = \"none\""), "{out}");
    let bad = Env::new(Backend::Sqlite)
        .unwrap()
        .with("EMO_CAPTURE_FPS", "0");
    let (ok, _, err) = run(&bad, &["devices"]);
    assert!(!ok && err.contains("capture.fps"), "{err}");
}

/// `emod analyze FILE` run outside the repository (no `./models`, no `models.dir`) finds the
/// workspace's models next to the program (`target/debug/emod` → `../../models`), as users run
/// it from anywhere (issue 27).
#[test]
fn analyze_finds_the_models_beside_the_program_from_any_directory() {
    let models = workspace_root().join("models");
    if !models.join("manifest.toml").is_file() {
        skipped("no models/manifest.toml in the workspace");
        return;
    }
    let env = Env::new(Backend::Sqlite).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let image = workspace_root().join("emo-inference/tests/fixtures/astronaut.jpg");
    let out = env
        .emod()
        .current_dir(elsewhere.path())
        .env_remove("EMO_MODELS_DIR")
        .env("EMO_ONNXRUNTIME_INTRA_THREADS", "1")
        .args(["analyze", "--json"])
        .arg(&image)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["files"][0]["error"].is_null(), "{v}");
    assert_eq!(
        v["files"][0]["faces"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
}

/// `emod completions SHELL` prints a completion script the shell loads, naming the subcommands
/// (the Debian package installs them for bash, zsh and fish; issue 27).
#[test]
fn completions_for_bash_zsh_and_fish() {
    let env = Env::new(Backend::Sqlite).unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let (ok, out, err) = run(&env, &["completions", shell]);
        assert!(ok, "{shell}: {err}");
        for word in ["serve", "analyze", "devices", "doctor"] {
            assert!(
                out.contains(word),
                "{shell} completion lacks {word}:\n{out}"
            );
        }
    }
    let (ok, script, _) = run(&env, &["completions", "bash"]);
    assert!(ok);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("emod.bash");
    std::fs::write(&file, script).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && complete -p emod", file.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash does not load it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// alsa-lib's own error lines (`ALSA lib confmisc.c:855:(parse_card) cannot find card '0'`, on
/// every machine without a sound card) do not reach the terminal: emo-capture hands them to our
/// log at debug level (issue 27).
#[test]
fn alsa_lib_error_lines_do_not_reach_stderr() {
    let env = Env::new(Backend::Sqlite).unwrap();
    for args in [&["devices"][..], &["devices", "--json"], &["doctor"]] {
        let (_, _, err) = run(&env, args);
        assert!(!err.contains("ALSA lib"), "emod {args:?}:\n{err}");
    }
}
