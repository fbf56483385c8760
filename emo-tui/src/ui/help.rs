//! The `?` overlay: every key, by screen. [`KEYS`] is the single list the README mirrors.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};
use ratatui::Frame;

use crate::app::App;
use crate::ui::{centered, theme};

/// (screen, keys, action)
pub const KEYS: &[(&str, &str, &str)] = &[
    (
        "Everywhere",
        "? / F1",
        "this help (↑/↓ scroll, any other key closes)",
    ),
    (
        "Everywhere",
        "Ctrl-C",
        "quit (a running session keeps running in emod)",
    ),
    ("Everywhere", "q", "quit (not while typing in a field)"),
    ("Everywhere", "L", "log out (forgets the saved token)"),
    (
        "Login",
        "Tab / ↑ / ↓",
        "switch between username and password",
    ),
    ("Login", "Enter", "next field / log in"),
    (
        "Login",
        "F2 / Ctrl-R",
        "create an agent account (self-registration)",
    ),
    ("Login", "Esc", "quit"),
    (
        "Register",
        "Tab / Enter",
        "next field / create the account and log in",
    ),
    ("Register", "Esc", "back to login"),
    (
        "Fields",
        "Backspace / Ctrl-U",
        "delete a character / clear the field",
    ),
    (
        "My sessions",
        "s",
        "start a session (asks for consent first)",
    ),
    (
        "My sessions",
        "y / n",
        "in the consent prompt: consent and start / cancel",
    ),
    ("My sessions", "x", "stop the running session"),
    ("My sessions", "↑ ↓ j k g G", "select a past session"),
    ("My sessions", "Enter", "open the session's timeline"),
    ("My sessions", "r", "refresh"),
    ("My sessions", "d / Tab", "admin dashboard (admins)"),
    (
        "Dashboard",
        "1-4 / Tab / ← →",
        "tabs: overview, heatmap, sessions, audit log",
    ),
    (
        "Dashboard",
        "f or /",
        "edit filters: agent, from, to, emotion, modality",
    ),
    ("Dashboard", "c", "clear filters"),
    (
        "Dashboard",
        "m",
        "heatmap: switch agent×emotion / weekday×hour",
    ),
    ("Dashboard", "↑ ↓ j k", "select a session / audit entry"),
    (
        "Dashboard",
        "Enter",
        "sessions tab: open the session's timeline",
    ),
    (
        "Dashboard",
        "PgDn PgUp / n p",
        "audit tab: next / previous page",
    ),
    (
        "Dashboard",
        "e",
        "export the filtered samples to a CSV file",
    ),
    ("Dashboard", "a", "my own sessions (agent view)"),
    ("Dashboard", "r", "refresh"),
    ("Filters", "Tab / ↑ / ↓", "next / previous field"),
    ("Filters", "← →", "pick an agent, emotion or modality"),
    ("Filters", "Enter / Esc", "apply / cancel"),
    (
        "Filters",
        "dates",
        "2026-01-31, 2026-01-31 14:00, today, yesterday, -24h, -7d, empty = open",
    ),
    ("Export", "Enter / Esc", "write the file / cancel"),
    ("Session", "m", "switch modality (fused, face, voice)"),
    ("Session", "Esc / ← / h", "back"),
    ("Session", "r", "reload"),
];

pub fn lines(app: &App) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let mut last = "";
    for (screen, keys, action) in KEYS {
        if *screen != last {
            if !last.is_empty() {
                out.push(Line::raw(""));
            }
            out.push(Line::from(Span::styled(
                screen.to_string(),
                theme::title(app),
            )));
            last = screen;
        }
        out.push(Line::from(vec![
            Span::styled(format!("  {keys:<19} "), theme::key(app)),
            Span::raw(action.to_string()),
        ]));
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
