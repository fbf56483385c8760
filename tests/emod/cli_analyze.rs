//! The real `emod` binary: `models check`, `analyze`, `eval`, `bench` on generated fixtures
//! (emo-inference/tests/fixtures). Parts needing the expression/speech models are skipped until
//! those models are listed in models/manifest.toml (reported as skipped; under
//! `EMO_REQUIRE_DATASETS=1`, as in CI, a missing model fails).
use crate::common;
use crate::models;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `models/` of the checkout, or `EMO_TEST_MODELS_DIR` (to try candidate models).
fn models() -> PathBuf {
    std::env::var_os("EMO_TEST_MODELS_DIR").map_or_else(|| root().join("models"), PathBuf::from)
}

fn fixture(name: &str) -> PathBuf {
    root().join("emo-inference/tests/fixtures").join(name)
}

fn emod(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emod"))
        .args(args)
        .env("EMO_MODELS_DIR", models())
        .env_remove("EMO_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent-emo-test")
        .env("EMO_ONNXRUNTIME_INTRA_THREADS", "1")
        .output()
        .expect("run emod")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The expression and speech models are there; otherwise the test skips, and says so (a
/// failure under `EMO_REQUIRE_DATASETS=1`).
fn have_models() -> bool {
    models::have_models(&models(), &["expression", "speech"])
}

#[test]
fn models_check_reports_runtime_and_models() {
    let o = emod(&["models", "check"]);
    let out = text(&o.stdout);
    // The exit status is what scripts and the systemd unit's pre-start check act on.
    assert!(
        o.status.success(),
        "models check failed: {out}\n{}",
        text(&o.stderr)
    );
    assert!(
        out.contains("ONNX Runtime 1."),
        "{out}\n{}",
        text(&o.stderr)
    );
    assert!(out.contains("CPUExecutionProvider"));
    assert!(
        out.contains("face_detector") && out.contains(" ok "),
        "{out}"
    );
}

#[test]
fn missing_runtime_is_a_one_line_error() {
    let o = Command::new(env!("CARGO_BIN_EXE_emod"))
        .args(["analyze"])
        .arg(fixture("astronaut.jpg"))
        .env("EMO_MODELS_DIR", models())
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .env("XDG_CONFIG_HOME", "/nonexistent-emo-test")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("install-onnxruntime.sh") && err.contains("ORT_DYLIB_PATH"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn analyze_files_json_and_table() {
    if !have_models() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff not a jpeg").unwrap();
    let img = fixture("astronaut.jpg");
    let wav = fixture("speech.wav");
    let o = emod(&[
        "analyze",
        "--json",
        img.to_str().unwrap(),
        bad.to_str().unwrap(),
        wav.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success(),
        "a failed file makes the exit status non-zero"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    assert!(files[0]["error"].is_null());
    assert_eq!(files[0]["faces"].as_array().unwrap().len(), 1);
    let f = &files[0]["faces"][0];
    for k in [
        "box",
        "detection_score",
        "emotion",
        "confidence",
        "probabilities",
    ] {
        assert!(!f[k].is_null(), "{k}");
    }
    assert!(files[1]["error"].as_str().unwrap().contains("image"));
    assert!(text(&o.stderr).contains("broken.jpg"));
    assert!(files[2]["voice"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["voiced"] == true));
    assert!(!files[2]["timeline"].as_array().unwrap().is_empty());

    let o = emod(&["analyze", img.to_str().unwrap(), "--strategy", "mode"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("Expression estimates") && out.contains("faces: 1"),
        "{out}"
    );
}

#[test]
fn eval_and_bench_emit_the_documented_json() {
    if !have_models() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let faces = dir.path().join("faces");
    for class in ["happy", "sad"] {
        std::fs::create_dir_all(faces.join(class)).unwrap();
        let img = image::open(fixture("astronaut.jpg")).unwrap().to_luma8();
        let crop = image::imageops::crop_imm(&img, 85, 36, 56, 56).to_image();
        let small = image::imageops::resize(&crop, 48, 48, image::imageops::FilterType::Triangle);
        small.save(faces.join(class).join("a.png")).unwrap();
    }
    let speech = dir.path().join("speech/Actor_01");
    std::fs::create_dir_all(&speech).unwrap();
    for code in ["03", "04", "02"] {
        std::fs::copy(
            fixture("speech.wav"),
            speech.join(format!("03-01-{code}-01-01-01-01.wav")),
        )
        .unwrap();
    }
    let o = emod(&["eval", "faces", faces.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in ["accuracy", "macro_f1", "per_class", "confusion", "n"] {
        assert!(!v[k].is_null(), "{k}");
    }
    assert_eq!(v["n"], 2);

    let sdir = dir.path().join("speech");
    let o = emod(&["eval", "speech", sdir.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["n"], 3);
    assert_eq!(v["confusion"].as_array().unwrap().len(), 8);

    let o = emod(&[
        "eval",
        "fusion",
        "--faces",
        faces.to_str().unwrap(),
        "--speech",
        sdir.to_str().unwrap(),
        "--seed",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in [
        "n",
        "face_accuracy",
        "speech_accuracy",
        "fused_accuracy",
        "mode_accuracy",
    ] {
        assert!(!v[k].is_null(), "{k}");
    }
    assert_eq!(v["n"], 2); // happy and sad clips; calm → neutral has no face images here

    // Pseudo-sessions: one speaker (actor 01), its two usable clips in sequence.
    let o = emod(&[
        "eval",
        "fusion",
        "--faces",
        faces.to_str().unwrap(),
        "--speech",
        sdir.to_str().unwrap(),
        "--sessions",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sessions = v["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{v}");
    assert_eq!(sessions[0]["speaker"], "actor 01");
    assert_eq!(sessions[0]["windows"], 2);
    for k in [
        "fused_accuracy",
        "fused_minus_better_worst",
        "fused_ece",
        "voice_weight",
    ] {
        assert!(v[k].as_f64().is_some(), "{k}: {v}");
    }

    let o = emod(&["bench", "--json", "--iterations", "5", "--no-librosa"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in [
        "face_pipeline_fps",
        "face_pipeline_fps_4faces",
        "speech_realtime_factor",
        "features_realtime_factor",
    ] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}");
    }
    assert_eq!(v["faces_found_4faces"], 4);
}

/// FER-2013's training images (`EMO_TEST_FER_DIR`, default ../shared/datasets/fer2013/train).
fn fer_dir() -> PathBuf {
    std::env::var_os("EMO_TEST_FER_DIR").map_or_else(
        || root().join("../shared/datasets/fer2013/train"),
        PathBuf::from,
    )
}

/// `emod eval faces` on a labelled set whose every prediction is known, so that its figures can
/// be computed by hand: the crops pinned in emo-inference/tests/fixtures/expression_reference.json
/// (FER-2013 files named there, labelled right with a margin of 0.25 in both precisions) are
/// copied at run time into a temporary folder under labels chosen here (nothing of the dataset
/// is kept in the project). The table is emo-inference/tests/eval_metrics.rs's:
///
/// ```text
/// true \ predicted  angry happy sad neutral
/// angry               3     1    .    .
/// happy               .     2    .    .
/// sad                 1     .    1    1
/// ```
/// accuracy 6/9, macro-F1 (3/4 + 4/5 + 1/2) / 3 = 41/60; a transposed confusion, an F1 averaged
/// over other classes, or labels read from the wrong folders fail.
#[test]
fn eval_faces_reports_hand_computed_figures() {
    if !have_models() {
        return;
    }
    if !fer_dir().is_dir() {
        let reason = format!("no FER-2013 at {}", fer_dir().display());
        assert!(
            !common::env_flag("EMO_REQUIRE_DATASETS"),
            "EMO_REQUIRE_DATASETS is set: {reason}"
        );
        common::skipped(&reason);
        return;
    }
    let pinned: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("expression_reference.json")).unwrap(),
    )
    .unwrap();
    // The first pinned crop of a class, and the second.
    let crop = |class: &str, nth: usize| -> PathBuf {
        let c = pinned["crops"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["class"] == class)
            .nth(nth)
            .unwrap_or_else(|| panic!("no pinned {class} crop #{nth}"));
        fer_dir().join(class).join(c["file"].as_str().unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    // (folder = the label, file name, crop = what the model answers)
    let set = [
        ("angry", "a1.jpg", crop("angry", 0)),
        ("angry", "a2.jpg", crop("angry", 1)),
        ("angry", "a3.jpg", crop("angry", 0)),
        ("angry", "h.jpg", crop("happy", 0)),
        ("happy", "h1.jpg", crop("happy", 0)),
        ("happy", "h2.jpg", crop("happy", 1)),
        ("sad", "a.jpg", crop("angry", 1)),
        ("sad", "s.jpg", crop("sad", 0)),
        ("sad", "n.jpg", crop("neutral", 0)),
    ];
    for (label, name, src) in &set {
        std::fs::create_dir_all(dir.path().join(label)).unwrap();
        std::fs::copy(src, dir.path().join(label).join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    }
    let d = dir.path().to_str().unwrap();

    let o = emod(&["eval", "faces", d, "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let close = |k: &str, want: f64| {
        let got = v[k].as_f64().unwrap_or(f64::NAN);
        assert!((got - want).abs() < 1e-12, "{k}: {got}, want {want}\n{v:#}");
    };
    assert_eq!(v["n"], 9, "{v:#}");
    assert_eq!(v["skipped"], 0, "{v:#}");
    close("accuracy", 6.0 / 9.0);
    close("macro_f1", 41.0 / 60.0);
    let confusion: Vec<Vec<u64>> = serde_json::from_value(v["confusion"].clone()).unwrap();
    assert_eq!(
        confusion,
        vec![
            vec![3, 0, 0, 1, 0, 0, 0],
            vec![0; 7],
            vec![0; 7],
            vec![0, 0, 0, 2, 0, 0, 0],
            vec![1, 0, 0, 0, 1, 0, 1],
            vec![0; 7],
            vec![0; 7],
        ],
        "confusion[true][predicted] in the order of {}",
        v["labels"]
    );
    for (class, recall, precision, f1, n) in [
        ("angry", 0.75, 0.75, 0.75, 4),
        ("happy", 1.0, 2.0 / 3.0, 0.8, 2),
        ("sad", 1.0 / 3.0, 1.0, 0.5, 3),
        ("neutral", 0.0, 0.0, 0.0, 0),
    ] {
        let c = &v["per_class"][class];
        let near = |k: &str, want: f64| (c[k].as_f64().unwrap_or(f64::NAN) - want).abs() < 1e-12;
        assert!(
            near("recall", recall) && near("precision", precision) && near("f1", f1) && c["n"] == n,
            "{class}: {c}, want recall {recall} precision {precision} F1 {f1} n {n}"
        );
    }

    // The table: the same figures, and the confusion row by row.
    let o = emod(&["eval", "faces", d]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    let row = |label: &str, counts: [u32; 7]| {
        let cells: String = counts.iter().map(|c| format!(" {c:>8}")).collect();
        format!("{label:<10}{cells}")
    };
    for line in [
        "n = 9".to_string(),
        "accuracy  0.6667".into(),
        "macro-F1  0.6833".into(),
        "angry       0.7500    0.7500  0.7500      4".into(),
        "happy       1.0000    0.6667  0.8000      2".into(),
        "sad         0.3333    1.0000  0.5000      3".into(),
        row("angry", [3, 0, 0, 1, 0, 0, 0]),
        row("happy", [0, 0, 0, 2, 0, 0, 0]),
        row("sad", [1, 0, 0, 0, 1, 0, 1]),
        row("neutral", [0; 7]),
    ] {
        assert!(
            table.lines().any(|l| l == line),
            "no line {line:?} in\n{table}"
        );
    }
}

/// Runs ffmpeg to build a fixture from the committed still and speech track.
fn ffmpeg(args: &[&str], out: &Path) {
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg (packaging/install-deps.sh installs it)");
    assert!(st.success(), "ffmpeg {args:?}");
}

#[test]
fn analyze_video_containers_and_compressed_audio() {
    if !have_models() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = fixture("astronaut.jpg");
    let wav = fixture("speech.wav");
    let (img, wav) = (img.to_str().unwrap(), wav.to_str().unwrap());
    let still = ["-loop", "1", "-t", "4", "-i", img, "-i", wav];
    let video = [
        "-vf",
        "scale=320:320,format=yuv420p",
        "-r",
        "10",
        "-shortest",
    ];
    let mkv = dir.path().join("clip.mkv");
    let args: Vec<&str> = still
        .iter()
        .chain(&video)
        .chain(&["-c:v", "libx264", "-c:a", "flac"])
        .copied()
        .collect();
    ffmpeg(&args, &mkv);
    let webm = dir.path().join("clip.webm");
    let args: Vec<&str> = still
        .iter()
        .chain(&video)
        .chain(&["-c:v", "libvpx", "-b:v", "300k", "-c:a", "libopus"])
        .copied()
        .collect();
    ffmpeg(&args, &webm);
    let ogg = dir.path().join("speech.ogg");
    ffmpeg(&["-i", wav, "-c:a", "libvorbis"], &ogg);

    let o = emod(&[
        "analyze",
        "--json",
        mkv.to_str().unwrap(),
        webm.to_str().unwrap(),
        ogg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for f in &files[..2] {
        assert!(f["error"].is_null(), "{f}");
        assert_eq!(f["kind"], "video", "{}", f["file"]);
        // 4 s at the default 5 analysed frames per second, the face in every frame.
        let faces = f["faces"].as_array().unwrap().len();
        assert!((15..=25).contains(&faces), "{}: {faces} faces", f["file"]);
        assert!(
            f["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["modalities"].as_array().unwrap().len() == 2),
            "{}: face and voice fused somewhere",
            f["file"]
        );
    }
    assert!(files[2]["error"].is_null(), "{}", files[2]);
    assert_eq!(files[2]["kind"], "audio");
    assert!(files[2]["voice"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["voiced"] == true));
}

/// `emod eval av`: a directory with nothing usable is an error (exit status 1) that names each
/// file and why; labelled recordings are scored (the arithmetic: emo-inference/tests/av_eval.rs).
#[test]
fn eval_av_names_what_it_cannot_use() {
    if !have_models() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let still = fixture("astronaut.jpg");
    let silent = dir.path().join("01-01-05-01-01-01-02.mp4");
    ffmpeg(
        &[
            "-loop",
            "1",
            "-t",
            "3",
            "-i",
            still.to_str().unwrap(),
            "-r",
            "5",
            "-vf",
            "format=yuv420p",
        ],
        &silent,
    );
    std::fs::copy(&silent, dir.path().join("holiday.mp4")).unwrap();
    let o = emod(&["eval", "av", dir.path().to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.contains("no usable labelled recording"), "{err}");
    assert!(
        err.contains("01-01-05-01-01-01-02.mp4: no audio track"),
        "{err}"
    );
    assert!(
        err.contains("holiday.mp4: the name matches neither"),
        "{err}"
    );

    let speech = fixture("speech.wav");
    let happy = dir.path().join("01-01-03-01-01-01-01.mp4");
    ffmpeg(
        &[
            "-loop",
            "1",
            "-t",
            "4",
            "-i",
            still.to_str().unwrap(),
            "-i",
            speech.to_str().unwrap(),
            "-r",
            "5",
            "-vf",
            "scale=320:320,format=yuv420p",
            "-c:a",
            "aac",
            "-shortest",
        ],
        &happy,
    );
    let o = emod(&["eval", "av", dir.path().to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["files"], 1, "{v}");
    assert_eq!(v["skipped"].as_array().unwrap().len(), 2);
    assert_eq!(v["clips"]["fused"]["n"], 1);
    assert!(text(&o.stderr).contains("skipped holiday.mp4"));
}
