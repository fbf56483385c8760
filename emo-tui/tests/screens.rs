//! Snapshot tests of every screen with fixed data, rendered on ratatui's TestBackend at 80×24
//! and at 160×48; they assert on the buffer text. Set EMO_TUI_SNAPSHOT_DIR to also write each
//! rendered screen to a text file for review.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use emo_api_types::{
    AuditEntry, Bucket, CaptureStats, Distribution, Emotion, Heatmap, HeatmapKind, LiveEvent,
    Modality, Page, Role, Sample, Session, SessionStatus, SessionSummary, SourceState, Timeline,
    TimelinePoint, User,
};
use emo_tui::app::{App, DashData, DashTab, Msg, Screen};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Color;
use ratatui::Terminal;
use uuid::Uuid;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn now() -> DateTime<Utc> {
    t("2026-03-10T12:00:00Z")
}

fn user(name: &str, role: Role) -> User {
    User {
        id: Uuid::from_u128(name.len() as u128),
        username: name.into(),
        display_name: None,
        role,
        disabled: false,
        created_at: t("2026-01-01T00:00:00Z"),
    }
}

fn session(n: u128, name: &str, start: &str, mins: i64, status: SessionStatus) -> Session {
    let started = t(start);
    let ended = (status != SessionStatus::Running).then(|| started + Duration::minutes(mins));
    let summary = (status == SessionStatus::Stopped).then(|| SessionSummary {
        distribution: [
            (Emotion::Happy, 0.5),
            (Emotion::Neutral, 0.3),
            (Emotion::Sad, 0.2),
        ]
        .into_iter()
        .collect(),
        dominant: Some(Emotion::Happy),
        samples: [
            (Modality::Fused, 60 * mins as u64),
            (Modality::Face, 60 * mins as u64),
        ]
        .into_iter()
        .collect(),
        coverage: [(Modality::Face, 0.98), (Modality::Voice, 0.4)]
            .into_iter()
            .collect(),
        mean_confidence: Some(0.71),
        duration_seconds: 60.0 * mins as f64,
        end_reason: None,
    });
    Session {
        id: Uuid::from_u128(0xabcdef00_0000_0000_0000_000000000000 + n),
        user_id: Uuid::nil(),
        username: name.into(),
        status,
        started_at: started,
        ended_at: ended,
        consent_at: started,
        sources: vec!["camera".into(), "microphone".into()],
        label: (n == 1).then(|| "support shift".to_string()),
        summary,
    }
}

fn samples(id: Uuid, start: &str, n: i64) -> Vec<Sample> {
    let start = t(start);
    (0..n)
        .map(|i| {
            let happy = if i < n / 2 { 0.8 } else { 0.1 };
            Sample {
                session_id: id,
                t: start + Duration::seconds(i),
                modality: Modality::Fused,
                emotion: if happy > 0.5 {
                    Emotion::Happy
                } else {
                    Emotion::Sad
                },
                confidence: 0.8,
                probabilities: [
                    (Emotion::Happy, happy),
                    (Emotion::Sad, 0.9 - happy),
                    (Emotion::Neutral, 0.1),
                ]
                .into_iter()
                .collect(),
            }
        })
        .collect()
}

fn new_app() -> App {
    App::new(
        "http://127.0.0.1:7878",
        true,
        now(),
        FixedOffset::east_opt(0).unwrap(),
    )
}

fn render(app: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| {
        emo_tui::ui::draw(f, app);
    })
    .unwrap();
    let buf = term.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        for x in 0..w {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

/// 16-colour safe: only the 16 ANSI colours; with colour off (NO_COLOR) no colour at all.
fn check_colours(app: &App, w: u16, h: u16, name: &str) {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| {
        emo_tui::ui::draw(f, app);
    })
    .unwrap();
    let buf = term.backend().buffer().clone();
    for y in 0..h {
        for x in 0..w {
            let c = &buf[(x, y)];
            for col in [c.fg, c.bg] {
                assert!(
                    !matches!(col, Color::Rgb(..) | Color::Indexed(_)),
                    "{name}: {col:?} at {x},{y} is outside the 16 ANSI colours"
                );
                if !app.color {
                    assert_eq!(
                        col,
                        Color::Reset,
                        "{name}: colour at {x},{y} with colour off"
                    );
                }
            }
        }
    }
}

