//! Command line: one file per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

pub mod analyze;
pub mod backup;
pub mod bench;
pub mod bench_live;
pub mod bench_queries;
pub mod bench_store;
pub mod completions;
pub mod config_cmd;
pub mod devices;
pub mod doctor;
pub mod eval;
pub mod logging;
pub mod migrate;
pub mod models;
pub mod serve;
pub mod systemd;
pub mod user;

/// emod: the EMO daemon. Estimates facial and vocal expressions with the agent's consent,
/// stores only per-window estimates (never images or audio), and serves them over a REST API.
#[derive(Debug, Parser)]
#[command(name = "emod", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML). Default: $XDG_CONFIG_HOME/emo/emod.toml if it exists.
    /// EMO_* environment variables override it.
    #[arg(long, global = true, value_name = "FILE", env = "EMO_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: REST API on --listen (default 127.0.0.1:7878), storage, buffered writer.
    Serve(serve::Args),
    /// Apply pending database migrations and exit (serve also migrates at start).
    Migrate(migrate::Args),
    /// Manage users: add, list, disable, enable, passwd.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Show configuration: print-default (commented defaults) or show (effective settings).
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Expression estimates for image, audio and video files (faces, voice, fused timeline).
    Analyze(analyze::Args),
    /// Evaluate the models: faces DIR, speech DIR, fusion --faces DIR --speech DIR.
    Eval(eval::Args),
    /// Measure inference speed (face frames/s, speech and feature real-time factors).
    Bench(bench::Args),
    /// Cameras and microphones this machine has, and what `[capture]` resolves to.
    Devices(devices::Args),
    /// Model and ONNX Runtime status: check.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Consistent copy of the SQLite database while the daemon runs (PostgreSQL: prints the
    /// pg_dump command).
    Backup(backup::Args),
    /// Check this installation, one line per check: configuration, database, ONNX Runtime and
    /// models, devices, spool, disk space. Exit status 1 if anything is wrong.
    Doctor(doctor::Args),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(completions::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = || Config::load(cli.config.as_deref());
    match cli.command {
        Command::Serve(args) => serve::run(args, config()?),
        Command::Migrate(args) => migrate::run(args, &config()?),
        Command::User(cmd) => user::run(cmd, &config()?),
        Command::Config(cmd) => config_cmd::run(cmd, cli.config.as_deref()),
        Command::Analyze(args) => analyze::run(args, &config()?),
        Command::Eval(args) => eval::run(args, &config()?),
        Command::Bench(args) => bench::run(args, &config()?),
        Command::Models(cmd) => models::run(cmd, &config()?),
        Command::Devices(args) => devices::run(args, &config()?),
        Command::Backup(args) => backup::run(args, &config()?),
        Command::Doctor(args) => doctor::run(args, cli.config.as_deref()),
        Command::Completions(args) => completions::run(args),
    }
}

/// Logs go to stderr, as text or JSON; `RUST_LOG` overrides the configured level.
pub fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if config.log.format == "json" {
        // JSON strings escape control characters themselves.
        builder.with_writer(std::io::stderr).json().try_init()
    } else if systemd::stderr_is_journal() {
        // Under systemd: the journal stamps each line with its own time and host, so neither
        // a timestamp nor colours are written; a `<N>` prefix gives each line its priority.
        builder
            .with_ansi(false)
            .without_time()
            .with_writer(systemd::JournalWriter)
            .try_init()
    } else {
        // One event, one line: control characters in logged values are escaped.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        builder
            .with_ansi(ansi)
            .with_writer(logging::OneLinePerEvent { ansi })
            .try_init()
    };
}
