//! Bottom line: the last message (errors in red) and a busy marker while requests are in flight.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::{App, StatusKind};
use crate::shaping;
use crate::ui::theme;

const SPINNER: [char; 4] = ['|', '/', '-', '\\'];

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let mut spans = Vec::new();
    if app.pending > 0 {
        spans.push(Span::styled(
            format!("{} ", SPINNER[(app.tick as usize) % SPINNER.len()]),
            theme::accent(app),
        ));
    }
    let width = area.width as usize;
    match &app.status {
        Some(s) => {
            let (prefix, style) = match s.kind {
                StatusKind::Error => ("Error: ", theme::error(app)),
                StatusKind::Ok => ("", theme::ok(app)),
                StatusKind::Info => ("", ratatui::style::Style::default()),
            };
            let text = shaping::ellipsize(&format!("{prefix}{}", s.text), width.saturating_sub(2));
            spans.push(Span::styled(text, style));
        }
        None => spans.push(Span::styled(
            "Press ? for help, q to quit.",
            theme::dim(app),
        )),
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