/// Renders at both sizes, checks every expected string, and optionally writes the snapshot.
fn check(app: &App, name: &str, expect: &[&str]) {
    for (w, h) in SIZES {
        let text = render(app, w, h);
        if let Some(dir) = std::env::var_os("EMO_TUI_SNAPSHOT_DIR") {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                std::path::Path::new(&dir).join(format!("{name}-{w}x{h}.txt")),
                &text,
            )
            .unwrap();
        }
        for e in expect {
            assert!(
                text.contains(e),
                "{name} at {w}x{h}: missing {e:?} in\n{text}"
            );
        }
        check_colours(app, w, h, name);
    }
}

fn key(app: &mut App, c: KeyCode) {
    app.on_key(KeyEvent::new(c, KeyModifiers::NONE));
}

fn agent_app() -> App {
    let mut a = new_app();
    a.on_msg(Msg::Me(Ok(user("ann", Role::Agent))));
    a.on_msg(Msg::MySessions(Ok(Page {
        items: vec![
            session(1, "ann", "2026-03-09T09:00:00Z", 45, SessionStatus::Stopped),
            session(
                2,
                "ann",
                "2026-03-08T14:30:00Z",
                20,
                SessionStatus::Interrupted,
            ),
        ],
        total: 2,
        offset: 0,
        limit: 100,
        next_offset: None,
        next_after: None,
        total_capped: false,
    })));
    a
}

fn admin_app() -> App {
    let mut a = new_app();
    a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
    a.on_msg(Msg::Users(Ok(vec![
        user("ann", Role::Agent),
        user("bob", Role::Agent),
        user("root", Role::Admin),
    ])));
    let counts = |h: u64, s: u64, n: u64| -> BTreeMap<Emotion, u64> {
        [
            (Emotion::Happy, h),
            (Emotion::Sad, s),
            (Emotion::Neutral, n),
        ]
        .into_iter()
        .collect()
    };
    let points: Vec<TimelinePoint> = (0..10)
        .map(|i| TimelinePoint {
            t: t("2026-03-01T00:00:00Z") + Duration::days(i),
            total: 10 + i as u64,
            counts: counts(i as u64, 5, 5),
        })
        .collect();
    let mut shares = BTreeMap::new();
    shares.insert(Emotion::Happy, 0.3);
    shares.insert(Emotion::Sad, 0.2);
    shares.insert(Emotion::Neutral, 0.5);
    let gen = a.dash.gen;
    a.on_msg(Msg::Dashboard(
        gen,
        Ok(Box::new(DashData {
            distribution: Distribution {
                total: 1000,
                counts: counts(300, 200, 500),
                shares,
            },
            timeline: Timeline {
                bucket: Bucket::Day,
                points,
            },
            sessions: Page {
                items: vec![
                    session(1, "ann", "2026-03-09T09:00:00Z", 45, SessionStatus::Stopped),
                    session(3, "bob", "2026-03-09T10:00:00Z", 30, SessionStatus::Stopped),
                    session(4, "bob", "2026-03-10T11:50:00Z", 0, SessionStatus::Running),
                ],
                total: 3,
                offset: 0,
                limit: 200,
                next_offset: None,
                next_after: None,
                total_capped: false,
            },
        })),
    ));
    a.on_msg(Msg::Heatmap(
        gen,
        Ok(Heatmap {
            kind: HeatmapKind::AgentEmotion,
            rows: vec!["ann".into(), "bob".into()],
            columns: Emotion::FACE
                .iter()
                .map(|e| e.as_str().to_string())
                .collect(),
            cells: vec![vec![0, 1, 2, 40, 10, 3, 50], vec![5, 0, 0, 20, 30, 1, 60]],
            max: 60,
        }),
    ));
    a
}

