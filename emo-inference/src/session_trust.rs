//! How far one session's voice is trusted, learned from the face as the session goes (issue 26).
//!
//! A session has one speaker, and a voice model that is off for that speaker is off in the same
//! direction all session (issue 26: one speaker's neutral, happy and fearful speech heard as
//! "sad" for minutes). No label is known live, but the face is: its top class agrees with the
//! voice's in a share `P` of the windows so far. If the face is right with probability `a_f` and
//! the voice with `a_v`, and each spreads its errors over the other `K − 1` classes, then
//! `P = a_f·a_v + (1 − a_f)(1 − a_v)/(K − 1)`, which gives the voice's accuracy *for this speaker*:
//! `a_v = (P − c)/(a_f − c)`, `c = (1 − a_f)/(K − 1)`. The voice's weight in [`crate::fusion::pool`]
//! is then `w_max · (a_v − 1/K)/(a_f − 1/K)`, clipped to `[0, w_max]`: a voice as good as the face
//! counts as much as the face, one at chance not at all.
//!
//! * **Before the session has spoken** `prior_windows` pseudo-windows hold the weight at the
//!   configured voice weight (0.5): a first second cannot swing it.
//! * **The face's accuracy** is its mean confidence over the session (it is calibrated), but never
//!   taken below `face_accuracy`, the expression model's validation accuracy. Over-estimating
//!   `a_f` only under-estimates the voice, so a session of unsure faces (flattened probabilities,
//!   still right as often) does not hand the voice a weight the agreement does not support.
//! * **Each window counts by its trust** (face trust × voice trust, [`crate::reliability`]): an
//!   abstaining or out-of-domain voice teaches the session little.
//! * Causal: a window is fused with the weight learned from the windows before it.
//!
//! On pseudo-sessions (models/README.md, "Fusion (issue 26)": one speaker's clips in sequence with
//! FER faces) it halves the sessions where fusion is below the better single modality and the
//! worst session's shortfall, on EmoDB and on RAVDESS, with sharp and with flattened faces. The
//! three numbers (1.0, 10, 0.70) were chosen there among six settings.

use crate::classifier::argmax;
use crate::fusion::{FusionWeights, Input, K};
pub use crate::reliability::SessionTrustRules;

/// One session's running agreement between face and voice (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionTrust {
    /// Trust-weighted windows whose face and voice top classes agreed.
    agree: f64,
    /// Trust-weighted sum of the face's top probability.
    face_confidence: f64,
    /// Trust-weighted number of windows seen.
    windows: f64,
}

impl SessionTrust {
    /// The voice weight for the next window: `w.voice` when session trust is off.
    pub fn voice_weight(&self, w: &FusionWeights) -> f32 {
        let Some(r) = w.session else { return w.voice };
        let finite = |x: f32, d: f32| if x.is_finite() { x } else { d };
        let w_max = finite(r.max_voice_weight, 0.0).max(0.0) as f64;
        if w_max == 0.0 {
            return 0.0;
        }
        let n0 = finite(r.prior_windows, 0.0).max(0.0) as f64;
        let floor = finite(r.face_accuracy, 0.0).clamp(0.0, 0.99) as f64;
        let k = K as f64;
        let w0 = (finite(w.voice, 0.0).max(0.0) as f64).min(w_max);
        // The face's accuracy: its mean confidence so far (the floor before any window).
        let a_f = if self.windows > 0.0 {
            (self.face_confidence / self.windows).max(floor)
        } else {
            floor
        }
        .max(1.0 / k + 1e-3);
        let c = (1.0 - a_f) / (k - 1.0);
        // The agreement a voice at weight w0 would show: the prior the evidence must outweigh.
        let a_v0 = 1.0 / k + (w0 / w_max) * (a_f - 1.0 / k);
        let p0 = a_f * a_v0 + c * (1.0 - a_v0);
        let total = self.windows + n0;
        if total <= 0.0 {
            return w0 as f32;
        }
        let p = (self.agree + n0 * p0) / total;
        let a_v = (p - c) / (a_f - c);
        (w_max * ((a_v - 1.0 / k) / (a_f - 1.0 / k)).clamp(0.0, 1.0)) as f32
    }

