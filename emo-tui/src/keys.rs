//! Key bindings as data. Each table below lists, for one screen or popup, which key does
//! which [`Action`] and what the `?` help says about it. The key handlers in [`crate::app`] ask
//! [`action`] which action a key stands for in the table of the place the user is in, and
//! [`crate::ui::help`] renders the same tables: a key cannot act without being in the help.
//!
//! Key names are atomic tokens: a character (`q`, `G`, `/`), a range (`1-4`), `Ctrl-X`,
//! `Shift-Tab`, `Tab`, `Enter`, `Esc`, `Backspace`, `Home`, `End`, `PgUp`, `PgDn`, `F1`,
//! arrows (`↑ ↓ ← →`), and for the mouse `Wheel` and `Click` (documentation only: the mouse
//! handler acts on them).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key does. One screen's handler matches on the actions of its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ShowHelp,
    Quit,
    Logout,
    Up,
    Down,
    PageUp,
    PageDown,
    First,
    Last,
    /// Mouse rows of the help; the mouse handler implements them.
    Mouse,
    NextField,
    PrevField,
    Submit,
    Cancel,
    OpenRegister,
    DeleteChar,
    ClearField,
    StartSession,
    StopSession,
    Open,
    Refresh,
    OpenDashboard,
    Consent,
    /// `1-4`: the tab is the digit typed.
    GoTab,
    NextTab,
    PrevTab,
    EditFilters,
    ClearFilters,
    SwitchHeatmap,
    Export,
    AgentView,
    PickPrev,
    PickNext,
    SwitchModality,
    Back,
}

/// One row of the help: keys with the action each stands for, and what the row says.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub keys: &'static [(&'static str, Action)],
    pub help: &'static str,
}

/// A table: the help section it is shown under and its rows.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub section: &'static str,
    pub rows: &'static [Row],
}

use Action as A;

const fn row(keys: &'static [(&'static str, Action)], help: &'static str) -> Row {
    Row { keys, help }
}

/// Anywhere, also in text fields (`?` only outside them).
pub const GLOBAL: Table = Table {
    section: "Everywhere",
    rows: &[
        row(
            &[("?", A::ShowHelp), ("F1", A::ShowHelp)],
            "this help (? not while typing in a field)",
        ),
        row(
            &[("Ctrl-C", A::Quit), ("Ctrl-Q", A::Quit)],
            "quit (a running session keeps running in emod)",
        ),
    ],
};

/// The logged-in screens outside text fields and popups.
pub const COMMON: Table = Table {
    section: "Everywhere",
    rows: &[
        row(&[("q", A::Quit)], "quit (not while typing in a field)"),
        row(
            &[("L", A::Logout)],
            "log out, forget the saved login (once logged in)",
        ),
    ],
};

/// While the help is open; any other key closes it.
pub const HELP: Table = Table {
    section: "Help",
    rows: &[
        row(
            &[("↑", A::Up), ("↓", A::Down), ("j", A::Down), ("k", A::Up)],
            "scroll this help",
        ),
        row(
            &[("PgUp", A::PageUp), ("PgDn", A::PageDown)],
            "scroll ten lines; any other key closes the help",
        ),
    ],
};

pub const MOUSE: Table = Table {
    section: "Mouse",
    rows: &[
        row(
            &[("Wheel", A::Mouse)],
            "scroll a list or this help (not in a form)",
        ),
        row(
            &[("Click", A::Mouse)],
            "on a dashboard tab: switch to that tab",
        ),
    ],
};

pub const CONNECTING: Table = Table {
    section: "Connecting",
    rows: &[row(
        &[("Esc", A::Quit), ("q", A::Quit)],
        "quit while the saved login is checked",
    )],
};

pub const LOGIN: Table = Table {
    section: "Login",
    rows: &[
        row(
            &[
                ("Tab", A::NextField),
                ("Shift-Tab", A::PrevField),
                ("↑", A::PrevField),
                ("↓", A::NextField),
            ],
            "switch between username and password",
        ),
        row(&[("Enter", A::Submit)], "next field / log in"),
        row(
            &[("F2", A::OpenRegister), ("Ctrl-R", A::OpenRegister)],
            "create an agent account (self-registration)",
        ),
        row(&[("Esc", A::Quit)], "quit"),
    ],
};

pub const REGISTER: Table = Table {
    section: "Register",
    rows: &[
        row(&[("Tab", A::NextField), ("↓", A::NextField)], "next field"),
        row(
            &[("Shift-Tab", A::PrevField), ("↑", A::PrevField)],
            "previous field",
        ),
        row(
            &[("Enter", A::Submit)],
            "next field / create the account and log in",
        ),
        row(&[("Esc", A::Back)], "back to login"),
    ],
};

/// Text fields; keys not in a field's table type.
pub const FIELDS: Table = Table {
    section: "Fields",
    rows: &[
        row(
            &[("Backspace", A::DeleteChar)],
            "delete the last character (other keys type)",
        ),
        row(&[("Ctrl-U", A::ClearField)], "clear the field"),
    ],
};

