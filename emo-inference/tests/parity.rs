//! Parity with the Python reference (tests/fixtures/make_reference.py):
//! * Rust log-mel ("logmel64_v1") equals librosa's and models/train/features.py's after
//!   normalisation: max abs diff ≤ 1e-4.
//! * Rust MFCC equals librosa.feature.mfcc: max abs diff ≤ 2e-3 dB-scaled units (relative to a
//!   range of several hundred; the dB values go through float32 log10 on both sides).
//! * ONNX Runtime outputs through Rust equal Python onnxruntime's on the same input: max abs
//!   diff ≤ 1e-4 (same library, same CPU kernels; differences are thread-order rounding).
mod common;

use common::*;
use emo_inference::features::{FeatureExtractor, FeatureSpec};
use ort::value::TensorRef;
use serde_json::Value;

fn spec() -> FeatureSpec {
    // The manifest's speech feature spec when present, else the documented logmel64_v1 values.
    let m = manifest();
    if let Some(f) = m.models.get("speech").and_then(|e| e.features.clone()) {
        return f;
    }
    FeatureSpec {
        kind: "logmel64_v1".into(),
        sample_rate: 16000,
        window_samples: 48000,
        n_fft: 512,
        win_length: 400,
        hop_length: 160,
        n_mels: 64,
        fmin: 50.0,
        fmax: 8000.0,
        log_offset: 1e-6,
        norm_eps: 1e-5,
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("features.json")).unwrap())
        .unwrap()
}

fn speech() -> Vec<f32> {
    emo_inference::audio::read_wav(&fixtures().join("speech.wav"), &Default::default())
        .unwrap()
        .samples
}

#[test]
fn logmel_matches_librosa() {
    let r = reference();
    let mut fx = FeatureExtractor::new(spec()).unwrap();
    let got = fx.logmel_clip(&speech());
    let want = floats(&r["logmel"]);
    assert_eq!(floats(&r["logmel_shape"]), vec![64.0, 297.0]);
    let d = max_abs_diff(&got, &want);
    eprintln!("logmel max abs diff vs librosa: {d:.3e}");
    assert!(d <= 1e-4, "max abs diff {d}");
}

#[test]
fn logmel_matches_the_training_code() {
    // models/train/features.py logmel64_v1 (float64 numpy reference used for training).
    let r = reference();
    let Some(want) = r.get("logmel_train") else {
        skip("features.json has no logmel_train: run make_reference.py with models/train present");
        return;
    };
    let mut fx = FeatureExtractor::new(spec()).unwrap();
    let got = fx.logmel_clip(&speech());
    let d = max_abs_diff(&got, &floats(want));
    eprintln!("logmel max abs diff vs models/train/features.py: {d:.3e}");
    assert!(d <= 1e-4, "max abs diff {d}");
}

#[test]
fn mfcc_matches_librosa() {
    let r = reference();
    let mut fx = FeatureExtractor::new(spec()).unwrap();
    let w = emo_inference::features::fit_window(&speech(), 48000);
    let got = fx.mfcc(&w, 40);
    let want = floats(&r["mfcc"]);
    let d = max_abs_diff(&got, &want);
    let range = want.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    eprintln!("mfcc max abs diff vs librosa: {d:.3e} (max |value| {range:.1})");
    assert!(d <= 2e-3, "max abs diff {d}");
}

#[test]
fn onnx_outputs_match_python_onnxruntime() {
    let refs: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("model_outputs.json")).unwrap(),
    )
    .unwrap();
    let m = manifest();
    let mut checked = 0;
    for (name, e) in &m.models {
        let Some(r) = refs.get(name) else {
            skip(&format!(
                "no Python reference for `{name}` yet: run tests/fixtures/make_reference.py"
            ));
            continue;
        };
        assert_eq!(
            r["sha256"].as_str().unwrap(),
            e.sha256,
            "model `{name}` changed since the reference was made: run tests/fixtures/make_reference.py"
        );
        let shape: Vec<usize> = floats(&r["input_shape"])
            .iter()
            .map(|&v| v as usize)
            .collect();
        let x = synth(shape.iter().product(), r["scale"].as_f64().unwrap());
        let mut s = emo_inference::runtime::session(&rt(), &m.path_of(e)).unwrap();
        let input = TensorRef::from_array_view((shape.clone(), x.as_slice())).unwrap();
        let out = s
            .run(ort::inputs![e.input_name.as_deref().unwrap() => input])
            .unwrap();
        for (oname, ov) in r["outputs"].as_object().unwrap() {
            let (oshape, vals) = out[oname.as_str()].try_extract_tensor::<f32>().unwrap();
            let want_shape: Vec<i64> = floats(&ov["shape"]).iter().map(|&v| v as i64).collect();
            assert_eq!(&oshape[..], &want_shape[..], "{name}/{oname} shape");
            let d = max_abs_diff(vals, &floats(&ov["values"]));
            let scale = floats(&ov["values"])
                .iter()
                .fold(0.0f64, |a, b| a.max(b.abs()))
                .max(1.0);
            eprintln!("{name}/{oname}: max abs diff {d:.3e}");
            assert!(d <= 1e-4 * scale, "{name}/{oname}: max abs diff {d}");
        }
        checked += 1;
    }
    assert!(checked >= 1, "no model was checked");
}
