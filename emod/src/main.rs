#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = emod::cli::Cli::parse();
    match emod::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("emod: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
