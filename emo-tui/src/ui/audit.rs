//! The audit log (admin): who read or changed what.

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use crate::app::App;
use crate::ui::theme;

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let d = &app.dash;
    let first = if d.audit.is_empty() {
        0
    } else {
        d.audit_offset + 1
    };
    let title = format!(
        " Audit log ({first}-{} of {}) · PgDn/PgUp pages ",
        d.audit_offset + d.audit.len() as u64,
        d.audit_total
    );
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(title, theme::title(app)));
    if d.audit.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled(
                "No audit entries (or still loading).",
                theme::dim(app),
            ))
            .block(block),
            area,
        );
        return;
    }
    let rows: Vec<Row> = d
        .audit
        .iter()
        .map(|e| {
            Row::new(vec![
                e.at.with_timezone(&app.tz)
                    .format("%m-%d %H:%M:%S")
                    .to_string(),
                e.actor.clone(),
                e.action.clone(),
                e.target_user.clone().unwrap_or_default(),
                e.detail.clone(),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(14),
        Constraint::Length(10),
        Constraint::Length(16),
        Constraint::Length(10),
        Constraint::Min(10),
    ];
    let table = Table::new(rows, widths)
        .header(Row::new(["At", "Actor", "Action", "Target", "Detail"]).style(theme::dim(app)))
        .block(block)
        .row_highlight_style(theme::selected(app));
    let mut st = TableState::default().with_selected(Some(d.audit_selected));
    frame.render_stateful_widget(table, area, &mut st);
}
