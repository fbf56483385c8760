//! "Is this speech like the speech the model was trained on?": a per-window out-of-domain score
//! for the voice branch, computed from the features the model already sees.
//!
//! The score is a distance of the window's **spectral envelope** from the training corpus: the
//! mean of each mel band over the louder half of the frames (silence and padding say nothing
//! about the voice or the microphone), standardised across bands so that level does not count.
//! The training envelopes (RAVDESS actors 01–20) are summarised in the manifest's
//! `[models.speech.domain]` by their mean, top principal components with their variances, and
//! the mean variance left outside them; the distance is the root mean square of the whitened
//! deviation (about 1 for a typical training window). Fitted and measured by
//! `models/train/fusion_pairs.py --domain` (held-out RAVDESS actors against EmoDB: see
//! models/README.md, "Fusion"). [`crate::reliability`] turns it into a trust factor.

use serde::Deserialize;

use crate::manifest::ModelEntry;
use crate::{Error, Result};

/// The one envelope definition this code computes (the manifest names the one it was fitted on).
pub const KIND: &str = "logmel_envelope_pca_v1";

/// `[models.speech.domain]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DomainModel {
    pub kind: String,
    /// Mean training envelope (`n_mels`).
    pub mean: Vec<f32>,
    /// Principal directions (each `n_mels`, unit length) and their variances.
    pub components: Vec<Vec<f32>>,
    pub variances: Vec<f32>,
    /// Mean variance per dimension outside the components.
    pub residual_variance: f32,
    /// Distance up to which the voice keeps full trust (95th percentile of held-out actors).
    pub ok: f32,
    /// Distance from which the voice has no domain trust.
    pub far: f32,
}

impl DomainModel {
    /// The speech entry's `domain` table, if any; a table that does not fit the features is an
    /// error (a wrong table would silently mute or trust every voice).
    pub fn from_entry(entry: &ModelEntry, n_mels: usize) -> Result<Option<Self>> {
        let Some(v) = entry.extra.get("domain") else {
            return Ok(None);
        };
        let m: Self = v
            .clone()
            .try_into()
            .map_err(|e| Error::Manifest(format!("[models.speech.domain]: {e}")))?;
        let bad = |what: &str| Err(Error::Manifest(format!("[models.speech.domain]: {what}")));
        if m.kind != KIND {
            return bad(&format!("kind `{}` is not `{KIND}`", m.kind));
        }
        if m.mean.len() != n_mels || m.components.iter().any(|c| c.len() != n_mels) {
            return bad(&format!("mean and components must have {n_mels} values"));
        }
        if m.components.len() != m.variances.len() {
            return bad("one variance per component");
        }
        let positive = |x: f32| x.is_finite() && x > 0.0;
        if !m.variances.iter().all(|&v| positive(v))
            || !positive(m.residual_variance)
            || !positive(m.ok)
            || m.far.is_nan()
            || m.far < m.ok
        {
            return bad("variances, residual_variance and ok must be > 0, far >= ok");
        }
        Ok(Some(m))
    }

    /// Distance of one feature window (row-major `n_mels × n_frames`, as the model gets it).
    pub fn distance(&self, feats: &[f32]) -> Option<f32> {
        let s = envelope(feats, self.mean.len())?;
        let y: Vec<f64> = s
            .iter()
            .zip(&self.mean)
            .map(|(a, b)| a - *b as f64)
            .collect();
        let mut resid = y.clone();
        let mut sum = 0.0f64;
        for (c, &var) in self.components.iter().zip(&self.variances) {
            let p: f64 = c.iter().zip(&y).map(|(a, b)| *a as f64 * b).sum();
            sum += p * p / var as f64;
            for (r, a) in resid.iter_mut().zip(c) {
                *r -= p * *a as f64;
            }
        }
        sum += resid.iter().map(|r| r * r).sum::<f64>() / self.residual_variance as f64;
        let d = (sum / y.len() as f64).sqrt() as f32;
        d.is_finite().then_some(d)
    }
}

