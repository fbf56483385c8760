//! End-to-end analysis on generated fixtures with the real models: a public-domain portrait, a
//! spoken WAV from espeak-ng, and a short video assembled with ffmpeg from both.
mod common;

use std::process::Command;

use common::*;
use emo_api_types::analyze::MediaKind;
use emo_inference::face::FaceDetector;
use emo_inference::{Engine, EngineOptions};

#[test]
fn detector_finds_the_astronaut() {
    let m = manifest();
    let det = FaceDetector::load(&m, &rt()).unwrap();
    let img =
        emo_inference::media::read_image(&fixtures().join("astronaut.jpg"), &Default::default())
            .unwrap();
    let faces = det.detect(&img).unwrap();
    assert_eq!(faces.len(), 1, "{faces:?}");
    let f = &faces[0];
    // Face of the 256×256 portrait: centre ≈ (113, 64), side ≈ 47 px (checked in Python).
    let (cx, cy) = ((f.xmin + f.xmax) / 2.0, (f.ymin + f.ymax) / 2.0);
    assert!((cx - 113.0).abs() < 8.0 && (cy - 64.0).abs() < 8.0, "{f:?}");
    assert!(f.score > 0.8 && (40.0..60.0).contains(&f.width()));
    assert_eq!(f.keypoints.len(), 6);
    // Four faces in the bench frame.
    let four = det
        .detect(&emo_inference::bench::bench_frame(4).unwrap())
        .unwrap();
    assert_eq!(four.len(), 4, "{four:?}");
    let blank = image::RgbImage::from_pixel(320, 240, image::Rgb([128, 128, 128]));
    assert!(det.detect(&blank).unwrap().is_empty());
}

fn engine() -> Option<Engine> {
    if !has_model("expression") || !has_model("speech") {
        return None;
    }
    Some(Engine::load(&EngineOptions::new(models_dir(), rt())).unwrap())
}

#[test]
fn analyze_image_audio_video_and_bad_files() {
    let Some(e) = engine() else { return };
    let img = e.analyze_file(&fixtures().join("astronaut.jpg"), "astronaut.jpg", &|_| {});
    assert_eq!(img.error, None);
    assert_eq!(img.kind, Some(MediaKind::Image));
    assert_eq!(img.faces.len(), 1);
    let p: f64 = img.faces[0].probabilities.values().sum();
    assert!((p - 1.0).abs() < 1e-4 && img.faces[0].probabilities.len() == 7);
    assert_eq!(img.timeline.len(), 1);

    let wav = e.analyze_file(&fixtures().join("speech.wav"), "speech.wav", &|_| {});
    assert_eq!(wav.error, None);
    assert!(wav.voice.len() >= 3, "{:?}", wav.voice);
    assert!(wav
        .voice
        .iter()
        .any(|v| v.voiced && v.probabilities.len() == 8));
    assert!(!wav.timeline.is_empty() && wav.timeline.iter().all(|t| t.modalities == ["voice"]));

    // A 6-s video: the portrait as a still + the speech track.
    let dir = tempfile::tempdir().unwrap();
    let mp4 = dir.path().join("clip.mp4");
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-loop", "1", "-t", "6", "-i"])
        .arg(fixtures().join("astronaut.jpg"))
        .arg("-i")
        .arg(fixtures().join("speech.wav"))
        .args([
            "-vf",
            "scale=320:320,format=yuv420p",
            "-r",
            "10",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(&mp4)
        .status()
        .unwrap();
    assert!(st.success());
    let vid = e.analyze_file(&mp4, "clip.mp4", &|_| {});
    assert_eq!(vid.error, None);
    assert_eq!(vid.kind, Some(MediaKind::Video));
    assert!(vid.faces.len() >= 20, "{}", vid.faces.len());
    assert!(
        vid.timeline.iter().any(|t| t.modalities.len() == 2),
        "{:?}",
        vid.timeline
    );
    let s = vid.summary.unwrap();
    assert!(s.face_coverage > 0.8);

    // Corrupt / unsupported / missing files are errors naming the problem.
    let bad = dir.path().join("broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let r = e.analyze_file(&bad, "broken.png", &|_| {});
    assert!(r.error.as_deref().unwrap().contains("image"), "{r:?}");
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, b"hello").unwrap();
    assert!(e
        .analyze_file(&txt, "notes.txt", &|_| {})
        .error
        .unwrap()
        .contains("unsupported"));
    assert!(e
        .analyze_file(&dir.path().join("nope.wav"), "nope.wav", &|_| {})
        .error
        .is_some());
}

#[test]
fn resampled_input_gives_the_same_label() {
    let Some(e) = engine() else { return };
    let sp = e.speech().unwrap();
    let a = emo_inference::audio::read_wav(&fixtures().join("speech.wav"), &Default::default())
        .unwrap();
    let up = emo_inference::audio::resample(&a.samples, 16000, 44100).unwrap();
    let back = sp
        .prepare(&emo_inference::audio::Audio {
            samples: up,
            sample_rate: 44100,
        })
        .unwrap();
    let p1 = sp.classify_clips(std::slice::from_ref(&a.samples)).unwrap();
    let p2 = sp.classify_clips(&[back]).unwrap();
    let d = p1[0]
        .iter()
        .zip(&p2[0])
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(d < 0.05, "{p1:?} vs {p2:?}");
}

/// Live and files share one path: the speech fixture pushed in 100-ms chunks through
/// [`SpeechStream`] gives a first window at 3 s, then one per second, with the same
/// probabilities as the offline analysis of the same 3-s windows.
#[test]
fn speech_stream_matches_the_offline_windows() {
    let Some(e) = engine() else { return };
    let sp = e.speech().unwrap();
    let a = emo_inference::audio::read_wav(&fixtures().join("speech.wav"), &Default::default())
        .unwrap();
    let x = sp.prepare(&a).unwrap();
    let offline = sp.analyze(&x).unwrap();
    let mut stream = emo_inference::stream::SpeechStream::new(sp);
    let t0 = 1000.0;
    let mut live = Vec::new();
    for (i, chunk) in x.chunks(1600).enumerate() {
        live.extend(stream.push(sp, chunk, t0 + i as f64 * 0.1).unwrap());
    }
    let full = x.len() / 16_000 - 2; // full 3-s windows with a 1-s hop
    assert_eq!(live.len(), full, "{} s of audio", x.len() / 16_000);
    for (k, w) in live.iter().enumerate() {
        assert!(
            (w.end - (t0 + 3.0 + k as f64)).abs() < 1e-6,
            "{k}: {}",
            w.end
        );
        let o = &offline[k];
        assert!((o.start - k as f64).abs() < 1e-9);
        assert_eq!(w.voiced, o.voiced);
        if w.voiced {
            assert_eq!(w.label, o.label);
            for (p, q) in w.probabilities.iter().zip(&o.probabilities) {
                assert!((p - q).abs() < 1e-4, "window {k}: {p} vs {q}");
            }
        }
    }
    assert!(live.iter().any(|w| w.voiced));
}
