//! The `?` overlay: every key, by screen. It renders the binding tables of [`crate::keys`],
//! the same tables the key handlers of [`crate::app::App`] look keys up in, so the help cannot
//! miss a key that acts; the README mirrors them.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};
use ratatui::Frame;

use crate::app::App;
use crate::keys::{self, Row};
use crate::ui::{centered, theme};

/// What the date fields of the filter form accept (not keys; shown after the filter keys).
pub const DATES: &[&str] = &[
    "2026-01-31, 2026-01-31 14:00, RFC 3339, today, yesterday, now,",
    "-30m, -24h, -7d, -2w; empty = open. A bare To date includes that day.",
];

/// The keys of a row as shown: their names separated by spaces.
pub fn keys_text(r: &Row) -> String {
    r.keys.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(" ")
}

pub fn lines(app: &App) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let mut last = "";
    let section = |out: &mut Vec<Line<'static>>, name: &str, first: bool| {
        if !first {
            out.push(Line::raw(""));
        }
        out.push(Line::from(Span::styled(
            name.to_string(),
            theme::title(app),
        )));
    };
    for t in keys::ALL {
        if t.section != last {
            section(&mut out, t.section, last.is_empty());
            last = t.section;
        }
        for r in t.rows {
            out.push(Line::from(vec![
                Span::styled(format!("  {:<19} ", keys_text(r)), theme::key(app)),
                Span::raw(r.help.to_string()),
            ]));
        }
    }
    section(&mut out, "Dates (filter form)", false);
    for d in DATES {
        out.push(Line::raw(format!("  {d}")));
    }
    out
}

pub fn render(frame: &mut Frame, app: &App, area: Rect) {
    let r = centered(area, 78, area.height.saturating_sub(2).max(5));
    frame.render_widget(Clear, r);
    let all = lines(app);
    let visible = r.height.saturating_sub(2) as usize;
    let max_scroll = all.len().saturating_sub(visible) as u16;
    let scroll = app.help_scroll.min(max_scroll);
    let more = if scroll < max_scroll {
        " ↓ more "
    } else {
        ""
    };
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Span::styled(" Keys ", theme::title(app)))
        .title_bottom(Line::from(format!(" any key closes{more}")).right_aligned());
    frame.render_widget(Paragraph::new(all).block(block).scroll((scroll, 0)), r);
}

#[cfg(test)]
mod tests {
    use crate::keys;

    #[test]
    fn rows_fit_the_overlay() {
        for r in keys::ALL.iter().flat_map(|t| t.rows) {
            // The overlay is 78 wide: 2 borders, 2 indent, 19 keys, 1 space, the action.
            let width = super::keys_text(r).chars().count().max(19) + 3 + r.help.chars().count();
            assert!(width <= 76, "help row too wide to show in full: {r:?}");
        }
        for d in super::DATES {
            assert!(d.chars().count() + 2 <= 76, "{d}");
        }
    }
}
