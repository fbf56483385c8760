//! Late fusion of face and voice estimates (see ARCHITECTURE.md, "Data flow").
//!
//! * **calibrated** (default): each modality's probabilities are already calibrated by its
//!   manifest temperature (softmax(logits / T)); voice's `calm` is folded into `neutral`; then
//!   weighted log-linear pooling `p ∝ p_face^w_face · p_voice^w_voice` in the 7-class space. A
//!   missing modality drops out (the other is used as is).
//! * **mode**: the seed's majority vote over per-window labels (ties go to the larger summed
//!   confidence); probabilities are the vote shares.
//!
//! Weights: [`FusionWeights::default`] holds the values chosen on validation data with
//! `emod eval fusion --tune` (see the issue note / model cards); a `[fusion]` table in the
//! manifest (`face_weight`, `voice_weight`) overrides them.

use emo_api_types::Emotion;

use crate::classifier::argmax;
use crate::manifest::Manifest;

/// Number of classes in the fused space.
pub const K: usize = 7;
/// Floor applied to probabilities before taking logs (keeps a zero from vetoing a class).
pub const PROB_FLOOR: f32 = 1e-6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    Calibrated,
    Mode,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Calibrated => "calibrated",
            Strategy::Mode => "mode",
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "calibrated" | "late" | "loglinear" => Ok(Self::Calibrated),
            "mode" | "vote" | "majority" => Ok(Self::Mode),
            o => Err(format!(
                "unknown fusion strategy `{o}` (calibrated or mode)"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusionWeights {
    pub face: f32,
    pub voice: f32,
}

impl Default for FusionWeights {
    /// Chosen on validation data with `emo-inference/tools/tune_fusion.py` (2026-11-24):
    /// FER-2013 held-out validation logits (2,871 faces) paired by label with out-of-fold
    /// RAVDESS speech logits (720 clips, actor-wise CV folds 0–2), 20 pairing seeds, manifest
    /// temperatures. Accuracy on those pairs: face 0.511, voice 0.646, mode 0.731,
    /// calibrated fusion 0.779 at voice weight 1.2 (flat within 0.002 for 1.0–1.5). Re-run at
    /// 01:40 with folds 0–3 (960 clips) and a later FER checkpoint: face 0.561, voice 0.619,
    /// mode 0.712, fused 0.762 at 1.1 and 0.762 at 1.2 (difference 0.0004), so 1.2 stays.
    /// Final models (02:02, all 5 folds = 1,200 clips, final temperatures): face 0.579, voice
    /// 0.606, mode 0.710, fused 0.7603 at 1.2 vs best 0.7612 at 1.3 — within noise; 1.2 kept.
    /// Re-run the script when the models change; a `[fusion]` table in the manifest overrides.
    fn default() -> Self {
        Self {
            face: 1.0,
            voice: 1.2,
        }
    }
}

impl FusionWeights {
    pub fn from_manifest(m: &Manifest) -> Self {
        let d = Self::default();
        match &m.fusion {
            Some(f) => Self {
                face: f.face_weight.unwrap_or(d.face),
                voice: f.voice_weight.unwrap_or(d.voice),
            },
            None => d,
        }
    }
}

/// Map probabilities in `labels` order onto the 7 face classes (`calm` adds to `neutral`).
pub fn to_face_space(p: &[f32], labels: &[Emotion]) -> [f32; K] {
    let mut out = [0.0f32; K];
    for (&v, l) in p.iter().zip(labels) {
        out[l.to_face_space().index()] += v;
    }
    out
}

/// Weighted log-linear pooling of the present modalities. `None` when neither is present.
pub fn log_linear(
    face: Option<&[f32; K]>,
    voice: Option<&[f32; K]>,
    w: FusionWeights,
) -> Option<[f32; K]> {
    match (face, voice) {
        (None, None) => None,
        (Some(p), None) | (None, Some(p)) => Some(*p),
        (Some(f), Some(v)) => {
            let mut l = [0.0f64; K];
            for k in 0..K {
                l[k] = w.face as f64 * (f[k].max(PROB_FLOOR) as f64).ln()
                    + w.voice as f64 * (v[k].max(PROB_FLOOR) as f64).ln();
            }
            let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = l.iter().map(|x| (x - m).exp()).sum();
            let mut out = [0.0f32; K];
            for k in 0..K {
                out[k] = ((l[k] - m).exp() / s) as f32;
            }
            Some(out)
        }
    }
}

/// Majority vote over `(class index, confidence)` votes; ties go to the larger summed
/// confidence. Returns vote shares as probabilities.
pub fn mode_vote(votes: &[(usize, f32)]) -> Option<[f32; K]> {
    if votes.is_empty() {
        return None;
    }
    let mut count = [0usize; K];
    let mut conf = [0.0f32; K];
    for &(k, c) in votes {
        if k < K {
            count[k] += 1;
            conf[k] += c;
        }
    }
    let total: usize = count.iter().sum();
    if total == 0 {
        return None;
    }
    let mut out = [0.0f32; K];
    for k in 0..K {
        out[k] = count[k] as f32 / total as f32;
    }
    Some(out)
}

/// Winner of a vote table from [`mode_vote`], breaking ties by summed confidence.
pub fn mode_winner(votes: &[(usize, f32)]) -> Option<usize> {
    let shares = mode_vote(votes)?;
    let mut conf = [0.0f32; K];
    for &(k, c) in votes {
        if k < K {
            conf[k] += c;
        }
    }
    (0..K).max_by(|&a, &b| {
        shares[a]
            .total_cmp(&shares[b])
            .then(conf[a].total_cmp(&conf[b]))
    })
}

/// Fuse one face and one voice estimate (7-class spaces) with the given strategy; returns
/// `(probabilities, winning class index)`.
pub fn fuse(
    strategy: Strategy,
    face: Option<&[f32; K]>,
    voice: Option<&[f32; K]>,
    w: FusionWeights,
) -> Option<([f32; K], usize)> {
    match strategy {
        Strategy::Calibrated => log_linear(face, voice, w).map(|p| {
            let k = argmax(&p).0;
            (p, k)
        }),
        Strategy::Mode => {
            let votes: Vec<(usize, f32)> = [face, voice]
                .into_iter()
                .flatten()
                .map(|p| argmax(p))
                .collect();
            let shares = mode_vote(&votes)?;
            Some((shares, mode_winner(&votes)?))
        }
    }
}

/// Grid search of the weights maximising fused accuracy on `(face, voice, true class)` triples.
/// Grid: face weight fixed at 1, voice weight 0.1…3.0 step 0.1 (only the ratio matters for the
/// argmax). Ties keep the weight closest to 1.
pub fn tune_weights(pairs: &[([f32; K], [f32; K], usize)]) -> (FusionWeights, f64) {
    let mut best = (FusionWeights::default(), -1.0f64);
    for i in 1..=30 {
        let w = FusionWeights {
            face: 1.0,
            voice: i as f32 / 10.0,
        };
        let correct = pairs
            .iter()
            .filter(|(f, v, y)| log_linear(Some(f), Some(v), w).map(|p| argmax(&p).0) == Some(*y))
            .count();
        let acc = correct as f64 / pairs.len().max(1) as f64;
        let closer = (w.voice - 1.0).abs() < (best.0.voice - 1.0).abs();
        if acc > best.1 + 1e-12 || ((acc - best.1).abs() <= 1e-12 && closer) {
            best = (w, acc);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: [f32; K]) -> [f32; K] {
        let s: f32 = v.iter().sum();
        v.map(|x| x / s)
    }

    #[test]
    fn calm_folds_into_neutral() {
        let labels = Emotion::ALL;
        let p8 = [0.1, 0.0, 0.0, 0.2, 0.0, 0.0, 0.3, 0.4];
        let f = to_face_space(&p8, &labels);
        assert!((f[6] - 0.7).abs() < 1e-6 && (f[0] - 0.1).abs() < 1e-6);
        assert!((f.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn log_linear_hand_table() {
        let face = p([0.5, 0.0, 0.0, 0.3, 0.0, 0.0, 0.2]);
        let voice = p([0.2, 0.0, 0.0, 0.6, 0.0, 0.0, 0.2]);
        let w = FusionWeights {
            face: 1.0,
            voice: 1.0,
        };
        let f = log_linear(Some(&face), Some(&voice), w).unwrap();
        // Product: angry .10, happy .18, neutral .04 (others ~1e-12) → normalised.
        let z = 0.10 + 0.18 + 0.04;
        assert!((f[0] - 0.10 / z).abs() < 1e-4, "{f:?}");
        assert!((f[3] - 0.18 / z).abs() < 1e-4);
        assert!((f[6] - 0.04 / z).abs() < 1e-4);
        assert_eq!(argmax(&f).0, 3);
        // Weighting the face more flips the decision to angry: .5^3*.2 = .025 > .3^3*.6 = .0162.
        let f2 = log_linear(
            Some(&face),
            Some(&voice),
            FusionWeights {
                face: 3.0,
                voice: 1.0,
            },
        )
        .unwrap();
        assert_eq!(argmax(&f2).0, 0);
        assert!((f2.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn missing_modality_drops_out() {
        let face = p([0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1]);
        let w = FusionWeights {
            face: 0.3,
            voice: 2.0,
        };
        assert_eq!(log_linear(Some(&face), None, w), Some(face));
        assert_eq!(log_linear(None, Some(&face), w), Some(face));
        assert_eq!(log_linear(None, None, w), None);
        let (probs, k) = fuse(Strategy::Calibrated, None, Some(&face), w).unwrap();
        assert_eq!((probs, k), (face, 3));
    }

    #[test]
    fn mode_majority_and_ties() {
        assert_eq!(mode_winner(&[(3, 0.5), (3, 0.6), (0, 0.9)]), Some(3));
        assert_eq!(mode_winner(&[(3, 0.5), (0, 0.9)]), Some(0));
        let shares = mode_vote(&[(3, 0.5), (3, 0.6), (0, 0.9), (6, 0.2)]).unwrap();
        assert_eq!(shares[3], 0.5);
        assert_eq!(mode_vote(&[]), None);
        let face = p([0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1]);
        let voice = p([0.7, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]);
        let (_, k) = fuse(
            Strategy::Mode,
            Some(&face),
            Some(&voice),
            FusionWeights::default(),
        )
        .unwrap();
        assert_eq!(k, 0); // one vote each; voice is more confident
    }

    #[test]
    fn tuning_finds_the_informative_modality() {
        // Face is right on two items, voice on the third; voice is confident when right.
        let mk = |i: usize, c: f32| {
            let mut v = [(1.0 - c) / 6.0; K];
            v[i] = c;
            v
        };
        let pairs = vec![
            (mk(0, 0.4), mk(3, 0.3), 0),
            (mk(1, 0.4), mk(3, 0.3), 1),
            (mk(2, 0.3), mk(3, 0.9), 3),
        ];
        let (w, acc) = tune_weights(&pairs);
        assert!((acc - 1.0).abs() < 1e-9, "{w:?} {acc}");
        assert!("mode".parse::<Strategy>().unwrap() == Strategy::Mode);
    }
}
