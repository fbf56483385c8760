//! Inference shaped for streams, shared by live capture and the offline timeline.
//!
//! * [`SpeechStream`]: push 16 kHz mono chunks as they arrive; every hop (1 s) once a full
//!   window (3 s) is buffered, the window is checked for voice activity and, when voiced,
//!   classified. Memory is one window of samples, whatever the session length.
//! * [`Fuser`]: push face and voice observations in any order; [`Fuser::poll`] emits one fused
//!   estimate per 1-s window whose end has passed. `analyze`'s per-second timeline of a file is
//!   the same fuser fed with the whole file, so files and live capture give the same numbers.
//!
//! Times are seconds on the caller's clock (file time offline, Unix time live).

use std::collections::VecDeque;

use emo_api_types::Emotion;

use crate::audio;
use crate::classifier::argmax;
use crate::fusion::{self, FusionWeights, Input, Strategy, K};
use crate::reliability::{FaceEvidence, VoiceEvidence};
use crate::session_trust::SessionTrust;
use crate::speaker_norm::SpeakerProfile;
use crate::speech::SpeechModel;
use crate::Result;

/// One analysed speech window of a stream (the same shape as a file's windows).
pub use crate::speech::WindowResult as VoiceWindow;

/// Sliding-window speech analysis over pushed chunks (see the module docs).
#[derive(Debug)]
pub struct SpeechStream {
    rate: f64,
    window: usize,
    hop: usize,
    /// The most recent samples, at most one window.
    buf: VecDeque<f32>,
    /// Caller time just after the last buffered sample.
    t_end: Option<f64>,
    /// Samples pushed since the last analysed window.
    since: usize,
    primed: bool,
    /// The session's speaker so far (one speaker per session: the subject).
    speaker: SpeakerProfile,
}

impl SpeechStream {
    pub fn new(model: &SpeechModel) -> Self {
        Self::with_shape(
            model.spec.sample_rate,
            model.spec.window_samples,
            model.hop_samples,
        )
    }

    /// A stream with explicit geometry (tests, tools).
    pub fn with_shape(rate: u32, window: usize, hop: usize) -> Self {
        Self {
            rate: rate as f64,
            window: window.max(1),
            hop: hop.max(1),
            buf: VecDeque::with_capacity(window),
            t_end: None,
            since: 0,
            primed: false,
            speaker: SpeakerProfile::default(),
        }
    }

    /// Append `samples` (model rate, mono) whose first sample was captured at `t_first`, and
    /// return the windows that became due. A gap or overlap in `t_first` is not an error: the
    /// stream trusts the samples and re-anchors its clock on every chunk.
    pub fn push(
        &mut self,
        model: &SpeechModel,
        samples: &[f32],
        t_first: f64,
    ) -> Result<Vec<VoiceWindow>> {
        let mut out = Vec::new();
        for (i, &s) in samples.iter().enumerate() {
            if self.buf.len() == self.window {
                self.buf.pop_front();
            }
            self.buf.push_back(s);
            self.since += 1;
            let full = self.buf.len() == self.window;
            if full && (!self.primed || self.since >= self.hop) {
                self.primed = true;
                self.since = 0;
                let end = t_first + (i + 1) as f64 / self.rate;
                out.push(self.analyze_window(model, end)?);
            }
        }
        self.t_end = Some(t_first + samples.len() as f64 / self.rate);
        Ok(out)
    }

    /// Caller time just after the last pushed sample.
    pub fn time(&self) -> Option<f64> {
        self.t_end
    }

