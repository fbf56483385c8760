//! `models/manifest.toml`: which model files exist, their checksums, shapes, preprocessing
//! constants, labels and calibration temperatures. Unknown keys are accepted (the models side may
//! add fields); missing required keys are reported when a model is loaded.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::features::FeatureSpec;
use crate::{Error, Result};

/// The manifest file name inside the models directory.
pub const MANIFEST_FILE: &str = "manifest.toml";

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    #[serde(default)]
    pub models: BTreeMap<String, ModelEntry>,
    /// Optional fusion weights (`[fusion]`), chosen on validation data; see [`crate::fusion`].
    #[serde(default)]
    pub fusion: Option<FusionEntry>,
    /// Directory the manifest was read from (model paths are relative to it).
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FusionEntry {
    pub face_weight: Option<f32>,
    pub voice_weight: Option<f32>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, toml::Value>,
}

/// One `[models.NAME]` table. Every field but `file`/`sha256` is optional at parse time.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelEntry {
    pub file: String,
    pub sha256: String,
    pub kind: Option<String>,
    pub input_name: Option<String>,
    pub input_shape: Option<Vec<i64>>,
    pub layout: Option<String>,
    pub color: Option<String>,
    pub input_range: Option<[f32; 2]>,
    pub outputs: Option<Vec<String>>,
    pub output_shapes: Option<Vec<Vec<i64>>>,
    pub output_name: Option<String>,
    pub regressor_outputs: Option<Vec<String>>,
    pub score_outputs: Option<Vec<String>>,
    pub anchor_strides: Option<Vec<u32>>,
    pub anchors_per_cell: Option<Vec<u32>>,
    pub anchor_offset: Option<f32>,
    pub box_scale: Option<f32>,
    pub score_threshold: Option<f32>,
    pub nms_iou: Option<f32>,
    pub scale: Option<f32>,
    pub mean: Option<f32>,
    pub std: Option<f32>,
    pub labels: Option<Vec<String>>,
    pub temperature: Option<f32>,
    pub tta_hflip: Option<bool>,
    pub features: Option<FeatureSpec>,
    pub validation: Option<toml::Value>,
    pub license: Option<String>,
    pub source: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, toml::Value>,
}

impl ModelEntry {
    /// A required field, or a one-line error naming the model and the key.
    pub fn req<'a, T>(&'a self, model: &str, key: &str, v: &'a Option<T>) -> Result<&'a T> {
        v.as_ref()
            .ok_or_else(|| Error::Manifest(format!("[models.{model}] is missing `{key}`")))
    }
}

impl Manifest {
    /// Read `DIR/manifest.toml`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::Manifest(format!(
                "cannot read {}: {e} (set models.dir in the config to the directory holding manifest.toml)",
                path.display()
            ))
        })?;
        let mut m: Manifest = toml::from_str(&text)
            .map_err(|e| Error::Manifest(format!("{}: {e}", path.display())))?;
        if m.schema != 1 {
            return Err(Error::Manifest(format!(
                "{}: unsupported schema {} (this build reads schema 1)",
                path.display(),
                m.schema
            )));
        }
        m.dir = dir.to_path_buf();
        Ok(m)
    }

    pub fn entry(&self, name: &str) -> Result<&ModelEntry> {
        self.models.get(name).ok_or_else(|| {
            Error::Manifest(format!(
                "{} has no [models.{name}]",
                self.dir.join(MANIFEST_FILE).display()
            ))
        })
    }

    pub fn path_of(&self, entry: &ModelEntry) -> PathBuf {
        self.dir.join(&entry.file)
    }
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Check a model file exists and matches its manifest checksum.
pub fn verify_file(manifest: &Manifest, name: &str) -> Result<PathBuf> {
    let e = manifest.entry(name)?;
    let path = manifest.path_of(e);
    if !path.is_file() {
        return Err(Error::Model(format!(
            "model `{name}`: file {} not found",
            path.display()
        )));
    }
    let got =
        sha256_file(&path).map_err(|err| Error::Model(format!("{}: {err}", path.display())))?;
    if !got.eq_ignore_ascii_case(e.sha256.trim()) {
        return Err(Error::Model(format!(
            "model `{name}`: {} has sha256 {got}, manifest says {}",
            path.display(),
            e.sha256
        )));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_leniently() {
        let t = r#"
schema = 1
[models.expression]
file = "e.onnx"
sha256 = "00"
labels = ["angry", "happy"]
temperature = 1.5
something_new = { a = 1 }
[models.speech]
file = "s.onnx"
sha256 = "11"
[models.speech.features]
kind = "logmel64_v1"
sample_rate = 16000
window_samples = 48000
n_fft = 512
win_length = 400
hop_length = 160
n_mels = 64
fmin = 50.0
fmax = 8000.0
log_offset = 1e-6
norm_eps = 1e-5
[models.speech.validation]
accuracy = 0.7
"#;
        let m: Manifest = toml::from_str(t).unwrap();
        let e = &m.models["expression"];
        assert_eq!(e.temperature, Some(1.5));
        assert!(e.extra.contains_key("something_new"));
        assert_eq!(
            m.models["speech"].features.as_ref().unwrap().n_frames(),
            297
        );
        assert!(e.req("expression", "input_name", &e.input_name).is_err());
    }
}
