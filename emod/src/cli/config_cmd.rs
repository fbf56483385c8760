//! `emod config print-default|show`

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, DEFAULT_TOML};

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the default configuration with comments (a starting point for emod.toml).
    PrintDefault,
    /// Print the effective configuration (defaults, file and EMO_* variables merged).
    Show,
}

pub fn run(cmd: ConfigCommand, file: Option<&Path>) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::PrintDefault => print!("{DEFAULT_TOML}"),
        ConfigCommand::Show => {
            let mut cfg = Config::load(file)?;
            if !cfg.database.url.is_empty() {
                cfg.database.url = crate::store::postgres::redact(&cfg.database.url);
            }
            for source in [&mut cfg.capture.camera, &mut cfg.capture.microphone] {
                *source = emo_capture::redact_secrets(source);
            }
            print!("{}", toml::to_string_pretty(&cfg)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
