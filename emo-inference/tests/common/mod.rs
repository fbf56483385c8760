#![allow(dead_code)]
use std::path::{Path, PathBuf};

use emo_inference::manifest::Manifest;
use emo_inference::RuntimeConfig;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `models/` of the checkout, or `EMO_TEST_MODELS_DIR` (to try candidate models).
pub fn models_dir() -> PathBuf {
    match std::env::var_os("EMO_TEST_MODELS_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"),
    }
}

pub fn rt() -> RuntimeConfig {
    RuntimeConfig {
        intra_threads: 1,
        ..Default::default()
    }
}

pub fn manifest() -> Manifest {
    Manifest::load(&models_dir()).expect("models/manifest.toml")
}

/// Whether the manifest lists `name` and its file is present (models land one by one).
pub fn has_model(name: &str) -> bool {
    let m = manifest();
    match m.models.get(name) {
        Some(e) => m.path_of(e).is_file(),
        None => {
            eprintln!("skipping: models/manifest.toml has no [models.{name}] yet");
            false
        }
    }
}

/// Deterministic synthetic input shared with make_reference.py.
pub fn synth(n: usize, scale: f64) -> Vec<f32> {
    (0..n)
        .map(|i| ((0.01 * i as f64).sin() * (0.003 * i as f64).cos() * scale) as f32)
        .collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}
