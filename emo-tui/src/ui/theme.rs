//! Styles. Only the 16 ANSI colours are used, and with colour off (NO_COLOR, `--no-color`) every
//! style degrades to modifiers (bold, reversed, dim) so nothing depends on colour alone.

use emo_api_types::Emotion;
use ratatui::style::{Color, Modifier, Style};

use crate::app::App;

fn fg(app: &App, c: Color) -> Style {
    if app.color {
        Style::default().fg(c)
    } else {
        Style::default()
    }
}

pub fn emotion_color(e: Emotion) -> Color {
    match e {
        Emotion::Angry => Color::Red,
        Emotion::Disgust => Color::Green,
        Emotion::Fear => Color::Magenta,
        Emotion::Happy => Color::Yellow,
        Emotion::Sad => Color::Blue,
        Emotion::Surprise => Color::Cyan,
        Emotion::Neutral => Color::Gray,
        Emotion::Calm => Color::LightGreen,
    }
}

pub fn emotion(app: &App, e: Emotion) -> Style {
    fg(app, emotion_color(e))
}

pub fn title(app: &App) -> Style {
    fg(app, Color::Cyan).add_modifier(Modifier::BOLD)
}

pub fn accent(app: &App) -> Style {
    fg(app, Color::Yellow).add_modifier(Modifier::BOLD)
}

pub fn dim(app: &App) -> Style {
    if app.color {
        Style::default().fg(Color::DarkGray)
    } else {
        Style::default().add_modifier(Modifier::DIM)
    }
}

pub fn error(app: &App) -> Style {
    fg(app, Color::LightRed).add_modifier(Modifier::BOLD)
}

pub fn ok(app: &App) -> Style {
    fg(app, Color::Green)
}

pub fn recording(app: &App) -> Style {
    if app.color {
        Style::default()
            .fg(Color::White)
            .bg(Color::Red)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    }
}

pub fn selected(app: &App) -> Style {
    if app.color {
        Style::default()
            .bg(Color::Blue)
            .fg(Color::White)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default().add_modifier(Modifier::REVERSED)
    }
}

pub fn focused(app: &App) -> Style {
    fg(app, Color::Yellow).add_modifier(Modifier::BOLD)
}

pub fn key(app: &App) -> Style {
    fg(app, Color::Cyan).add_modifier(Modifier::BOLD)
}

/// Heatmap cell style for an intensity level (see [`crate::shaping::heat_level`]).
pub fn heat(app: &App, level: u8) -> Style {
    let c = match level {
        0 => Color::DarkGray,
        1 => Color::Blue,
        2 => Color::Cyan,
        3 => Color::Yellow,
        _ => Color::LightRed,
    };
    fg(app, c)
}

#[cfg(test)]
mod tests {
    use chrono::FixedOffset;
    use ratatui::style::{Color, Modifier, Style};

    use super::heat;
    use crate::app::App;
    use crate::shaping::{heat_glyph, heat_legend, heat_level, HEAT_LEVELS};

    fn app(color: bool) -> App {
        App::new(
            "http://127.0.0.1:7878",
            color,
            "2026-03-10T12:00:00Z".parse().unwrap(),
            FixedOffset::east_opt(0).unwrap(),
        )
    }

    /// The 16 ANSI colours (what a 16-colour terminal can show).
    fn is_ansi16(c: Color) -> bool {
        use Color::*;
        matches!(
            c,
            Black
                | Red
                | Green
                | Yellow
                | Blue
                | Magenta
                | Cyan
                | Gray
                | DarkGray
                | LightRed
                | LightGreen
                | LightYellow
                | LightBlue
                | LightMagenta
                | LightCyan
                | White
        )
    }

    #[test]
    fn heat_ramp_has_one_distinct_16_colour_per_level() {
        let a = app(true);
        let colours: Vec<Color> = (0..HEAT_LEVELS)
            .map(|l| heat(&a, l).fg.expect("a foreground colour per level"))
            .collect();
        for (l, c) in colours.iter().enumerate() {
            assert!(
                is_ansi16(*c),
                "level {l}: {c:?} is not one of the 16 ANSI colours"
            );
            assert!(
                !colours[..l].contains(c),
                "level {l} looks like a lower level ({c:?})"
            );
        }
        // Empty is dim; the hottest is the loudest colour of the ramp.
        assert_eq!(colours[0], Color::DarkGray);
        assert_eq!(colours[HEAT_LEVELS as usize - 1], Color::LightRed);
        // Only the foreground: the glyph carries the intensity, the background stays.
        for l in 0..HEAT_LEVELS {
            let s = heat(&a, l);
            assert_eq!(s.bg, None);
            assert_eq!(s.add_modifier, Modifier::empty());
        }
    }

    #[test]
    fn heat_levels_out_of_range_are_the_top_level() {
        let a = app(true);
        let top = heat(&a, HEAT_LEVELS - 1);
        for l in [HEAT_LEVELS, HEAT_LEVELS + 1, 100, u8::MAX] {
            assert_eq!(heat(&a, l), top, "level {l}");
            assert_eq!(heat_glyph(l), heat_glyph(HEAT_LEVELS - 1));
        }
    }

    #[test]
    fn heat_mapping_is_monotone_from_count_to_level_to_colour() {
        // The ramp's order, coolest first: a higher count never gets a cooler colour.
        let a = app(true);
        let rank = |count: u64, max: u64| {
            let c = heat(&a, heat_level(count, max)).fg.unwrap();
            (0..HEAT_LEVELS)
                .position(|l| heat(&a, l).fg == Some(c))
                .unwrap()
        };
        for max in [0u64, 1, 2, 3, 4, 5, 7, 10, 60, 1000, u64::MAX / 8, u64::MAX] {
            let step = (max / 200).max(1);
            let mut prev = 0;
            let mut count = 0u64;
            while count <= max.saturating_add(2) {
                let r = rank(count, max);
                assert!(r >= prev, "max {max}: count {count} got a cooler colour");
                assert_eq!(r == 0, count == 0 || max == 0, "max {max} count {count}");
                prev = r;
                count = match count.checked_add(step) {
                    Some(c) => c,
                    None => break,
                };
            }
            if max > 0 {
                assert_eq!(rank(max, max), HEAT_LEVELS as usize - 1, "max {max}");
            }
        }
        // The glyphs get denser in the same order (readable without colour).
        let dens = ['·', '░', '▒', '▓', '█'];
        for l in 0..HEAT_LEVELS {
            assert_eq!(heat_glyph(l), dens[l as usize]);
        }
        // Every legend entry has its own colour.
        let legend = heat_legend(100);
        let mut seen = Vec::new();
        for (l, _) in legend {
            let c = heat(&a, l).fg;
            assert!(!seen.contains(&c));
            seen.push(c);
        }
    }

    #[test]
    fn heat_without_colour_has_no_colour_at_all() {
        // NO_COLOR / --no-color: plain style, the glyph alone tells the level.
        let a = app(false);
        for l in 0..=u8::MAX {
            assert_eq!(heat(&a, l), Style::default(), "level {l}");
        }
        let glyphs: Vec<char> = (0..HEAT_LEVELS).map(heat_glyph).collect();
        for (i, g) in glyphs.iter().enumerate() {
            assert!(!glyphs[..i].contains(g), "two levels share the glyph {g}");
        }
    }
}
