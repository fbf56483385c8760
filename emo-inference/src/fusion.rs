//! Late fusion of face and voice estimates (see ARCHITECTURE.md, "Data flow"; the argument for
//! the rule is in models/README.md, "Fusion").
//!
//! * **calibrated** (default): each modality's probabilities are already calibrated by its
//!   manifest temperature (softmax(logits / T)); voice's `calm` is folded into `neutral`; then a
//!   **robust log-linear pool** in the 7-class space ([`pool`]): each input is shrunk towards
//!   uniform by its trust ([`crate::reliability`]) and mixed with a uniform **floor** `ε`
//!   (`p' = (1 − ε)·p + ε/7`), the floored inputs are pooled log-linearly
//!   (`p ∝ p'_face^w_f · p'_voice^w_v`, voice weight half the face's), the result is divided by
//!   the fused temperature, and when the two inputs' top classes differ the fused confidence is
//!   capped at the larger input confidence (by mixing towards the trust-weighted linear pool,
//!   [`linear_pool`]). A missing modality drops out (the other is used as is).
//!
//!   Why (issue 26; figures in models/README.md, "Fusion"): in a real session one speaker's voice
//!   is off in the same direction for minutes. Plain log-linear pooling (used until then) let it
//!   strike out the face's class (a class one input rates near zero got near zero, whatever the
//!   other said) and made two weak, disagreeing inputs look sure. The floor bounds what one input
//!   can take away: every class keeps at least `(1 − ε)·(ε/7)^w_v` of the face's probability;
//!   a fully trusted face at least 0.9 sure cannot be overturned by a less confident voice,
//!   whatever the two distributions; and disagreeing inputs never produce a surer estimate than
//!   the surer of them (the property tests below). A linear pool alone has these properties too
//!   but gave up most of what fusion gains when the inputs agree (pseudo-sessions: 79.3% vs
//!   86.6% log-linear on RAVDESS), and it is underconfident.
//! * **mode**: the seed's majority vote over per-window labels; probabilities are the vote
//!   shares. Only estimates that earn trust vote (an abstaining voice or a zero-trust face does
//!   not: its label is not one the product would report), and ties go to the larger summed
//!   confidence × trust, so an unsure or out-of-domain voice cannot win a 1–1 tie against a
//!   clear face just by being sharp.
//!
//! Weights: [`FusionWeights::default`] holds the values argued in models/README.md; a `[fusion]`
//! table in the manifest (`face_weight`, `voice_weight`, `floor`, `temperature`,
//! `[fusion.session_trust]`) overrides them. Within a session (live, one file in `analyze`, a
//! pseudo-session) the voice weight is not fixed: [`crate::session_trust`] moves it between 0 and
//! the face's weight by how well the voice has agreed with the face so far.
//! [`log_linear`] (the rule before issue 26) is kept for `emod eval fusion`, which reports it
//! beside the pool.

use emo_api_types::Emotion;

use crate::classifier::argmax;
use crate::manifest::Manifest;
use crate::reliability::{FaceEvidence, ReliabilityRules, SessionTrustRules, VoiceEvidence};

/// Number of classes in the fused space.
pub const K: usize = 7;
/// Floor applied to probabilities before taking logs in [`log_linear`].
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
/// ([`crate::reliability`]): a modality's distribution is shrunk towards uniform by its trust
/// (`r·p + (1 − r)/7`), so an unsure or out-of-domain voice (a flat distribution, speech unlike
/// the training corpora) or a small, barely detected face counts less, and one with no trust
/// not at all; then floored and pooled ([`pool`]). The fused distribution is divided by
/// `temperature` (fitted by log-loss on pseudo-session windows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusionWeights {
    pub face: f32,
    pub voice: f32,
    /// Uniform floor `ε` mixed into each input before log-linear pooling (0 = plain log-linear).
    pub floor: f32,
    /// Temperature applied to the fused log-probabilities when both modalities are present.
    pub temperature: f32,
    /// How each window's face and voice evidence turns into trust.
    pub rules: ReliabilityRules,
    /// How a session's voice weight adapts to its agreement with the face
    /// ([`crate::session_trust`]); `None`: `voice` holds all session.
    pub session: Option<SessionTrustRules>,
}

