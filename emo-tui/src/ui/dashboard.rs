//! Admin dashboard: filter bar, tabs (overview, heatmap, sessions, audit) and the popups.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Tabs;
use ratatui::Frame;

use crate::app::{App, DashTab};
use crate::ui::{audit, distribution, export, filters, heatmap, sessions, sparklines, theme};

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let [bar, tabs, content] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(area);
    filters::render_bar(frame, app, bar);
    let titles: Vec<Line> = DashTab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Line::from(vec![
                Span::styled(format!("{}", i + 1), theme::key(app)),
                Span::raw(format!(" {}", t.title())),
            ])
        })
        .collect();
    let idx = DashTab::ALL
        .iter()
        .position(|t| *t == app.dash.tab)
        .unwrap_or(0);
    frame.render_widget(
        Tabs::new(titles)
            .select(idx)
            .highlight_style(theme::selected(app))
            .divider("│"),
        tabs,
    );
    match app.dash.tab {
        DashTab::Overview => render_overview(frame, app, content),
        DashTab::Heatmap => heatmap::render(frame, app, content),
        DashTab::Sessions => sessions::render(frame, app, content),
        DashTab::Audit => audit::render(frame, app, content),
    }
    if app.dash.form.open {
        filters::render(frame, app, area);
    }
    if app.dash.export_prompt.is_some() {
        export::render(frame, app, area);
    }
}

fn render_overview(frame: &mut Frame, app: &App, area: Rect) {
    if area.width >= 70 {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(46), Constraint::Percentage(54)])
                .areas(area);
        distribution::render(frame, app, left);
        sparklines::render(frame, app, right);
    } else {
        let [top, bottom] =
            Layout::vertical([Constraint::Length(10), Constraint::Min(0)]).areas(area);
        distribution::render(frame, app, top);
        sparklines::render(frame, app, bottom);
    }
}
