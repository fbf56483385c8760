//! `emod`: the EMO daemon as a library, so the binary, the integration tests and the benches
//! drive exactly the same code.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod metrics;
pub mod store;

pub use config::Config;
pub use error::AppError;