impl Default for FusionWeights {
    /// Voice weight 0.5 of the face's and floor 0.1, chosen on pseudo-sessions (one speaker's
    /// clips in sequence with FER faces, sharp crops and flattened ones standing in for less sure
    /// video faces): the only setting of the grid that was above the face on the mean in every
    /// condition (models/README.md, "Fusion"). The voice is the weaker modality on real people
    /// (issue 26: 9/27 windows right vs the face's 25/41) and its errors last a whole session.
    /// Temperature: fitted by log-loss on the same windows.
    fn default() -> Self {
        Self {
            face: 1.0,
            voice: 0.5,
            floor: 0.1,
            temperature: DEFAULT_TEMPERATURE,
            rules: ReliabilityRules::default(),
            session: Some(SessionTrustRules::default()),
        }
    }
}

/// The fused temperature of [`FusionWeights::default`] (models/README.md, "Fusion").
pub const DEFAULT_TEMPERATURE: f32 = 1.0;

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
            w.floor = float(f.extra.get("floor")).map_or(d.floor, |x| x.clamp(0.0, 1.0));
            w.temperature = float(f.extra.get("temperature")).unwrap_or(d.temperature);
            rules.voice_full_confidence =
                float(f.extra.get("voice_full_confidence")).unwrap_or(rules.voice_full_confidence);
            if let Some(t) = f.extra.get("session_trust").and_then(|v| v.as_table()) {
                let enabled = t.get("enabled").and_then(|v| v.as_bool()).unwrap_or(true);
                let r = SessionTrustRules::default();
                w.session = enabled.then(|| SessionTrustRules {
                    max_voice_weight: float(t.get("max_voice_weight"))
                        .unwrap_or(r.max_voice_weight),
                    prior_windows: float(t.get("prior_windows")).unwrap_or(r.prior_windows),
                    face_accuracy: float(t.get("face_accuracy")).unwrap_or(r.face_accuracy),
                });
            }
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

/// The `calibrated` rule (module docs): robust log-linear pool of the present modalities.
/// `None` when neither is present; a lone modality is returned as it is (there is nothing for it
/// to outvote).
pub fn pool(face: Option<&Input>, voice: Option<&Input>, w: FusionWeights) -> Option<[f32; K]> {
    let (f, v) = match (face, voice) {
        (None, None) => return None,
        (Some(x), None) | (None, Some(x)) => return Some(x.p),
        (Some(f), Some(v)) => (f, v),
    };
    let eps = if w.floor.is_finite() {
        w.floor.clamp(0.0, 1.0) as f64
    } else {
        0.0
    };
    let floored = |i: &Input| {
        i.shrunk()
            .map(|x| (1.0 - eps) * x.max(0.0) as f64 + eps / K as f64)
    };
    let (fp, vp) = (floored(f), floored(v));
    let t = if w.temperature.is_finite() && w.temperature > 0.0 {
        w.temperature as f64
    } else {
        1.0
    };
    let mut l = [0.0f64; K];
    for k in 0..K {
        l[k] = (w.face.max(0.0) as f64 * fp[k].max(PROB_FLOOR as f64).ln()
            + w.voice.max(0.0) as f64 * vp[k].max(PROB_FLOOR as f64).ln())
            / t;
    }
    let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = l.iter().map(|x| (x - m).exp()).sum();
    let p = l.map(|x| (x - m).exp() / z);
    let ((kf, cf), (kv, cv)) = (argmax(&f.p), argmax(&v.p));
    let cap = cf.max(cv) as f64;
    let top = p.iter().copied().fold(0.0, f64::max);
    if kf == kv || top <= cap {
        return Some(p.map(|x| x as f32));
    }
    // Disagreeing inputs: mix towards the linear pool (whose top is at most `cap`) just enough
    // that the fused confidence is not above the surer input's.
    let lin = linear_pool(
        Some(f),
        Some(v),
        FusionWeights {
            temperature: 1.0,
            ..w
        },
    )?;
    let lin_top = lin.iter().copied().fold(0.0f32, f32::max) as f64;
    let lambda = ((top - cap) / (top - lin_top).max(1e-12)).clamp(0.0, 1.0);
    let mut out = [0.0f32; K];
    for k in 0..K {
        out[k] = ((1.0 - lambda) * p[k] + lambda * lin[k] as f64) as f32;
    }
    Some(out)
}

