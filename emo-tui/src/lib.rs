//! emo-tui: the terminal client for EMO agents and admins.
//!
//! Structure: [`api`] (REST client), [`net`] (async worker: [`cmd::Cmd`]s in, [`cmd::Msg`]s
//! out over a channel), [`app`] (pure state machine, one file per screen), [`keys`] (key
//! bindings as data: the handlers and the help read the same tables), [`input`] (text field),
//! [`shaping`] (pure data shaping, unit-tested), [`ui`] (one file per screen/widget, each a
//! plain `render(frame, app, area)`), [`token`] (saved login).
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod cmd;
pub mod input;
pub mod keys;
pub mod net;
pub mod shaping;
pub mod token;
pub mod ui;
