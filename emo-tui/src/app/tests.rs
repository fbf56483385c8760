//! The state machine's unit tests: keys and answers in, state and commands out.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use emo_api_types::{
    AuditEntry, Bucket, Distribution, Emotion, ErrorCode, Heatmap, HeatmapKind, LoginResponse,
    Page, Role, Session, SessionStatus, Timeline, User,
};
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use uuid::Uuid;

use super::*;
use crate::token::SavedToken;

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}
fn typed(app: &mut App, s: &str) {
    for ch in s.chars() {
        app.on_key(key(KeyCode::Char(ch)));
    }
}
fn app() -> App {
    App::new(
        "http://127.0.0.1:7878",
        false,
        "2026-03-10T12:00:00Z".parse().unwrap(),
        FixedOffset::east_opt(0).unwrap(),
    )
}
fn user(name: &str, role: Role) -> User {
    User {
        id: Uuid::nil(),
        username: name.into(),
        display_name: None,
        role,
        disabled: false,
        created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
    }
}

#[test]
fn login_flow_sends_credentials_then_saves_token_and_loads_home() {
    let mut a = app();
    typed(&mut a, "ann");
    a.on_key(key(KeyCode::Enter));
    typed(&mut a, "pw?q");
    assert_eq!(
        a.login.password.value, "pw?q",
        "q and ? are text while typing"
    );
    let cmds = a.on_key(key(KeyCode::Enter));
    assert_eq!(
        cmds,
        vec![Cmd::Login {
            username: "ann".into(),
            password: "pw?q".into()
        }]
    );
    assert_eq!(a.pending, 1);
    a.on_key(key(KeyCode::Char('x')));
    a.on_key(key(KeyCode::Backspace));
    assert!(
        a.on_key(key(KeyCode::Enter)).is_empty(),
        "no second login while one is in flight"
    );
    let cmds = a.on_msg(Msg::Login(Ok((
        "ann".into(),
        LoginResponse {
            token: "tok".into(),
            expires_at: "2026-03-11T00:00:00Z".parse().unwrap(),
        },
    ))));
    assert!(matches!(cmds[0], Cmd::SetToken(Some(ref t)) if t == "tok"));
    assert!(matches!(cmds[1], Cmd::SaveToken(_)));
    assert_eq!(cmds[2], Cmd::Me);
    let cmds = a.on_msg(Msg::Me(Ok(user("ann", Role::Agent))));
    assert_eq!(a.screen, Screen::Agent);
    assert_eq!(
        cmds,
        vec![Cmd::MySessions {
            agent: "ann".into()
        }]
    );
}

#[test]
fn wrong_password_and_expired_token_are_explained() {
    let mut a = app();
    a.on_msg(Msg::Login(Err(ClientError::Api {
        status: 401,
        code: ErrorCode::InvalidCredentials,
        message: "x".into(),
    })));
    assert_eq!(
        a.status.as_ref().unwrap().text,
        "Wrong username or password."
    );
    assert_eq!(a.status.as_ref().unwrap().kind, StatusKind::Error);
    let mut a = app();
    a.resume("old".into());
    assert_eq!(a.screen, Screen::Connecting);
    let cmds = a.on_msg(Msg::Me(Err(ClientError::Api {
        status: 401,
        code: ErrorCode::Unauthenticated,
        message: "expired".into(),
    })));
    assert_eq!(a.screen, Screen::Login);
    assert!(cmds.contains(&Cmd::ClearToken("old".into())));
    assert!(a.status.as_ref().unwrap().text.contains("expired"));
}

#[test]
fn consent_is_required_before_starting() {
    let mut a = app();
    a.on_msg(Msg::Me(Ok(user("ann", Role::Agent))));
    // Opening the prompt asks the daemon what it would capture from.
    assert_eq!(a.on_key(key(KeyCode::Char('s'))), vec![Cmd::Devices]);
    assert!(a.agent.consent_open);
    a.now += CONSENT_GUARD;
    assert!(a.on_key(key(KeyCode::Char('n'))).is_empty());
    assert!(!a.agent.consent_open);
    a.on_key(key(KeyCode::Char('s')));
    a.now += CONSENT_GUARD;
    assert_eq!(
        a.on_key(key(KeyCode::Char('y'))),
        vec![Cmd::StartSession {
            sources: Vec::new(),
            label: None
        }]
    );
}

