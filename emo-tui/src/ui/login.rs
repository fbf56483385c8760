//! Login screen (also shown, read-only, while a saved token is checked).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph, Wrap};
use ratatui::Frame;

use crate::app::{App, Input, Screen};
use crate::ui::{centered, theme};

/// One form row: `label: value▏` with the focused row highlighted.
pub fn field_line(
    app: &App,
    label: &str,
    input: &Input,
    masked: bool,
    focused: bool,
) -> Line<'static> {
    let value = if masked {
        input.masked()
    } else {
        input.value.clone()
    };
    let label_style = if focused {
        theme::focused(app)
    } else {
        theme::dim(app)
    };
    let marker = if focused { "▸ " } else { "  " };
    let cursor = if focused { "▏" } else { "" };
    Line::from(vec![
        Span::styled(format!("{marker}{label:<10}"), label_style),
        Span::raw(value),
        Span::styled(cursor.to_string(), theme::focused(app)),
    ])
}

/// `Server URL · emod 0.1.0 (ok)` or `· not reachable`, from the health check.
pub fn server_line(app: &App) -> Line<'static> {
    let mut spans = vec![Span::styled(
        format!("Server {}", app.server),
        theme::dim(app),
    )];
    match &app.server_info {
        Some(Ok(v)) => spans.push(Span::styled(format!(" · {v}"), theme::ok(app))),
        Some(Err(_)) => spans.push(Span::styled(" · not reachable", theme::error(app))),
        None => {}
    }
    Line::from(spans)
}

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let r = centered(area, 60, 12);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(" Log in to EMO ", theme::title(app)));
    let mut lines = vec![server_line(app), Line::raw("")];
    if app.screen == Screen::Connecting {
        lines.push(Line::raw("Checking the saved login…"));
        lines.push(Line::raw(""));
        lines.push(Line::from(Span::styled("Esc quit", theme::dim(app))));
    } else {
        let f = &app.login;
        lines.push(field_line(
            app,
            "Username",
            &f.username,
            false,
            f.focus == 0,
        ));
        lines.push(field_line(app, "Password", &f.password, true, f.focus == 1));
        lines.push(Line::raw(""));
        lines.push(Line::from(vec![
            Span::styled("Enter", theme::key(app)),
            Span::raw(" log in  "),
            Span::styled("F2", theme::key(app)),
            Span::raw(" new agent account  "),
            Span::styled("Esc", theme::key(app)),
            Span::raw(" quit"),
        ]));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        r,
    );
}
