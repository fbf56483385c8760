//! End to end: a real `emod` (SQLite) on loopback, seeded through the API, and the real
//! `emo-tui` binary driven in tmux: log in as an admin, open the dashboard, apply a filter and
//! assert on the captured screen.
//!
//! The daemon is started by the harness the daemon's own tests use (`tests/common`); its binary
//! comes from `EMOD_BIN` (cargo builds emod for `cargo test --workspace`, and
//! `packaging/test.sh` points `EMOD_BIN` at it); nothing is built from inside a test. Without
//! tmux the tests skip with a note, unless `EMO_REQUIRE_TMUX=1` (CI): then they fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{env_flag, media, skipped, wait_until, Backend, PASSWORD};
use emo_api_types::{Emotion, Modality, SampleBatch, SampleIn, Session};
use serde_json::json;

struct Tmux {
    socket: String,
    session: String,
    /// Errors the test provoked on purpose (it waited for their text): the status line may
    /// show them. Any other `Error:` there fails the test.
    expected_errors: std::cell::RefCell<Vec<String>>,
}

/// The status line (the screen's last non-blank line) without the busy spinner, and whether
/// the spinner was shown (requests in flight).
fn status_line(screen: &str) -> (&str, bool) {
    let line = screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    for spin in ["| ", "/ ", "- ", "\\ "] {
        if let Some(rest) = line.strip_prefix(spin) {
            return (rest, true);
        }
    }
    (line, false)
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }
    fn send_text(&self, s: &str) {
        let st = self
            .cmd()
            .args(["send-keys", "-t", &self.session, "-l", s])
            .status()
            .unwrap();
        assert!(st.success());
    }
    fn send_key(&self, k: &str) {
        let st = self
            .cmd()
            .args(["send-keys", "-t", &self.session, k])
            .status()
            .unwrap();
        assert!(st.success());
    }
    fn capture(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    /// Waits until every string is on the screen; panics with the screen after `timeout`.
    fn wait_for(&self, all: &[&str], timeout: Duration) -> String {
        self.wait_for_without(all, &[], timeout)
    }
    /// Like [`Tmux::wait_for`], but panics as soon as one of `never` is on the screen.
    ///
    /// Every screen test also fails on an `Error:` in the status line, unless the test is
    /// waiting for that error (or waited for it before); and it returns only once no request
    /// is in flight (no spinner), so an error answer to the last request is seen too.
    fn wait_for_without(&self, all: &[&str], never: &[&str], timeout: Duration) -> String {
        let start = Instant::now();
        let mut expected = self.expected_errors.borrow_mut();
        loop {
            let screen = self.capture();
            if let Some(bad) = never.iter().find(|s| screen.contains(*s)) {
                panic!("{bad:?} appeared while waiting for {all:?}; screen:\n{screen}");
            }
            let (status, busy) = status_line(&screen);
            if let Some(err) = status.strip_prefix("Error: ") {
                if let Some(s) = all.iter().find(|s| err.contains(*s)) {
                    expected.push(s.to_string());
                } else if !expected.iter().any(|s| err.contains(s.as_str())) {
                    panic!("the status line shows an error while waiting for {all:?}; screen:\n{screen}");
                }
            }
            if !busy && all.iter().all(|s| screen.contains(s)) {
                return screen;
            }
            if start.elapsed() > timeout {
                panic!("timed out waiting for {all:?}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Our own tmux server (private socket): only it is stopped.
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// One stopped session of `n` seconds starting `ago` before now, mostly `main` emotion.
fn seed_session(
    http: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    start: DateTime<Utc>,
    n: i64,
    main: Emotion,
    label: &str,
) {
    let r = http
        .post(format!("{base}/api/v1/sessions"))
        .bearer_auth(token)
        .json(&json!({"consent": true, "sources": ["remote"], "label": label, "started_at": start}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "start: {}", r.text().unwrap());
    let s: Session = r.json().unwrap();
    let samples: Vec<SampleIn> = (0..n)
        .map(|i| {
            let e = if i % 4 == 3 { Emotion::Neutral } else { main };
            SampleIn {
                t: start + chrono::Duration::seconds(i),
                modality: Modality::Fused,
                emotion: e,
                confidence: 0.8,
                probabilities: [(e, 0.8), (Emotion::Surprise, 0.2)].into_iter().collect(),
            }
        })
        .collect();
    let r = http
        .post(format!("{base}/api/v1/sessions/{}/samples", s.id))
        .bearer_auth(token)
        .json(&SampleBatch { samples })
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "samples: {}", r.text().unwrap());
    let r = http
        .post(format!("{base}/api/v1/sessions/{}/stop", s.id))
        .bearer_auth(token)
        .json(&json!({"ended_at": start + chrono::Duration::seconds(n)}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "stop: {}", r.text().unwrap());
}

/// Whether tmux runs here. With `EMO_REQUIRE_TMUX=1` (CI) a missing tmux fails the test
/// instead of skipping it.
fn tmux_available() -> bool {
    let ok = Command::new("tmux").arg("-V").output().is_ok();
    if !ok && env_flag("EMO_REQUIRE_TMUX") {
        panic!("tmux is not installed and EMO_REQUIRE_TMUX is set");
    }
    if !ok {
        skipped("tmux is not installed");
    }
    ok
}

/// A running daemon with its data dir, base URL and an HTTP client.
struct Env {
    base: String,
    http: reqwest::blocking::Client,
    /// Stopped (dropped) before `data` removes its directory.
    server: common::Server,
    data: common::Env,
}

impl Env {
    fn dir(&self) -> &Path {
        self.data.dir.path()
    }
}

/// Creates the admin with the CLI and starts `emod serve` on SQLite (tests/common). The daemon
/// captures from a generated video (face photo + espeak-ng speech) played at real-time pace,
/// as it would from a webcam and a microphone.
fn start_emod() -> Env {
    let data = common::Env::new(Backend::Sqlite).expect("a SQLite env");
    let dir = data.dir.path().to_path_buf();
    let speech = media::speech(&dir);
    media::video(&dir, "clip.mp4", 120, Some(&speech));
    let src = format!("file:{}", dir.join("clip.mp4").display());
    let models = common::workspace_root().join("models");
    let data = data
        .with("EMO_CAPTURE_CAMERA", &src)
        .with("EMO_CAPTURE_MICROPHONE", &src)
        .with("EMO_MODELS_DIR", &models.display().to_string())
        .with("EMO_ONNXRUNTIME_INTRA_THREADS", "1")
        .with("EMO_ALLOW_REGISTER", "true")
        .with("XDG_CONFIG_HOME", &dir.join("xdg").display().to_string())
        .with("HOME", &dir.display().to_string());
    // Admin account through the CLI, as an operator would.
    data.add_user("root", "admin");
    let server = data.start();
    Env {
        base: server.base.clone(),
        http: server.client.clone(),
        server,
        data,
    }
}

fn register(env: &Env, name: &str) {
    env.server.register(name);
}

/// Runs the real emo-tui in a private tmux server (socket named after `tag` and the pid).
fn launch_tui(env: &Env, tag: &str) -> Tmux {
    launch_tui_with(env.dir(), &env.base, tag, "", "sleep 30")
}

/// `extra_env` is put before the command (`A=1 B=2`), `after` runs in the pane once it exits.
fn launch_tui_with(dir: &Path, base: &str, tag: &str, extra_env: &str, after: &str) -> Tmux {
    let env = format!(
        "EMO_CONFIG_DIR='{}' NO_COLOR=1 {extra_env}",
        dir.join("cfg").display()
    );
    launch_tui_cmd(tag, &env, &format!("--server {base} --no-mouse"), after)
}

/// `env -u EMO_TOKEN -u EMO_SERVER -u EMO_CONFIG_DIR {env} emo-tui {args}; {after}` in a
/// private tmux server: only the variables in `env` reach the client, not the test's own.
fn launch_tui_cmd(tag: &str, env: &str, args: &str, after: &str) -> Tmux {
    let tmux = Tmux {
        socket: format!("emo-e2e-{tag}-{}", std::process::id()),
        session: format!("emo-tui-{tag}"),
        expected_errors: Default::default(),
    };
    let tui = env!("CARGO_BIN_EXE_emo-tui");
    let shell_cmd =
        format!("env -u EMO_TOKEN -u EMO_SERVER -u EMO_CONFIG_DIR {env} '{tui}' {args}; {after}");
    let st = tmux
        .cmd()
        .args([
            "new-session",
            "-d",
            "-s",
            &tmux.session,
            "-x",
            "100",
            "-y",
            "30",
            &shell_cmd,
        ])
        .env_remove("TMUX")
        .status()
        .unwrap();
    assert!(st.success(), "tmux new-session failed");
    tmux
}

/// An SSH drop closes the terminal under the client: it must exit, not spin on a dead tty.
#[test]
fn exits_when_the_terminal_hangs_up() {
    if !tmux_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = "http://127.0.0.1:19";
    let tmux = launch_tui_with(dir.path(), server, "hangup", "", "sleep 30");
    tmux.wait_for(
        &["Log in to EMO", "Cannot reach the EMO server"],
        Duration::from_secs(20),
    );
    let alive = || {
        let out = Command::new("pgrep")
            .args(["-f", &format!("emo-tui --server {server} --no-mouse")])
            .output()
            .unwrap();
        !out.stdout.is_empty()
    };
    assert!(alive(), "emo-tui is not running");
    drop(tmux); // kill-server: the pane's terminal hangs up
    let start = Instant::now();
    while alive() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "emo-tui still running 10 s after its terminal hung up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn terminal_is_restored_after_a_panic() {
    if !tmux_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // No daemon: the login screen still comes up and says the server is not reachable.
    let tmux = launch_tui_with(
        dir.path(),
        "http://127.0.0.1:9",
        "panic",
        "EMO_TUI_TEST_PANIC=1",
        "stty -a | tr ' ;' '\\n\\n' | grep -x -e '-\\?icanon' -e '-\\?echo'; echo PANE-DONE; sleep 30",
    );
    let wait = Duration::from_secs(20);
    tmux.wait_for(
        &[
            "Log in to EMO",
            "not reachable",
            "Cannot reach the EMO server",
        ],
        wait,
    );
    tmux.send_key("F12");
    if !cfg!(debug_assertions) {
        // A release build (the one shipped) has no panic key: F12 does nothing.
        std::thread::sleep(Duration::from_secs(2));
        let screen = tmux.capture();
        assert!(
            screen.contains("Log in to EMO") && !screen.contains("PANE-DONE"),
            "F12 must not act in a release build:\n{screen}"
        );
        return;
    }
    let screen = tmux.wait_for(&["PANE-DONE"], wait);
    eprintln!("--- after the panic ---\n{screen}");
    assert!(screen.contains("test panic requested"), "{screen}");
    let lines: Vec<&str> = screen.lines().map(str::trim).collect();
    assert!(
        lines.contains(&"icanon") && lines.contains(&"echo"),
        "raw mode not left after the panic:\n{screen}"
    );
    assert!(!lines.contains(&"-icanon"), "{screen}");
    assert!(
        !screen.contains("Log in to EMO"),
        "alternate screen not left:\n{screen}"
    );
}

#[test]
fn admin_logs_in_and_filters_the_dashboard_in_tmux() {
    if !tmux_available() {
        return;
    }
    let env = start_emod();
    let (dir, base, http) = (env.dir(), &env.base, &env.http);

    // Two agents self-register and record one session each.
    let t0 = Utc::now() - chrono::Duration::hours(3);
    for (name, main) in [("ann", Emotion::Happy), ("bob", Emotion::Sad)] {
        register(&env, name);
        let tok = env.server.login(name);
        seed_session(http, base, &tok, t0, 120, main, &format!("{name}-shift"));
    }

    let tmux = launch_tui(&env, "admin");
    let cfg = dir.join("cfg");
    let wait = Duration::from_secs(20);

    tmux.wait_for(&["Log in to EMO", "Username"], wait);
    // A wrong password first: the status line says so.
    tmux.send_text("root");
    tmux.send_key("Enter");
    tmux.send_text("wrong-password");
    tmux.send_key("Enter");
    tmux.wait_for(&["Wrong username or password."], wait);
    tmux.send_text(PASSWORD);
    tmux.send_key("Enter");
    let screen = tmux.wait_for(
        &[
            "dashboard",
            "Distribution · 240 estimates",
            "Logged in as root (admin)",
        ],
        wait,
    );
    assert!(screen.contains("happy"), "{screen}");
    eprintln!("--- dashboard ---\n{screen}");

    // The token is saved privately for the next start.
    let tok = cfg.join("token.json");
    assert!(tok.exists(), "token.json not written");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&tok).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // Sessions tab lists both agents.
    tmux.send_key("3");
    tmux.wait_for(
        &["Sessions (2 of 2)", "ann", "bob", "ann-shift", "bob-shift"],
        wait,
    );

    // Filter on bob: the distribution and the table follow.
    tmux.send_key("f");
    tmux.wait_for(&["Filters", "Modality"], wait);
    tmux.send_text("bob");
    tmux.send_key("Enter");
    let screen = tmux.wait_for(&["agent bob", "Sessions (1 of 1)", "bob-shift"], wait);
    assert!(
        !screen.contains("ann-shift"),
        "filter not applied:\n{screen}"
    );
    eprintln!("--- sessions filtered on bob ---\n{screen}");
    tmux.send_key("1");
    let screen = tmux.wait_for(&["Distribution · 120 estimates"], wait);
    assert!(screen.contains("sad"), "{screen}");

    // Export the filtered data to CSV.
    let csv = dir.join("bob.csv");
    tmux.send_key("e");
    tmux.wait_for(&["Export to CSV", "emo-export-"], wait);
    tmux.send_key("C-u");
    tmux.send_text(&csv.display().to_string());
    tmux.send_key("Enter");
    tmux.wait_for(&["Exported ", "bob.csv"], wait);
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.lines().count() > 1, "empty export:\n{text}");
    assert!(
        text.contains("bob") && !text.contains("ann"),
        "export not filtered:\n{text}"
    );

    // The audit log tab.
    tmux.send_key("4");
    tmux.wait_for(&["Audit log ("], wait);

    // Heatmap tab with the legend.
    tmux.send_key("2");
    let screen = tmux.wait_for(&["Heatmap: agent × emotion", "Legend", "bob"], wait);
    eprintln!("--- heatmap ---\n{screen}");
    // "bob" alone is also in the filter bar ("agent bob · ..."): the heatmap must have a row
    // labelled bob with cells after the label, and no row for ann (filtered out).
    let row_of = |name: &str| {
        screen.lines().any(|l| {
            l.split('│').any(|seg| {
                seg.trim_start()
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') && rest.trim().chars().count() >= 3)
            })
        })
    };
    assert!(row_of("bob"), "no heatmap row for bob:\n{screen}");
    assert!(
        !row_of("ann"),
        "ann is filtered out but has a heatmap row:\n{screen}"
    );

    // Quit cleanly: the shell's `sleep` keeps the pane to show the restored terminal.
    tmux.send_key("q");
    let start = Instant::now();
    loop {
        let screen = tmux.capture();
        if !screen.contains("Heatmap") {
            break;
        }
        assert!(start.elapsed() < wait, "emo-tui did not quit:\n{screen}");
        std::thread::sleep(Duration::from_millis(150));
    }
}

#[test]
fn agent_consents_records_with_live_bars_and_stops_in_tmux() {
    if !tmux_available() {
        return;
    }
    let env = start_emod();
    register(&env, "cat");
    let tmux = launch_tui(&env, "agent");
    let wait = Duration::from_secs(20);
    tmux.wait_for(&["Log in to EMO", "emod "], wait);
    tmux.send_text("cat");
    tmux.send_key("Enter");
    tmux.send_text(PASSWORD);
    tmux.send_key("Enter");
    tmux.wait_for(&["my sessions", "No sessions yet", "Not recording"], wait);

    // Consent first: the prompt says what is stored; n cancels, y starts.
    tmux.send_key("s");
    tmux.wait_for(
        &[
            "Consent: start an EMO session?",
            "images, video or audio",
            "I consent",
        ],
        wait,
    );
    tmux.send_key("n");
    tmux.wait_for(&["Not started: no consent given."], wait);
    tmux.send_key("s");
    tmux.wait_for(&["I consent"], wait);
    tmux.send_key("y");
    tmux.wait_for(&["● RECORDING", "● running"], wait);

    // The daemon captures: face, voice and fused bars and the sources' states show live.
    let start = Instant::now();
    loop {
        let screen = tmux.capture();
        if screen.contains("Live ·")
            && screen.contains("face: ")
            && screen.contains("fused: ")
            && screen.contains("camera ✓")
            && screen.contains("%")
        {
            eprintln!("--- live ---\n{screen}");
            break;
        }
        assert!(start.elapsed() < wait, "no live estimates shown:\n{screen}");
        std::thread::sleep(Duration::from_millis(300));
    }

    tmux.send_key("x");
    tmux.wait_for(&["Not recording", "Session stopped after", "stopped"], wait);
    tmux.send_key("Enter");
    let screen = tmux.wait_for(&["Timeline (fused", "dominant "], wait);
    eprintln!("--- timeline ---\n{screen}");

    // Ctrl-C quits and restores the terminal (the alternate screen is gone).
    tmux.send_key("C-c");
    let start = Instant::now();
    loop {
        let screen = tmux.capture();
        if !screen.contains("Timeline") {
            break;
        }
        assert!(start.elapsed() < wait, "emo-tui did not quit:\n{screen}");
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// Consent needs a deliberate answer: with a remembered login, text typed as if into the
/// login form (`s` opens the prompt, the `y` after it in the same burst) starts nothing; a `y`
/// given once the prompt has been shown does.
#[test]
fn consent_is_not_given_by_keys_typed_ahead_of_the_prompt() {
    if !tmux_available() {
        return;
    }
    let env = start_emod();
    register(&env, "hal");
    let tok = env.server.login("hal");
    let client_env = format!(
        "EMO_CONFIG_DIR='{}' NO_COLOR=1 EMO_TOKEN='{tok}'",
        env.dir().join("cfg").display()
    );
    let args = format!("--server {} --no-mouse --sources remote", env.base);
    let tmux = launch_tui_cmd("typeahead", &client_env, &args, AFTER_EXIT);
    let wait = Duration::from_secs(20);
    tmux.wait_for(&strs(&logged_in_as("hal")), wait);

    // One burst: the keys reach emo-tui in the same read.
    tmux.send_text("syyy");
    tmux.wait_for(&["Consent: start an EMO session?"], wait);
    std::thread::sleep(Duration::from_millis(1500));
    let screen = tmux.capture();
    assert!(
        screen.contains("Consent: start an EMO session?") && screen.contains("Not recording"),
        "type-ahead answered the consent prompt:\n{screen}"
    );
    let running = |http: &reqwest::blocking::Client| -> u64 {
        let r = http
            .get(format!("{}/api/v1/sessions?status=running", env.base))
            .bearer_auth(&tok)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.json::<serde_json::Value>().unwrap()["total"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(running(&env.http), 0, "a session was started by type-ahead");

    // The prompt offers its answer keys once it has been seen; a deliberate `y` starts.
    tmux.wait_for(&["I consent"], wait);
    tmux.send_key("y");
    tmux.wait_for(&["● RECORDING", "● running"], wait);
    assert_eq!(running(&env.http), 1);
    tmux.send_key("x");
    tmux.wait_for(&["Not recording", "Session stopped after"], wait);
    quit(tmux);
}

// ------------------------------------------------------------------ start-up paths (issue 5)

/// Shell text the pane runs once emo-tui has exited (see [`quit`]).
const AFTER_EXIT: &str = "echo TUI-EXITED; sleep 30";

/// The client's environment for a config dir under `home` and the token file it leads to: on
/// Linux the real default (`$XDG_CONFIG_HOME/emo/token.json`, no `EMO_CONFIG_DIR`), elsewhere
/// `EMO_CONFIG_DIR`.
fn config_env(home: &Path) -> (String, PathBuf) {
    if cfg!(target_os = "linux") {
        let xdg = home.join(".config");
        (
            format!(
                "HOME='{}' XDG_CONFIG_HOME='{}'",
                home.display(),
                xdg.display()
            ),
            xdg.join("emo").join("token.json"),
        )
    } else {
        let cfg = home.join("cfg");
        (
            format!("EMO_CONFIG_DIR='{}'", cfg.display()),
            cfg.join("token.json"),
        )
    }
}

fn assert_private(file: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
    }
}

/// Ctrl-C, then waits for the pane's [`AFTER_EXIT`] line (the terminal is back).
fn quit(tmux: Tmux) {
    tmux.send_key("C-c");
    tmux.wait_for(&["TUI-EXITED"], Duration::from_secs(20));
}

/// The agent view after a successful login or a reused token.
fn logged_in_as(user: &str) -> [String; 3] {
    [
        "my sessions".into(),
        format!("Logged in as {user} (agent)."),
        "Not recording".into(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The login form's fields: never on screen when a token is used.
const LOGIN_FORM: [&str; 2] = ["Username", "Password"];

/// The server only in `EMO_SERVER`; after one login the next start reuses the saved token (no
/// login form, the file unchanged), and once the token is revoked server-side the next start
/// shows the login screen saying so, with the username filled in and the dead token deleted.
#[test]
fn saved_login_from_emo_server_is_reused_until_revoked() {
    if !tmux_available() {
        return;
    }
    let env = start_emod();
    register(&env, "dee");
    let (cfg_env, tok_file) = config_env(&env.dir().join("home"));
    let client_env = format!("{cfg_env} NO_COLOR=1 EMO_SERVER='{}'", env.base);
    let wait = Duration::from_secs(20);
    let in_view = logged_in_as("dee");

    // First start, no --server: the login screen names EMO_SERVER's server and reached it.
    let tmux = launch_tui_cmd("reuse1", &client_env, "--no-mouse", AFTER_EXIT);
    let server_line = format!("Server {} · emod ", env.base);
    tmux.wait_for(&["Log in to EMO", &server_line], wait);
    tmux.send_text("dee");
    tmux.send_key("Enter");
    tmux.send_text(PASSWORD);
    tmux.send_key("Enter");
    tmux.wait_for(&strs(&in_view), wait);
    let saved = emo_tui::token::load(&tok_file)
        .unwrap_or_else(|| panic!("no saved login at {}", tok_file.display()));
    assert_eq!(saved.server, env.base);
    assert_eq!(saved.username, "dee");
    assert!(saved.expires_at > Utc::now(), "{saved:?}");
    assert_private(&tok_file);
    quit(tmux);

    // Second start, same config dir: straight to the agent view with the saved token.
    let tmux = launch_tui_cmd("reuse2", &client_env, "--no-mouse", AFTER_EXIT);
    let screen = tmux.wait_for_without(&strs(&in_view), &LOGIN_FORM, wait);
    eprintln!("--- saved login reused ---\n{screen}");
    assert_eq!(
        emo_tui::token::load(&tok_file).as_ref(),
        Some(&saved),
        "the saved login was replaced instead of reused"
    );
    assert_private(&tok_file);
    quit(tmux);

    // The token is revoked server-side (as a logout elsewhere would).
    let r = env
        .http
        .post(format!("{}/api/v1/auth/logout", env.base))
        .bearer_auth(&saved.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "logout: {}", r.text().unwrap());
    let r = env
        .http
        .get(format!("{}/api/v1/me", env.base))
        .bearer_auth(&saved.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "the token still works");

    // Third start: the login screen says why, keeps the username, and drops the dead token.
    let tmux = launch_tui_cmd("revoked", &client_env, "--no-mouse", AFTER_EXIT);
    let screen = tmux.wait_for(
        &[
            "Log in to EMO",
            "Your login has expired or was revoked. Please log in again.",
            "Username  dee",
            "▸ Password",
        ],
        wait,
    );
    eprintln!("--- revoked token ---\n{screen}");
    assert!(!screen.contains("Logged in as"), "{screen}");
    wait_until("the revoked login is deleted", wait, || !tok_file.exists());
    // The password is all it takes; a new token is saved.
    tmux.send_text(PASSWORD);
    tmux.send_key("Enter");
    tmux.wait_for(&strs(&in_view), wait);
    wait_until("a new login is saved", wait, || tok_file.exists());
    let fresh = emo_tui::token::load(&tok_file).unwrap();
    assert_ne!(fresh.token, saved.token);
    assert_eq!(fresh.username, "dee");
    assert_private(&tok_file);
    quit(tmux);
}

/// A saved login past its `expires_at` is not tried: the login screen says it has expired, with
/// the username filled in and the password field focused; logging in saves a fresh one.
#[test]
fn expired_saved_login_asks_for_the_password_again() {
    if !tmux_available() {
        return;
    }
    let env = start_emod();
    register(&env, "fay");
    let old = emo_tui::token::SavedToken {
        server: env.base.clone(),
        username: "fay".into(),
        token: env.server.login("fay"),
        expires_at: Utc::now() - chrono::Duration::hours(1),
    };
    let tok_file = env.dir().join("cfg").join("token.json");
    emo_tui::token::save(&tok_file, &old).unwrap();
    let wait = Duration::from_secs(20);

    let tmux = launch_tui_with(env.dir(), &env.base, "expired", "", AFTER_EXIT);
    let screen = tmux.wait_for(
        &[
            "Log in to EMO",
            "Your saved login has expired. Please log in again.",
            "Username  fay",
            "▸ Password",
            "emod ",
        ],
        wait,
    );
    eprintln!("--- expired saved login ---\n{screen}");
    assert!(!screen.contains("Logged in as"), "{screen}");
    tmux.send_text(PASSWORD);
    tmux.send_key("Enter");
    tmux.wait_for(&strs(&logged_in_as("fay")), wait);
    wait_until("the new login replaces the expired one", wait, || {
        emo_tui::token::load(&tok_file).is_some_and(|t| t.token != old.token)
    });
    let fresh = emo_tui::token::load(&tok_file).unwrap();
    assert!(fresh.expires_at > Utc::now(), "{fresh:?}");
    assert_private(&tok_file);
    quit(tmux);
}

/// `EMO_TOKEN` with a token from the API and no saved login: straight to the logged-in view, no
/// login form, and the token is not written to the config dir.
#[test]
fn emo_token_starts_logged_in_without_the_login_screen() {
    if !tmux_available() {
        return;
    }
    let env = start_emod();
    register(&env, "gus");
    let tok = env.server.login("gus");
    let cfg = env.dir().join("cfg");
    assert!(!cfg.join("token.json").exists());

    let tmux = launch_tui_with(
        env.dir(),
        &env.base,
        "envtoken",
        &format!("EMO_TOKEN='{tok}'"),
        AFTER_EXIT,
    );
    let screen = tmux.wait_for_without(
        &strs(&logged_in_as("gus")),
        &LOGIN_FORM,
        Duration::from_secs(20),
    );
    eprintln!("--- EMO_TOKEN ---\n{screen}");
    quit(tmux);
    assert!(
        !cfg.join("token.json").exists(),
        "EMO_TOKEN was saved to the config dir"
    );
}

/// `emo-tui --completions SHELL` prints a completion script naming its options (the Debian
/// package installs them for bash, zsh and fish; issue 27).
#[test]
fn completions_for_bash_zsh_and_fish() {
    let tui = env!("CARGO_BIN_EXE_emo-tui");
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(tui)
            .args(["--completions", shell])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shell}: {text}");
        // (fish writes long options without their dashes: `-l server`.)
        for word in ["server", "token-file", "sources"] {
            assert!(
                text.contains(word),
                "{shell} completion lacks {word}:\n{text}"
            );
        }
    }
}

/// `--token-file` keeps the token out of `ps`; an unreadable file is an error naming it.
#[test]
fn token_file_is_offered_and_an_unreadable_one_is_named() {
    let tui = env!("CARGO_BIN_EXE_emo-tui");
    let help = Command::new(tui).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("--token-file") && text.contains("ps"),
        "{text}"
    );
    let out = Command::new(tui)
        .args(["--token-file", "/nonexistent/emo-token"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/emo-token"), "{err}");
}