/// Trust-weighted linear opinion pool: `(a_f·p_face + a_v·p_voice)/(a_f + a_v)` with
/// `a = weight × trust` (two inputs with no trust count equally). Its top probability is never
/// above the surer input's; [`pool`] uses it to cap the confidence of disagreeing inputs.
pub fn linear_pool(
    face: Option<&Input>,
    voice: Option<&Input>,
    w: FusionWeights,
) -> Option<[f32; K]> {
    match (face, voice) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x.p),
        (Some(f), Some(v)) => {
            let trust = |i: &Input| {
                if i.reliability.is_finite() {
                    i.reliability.clamp(0.0, 1.0) as f64
                } else {
                    0.0
                }
            };
            let (mut a_f, mut a_v) = (
                w.face.max(0.0) as f64 * trust(f),
                w.voice.max(0.0) as f64 * trust(v),
            );
            if a_f + a_v <= 0.0 {
                (a_f, a_v) = (1.0, 1.0);
            }
            let mut p = [0.0f64; K];
            for ((x, a), b) in p.iter_mut().zip(f.p).zip(v.p) {
                *x = a_f * a.max(0.0) as f64 + a_v * b.max(0.0) as f64;
            }
            // Renormalised, so inputs that do not quite sum to 1 still give a distribution.
            let z: f64 = p.iter().sum();
            Some(if z > 0.0 {
                p.map(|x| (x / z) as f32)
            } else {
                [1.0 / K as f32; K]
            })
        }
    }
}

