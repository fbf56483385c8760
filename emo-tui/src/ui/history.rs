//! The agent's own session history with a per-session summary.

use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Block, BorderType, Row, Table, TableState};
use ratatui::Frame;

use crate::app::App;
use crate::ui::sessions::{session_cells, SESSION_HEADER};
use crate::ui::theme;

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let a = &app.agent;
    let title = format!(" My sessions ({}) ", a.total);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(title, theme::title(app)));
    if a.history.is_empty() {
        let msg = if a.loaded {
            "No sessions yet. Press s to start one."
        } else {
            "Loading…"
        };
        frame.render_widget(
            ratatui::widgets::Paragraph::new(Span::styled(msg, theme::dim(app))).block(block),
            area,
        );
        return;
    }
    let rows: Vec<Row> = a
        .history
        .iter()
        .map(|s| Row::new(session_cells(app, s, false)))
        .collect();
    let header =
        Row::new(SESSION_HEADER.iter().filter(|h| **h != "Agent").copied()).style(theme::dim(app));
    let widths = [
        Constraint::Length(11),
        Constraint::Length(8),
        Constraint::Length(11),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Min(5),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(theme::selected(app))
        .highlight_symbol("▸ ");
    let mut st = TableState::default().with_selected(Some(a.selected));
    frame.render_stateful_widget(table, area, &mut st);
}
