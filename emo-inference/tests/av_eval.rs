//! `emod eval av` on generated recordings: the public-domain portrait with espeak-ng speech,
//! labelled by their names, beside files it must name and skip.
mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use emo_inference::av_eval::eval_av;
use emo_inference::{Engine, EngineOptions};

fn video(out: &Path, with_audio: bool) {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-loop", "1", "-t", "5", "-i"])
        .arg(fixtures().join("astronaut.jpg"));
    if with_audio {
        cmd.arg("-i").arg(fixtures().join("speech.wav"));
    }
    cmd.args([
        "-vf",
        "scale=320:320,format=yuv420p",
        "-r",
        "10",
        "-c:v",
        "libx264",
    ]);
    if with_audio {
        cmd.args(["-c:a", "aac", "-shortest"]);
    }
    assert!(cmd.arg(out).status().unwrap().success());
}

#[test]
fn labelled_recordings_are_scored_and_the_rest_named() {
    if !has_model("expression") || !has_model("speech") {
        return skip("eval av needs the expression and speech models");
    }
    let e = Engine::load(&EngineOptions::new(models_dir(), rt())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    video(&d.join("01-01-03-01-01-01-01.mp4"), true); // RAVDESS naming, happy
    video(&d.join("1001_DFA_NEU_XX.mp4"), true); // CREMA-D naming, neutral
    video(&d.join("holiday.mp4"), true); // no label in the name
    video(&d.join("01-01-05-01-01-01-02.mp4"), false); // angry, but no audio track
    std::fs::write(d.join("notes.txt"), b"not a video").unwrap();
    let r = eval_av(&e, d, &|_, _| {}).unwrap();
    assert_eq!(r.files, 2, "{r:?}");
    let skipped: Vec<(&str, &str)> = r
        .skipped
        .iter()
        .map(|s| (s.file.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped.contains(&("01-01-05-01-01-01-02.mp4", "no audio track")));
    assert!(skipped
        .iter()
        .any(|(f, why)| *f == "holiday.mp4" && why.contains("neither RAVDESS")));
    // Both clips are scored per clip on all three estimates, and every fused window counted once
    // against the clip's label (rows of the confusion: happy = 3, neutral = 6).
    assert_eq!(
        (r.clips.face.n, r.clips.voice.n, r.clips.fused.n),
        (2, 2, 2)
    );
    let rows = |c: &[[usize; 7]; 7], k: usize| c[k].iter().sum::<usize>();
    let w = &r.windows.fused;
    assert!(w.n >= 8, "{w:?}");
    assert_eq!(rows(&w.confusion, 3) + rows(&w.confusion, 6), w.n);
    assert!(
        rows(&w.confusion, 3) >= 4 && rows(&w.confusion, 6) >= 4,
        "{w:?}"
    );
    assert_eq!(r.windows.face.n, w.n, "every second has the portrait");
    assert!(r.windows.voice.n > 0 && r.windows.voice.n <= w.n);
    // The same portrait is one expression: its face label is the same for both clips, so the
    // face is right on exactly one of them at most.
    assert!(r.clips.face.correct <= 1);
    assert!(r.to_text().contains("skipped holiday.mp4"));

    // Nothing usable: an error that names each file and why.
    let empty = tempfile::tempdir().unwrap();
    video(&empty.path().join("holiday.mp4"), true);
    let err = eval_av(&e, empty.path(), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no usable labelled recording") && err.contains("holiday.mp4"),
        "{err}"
    );
}