/// Weighted log-linear pooling of the present modalities, each shrunk by its reliability (the
/// rule until issue 26, kept for `emod eval fusion`'s comparison column).
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
        Strategy::Calibrated => pool(face, voice, w).map(|p| {
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

    /// Calibrated fusion of the pair ([`pool`]).
    pub fn fused(&self, w: FusionWeights) -> [f32; K] {
        let (f, v) = self.inputs(&w);
        pool(Some(&f), Some(&v), w).unwrap_or(self.face)
    }

    /// The pair under the log-linear rule used before issue 26 (for comparison).
    pub fn fused_log_linear(&self, w: FusionWeights) -> [f32; K] {
        let (f, v) = self.inputs(&w);
        log_linear(Some(&f), Some(&v), w).unwrap_or(self.face)
    }
}

/// Choose the parameters on labelled pairs: the voice weight (0.25…2.0) and the confidence of
/// full voice trust (0.3…1.0) that maximise fused accuracy (ties keep the combination closest to
/// the defaults), then the fused temperature (0.5…2.0) that minimises log-loss. The face and
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
    let temperature = (5..=20)
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
        // The static log-linear weighting used before (voice 1.2 at any confidence, no
        // temperature) let this voice decide.
        let old = FusionWeights {
            face: 1.0,
            voice: 1.2,
            temperature: 1.0,
            ..w
        };
        let fixed = Input::full(voice);
        let before = log_linear(Some(&fi), Some(&fixed), old).unwrap();
        assert_eq!(argmax(&before).0, 4, "{before:?}");
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
        let with = pool(Some(&face), Some(&vi), w).unwrap();
        let without = pool(Some(&face), None, w).unwrap();
        assert!(with[4] > without[4] + 0.01, "{with:?} vs {without:?}");
        // Where the two agree (no cap), a surer voice moves the estimate further.
        let agreeing = w.face_input(p([0.05, 0.05, 0.05, 0.35, 0.40, 0.05, 0.05]), CLEAR_FACE);
        let less = pool(Some(&agreeing), Some(&vi), w).unwrap();
        let sure = w.voice_input(voice, voice_ev(0.6));
        let more = pool(Some(&agreeing), Some(&sure), w).unwrap();
        assert!(more[4] > less[4], "{more:?} vs {less:?}");
    }

    /// Random distributions for the property tests (fixed seed: the same cases every run).
    fn random_cases(n: usize) -> Vec<([f32; K], [f32; K], f32, f32)> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(26);
        let dist = |rng: &mut rand::rngs::StdRng| {
            // Sharp and flat ones alike: exponentials of a random spread.
            let spread = rng.gen_range(0.1f32..6.0);
            p([(); K].map(|_| (spread * rng.gen_range(-1.0f32..1.0)).exp()))
        };
        (0..n)
            .map(|_| {
                let f = dist(&mut rng);
                let v = dist(&mut rng);
                (
                    f,
                    v,
                    rng.gen_range(0.0f32..=1.0),
                    rng.gen_range(0.0f32..=1.0),
                )
            })
            .collect()
    }

    /// Rule 1: no veto. Whatever the voice says (a class it rates 0 included) and however far
    /// it is trusted, every class keeps at least `(1 − ε)·(ε/7)^w_v` of a trusted face's
    /// probability.
    #[test]
    fn property_no_input_can_strike_out_a_class() {
        let w = FusionWeights::default();
        let bound = (1.0 - w.floor) * (w.floor / K as f32).powf(w.voice);
        assert!(bound > 0.1, "{bound}");
        for (f, mut v, _, rv) in random_cases(5000) {
            v[1] = 0.0; // the voice strikes out one class entirely
            let vi = Input {
                p: v,
                reliability: rv,
            };
            let out = pool(Some(&Input::full(f)), Some(&vi), w).unwrap();
            for k in 0..K {
                assert!(
                    out[k] >= bound * f[k] - 1e-6,
                    "{k}: {out:?} face {f:?} voice {v:?} {rv}"
                );
            }
            assert!((out.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    /// Rule 2: a face trusted in full and at least 0.9 sure is never overturned by a less
    /// confident voice, whatever it rates the voice's class and whatever the voice's trust.
    #[test]
    fn property_a_confident_face_is_not_overturned_by_a_less_confident_voice() {
        let w = FusionWeights::default();
        let mut checked = 0;
        for (f, v, _, rv) in random_cases(40000) {
            let ((kf, cf), (kv, cv)) = (argmax(&f), argmax(&v));
            if cf < 0.9 || cv >= cf || kf == kv {
                continue;
            }
            checked += 1;
            let vi = Input {
                p: v,
                reliability: rv,
            };
            let (_, k) = fuse(Strategy::Calibrated, Some(&Input::full(f)), Some(&vi), w).unwrap();
            assert_eq!(k, kf, "face {f:?} voice {v:?} trust {rv}");
        }
        assert!(checked > 300, "only {checked} cases");
        // The worst case the bound allows for: the face puts all its remaining mass on the
        // voice's class, and the voice rates the face's class 0.
        let face = [0.9, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0];
        let voice = [
            0.0,
            0.899,
            0.101 / 5.0,
            0.101 / 5.0,
            0.101 / 5.0,
            0.101 / 5.0,
            0.101 / 5.0,
        ];
        let k = fuse(
            Strategy::Calibrated,
            Some(&Input::full(face)),
            Some(&Input::full(voice)),
            w,
        );
        assert_eq!(k.unwrap().1, 0);
    }

    /// Rule 3: two inputs whose top classes differ never make an estimate surer than the surer
    /// of them, whatever the fused temperature.
    #[test]
    fn property_disagreeing_inputs_never_make_a_surer_estimate() {
        let mut checked = 0;
        for t in [1.0, 0.5, 1.7] {
            let w = FusionWeights {
                temperature: t,
                ..FusionWeights::default()
            };
            for (f, v, rf, rv) in random_cases(5000) {
                let ((kf, cf), (kv, cv)) = (argmax(&f), argmax(&v));
                if kf == kv {
                    continue;
                }
                checked += 1;
                let (fi, vi) = (
                    Input {
                        p: f,
                        reliability: rf,
                    },
                    Input {
                        p: v,
                        reliability: rv,
                    },
                );
                let out = pool(Some(&fi), Some(&vi), w).unwrap();
                let c = argmax(&out).1;
                assert!(c <= cf.max(cv) + 1e-5, "t {t}: {c} from {f:?} and {v:?}");
                assert!((out.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
        assert!(checked > 5000, "{checked}");
    }

    /// The first real case of issue 26 (one actor, live): for a whole second the face says
    /// angry 0.81, the voice (quiet, -39 dBFS, domain distance 0.84: "in domain") sad 0.55 with
    /// angry 0.02. Log-linear pooling gave sad 0.55; the pool keeps angry.
    #[test]
    fn real_case_a_sure_angry_face_and_a_sad_voice() {
        let w = FusionWeights::default();
        // The face's runner-up was sad (0.15): what let log-linear pooling hand sad the win.
        let face = p([0.81, 0.01, 0.01, 0.005, 0.15, 0.005, 0.01]);
        let voice = p([0.02, 0.05, 0.10, 0.04, 0.55, 0.02, 0.22]);
        let ev = VoiceEvidence {
            confidence: 0.55,
            domain_distance: Some(0.84),
        };
        let vi = w.voice_input(voice, ev);
        assert_eq!(
            vi.reliability, 1.0,
            "0.55 is above full trust: nothing shrinks it"
        );
        let fi = w.face_input(face, CLEAR_FACE);
        let before = log_linear(Some(&fi), Some(&vi), FusionWeights { voice: 0.75, ..w }).unwrap();
        assert_eq!(argmax(&before).0, 4, "the veto this replaces: {before:?}");
        assert!(argmax(&before).1 > 0.5, "{before:?}");
        let (probs, k) = fuse(Strategy::Calibrated, Some(&fi), Some(&vi), w).unwrap();
        assert_eq!(k, 0, "{probs:?}");
        assert!(probs[0] > probs[4] + 0.05, "{probs:?}");
    }

    /// The second real case: six windows in a row the face says neutral 0.31-0.36 and the voice
    /// sad 0.72-0.78; log-linear pooling said sad 0.73-0.86, surer than either input. The pool
    /// stays below the voice's own confidence and below even odds.
    #[test]
    fn real_case_two_weak_disagreeing_inputs_do_not_make_a_sure_one() {
        let w = FusionWeights::default();
        for (cf, cv) in [(0.31, 0.72), (0.33, 0.75), (0.36, 0.78)] {
            // The face's runner-up is sad (0.28-0.30): what made log-linear pooling so sure.
            let mut face = [(1.0 - cf - 0.29) / 5.0; K];
            face[6] = cf;
            face[4] = 0.29;
            let mut voice = [(1.0 - cv) / 6.0; K];
            voice[4] = cv;
            let fi = w.face_input(face, CLEAR_FACE);
            let vi = w.voice_input(voice, voice_ev(cv));
            let before =
                log_linear(Some(&fi), Some(&vi), FusionWeights { voice: 0.75, ..w }).unwrap();
            let (probs, _) = fuse(Strategy::Calibrated, Some(&fi), Some(&vi), w).unwrap();
            let c = argmax(&probs).1;
            assert!(
                argmax(&before).1 > cv,
                "log-linear was surer than the voice: {before:?}"
            );
            assert!(
                c < cv && c < argmax(&before).1 - 0.15,
                "{cf} {cv}: {probs:?} (before {before:?})"
            );
        }
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