/// The standardised spectral envelope of one window (see the module docs); `None` for a
/// malformed window.
pub fn envelope(feats: &[f32], n_mels: usize) -> Option<Vec<f64>> {
    if n_mels == 0 || feats.is_empty() || !feats.len().is_multiple_of(n_mels) {
        return None;
    }
    let frames = feats.len() / n_mels;
    let energy: Vec<f64> = (0..frames)
        .map(|t| {
            (0..n_mels)
                .map(|b| feats[b * frames + t] as f64)
                .sum::<f64>()
                / n_mels as f64
        })
        .collect();
    let mut sorted = energy.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if frames % 2 == 1 {
        sorted[frames / 2]
    } else {
        (sorted[frames / 2 - 1] + sorted[frames / 2]) / 2.0
    };
    let keep: Vec<usize> = (0..frames).filter(|&t| energy[t] >= median).collect();
    let m: Vec<f64> = (0..n_mels)
        .map(|b| {
            keep.iter()
                .map(|&t| feats[b * frames + t] as f64)
                .sum::<f64>()
                / keep.len() as f64
        })
        .collect();
    let mu = m.iter().sum::<f64>() / n_mels as f64;
    let sd = (m.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / n_mels as f64).sqrt();
    let out: Vec<f64> = m.iter().map(|x| (x - mu) / (sd + 1e-6)).collect();
    out.iter().all(|x| x.is_finite()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4 bands × 5 frames; frame energies 0, 1, 2, 3, 4 → the louder half is frames 2, 3, 4.
    fn window() -> Vec<f32> {
        let mut f = vec![0.0f32; 20];
        for t in 0..5 {
            let e = t as f32;
            // Band b gets e + b (a rising envelope) in the loud frames, e in the quiet ones.
            for b in 0..4 {
                f[b * 5 + t] = e + if t >= 2 { b as f32 - 1.5 } else { 0.0 };
            }
        }
        f
    }

    #[test]
    fn envelope_of_the_loud_frames_standardised() {
        let s = envelope(&window(), 4).unwrap();
        // Band means over frames 2..5: 3 + (b - 1.5); standardised: (b - 1.5) / std(0..4).
        let sd = (1.25f64).sqrt();
        for (b, v) in s.iter().enumerate() {
            assert!((v - (b as f64 - 1.5) / (sd + 1e-6)).abs() < 1e-9, "{s:?}");
        }
        assert_eq!(envelope(&window(), 3), None);
        assert_eq!(envelope(&[], 4), None);
    }

    fn model() -> DomainModel {
        DomainModel {
            kind: KIND.into(),
            mean: vec![0.0; 4],
            components: vec![vec![1.0, 0.0, 0.0, 0.0]],
            variances: vec![4.0],
            residual_variance: 1.0,
            ok: 1.0,
            far: 2.0,
        }
    }

    #[test]
    fn whitened_distance_by_hand() {
        let m = model();
        let s = envelope(&window(), 4).unwrap();
        // Component 1 has variance 4: its part counts a quarter; the rest counts in full.
        let want = ((s[0] * s[0] / 4.0 + s[1] * s[1] + s[2] * s[2] + s[3] * s[3]) / 4.0).sqrt();
        assert!((m.distance(&window()).unwrap() as f64 - want).abs() < 1e-5);
        // Level does not count: the same window 10 dB louder in every bin is as far.
        let louder: Vec<f32> = window().iter().map(|x| x + 2.3).collect();
        assert!((m.distance(&louder).unwrap() - m.distance(&window()).unwrap()).abs() < 1e-5);
    }

    #[test]
    fn manifest_tables_are_checked() {
        let entry = |domain: &str| -> ModelEntry {
            toml::from_str(&format!(
                "file = \"s.onnx\"\nsha256 = \"x\"\n[domain]\n{domain}"
            ))
            .unwrap()
        };
        let good = format!(
            "kind = \"{KIND}\"\nmean = [0, 0, 0, 0]\ncomponents = [[1, 0, 0, 0]]\nvariances = [4]\nresidual_variance = 1\nok = 1\nfar = 2"
        );
        assert_eq!(
            DomainModel::from_entry(&entry(&good), 4).unwrap(),
            Some(model())
        );
        assert!(DomainModel::from_entry(&entry(&good), 64).is_err());
        let wrong_kind = good.replace(KIND, "mfcc");
        assert!(DomainModel::from_entry(&entry(&wrong_kind), 4).is_err());
        let zero_var = good.replace("variances = [4]", "variances = [0]");
        assert!(DomainModel::from_entry(&entry(&zero_var), 4).is_err());
        let far_below = good.replace("far = 2", "far = 0.5");
        assert!(DomainModel::from_entry(&entry(&far_below), 4).is_err());
        let none: ModelEntry = toml::from_str("file = \"s.onnx\"\nsha256 = \"x\"").unwrap();
        assert_eq!(DomainModel::from_entry(&none, 4).unwrap(), None);
    }
}
