//! `emod bench live`: the real capture pipeline (sources → inference → fusion → writer → live
//! bus) for a session on a throw-away SQLite database, measured from outside: processed frames
//! per second, dropped frames, latency from a window's capture time to its live event, CPU of
//! this process **and its ffmpeg children** as a percentage of one core, and peak RSS.
//!
//! By default the sources are generated files played at real-time pace (a video of a public-domain
//! face photo with a speech track from espeak-ng), so the figures are comparable across machines.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use emo_api_types::{LiveEvent, Modality, Role, StartSession};
use serde::Serialize;

use crate::auth::AuthUser;
use crate::config::Config;
use crate::store::{now_ms, UserRow};

#[derive(Debug, clap::Args)]
pub struct LiveArgs {
    /// Camera source (`[capture] camera` forms); default: a generated video at real-time pace.
    #[arg(long)]
    pub camera: Option<String>,
    /// Microphone source; default: the generated video's speech track.
    #[arg(long)]
    pub microphone: Option<String>,
    /// How long to capture.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Frames analysed per second (default: `[capture] fps`).
    #[arg(long)]
    pub fps: Option<f64>,
    /// Face photo for the generated video (default: the repository's public-domain fixture).
    #[arg(long, value_name = "IMAGE")]
    pub face: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct LiveReport {
    pub cpu: String,
    pub seconds: f64,
    pub fps_target: f64,
    pub frames_in: u64,
    pub frames_processed: u64,
    pub frames_dropped: u64,
    pub fps_processed: f64,
    pub samples_face: u64,
    pub samples_voice: u64,
    pub samples_fused: u64,
    /// Face samples: capture time of the window's end → live event received.
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
    pub fused_latency_ms_p95: f64,
    pub audio_overruns: u64,
    /// This process and its (reaped) ffmpeg children, user + system, as % of one core.
    pub cpu_percent_one_core: f64,
    pub peak_rss_mb: f64,
}

/// The fixture photo shipped with the repository's tests.
fn default_face() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from("emo-inference/tests/fixtures/astronaut.jpg"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../emo-inference/tests/fixtures/astronaut.jpg"),
    ];
    candidates.into_iter().find(|p| p.exists())
}

/// A video of `face` with a looping speech track, `seconds` long, in `dir`.
pub fn make_fixture(dir: &Path, face: &Path, seconds: u64) -> anyhow::Result<PathBuf> {
    let wav = dir.join("speech.wav");
    let text = "I am so happy to see you today. This is wonderful news, really wonderful. \
                Now I feel a little sad about what happened yesterday, it was terrible.";
    let ok = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .context("running espeak-ng (apt install espeak-ng)")?;
    if !ok.success() {
        bail!("espeak-ng failed");
    }
    let out = dir.join("live.mp4");
    let ok = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-loop",
            "1",
            "-framerate",
            "30",
            "-i",
        ])
        .arg(face)
        .args(["-stream_loop", "-1", "-i"])
        .arg(&wav)
        .args(["-t", &seconds.to_string()])
        .args([
            "-vf",
            "scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "stillimage",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-ar",
            "48000",
        ])
        .arg(&out)
        .status()
        .context("running ffmpeg (apt install ffmpeg)")?;
    if !ok.success() {
        bail!("ffmpeg could not make the test video");
    }
    Ok(out)
}

/// (utime + stime of this process, + cutime + cstime of its reaped children) in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // After ")" the fields start at 3 (state); utime is field 14 → index 11.
    let ticks: f64 = [11, 12, 13, 14].iter().filter_map(|&i| f.get(i)).sum();
    ticks / 100.0
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into())
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    (v[i] * 10.0).round() / 10.0
}

