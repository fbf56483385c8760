//! The `?` overlay: every key, by screen. [`KEYS`] is the single list: the overlay renders it,
//! the README mirrors it, and a unit test below checks it against the key handlers of
//! [`crate::app::App`] both ways (every key that does something is listed, every listed key
//! does something).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};
use ratatui::Frame;

use crate::app::App;
use crate::ui::{centered, theme};

/// One row of the help: where it applies, the keys, what they do.
///
/// Key names are atomic tokens: a character (`q`, `G`, `/`), a range (`1-4`), `Ctrl-X`,
/// `Shift-Tab`, `Tab`, `Enter`, `Esc`, `Backspace`, `Home`, `End`, `PgUp`, `PgDn`, `F1`,
/// arrows (`↑ ↓ ← →`), and for the mouse `Wheel` and `Click`.
#[derive(Debug, Clone, Copy)]
pub struct KeyHelp {
    pub section: &'static str,
    pub keys: &'static [&'static str],
    pub action: &'static str,
}

const fn k(section: &'static str, keys: &'static [&'static str], action: &'static str) -> KeyHelp {
    KeyHelp {
        section,
        keys,
        action,
    }
}

pub const KEYS: &[KeyHelp] = &[
    k(
        "Everywhere",
        &["?", "F1"],
        "this help (? not while typing in a field)",
    ),
    k(
        "Everywhere",
        &["Ctrl-C", "Ctrl-Q"],
        "quit (a running session keeps running in emod)",
    ),
    k("Everywhere", &["q"], "quit (not while typing in a field)"),
    k(
        "Everywhere",
        &["L"],
        "log out, forget the saved login (once logged in)",
    ),
    k("Help", &["↑", "↓", "j", "k"], "scroll this help"),
    k(
        "Help",
        &["PgUp", "PgDn"],
        "scroll ten lines; any other key closes the help",
    ),
    k(
        "Mouse",
        &["Wheel"],
        "scroll a list or this help (not in a form)",
    ),
    k(
        "Mouse",
        &["Click"],
        "on a dashboard tab: switch to that tab",
    ),
    k(
        "Connecting",
        &["Esc", "q"],
        "quit while the saved login is checked",
    ),
    k(
        "Login",
        &["Tab", "Shift-Tab", "↑", "↓"],
        "switch between username and password",
    ),
    k("Login", &["Enter"], "next field / log in"),
    k(
        "Login",
        &["F2", "Ctrl-R"],
        "create an agent account (self-registration)",
    ),
    k("Login", &["Esc"], "quit"),
    k("Register", &["Tab", "↓"], "next field"),
    k("Register", &["Shift-Tab", "↑"], "previous field"),
    k(
        "Register",
        &["Enter"],
        "next field / create the account and log in",
    ),
    k("Register", &["Esc"], "back to login"),
    k(
        "Fields",
        &["Backspace"],
        "delete the last character (other keys type)",
    ),
    k("Fields", &["Ctrl-U"], "clear the field"),
    k(
        "My sessions",
        &["s"],
        "start a session (asks for consent first)",
    ),
    k("My sessions", &["x"], "stop the running session"),
    k(
        "My sessions",
        &["↑", "↓", "j", "k"],
        "select a past session",
    ),
    k(
        "My sessions",
        &["g", "G", "Home", "End"],
        "first / last session",
    ),
    k("My sessions", &["Enter"], "open the session's timeline"),
    k("My sessions", &["r"], "refresh"),
    k("My sessions", &["d", "Tab"], "admin dashboard (admins)"),
    k("Consent", &["y", "Y"], "I consent: start the session"),
    k("Consent", &["n", "Esc", "q"], "cancel, nothing is started"),
    k(
        "Dashboard",
        &["1-4"],
        "tabs: overview, heatmap, sessions, audit log",
    ),
    k("Dashboard", &["Tab", "→", "l"], "next tab"),
    k("Dashboard", &["Shift-Tab", "←", "h"], "previous tab"),
    k(
        "Dashboard",
        &["f", "/"],
        "edit filters: agent, from, to, emotion, modality",
    ),
    k("Dashboard", &["c"], "clear filters"),
    k(
        "Dashboard",
        &["m"],
        "heatmap: switch agent×emotion / weekday×hour",
    ),
    k(
        "Dashboard",
        &["↑", "↓", "j", "k"],
        "select a session / audit entry",
    ),
    k(
        "Dashboard",
        &["Enter"],
        "sessions tab: open the session's timeline",
    ),
    k("Dashboard", &["PgDn", "n"], "audit tab: next page"),
    k("Dashboard", &["PgUp", "p"], "audit tab: previous page"),
    k(
        "Dashboard",
        &["e"],
        "export the filtered samples to a CSV file",
    ),
    k("Dashboard", &["a"], "my own sessions (agent view)"),
    k("Dashboard", &["r"], "refresh"),
    k("Filters", &["Tab", "↓"], "next field"),
    k("Filters", &["Shift-Tab", "↑"], "previous field"),
    k("Filters", &["←", "→"], "pick an agent, emotion or modality"),
    k("Filters", &["Enter"], "apply"),
    k("Filters", &["Esc"], "cancel"),
    k("Export", &["Enter"], "write the file"),
    k("Export", &["Esc"], "cancel"),
    k("Session", &["m"], "switch modality (fused, face, voice)"),
    k("Session", &["Esc", "Backspace", "←", "h"], "back"),
    k("Session", &["r"], "reload"),
];

/// What the date fields of the filter form accept (not keys; shown after the filter keys).
pub const DATES: &[&str] = &[
    "2026-01-31, 2026-01-31 14:00, RFC 3339, today, yesterday, now,",
    "-30m, -24h, -7d, -2w; empty = open. A bare To date includes that day.",
];

/// The keys of a row as shown: tokens separated by spaces.
pub fn keys_text(e: &KeyHelp) -> String {
    e.keys.join(" ")
}

pub fn lines(app: &App) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let mut last = "";
    let section = |out: &mut Vec<Line<'static>>, name: &str, first: bool| {
        if !first {
            out.push(Line::raw(""));
        }
        out.push(Line::from(Span::styled(
            name.to_string(),
            theme::title(app),
        )));
    };
    for e in KEYS {
        if e.section != last {
            section(&mut out, e.section, last.is_empty());
            last = e.section;
        }
        out.push(Line::from(vec![
            Span::styled(format!("  {:<19} ", keys_text(e)), theme::key(app)),
            Span::raw(e.action.to_string()),
        ]));
    }
    section(&mut out, "Dates (filter form)", false);
    for d in DATES {
        out.push(Line::raw(format!("  {d}")));
    }
    out
}

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let r = centered(area, 78, area.height.saturating_sub(2).max(5));
    frame.render_widget(Clear, r);
    let all = lines(app);
    let visible = r.height.saturating_sub(2) as usize;
    let max_scroll = all.len().saturating_sub(visible) as u16;
    let scroll = app.help_scroll.min(max_scroll);
    let more = if scroll < max_scroll {
        " ↓ more "
    } else {
        ""
    };
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(" Keys ", theme::title(app)))
        .title_bottom(Line::from(format!(" any key closes{more}")).right_aligned());
    frame.render_widget(Paragraph::new(all).block(block).scroll((scroll, 0)), r);
}

