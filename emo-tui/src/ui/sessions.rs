//! Dashboard sessions table (drill-down with Enter) and the row formatting shared with history.

use emo_api_types::{Session, SessionStatus};
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use crate::app::App;
use crate::shaping;
use crate::ui::theme;

pub const SESSION_HEADER: [&str; 7] = [
    "Started", "Agent", "Duration", "Status", "Dominant", "Samples", "Label",
];

pub fn duration_secs(app: &App, s: &Session) -> f64 {
    if let Some(sum) = &s.summary {
        if sum.duration_seconds > 0.0 {
            return sum.duration_seconds;
        }
    }
    let end = s.ended_at.unwrap_or(app.now);
    (end - s.started_at).num_milliseconds().max(0) as f64 / 1000.0
}

pub fn session_cells(app: &App, s: &Session, with_agent: bool) -> Vec<Cell<'static>> {
    let mut cells = vec![Cell::from(
        s.started_at
            .with_timezone(&app.tz)
            .format("%m-%d %H:%M")
            .to_string(),
    )];
    if with_agent {
        cells.push(Cell::from(shaping::ellipsize(&s.username, 12)));
    }
    cells.push(Cell::from(shaping::fmt_duration(duration_secs(app, s))));
    cells.push(match s.status {
        SessionStatus::Running => Cell::from(Span::styled("● running", theme::recording(app))),
        SessionStatus::Stopped => Cell::from("stopped"),
        SessionStatus::Interrupted => Cell::from(Span::styled("interrupted", theme::error(app))),
    });
    let dominant = s.summary.as_ref().and_then(|x| x.dominant);
    cells.push(match dominant {
        Some(e) => Cell::from(Span::styled(e.as_str(), theme::emotion(app, e))),
        None => Cell::from(Span::styled("—", theme::dim(app))),
    });
    let n: u64 = s
        .summary
        .as_ref()
        .map(|x| x.samples.values().sum())
        .unwrap_or(0);
    cells.push(Cell::from(if s.summary.is_some() {
        n.to_string()
    } else {
        "—".into()
    }));
    cells.push(Cell::from(s.label.clone().unwrap_or_default()));
    cells
}

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let d = &app.dash;
    let title = format!(
        " Sessions ({} of {}) · Enter: timeline ",
        d.sessions.len(),
        d.sessions_total
    );
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(title, theme::title(app)));
    if d.sessions.is_empty() {
        let msg = if d.distribution.is_some() {
            "No sessions match the filters."
        } else {
            "Loading…"
        };
        frame.render_widget(
            Paragraph::new(Line::styled(msg, theme::dim(app))).block(block),
            area,
        );
        return;
    }
    let rows: Vec<Row> = d
        .sessions
        .iter()
        .map(|s| Row::new(session_cells(app, s, true)))
        .collect();
    let widths = [
        Constraint::Length(11),
        Constraint::Length(12),
        Constraint::Length(8),
        Constraint::Length(11),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Min(4),
    ];
    let table = Table::new(rows, widths)
        .header(Row::new(SESSION_HEADER).style(theme::dim(app)))
        .block(block)
        .row_highlight_style(theme::selected(app))
        .highlight_symbol("▸ ");
    let mut st = TableState::default().with_selected(Some(d.selected));
    frame.render_stateful_widget(table, area, &mut st);
}
