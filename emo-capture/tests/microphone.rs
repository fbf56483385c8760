//! The cpal (ALSA) microphone path for real: a PulseAudio server with a virtual speaker whose
//! monitor is the default source (packaging/audio-test-env.sh), speech played into it with
//! `paplay`, captured by `open_microphone(auto)` through ALSA's `default` device. Without that
//! server the test says SKIPPED, unless EMO_REQUIRE_AUDIO=1 (CI), where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[path = "common/compliance.rs"]
mod compliance;

use emo_capture::{
    list_devices, open_microphone, AudioChunk, SourceEvent, SourceKind, SourceSpec, SourceState,
};

/// cpal's ALSA host shares process-wide state (ALSA's global configuration is re-read only
/// when no stream or device is alive), so the tests that use it take turns.
static ALSA: Mutex<()> = Mutex::new(());

/// `EMO_REQUIRE_AUDIO` set to `1`, `true` or `yes`.
fn required() -> bool {
    std::env::var("EMO_REQUIRE_AUDIO")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// Appends `<test>: <reason>` to the file named by `EMO_SKIP_LOG`, which `packaging/test.sh`
/// counts after the run (cargo hides a passing test's stderr).
fn note_skip(reason: &str) {
    if let Some(path) = std::env::var_os("EMO_SKIP_LOG") {
        let test = std::thread::current().name().unwrap_or("?").to_string();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = std::io::Write::write_all(&mut f, format!("{test}: {reason}\n").as_bytes());
        }
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/audio-test-env.sh")
}

fn server_ready() -> bool {
    let out = Command::new("pactl")
        .args(["list", "short", "sinks"])
        .output();
    matches!(out, Ok(o) if o.status.success()
        && String::from_utf8_lossy(&o.stdout).contains("emo_speaker"))
}

/// Make sure the test server runs (starting it with the script where PulseAudio is installed).
fn audio_server() -> bool {
    if server_ready() {
        return true;
    }
    let installed = Command::new("pulseaudio").arg("--version").output().is_ok();
    if installed || required() {
        let st = Command::new("bash").arg(script()).status();
        eprintln!("audio-test-env.sh: {st:?}");
    }
    if server_ready() {
        return true;
    }
    assert!(
        !required(),
        "EMO_REQUIRE_AUDIO=1 but the PulseAudio test server is not running and \
         packaging/audio-test-env.sh could not start it"
    );
    eprintln!(
        "SKIPPED: no PulseAudio test server (run packaging/audio-test-env.sh as root; \
         EMO_REQUIRE_AUDIO=1 makes this a failure)"
    );
    note_skip("no PulseAudio test server (packaging/audio-test-env.sh)");
    false
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

fn collect(rx: &Receiver<AudioChunk>, d: Duration) -> Vec<AudioChunk> {
    let deadline = Instant::now() + d;
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Ok(c) = rx.recv_timeout(left) {
            out.push(c);
        }
    }
    out
}

/// Like [`collect`], also noting how late each chunk arrived after its last sample.
fn collect_timed(
    rx: &Receiver<AudioChunk>,
    d: Duration,
    late: &mut Vec<Duration>,
) -> Vec<AudioChunk> {
    let deadline = Instant::now() + d;
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Ok(c) = rx.recv_timeout(left) {
            let end = c.captured + Duration::from_secs_f64(c.samples.len() as f64 / 16_000.0);
            late.push(
                std::time::SystemTime::now()
                    .duration_since(end)
                    .unwrap_or_default(),
            );
            out.push(c);
        }
    }
    out
}

fn wait_state(rx: &Receiver<SourceEvent>, s: SourceState, within: Duration) -> SourceEvent {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no {s} event within {within:?}"));
        match rx.recv_timeout(left) {
            Ok(e) if e.state == s => return e,
            Ok(e) => eprintln!("event: {e:?}"),
            Err(_) => panic!("no {s} event within {within:?}"),
        }
    }
}

/// Speech made with espeak-ng, and its RMS.
fn speech(dir: &Path) -> (PathBuf, f32, f64) {
    let wav = dir.join("speech.wav");
    let st = Command::new("espeak-ng")
        .args(["-s", "150", "-w"])
        .arg(&wav)
        .arg("The quick brown fox jumps over the lazy dog. This is the microphone test.")
        .status()
        .expect("espeak-ng must be installed (packaging/install-deps.sh)");
    assert!(st.success());
    let mut r = hound::WavReader::open(&wav).unwrap();
    let spec = r.spec();
    let x: Vec<f32> = r
        .samples::<i16>()
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect();
    let secs = x.len() as f64 / spec.sample_rate as f64 / spec.channels as f64;
    (wav, rms(&x), secs)
}

