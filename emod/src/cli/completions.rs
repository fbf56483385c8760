//! `emod completions SHELL`: the shell completion script for emod (bash, zsh, fish, …), as the
//! Debian package installs it into the shells' standard directories.

use std::process::ExitCode;

use clap::CommandFactory;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "emod", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