    fn analyze_window(&mut self, model: &SpeechModel, end: f64) -> Result<VoiceWindow> {
        let (a, b) = self.buf.as_slices();
        let x: Vec<f32> = a.iter().chain(b).copied().collect();
        let rate = self.rate as u32;
        let voiced = model.vad.is_voiced(&x, rate);
        let mut w = VoiceWindow {
            start: end - self.window as f64 / self.rate,
            end,
            level_dbfs: audio::dbfs(crate::features::rms(&x)),
            voiced,
            probabilities: Vec::new(),
            label: None,
            confidence: 0.0,
            domain_distance: None,
        };
        if voiced {
            let feats = model.clip_features(&x);
            w.domain_distance = model.domain_distance(&feats);
            model.observe_speaker(&mut self.speaker, &feats);
            let input = model.model_input(&self.speaker, &feats);
            if let Some(p) = model.classify_features(&[input])?.pop() {
                let (k, c) = argmax(&p);
                w.label = model.labels().get(k).copied();
                w.confidence = c;
                w.probabilities = p;
            }
        }
        Ok(w)
    }
}

/// A face estimate at one instant (7 classes, face space).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceObs {
    pub t: f64,
    pub probabilities: [f32; K],
    pub detection_score: f32,
    /// Short side (source pixels) of the region the expression crop came from: small faces
    /// count less in fusion ([`crate::reliability`]).
    pub crop_px: f32,
}

/// A voice window (probabilities folded into the 7-class face space; `None` when unvoiced or
/// withheld).
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceObs {
    pub start: f64,
    pub end: f64,
    pub probabilities: Option<[f32; K]>,
    /// Probabilities in the speech model's own label order (8 classes), for voice samples.
    pub raw: Vec<f32>,
    pub label: Option<Emotion>,
    pub confidence: f32,
    /// Out-of-domain distance of the window ([`crate::voice_domain`]), when measured.
    pub domain_distance: Option<f32>,
}

/// One fused 1-s window.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedWindow {
    pub start: f64,
    pub end: f64,
    /// Mean face probabilities of the window, weighted by detection score, and the number of
    /// faces that went into it.
    pub face: Option<([f32; K], usize)>,
    /// The voice window used for this second.
    pub voice: Option<VoiceObs>,
    /// The voice is below the speech model's abstain threshold: it counted in `fused` with the
    /// little trust it earns, but its label is not to be reported.
    pub voice_abstained: bool,
    /// Fused probabilities and the winning class index.
    pub fused: Option<([f32; K], usize)>,
}

/// Incremental per-window fusion (see the module docs).
#[derive(Debug)]
pub struct Fuser {
    strategy: Strategy,
    weights: FusionWeights,
    origin: f64,
    window: f64,
    /// Index of the next window to emit.
    next: u64,
    faces: Vec<FaceObs>,
    voices: VecDeque<VoiceObs>,
    /// The session's voice weight, learned from its agreement with the face so far.
    trust: SessionTrust,
}

impl Fuser {
    /// Windows are `[origin + k·window, origin + (k+1)·window)`.
    pub fn new(origin: f64, window: f64, strategy: Strategy, weights: FusionWeights) -> Self {
        Self {
            strategy,
            weights,
            origin,
            window: if window > 0.0 { window } else { 1.0 },
            next: 0,
            faces: Vec::new(),
            voices: VecDeque::new(),
            trust: SessionTrust::default(),
        }
    }

    /// Replace the fusion weights (the live pipeline learns them once the engine has loaded).
    pub fn set_weights(&mut self, weights: FusionWeights) {
        self.weights = weights;
    }

    pub fn push_face(&mut self, f: FaceObs) {
        self.faces.push(f);
    }

    pub fn push_voice(&mut self, v: VoiceObs) {
        self.voices.push_back(v);
    }

    /// Start of the next window to be emitted.
    pub fn next_start(&self) -> f64 {
        self.origin + self.next as f64 * self.window
    }

