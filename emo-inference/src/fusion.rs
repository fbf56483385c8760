//! Late fusion of face and voice estimates (see ARCHITECTURE.md, "Data flow").
//!
//! * **calibrated** (default): each modality's probabilities are already calibrated by its
//!   manifest temperature (softmax(logits / T)); voice's `calm` is folded into `neutral`; then
//!   weighted log-linear pooling `p ∝ p_face^w_face · p_voice^w_voice` in the 7-class space. A
//!   missing modality drops out (the other is used as is).
//! * **mode**: the seed's majority vote over per-window labels; probabilities are the vote
//!   shares. Only estimates that earn trust vote (an abstaining voice or a zero-trust face does
//!   not: its label is not one the product would report), and ties go to the larger summed
//!   confidence × trust, so an unsure or out-of-domain voice cannot win a 1–1 tie against a
//!   clear face just by being sharp.
//!
//! Weights: [`FusionWeights::default`] holds the values chosen on validation data with
//! `emod eval fusion --tune` (see the issue note / model cards); a `[fusion]` table in the
//! manifest (`face_weight`, `voice_weight`) overrides them.

use emo_api_types::Emotion;

use crate::classifier::argmax;
use crate::manifest::Manifest;
use crate::reliability::{FaceEvidence, ReliabilityRules, VoiceEvidence};

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

/// Fusion parameters. Each window's estimates count according to their own evidence
/// ([`crate::reliability`]): a modality's distribution is shrunk towards uniform by its
/// reliability `r` (`r·p + (1 − r)/7`) before pooling. An unsure or out-of-domain voice (a flat
/// distribution, speech unlike the training corpus) or a small, barely detected face therefore
/// can neither outvote the other modality nor veto a class with a near-zero probability, which
/// plain log-linear pooling lets any input do. The fused distribution is divided by
/// `temperature` (fitted by log-loss) so that pooling two sources does not make it sharper than
/// the evidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusionWeights {
    pub face: f32,
    pub voice: f32,
    /// Temperature applied to the fused log-probabilities when both modalities are present.
    pub temperature: f32,
    /// How each window's face and voice evidence turns into trust.
    pub rules: ReliabilityRules,
}

impl Default for FusionWeights {
    /// Chosen with `emod eval fusion --speech-corpus emodb --tune` on cross-corpus pairs
    /// (FER-2013 validation faces × EmoDB voices, which the speech model never trained on):
    /// the pairs of even seeds chose the parameters, those of odd seeds measured them
    /// (models/README.md, "Fusion"). Voice weight 0.75, fused temperature 1.0 (fitted by
    /// log-loss); the reliability rules are [`ReliabilityRules::default`]. The static voice
    /// weight 1.2 used before let a voice outvote a 90%-sure face on real clips.
    fn default() -> Self {
        Self {
            face: 1.0,
            voice: 0.75,
            temperature: 1.0,
            rules: ReliabilityRules::default(),
        }
    }
}

impl FusionWeights {
    /// The manifest's `[fusion]` table (`face_weight`, `voice_weight`, `voice_full_confidence`,
    /// `temperature`) over the defaults, the speech model's `abstain_below` and domain
    /// thresholds, and the expression model's `crop_scale`.
    pub fn from_manifest(m: &Manifest) -> Self {
        let d = Self::default();
        let float = |t: Option<&toml::Value>| t.and_then(|v| v.as_float()).map(|v| v as f32);
        let mut rules = d.rules;
        let mut w = d;
        if let Some(f) = &m.fusion {
            w.face = f.face_weight.unwrap_or(d.face);
            w.voice = f.voice_weight.unwrap_or(d.voice);
            w.temperature = float(f.extra.get("temperature")).unwrap_or(d.temperature);
            rules.voice_full_confidence =
                float(f.extra.get("voice_full_confidence")).unwrap_or(rules.voice_full_confidence);
        }
        if let Some(sp) = m.models.get("speech") {
            rules.abstain_below = float(sp.extra.get("abstain_below"));
            let domain = sp.extra.get("domain").and_then(|t| t.as_table());
            if let Some(t) = domain {
                rules.domain_ok = float(t.get("ok")).unwrap_or(rules.domain_ok);
                rules.domain_far = float(t.get("far")).unwrap_or(rules.domain_far);
            }
        }
        if let Some(ex) = m.models.get("expression") {
            rules.crop_scale = float(ex.extra.get("crop_scale")).unwrap_or(rules.crop_scale);
        }
        w.rules = rules;
        w
    }
}

