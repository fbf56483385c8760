//! Top line: product, server, user, and the session's capture state (visible on every screen,
//! the same word as the agent's session line).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::{App, Screen};
use crate::shaping;
use crate::ui::theme;

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let mut spans = vec![Span::styled(" EMO ", theme::title(app))];
    let place = match app.screen {
        Screen::Connecting => "connecting",
        Screen::Login => "login",
        Screen::Register => "register",
        Screen::Agent => "my sessions",
        Screen::Dashboard => "dashboard",
        Screen::Detail => "session",
    };
    spans.push(Span::raw(format!("│ {place} ")));
    if let Some(u) = &app.user {
        spans.push(Span::styled(
            format!("│ {} ({}) ", u.username, u.role),
            theme::dim(app),
        ));
    }
    let server = shaping::ellipsize(&app.server, 28);
    spans.push(Span::styled(format!("│ {server} "), theme::dim(app)));
    let left = Line::from(spans);

    let right = match (&app.agent.running, app.agent.capture_state()) {
        (Some(s), Some(state)) => {
            let secs = (app.now - s.started_at).num_seconds().max(0) as f64;
            let mut badge = crate::ui::agent::capture_badge(app, state);
            badge.content = format!("{}{} ", badge.content, shaping::fmt_duration(secs)).into();
            Line::from(badge)
        }
        _ => Line::from(Span::styled("? help ", theme::dim(app))),
    };
    let rw = right.width() as u16;
    let left_area = Rect {
        width: area.width.saturating_sub(rw),
        ..area
    };
    frame.render_widget(Paragraph::new(left), left_area);
    if area.width > rw {
        let r = Rect {
            x: area.x + area.width - rw,
            width: rw,
            ..area
        };
        frame.render_widget(Paragraph::new(right), r);
    }
}
