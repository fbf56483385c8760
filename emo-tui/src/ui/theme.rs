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