#[test]
fn login_screen() {
    let mut a = new_app();
    a.on_msg(Msg::Health(Ok(emo_api_types::Health {
        status: "ok".into(),
        version: "0.1.0".into(),
        database: None,
        pending_samples: None,
    })));
    check(
        &a,
        "login",
        &[
            "Log in to EMO",
            "Username",
            "Password",
            "F2",
            "http://127.0.0.1:7878",
            "emod 0.1.0 (ok)",
        ],
    );
    for c in "ann".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    key(&mut a, KeyCode::Enter);
    for c in "secret".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    a.on_msg(Msg::Login(Err(emo_tui::api::ClientError::Api {
        status: 401,
        code: emo_api_types::ErrorCode::InvalidCredentials,
        message: "no".into(),
    })));
    check(
        &a,
        "login-error",
        &["ann", "Error: Wrong username or password."],
    );
    let text = render(&a, 80, 24);
    assert!(!text.contains("secret"), "the password is never shown");
}

#[test]
fn unreachable_server_message() {
    let mut a = new_app();
    a.resume("tok".into());
    check(&a, "connecting", &["Checking the saved login"]);
    a.on_msg(Msg::Me(Err(emo_tui::api::ClientError::Unreachable {
        server: "http://127.0.0.1:7878".into(),
        detail: "connection refused or host unreachable".into(),
    })));
    assert_eq!(a.screen, Screen::Login);
    check(&a, "unreachable", &["Error: Cannot reach the EMO server"]);
    a.on_msg(Msg::Health(Err(emo_tui::api::ClientError::Unreachable {
        server: "http://127.0.0.1:7878".into(),
        detail: "timed out".into(),
    })));
    check(&a, "unreachable-health", &["not reachable", "timed out"]);
}

#[test]
fn register_screen() {
    let mut a = new_app();
    key(&mut a, KeyCode::F(2));
    check(
        &a,
        "register",
        &["Create an agent account", "Repeat", "back to login"],
    );
    a.on_msg(Msg::Register(Err(emo_tui::api::ClientError::Api {
        status: 403,
        code: emo_api_types::ErrorCode::RegistrationClosed,
        message: "".into(),
    })));
    check(
        &a,
        "register-closed",
        &["Self-registration is switched off"],
    );
}

#[test]
fn agent_view_history_and_consent() {
    let mut a = agent_app();
    check(
        &a,
        "agent",
        &[
            "Not recording",
            "My sessions (2)",
            "03-09 09:00",
            "happy",
            "interrupted",
            "support shift",
            "Live probability bars appear here",
        ],
    );
    key(&mut a, KeyCode::Char('s'));
    // Until the prompt has been seen for a moment, it offers no answer keys (type-ahead guard).
    check(
        &a,
        "consent-opening",
        &["Consent: start an EMO session?", "y or n works in a moment"],
    );
    assert!(!render(&a, 80, 24).contains("I consent"));
    a.now += emo_tui::app::CONSENT_GUARD;
    check(
        &a,
        "consent",
        &[
            "Consent: start an EMO session?",
            "images, video or audio",
            "Will open: the daemon's configured camera and microphone",
            "I consent",
            "cancel",
        ],
    );
    // The daemon says what `[capture]` resolves to: the prompt lists what it will really open.
    a.on_msg(Msg::Devices(Ok(emo_api_types::Devices {
        camera: emo_api_types::ConfiguredSource {
            configured: "auto".into(),
            resolved: Some("USB Camera (index 0)".into()),
        },
        microphone: emo_api_types::ConfiguredSource {
            configured: "auto".into(),
            resolved: None,
        },
        ..Default::default()
    })));
    check(
        &a,
        "consent-devices",
        &[
            "Will open: camera: USB Camera (index 0)",
            "microphone: none found on the daemon",
        ],
    );
    let text = render(&a, 80, 24);
    assert!(text.contains("Never stored"), "{text}");
}

#[test]
fn agent_view_recording_with_live_bars() {
    let mut a = agent_app();
    let mut running = session(9, "ann", "2026-03-10T11:55:00Z", 0, SessionStatus::Running);
    // Samples posted by the agent's own capture client.
    running.sources = vec!["remote".into()];
    let id = running.id;
    a.on_msg(Msg::Started(Ok(running)));
    check(
        &a,
        "recording-waiting",
        &["● RECORDING 5:00", "waiting for estimates"],
    );
    a.on_msg(live_happy_sample(id));
    check(
        &a,
        "recording-live",
        &["Live · 1 estimates", "64%", "fused: happy", "x stop"],
    );
}