#[test]
fn consent_prompt_ignores_keys_typed_ahead_of_it() {
    let mut a = app();
    a.on_msg(Msg::Me(Ok(user("ann", Role::Agent))));
    a.on_key(key(KeyCode::Char('s')));
    // Keys right after the prompt opened, each one extending the guard: no answer.
    let step = CONSENT_GUARD / 2;
    for c in ['y', 'n', 'y'] {
        a.now += step;
        assert!(a.on_key(key(KeyCode::Char(c))).is_empty(), "{c}");
        assert!(a.agent.consent_open, "{c} answered the prompt");
    }
    // A deliberate answer, once the prompt has been shown for the guard without keys.
    a.now += CONSENT_GUARD;
    assert!(matches!(
        a.on_key(key(KeyCode::Char('y')))[..],
        [Cmd::StartSession { .. }]
    ));
    // Esc cancels at once.
    a.agent.consent_open = false;
    a.on_key(key(KeyCode::Char('s')));
    a.on_key(key(KeyCode::Esc));
    assert!(!a.agent.consent_open);
}

#[test]
fn filter_form_validates_and_applies() {
    let mut a = app();
    a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
    assert_eq!(a.screen, Screen::Dashboard);
    a.on_key(key(KeyCode::Char('f')));
    assert!(a.typing());
    typed(&mut a, "ann");
    a.on_key(key(KeyCode::Tab));
    typed(&mut a, "yesterday-ish");
    assert!(a.on_key(key(KeyCode::Enter)).is_empty());
    assert!(a.status.as_ref().unwrap().text.starts_with("From:"));
    a.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    typed(&mut a, "-7d");
    a.on_key(key(KeyCode::Tab));
    a.on_key(key(KeyCode::Tab));
    a.on_key(key(KeyCode::Right));
    assert_eq!(a.dash.form.emotion.value, "angry");
    let cmds = a.on_key(key(KeyCode::Enter));
    assert!(!a.dash.form.open);
    assert_eq!(a.dash.query.agent.as_deref(), Some("ann"));
    assert_eq!(a.dash.query.emotion, Some(Emotion::Angry));
    assert_eq!(a.dash.bucket, Bucket::Hour);
    assert!(matches!(cmds[0], Cmd::Dashboard { .. }));
    assert!(matches!(cmds[1], Cmd::Heatmap { .. }));
}

