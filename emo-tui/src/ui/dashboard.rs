//! Admin dashboard: filter bar, tabs (overview, heatmap, sessions, audit) and the popups.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Tabs;
use ratatui::Frame;

use crate::app::{App, DashTab};
use crate::ui::{audit, distribution, export, filters, heatmap, sessions, sparklines, theme};

/// Draws the dashboard; returns where each tab's title was drawn (for mouse clicks).
pub fn render(frame: &mut Frame, app: &App, area: Rect) -> Vec<(Rect, DashTab)> {
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
    let hits = tab_rects(&titles, tabs);
    frame.render_widget(
        Tabs::new(titles)
            .select(app.dash.tab.index())
            .highlight_style(theme::selected(app))
            .padding(PAD, PAD)
            .divider(DIVIDER),
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
    hits
}

const PAD: &str = " ";
const DIVIDER: &str = "│";

/// Where [`Tabs`] puts each title in `area` with [`PAD`] on each side and [`DIVIDER`] between
/// them: padding and title are the tab's clickable rectangle, cut at the area's right edge.
fn tab_rects(titles: &[Line], area: Rect) -> Vec<(Rect, DashTab)> {
    let (pad, div) = (PAD.chars().count() as u16, DIVIDER.chars().count() as u16);
    let mut x = area.x;
    let mut out = Vec::new();
    for (title, tab) in titles.iter().zip(DashTab::ALL) {
        let w = (pad + title.width() as u16 + pad).min(area.right().saturating_sub(x));
        if w == 0 {
            break;
        }
        out.push((Rect::new(x, area.y, w, 1), tab));
        x += w + div;
    }
    out
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