#[test]
fn capturing_session_says_recording_only_while_a_source_delivers() {
    let mut a = agent_app();
    let mut running = session(9, "ann", "2026-03-10T11:55:00Z", 0, SessionStatus::Running);
    running.sources = vec!["camera".into(), "microphone".into()];
    let id = running.id;
    a.on_msg(Msg::Started(Ok(running)));
    check(&a, "capture-starting", &["STARTING"]);
    one_capture_word(&a, "◌ STARTING");
    let source = |name: &str, state: SourceState, message: &str| {
        Msg::Live(LiveEvent::Source {
            source: name.into(),
            state,
            message: message.into(),
        })
    };
    a.on_msg(source("camera", SourceState::Active, "file:/tmp/a.mp4"));
    a.on_msg(source("microphone", SourceState::Active, "default"));
    a.on_msg(Msg::Live(LiveEvent::Stats(CaptureStats {
        fps_in: 10.0,
        fps_processed: 9.8,
        frames_dropped: 0,
        latency_ms_p50: 60.0,
        latency_ms_p95: 110.0,
    })));
    a.on_msg(live_happy_sample(id));
    check(
        &a,
        "capture-live",
        &["RECORDING", "camera ✓", "microphone ✓", "9.8 fps"],
    );
    one_capture_word(&a, "● RECORDING");
    a.on_msg(source("camera", SourceState::Lost, "device unplugged"));
    check(&a, "capture-camera-lost", &["RECORDING", "camera ✗ lost"]);
    a.on_msg(source("microphone", SourceState::Ended, "file ended"));
    check(
        &a,
        "capture-nothing",
        &["NOT CAPTURING", "microphone ■", "microphone ended"],
    );
    one_capture_word(&a, "■ NOT CAPTURING");
}

/// The header (every screen's first line) and the session line say the same capture state,
/// and no other state word is on the screen.
fn one_capture_word(a: &App, word: &str) {
    const WORDS: [&str; 4] = ["◌ STARTING", "● RECORDING", "■ NOT CAPTURING", "● REC "];
    for (w, h) in SIZES {
        let text = render(a, w, h);
        let header = text.lines().next().unwrap_or("");
        assert!(
            header.contains(word),
            "the header does not say {word}:\n{text}"
        );
        assert!(
            text.matches(word).count() >= 2,
            "the session line does not say {word}:\n{text}"
        );
        for other in WORDS.iter().filter(|o| !word.starts_with(o.trim_end())) {
            assert!(
                !text.contains(other),
                "{other:?} shown beside {word:?}:\n{text}"
            );
        }
    }
}

#[test]
fn session_timeline() {
    let mut a = agent_app();
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.screen, Screen::Detail);
    check(&a, "detail-loading", &["Loading the session"]);
    let mut s = session(1, "ann", "2026-03-09T09:00:00Z", 45, SessionStatus::Stopped);
    if let Some(sum) = s.summary.as_mut() {
        sum.end_reason = Some(emo_api_types::EndReason::SourcesEnded);
    }
    let sm = samples(s.id, "2026-03-09T09:00:00Z", 120);
    a.on_msg(Msg::SessionDetail(Ok((s, sm))));
    check(
        &a,
        "detail",
        &[
            "ann · stopped (sources ended)",
            "dominant happy",
            "coverage face 98%",
            "Timeline (fused, 120 samples)",
            "happy",
            "09:00:00",
            "09:45:00",
        ],
    );
    key(&mut a, KeyCode::Esc);
    assert_eq!(a.screen, Screen::Agent);
}

