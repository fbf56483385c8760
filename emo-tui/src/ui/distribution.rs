//! Emotion distribution as a horizontal bar chart.

use emo_api_types::Emotion;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph};
use ratatui::Frame;

use crate::app::App;
use crate::shaping;
use crate::ui::theme;

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let d = app.dash.distribution.as_ref();
    let total = d.map(|d| d.total).unwrap_or(0);
    let title = format!(" Distribution · {total} estimates ");
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(title, theme::title(app)));
    let Some(d) = d else {
        frame.render_widget(
            Paragraph::new(Span::styled("Loading…", theme::dim(app))).block(block),
            area,
        );
        return;
    };
    if d.total == 0 {
        frame.render_widget(
            Paragraph::new(Span::styled(
                "No estimates match the filters.",
                theme::dim(app),
            ))
            .block(block),
            area,
        );
        return;
    }
    let inner_w = area.width.saturating_sub(2) as usize;
    let num_w = d.total.to_string().len().max(3);
    let bar_w = inner_w.saturating_sub(9 + 7 + num_w + 1);
    let has_calm = d.counts.get(&Emotion::Calm).copied().unwrap_or(0) > 0;
    let mut lines: Vec<Line> = shaping::shown_emotions(has_calm)
        .into_iter()
        .map(|e| {
            let c = d.counts.get(&e).copied().unwrap_or(0);
            let share = d
                .shares
                .get(&e)
                .copied()
                .unwrap_or(c as f64 / d.total as f64);
            let n = shaping::bar_len(share, bar_w);
            Line::from(vec![
                Span::styled(format!("{:<9}", e.as_str()), theme::emotion(app, e)),
                Span::styled("█".repeat(n), theme::emotion(app, e)),
                Span::raw(" ".repeat(bar_w - n)),
                Span::raw(format!("{:>6.1}% {:>num_w$}", share * 100.0, c)),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    if let Some((e, _)) = d.counts.iter().max_by_key(|(_, c)| **c) {
        lines.push(Line::from(vec![
            Span::styled("most frequent ", theme::dim(app)),
            Span::styled(e.as_str(), theme::emotion(app, *e)),
        ]));
    }
    let mut agents: Vec<&str> = app
        .dash
        .sessions
        .iter()
        .map(|s| s.username.as_str())
        .collect();
    agents.sort_unstable();
    agents.dedup();
    lines.push(Line::styled(
        format!(
            "{} sessions · {} agents",
            app.dash.sessions_total,
            agents.len()
        ),
        theme::dim(app),
    ));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
