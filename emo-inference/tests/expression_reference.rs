//! The face expression model on real faces: `ExpressionModel::classify` on FER-2013 training
//! crops (read from `../shared/datasets`, never copied into the project) must
//! - equal a reference computed here independently: the preprocessing the model was trained with
//!   ((x/255 − 0.5)/0.5, written out here rather than taken from the manifest), the crop and its
//!   mirror image through the raw ONNX session, logits averaged, softmax(logits / temperature);
//!   so a broken normalisation, a missing mirror or a wrong averaging fails;
//! - put the dataset's label on top for most of the first 30 faces of every class, with the
//!   label order of the manifest and of `Emotion::FACE` agreeing; so a permuted label order
//!   fails.
//!
//! `EMO_TEST_FER_DIR` overrides the dataset location; without the dataset the test reports a skip
//! (`EMO_REQUIRE_DATASETS=1`, as in CI, makes that a failure).

mod common;

use std::path::PathBuf;

use common::*;
use emo_api_types::Emotion;
use emo_inference::face::ExpressionModel;

const PER_CLASS: usize = 30;

fn fer_dir() -> PathBuf {
    match std::env::var_os("EMO_TEST_FER_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/fer2013/train")
        }
    }
}

fn required() -> bool {
    std::env::var("EMO_REQUIRE_DATASETS")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// `SKIPPED:` on stderr and a line in `EMO_SKIP_LOG` (counted by packaging/test.sh).
fn skip(reason: &str) {
    eprintln!("SKIPPED: {reason}");
    if let Some(path) = std::env::var_os("EMO_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let test = std::thread::current().name().unwrap_or("?").to_string();
            let _ = std::io::Write::write_all(&mut f, format!("{test}: {reason}\n").as_bytes());
        }
    }
}

/// The first `n` images (by file name) of a class, as 48×48 gray values 0..255.
fn crops(class: &str, n: usize) -> Vec<(String, Vec<f32>)> {
    let dir = fer_dir().join(class);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jpg"))
        .collect();
    names.sort();
    names
        .into_iter()
        .take(n)
        .map(|name| {
            let img = image::open(dir.join(&name)).unwrap().to_luma8();
            assert_eq!(img.dimensions(), (48, 48), "{name}");
            (name, img.pixels().map(|p| p.0[0] as f32).collect())
        })
        .collect()
}

/// The reference: trained preprocessing, image and mirror through the raw session, averaged
/// logits, softmax at the manifest's temperature.
fn reference(model: &ExpressionModel, crop: &[f32], temperature: f32) -> Vec<f32> {
    let s = 48;
    let norm = |v: f32| (v / 255.0 - 0.5) / 0.5;
    let mut input: Vec<f32> = crop.iter().map(|&v| norm(v)).collect();
    for y in 0..s {
        for x in 0..s {
            input.push(norm(crop[y * s + (s - 1 - x)]));
        }
    }
    let logits = model.clf.logits(&input, 2).unwrap();
    let avg: Vec<f64> = logits[0]
        .iter()
        .zip(&logits[1])
        .map(|(a, b)| (*a as f64 + *b as f64) / 2.0 / temperature as f64)
        .collect();
    let max = avg.iter().cloned().fold(f64::MIN, f64::max);
    let exp: Vec<f64> = avg.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| (e / sum) as f32).collect()
}

#[test]
fn classify_matches_the_reference_and_labels_real_faces() {
    if !has_model("expression") {
        return;
    }
    if !fer_dir().is_dir() {
        assert!(
            !required(),
            "EMO_REQUIRE_DATASETS is set but {} is missing",
            fer_dir().display()
        );
        skip(&format!("no FER-2013 at {}", fer_dir().display()));
        return;
    }
    let m = manifest();
    let entry = &m.models["expression"];
    let model = ExpressionModel::load(&m, &rt()).unwrap();
    assert_eq!(model.size, 48);
    // Calibration is the classifier's (it may differ from the manifest's base entry per precision).
    let temperature = model.clf.temperature;
    // The product names output i `Emotion::FACE[i]`; the manifest documents the model's order.
    let labels = entry.labels.clone().expect("labels");
    let face: Vec<String> = Emotion::FACE.iter().map(|e| e.to_string()).collect();
    assert_eq!(labels, face, "manifest label order != Emotion::FACE");

    let mut worst = 0f32;
    let mut report = Vec::new();
    let mut total_right = 0;
    for (class_index, class) in face.iter().enumerate() {
        let faces = crops(class, PER_CLASS);
        let mut right = 0;
        for (name, crop) in &faces {
            // One face per call, as live capture classifies: the same batch shape (the face
            // and its mirror) as the reference, whose int8 kernels may round differently
            // for other batch sizes.
            let p = &model.classify(std::slice::from_ref(crop)).unwrap()[0];
            let want = reference(&model, crop, temperature);
            let diff = p
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            worst = worst.max(diff);
            assert!(
                diff < 5e-3,
                "{class}/{name}: classify {p:?} != reference {want:?}"
            );
            let top = emo_inference::classifier::argmax(p).0;
            if top == class_index {
                right += 1;
            }
        }
        report.push(format!("{class} {right}/{PER_CLASS}"));
        total_right += right;
        // Every class: most of its faces get its label (a swapped pair of labels drops both to
        // near zero).
        assert!(
            right * 2 > PER_CLASS,
            "{class}: only {right}/{PER_CLASS} labelled {class} ({})",
            report.join(", ")
        );
    }
    eprintln!(
        "expression on FER-2013 train (first {PER_CLASS}/class): {} of {}; {}; max |classify - reference| = {worst:e}",
        total_right,
        PER_CLASS * 7,
        report.join(", ")
    );
}
