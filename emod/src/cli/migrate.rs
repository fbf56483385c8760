//! `emod migrate`

use std::process::ExitCode;

use crate::config::Config;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let store = Store::open(config)?;
    let applied = store.migrate()?;
    if applied.is_empty() {
        println!("{}: schema is up to date", store.describe);
    } else {
        for m in &applied {
            println!("applied {m}");
        }
        println!("{}: {} migration(s) applied", store.describe, applied.len());
    }
    Ok(ExitCode::SUCCESS)
}