/// One modality's estimate of a window: calibrated probabilities in the 7-class space and how
/// far they are trusted (0…1, from [`crate::reliability`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Input {
    pub p: [f32; K],
    pub reliability: f32,
}

impl Input {
    /// An estimate trusted in full.
    pub fn full(p: [f32; K]) -> Self {
        Self {
            p,
            reliability: 1.0,
        }
    }

    /// `r·p + (1 − r)/K`.
    pub fn shrunk(&self) -> [f32; K] {
        let r = if self.reliability.is_finite() {
            self.reliability.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.p.map(|x| r * x + (1.0 - r) / K as f32)
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

/// Weighted log-linear pooling of the present modalities, each shrunk by its reliability.
/// `None` when neither is present; a lone modality is returned as it is (there is nothing for
/// it to outvote).
pub fn log_linear(
    face: Option<&Input>,
    voice: Option<&Input>,
    w: FusionWeights,
) -> Option<[f32; K]> {
    match (face, voice) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x.p),
        (Some(f), Some(v)) => {
            let (f, v) = (f.shrunk(), v.shrunk());
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

/// The `mode` vote of one estimate: its label, with its confidence scaled by its trust (used
/// to break ties). An estimate that earns no trust casts no vote.
pub fn trusted_vote(input: &Input) -> Option<(usize, f32)> {
    (input.reliability > 0.0).then(|| {
        let (k, c) = argmax(&input.p);
        (k, c * input.reliability.min(1.0))
    })
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

impl FusionWeights {
    /// A face estimate with the trust its evidence earns.
    pub fn face_input(&self, p: [f32; K], e: FaceEvidence) -> Input {
        Input {
            p,
            reliability: self.rules.face(e),
        }
    }

    /// A voice estimate (7-class space) with the trust its evidence earns.
    pub fn voice_input(&self, p: [f32; K], e: VoiceEvidence) -> Input {
        Input {
            p,
            reliability: self.rules.voice(e),
        }
    }
}

/// Fuse one face and one voice estimate (7-class spaces) with the given strategy; returns
/// `(probabilities, winning class index)`. For `mode` each input votes through
/// [`trusted_vote`]; callers leave out a voice that abstains (as the live stream does).
pub fn fuse(
    strategy: Strategy,
    face: Option<&Input>,
    voice: Option<&Input>,
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
                .filter_map(trusted_vote)
                .collect();
            let shares = mode_vote(&votes)?;
            Some((shares, mode_winner(&votes)?))
        }
    }
}

/// One labelled face/voice pair with the evidence behind each estimate (for evaluation and
/// tuning).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    pub face: [f32; K],
    pub face_evidence: FaceEvidence,
    pub voice: [f32; K],
    pub voice_evidence: VoiceEvidence,
    /// True class.
    pub y: usize,
}

impl Pair {
    pub fn inputs(&self, w: &FusionWeights) -> (Input, Input) {
        (
            w.face_input(self.face, self.face_evidence),
            w.voice_input(self.voice, self.voice_evidence),
        )
    }

    /// Calibrated fusion of the pair.
    pub fn fused(&self, w: FusionWeights) -> [f32; K] {
        let (f, v) = self.inputs(&w);
        log_linear(Some(&f), Some(&v), w).unwrap_or(self.face)
    }
}

/// Choose the parameters on labelled pairs: the voice weight (0.25…2.0) and the confidence of
/// full voice trust (0.3…1.0) that maximise fused accuracy (ties keep the combination closest to
/// the defaults), then the fused temperature (0.7…2.0) that minimises log-loss. The face and
/// domain rules are not tuned here. Returns the parameters and their accuracy.
pub fn tune_weights(pairs: &[Pair], start: FusionWeights) -> (FusionWeights, f64) {
    let d = start;
    let mut best = (d, -1.0f64, f32::INFINITY);
    for i in 1..=8 {
        for j in 3..=10 {
            let mut w = FusionWeights {
                voice: i as f32 / 4.0,
                temperature: 1.0,
                ..d
            };
            w.rules.voice_full_confidence = j as f32 / 10.0;
            let correct = pairs
                .iter()
                .filter(|x| argmax(&x.fused(w)).0 == x.y)
                .count();
            let acc = correct as f64 / pairs.len().max(1) as f64;
            let dist = (w.voice - d.voice).abs()
                + (w.rules.voice_full_confidence - d.rules.voice_full_confidence).abs();
            if acc > best.1 + 1e-12 || ((acc - best.1).abs() <= 1e-12 && dist < best.2) {
                best = (w, acc, dist);
            }
        }
    }
    let w = best.0;
    let loss = |w: FusionWeights| -> f64 {
        pairs
            .iter()
            .map(|x| -(x.fused(w)[x.y].max(1e-12) as f64).ln())
            .sum()
    };
    let temperature = (7..=20)
        .map(|t| FusionWeights {
            temperature: t as f32 / 10.0,
            ..w
        })
        .min_by(|a, b| loss(*a).total_cmp(&loss(*b)))
        .map_or(1.0, |x| x.temperature);
    (FusionWeights { temperature, ..w }, best.1)
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

    fn full(v: [f32; K]) -> Input {
        Input::full(p(v))
    }

    /// Evidence of a clear, large face and of an in-domain voice.
    const CLEAR_FACE: FaceEvidence = FaceEvidence {
        detection_score: 0.95,
        crop_px: 150.0,
    };

    fn voice_ev(confidence: f32) -> VoiceEvidence {
        VoiceEvidence {
            confidence,
            domain_distance: Some(1.0),
        }
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
        let face = full([0.5, 0.0, 0.0, 0.3, 0.0, 0.0, 0.2]);
        let voice = full([0.2, 0.0, 0.0, 0.6, 0.0, 0.0, 0.2]);
        let w = FusionWeights {
            face: 1.0,
            voice: 1.0,
            ..FusionWeights::default()
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
        // Reliability 0 makes a modality uniform: the other decides alone.
        let mute = Input {
            reliability: 0.0,
            ..voice
        };
        let f3 = log_linear(Some(&face), Some(&mute), w).unwrap();
        assert!(f3.iter().zip(face.p).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn missing_modality_drops_out() {
        let face = full([0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1]);
        let w = FusionWeights {
            face: 0.3,
            voice: 2.0,
            ..FusionWeights::default()
        };
        assert_eq!(log_linear(Some(&face), None, w), Some(face.p));
        assert_eq!(log_linear(None, Some(&face), w), Some(face.p));
        assert_eq!(log_linear(None, None, w), None);
        let (probs, k) = fuse(Strategy::Calibrated, None, Some(&face), w).unwrap();
        assert_eq!((probs, k), (face.p, 3));
    }

    #[test]
    fn mode_majority_and_ties() {
        assert_eq!(mode_winner(&[(3, 0.5), (3, 0.6), (0, 0.9)]), Some(3));
        assert_eq!(mode_winner(&[(3, 0.5), (0, 0.9)]), Some(0));
        let shares = mode_vote(&[(3, 0.5), (3, 0.6), (0, 0.9), (6, 0.2)]).unwrap();
        assert_eq!(shares[3], 0.5);
        assert_eq!(mode_vote(&[]), None);
        let face = full([0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1]);
        let voice = full([0.7, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]);
        let (_, k) = fuse(
            Strategy::Mode,
            Some(&face),
            Some(&voice),
            FusionWeights::default(),
        )
        .unwrap();
        assert_eq!(k, 0); // one vote each; voice is more confident
    }

    /// `mode` weighs the tie by trust: a sharper voice that is out of domain (or a face the
    /// detector barely saw) loses the 1–1 tie, and an estimate with no trust does not vote.
    #[test]
    fn mode_breaks_ties_by_trust_and_skips_untrusted_votes() {
        let w = FusionWeights::default();
        let face = full([0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1]);
        let sharp = [0.7, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05];
        let doubted = Input {
            p: sharp,
            reliability: 0.5,
        };
        assert_eq!(
            fuse(Strategy::Mode, Some(&face), Some(&doubted), w)
                .unwrap()
                .1,
            3
        );
        let untrusted = Input {
            p: sharp,
            reliability: 0.0,
        };
        let (shares, k) = fuse(Strategy::Mode, Some(&face), Some(&untrusted), w).unwrap();
        assert_eq!((k, shares[3], shares[0]), (3, 1.0, 0.0));
        let nan = Input {
            p: sharp,
            reliability: f32::NAN,
        };
        assert_eq!(trusted_vote(&nan), None);
        assert_eq!(fuse(Strategy::Mode, None, Some(&untrusted), w), None);
    }

    #[test]
    fn tuning_finds_the_informative_modality() {
        // Face is right on two items, voice on the third; voice is confident when right.
        let mk = |i: usize, c: f32| {
            let mut v = [(1.0 - c) / 6.0; K];
            v[i] = c;
            v
        };
        let pair = |f: [f32; K], v: [f32; K], y: usize| Pair {
            face: f,
            face_evidence: CLEAR_FACE,
            voice: v,
            voice_evidence: voice_ev(argmax(&v).1),
            y,
        };
        let pairs = vec![
            pair(mk(0, 0.4), mk(3, 0.3), 0),
            pair(mk(1, 0.4), mk(3, 0.3), 1),
            pair(mk(2, 0.3), mk(3, 0.9), 3),
        ];
        let (w, acc) = tune_weights(&pairs, FusionWeights::default());
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
        let (fi, vi) = (
            w.face_input(face, CLEAR_FACE),
            w.voice_input(voice, voice_ev(0.45)),
        );
        assert_eq!(fi.reliability, 1.0);
        assert!((vi.reliability - 0.9).abs() < 1e-6);
        let (probs, k) = fuse(Strategy::Calibrated, Some(&fi), Some(&vi), w).unwrap();
        assert_eq!(k, 3, "{probs:?}");
        // The static weighting this replaced (voice 1.2 at any confidence, no temperature) let
        // this voice decide.
        let old = FusionWeights {
            face: 1.0,
            voice: 1.2,
            temperature: 1.0,
            ..w
        };
        let fixed = Input::full(voice);
        assert_eq!(
            fuse(Strategy::Calibrated, Some(&fi), Some(&fixed), old)
                .unwrap()
                .1,
            4
        );
        // A confident voice is trusted in full and decides against a less sure face.
        let sure = p([0.02, 0.01, 0.02, 0.005, 0.92, 0.005, 0.02]);
        let si = w.voice_input(sure, voice_ev(0.92));
        assert_eq!(si.reliability, 1.0);
        let unsure_face = w.face_input(p([0.05, 0.05, 0.05, 0.45, 0.30, 0.05, 0.05]), CLEAR_FACE);
        assert_eq!(
            fuse(Strategy::Calibrated, Some(&unsure_face), Some(&si), w)
                .unwrap()
                .1,
            4
        );
    }

    /// Face reliability from its own evidence: the same confident "happy" face decides against
    /// a confident "sad" voice when it is large and clear, and lets the voice lead when it is a
    /// 10-px face the detector barely accepted.
    #[test]
    fn a_tiny_unsure_detection_lets_a_confident_voice_lead() {
        let w = FusionWeights::default();
        let face = p([0.02, 0.01, 0.02, 0.88, 0.03, 0.01, 0.03]);
        let voice = p([0.03, 0.02, 0.03, 0.05, 0.80, 0.02, 0.05]);
        let vi = w.voice_input(voice, voice_ev(0.80));
        let big = w.face_input(face, w.rules.face_evidence(0.97, 160.0, 180.0));
        let tiny = w.face_input(face, w.rules.face_evidence(0.52, 10.0, 11.0));
        assert_eq!(big.reliability, 1.0);
        assert!(tiny.reliability < 0.05, "{tiny:?}");
        let fused = |f: &Input| fuse(Strategy::Calibrated, Some(f), Some(&vi), w).unwrap();
        assert_eq!(fused(&big).1, 3, "{:?}", fused(&big));
        assert_eq!(fused(&tiny).1, 4, "{:?}", fused(&tiny));
        // A lone tiny face is still reported as it is.
        assert_eq!(log_linear(Some(&tiny), None, w), Some(face));
    }

    /// An out-of-domain voice loses its say even when the model is sure of itself.
    #[test]
    fn a_confident_out_of_domain_voice_drops_out() {
        let w = FusionWeights::default();
        let face = w.face_input(p([0.05, 0.05, 0.05, 0.55, 0.20, 0.05, 0.05]), CLEAR_FACE);
        let voice = p([0.02, 0.01, 0.02, 0.005, 0.92, 0.005, 0.02]);
        let near = w.voice_input(voice, voice_ev(0.92));
        let far = w.voice_input(
            voice,
            VoiceEvidence {
                confidence: 0.92,
                domain_distance: Some(w.rules.domain_far),
            },
        );
        assert_eq!((near.reliability, far.reliability), (1.0, 0.0));
        assert_eq!(
            fuse(Strategy::Calibrated, Some(&face), Some(&near), w)
                .unwrap()
                .1,
            4
        );
        assert_eq!(
            fuse(Strategy::Calibrated, Some(&face), Some(&far), w)
                .unwrap()
                .1,
            3
        );
    }

    /// An abstaining voice (below the speech model's threshold) still counts, less than a sure
    /// one: it moves the fused distribution, and it cannot reach full trust even when the
    /// full-trust confidence is set below the abstain threshold.
    #[test]
    fn an_abstaining_voice_counts_less_but_not_zero() {
        let mut w = FusionWeights::default();
        w.rules.abstain_below = Some(0.5);
        w.rules.voice_full_confidence = 0.3;
        let face = w.face_input(p([0.05, 0.05, 0.05, 0.40, 0.35, 0.05, 0.05]), CLEAR_FACE);
        let voice = p([0.05, 0.05, 0.05, 0.10, 0.45, 0.15, 0.15]);
        let vi = w.voice_input(voice, voice_ev(0.45));
        assert!(w.rules.voice_abstains(0.45));
        assert!((vi.reliability - 0.9).abs() < 1e-6, "{vi:?}");
        let with = log_linear(Some(&face), Some(&vi), w).unwrap();
        let without = log_linear(Some(&face), None, w).unwrap();
        assert!(with[4] > without[4] + 0.01, "{with:?} vs {without:?}");
        let sure = w.voice_input(voice, voice_ev(0.6));
        let more = log_linear(Some(&face), Some(&sure), w).unwrap();
        assert!(more[4] > with[4], "{more:?} vs {with:?}");
    }

    #[test]
    fn manifest_tables_set_the_rules() {
        let m: Manifest = toml::from_str(
            r#"schema = 1
[models.speech]
file = "s.onnx"
sha256 = "x"
abstain_below = 0.45
[models.speech.domain]
ok = 2.0
far = 5.0
[models.expression]
file = "e.onnx"
sha256 = "y"
crop_scale = 1.5
[fusion]
voice_weight = 0.5
voice_full_confidence = 0.6
temperature = 1.2
"#,
        )
        .unwrap();
        let w = FusionWeights::from_manifest(&m);
        assert_eq!((w.face, w.voice, w.temperature), (1.0, 0.5, 1.2));
        let r = w.rules;
        assert_eq!(r.abstain_below, Some(0.45));
        assert_eq!((r.domain_ok, r.domain_far, r.crop_scale), (2.0, 5.0, 1.5));
        assert_eq!(r.voice_full_confidence, 0.6);
        assert_eq!(r.face_px_full, ReliabilityRules::default().face_px_full);
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
