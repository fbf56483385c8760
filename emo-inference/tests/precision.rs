//! The expression model ships in int8 and fp32; the loader runs the one measured fastest on this
//! CPU, remembers the measurement, honours a configured precision and refuses a tampered file.
mod common;

use std::path::Path;

use common::*;
use emo_inference::face::{aligned_crop, ExpressionModel, FaceDetector};
use emo_inference::manifest::Manifest;
use emo_inference::model_precision::{variants, PrecisionPolicy};

/// A copy of the models directory the test may alter.
fn models_copy(dir: &Path, manifest_edit: impl Fn(String) -> String) -> Manifest {
    let src = models_dir();
    for f in std::fs::read_dir(&src).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "onnx") {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    let text = std::fs::read_to_string(src.join("manifest.toml")).unwrap();
    std::fs::write(dir.join("manifest.toml"), manifest_edit(text)).unwrap();
    Manifest::load(dir).unwrap()
}

fn without_variants(text: String) -> String {
    let start = text
        .find("[models.expression.variants.fp32]")
        .expect("manifest ships an fp32 variant");
    let end = text[start..]
        .find("\n\n")
        .map_or(text.len(), |i| start + i + 1);
    format!("{}{}", &text[..start], &text[end..])
}

/// The astronaut's face, cropped as the pipeline crops it.
fn face_crop(m: &Manifest, model: &ExpressionModel) -> Vec<f32> {
    let img = image::open(fixtures().join("astronaut.jpg"))
        .unwrap()
        .to_rgb8();
    let det = FaceDetector::load(m, &rt()).unwrap().detect(&img).unwrap();
    let mut crop = vec![0.0; model.size * model.size];
    aligned_crop(&img, &det[0], model.size, model.crop_scale, &mut crop);
    crop
}

#[test]
fn the_manifest_ships_int8_and_fp32_and_both_agree() {
    let m = manifest();
    let shipped: Vec<String> = variants(&m, "expression")
        .unwrap()
        .into_iter()
        .map(|v| {
            v.verify().unwrap();
            v.precision
        })
        .collect();
    assert_eq!(shipped, ["int8", "fp32"]);
    let load = |p: &str| {
        ExpressionModel::load_with(&m, &rt(), &PrecisionPolicy::Fixed(p.into()), None).unwrap()
    };
    let (int8, fp32) = (load("int8"), load("fp32"));
    assert_eq!(int8.precision.precision, "int8");
    assert_eq!(fp32.precision.precision, "fp32");
    assert_eq!(int8.precision.reason, "set by the configuration");
    let crop = face_crop(&m, &int8);
    // The crop and a darker, mirrored copy: two different inputs through both files.
    let other: Vec<f32> = (0..crop.len())
        .map(|i| {
            let (y, x) = (i / int8.size, i % int8.size);
            crop[y * int8.size + (int8.size - 1 - x)] * 0.7
        })
        .collect();
    let a = int8.classify(&[crop.clone(), other.clone()]).unwrap();
    let b = fp32.classify(&[crop, other]).unwrap();
    for (pa, pb) in a.iter().zip(&b) {
        let top = |p: &[f32]| emo_inference::classifier::argmax(p).0;
        assert_eq!(top(pa), top(pb), "int8 {pa:?} vs fp32 {pb:?}");
        let diff = pa
            .iter()
            .zip(pb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        // Same weights; only int8's activation rounding differs.
        assert!(diff < 0.05, "int8 {pa:?} vs fp32 {pb:?}");
    }
}

#[test]
fn auto_runs_the_precision_measured_fastest_and_remembers_it() {
    let m = manifest();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("model-precision.json");
    let first =
        ExpressionModel::load_with(&m, &rt(), &PrecisionPolicy::Auto, Some(&cache)).unwrap();
    let c = &first.precision;
    assert_eq!(
        c.probe_ms.keys().map(String::as_str).collect::<Vec<_>>(),
        ["fp32", "int8"],
        "{c:?}"
    );
    let fastest = c
        .probe_ms
        .iter()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(p, _)| p.clone())
        .unwrap();
    assert_eq!(c.precision, fastest, "{c:?}");
    assert!(c.reason.starts_with("fastest on "), "{}", c.reason);
    assert!(cache.is_file());
    // The second load reuses the measurement instead of timing again.
    let again =
        ExpressionModel::load_with(&m, &rt(), &PrecisionPolicy::Auto, Some(&cache)).unwrap();
    assert_eq!(again.precision.precision, c.precision);
    assert_eq!(again.precision.probe_ms, c.probe_ms);
    assert!(
        again
            .precision
            .reason
            .ends_with("(measured earlier on this machine)"),
        "{}",
        again.precision.reason
    );
}

#[test]
fn a_single_precision_is_used_as_is_and_a_missing_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let m = models_copy(dir.path(), without_variants);
    let only = ExpressionModel::load_with(&m, &rt(), &PrecisionPolicy::Auto, None).unwrap();
    assert_eq!(only.precision.precision, "int8");
    assert_eq!(only.precision.reason, "the only precision shipped");
    let e = ExpressionModel::load_with(&m, &rt(), &PrecisionPolicy::Fixed("fp32".into()), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ships only int8"), "{e}");
}

#[test]
fn a_tampered_variant_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = models_copy(dir.path(), |t| t);
    let fp32 = dir.path().join("expression_fp32.onnx");
    let mut bytes = std::fs::read(&fp32).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x55;
    std::fs::write(&fp32, bytes).unwrap();
    let e = ExpressionModel::load_with(&m, &rt(), &PrecisionPolicy::Fixed("fp32".into()), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("expression_fp32.onnx") && e.contains("sha256"),
        "{e}"
    );
    // Auto skips the file it cannot trust and runs the other precision.
    let auto = ExpressionModel::load_with(&m, &rt(), &PrecisionPolicy::Auto, None).unwrap();
    assert_eq!(auto.precision.precision, "int8");
}