#[cfg(test)]
mod tests {
    //! Help and handlers must agree: for each situation (screen, popup, tab) every key or mouse
    //! event that changes anything must be listed in a help section that applies there, and
    //! every listed key must do something in at least one situation its section covers.

    use std::collections::{BTreeMap, BTreeSet};

    use chrono::{DateTime, FixedOffset, Utc};
    use emo_api_types::{
        AuditEntry, Emotion, Modality, Page, Role, Sample, Session, SessionStatus, User,
    };
    use ratatui::crossterm::event::{
        KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
    };
    use uuid::Uuid;

    use super::KEYS;
    use crate::app::{App, DashTab, Msg, Screen};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Ev {
        Key(KeyEvent),
        Mouse(MouseEvent),
    }

    fn key(code: KeyCode, m: KeyModifiers) -> Ev {
        Ev::Key(KeyEvent::new(code, m))
    }

    fn mouse(kind: MouseEventKind, column: u16, row: u16) -> Ev {
        Ev::Mouse(MouseEvent {
            kind,
            column,
            row,
            modifiers: KeyModifiers::NONE,
        })
    }

    /// A click on the second dashboard tab.
    fn tab_click() -> Ev {
        mouse(MouseEventKind::Down(MouseButton::Left), 15, 2)
    }