pub fn run(args: LiveArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let tmp = tempfile::tempdir()?;
    let cfg = bench_config(&args, config, tmp.path())?;
    let seconds = args.seconds.max(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(measure(cfg, seconds, args.json))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The daemon's configuration on a throw-away database in `dir`, capturing from the given
/// sources or from a generated video of a face photo.
fn bench_config(args: &LiveArgs, config: &Config, dir: &Path) -> anyhow::Result<Config> {
    let mut cfg = config.clone();
    cfg.database.url.clear();
    cfg.database.sqlite_path = dir.join("bench.sqlite3").display().to_string();
    cfg.writer.spool_dir = dir.join("spool").display().to_string();
    cfg.privacy.retention_days = 0;
    if let Some(f) = args.fps {
        cfg.capture.fps = f;
    }
    let need_fixture = args.camera.is_none() || args.microphone.is_none();
    let fixture = if need_fixture {
        let face = args
            .face
            .clone()
            .or_else(default_face)
            .context("no face photo for the generated video: pass --face IMAGE (or --camera and --microphone)")?;
        if !args.json {
            eprintln!(
                "generating a {} s test video from {} …",
                args.seconds + 5,
                face.display()
            );
        }
        Some(make_fixture(dir, &face, args.seconds + 5)?)
    } else {
        None
    };
    let file = |f: &Option<PathBuf>| {
        format!(
            "file:{}",
            f.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    };
    cfg.capture.camera = args.camera.clone().unwrap_or_else(|| file(&fixture));
    cfg.capture.microphone = args.microphone.clone().unwrap_or_else(|| file(&fixture));
    Ok(cfg)
}

/// Starts the daemon's state, runs one capture session for `seconds` and reports on it.
async fn measure(cfg: Config, seconds: u64, quiet: bool) -> anyhow::Result<LiveReport> {
    let fps_target = cfg.capture.fps;
    let state = crate::startup::prepare(cfg).await?;
    // Wait for the models so loading is not measured.
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || engine.get())
        .await?
        .map_err(|e| anyhow::anyhow!("models: {e}"))?;
    let who = bench_user(&state).await?;
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let row = crate::sessions::start(
        &state.sessions(),
        &who,
        StartSession {
            consent: true,
            sources: vec!["camera".into(), "microphone".into()],
            label: Some("bench".into()),
            started_at: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("starting the session: {e}"))?;
    let sid = uuid::Uuid::parse_str(&row.id)?;
    let rx = state.live.subscribe(sid);
    if !quiet {
        eprintln!("capturing for {seconds} s …");
    }
    let (counts, mut face_lat, mut fused_lat) = collect(rx, seconds).await;
    crate::sessions::stop(&state.sessions(), &row, None)
        .await
        .map_err(|e| anyhow::anyhow!("stopping the session: {e}"))?;
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let m = &state.metrics.capture;
    let g = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let report = LiveReport {
        cpu: cpu_name(),
        seconds: (elapsed * 10.0).round() / 10.0,
        fps_target,
        frames_in: g(&m.frames_in),
        frames_processed: g(&m.frames_processed),
        frames_dropped: g(&m.frames_dropped),
        fps_processed: ((g(&m.frames_processed) as f64 / elapsed) * 100.0).round() / 100.0,
        samples_face: counts[0],
        samples_voice: counts[1],
        samples_fused: counts[2],
        latency_ms_p50: pct(&mut face_lat, 0.50),
        latency_ms_p95: pct(&mut face_lat, 0.95),
        fused_latency_ms_p95: pct(&mut fused_lat, 0.95),
        audio_overruns: g(&m.audio_overruns),
        cpu_percent_one_core: (cpu / elapsed * 1000.0).round() / 10.0,
        peak_rss_mb: (peak_rss_mb() * 10.0).round() / 10.0,
    };
    let writer = state.writer.clone();
    tokio::task::spawn_blocking(move || writer.shutdown(Duration::from_secs(5))).await??;
    Ok(report)
}

/// An agent in the bench database, signed in.
async fn bench_user(state: &crate::state::AppState) -> anyhow::Result<AuthUser> {
    let user = UserRow {
        id: uuid::Uuid::now_v7().to_string(),
        username: "bench".into(),
        display_name: None,
        role: Role::Agent.as_str().into(),
        password_hash: String::new(),
        disabled: false,
        created_at: now_ms(),
    };
    let store = state.store.clone();
    let u = user.clone();
    tokio::task::spawn_blocking(move || store.create_user(&u)).await??;
    Ok(AuthUser {
        id: uuid::Uuid::parse_str(&user.id)?,
        username: user.username,
        role: Role::Agent,
        token_hash: String::new(),
    })
}

/// Live samples for `seconds`: counts (face, voice, fused) and the face and fused latencies
/// (capture time → event received), in milliseconds.
async fn collect(
    mut rx: tokio::sync::broadcast::Receiver<LiveEvent>,
    seconds: u64,
) -> ([u64; 3], Vec<f64>, Vec<f64>) {
    let (mut face_lat, mut fused_lat) = (Vec::new(), Vec::new());
    let mut counts = [0u64; 3];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(LiveEvent::Sample(s))) => {
                let ms = (chrono::Utc::now() - s.t).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                match s.modality {
                    Modality::Face => {
                        counts[0] += 1;
                        face_lat.push(ms);
                    }
                    Modality::Voice => counts[1] += 1,
                    Modality::Fused => {
                        counts[2] += 1;
                        fused_lat.push(ms);
                    }
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) | Err(_) => break,
        }
    }
    (counts, face_lat, fused_lat)
}

fn print_report(report: &LiveReport) {
    println!("live pipeline, {} s on {}", report.seconds, report.cpu);
    println!(
        "  frames: {} in, {} processed ({} fps, target {}), {} dropped",
        report.frames_in,
        report.frames_processed,
        report.fps_processed,
        report.fps_target,
        report.frames_dropped
    );
    println!(
        "  samples: {} face, {} voice, {} fused; audio overruns {}",
        report.samples_face, report.samples_voice, report.samples_fused, report.audio_overruns
    );
    println!(
        "  face-sample latency p50 {} ms, p95 {} ms (fused p95 {} ms)",
        report.latency_ms_p50, report.latency_ms_p95, report.fused_latency_ms_p95
    );
    println!(
        "  CPU {}% of one core (with ffmpeg children), peak RSS {} MB",
        report.cpu_percent_one_core, report.peak_rss_mb
    );
}
