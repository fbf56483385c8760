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

/// Whether `EMO_REQUIRE_DATASETS` is `1`/`true`/`yes` (CI): then a missing model or dataset
/// fails the test instead of skipping it.
pub fn required() -> bool {
    std::env::var("EMO_REQUIRE_DATASETS")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// A test that cannot run here: fails under `EMO_REQUIRE_DATASETS=1`, otherwise `SKIPPED:` on
/// stderr and a line in `EMO_SKIP_LOG` (counted and printed by packaging/test.sh), never silent.
pub fn skip(reason: &str) {
    assert!(
        !required(),
        "EMO_REQUIRE_DATASETS is set, and this test cannot run: {reason}"
    );
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

/// Whether the manifest lists `name` and its file is present (models land one by one). When not,
/// the caller skips, and says so through `skip` (a failure under `EMO_REQUIRE_DATASETS=1`).
pub fn has_model(name: &str) -> bool {
    let m = manifest();
    match m.models.get(name) {
        Some(e) if m.path_of(e).is_file() => true,
        Some(e) => {
            skip(&format!(
                "model `{name}`: {} is missing",
                m.path_of(e).display()
            ));
            false
        }
        None => {
            skip(&format!("models/manifest.toml has no [models.{name}]"));
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