#[test]
fn dashboard_overview_heatmap_sessions_audit() {
    let mut a = admin_app();
    assert_eq!(a.screen, Screen::Dashboard);
    check(
        &a,
        "dash-overview",
        &[
            "Filter agent all",
            "1 Overview",
            "Distribution · 1000 estimates",
            "neutral",
            "50.0%",
            "Over time",
        ],
    );
    key(&mut a, KeyCode::Char('2'));
    assert_eq!(a.dash.tab, DashTab::Heatmap);
    check(
        &a,
        "dash-heatmap",
        &[
            "Heatmap: agent × emotion",
            "ann",
            "bob",
            "angry",
            "disgust",
            "surpri",
            "Legend",
            "46-60",
        ],
    );
    key(&mut a, KeyCode::Char('m'));
    let gen = a.dash.gen;
    a.on_msg(Msg::Heatmap(
        gen,
        Ok(Heatmap {
            kind: HeatmapKind::WeekdayHour,
            rows: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            columns: (0..24).map(|h| h.to_string()).collect(),
            cells: (0..7)
                .map(|d| (0..24).map(|h| ((d * h) % 9) as u64).collect())
                .collect(),
            max: 8,
        }),
    ));
    check(
        &a,
        "dash-heatmap-weekday",
        &["Heatmap: weekday × hour", "Mon", "Sun", "Legend"],
    );
    key(&mut a, KeyCode::Char('3'));
    check(
        &a,
        "dash-sessions",
        &["Sessions (3 of 3)", "bob", "● running", "support"],
    );
    key(&mut a, KeyCode::Down);
    let cmds = a.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    assert_eq!(a.screen, Screen::Detail);
    assert!(matches!(cmds[0], emo_tui::app::Cmd::OpenSession(_)));
    key(&mut a, KeyCode::Esc);
    assert_eq!(a.screen, Screen::Dashboard);
    key(&mut a, KeyCode::Char('4'));
    a.on_msg(Msg::Audit(Ok(Page {
        items: vec![AuditEntry {
            id: Uuid::from_u128(1),
            at: t("2026-03-10T11:00:00Z"),
            actor: "root".into(),
            action: "read_sessions".into(),
            target_user: Some("ann".into()),
            detail: "GET /api/v1/sessions?agent=ann".into(),
        }],
        total: 1,
        offset: 0,
        limit: 100,
        next_offset: None,
        next_after: None,
        total_capped: false,
    })));
    check(
        &a,
        "dash-audit",
        &["Audit log (1-1 of 1)", "read_sessions", "root"],
    );
}

#[test]
fn dashboard_filter_form_and_export_prompt() {
    let mut a = admin_app();
    key(&mut a, KeyCode::Char('f'));
    check(
        &a,
        "filters",
        &["Filters", "Agent", "From", "Emotion", "Modality", "pick"],
    );
    key(&mut a, KeyCode::Right); // pick the first agent
    key(&mut a, KeyCode::Tab);
    for c in "2026-03-01".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    key(&mut a, KeyCode::Enter);
    check(
        &a,
        "filters-applied",
        &[
            "agent ann",
            "agent ann · 2026-03-01 → …",
            "Filters applied.",
        ],
    );
    key(&mut a, KeyCode::Char('e'));
    check(
        &a,
        "export",
        &["Export to CSV", "emo-export-20260310-120000.csv"],
    );
    key(&mut a, KeyCode::Esc);
    a.on_msg(Msg::Exported(Ok(("/tmp/x.csv".into(), 42))));
    check(&a, "exported", &["Exported 42 rows to /tmp/x.csv."]);
}

#[test]
fn help_overlay_lists_keys_and_no_color_renders() {
    let mut a = agent_app();
    a.color = false;
    key(&mut a, KeyCode::Char('?'));
    check(
        &a,
        "help",
        &["Keys", "Everywhere", "Ctrl-C", "any key closes"],
    );
    // Every key of the list is reachable by scrolling.
    let all = help_rows().count();
    for _ in 0..all + 20 {
        key(&mut a, KeyCode::Down);
    }
    check(&a, "help-end", &["Session", "reload"]);
    key(&mut a, KeyCode::Char('x'));
    assert!(!a.show_help);
}