pub const MY_SESSIONS: Table = Table {
    section: "My sessions",
    rows: &[
        row(
            &[("s", A::StartSession)],
            "start a session (asks for consent first)",
        ),
        row(&[("x", A::StopSession)], "stop the running session"),
        row(
            &[("↑", A::Up), ("↓", A::Down), ("j", A::Down), ("k", A::Up)],
            "select a past session",
        ),
        row(
            &[
                ("g", A::First),
                ("G", A::Last),
                ("Home", A::First),
                ("End", A::Last),
            ],
            "first / last session",
        ),
        row(&[("Enter", A::Open)], "open the session's timeline"),
        row(&[("r", A::Refresh)], "refresh"),
        row(
            &[("d", A::OpenDashboard), ("Tab", A::OpenDashboard)],
            "admin dashboard (admins)",
        ),
    ],
};

pub const CONSENT: Table = Table {
    section: "Consent",
    rows: &[
        row(
            &[("y", A::Consent), ("Y", A::Consent)],
            "I consent: start the session",
        ),
        row(
            &[("n", A::Cancel), ("Esc", A::Cancel), ("q", A::Cancel)],
            "cancel, nothing is started",
        ),
    ],
};

pub const DASHBOARD: Table = Table {
    section: "Dashboard",
    rows: &[
        row(
            &[("1-4", A::GoTab)],
            "tabs: overview, heatmap, sessions, audit log",
        ),
        row(
            &[("Tab", A::NextTab), ("→", A::NextTab), ("l", A::NextTab)],
            "next tab",
        ),
        row(
            &[
                ("Shift-Tab", A::PrevTab),
                ("←", A::PrevTab),
                ("h", A::PrevTab),
            ],
            "previous tab",
        ),
        row(
            &[("f", A::EditFilters), ("/", A::EditFilters)],
            "edit filters: agent, from, to, emotion, modality",
        ),
        row(&[("c", A::ClearFilters)], "clear filters"),
        row(
            &[("m", A::SwitchHeatmap)],
            "heatmap: switch agent×emotion / weekday×hour",
        ),
        row(
            &[("↑", A::Up), ("↓", A::Down), ("j", A::Down), ("k", A::Up)],
            "select a session / audit entry",
        ),
        row(
            &[("Enter", A::Open)],
            "sessions tab: open the session's timeline",
        ),
        row(
            &[("PgDn", A::PageDown), ("n", A::PageDown)],
            "audit tab: next page",
        ),
        row(
            &[("PgUp", A::PageUp), ("p", A::PageUp)],
            "audit tab: previous page",
        ),
        row(
            &[("e", A::Export)],
            "export the filtered samples to a CSV file",
        ),
        row(&[("a", A::AgentView)], "my own sessions (agent view)"),
        row(&[("r", A::Refresh)], "refresh"),
    ],
};

pub const FILTERS: Table = Table {
    section: "Filters",
    rows: &[
        row(&[("Tab", A::NextField), ("↓", A::NextField)], "next field"),
        row(
            &[("Shift-Tab", A::PrevField), ("↑", A::PrevField)],
            "previous field",
        ),
        row(
            &[("←", A::PickPrev), ("→", A::PickNext)],
            "pick an agent, emotion or modality",
        ),
        row(&[("Enter", A::Submit)], "apply"),
        row(&[("Esc", A::Cancel)], "cancel"),
    ],
};

pub const EXPORT: Table = Table {
    section: "Export",
    rows: &[
        row(&[("Enter", A::Submit)], "write the file"),
        row(&[("Esc", A::Cancel)], "cancel"),
    ],
};

pub const SESSION: Table = Table {
    section: "Session",
    rows: &[
        row(
            &[("m", A::SwitchModality)],
            "switch modality (fused, face, voice)",
        ),
        row(
            &[
                ("Esc", A::Back),
                ("Backspace", A::Back),
                ("←", A::Back),
                ("h", A::Back),
            ],
            "back",
        ),
        row(&[("r", A::Refresh)], "reload"),
    ],
};

/// Every table in the order the help shows them.
pub const ALL: [&Table; 14] = [
    &GLOBAL,
    &COMMON,
    &HELP,
    &MOUSE,
    &CONNECTING,
    &LOGIN,
    &REGISTER,
    &FIELDS,
    &MY_SESSIONS,
    &CONSENT,
    &DASHBOARD,
    &FILTERS,
    &EXPORT,
    &SESSION,
];

/// The action `key` stands for in `table`, if any.
pub fn action(table: &Table, key: &KeyEvent) -> Option<Action> {
    table
        .rows
        .iter()
        .flat_map(|r| r.keys.iter())
        .find(|(token, _)| matches(token, key))
        .map(|(_, a)| *a)
}

