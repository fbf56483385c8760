//! Agent view: session control with the recording indicator, the live panel and own history.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph};
use ratatui::Frame;

use crate::app::{App, CaptureState};
use crate::shaping;
use crate::ui::{consent, history, live, theme};

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let live_h = if app.agent.running.is_some() { 10 } else { 3 };
    let [control, live_area, hist] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(live_h),
        Constraint::Min(4),
    ])
    .areas(area);
    render_control(frame, app, control);
    live::render(frame, app, live_area);
    history::render(frame, app, hist);
    if app.agent.consent_open {
        consent::render(frame, app, area);
    }
}

fn render_control(frame: &mut Frame, app: &App, area: Rect) {
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(" Session ", theme::title(app)));
    let line = match &app.agent.running {
        Some(s) => {
            let secs = (app.now - s.started_at).num_seconds().max(0) as f64;
            let badge = app.agent.capture_state().map(|c| capture_badge(app, c));
            let mut spans = vec![
                badge.unwrap_or_default(),
                Span::raw(format!(
                    " since {} ({}) ",
                    s.started_at.with_timezone(&app.tz).format("%H:%M:%S"),
                    shaping::fmt_duration(secs)
                )),
                Span::styled("x", theme::key(app)),
                Span::raw(" stop  "),
            ];
            spans.extend(crate::ui::live::sources_spans(app));
            Line::from(spans)
        }
        None => Line::from(vec![
            Span::raw("Not recording.  "),
            Span::styled("s", theme::key(app)),
            Span::raw(" start a session  "),
            Span::styled("Enter", theme::key(app)),
            Span::raw(" timeline  "),
            Span::styled("?", theme::key(app)),
            Span::raw(" keys"),
        ]),
    };
    frame.render_widget(Paragraph::new(line).block(block), area);
}

/// The capture state's badge, styled: the header and the session line show the same one.
pub fn capture_badge(app: &App, state: CaptureState) -> Span<'static> {
    let style = match state {
        CaptureState::Starting => theme::dim(app),
        CaptureState::Recording => theme::recording(app),
        CaptureState::NotCapturing => theme::error(app),
    };
    Span::styled(format!(" {} ", state.badge()), style)
}
