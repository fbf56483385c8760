//! Agent self-registration (the server may have it switched off: registration_closed).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph, Wrap};
use ratatui::Frame;

use crate::app::App;
use crate::ui::login::field_line;
use crate::ui::{centered, theme};

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let r = centered(area, 60, 13);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(" Create an agent account ", theme::title(app)));
    let f = &app.register;
    let lines = vec![
        crate::ui::login::server_line(app),
        Line::raw(""),
        field_line(app, "Username", &f.username, false, f.focus == 0),
        field_line(app, "Password", &f.password, true, f.focus == 1),
        field_line(app, "Repeat", &f.confirm, true, f.focus == 2),
        Line::raw(""),
        Line::from(vec![
            Span::styled("Enter", theme::key(app)),
            Span::raw(" next / create  "),
            Span::styled("Esc", theme::key(app)),
            Span::raw(" back to login"),
        ]),
    ];
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        r,
    );
}