#[test]
fn the_default_microphone_captures_speech_played_into_a_real_pulseaudio_server() {
    let _g = ALSA.lock().unwrap_or_else(|e| e.into_inner());
    if !audio_server() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (wav, wav_rms, wav_secs) = speech(dir.path());

    let (ctx, crx) = mpsc::sync_channel::<AudioChunk>(256);
    let (etx, erx) = mpsc::channel();
    let t_open = Instant::now();
    let mut mic =
        open_microphone(&SourceSpec::Auto, ctx, etx).expect("open the default microphone");
    eprintln!("opened {} in {:?}", mic.description(), t_open.elapsed());
    assert!(
        mic.description().starts_with("default"),
        "{}",
        mic.description()
    );
    let active = erx.recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(
        (active.kind, active.state),
        (SourceKind::Microphone, SourceState::Active)
    );
    assert!(mic.child_pids().is_empty(), "cpal, not ffmpeg");

    // Nothing plays: the monitor of the virtual speaker is silent.
    let quiet = collect(&crx, Duration::from_millis(800));
    let q: Vec<f32> = quiet
        .iter()
        .flat_map(|c| c.samples.iter().copied())
        .collect();
    assert!(q.len() >= 8_000, "{} samples in 0.8 s", q.len());
    let quiet_rms = rms(&q);
    assert!(quiet_rms < 0.001, "silence has RMS {quiet_rms}");

    // Speech plays into the speaker; the microphone hears it.
    let t0 = Instant::now();
    let mut player = Command::new("paplay")
        .args(["--device=emo_speaker"])
        .arg(&wav)
        .spawn()
        .expect("paplay (pulseaudio-utils)");
    let mut heard = Vec::new();
    let mut late = Vec::new();
    loop {
        heard.extend(collect_timed(&crx, Duration::from_millis(200), &mut late));
        if player.try_wait().unwrap().is_some() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "paplay hangs");
    }
    heard.extend(collect(&crx, Duration::from_millis(500)));
    let took = t0.elapsed();
    let x: Vec<f32> = heard
        .iter()
        .flat_map(|c| c.samples.iter().copied())
        .collect();
    let per_chunk: Vec<f32> = heard.iter().map(|c| rms(&c.samples)).collect();
    let loud = per_chunk.iter().filter(|r| **r > 0.01).count();
    let peak = per_chunk.iter().copied().fold(0.0, f32::max);
    let voiced: Vec<f32> = heard
        .iter()
        .filter(|c| rms(&c.samples) > 0.01)
        .flat_map(|c| c.samples.iter().copied())
        .collect();
    let voiced_rms = rms(&voiced);
    eprintln!(
        "speech {wav_secs:.2} s (RMS {wav_rms:.3}): captured {} samples in {took:?}, {loud}/{} chunks \
         loud, peak chunk RMS {peak:.3}, voiced RMS {voiced_rms:.3}, silence RMS {quiet_rms:.5}, \
         overruns {}",
        x.len(),
        heard.len(),
        mic.overruns()
    );
    assert!(peak > 0.05, "speech energy: peak chunk RMS {peak}");
    let speech_chunks = (wav_secs * 10.0) as usize;
    assert!(
        loud * 2 >= speech_chunks,
        "{loud} loud chunks for {wav_secs} s of speech"
    );
    // The level is the file's (a null sink at 100% passes it through), not noise.
    assert!(
        voiced_rms > wav_rms * 0.5 && voiced_rms < wav_rms * 2.0,
        "voiced RMS {voiced_rms} vs the file's {wav_rms}"
    );
    // 16 kHz of audio for the wall-clock time that passed (nothing lost, nothing doubled).
    let expect = took.as_secs_f64() * 16_000.0;
    assert!(
        (x.len() as f64) > expect * 0.85 && (x.len() as f64) < expect * 1.1,
        "{} samples in {took:?}",
        x.len()
    );
    assert_eq!(mic.overruns(), 0);
    // Chunks arrive soon after their audio was captured (short device periods).
    late.sort();
    let p50 = late[late.len() / 2];
    let p95 = late[late.len() * 95 / 100];
    eprintln!("chunk delivery after its last sample: p50 {p50:?}, p95 {p95:?}");
    assert!(
        p95 < Duration::from_millis(400),
        "chunks arrive late: p95 {p95:?}"
    );
    // Chunk times follow the wall clock, 100 ms apart.
    for w in heard.windows(2) {
        let d = w[1].captured.duration_since(w[0].captured).unwrap();
        assert!(
            d > Duration::from_millis(60) && d < Duration::from_millis(160),
            "{d:?}"
        );
    }

    // The server goes away mid-session: lost; it comes back: recovered, audio flows again.
    let st = Command::new("bash")
        .arg(script())
        .arg("stop")
        .status()
        .unwrap();
    assert!(st.success());
    let t_kill = Instant::now();
    let lost = wait_state(&erx, SourceState::Lost, Duration::from_secs(8));
    eprintln!("lost after {:?}: {}", t_kill.elapsed(), lost.message);
    std::thread::sleep(Duration::from_secs(1));
    let st = Command::new("bash").arg(script()).status().unwrap();
    assert!(st.success());
    let t_up = Instant::now();
    let rec = wait_state(&erx, SourceState::Recovered, Duration::from_secs(15));
    eprintln!(
        "recovered {:?} after the server restarted: {}",
        t_up.elapsed(),
        rec.message
    );
    let _ = crx.try_iter().count();
    let again = collect(&crx, Duration::from_millis(500));
    assert!(
        again.len() >= 3,
        "audio flows after recovery: {} chunks",
        again.len()
    );

    let t = Instant::now();
    mic.stop();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        t.elapsed()
    );
    assert!(mic.is_finished());
}

