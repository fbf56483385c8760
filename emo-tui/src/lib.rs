//! emo-tui: the terminal client for EMO agents and admins.
//!
//! Structure: [`api`] (REST client), [`net`] (async worker: commands in, messages out over a
//! channel), [`app`] (pure state machine), [`shaping`] (pure data shaping, unit-tested),
//! [`ui`] (one file per screen/widget, each a plain `render(frame, app, area)`),
//! [`token`] (saved login).
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod net;
pub mod shaping;
pub mod token;
pub mod ui;
