//! Live panel: face, voice and fused probability bars side by side from the session's SSE
//! stream (`GET /sessions/{id}/live`); [`sources_spans`] gives the capture sources' states and
//! the processed frame rate for the session line.

use emo_api_types::{Emotion, Modality, SourceState};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph};
use ratatui::Frame;

use crate::app::{App, LiveReading};
use crate::shaping;
use crate::ui::theme;

/// Probability of `e` in a reading (voice's `calm` counts as neutral in the 7-row table).
pub fn prob(r: &LiveReading, e: Emotion) -> f64 {
    match r.probabilities.get(&e) {
        Some(p) if e == Emotion::Neutral => {
            p + r.probabilities.get(&Emotion::Calm).copied().unwrap_or(0.0)
        }
        Some(p) => *p,
        None if r.probabilities.is_empty() && r.emotion.to_face_space() == e => r.confidence,
        None if e == Emotion::Neutral => {
            r.probabilities.get(&Emotion::Calm).copied().unwrap_or(0.0)
        }
        None => 0.0,
    }
}

/// `camera ✓  microphone ✗ lost` and the processed frame rate.
pub fn sources_spans(app: &App) -> Vec<Span<'static>> {
    let live = &app.agent.live;
    let mut spans = Vec::new();
    for (name, (state, _)) in &live.sources {
        let (mark, style) = match state {
            SourceState::Active | SourceState::Recovered => ("✓", theme::ok(app)),
            SourceState::Lost => ("✗ lost", theme::error(app)),
            SourceState::Ended => ("■ ended", theme::dim(app)),
        };
        spans.push(Span::raw(format!("{name} ")));
        spans.push(Span::styled(format!("{mark}  "), style));
    }
    if let Some(st) = &live.stats {
        spans.push(Span::styled(
            format!("{:.1} fps analysed", st.fps_processed),
            theme::dim(app),
        ));
    }
    spans
}

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let live = &app.agent.live;
    let any = !live.readings.is_empty();
    let title = match (app.agent.running.is_some(), any) {
        (false, _) => " Live ".to_string(),
        (true, false) => " Live: waiting for estimates… ".to_string(),
        (true, true) => format!(" Live · {} estimates ", live.events),
    };
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(title, theme::title(app)));
    let inner_w = area.width.saturating_sub(2) as usize;
    let mut lines = Vec::new();
    match (app.agent.running.is_some(), any) {
        (false, _) => lines.push(Line::from(Span::styled(
            "Live probability bars appear here while a session runs.",
            theme::dim(app),
        ))),
        (true, false) => {
            let msg = match live.delivering() {
                Some(false) => "No capture source delivers: see the source states below.",
                _ => {
                    "Connected to the live stream; the first estimate arrives within a few seconds."
                }
            };
            lines.push(Line::from(Span::styled(msg, theme::dim(app))));
        }
        (true, true) => {
            let cols = [Modality::Face, Modality::Voice, Modality::Fused];
            // "emotion  " + three columns of "bar  NN%  ".
            let col_w = inner_w.saturating_sub(9) / cols.len();
            let bar_w = col_w.saturating_sub(7);
            let mut head = vec![Span::raw(" ".repeat(9))];
            for m in cols {
                let label = match live.readings.get(&m) {
                    Some(r) => format!("{m}: {}", r.emotion),
                    None => format!("{m}: –"),
                };
                head.push(Span::styled(
                    format!(
                        "{:<w$}",
                        label.chars().take(col_w).collect::<String>(),
                        w = col_w
                    ),
                    theme::dim(app),
                ));
            }
            lines.push(Line::from(head));
            for e in Emotion::FACE {
                let mut spans = vec![Span::styled(
                    format!("{:<9}", e.as_str()),
                    theme::emotion(app, e),
                )];
                for m in cols {
                    match live.readings.get(&m) {
                        Some(r) => {
                            let p = prob(r, e);
                            let n = shaping::bar_len(p, bar_w);
                            spans.push(Span::styled("█".repeat(n), theme::emotion(app, e)));
                            spans.push(Span::styled("·".repeat(bar_w - n), theme::dim(app)));
                            spans.push(Span::raw(format!(" {:>3.0}%  ", p * 100.0)));
                        }
                        None => spans.push(Span::raw(" ".repeat(col_w))),
                    }
                }
                lines.push(Line::from(spans));
            }
        }
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
