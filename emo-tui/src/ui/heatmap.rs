//! Heatmap widget: agent × emotion or weekday × hour, with a legend. Intensity is carried by the
//! glyph (· ░ ▒ ▓ █) and, when colour is on, by a 16-colour ramp.

use emo_api_types::{Heatmap, HeatmapKind};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph};
use ratatui::Frame;

use crate::app::App;
use crate::shaping;
use crate::ui::theme;

fn kind_name(k: HeatmapKind) -> &'static str {
    match k {
        HeatmapKind::AgentEmotion => "agent × emotion",
        HeatmapKind::WeekdayHour => "weekday × hour",
    }
}

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let kind = app.dash.heat_kind;
    let other = match kind {
        HeatmapKind::AgentEmotion => HeatmapKind::WeekdayHour,
        HeatmapKind::WeekdayHour => HeatmapKind::AgentEmotion,
    };
    let title = format!(" Heatmap: {} · m: {} ", kind_name(kind), kind_name(other));
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(title, theme::title(app)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    match &app.dash.heatmap {
        None => frame.render_widget(
            Paragraph::new(Span::styled("Loading…", theme::dim(app))),
            inner,
        ),
        Some(h) if h.rows.is_empty() || h.max == 0 => frame.render_widget(
            Paragraph::new(Span::styled(
                "No estimates match the filters.",
                theme::dim(app),
            )),
            inner,
        ),
        Some(h) => frame.render_widget(
            Paragraph::new(grid_lines(app, h, inner.width, inner.height)),
            inner,
        ),
    }
}

/// The grid as text lines: a header of column labels, one line per row, the legend last.
pub fn grid_lines(app: &App, h: &Heatmap, width: u16, height: u16) -> Vec<Line<'static>> {
    let width = width as usize;
    let label_w = h
        .rows
        .iter()
        .map(|r| r.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(3, 12)
        + 1;
    let ncols = h.columns.len().max(1);
    let cell_w = (width.saturating_sub(label_w) / ncols).clamp(1, 8);
    let mut lines = vec![header_line(app, h, width, label_w, cell_w)];

    let room = (height as usize).saturating_sub(3); // header, legend, blank
    let shown_rows = h.rows.len().min(room.max(1));
    for (i, row) in h.rows.iter().take(shown_rows).enumerate() {
        let mut spans = vec![Span::raw(format!(
            "{:<label_w$}",
            shaping::ellipsize(row, label_w - 1)
        ))];
        for j in 0..h.columns.len() {
            let c = h.cells.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0);
            let level = shaping::heat_level(c, h.max);
            let g = shaping::heat_glyph(level);
            let text = if cell_w >= 6 && c.to_string().len() < cell_w - 2 {
                format!("{g}{c:>w$} ", w = cell_w - 2)
            } else if cell_w >= 2 {
                format!("{}{}", g.to_string().repeat(cell_w - 1), ' ')
            } else {
                g.to_string()
            };
            spans.push(Span::styled(text, theme::heat(app, level)));
        }
        lines.push(Line::from(spans));
    }
    if shown_rows < h.rows.len() {
        lines.push(Line::from(Span::styled(
            format!(
                "… {} more rows (narrow the filters or enlarge the terminal)",
                h.rows.len() - shown_rows
            ),
            theme::dim(app),
        )));
    } else {
        lines.push(Line::raw(""));
    }
    let mut legend = vec![Span::styled("Legend ", theme::dim(app))];
    for (level, range) in shaping::heat_legend(h.max) {
        legend.push(Span::styled(
            shaping::heat_glyph(level).to_string(),
            theme::heat(app, level),
        ));
        legend.push(Span::raw(format!(" {range}  ")));
    }
    lines.push(Line::from(legend));
    lines
}

/// The column labels: in full when they fit the cells, else every k-th label.
fn header_line(
    app: &App,
    h: &Heatmap,
    width: usize,
    label_w: usize,
    cell_w: usize,
) -> Line<'static> {
    let mut head = " ".repeat(label_w);
    let col_label_w = h
        .columns
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(1);
    let every = if cell_w > col_label_w.min(4) {
        1
    } else {
        (col_label_w + 1).div_ceil(cell_w)
    };
    let mut j = 0;
    while j < h.columns.len() {
        if j % every == 0 {
            let span_w = cell_w * every;
            let l = shaping::ellipsize(&h.columns[j], span_w.saturating_sub(1).max(1));
            head.push_str(&format!("{l:<span_w$}"));
            j += every;
        } else {
            j += 1;
        }
    }
    Line::from(Span::styled(
        shaping::ellipsize(&head, width),
        theme::dim(app),
    ))
}