    /// Emit every window that ends at or before `until`, oldest first. Windows with neither
    /// modality are skipped (nothing is emitted for them). Observations that can no longer
    /// matter are dropped, so memory stays bounded in a long session.
    pub fn poll(&mut self, until: f64) -> Vec<FusedWindow> {
        let mut out = Vec::new();
        loop {
            let t0 = self.next_start();
            let t1 = t0 + self.window;
            if t1 > until + 1e-9 {
                break;
            }
            self.next += 1;
            let in_window: Vec<FaceObs> = self
                .faces
                .iter()
                .filter(|f| f.t >= t0 && f.t < t1)
                .copied()
                .collect();
            self.faces.retain(|f| f.t >= t1);
            // The latest-starting window covering the start of this second.
            let voice = self
                .voices
                .iter()
                .filter(|v| v.start <= t0 + 1e-9 && v.end > t0)
                .max_by(|a, b| a.start.total_cmp(&b.start))
                .cloned();
            if let Some((w, inputs)) = self.emit(t0, t1, &in_window, voice) {
                if let Some((f, v)) = inputs {
                    self.trust.observe(&f, &v);
                }
                out.push(w);
            }
            while self.voices.front().is_some_and(|v| v.end <= t1) {
                self.voices.pop_front();
            }
        }
        out
    }

    /// Everything pushed so far in one window `[start, end]` (a still image: every face counts,
    /// whatever its time).
    pub fn single(&self, start: f64, end: f64) -> Option<FusedWindow> {
        let voice = self.voices.back().cloned();
        self.emit(start, end, &self.faces, voice).map(|(w, _)| w)
    }

    /// The voice weight the session has earned so far ([`SessionTrust`]).
    pub fn voice_weight(&self) -> f32 {
        self.trust.voice_weight(&self.weights)
    }

    /// The window, and its face and voice inputs when both were present (what the session's
    /// trust learns from).
    fn emit(
        &self,
        t0: f64,
        t1: f64,
        faces: &[FaceObs],
        voice: Option<VoiceObs>,
    ) -> Option<(FusedWindow, Option<(Input, Input)>)> {
        let face = (!faces.is_empty()).then(|| {
            let wsum: f32 = faces.iter().map(|f| f.detection_score.max(1e-6)).sum();
            let mut a = [0.0f32; K];
            for f in faces {
                let w = f.detection_score.max(1e-6) / wsum;
                for (x, y) in a.iter_mut().zip(f.probabilities) {
                    *x += w * y;
                }
            }
            (a, faces.len())
        });
        let face_in = face.map(|(p, _)| self.face_input(p, faces));
        let voice_in = voice.as_ref().and_then(|v| {
            let ev = VoiceEvidence {
                confidence: v.confidence,
                domain_distance: v.domain_distance,
            };
            v.probabilities.map(|p| self.weights.voice_input(p, ev))
        });
        let fused = match self.strategy {
            Strategy::Mode => {
                let rules = &self.weights.rules;
                // A second of frames from one tracked subject is one estimate (the pooled face
                // with its mean trust), not one vote per frame: ten frames of one face are not
                // ten witnesses, and would outvote the voice every time.
                let mut votes: Vec<(usize, f32)> = face_in
                    .as_ref()
                    .and_then(fusion::trusted_vote)
                    .into_iter()
                    .collect();
                if let (Some(v), Some(input)) = (voice.as_ref(), voice_in.as_ref()) {
                    let trusted = !rules.voice_abstains(v.confidence) && input.reliability > 0.0;
                    if let Some(e) = v.label.filter(|_| trusted) {
                        let c = v.confidence * input.reliability.min(1.0);
                        votes.push((e.to_face_space().index(), c));
                    }
                }
                fusion::mode_vote(&votes).zip(fusion::mode_winner(&votes))
            }
            Strategy::Calibrated => fusion::fuse(
                self.strategy,
                face_in.as_ref(),
                voice_in.as_ref(),
                self.trust.weights(self.weights),
            ),
        };
        fused?;
        let voice = voice.filter(|v| v.probabilities.is_some());
        let inputs = face_in.zip(voice_in);
        let window = FusedWindow {
            start: t0,
            end: t1,
            face,
            voice_abstained: voice
                .as_ref()
                .is_some_and(|v| self.weights.rules.voice_abstains(v.confidence)),
            voice,
            fused,
        };
        Some((window, inputs))
    }