#[test]
fn no_color_renders_every_screen_without_colour() {
    let mut a = admin_app();
    a.color = false;
    for k in ['1', '2', '3', '4'] {
        key(&mut a, KeyCode::Char(k));
        check(&a, &format!("nocolor-dash-{k}"), &["Filter"]);
    }
    let mut b = agent_app();
    b.color = false;
    let running = session(9, "ann", "2026-03-10T11:55:00Z", 0, SessionStatus::Running);
    b.on_msg(Msg::Started(Ok(running)));
    check(&b, "nocolor-recording", &["◌ STARTING 5:00"]);
}

/// An agent recording, with live bars from one fused estimate.
fn recording_app() -> App {
    let mut a = agent_app();
    let running = session(9, "ann", "2026-03-10T11:55:00Z", 0, SessionStatus::Running);
    let id = running.id;
    a.on_msg(Msg::Started(Ok(running)));
    a.on_msg(live_happy_sample(id));
    a
}

fn weekday_heatmap() -> Heatmap {
    Heatmap {
        kind: HeatmapKind::WeekdayHour,
        rows: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        columns: (0..24).map(|h| h.to_string()).collect(),
        cells: (0..7)
            .map(|d| (0..24).map(|h| ((d * h) % 9) as u64).collect())
            .collect(),
        max: 8,
    }
}

/// Every screen and popup, with data, by name.
fn every_screen() -> Vec<(&'static str, App)> {
    let mut v = Vec::new();

    let mut a = new_app();
    a.resume("tok".into());
    v.push(("connecting", a));

    let mut a = new_app();
    a.start_at_login();
    a.on_msg(Msg::Health(Ok(emo_api_types::Health {
        status: "ok".into(),
        version: "0.1.0".into(),
        database: Some("sqlite".into()),
        pending_samples: None,
    })));
    a.login.username.value = "a-rather-long-username-é€🙂".into();
    a.error("A long error message that certainly does not fit in a tiny terminal at all.");
    v.push(("login", a));

    let mut a = new_app();
    key(&mut a, KeyCode::F(2));
    a.register.password.value = "secret".into();
    v.push(("register", a));

    v.push(("agent", agent_app()));
    v.push(("agent, empty", {
        let mut a = new_app();
        a.on_msg(Msg::Me(Ok(user("ann", Role::Agent))));
        a
    }));

    let mut a = agent_app();
    key(&mut a, KeyCode::Char('s'));
    a.now += emo_tui::app::CONSENT_GUARD;
    v.push(("consent", a));

    v.push(("live", recording_app()));

    let mut a = agent_app();
    key(&mut a, KeyCode::Enter);
    v.push(("detail, loading", a));

    let mut a = agent_app();
    key(&mut a, KeyCode::Enter);
    let s = session(1, "ann", "2026-03-09T09:00:00Z", 45, SessionStatus::Stopped);
    let sm = samples(s.id, "2026-03-09T09:00:00Z", 120);
    a.on_msg(Msg::SessionDetail(Ok((s, sm))));
    v.push(("detail", a));

    let mut a = new_app();
    a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
    v.push(("dashboard, nothing loaded", a));

    v.push(("dashboard overview", admin_app()));

    let mut a = admin_app();
    key(&mut a, KeyCode::Char('2'));
    v.push(("heatmap agent × emotion", a));

    let mut a = admin_app();
    key(&mut a, KeyCode::Char('2'));
    key(&mut a, KeyCode::Char('m'));
    v.push(("heatmap, switching", a));

    let mut a = admin_app();
    key(&mut a, KeyCode::Char('2'));
    key(&mut a, KeyCode::Char('m'));
    let gen = a.dash.gen;
    a.on_msg(Msg::Heatmap(gen, Ok(weekday_heatmap())));
    v.push(("heatmap weekday × hour", a));

    let mut a = admin_app();
    key(&mut a, KeyCode::Char('3'));
    key(&mut a, KeyCode::Down);
    v.push(("sessions", a));

    let mut a = admin_app();
    key(&mut a, KeyCode::Char('4'));
    a.on_msg(Msg::Audit(Ok(Page {
        items: (0..30)
            .map(|i| AuditEntry {
                id: Uuid::from_u128(i),
                at: t("2026-03-10T11:00:00Z"),
                actor: "root".into(),
                action: "read_sessions".into(),
                target_user: Some("ann".into()),
                detail: "GET /api/v1/sessions?agent=ann".repeat(5),
            })
            .collect(),
        total: 250,
        offset: 0,
        limit: 100,
        next_offset: Some(100),
        next_after: None,
        total_capped: false,
    })));
    v.push(("audit", a));

    for focus in 0..5 {
        let mut a = admin_app();
        key(&mut a, KeyCode::Char('f'));
        for _ in 0..focus {
            key(&mut a, KeyCode::Tab);
        }
        for c in "-5€ tröt".chars() {
            key(&mut a, KeyCode::Char(c));
        }
        v.push(("filter form", a));
    }

    let mut a = admin_app();
    key(&mut a, KeyCode::Char('e'));
    v.push(("export", a));

    let mut a = agent_app();
    key(&mut a, KeyCode::Char('?'));
    v.push(("help over my sessions", a));

    let mut a = admin_app();
    key(&mut a, KeyCode::Char('f'));
    key(&mut a, KeyCode::F(1));
    for _ in 0..500 {
        key(&mut a, KeyCode::PageDown);
    }
    v.push(("help scrolled past the end, over the filter form", a));

    let mut a = recording_app();
    key(&mut a, KeyCode::Char('?'));
    key(&mut a, KeyCode::Down);
    v.push(("help over live", a));

    v
}

