//! Rendering. One file per screen or widget; each exposes a plain `render(frame, app, area)`.

pub mod agent;
pub mod audit;
pub mod consent;
pub mod dashboard;
pub mod detail;
pub mod distribution;
pub mod export;
pub mod filters;
pub mod header;
pub mod heatmap;
pub mod help;
pub mod history;
pub mod live;
pub mod login;
pub mod register;
pub mod sessions;
pub mod sparklines;
pub mod status;
pub mod theme;

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::Frame;

use crate::app::{App, Hits, Screen};

/// Draws the whole UI for the current state and returns where it drew what the mouse can click
/// (the event loop hands it to [`App::on_mouse`] through [`App::hits`]).
pub fn draw(frame: &mut Frame, app: &App) -> Hits {
    let mut hits = Hits::default();
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    header::render(frame, app, head);
    match app.screen {
        Screen::Connecting | Screen::Login => login::render(frame, app, body),
        Screen::Register => register::render(frame, app, body),
        Screen::Agent => agent::render(frame, app, body),
        Screen::Dashboard => hits.tabs = dashboard::render(frame, app, body),
        Screen::Detail => detail::render(frame, app, body),
    }
    status::render(frame, app, foot);
    if app.show_help {
        help::render(frame, app, frame.area());
    }
    hits
}

/// A centred rectangle of at most `w`×`h` inside `area`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let [v] = Layout::vertical([Constraint::Length(h.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [r] = Layout::horizontal([Constraint::Length(w.min(area.width))])
        .flex(Flex::Center)
        .areas(v);
    r
}
