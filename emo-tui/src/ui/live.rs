//! Live panel: probability bars from the session's SSE stream (`GET /sessions/{id}/live`).

use emo_api_types::{Emotion, Modality};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph};
use ratatui::Frame;

use crate::app::App;
use crate::shaping;
use crate::ui::theme;

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let live = &app.agent.live;
    let shown = [Modality::Fused, Modality::Face, Modality::Voice]
        .into_iter()
        .find(|m| live.readings.contains_key(m));
    let title = match (app.agent.running.is_some(), shown) {
        (false, _) => " Live ".to_string(),
        (true, None) => " Live: waiting for estimates… ".to_string(),
        (true, Some(m)) => format!(" Live ({m}) · {} estimates ", live.events),
    };
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(title, theme::title(app)));
    let inner_w = area.width.saturating_sub(2) as usize;
    let mut lines = Vec::new();
    match (app.agent.running.is_some(), shown) {
        (false, _) => lines.push(Line::from(Span::styled(
            "Live probability bars appear here while a session runs.",
            theme::dim(app),
        ))),
        (true, None) => lines.push(Line::from(Span::styled(
            "Connected to the live stream; the first estimate arrives within a few seconds.",
            theme::dim(app),
        ))),
        (true, Some(m)) => {
            let r = &live.readings[&m];
            let bar_w = inner_w.saturating_sub(9 + 6);
            for e in Emotion::FACE {
                let p = match r.probabilities.get(&e) {
                    Some(p) => *p,
                    None if r.probabilities.is_empty() && r.emotion == e => r.confidence,
                    None if e == Emotion::Neutral => {
                        r.probabilities.get(&Emotion::Calm).copied().unwrap_or(0.0)
                    }
                    None => 0.0,
                };
                let n = shaping::bar_len(p, bar_w);
                lines.push(Line::from(vec![
                    Span::styled(format!("{:<9}", e.as_str()), theme::emotion(app, e)),
                    Span::styled("█".repeat(n), theme::emotion(app, e)),
                    Span::styled("·".repeat(bar_w - n), theme::dim(app)),
                    Span::raw(format!(" {:>4.0}%", p * 100.0)),
                ]));
            }
            let mut spans = Vec::new();
            for m in Modality::ALL {
                if let Some(r) = live.readings.get(&m) {
                    spans.push(Span::styled(format!("{m}: "), theme::dim(app)));
                    spans.push(Span::styled(
                        r.emotion.as_str(),
                        theme::emotion(app, r.emotion),
                    ));
                    spans.push(Span::raw(format!(" {:.2}   ", r.confidence)));
                }
            }
            lines.push(Line::from(spans));
        }
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