#[test]
fn tiny_terminal_does_not_panic() {
    const TINY: [(u16, u16); 9] = [
        (1, 1),
        (2, 1),
        (10, 3),
        (20, 5),
        (40, 10),
        (79, 23),
        (80, 1),
        (1, 24),
        (5, 40),
    ];
    for (name, mut a) in every_screen() {
        for color in [true, false] {
            a.color = color;
            for (w, h) in TINY {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    render(&a, w, h);
                }));
                assert!(r.is_ok(), "{name} panicked at {w}x{h} (colour {color})");
            }
        }
    }
}

#[test]
fn every_screen_renders_at_80x24_and_large() {
    for (name, a) in every_screen() {
        for (w, h) in SIZES {
            let text = render(&a, w, h);
            assert!(text.contains("EMO"), "{name} at {w}x{h}:\n{text}");
        }
        check_colours(&a, 80, 24, name);
    }
}

/// Every row of the key tables with its section, in the order the help shows them.
fn help_rows() -> impl Iterator<Item = (&'static str, &'static emo_tui::keys::Row)> {
    emo_tui::keys::ALL
        .into_iter()
        .flat_map(|t| t.rows.iter().map(move |r| (t.section, r)))
}

/// Every row of the key table can be read in full in the overlay at 80×24 by scrolling.
#[test]
fn help_shows_every_documented_key_and_action() {
    let mut a = agent_app();
    a.color = false;
    key(&mut a, KeyCode::Char('?'));
    let mut seen = String::new();
    for _ in 0..help_rows().count() + 40 {
        seen.push_str(&render(&a, 80, 24));
        key(&mut a, KeyCode::Down);
    }
    assert!(a.show_help);
    let mut last = "";
    for (section, r) in help_rows() {
        if section != last {
            assert!(seen.contains(section), "section {section}");
            last = section;
        }
        let row = format!("{:<19} {}", emo_tui::ui::help::keys_text(r), r.help);
        assert!(seen.contains(&row), "help row missing or cut: {row:?}");
    }
    for d in emo_tui::ui::help::DATES {
        assert!(seen.contains(d), "{d}");
    }
}

/// One fused live estimate (happy 0.64, neutral 0.30, sad 0.06) for session `id`.
fn live_happy_sample(id: uuid::Uuid) -> Msg {
    let mut probs = BTreeMap::new();
    probs.insert(Emotion::Happy, 0.64);
    probs.insert(Emotion::Neutral, 0.30);
    probs.insert(Emotion::Sad, 0.06);
    Msg::Live(LiveEvent::Sample(Sample {
        session_id: id,
        t: now(),
        modality: Modality::Fused,
        emotion: Emotion::Happy,
        confidence: 0.64,
        probabilities: probs,
    }))
}
