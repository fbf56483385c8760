//! Media fixtures generated in the tests: speech from espeak-ng and videos of the repository's
//! public-domain face photo, through the real ffmpeg. Nothing from a dataset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .expect("ffmpeg and espeak-ng are needed by the tests");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Speech from espeak-ng, `dir/speech.wav`.
pub fn speech(dir: &Path) -> PathBuf {
    let wav = dir.join("speech.wav");
    run(Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "140", "-w"])
        .arg(&wav)
        .arg(
            "I am really happy to be here with you today. What a wonderful surprise this is. \
             Now I have to tell you something sad, and I am sorry about it.",
        ));
    wav
}

/// A `secs`-long video of the face photo; with `audio`, that track (looped) too.
pub fn video(dir: &Path, name: &str, secs: u32, audio: Option<&Path>) -> PathBuf {
    let out = dir.join(name);
    let face = root().join("emo-inference/tests/fixtures/astronaut.jpg");
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-loop",
        "1",
        "-framerate",
        "25",
        "-i",
    ])
    .arg(face);
    if let Some(a) = audio {
        cmd.args(["-stream_loop", "-1", "-i"]).arg(a);
    }
    cmd.args([
        "-t",
        &secs.to_string(),
        "-vf",
        "scale=320:320",
        "-c:v",
        "libx264",
    ])
    .args(["-preset", "ultrafast", "-pix_fmt", "yuv420p"]);
    if audio.is_some() {
        cmd.args(["-c:a", "aac", "-ar", "44100"]);
    }
    run(cmd.arg(&out));
    out
}

/// A `secs`-long 320x240 test-pattern video at `fps` (no face, no audio): cheap to make, slow to
/// analyse, for tests that need an analysis still running when the client leaves.
pub fn test_pattern(dir: &Path, name: &str, secs: u32, fps: u32) -> PathBuf {
    let out = dir.join(name);
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size=320x240:rate={fps}"))
        .args([
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-y",
        ])
        .arg(&out));
    out
}

/// A `secs`-long 16 kHz WAV of the speech, looped.
pub fn long_speech(dir: &Path, secs: u32) -> PathBuf {
    let s = speech(dir);
    let out = dir.join("long.wav");
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i"])
        .arg(&s)
        .args(["-t", &secs.to_string(), "-ar", "16000", "-ac", "1"])
        .arg(&out));
    out
}
