//! `emod`: the EMO daemon as a library, so the binary, the integration tests and the benches
//! drive exactly the same code.
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod auth;
pub mod capture;
pub mod cli;
pub mod config;
pub mod error;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod reads;
pub mod sessions;
pub mod shared_engine;
pub mod slots;
pub mod startup;
pub mod state;
pub mod store;
pub mod users;

pub use config::Config;
pub use error::AppError;

/// Run blocking work (database, files) on tokio's blocking pool, off the HTTP workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::Internal(format!("blocking task failed: {e}")))
}
