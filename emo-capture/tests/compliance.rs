//! Every ffmpeg-fed capture source kind held to the one source contract
//! (`tests/common/compliance.rs`); the ALSA microphone is held to it in `microphone.rs`, which
//! owns the audio test server.

#[path = "common/compliance.rs"]
mod compliance;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use compliance::{assert_audio_compliance, assert_video_compliance};
use emo_capture::{CameraOptions, SourceSpec};

/// A 3-s clip with a test pattern and a 440 Hz tone.
fn clip(dir: &Path) -> PathBuf {
    let out = dir.join("clip.mkv");
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25:duration=3",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100:duration=3",
        ])
        .args(["-c:v", "mpeg4", "-c:a", "pcm_s16le", "-shortest"])
        .arg(&out)
        .status()
        .expect("ffmpeg must be installed (packaging/install-deps.sh)");
    assert!(st.success());
    out
}

const OPTS: CameraOptions = CameraOptions {
    fps: 10.0,
    width: 160,
    height: 120,
};

#[test]
fn a_video_file_keeps_the_source_contract() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SourceSpec::File(clip(dir.path()));
    assert_video_compliance(&spec, &OPTS, true, Duration::from_secs(20));
}

#[test]
fn an_audio_file_keeps_the_source_contract() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SourceSpec::File(clip(dir.path()));
    assert_audio_compliance(&spec, true, Duration::from_secs(20));
}

#[test]
fn an_endless_ffmpeg_camera_keeps_the_source_contract() {
    let spec: SourceSpec = "ffmpeg:-re -f lavfi testsrc=size=320x240:rate=25"
        .parse()
        .unwrap();
    assert_video_compliance(&spec, &OPTS, false, Duration::ZERO);
}

#[test]
fn an_endless_ffmpeg_microphone_keeps_the_source_contract() {
    let spec: SourceSpec = "ffmpeg:-re -f lavfi sine=frequency=300:sample_rate=48000"
        .parse()
        .unwrap();
    assert_audio_compliance(&spec, false, Duration::ZERO);
}
