//! Per-emotion sparklines over time (one row per emotion, 0..100 %), used by the dashboard
//! overview and by a session's timeline.

use emo_api_types::Emotion;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph, Sparkline};
use ratatui::Frame;

use crate::app::App;
use crate::shaping;
use crate::ui::theme;

const LABEL_W: u16 = 9;

/// Draws `series(width)` in a bordered block; `axis` = (left, right) time labels.
pub fn render_series<F>(
    frame: &mut Frame,
    app: &App,
    area: Rect,
    title: &str,
    axis: (String, String),
    series: F,
) where
    F: Fn(usize) -> Vec<(Emotion, Vec<u64>)>,
{
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(title.to_string(), theme::title(app)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.width <= LABEL_W + 2 || inner.height == 0 {
        return;
    }
    let w = (inner.width - LABEL_W) as usize;
    let data = series(w);
    let avail = inner.height.saturating_sub(1).max(1) as usize;
    // Taller sparklines when there is room (large terminals), one line each at 80×24.
    let row_h = (avail / data.len().max(1)).clamp(1, 4);
    let rows = (avail / row_h).min(data.len());
    for (i, (e, values)) in data.iter().take(rows).enumerate() {
        let y = inner.y + (i * row_h) as u16;
        let label = Rect {
            x: inner.x,
            y: y + row_h as u16 - 1,
            width: LABEL_W,
            height: 1,
        };
        frame.render_widget(
            Paragraph::new(Span::styled(e.as_str(), theme::emotion(app, *e))),
            label,
        );
        let spark = Rect {
            x: inner.x + LABEL_W,
            y,
            width: w as u16,
            height: row_h as u16,
        };
        frame.render_widget(
            Sparkline::default()
                .data(values.as_slice())
                .max(100)
                .style(theme::emotion(app, *e)),
            spark,
        );
    }
    if inner.height as usize > rows * row_h {
        let y = inner.y + (rows * row_h) as u16;
        let (l, r) = axis;
        let pad = w.saturating_sub(l.chars().count() + r.chars().count());
        let line = Line::from(vec![
            Span::raw(" ".repeat(LABEL_W as usize)),
            Span::styled(format!("{l}{}{r}", " ".repeat(pad)), theme::dim(app)),
        ]);
        frame.render_widget(
            Paragraph::new(line),
            Rect {
                y,
                height: 1,
                ..inner
            },
        );
    }
}

/// The dashboard's per-emotion timeline over the filtered range.
pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let d = &app.dash;
    let Some(tl) = &d.timeline else {
        frame.render_widget(
            Paragraph::new(Span::styled("Loading…", theme::dim(app))).block(
                Block::bordered()
                    .border_type(BorderType::Rounded)
                    .title(Span::styled(" Over time ", theme::title(app))),
            ),
            area,
        );
        return;
    };
    let has_calm = tl
        .points
        .iter()
        .any(|p| p.counts.get(&Emotion::Calm).copied().unwrap_or(0) > 0);
    let emotions = shaping::shown_emotions(has_calm);
    let first = tl.points.iter().map(|p| p.t).min();
    let from = d.query.from.or(first);
    let to = d.query.to.or(if d.query.from.is_some() {
        Some(app.now)
    } else {
        None
    });
    let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.with_timezone(&app.tz).format("%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    let last = tl
        .points
        .iter()
        .map(|p| p.t + chrono::Duration::milliseconds(tl.bucket.millis()))
        .max();
    let axis = (fmt(from), fmt(to.or(last)));
    let bucket = match tl.bucket {
        emo_api_types::Bucket::Minute => "minute",
        emo_api_types::Bucket::Hour => "hour",
        emo_api_types::Bucket::Day => "day",
    };
    let title = format!(" Over time (% per {bucket}) ");
    render_series(frame, app, area, &title, axis, |w| {
        shaping::timeline_columns(&tl.points, tl.bucket, from, to, w, &emotions)
    });
}
