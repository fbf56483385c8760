//! A generic ONNX classifier: `input_name` → `output_name` logits, softmax(logits / T) with the
//! manifest's temperature. Used by the expression (faces) and speech models.

use std::path::Path;
use std::sync::Mutex;

use emo_api_types::Emotion;
use ort::session::Session;
use ort::value::TensorRef;

use crate::manifest::{Manifest, ModelEntry};
use crate::runtime::{self, RuntimeConfig};
use crate::{Error, Result};

pub struct Classifier {
    pub name: String,
    session: Mutex<Session>,
    pub input_name: String,
    pub output_name: String,
    /// Per-item input dimensions (the shape without the batch axis).
    pub item_shape: Vec<usize>,
    pub labels: Vec<Emotion>,
    pub temperature: f32,
    pub entry: ModelEntry,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("name", &self.name)
            .field("item_shape", &self.item_shape)
            .field("labels", &self.labels)
            .field("temperature", &self.temperature)
            .finish()
    }
}

/// Numerically stable softmax of `logits / t`.
pub fn softmax_t(logits: &[f32], t: f32) -> Vec<f32> {
    let t = if t > 0.0 { t } else { 1.0 };
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let e: Vec<f64> = logits
        .iter()
        .map(|&l| (((l - m) / t) as f64).exp())
        .collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| (v / s) as f32).collect()
}

/// Index and value of the largest element.
pub fn argmax(p: &[f32]) -> (usize, f32) {
    p.iter().copied().enumerate().fold(
        (0, f32::NEG_INFINITY),
        |a, (i, v)| if v > a.1 { (i, v) } else { a },
    )
}

impl Classifier {
    pub fn load(manifest: &Manifest, name: &str, rt: &RuntimeConfig) -> Result<Self> {
        let e = manifest.entry(name)?;
        let session = open(rt, &manifest.path_of(e))?;
        Self::with_session(manifest, name, session)
    }

    /// The classifier of `[models.NAME]` over a session opened elsewhere (e.g. the precision
    /// variant [`crate::model_precision::choose`] picked).
    pub fn with_session(manifest: &Manifest, name: &str, session: Session) -> Result<Self> {
        let e = manifest.entry(name)?.clone();
        let input_name = e.req(name, "input_name", &e.input_name)?.clone();
        let output_name = e.req(name, "output_name", &e.output_name)?.clone();
        let shape = e.req(name, "input_shape", &e.input_shape)?;
        if shape.len() < 2 || shape[1..].iter().any(|&d| d <= 0) {
            return Err(Error::Manifest(format!(
                "[models.{name}] input_shape {shape:?}: need [-1, dims...]"
            )));
        }
        let item_shape = shape[1..].iter().map(|&d| d as usize).collect();
        let labels = e
            .req(name, "labels", &e.labels)?
            .iter()
            .map(|l| {
                l.parse::<Emotion>()
                    .map_err(|err| Error::Manifest(format!("[models.{name}] labels: {err}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let temperature = e.temperature.unwrap_or(1.0);
        Ok(Self {
            name: name.to_string(),
            session: Mutex::new(session),
            input_name,
            output_name,
            item_shape,
            labels,
            temperature,
            entry: e,
        })
    }

    pub fn item_len(&self) -> usize {
        self.item_shape.iter().product()
    }

    /// Raw logits for `n` items laid out contiguously in `data`.
    pub fn logits(&self, data: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if data.len() != n * self.item_len() {
            return Err(Error::Inference(format!(
                "{}: input has {} values, want {}",
                self.name,
                data.len(),
                n * self.item_len()
            )));
        }
        let mut shape = vec![n];
        shape.extend_from_slice(&self.item_shape);
        let err = |e: ort::Error| Error::Inference(format!("{}: {e}", self.name));
        let input = TensorRef::from_array_view((shape, data)).map_err(err)?;
        let mut s = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let out = s
            .run(ort::inputs![self.input_name.as_str() => input])
            .map_err(err)?;
        let v = out.get(&self.output_name).ok_or_else(|| {
            Error::Inference(format!("{}: no output `{}`", self.name, self.output_name))
        })?;
        let (oshape, vals) = v.try_extract_tensor::<f32>().map_err(err)?;
        let k = self.labels.len();
        if oshape.len() != 2 || oshape[0] as usize != n || oshape[1] as usize != k {
            return Err(Error::Inference(format!(
                "{}: output shape {:?}, want [{n}, {k}]",
                self.name,
                &oshape[..]
            )));
        }
        Ok(vals.chunks(k).map(<[f32]>::to_vec).collect())
    }

    /// Calibrated probabilities softmax(logits / temperature).
    pub fn probabilities(&self, logits: &[f32]) -> Vec<f32> {
        softmax_t(logits, self.temperature)
    }
}

pub fn open(rt: &RuntimeConfig, path: &Path) -> Result<Session> {
    if !path.is_file() {
        return Err(Error::Model(format!(
            "model file {} not found",
            path.display()
        )));
    }
    runtime::session(rt, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_with_temperature() {
        let p = softmax_t(&[1.0, 2.0, 3.0], 1.0);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[2] - 0.665_240_9).abs() < 1e-6);
        let q = softmax_t(&[1.0, 2.0, 3.0], 2.0);
        assert!(q[2] < p[2] && q[0] > p[0]);
        let big = softmax_t(&[1000.0, 0.0], 1.0);
        assert!((big[0] - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&[0.1, 0.7, 0.2]), (1, 0.7));
    }
}
