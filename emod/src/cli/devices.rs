//! `emod devices`: the cameras and microphones this machine has, and what `[capture]` resolves
//! to (the same answer as `GET /api/v1/devices`).

use std::process::ExitCode;

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (the API's `Devices` shape).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let d = crate::capture::devices(&config.capture, false);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("cameras:");
    if d.cameras.is_empty() {
        println!("  (none found)");
    }
    for c in &d.cameras {
        println!("  [{}] {}  {}", c.index, c.name, c.formats.join(", "));
    }
    println!("microphones:");
    if d.microphones.is_empty() {
        println!("  (none found)");
    }
    for m in &d.microphones {
        let rates: Vec<String> = m.sample_rates.iter().map(|r| r.to_string()).collect();
        println!(
            "  {}{}  {} Hz",
            m.name,
            if m.default { " (default)" } else { "" },
            rates.join("/")
        );
    }
    let show = |what: &str, c: &emo_api_types::ConfiguredSource| {
        println!(
            "capture.{what} = {:?} -> {}",
            c.configured,
            c.resolved
                .as_deref()
                .unwrap_or("nothing (sessions cannot use it)")
        );
    };
    show("camera", &d.camera);
    show("microphone", &d.microphone);
    Ok(ExitCode::SUCCESS)
}