    /// The events a key name of [`KEYS`] stands for; panics on a name it does not know, so a
    /// typo in the table fails the test.
    fn events(token: &str) -> Vec<Ev> {
        let none = KeyModifiers::NONE;
        let code = match token {
            "Wheel" => {
                return vec![
                    mouse(MouseEventKind::ScrollDown, 5, 5),
                    mouse(MouseEventKind::ScrollUp, 5, 5),
                ]
            }
            "Click" => return vec![tab_click()],
            "1-4" => return ('1'..='4').map(|c| key(KeyCode::Char(c), none)).collect(),
            "Shift-Tab" => return vec![key(KeyCode::BackTab, KeyModifiers::SHIFT)],
            "Tab" => KeyCode::Tab,
            "Enter" => KeyCode::Enter,
            "Esc" => KeyCode::Esc,
            "Backspace" => KeyCode::Backspace,
            "Home" => KeyCode::Home,
            "End" => KeyCode::End,
            "PgUp" => KeyCode::PageUp,
            "PgDn" => KeyCode::PageDown,
            "↑" => KeyCode::Up,
            "↓" => KeyCode::Down,
            "←" => KeyCode::Left,
            "→" => KeyCode::Right,
            t if t.starts_with("Ctrl-") && t.chars().count() == 6 => {
                let c = t.chars().last().unwrap().to_ascii_lowercase();
                return vec![key(KeyCode::Char(c), KeyModifiers::CONTROL)];
            }
            t if t.starts_with('F') && t.len() > 1 => KeyCode::F(t[1..].parse().unwrap()),
            t if t.chars().count() == 1 => KeyCode::Char(t.chars().next().unwrap()),
            t => panic!("unknown key name {t:?} in help::KEYS"),
        };
        vec![key(code, none)]
    }

