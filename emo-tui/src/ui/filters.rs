//! The filter bar (always visible on the dashboard) and the filter form popup.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};
use ratatui::Frame;

use crate::app::{App, FILTER_FIELDS};
use crate::ui::login::field_line;
use crate::ui::{centered, theme};

/// One line summarising the filter in force.
pub fn summary(app: &App) -> String {
    let q = &app.dash.query;
    let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| {
            let l = t.with_timezone(&app.tz);
            if l.time() == chrono::NaiveTime::MIN {
                l.format("%Y-%m-%d").to_string()
            } else {
                l.format("%Y-%m-%d %H:%M").to_string()
            }
        })
        .unwrap_or_else(|| "…".into())
    };
    format!(
        "agent {} · {} → {} · emotion {} · {}",
        q.agent.as_deref().unwrap_or("all"),
        fmt(q.from),
        fmt(q.to),
        q.emotion.map(|e| e.as_str()).unwrap_or("any"),
        q.modality.map(|m| m.as_str()).unwrap_or("fused"),
    )
}

pub fn render_bar(frame: &mut Frame, app: &App, area: Rect) {
    let line = Line::from(vec![
        Span::styled("Filter ", theme::title(app)),
        Span::raw(summary(app)),
        Span::styled("  f", theme::key(app)),
        Span::raw(" edit "),
        Span::styled("e", theme::key(app)),
        Span::raw(" export"),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

const HINTS: [&str; 5] = [
    "← → pick, or type a username; empty = all",
    "e.g. -7d, today, 2026-03-01, 2026-03-01 09:00",
    "exclusive; a bare date means the end of that day",
    "← → pick, or type; empty = any",
    "← → fused, face or voice",
];

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let f = &app.dash.form;
    let r = centered(area, 70, 12);
    frame.render_widget(Clear, r);
    let mut lines = Vec::new();
    for (i, name) in FILTER_FIELDS.iter().enumerate() {
        lines.push(field_line(app, name, f.field(i), false, f.focus == i));
        if f.focus == i {
            lines.push(Line::from(Span::styled(
                format!("            {}", HINTS[i]),
                theme::dim(app),
            )));
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled("Enter", theme::key(app)),
        Span::raw(" apply  "),
        Span::styled("Tab", theme::key(app)),
        Span::raw(" next field  "),
        Span::styled("Ctrl-U", theme::key(app)),
        Span::raw(" clear field  "),
        Span::styled("Esc", theme::key(app)),
        Span::raw(" cancel"),
    ]));
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(" Filters ", theme::title(app)));
    frame.render_widget(Paragraph::new(lines).block(block), r);
}
