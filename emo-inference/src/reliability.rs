//! How far one window's estimate of each modality is trusted (0…1), from that estimate's own
//! evidence. Fusion ([`crate::fusion::log_linear`]) shrinks each distribution towards uniform by
//! its reliability `r` (`r·p + (1 − r)/7`) before pooling, so weak evidence can neither outvote
//! strong evidence nor veto a class. Every threshold lives in [`ReliabilityRules`]; the defaults
//! and how they were chosen are documented in models/README.md ("Fusion").
//!
//! * **Face**: detection score × face size. A face the detector barely accepted, or one so small
//!   that the 48-px expression crop is mostly upsampling, counts less than its class
//!   confidence alone would suggest (the expression model is equally sure on a blurred blob).
//! * **Voice**: calibrated confidence × distance from the training domain. A window below the
//!   speech model's `abstain_below` never gets full trust (its label is withheld from the
//!   stream, but it still counts a little: dropping it cost fused accuracy on the pairs), and a
//!   window whose spectral envelope is far from the training speech ([`crate::voice_domain`])
//!   loses trust even when the model is confident.

use crate::face::DEFAULT_CROP_SCALE;

/// 0 at or below `zero`, 1 at or above `full`, linear in between.
pub fn ramp(x: f32, zero: f32, full: f32) -> f32 {
    if !x.is_finite() {
        return 0.0;
    }
    if full <= zero {
        return if x >= full { 1.0 } else { 0.0 };
    }
    ((x - zero) / (full - zero)).clamp(0.0, 1.0)
}

/// What a face estimate rests on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceEvidence {
    /// Detector score (BlazeFace keeps faces from 0.5); 1 for an image that is itself a face crop.
    pub detection_score: f32,
    /// Short side of the detector box times the expression model's `crop_scale`, in source
    /// pixels: about how many pixels the 48-px expression crop was resampled from.
    pub crop_px: f32,
}

/// What a voice estimate rests on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoiceEvidence {
    /// Calibrated max probability.
    pub confidence: f32,
    /// [`crate::voice_domain::DomainModel::distance`] of the window (`None`: not measured).
    pub domain_distance: Option<f32>,
}

/// The parameters of every reliability rule, in one place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReliabilityRules {
    /// Detection score with no trust / with full trust.
    pub face_score_zero: f32,
    pub face_score_full: f32,
    /// Crop short side (px) with no trust / with full trust (the expression model's input is
    /// 48 px; FER-2013 faces are themselves low-resolution, so the model holds up to about 32).
    pub face_px_zero: f32,
    pub face_px_full: f32,
    /// Crop size relative to the detector box (the expression model's `crop_scale`).
    pub crop_scale: f32,
    /// Voice confidence from which the voice gets full trust.
    pub voice_full_confidence: f32,
    /// The speech model's abstain threshold: a window below it is withheld from the stream and
    /// is trusted at most `confidence / abstain_below`.
    pub abstain_below: Option<f32>,
    /// Domain distance up to which the voice keeps full trust, and from which it has none.
    pub domain_ok: f32,
    pub domain_far: f32,
}

impl Default for ReliabilityRules {
    /// Face: score 0.3 → 0.6 and crop 12 → 32 px, from FER-2013 validation images through the
    /// detector: faces scored 0.5–0.6 were right 61% of the time against 70–75% above 0.6, and
    /// boxes under 25 px (crop 31 px) 43% against about 70% above (FER-2013 crops, 48 px: full
    /// trust);
    /// voice: full trust from confidence 0.5 and within domain distance 1.70 (95th percentile of
    /// held-out RAVDESS actors), none from twice that.
    fn default() -> Self {
        Self {
            face_score_zero: 0.3,
            face_score_full: 0.6,
            face_px_zero: 12.0,
            face_px_full: 32.0,
            crop_scale: DEFAULT_CROP_SCALE,
            voice_full_confidence: 0.5,
            abstain_below: None,
            domain_ok: 1.70,
            domain_far: 3.40,
        }
    }
}

impl ReliabilityRules {
    /// Evidence of a detected face from its box (pixels).
    pub fn face_evidence(&self, detection_score: f32, width: f32, height: f32) -> FaceEvidence {
        FaceEvidence {
            detection_score,
            crop_px: width.min(height).max(0.0) * self.crop_scale,
        }
    }

    pub fn face(&self, e: FaceEvidence) -> f32 {
        ramp(
            e.detection_score,
            self.face_score_zero,
            self.face_score_full,
        ) * ramp(e.crop_px, self.face_px_zero, self.face_px_full)
    }

