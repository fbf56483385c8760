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

/// What the daemon will really open, from `GET /devices` (or the requested sources when the
/// daemon could not say).
pub fn source_lines(app: &App) -> Vec<String> {
    let wants = |s: &str| app.sources.is_empty() || app.sources.iter().any(|x| x == s);
    if app.sources.iter().any(|s| s == "remote") {
        return vec!["nothing on the daemon: estimates come from your own capture client".into()];
    }
    let Some(d) = &app.agent.devices else {
        return vec![if app.sources.is_empty() {
            "the daemon's configured camera and microphone (asking it…)".into()
        } else {
            app.sources.join(", ")
        }];
    };
    let mut out = Vec::new();
    for (name, c) in [("camera", &d.camera), ("microphone", &d.microphone)] {
        if !wants(name) || (app.sources.is_empty() && c.configured.trim() == "none") {
            continue;
        }
        out.push(match &c.resolved {
            Some(r) => format!("{name}: {r}"),
            None => format!("{name}: none found on the daemon (starting will fail)"),
        });
    }
    if out.is_empty() {
        out.push("no camera or microphone is configured on the daemon".into());
    }
    out
}

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let r = centered(area, 76, 19);
    frame.render_widget(Clear, r);
    let mut lines = Vec::new();
    for (i, t) in TEXT.iter().enumerate() {
        if i > 0 {
            lines.push(Line::raw(""));
        }
        lines.push(Line::raw(*t));
    }
    lines.push(Line::raw(""));
    for l in source_lines(app) {
        lines.push(Line::from(vec![
            Span::styled("Will open: ", theme::dim(app)),
            Span::raw(l),
        ]));
    }
    lines.push(Line::raw(""));
    if !app.agent.consent_ready(app.now) {
        // The type-ahead guard: the answer keys are offered once the prompt has been seen.
        lines.push(Line::styled(
            "Read the above; y or n works in a moment.",
            theme::dim(app),
        ));
    } else {
        lines.push(Line::from(vec![
            Span::styled("y", theme::key(app)),
            Span::styled(" I consent, start recording    ", theme::accent(app)),
            Span::styled("n", theme::key(app)),
            Span::raw(" / "),
            Span::styled("Esc", theme::key(app)),
            Span::raw(" cancel"),
        ]));
    }
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