    /// The window's mean face with the detection-score-weighted mean of its faces' reliability.
    fn face_input(&self, p: [f32; K], faces: &[FaceObs]) -> Input {
        let rules = &self.weights.rules;
        let wsum: f32 = faces.iter().map(|f| f.detection_score.max(1e-6)).sum();
        let reliability = faces
            .iter()
            .map(|f| {
                let ev = FaceEvidence {
                    detection_score: f.detection_score,
                    crop_px: f.crop_px,
                };
                f.detection_score.max(1e-6) / wsum * rules.face(ev)
            })
            .sum();
        Input { p, reliability }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(t: f64, k: usize, c: f32) -> FaceObs {
        let mut p = [(1.0 - c) / (K as f32 - 1.0); K];
        p[k] = c;
        FaceObs {
            t,
            probabilities: p,
            detection_score: 0.9,
            crop_px: 120.0,
        }
    }

    fn voice(start: f64, k: usize, c: f32) -> VoiceObs {
        let mut p = [(1.0 - c) / (K as f32 - 1.0); K];
        p[k] = c;
        VoiceObs {
            start,
            end: start + 3.0,
            probabilities: Some(p),
            raw: Vec::new(),
            label: Some(Emotion::FACE[k]),
            confidence: c,
            domain_distance: None,
        }
    }

    #[test]
    fn one_window_per_second_once_it_has_passed() {
        let mut f = Fuser::new(100.0, 1.0, Strategy::Calibrated, FusionWeights::default());
        f.push_face(face(100.2, 3, 0.9));
        f.push_face(face(100.7, 3, 0.8));
        f.push_face(face(101.1, 4, 0.9));
        assert!(f.poll(100.99).is_empty(), "the first second has not ended");
        let w = f.poll(101.0);
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].start, w[0].end), (100.0, 101.0));
        assert_eq!(w[0].face.unwrap().1, 2);
        assert_eq!(w[0].fused.unwrap().1, 3);
        // A second with nothing in it is skipped; the next with a face is emitted.
        f.push_face(face(103.5, 0, 0.9));
        let w = f.poll(104.0);
        assert_eq!(
            w.iter().map(|w| w.start).collect::<Vec<_>>(),
            [101.0, 103.0]
        );
        // Consumed observations are dropped.
        assert!(f.faces.is_empty());
    }

    #[test]
    fn voice_covers_the_seconds_of_its_window() {
        let mut f = Fuser::new(0.0, 1.0, Strategy::Calibrated, FusionWeights::default());
        f.push_voice(voice(0.0, 4, 0.9));
        f.push_voice(voice(1.0, 2, 0.9));
        let w = f.poll(3.0);
        let labels: Vec<usize> = w.iter().map(|w| w.fused.unwrap().1).collect();
        // Second 0: window 0–3; seconds 1 and 2: the later window 1–4.
        assert_eq!(labels, [4, 2, 2]);
        assert!(w.iter().all(|w| w.face.is_none() && w.voice.is_some()));
    }

    /// Issue 26's speaker, live: a voice that says "sad" whatever the face shows. In the first
    /// seconds an unsure face (neutral 0.33) next to it still comes out sad, as with a fixed
    /// weight; after a minute of disagreeing the session has learnt not to trust that voice, and
    /// the same second follows the face. A voice that agrees earns the face's weight instead.
    #[test]
    fn the_voice_weight_follows_the_session() {
        let mut f = Fuser::new(0.0, 1.0, Strategy::Calibrated, FusionWeights::default());
        assert!((f.voice_weight() - 0.5).abs() < 1e-4);
        let mut fused_sad_at = Vec::new();
        for s in 0..70 {
            let t = s as f64;
            // Seconds 0 and 69: an unsure neutral face; between them clear faces of other classes.
            let clear = [0, 2, 3, 5][s % 4];
            let fc = if s == 0 || s == 69 {
                face(t + 0.5, 6, 0.33)
            } else {
                face(t + 0.5, clear, 0.8)
            };
            f.push_face(fc);
            f.push_voice(VoiceObs {
                end: t + 1.0,
                ..voice(t, 4, 0.75)
            });
            for w in f.poll(t + 1.0) {
                fused_sad_at.push((w.start, w.fused.unwrap().1 == 4));
            }
        }
        assert_eq!(fused_sad_at.len(), 70);
        assert!(fused_sad_at[0].1, "second 0: the voice still counts at 0.5");
        assert!(
            !fused_sad_at[69].1,
            "second 69: the voice has lost its weight"
        );
        assert!(f.voice_weight() < 0.05, "{}", f.voice_weight());
        let mut g = Fuser::new(0.0, 1.0, Strategy::Calibrated, FusionWeights::default());
        for s in 0..60 {
            let t = s as f64;
            g.push_face(face(t + 0.5, s % 7, 0.8));
            g.push_voice(VoiceObs {
                end: t + 1.0,
                ..voice(t, s % 7, 0.75)
            });
            g.poll(t + 1.0);
        }
        assert!(g.voice_weight() > 0.95, "{}", g.voice_weight());
    }

    #[test]
    fn unvoiced_windows_do_not_count() {
        let mut f = Fuser::new(0.0, 1.0, Strategy::Calibrated, FusionWeights::default());
        let mut v = voice(0.0, 4, 0.9);
        v.probabilities = None;
        f.push_voice(v);
        assert!(f.poll(3.0).is_empty());
    }

    /// The fuser weighs each second's face by its detections' evidence: the same confident
    /// "happy" face outvotes a confident "sad" voice when large and clear, and lets it lead when
    /// it is a 10-px face the detector barely accepted.
    #[test]
    fn small_unsure_faces_count_less() {
        let run = |score: f32, crop_px: f32| {
            let mut f = Fuser::new(0.0, 1.0, Strategy::Calibrated, FusionWeights::default());
            f.push_face(FaceObs {
                detection_score: score,
                crop_px,
                ..face(0.5, 3, 0.88)
            });
            f.push_voice(voice(0.0, 4, 0.8));
            f.poll(1.0).pop().unwrap().fused.unwrap().1
        };
        assert_eq!(run(0.95, 150.0), 3);
        assert_eq!(run(0.52, 12.5), 4);
    }

    /// `mode` in the live stream: a face frame the detector barely accepted casts no vote, a
    /// voice below the abstain threshold casts none either (its label is not reported), and a
    /// 1–1 tie goes to the estimate with more confidence × trust.
    #[test]
    fn mode_votes_only_with_trusted_estimates() {
        let mut weights = FusionWeights::default();
        weights.rules.abstain_below = Some(0.5);
        let run = |faces: &[FaceObs], v: VoiceObs| {
            let mut f = Fuser::new(0.0, 1.0, Strategy::Mode, weights);
            faces.iter().for_each(|x| f.push_face(*x));
            f.push_voice(v);
            f.poll(1.0).pop().unwrap().fused.unwrap()
        };
        let clear = face(0.5, 3, 0.6);
        // An abstaining "sad" voice (0.45) against one clear "happy" frame: happy, alone.
        let (shares, k) = run(&[clear], voice(0.0, 4, 0.45));
        assert_eq!((k, shares[3]), (3, 1.0));
        // Two barely-seen "happy" frames (score 0.25: no trust) do not vote against the voice.
        let faint = FaceObs {
            detection_score: 0.25,
            ..face(0.2, 3, 0.9)
        };
        assert_eq!(run(&[faint, faint], voice(0.0, 4, 0.8)).1, 4);
        // A sharp but out-of-domain voice loses the tie to the clear face.
        let far = VoiceObs {
            domain_distance: Some(3.0),
            ..voice(0.0, 4, 0.9)
        };
        assert_eq!(run(&[clear], far).1, 3);
        // The same voice in domain wins it (0.9 > 0.6).
        assert_eq!(run(&[clear], voice(0.0, 4, 0.9)).1, 4);
        // Ten frames of the same face in that second are one estimate, not ten votes: the
        // result is the same as for one frame.
        let (shares, k) = run(&[clear; 10], voice(0.0, 4, 0.9));
        assert_eq!((k, shares[3], shares[4]), (4, 0.5, 0.5));
    }
}