#[test]
fn unbounded_range_refines_the_timeline_bucket() {
    let mut a = app();
    a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
    let t0: DateTime<Utc> = "2026-03-10T09:00:00Z".parse().unwrap();
    let page = Page {
        items: vec![],
        total: 0,
        offset: 0,
        limit: 200,
        next_offset: None,
        next_after: None,
        total_capped: false,
    };
    let gen = a.dash.gen;
    let cmds = a.on_msg(Msg::Dashboard(
        gen,
        Ok(Box::new(DashData {
            distribution: Distribution::default(),
            timeline: Timeline {
                bucket: Bucket::Day,
                points: vec![emo_api_types::TimelinePoint {
                    t: t0,
                    total: 1,
                    counts: BTreeMap::new(),
                }],
            },
            sessions: page,
        })),
    ));
    let refined = |cmds: &[Cmd]| match cmds {
        [Cmd::Timeline { bucket, .. }] => Some(*bucket),
        _ => None,
    };
    assert_eq!(refined(&cmds), Some(Bucket::Hour));
    // Points within a few hours: refined again to minutes, then it stops.
    let pts = |b| Timeline {
        bucket: b,
        points: vec![emo_api_types::TimelinePoint {
            t: t0,
            total: 1,
            counts: BTreeMap::new(),
        }],
    };
    let cmds = a.on_msg(Msg::Timeline(gen, Ok(pts(Bucket::Hour))));
    assert_eq!(refined(&cmds), Some(Bucket::Minute));
    // The API refuses minute buckets without both bounds: the data's extent is asked for,
    // while the filter in force stays unbounded.
    match &cmds[..] {
        [Cmd::Timeline { query, .. }] => {
            assert_eq!(query.from, Some(t0));
            assert_eq!(query.to, Some(t0 + chrono::Duration::hours(1)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(a.dash.query.from, None);
    assert!(a
        .on_msg(Msg::Timeline(gen, Ok(pts(Bucket::Minute))))
        .is_empty());
}

/// Draws `a` on an 80×24 test terminal, as the event loop does, keeping what is clickable.
fn draw(a: &mut App) -> ratatui::buffer::Buffer {
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(80, 24)).unwrap();
    let mut hits = Hits::default();
    term.draw(|f| hits = crate::ui::draw(f, a)).unwrap();
    a.hits = hits;
    term.backend().buffer().clone()
}

/// Where `text` is on the screen (column, row).
fn find(buf: &ratatui::buffer::Buffer, text: &str) -> (u16, u16) {
    for y in 0..buf.area.height {
        let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        if let Some(i) = line.find(text) {
            return (line[..i].chars().count() as u16, y);
        }
    }
    panic!("{text:?} is not on the screen");
}

#[test]
fn clicking_a_tab_switches_to_it() {
    let mut a = app();
    a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
    let click = |(column, row): (u16, u16)| MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column,
        row,
        modifiers: KeyModifiers::NONE,
    };
    let buf = draw(&mut a);
    let (x, y) = find(&buf, "2 Heatmap");
    // The padding before the title belongs to the tab; the row above is not a tab.
    a.on_mouse(click((x - 1, y - 1)));
    assert_eq!(a.dash.tab, DashTab::Overview);
    a.on_mouse(click((x - 1, y)));
    assert_eq!(a.dash.tab, DashTab::Heatmap);
    let buf = draw(&mut a);
    let (x, y) = find(&buf, "4 Audit log");
    let cmds = a.on_mouse(click((x + 10, y)));
    assert_eq!(a.dash.tab, DashTab::Audit);
    assert_eq!(cmds, vec![Cmd::Audit { offset: 0 }]);
    // Past the last tab: nothing.
    assert!(a.on_mouse(click((x + 12, y))).is_empty());
    assert_eq!(a.dash.tab, DashTab::Audit);
    // With the filter form open, a click on the tabs does nothing.
    a.dash.form.open = true;
    let (x, y) = find(&buf, "1 Overview");
    assert!(a.on_mouse(click((x, y))).is_empty());
    assert_eq!(a.dash.tab, DashTab::Audit);
}

#[test]
fn quit_keys() {
    let mut a = app();
    a.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(a.should_quit);
    let mut a = app();
    a.on_key(KeyEvent::new(KeyCode::Char('q'), KeyModifiers::CONTROL));
    assert!(a.should_quit);
}

#[test]
fn ctrl_and_alt_chords_are_not_shortcuts() {
    let mut a = app();
    a.on_msg(Msg::Me(Ok(user("ann", Role::Agent))));
    for m in [KeyModifiers::CONTROL, KeyModifiers::ALT] {
        assert!(a.on_key(KeyEvent::new(KeyCode::Char('s'), m)).is_empty());
        assert!(
            !a.agent.consent_open,
            "{m:?}-s must not open the consent prompt"
        );
        a.on_key(KeyEvent::new(KeyCode::Char('q'), KeyModifiers::ALT));
        assert!(!a.should_quit);
    }
    // In a field, Ctrl-U still clears.
    let mut a = app();
    typed(&mut a, "ann");
    a.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    assert_eq!(a.login.username.value, "");
}

fn dash_data(total: u64) -> Box<DashData> {
    Box::new(DashData {
        distribution: Distribution {
            total,
            ..Distribution::default()
        },
        timeline: Timeline {
            bucket: Bucket::Hour,
            points: vec![],
        },
        sessions: Page {
            items: vec![],
            total,
            offset: 0,
            limit: 200,
            next_offset: None,
            next_after: None,
            total_capped: false,
        },
    })
}

fn heatmap(max: u64) -> Heatmap {
    Heatmap {
        kind: HeatmapKind::AgentEmotion,
        rows: vec![],
        columns: vec![],
        cells: vec![],
        max,
    }
}

fn apply_filter(a: &mut App, agent: &str) -> u64 {
    a.on_key(key(KeyCode::Char('f')));
    a.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    typed(a, agent);
    let cmds = a.on_key(key(KeyCode::Enter));
    assert!(!a.dash.form.open, "{:?}", a.status);
    match &cmds[..] {
        [Cmd::Dashboard { gen, query, .. }, Cmd::Heatmap { gen: g2, .. }] => {
            assert_eq!(query.agent.as_deref(), Some(agent));
            assert_eq!(gen, g2);
            *gen
        }
        c => panic!("{c:?}"),
    }
}

#[test]
fn only_the_answer_to_the_latest_filter_is_applied() {
    let mut a = app();
    a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
    let first = a.dash.gen;
    let ann = apply_filter(&mut a, "ann");
    let bob = apply_filter(&mut a, "bob");
    assert!(first < ann && ann < bob && a.dash.gen == bob);
    let pending = a.pending;
    // bob's answers come first, then ann's (slow) ones: ann's must not win.
    assert!(a.on_msg(Msg::Dashboard(bob, Ok(dash_data(2)))).is_empty());
    a.on_msg(Msg::Heatmap(bob, Ok(heatmap(2))));
    assert!(a.on_msg(Msg::Dashboard(ann, Ok(dash_data(1)))).is_empty());
    a.on_msg(Msg::Heatmap(ann, Ok(heatmap(1))));
    a.on_msg(Msg::Timeline(
        ann,
        Ok(Timeline {
            bucket: Bucket::Minute,
            points: vec![],
        }),
    ));
    a.on_msg(Msg::Dashboard(first, Ok(dash_data(9))));
    assert_eq!(a.dash.distribution.as_ref().unwrap().total, 2);
    assert_eq!(a.dash.sessions_total, 2);
    assert_eq!(a.dash.heatmap.as_ref().unwrap().max, 2);
    assert_eq!(a.dash.timeline.as_ref().unwrap().bucket, Bucket::Hour);
    // Every answer, stale or not, ends its request: the spinner stops at zero.
    assert_eq!(a.pending, pending - 6);
    // A stale error is not shown...
    let before = a.status.clone();
    a.on_msg(Msg::Dashboard(
        ann,
        Err(ClientError::Unreachable {
            server: "s".into(),
            detail: "d".into(),
        }),
    ));
    assert_eq!(a.status, before);
    // ...but a revoked login is still a revoked login.
    a.on_msg(Msg::Heatmap(
        ann,
        Err(ClientError::Api {
            status: 401,
            code: ErrorCode::Unauthenticated,
            message: String::new(),
        }),
    ));
    assert_eq!(a.screen, Screen::Login);
}

#[test]
fn refresh_and_clear_also_start_a_new_generation() {
    let mut a = app();
    a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
    let g = a.dash.gen;
    let cmds = a.on_key(key(KeyCode::Char('r')));
    assert!(matches!(cmds[0], Cmd::Dashboard { gen, .. } if gen == g + 1));
    let cmds = a.on_key(key(KeyCode::Char('c')));
    assert!(matches!(cmds[0], Cmd::Dashboard { gen, .. } if gen == g + 2));
    // The heatmap switch keeps the generation (the other answers are still wanted).
    a.on_key(key(KeyCode::Char('2')));
    let cmds = a.on_key(key(KeyCode::Char('m')));
    assert!(matches!(cmds[..], [Cmd::Heatmap { gen, .. }] if gen == g + 2));
}

#[test]
fn a_slow_audit_page_or_session_does_not_replace_the_current_one() {
    let mut a = app();
    a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
    a.on_key(key(KeyCode::Char('4')));
    a.dash.audit_total = 300;
    a.on_key(key(KeyCode::PageDown));
    assert_eq!(a.dash.audit_offset, AUDIT_PAGE);
    let entry = |action: &str| AuditEntry {
        id: Uuid::nil(),
        at: "2026-03-10T11:00:00Z".parse().unwrap(),
        actor: "root".into(),
        action: action.into(),
        target_user: None,
        detail: String::new(),
    };
    let page = |offset, action| Page {
        items: vec![entry(action)],
        total: 300,
        offset,
        limit: AUDIT_PAGE,
        next_offset: None,
        next_after: None,
        total_capped: false,
    };
    a.on_msg(Msg::Audit(Ok(page(AUDIT_PAGE, "second"))));
    a.on_msg(Msg::Audit(Ok(page(0, "first"))));
    assert_eq!(a.dash.audit[0].action, "second");

    let s = |n: u128| Session {
        id: Uuid::from_u128(n),
        user_id: Uuid::nil(),
        username: "ann".into(),
        status: SessionStatus::Stopped,
        started_at: "2026-03-10T11:00:00Z".parse().unwrap(),
        ended_at: None,
        consent_at: "2026-03-10T11:00:00Z".parse().unwrap(),
        sources: vec![],
        label: None,
        summary: None,
    };
    a.dash.sessions = vec![s(1), s(2)];
    a.on_key(key(KeyCode::Char('3')));
    a.on_key(key(KeyCode::Enter));
    a.on_key(key(KeyCode::Esc));
    a.on_key(key(KeyCode::Down));
    a.on_key(key(KeyCode::Enter));
    assert_eq!(a.detail.id, Some(Uuid::from_u128(2)));
    a.on_msg(Msg::SessionDetail(Ok((s(1), vec![]))));
    assert!(a.detail.session.is_none() && a.detail.loading);
    a.on_msg(Msg::SessionDetail(Ok((s(2), vec![]))));
    assert_eq!(a.detail.session.as_ref().map(|s| s.id), Some(s(2).id));
}

#[test]
fn a_failed_token_save_is_shown_without_touching_the_in_flight_count() {
    let mut a = app();
    typed(&mut a, "ann");
    a.on_key(key(KeyCode::Enter));
    typed(&mut a, "pw");
    a.on_key(key(KeyCode::Enter));
    let cmds = a.on_msg(Msg::Login(Ok((
        "ann".into(),
        LoginResponse {
            token: "tok".into(),
            expires_at: "2026-03-11T00:00:00Z".parse().unwrap(),
        },
    ))));
    assert!(cmds.iter().any(|c| matches!(c, Cmd::SaveToken(_))));
    assert!(!Cmd::SaveToken(SavedToken {
        server: String::new(),
        username: String::new(),
        token: String::new(),
        expires_at: a.now,
    })
    .awaits_answer());
    assert_eq!(a.pending, 1, "only Me is in flight");
    a.on_msg(Msg::TokenNotSaved("The login could not be saved.".into()));
    assert_eq!(
        a.pending, 1,
        "the save was never counted, so it must not uncount"
    );
    let st = a.status.clone().unwrap();
    assert_eq!(st.kind, StatusKind::Error);
    assert!(st.text.contains("could not be saved"));
    let cmds = a.on_msg(Msg::Me(Ok(user("ann", Role::Agent))));
    assert_eq!(a.pending, cmds.iter().filter(|c| c.awaits_answer()).count());
    let st = a.status.clone().unwrap();
    assert!(st.text.contains("Logged in as ann") && st.text.contains("could not be saved"));
    assert_eq!(st.kind, StatusKind::Error);
}

#[test]
fn a_rejected_token_only_clears_the_saved_login_holding_that_token() {
    let unauth = || ClientError::Api {
        status: 401,
        code: ErrorCode::Unauthenticated,
        message: String::new(),
    };
    // EMO_TOKEN / --token: the ClearToken names that token, so a saved login with another
    // token is kept (the net worker compares; see net::tests).
    let mut a = app();
    a.resume("from-env".into());
    let cmds = a.on_msg(Msg::Me(Err(unauth())));
    assert!(cmds.contains(&Cmd::ClearToken("from-env".into())));
    assert!(cmds.contains(&Cmd::SetToken(None)));
    assert_eq!(
        cmds.iter()
            .filter(|c| matches!(c, Cmd::ClearToken(_)))
            .count(),
        1
    );
    // Later failures have no token left to clear.
    a.resume("x".into());
    a.on_msg(Msg::Me(Err(unauth())));
    let cmds = a.on_msg(Msg::MySessions(Err(unauth())));
    assert!(!cmds.iter().any(|c| matches!(c, Cmd::ClearToken(_))));
    // A login of this session expiring: its own token, which it saved.
    let mut a = app();
    a.on_msg(Msg::Login(Ok((
        "ann".into(),
        LoginResponse {
            token: "fresh".into(),
            expires_at: "2026-03-11T00:00:00Z".parse().unwrap(),
        },
    ))));
    a.on_msg(Msg::Me(Ok(user("ann", Role::Agent))));
    let cmds = a.on_msg(Msg::MySessions(Err(unauth())));
    assert!(cmds.contains(&Cmd::ClearToken("fresh".into())));
    // Logging out forgets the token in use, not blindly the file.
    let mut a = app();
    a.resume("env2".into());
    a.on_msg(Msg::Me(Ok(user("ann", Role::Agent))));
    let cmds = a.on_key(key(KeyCode::Char('L')));
    assert!(cmds.contains(&Cmd::ClearToken("env2".into())));
}