    /// `w` with the voice weight this session has earned.
    pub fn weights(&self, w: FusionWeights) -> FusionWeights {
        FusionWeights {
            voice: self.voice_weight(&w),
            ..w
        }
    }

    /// Count one window in which both modalities were present.
    pub fn observe(&mut self, face: &Input, voice: &Input) {
        let trust = |i: &Input| {
            if i.reliability.is_finite() {
                i.reliability.clamp(0.0, 1.0) as f64
            } else {
                0.0
            }
        };
        let r = trust(face) * trust(voice);
        if r <= 0.0 || !face.p.iter().chain(&voice.p).all(|x| x.is_finite()) {
            return;
        }
        let ((kf, cf), (kv, _)) = (argmax(&face.p), argmax(&voice.p));
        self.agree += r * f64::from(u8::from(kf == kv));
        self.face_confidence += r * cf.clamp(0.0, 1.0) as f64;
        self.windows += r;
    }

    /// Trust-weighted windows counted so far.
    pub fn windows(&self) -> f64 {
        self.windows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot(k: usize, p: f32) -> [f32; K] {
        let mut x = [(1.0 - p) / (K as f32 - 1.0); K];
        x[k] = p;
        x
    }

    fn session(pairs: &[(usize, usize)]) -> SessionTrust {
        let mut s = SessionTrust::default();
        for &(f, v) in pairs {
            s.observe(&Input::full(one_hot(f, 0.8)), &Input::full(one_hot(v, 0.6)));
        }
        s
    }

    #[test]
    fn before_any_window_the_configured_voice_weight_holds() {
        let w = FusionWeights::default();
        assert!((SessionTrust::default().voice_weight(&w) - w.voice).abs() < 1e-4);
    }

    #[test]
    fn a_voice_that_keeps_disagreeing_with_the_face_loses_its_weight() {
        // The speaker: the voice says sad (4) whatever the face shows.
        let w = FusionWeights::default();
        let pairs: Vec<_> = (0..60).map(|i| ([0, 2, 3, 6][i % 4], 4)).collect();
        let s = session(&pairs);
        assert!(s.voice_weight(&w) < 0.05, "{}", s.voice_weight(&w));
    }

    #[test]
    fn a_voice_that_agrees_with_the_face_earns_the_face_weight() {
        let w = FusionWeights::default();
        let pairs: Vec<_> = (0..60).map(|i| (i % 7, i % 7)).collect();
        let s = session(&pairs);
        let v = s.voice_weight(&w);
        assert!(v > 0.95 && v <= 1.0, "{v}");
    }

    #[test]
    fn one_window_cannot_swing_the_weight() {
        let w = FusionWeights::default();
        let agree = session(&[(3, 3)]).voice_weight(&w);
        let disagree = session(&[(3, 4)]).voice_weight(&w);
        assert!(
            (agree - 0.5).abs() < 0.15 && (disagree - 0.5).abs() < 0.15,
            "{agree} {disagree}"
        );
        assert!(agree > disagree);
    }

    #[test]
    fn untrusted_windows_teach_nothing_and_off_means_fixed() {
        let mut s = SessionTrust::default();
        let untrusted = Input {
            p: one_hot(4, 0.9),
            reliability: 0.0,
        };
        for _ in 0..50 {
            s.observe(&Input::full(one_hot(3, 0.9)), &untrusted);
        }
        assert_eq!(s.windows(), 0.0);
        let off = FusionWeights {
            session: None,
            ..FusionWeights::default()
        };
        let s = session(&[(3, 4); 40]);
        assert_eq!(s.voice_weight(&off), off.voice);
    }

    #[test]
    fn unsure_faces_do_not_hand_the_voice_more_weight() {
        // Faces right as often but flattened (mean confidence 0.3): the face's accuracy is taken
        // as at least the validation accuracy, so agreement at chance level still means ~0.
        let w = FusionWeights::default();
        let mut s = SessionTrust::default();
        for i in 0..60 {
            s.observe(
                &Input::full(one_hot(i % 7, 0.3)),
                &Input::full(one_hot((i * 3 + 1) % 7, 0.6)),
            );
        }
        assert!(s.voice_weight(&w) < 0.1, "{}", s.voice_weight(&w));
    }
}