    /// Whether the voice estimate is withheld from the stream (its label is not reported).
    pub fn voice_abstains(&self, confidence: f32) -> bool {
        self.abstain_below.is_some_and(|a| confidence < a)
    }

    pub fn voice(&self, e: VoiceEvidence) -> f32 {
        let full = self
            .voice_full_confidence
            .max(self.abstain_below.unwrap_or(0.0))
            .max(1e-6);
        let conf = (e.confidence / full).clamp(0.0, 1.0);
        let domain = e
            .domain_distance
            .map_or(1.0, |d| 1.0 - ramp(d, self.domain_ok, self.domain_far));
        if conf.is_nan() {
            return 0.0;
        }
        conf * domain
    }
}

/// The session-trust parameters ([`crate::session_trust`]: how a session's voice weight follows
/// its agreement with the face). Here, beside the per-window rules, so that fusion's weights can
/// hold them without fusion and session trust importing each other.
///
/// The parameters (`[fusion.session_trust]` in the manifest; `enabled = false`
/// turns it off and the configured voice weight holds all session).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionTrustRules {
    /// The highest voice weight a session can earn (the face's weight is 1).
    pub max_voice_weight: f32,
    /// Pseudo-windows at the configured voice weight that the evidence must outweigh.
    pub prior_windows: f32,
    /// The expression model's validation accuracy: the least the face's accuracy is taken to be.
    pub face_accuracy: f32,
}

impl Default for SessionTrustRules {
    fn default() -> Self {
        Self {
            max_voice_weight: 1.0,
            prior_windows: 10.0,
            face_accuracy: 0.70,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_clamp_and_survive_nonsense() {
        let near = |a: f32, b: f32| (a - b).abs() < 1e-6;
        assert!(near(ramp(0.5, 0.4, 0.8), 0.25));
        assert!(near(ramp(0.45, 0.3, 0.6), 0.5));
        assert_eq!(ramp(0.1, 0.4, 0.8), 0.0);
        assert_eq!(ramp(2.0, 0.4, 0.8), 1.0);
        assert_eq!(ramp(f32::NAN, 0.4, 0.8), 0.0);
        assert_eq!(ramp(1.0, 1.0, 1.0), 1.0);
        assert_eq!(ramp(0.9, 1.0, 1.0), 0.0);
    }

    #[test]
    fn faces_count_by_score_and_size() {
        let r = ReliabilityRules::default();
        // A FER-2013 image: a 48-px crop that is a face.
        let fer = FaceEvidence {
            detection_score: 1.0,
            crop_px: 48.0,
        };
        assert_eq!(r.face(fer), 1.0);
        // A clear face of 120 px in a webcam frame.
        assert_eq!(r.face(r.face_evidence(0.95, 120.0, 140.0)), 1.0);
        // A 10-px face the detector barely accepted: crop 12.5 px, score 0.52.
        let tiny = r.face(r.face_evidence(0.52, 10.0, 11.0));
        assert!(tiny > 0.0 && tiny < 0.05, "{tiny}");
        // Each factor alone lowers trust.
        assert!((r.face(r.face_evidence(0.45, 200.0, 200.0)) - 0.5).abs() < 1e-6);
        assert!((r.face(r.face_evidence(0.9, 17.6, 40.0)) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn voices_count_by_confidence_abstention_and_domain() {
        let mut r = ReliabilityRules::default();
        let v = |c: f32, d: Option<f32>| VoiceEvidence {
            confidence: c,
            domain_distance: d,
        };
        assert_eq!(r.voice(v(0.9, Some(1.0))), 1.0);
        assert!((r.voice(v(0.4, None)) - 0.8).abs() < 1e-6);
        // Confident but twice as far from the training speech as unseen RAVDESS actors get.
        assert_eq!(r.voice(v(0.9, Some(3.40))), 0.0);
        assert!((r.voice(v(0.9, Some(2.55))) - 0.5).abs() < 1e-5);
        // An abstain threshold above the full-trust confidence caps an abstaining voice.
        r.abstain_below = Some(0.6);
        assert!(r.voice_abstains(0.55) && !r.voice_abstains(0.6));
        assert!((r.voice(v(0.55, None)) - 0.55 / 0.6).abs() < 1e-6);
        assert!(r.voice(v(0.55, None)) > 0.0, "abstaining is not silence");
        assert_eq!(r.voice(v(f32::NAN, None)), 0.0);
    }
}
