//! `emod analyze FILE...`: expression estimates for images, audio and video files.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use emo_api_types::analyze::{AnalyzeResponse, FileAnalysis};
use emo_inference::fusion::Strategy;
use emo_inference::Engine;

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Images (jpg, png), audio (wav; other formats via ffmpeg) or video (mp4, mkv, webm).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print JSON (the same shape as POST /api/v1/analyze) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Fusion strategy for the timeline: calibrated (default) or mode (majority vote).
    #[arg(long, default_value = "calibrated")]
    pub strategy: String,
    /// Video frames analysed per second.
    #[arg(long, default_value_t = emo_inference::engine::DEFAULT_VIDEO_FPS)]
    pub fps: f64,
}

pub fn run(args: Args, config: &Config) -> anyhow::Result<ExitCode> {
    let mut opts = crate::shared_engine::engine_options(config)?;
    opts.strategy = args
        .strategy
        .parse::<Strategy>()
        .map_err(anyhow::Error::msg)?;
    opts.video_fps = args.fps;
    let engine = Engine::load(&opts)?;
    let tty = std::io::stderr().is_terminal();
    let mut results = Vec::new();
    for f in &args.files {
        let name = f.display().to_string();
        let bar = tty.then(|| {
            let b = indicatif::ProgressBar::new(1000);
            b.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {percent}% {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.set_message(name.clone());
            b
        });
        let r = engine.analyze_file(f, &name, &|p| {
            if let Some(b) = &bar {
                b.set_position((p * 1000.0) as u64);
            }
        });
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        if let Some(e) = &r.error {
            eprintln!("emod: {name}: {e}");
        }
        results.push(r);
    }
    let failed = results.iter().any(|r| r.error.is_some());
    if args.json {
        let json = serde_json::to_string_pretty(&AnalyzeResponse { files: results })?;
        emit(&format!("{json}\n"))?;
    } else {
        for r in &results {
            emit(&table(r))?;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Write to stdout; a closed pipe (`emod analyze … | head`) ends the output quietly.
fn emit(s: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(s.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

fn pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// Human-readable report of one file.
///
/// Long on purpose: the report's sections in print order (file, faces, voice windows, fused
/// timeline, summary), so changing the layout means reading one function.
pub fn table(r: &FileAnalysis) -> String {
    let mut s = format!("== {}", r.file);
    if let Some(e) = &r.error {
        s += &format!(": FAILED: {e}\n\n");
        return s;
    }
    if let Some(k) = r.kind {
        s += &format!(" ({}", format!("{k:?}").to_lowercase());
        if let Some(d) = r.duration_s.filter(|d| *d > 0.0) {
            s += &format!(", {d:.1} s");
        }
        s += ")";
    }
    s += "\nExpression estimates (with model confidence; estimates, not facts about feelings)\n";
    if !r.faces.is_empty() {
        s += &format!(
            "faces: {}\n  {:>7} {:>22} {:>6}  {:<9} {:>6}\n",
            r.faces.len(),
            "t (s)",
            "box x,y,w,h",
            "det",
            "estimate",
            "conf"
        );
        for f in r.faces.iter().take(200) {
            let b = &f.bbox;
            s += &format!(
                "  {:>7.2} {:>22} {:>6.2}  {:<9} {:>6}\n",
                f.t,
                format!("{:.0},{:.0},{:.0},{:.0}", b.x, b.y, b.width, b.height),
                f.detection_score,
                f.emotion.as_str(),
                pct(f.confidence)
            );
        }
        if r.faces.len() > 200 {
            s += &format!("  … {} more (use --json)\n", r.faces.len() - 200);
        }
    } else if r.kind != Some(emo_api_types::analyze::MediaKind::Audio) {
        s += "faces: none detected\n";
    }
    if !r.voice.is_empty() {
        s += &format!(
            "voice windows: {}\n  {:>13} {:>8}  {:<9} {:>6}\n",
            r.voice.len(),
            "window (s)",
            "dBFS",
            "estimate",
            "conf"
        );
        for v in &r.voice {
            let (e, c) = match (v.emotion, v.confidence) {
                (Some(e), Some(c)) => (e.as_str().to_string(), pct(c)),
                _ => ("(no voice)".to_string(), String::new()),
            };
            s += &format!(
                "  {:>13} {:>8.1}  {:<9} {:>6}\n",
                format!("{:.0}–{:.0}", v.start, v.end),
                v.level_dbfs,
                e,
                c
            );
        }
    }
    if !r.timeline.is_empty() {
        s += &format!("fused timeline ({}):\n", r.strategy);
        for t in &r.timeline {
            s += &format!(
                "  {:>9} {:<9} {:>6}  [{}]\n",
                if t.end > t.start {
                    format!("{:.0}–{:.0} s", t.start, t.end)
                } else {
                    "image".into()
                },
                t.emotion.as_str(),
                pct(t.confidence),
                t.modalities.join("+")
            );
        }
    }
    if let Some(sum) = &r.summary {
        s += &format!(
            "summary: {} ({}); face coverage {}, voice coverage {}\n",
            sum.emotion,
            pct(sum.confidence),
            pct(sum.face_coverage),
            pct(sum.voice_coverage)
        );
    }
    s.push('\n');
    s
}
