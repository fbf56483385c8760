//! The export prompt: where to write the filtered samples as CSV.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};
use ratatui::Frame;

use crate::app::App;
use crate::ui::filters::summary;
use crate::ui::login::field_line;
use crate::ui::{centered, theme};

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let Some(input) = &app.dash.export_prompt else {
        return;
    };
    let r = centered(area, 74, 8);
    frame.render_widget(Clear, r);
    let lines = vec![
        Line::from(Span::styled(
            format!("Samples matching: {}", summary(app)),
            theme::dim(app),
        )),
        Line::raw(""),
        field_line(app, "CSV file", input, false, true),
        Line::raw(""),
        Line::from(vec![
            Span::styled("Enter", theme::key(app)),
            Span::raw(" write  "),
            Span::styled("Esc", theme::key(app)),
            Span::raw(" cancel"),
        ]),
    ];
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(" Export to CSV ", theme::title(app)));
    frame.render_widget(Paragraph::new(lines).block(block), r);
}
