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
        println!("  {}", microphone_line(m));
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

/// One microphone: its name, whether it is ALSA's default, and the common sample rates it
/// offers (`rates unknown` when the device could not be asked, e.g. no sound card behind it).
fn microphone_line(m: &emo_api_types::MicrophoneDevice) -> String {
    let rates = if m.sample_rates.is_empty() {
        "rates unknown".to_string()
    } else {
        let r: Vec<String> = m.sample_rates.iter().map(|r| r.to_string()).collect();
        format!("{} Hz", r.join("/"))
    };
    let default = if m.default { " (default)" } else { "" };
    format!("{}{default}  {rates}", m.name)
}

#[cfg(test)]
mod tests {
    use emo_api_types::MicrophoneDevice;

    use super::microphone_line;

    #[test]
    fn a_microphone_line_shows_its_rates_or_says_they_are_unknown() {
        let mic = |rates: Vec<u32>| MicrophoneDevice {
            name: "default".into(),
            default: true,
            sample_rates: rates,
        };
        assert_eq!(
            microphone_line(&mic(vec![16_000, 44_100, 48_000])),
            "default (default)  16000/44100/48000 Hz"
        );
        assert_eq!(
            microphone_line(&mic(vec![])),
            "default (default)  rates unknown"
        );
    }
}