/// Whether `key` is the key named `token`. Ctrl and Alt chords match only a `Ctrl-X` token
/// (Ctrl-S must not start a session); Shift is part of the character (`G`) or of `Shift-Tab`.
pub fn matches(token: &str, key: &KeyEvent) -> bool {
    let chord = key
        .modifiers
        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
    if let Some(c) = token.strip_prefix("Ctrl-") {
        let mut cs = c.chars();
        return match (cs.next(), cs.next()) {
            (Some(c), None) => {
                key.modifiers.contains(KeyModifiers::CONTROL)
                    && key.code == KeyCode::Char(c.to_ascii_lowercase())
            }
            _ => false,
        };
    }
    if chord {
        return false;
    }
    match code(token) {
        Some(Named::Code(c)) => key.code == c,
        Some(Named::Range(a, b)) => matches!(key.code, KeyCode::Char(c) if (a..=b).contains(&c)),
        None => false,
    }
}

enum Named {
    Code(KeyCode),
    Range(char, char),
}

/// The key a (non-Ctrl) token names; `None` for the mouse tokens and unknown names.
fn code(token: &str) -> Option<Named> {
    let c = match token {
        "Tab" => KeyCode::Tab,
        "Shift-Tab" => KeyCode::BackTab,
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
        t if t.starts_with('F') && t.len() > 1 => KeyCode::F(t[1..].parse().ok()?),
        t => {
            let cs: Vec<char> = t.chars().collect();
            return match cs[..] {
                [c] => Some(Named::Code(KeyCode::Char(c))),
                [a, '-', b] if a < b => Some(Named::Range(a, b)),
                _ => None,
            };
        }
    };
    Some(Named::Code(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tables consulted together in one place, in the order the handlers ask them.
    const PLACES: &[(&str, &[&Table])] = &[
        ("connecting", &[&GLOBAL, &CONNECTING]),
        ("login", &[&GLOBAL, &LOGIN, &FIELDS]),
        ("register", &[&GLOBAL, &REGISTER, &FIELDS]),
        ("my sessions", &[&GLOBAL, &COMMON, &MY_SESSIONS]),
        ("consent", &[&GLOBAL, &CONSENT]),
        ("dashboard", &[&GLOBAL, &COMMON, &DASHBOARD]),
        ("filters", &[&GLOBAL, &FILTERS, &FIELDS]),
        ("export", &[&GLOBAL, &EXPORT, &FIELDS]),
        ("session", &[&GLOBAL, &COMMON, &SESSION]),
        ("help", &[&HELP]),
    ];

    #[test]
    fn every_key_name_is_known_and_bound_once_where_it_applies() {
        for t in ALL {
            for r in t.rows {
                assert!(!r.keys.is_empty(), "{r:?}");
                for (k, a) in r.keys {
                    let mouse = matches!(*k, "Wheel" | "Click");
                    assert!(
                        mouse == (*a == Action::Mouse),
                        "{k}: mouse rows and only they"
                    );
                    assert!(
                        mouse || k.starts_with("Ctrl-") || code(k).is_some(),
                        "unknown key name {k:?} in keys::{}",
                        t.section
                    );
                }
            }
        }
        for (place, tables) in PLACES {
            let mut seen = std::collections::BTreeSet::new();
            for t in *tables {
                for (k, _) in t.rows.iter().flat_map(|r| r.keys.iter()) {
                    assert!(seen.insert(*k), "{place}: {k} is bound twice");
                }
            }
        }
        // Every table is consulted somewhere (the mouse one by the mouse handler).
        for t in ALL.iter().filter(|t| t.section != "Mouse") {
            assert!(
                PLACES
                    .iter()
                    .any(|(_, ts)| ts.iter().any(|x| std::ptr::eq(*x, *t))),
                "{} is in no place",
                t.section
            );
        }
    }

    #[test]
    fn keys_match_their_names_and_chords_only_ctrl_names() {
        let k = |c, m| KeyEvent::new(c, m);
        let none = KeyModifiers::NONE;
        assert_eq!(
            action(&COMMON, &k(KeyCode::Char('q'), none)),
            Some(Action::Quit)
        );
        assert_eq!(
            action(&COMMON, &k(KeyCode::Char('q'), KeyModifiers::ALT)),
            None
        );
        assert_eq!(
            action(&MY_SESSIONS, &k(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Action::Last)
        );
        assert_eq!(
            action(&MY_SESSIONS, &k(KeyCode::Char('s'), KeyModifiers::CONTROL)),
            None
        );
        assert_eq!(
            action(&LOGIN, &k(KeyCode::Char('r'), KeyModifiers::CONTROL)),
            Some(Action::OpenRegister)
        );
        assert_eq!(action(&LOGIN, &k(KeyCode::Char('r'), none)), None);
        assert_eq!(
            action(&LOGIN, &k(KeyCode::BackTab, KeyModifiers::SHIFT)),
            Some(Action::PrevField)
        );
        assert_eq!(
            action(&DASHBOARD, &k(KeyCode::Char('3'), none)),
            Some(Action::GoTab)
        );
        assert_eq!(action(&DASHBOARD, &k(KeyCode::Char('5'), none)), None);
        assert_eq!(
            action(&GLOBAL, &k(KeyCode::F(1), none)),
            Some(Action::ShowHelp)
        );
    }
}
