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

/// Fusion parameters. Each window's voice counts according to its own evidence: its reliability
/// `r = min(1, confidence / voice_full_confidence)` shrinks its distribution towards uniform
/// (`r·p + (1 − r)/7`) before pooling. An unsure voice (a flat distribution, typically speech
/// unlike the training corpus) therefore can neither outvote a confident face nor veto a class
/// with a near-zero probability, which plain log-linear pooling lets any input do. The fused
/// distribution is divided by `temperature` (fitted by log-loss) so that pooling two sources does
/// not make it sharper than the evidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusionWeights {
    pub face: f32,
    pub voice: f32,
    /// Voice confidence (calibrated max probability) from which the voice gets its full weight.
    pub voice_full_confidence: f32,
    /// Temperature applied to the fused log-probabilities when both modalities are present.
    pub temperature: f32,
}

impl Default for FusionWeights {
    /// Chosen with `emod eval fusion --speech-corpus emodb --tune` on cross-corpus pairs
    /// (FER-2013 validation faces × EmoDB voices, which the speech model never trained on):
    /// the pairs of even seeds chose the parameters, those of odd seeds measured them
    /// (models/README.md, "Fusion"). Voice weight 0.75, full trust from confidence 0.5, fused
    /// temperature 1.0 (fitted by log-loss). The static voice weight 1.2 used before let a
    /// voice outvote a 90%-sure face on real clips.
    fn default() -> Self {
        Self {
            face: 1.0,
            voice: 0.75,
            voice_full_confidence: 0.5,
            temperature: 1.0,
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
                voice_full_confidence: f
                    .extra
                    .get("voice_full_confidence")
                    .and_then(|v| v.as_float())
                    .map_or(d.voice_full_confidence, |v| v as f32),
                temperature: f
                    .extra
                    .get("temperature")
                    .and_then(|v| v.as_float())
                    .map_or(d.temperature, |v| v as f32),
            },
            None => d,
        }
    }

    /// How far one window's voice is trusted (0…1), from its calibrated confidence.
    pub fn voice_reliability(&self, voice: &[f32; K]) -> f32 {
        let conf = voice.iter().copied().fold(0.0f32, f32::max);
        let full = self.voice_full_confidence.max(1e-6);
        (conf / full).clamp(0.0, 1.0)
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
            let r = w.voice_reliability(v);
            let v = v.map(|x| r * x + (1.0 - r) / K as f32);
            let t = if w.temperature > 0.0 {
                w.temperature as f64
            } else {
                1.0
            };
            let mut l = [0.0f64; K];
            for k in 0..K {
                l[k] = (w.face as f64 * (f[k].max(PROB_FLOOR) as f64).ln()
                    + w.voice as f64 * (v[k].max(PROB_FLOOR) as f64).ln())
                    / t;
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

/// Choose the parameters on `(face, voice, true class)` triples: the voice weight (0.25…2.0) and
/// the confidence of full voice weight (0.3…1.0) that maximise fused accuracy (ties keep the
/// combination closest to the defaults), then the fused temperature (0.7…2.0) that minimises
/// log-loss. Returns the parameters and their accuracy.
pub fn tune_weights(pairs: &[([f32; K], [f32; K], usize)]) -> (FusionWeights, f64) {
    let d = FusionWeights::default();
    let mut best = (d, -1.0f64, f32::INFINITY);
    for i in 1..=8 {
        for j in 3..=10 {
            let w = FusionWeights {
                voice: i as f32 / 4.0,
                voice_full_confidence: j as f32 / 10.0,
                temperature: 1.0,
                ..d
            };
            let correct = pairs
                .iter()
                .filter(|(f, v, y)| {
                    log_linear(Some(f), Some(v), w).map(|p| argmax(&p).0) == Some(*y)
                })
                .count();
            let acc = correct as f64 / pairs.len().max(1) as f64;
            let dist = (w.voice - d.voice).abs()
                + (w.voice_full_confidence - d.voice_full_confidence).abs();
            if acc > best.1 + 1e-12 || ((acc - best.1).abs() <= 1e-12 && dist < best.2) {
                best = (w, acc, dist);
            }
        }
    }
    let mut w = best.0;
    let loss = |w: FusionWeights| -> f64 {
        pairs
            .iter()
            .filter_map(|(f, v, y)| log_linear(Some(f), Some(v), w).map(|p| p[*y]))
            .map(|p| -(p.max(1e-12) as f64).ln())
            .sum()
    };
    w.temperature = (7..=20)
        .map(|t| FusionWeights {
            temperature: t as f32 / 10.0,
            ..w
        })
        .min_by(|a, b| loss(*a).total_cmp(&loss(*b)))
        .map_or(1.0, |x| x.temperature);
    (w, best.1)
}

/// Expected calibration error of `(probabilities, true class)` rows over 15 equal-width
/// confidence bins: how far the stated confidence is from the accuracy it delivers.
pub fn ece(rows: &[([f32; K], usize)]) -> f64 {
    const BINS: usize = 15;
    let mut n = [0usize; BINS];
    let mut conf = [0.0f64; BINS];
    let mut right = [0usize; BINS];
    for (p, y) in rows {
        let (k, c) = argmax(p);
        let b = ((c as f64 * BINS as f64).ceil() as usize).clamp(1, BINS) - 1;
        n[b] += 1;
        conf[b] += c as f64;
        right[b] += usize::from(k == *y);
    }
    let total = rows.len().max(1) as f64;
    (0..BINS)
        .filter(|&b| n[b] > 0)
        .map(|b| {
            (n[b] as f64 / total) * (right[b] as f64 / n[b] as f64 - conf[b] / n[b] as f64).abs()
        })
        .sum()
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
            voice_full_confidence: 0.5,
            temperature: 1.0,
        };
        let f = log_linear(Some(&face), Some(&voice), w).unwrap();
        // Product: angry .10, happy .18, neutral .04 (others ~1e-12) → normalised.
        let z = 0.10 + 0.18 + 0.04;
        assert!((f[0] - 0.10 / z).abs() < 1e-4, "{f:?}");
        assert!((f[3] - 0.18 / z).abs() < 1e-4);
        assert!((f[6] - 0.04 / z).abs() < 1e-4);
        assert_eq!(argmax(&f).0, 3);
        // Weighting the face more flips the decision to angry: .5^3*.2 = .025 > .3^3*.6 = .0162.
        let f2 = log_linear(Some(&face), Some(&voice), FusionWeights { face: 3.0, ..w }).unwrap();
        assert_eq!(argmax(&f2).0, 0);
        assert!((f2.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn missing_modality_drops_out() {
        let face = p([0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1]);
        let w = FusionWeights {
            face: 0.3,
            voice: 2.0,
            ..FusionWeights::default()
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

    /// The failure seen on real clips: a face 90% sure of "happy" and a voice leaning to "sad"
    /// without conviction. The unsure voice must not outvote the face, and the fused confidence
    /// must not be sharper than the face's own.
    #[test]
    fn a_confident_face_beats_an_unsure_voice() {
        let face = p([0.02, 0.01, 0.02, 0.90, 0.02, 0.01, 0.02]);
        let voice = p([0.05, 0.05, 0.05, 0.001, 0.45, 0.049, 0.35]);
        let w = FusionWeights::default();
        assert!((w.voice_reliability(&voice) - 0.9).abs() < 1e-6);
        let (probs, k) = fuse(Strategy::Calibrated, Some(&face), Some(&voice), w).unwrap();
        assert_eq!(k, 3, "{probs:?}");
        // The static weighting this replaced (voice 1.2 at any confidence, no temperature) let
        // this voice decide.
        let old = FusionWeights {
            face: 1.0,
            voice: 1.2,
            voice_full_confidence: 1e-6,
            temperature: 1.0,
        };
        assert_eq!(
            fuse(Strategy::Calibrated, Some(&face), Some(&voice), old)
                .unwrap()
                .1,
            4
        );
        // A confident voice is trusted in full and decides against a less sure face.
        let sure = p([0.02, 0.01, 0.02, 0.005, 0.92, 0.005, 0.02]);
        assert_eq!(w.voice_reliability(&sure), 1.0);
        let unsure_face = p([0.05, 0.05, 0.05, 0.45, 0.30, 0.05, 0.05]);
        assert_eq!(
            fuse(Strategy::Calibrated, Some(&unsure_face), Some(&sure), w)
                .unwrap()
                .1,
            4
        );
    }

    #[test]
    fn ece_of_a_hand_table() {
        // Two rows at confidence 0.9 (one right), two at 0.6 (both right):
        // |0.5 - 0.9| * 0.5 + |1.0 - 0.6| * 0.5 = 0.4.
        let row = |k: usize, c: f32| {
            let mut v = [(1.0 - c) / 6.0; K];
            v[k] = c;
            v
        };
        let rows = vec![
            (row(0, 0.9), 0),
            (row(0, 0.9), 1),
            (row(2, 0.6), 2),
            (row(3, 0.6), 3),
        ];
        assert!((ece(&rows) - 0.4).abs() < 1e-6, "{}", ece(&rows));
        assert_eq!(ece(&[]), 0.0);
    }
}
