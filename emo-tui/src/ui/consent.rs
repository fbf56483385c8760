//! The consent prompt shown before a session starts.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};
use ratatui::Frame;

use crate::app::App;
use crate::ui::{centered, theme};

pub const TEXT: &[&str] = &[
    "While a session runs, EMO estimates your facial and vocal expression (angry, disgust, fear, happy, sad, surprise, neutral) about once a second.",
    "Stored: only the estimates (time, emotion, confidence, probabilities), linked to your account. Admins can review them.",
    "Never stored or sent: images, video or audio. Frames and sound stay in the daemon's memory and are discarded.",
    "You can stop at any time with x.",
];

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let r = centered(area, 76, 18);
    frame.render_widget(Clear, r);
    let mut lines = Vec::new();
    for (i, t) in TEXT.iter().enumerate() {
        if i > 0 {
            lines.push(Line::raw(""));
        }
        lines.push(Line::raw(*t));
    }
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled("Sources: ", theme::dim(app)),
        Span::raw(app.sources.join(", ")),
    ]));
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled("y", theme::key(app)),
        Span::styled(" I consent, start recording    ", theme::accent(app)),
        Span::styled("n", theme::key(app)),
        Span::raw(" / "),
        Span::styled("Esc", theme::key(app)),
        Span::raw(" cancel"),
    ]));
    let block = Block::bordered()
        .border_type(BorderType::Double)
        .title(Span::styled(
            " Consent: start an EMO session? ",
            theme::accent(app),
        ));
    frame.render_widget(
        Paragraph::new(lines).block(block).wrap(Wrap { trim: true }),
        r,
    );
}