    /// Every event the test tries in every situation.
    fn probes() -> Vec<Ev> {
        let mut v = Vec::new();
        for c in ' '..='~' {
            v.push(key(KeyCode::Char(c), KeyModifiers::NONE));
        }
        for c in 'a'..='z' {
            v.push(key(KeyCode::Char(c), KeyModifiers::CONTROL));
            v.push(key(KeyCode::Char(c), KeyModifiers::ALT));
        }
        for code in [
            KeyCode::Enter,
            KeyCode::Esc,
            KeyCode::Backspace,
            KeyCode::Tab,
            KeyCode::Up,
            KeyCode::Down,
            KeyCode::Left,
            KeyCode::Right,
            KeyCode::Home,
            KeyCode::End,
            KeyCode::PageUp,
            KeyCode::PageDown,
            KeyCode::Delete,
            KeyCode::Insert,
        ] {
            v.push(key(code, KeyModifiers::NONE));
        }
        v.push(key(KeyCode::BackTab, KeyModifiers::SHIFT));
        for n in 1..=12 {
            v.push(key(KeyCode::F(n), KeyModifiers::NONE));
        }
        v.extend([
            mouse(MouseEventKind::ScrollDown, 5, 5),
            mouse(MouseEventKind::ScrollUp, 5, 5),
            tab_click(),
            mouse(MouseEventKind::Down(MouseButton::Left), 0, 0),
            mouse(MouseEventKind::Down(MouseButton::Right), 15, 2),
            mouse(MouseEventKind::Moved, 15, 2),
        ]);
        v
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn app() -> App {
        App::new(
            "http://127.0.0.1:7878",
            true,
            t("2026-03-10T12:00:00Z"),
            FixedOffset::east_opt(0).unwrap(),
        )
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

    fn session(n: u128, status: SessionStatus) -> Session {
        Session {
            id: Uuid::from_u128(n),
            user_id: Uuid::nil(),
            username: "ann".into(),
            status,
            started_at: t("2026-03-09T09:00:00Z"),
            ended_at: None,
            consent_at: t("2026-03-09T09:00:00Z"),
            sources: vec![],
            label: None,
            summary: None,
        }
    }

    fn page<T>(items: Vec<T>, total: u64, offset: u64) -> Page<T> {
        Page {
            items,
            total,
            offset,
            limit: 100,
            next_offset: None,
        }
    }

    /// An admin on the agent view with three past sessions, the middle one selected.
    fn agent_view() -> App {
        let mut a = app();
        a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
        a.screen = Screen::Agent;
        a.on_msg(Msg::MySessions(Ok(page(
            (1..=3)
                .map(|n| session(n, SessionStatus::Stopped))
                .collect(),
            3,
            0,
        ))));
        a.agent.selected = 1;
        a
    }

    /// An admin on the dashboard, on `tab`, with sessions, users and a long audit log.
    fn dashboard(tab: DashTab) -> App {
        let mut a = app();
        a.on_msg(Msg::Me(Ok(user("root", Role::Admin))));
        a.on_msg(Msg::Users(Ok(vec![
            user("ann", Role::Agent),
            user("bob", Role::Agent),
        ])));
        a.dash.sessions = (1..=3)
            .map(|n| session(n, SessionStatus::Stopped))
            .collect();
        a.dash.selected = 1;
        a.dash.audit = (0..3)
            .map(|i| AuditEntry {
                id: Uuid::from_u128(i),
                at: t("2026-03-10T11:00:00Z"),
                actor: "root".into(),
                action: "read".into(),
                target_user: None,
                detail: String::new(),
            })
            .collect();
        a.dash.audit_selected = 1;
        a.dash.audit_offset = 100;
        a.dash.audit_total = 300;
        a.dash.tab = tab;
        a
    }

    type Situation = (&'static str, fn() -> App, &'static [&'static str]);

    /// Every situation (screen, popup, tab) with the help sections that apply to it.
    fn situations() -> Vec<Situation> {
        vec![
            (
                "connecting",
                || {
                    let mut a = app();
                    a.resume("tok".into());
                    a
                },
                &["Everywhere", "Mouse", "Connecting"],
            ),
            (
                "login",
                || {
                    let mut a = app();
                    a.start_at_login();
                    a.login.username.value = "ann".into();
                    a.login.password.value = "pw".into();
                    a.login.focus = 1;
                    a
                },
                &["Everywhere", "Mouse", "Login", "Fields"],
            ),
            (
                "register",
                || {
                    let mut a = app();
                    a.start_at_login();
                    a.on_key(KeyEvent::new(KeyCode::F(2), KeyModifiers::NONE));
                    a.register.username.value = "ann".into();
                    a
                },
                &["Everywhere", "Mouse", "Register", "Fields"],
            ),
            (
                "my sessions",
                agent_view,
                &["Everywhere", "Mouse", "My sessions"],
            ),
            (
                "my sessions, recording",
                || {
                    let mut a = agent_view();
                    a.agent.running = Some(session(9, SessionStatus::Running));
                    a
                },
                &["Everywhere", "Mouse", "My sessions"],
            ),
            (
                "consent",
                || {
                    let mut a = agent_view();
                    a.agent.consent_open = true;
                    a
                },
                &["Everywhere", "Mouse", "Consent"],
            ),
            (
                "dashboard overview",
                || dashboard(DashTab::Overview),
                &["Everywhere", "Mouse", "Dashboard"],
            ),
            (
                "dashboard heatmap",
                || dashboard(DashTab::Heatmap),
                &["Everywhere", "Mouse", "Dashboard"],
            ),
            (
                "dashboard sessions",
                || dashboard(DashTab::Sessions),
                &["Everywhere", "Mouse", "Dashboard"],
            ),
            (
                "dashboard audit",
                || dashboard(DashTab::Audit),
                &["Everywhere", "Mouse", "Dashboard"],
            ),
            (
                "filter form",
                || {
                    let mut a = dashboard(DashTab::Overview);
                    a.dash.form.open = true;
                    a.dash.form.agent.value = "ann".into();
                    a
                },
                &["Everywhere", "Mouse", "Filters", "Fields"],
            ),
            (
                "export prompt",
                || {
                    let mut a = dashboard(DashTab::Overview);
                    a.on_key(KeyEvent::new(KeyCode::Char('e'), KeyModifiers::NONE));
                    a
                },
                &["Everywhere", "Mouse", "Export", "Fields"],
            ),
            (
                "session",
                || {
                    let mut a = agent_view();
                    a.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
                    let s = session(2, SessionStatus::Stopped);
                    let samples = [Modality::Fused, Modality::Face]
                        .into_iter()
                        .map(|m| Sample {
                            session_id: s.id,
                            t: s.started_at,
                            modality: m,
                            emotion: Emotion::Happy,
                            confidence: 0.9,
                            probabilities: BTreeMap::new(),
                        })
                        .collect();
                    a.on_msg(Msg::SessionDetail(Ok((s, samples))));
                    assert_eq!(a.screen, Screen::Detail);
                    assert!(a.detail.session.is_some());
                    a
                },
                &["Everywhere", "Mouse", "Session"],
            ),
            (
                "help",
                || {
                    let mut a = agent_view();
                    a.show_help = true;
                    a.help_scroll = 5;
                    a
                },
                &["Everywhere", "Mouse", "Help"],
            ),
        ]
    }

    /// Everything a key can change, as text.
    fn state(a: &App) -> String {
        format!(
            "{:?}",
            (
                a.screen,
                &a.status,
                a.show_help,
                a.help_scroll,
                a.should_quit,
                &a.login,
                &a.register,
                &a.agent,
                &a.detail,
                &a.dash,
                a.login_in_flight,
            )
        )
    }

    /// Sends `ev` to a fresh copy of a situation; true if it changed anything or sent a
    /// command. In the help overlay, closing it is what "any other key" does, not an effect.
    fn has_effect(make: fn() -> App, ev: Ev) -> bool {
        let mut a = make();
        let before = state(&a);
        let help = a.show_help;
        let cmds = match ev {
            Ev::Key(k) => a.on_key(k),
            Ev::Mouse(m) => a.on_mouse(m),
        };
        if help && !a.show_help {
            return false;
        }
        !cmds.is_empty() || state(&a) != before
    }

    /// Plain typing in a text field: what "other keys type" covers.
    fn is_text(a: &App, ev: &Ev) -> bool {
        matches!(ev, Ev::Key(k) if a.typing()
            && !a.show_help
            && matches!(k.code, KeyCode::Char(_))
            && !k.modifiers.contains(KeyModifiers::CONTROL))
    }

    fn documented(sections: &[&str]) -> Vec<Ev> {
        KEYS.iter()
            .filter(|e| sections.contains(&e.section))
            .flat_map(|e| e.keys.iter().flat_map(|k| events(k)))
            .collect()
    }

    #[test]
    fn every_key_that_does_something_is_in_the_help() {
        let probes = probes();
        let mut missing = Vec::new();
        for (name, make, sections) in situations() {
            let doc = documented(sections);
            let a = make();
            for ev in &probes {
                if is_text(&a, ev) || doc.contains(ev) {
                    continue;
                }
                if has_effect(make, *ev) {
                    missing.push(format!("{name}: {ev:?}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "keys that act but are not in help::KEYS:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn every_key_in_the_help_does_something_where_it_says() {
        let sits = situations();
        let sections: BTreeSet<&str> = KEYS.iter().map(|e| e.section).collect();
        for s in &sections {
            assert!(
                sits.iter().any(|(_, _, secs)| secs.contains(s)),
                "no test situation covers help section {s}"
            );
        }
        let mut dead = Vec::new();
        for e in KEYS {
            for token in e.keys {
                for ev in events(token) {
                    let works = sits
                        .iter()
                        .filter(|(_, _, secs)| secs.contains(&e.section))
                        .any(|(_, make, _)| has_effect(*make, ev));
                    if !works {
                        dead.push(format!("{} {token} ({ev:?}): {}", e.section, e.action));
                    }
                }
            }
        }
        assert!(
            dead.is_empty(),
            "listed in help::KEYS but without effect:\n{}",
            dead.join("\n")
        );
    }

    #[test]
    fn key_names_are_known_and_rows_fit_the_overlay() {
        for e in KEYS {
            assert!(!e.keys.is_empty(), "{e:?}");
            for k in e.keys {
                assert!(!events(k).is_empty());
            }
            // The overlay is 78 wide: 2 borders, 2 indent, 19 keys, 1 space, the action.
            let width = super::keys_text(e).chars().count().max(19) + 3 + e.action.chars().count();
            assert!(width <= 76, "help row too wide to show in full: {e:?}");
        }
        for d in super::DATES {
            assert!(d.chars().count() + 2 <= 76, "{d}");
        }
    }
}
