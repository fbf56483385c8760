//! Device listing and V4L2 cameras on whatever this machine has (CI: no camera at all).

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use emo_capture::{
    list_devices, open_camera, resolve, CameraOptions, CaptureError, FrameSlot, SourceKind,
    SourceSpec,
};

fn has_camera() -> bool {
    std::fs::read_dir("/dev")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("video"))
        })
        .unwrap_or(false)
}

#[test]
fn without_a_camera_opening_one_fails_fast_as_unavailable() {
    if has_camera() {
        eprintln!("SKIPPED: this machine has a /dev/video* device");
        // Counted by packaging/test.sh (cargo hides a passing test's stderr).
        if let Some(path) = std::env::var_os("EMO_SKIP_LOG") {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = std::io::Write::write_all(
                    &mut f,
                    b"without_a_camera_opening_one_fails_fast_as_unavailable: this machine has a camera\n",
                );
            }
        }
        return;
    }
    for spec in [
        SourceSpec::Index(0),
        SourceSpec::Auto,
        SourceSpec::Name("HD Webcam".into()),
    ] {
        let (etx, erx) = mpsc::channel();
        let t = Instant::now();
        let e = open_camera(&spec, &CameraOptions::default(), FrameSlot::new(), etx)
            .err()
            .unwrap_or_else(|| panic!("{spec} opened without a camera"));
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{spec}: {:?}",
            t.elapsed()
        );
        match e {
            CaptureError::Unavailable { source, message } => {
                assert_eq!(source, SourceKind::Camera);
                assert!(message.contains("no camera"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(erx.try_recv().is_err());
    }
}

#[test]
fn listing_and_resolving_never_fail() {
    let t = Instant::now();
    let d = list_devices();
    let json = serde_json::to_value(&d).unwrap();
    assert!(json["cameras"].is_array() && json["microphones"].is_array());
    eprintln!(
        "listed in {:?}: {} cameras, {} microphones",
        t.elapsed(),
        d.cameras.len(),
        d.microphones.len()
    );
    if !has_camera() {
        assert!(d.cameras.is_empty());
    }
    assert!(t.elapsed() < Duration::from_secs(10));

    let r = resolve(&SourceSpec::Auto, &SourceSpec::None);
    let json = serde_json::to_value(&r).unwrap();
    eprintln!("{json:#}");
    assert_eq!(json["camera"]["spec"], "auto");
    assert_eq!(json["camera"]["kind"], "camera");
    assert_eq!(r.camera.available, has_camera());
    if !has_camera() {
        assert!(r.camera.message.as_deref().unwrap().contains("no camera"));
    }
    assert_eq!(r.microphone.via, "none");
    assert!(!r.microphone.available);

    let tmp = tempfile::NamedTempFile::new().unwrap();
    let file = SourceSpec::File(tmp.path().to_path_buf());
    let r = resolve(
        &file,
        &SourceSpec::File(Path::new("/nonexistent.wav").into()),
    );
    assert!(r.camera.available && r.camera.via == "file");
    assert!(!r.microphone.available);
    assert!(r.microphone.message.unwrap().contains("/nonexistent.wav"));
    let r = resolve(
        &"ffmpeg:rtsp://cam/1".parse().unwrap(),
        &SourceSpec::Name("no-such-mic".into()),
    );
    assert_eq!(r.camera.target.as_deref(), Some("ffmpeg:rtsp://cam/1"));
    assert!(!r.microphone.available);
}