#[test]
fn alsa_s_null_device_opens_a_cpal_stream_by_name() {
    // Works on any Linux machine with alsa-lib, sound server or not: the cpal path (device
    // lookup by name, stream, callback, resampling, chunking) with zeros for input.
    let _g = ALSA.lock().unwrap_or_else(|e| e.into_inner());
    let (ctx, crx) = mpsc::sync_channel::<AudioChunk>(256);
    let (etx, erx) = mpsc::channel();
    let mut mic = open_microphone(&SourceSpec::Name("null".into()), ctx, etx).expect("ALSA null");
    assert_eq!(erx.recv().unwrap().state, SourceState::Active);
    let chunks = collect(&crx, Duration::from_millis(1500));
    assert!(!chunks.is_empty(), "the null device delivers");
    assert!(chunks
        .iter()
        .all(|c| c.samples.len() == emo_capture::CHUNK_SAMPLES));
    assert!(chunks.iter().all(|c| c.samples.iter().all(|s| *s == 0.0)));
    let t = Instant::now();
    mic.stop();
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn an_unknown_microphone_is_unavailable_and_listing_never_fails() {
    let _g = ALSA.lock().unwrap_or_else(|e| e.into_inner());
    let (ctx, _crx) = mpsc::sync_channel::<AudioChunk>(4);
    let (etx, erx) = mpsc::channel();
    let t = Instant::now();
    let e = open_microphone(&SourceSpec::Name("no-such-microphone".into()), ctx, etx)
        .err()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    let s = e.to_string();
    assert!(
        s.starts_with("microphone unavailable") && s.contains("no-such-microphone"),
        "{s}"
    );
    assert!(erx.try_recv().is_err());

    let d = list_devices();
    eprintln!("{}", serde_json::to_string_pretty(&d).unwrap());
    assert!(d.microphones.iter().filter(|m| m.default).count() <= 1);
    if server_ready() {
        let def = d
            .microphones
            .iter()
            .find(|m| m.default)
            .expect("a default microphone");
        assert_eq!(def.name, "default");
        assert!(def.sample_rates.contains(&16_000), "{def:?}");
    }
}

/// The cpal (ALSA) microphone held to the contract every source keeps
/// (`tests/common/compliance.rs`): ALSA's `null` device on any machine, and the default device
/// through the PulseAudio test server where it runs.
#[test]
fn alsa_microphones_keep_the_source_contract() {
    let _g = ALSA.lock().unwrap_or_else(|e| e.into_inner());
    compliance::assert_audio_compliance(&SourceSpec::Name("null".into()), false, Duration::ZERO);
    if audio_server() {
        compliance::assert_audio_compliance(&SourceSpec::Auto, false, Duration::ZERO);
    }
}
