//! One session: summary and a per-emotion timeline from its stored samples.

use emo_api_types::{Modality, Session, SessionSummary};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph, Wrap};
use ratatui::Frame;

use crate::app::App;
use crate::shaping;
use crate::ui::sessions::duration_secs;
use crate::ui::{sparklines, theme};

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let d = &app.detail;
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(" Session ", theme::title(app)))
        .title_bottom(Line::styled(
            " Esc back · m modality · r reload ",
            theme::dim(app),
        ));
    let Some(s) = &d.session else {
        let msg = if d.loading {
            "Loading the session…"
        } else {
            "No session loaded."
        };
        frame.render_widget(
            Paragraph::new(Span::styled(msg, theme::dim(app))).block(block),
            area,
        );
        return;
    };
    let [info, timeline] =
        Layout::vertical([Constraint::Length(6), Constraint::Min(0)]).areas(area);
    let info_block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(
            format!(" Session {} ", &s.id.to_string()[..8]),
            theme::title(app),
        ));
    frame.render_widget(
        Paragraph::new(info_lines(app, s))
            .block(info_block)
            .wrap(Wrap { trim: true }),
        info,
    );
    render_timeline(frame, app, s, timeline);
}

/// Who, when, how long, and the stored summary.
fn info_lines(app: &App, s: &Session) -> Vec<Line<'static>> {
    let tz = &app.tz;
    let end = s
        .ended_at
        .map(|t| t.with_timezone(tz).format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "now".into());
    let status = match s.summary.as_ref().and_then(|sum| sum.end_reason) {
        Some(r) => format!("{} ({})", s.status.as_str(), shaping::end_reason_text(r)),
        None => s.status.as_str().to_string(),
    };
    let mut l1 = vec![
        Span::styled(s.username.clone(), theme::accent(app)),
        Span::raw(format!(
            " · {} · {} → {} ({})",
            status,
            s.started_at.with_timezone(tz).format("%Y-%m-%d %H:%M:%S"),
            end,
            shaping::fmt_duration(duration_secs(app, s))
        )),
    ];
    if let Some(l) = &s.label {
        l1.push(Span::raw(format!(" · {l}")));
    }
    let mut lines = vec![Line::from(l1)];
    match &s.summary {
        Some(sum) => lines.extend(summary_lines(app, sum)),
        None => lines.push(Line::styled(
            "No summary yet (the session is still running or was interrupted).",
            theme::dim(app),
        )),
    }
    lines
}

/// Dominant emotion, sample counts, coverage and confidence; then the emotions' shares.
fn summary_lines(app: &App, sum: &SessionSummary) -> [Line<'static>; 2] {
    let mut l2 = vec![Span::raw("dominant ")];
    match sum.dominant {
        Some(e) => l2.push(Span::styled(e.as_str(), theme::emotion(app, e))),
        None => l2.push(Span::raw("—")),
    }
    let counts: Vec<String> = Modality::ALL
        .iter()
        .filter_map(|m| sum.samples.get(m).map(|n| format!("{m} {n}")))
        .collect();
    l2.push(Span::raw(format!(
        " · samples {}",
        if counts.is_empty() {
            "0".into()
        } else {
            counts.join(", ")
        }
    )));
    let cov: Vec<String> = Modality::ALL
        .iter()
        .filter_map(|m| {
            sum.coverage
                .get(m)
                .map(|c| format!("{m} {:.0}%", c * 100.0))
        })
        .collect();
    if !cov.is_empty() {
        l2.push(Span::raw(format!(" · coverage {}", cov.join(", "))));
    }
    if let Some(c) = sum.mean_confidence {
        l2.push(Span::raw(format!(" · conf {c:.2}")));
    }
    let mut dist: Vec<_> = sum.distribution.iter().filter(|(_, v)| **v > 0.0).collect();
    dist.sort_by(|a, b| b.1.total_cmp(a.1));
    let mut l3 = vec![Span::styled("shares ", theme::dim(app))];
    for (e, v) in dist {
        l3.push(Span::styled(
            format!("{} {:.0}%  ", e.as_str(), v * 100.0),
            theme::emotion(app, *e),
        ));
    }
    [Line::from(l2), Line::from(l3)]
}

/// The per-emotion timeline of the modality chosen with `m`.
fn render_timeline(frame: &mut Frame, app: &App, s: &Session, timeline: Rect) {
    let d = &app.detail;
    let tz = &app.tz;
    let Some(m) = d.modality else {
        frame.render_widget(
            Paragraph::new(Span::styled(
                "This session has no stored samples.",
                theme::dim(app),
            ))
            .block(
                Block::bordered()
                    .border_type(BorderType::Rounded)
                    .title(Span::styled(" Timeline ", theme::title(app))),
            ),
            timeline,
        );
        return;
    };
    let start = d
        .samples
        .first()
        .map(|x| x.t)
        .unwrap_or(s.started_at)
        .min(s.started_at);
    let last = d.samples.iter().map(|x| x.t).max().unwrap_or(start);
    let end = s
        .ended_at
        .unwrap_or(last)
        .max(last + chrono::Duration::seconds(1));
    let has_calm = d
        .samples
        .iter()
        .any(|x| x.modality == m && x.emotion == emo_api_types::Emotion::Calm);
    let emotions = shaping::shown_emotions(has_calm);
    let n = d.samples.iter().filter(|x| x.modality == m).count();
    let title = format!(" Timeline ({m}, {n} samples) · mean probability · m: modality ");
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(tz).format("%H:%M:%S").to_string();
    sparklines::render_series(frame, app, timeline, &title, (fmt(start), fmt(end)), |w| {
        shaping::sample_columns(&d.samples, m, start, end, w, &emotions)
    });
}
