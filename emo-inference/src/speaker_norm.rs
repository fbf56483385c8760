//! Speaker normalisation of the speech features: a voice that adapts to its speaker (issue 26).
//!
//! A session has one speaker. A model trained on acted corpora hears one speaker's timbre and
//! microphone (the long-term shape of the log-mel spectrum) as an emotion, the same one all
//! session. Subtracting the speaker's running mean log-mel profile removes what is constant for
//! the speaker and the recording chain and keeps what differs between their utterances. The
//! rule is the training code's (`models/train/speaker_norm.py`); both must agree, and the
//! manifest's `[models.speech.speaker_norm]` (written by the training export) switches it on:
//!
//! 1. Signal frames: frames whose loudest band is more than `gap` above the window's minimum
//!    (zero padding sits at the minimum in every band).
//! 2. Voiced frames: the signal frames whose mean over the bands is at least the lower median of
//!    the signal frames' means (the louder half).
//! 3. Each window adds the sum of its voiced frames and their number to the speaker's profile.
//! 4. Profile = (sum so far + `prior_frames` × `prior`) / (count so far + `prior_frames`). This
//!    is the warm-up rule: before any speech the profile is the training corpora's mean (a
//!    constant shift, i.e. no speaker normalisation), and it moves smoothly to the speaker's own
//!    mean as speech accumulates (half way at `prior_frames` voiced frames), never with a jump.
//! 5. The model sees the features minus the profile on the signal frames.
//!
//! Live, a [`SpeakerProfile`] lives as long as the session's speech stream and takes every
//! voiced window, the current one included; `emod analyze` builds one per file from all its
//! voiced windows before classifying them.

use serde::Deserialize;

use crate::manifest::ModelEntry;
use crate::{Error, Result};

/// `[models.speech.speaker_norm]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SpeakerNorm {
    /// Mean voiced frame of the training corpora (`n_mels`).
    pub prior: Vec<f32>,
    /// How many frames of speech the prior weighs.
    pub prior_frames: f32,
    /// Margin above the window minimum that makes a frame signal rather than padding.
    #[serde(default = "default_gap")]
    pub gap: f32,
}

fn default_gap() -> f32 {
    1.0
}

impl SpeakerNorm {
    /// The speech entry's `speaker_norm` table, if any; one that does not fit the features is an
    /// error (a wrong prior would shift every window).
    pub fn from_entry(entry: &ModelEntry, n_mels: usize) -> Result<Option<Self>> {
        let Some(v) = entry.extra.get("speaker_norm") else {
            return Ok(None);
        };
        let s: Self = v
            .clone()
            .try_into()
            .map_err(|e| Error::Manifest(format!("[models.speech.speaker_norm]: {e}")))?;
        if s.prior.len() != n_mels || !s.prior.iter().all(|x| x.is_finite()) {
            return Err(Error::Manifest(format!(
                "[models.speech.speaker_norm]: prior must have {n_mels} finite values"
            )));
        }
        if !(s.prior_frames.is_finite() && s.prior_frames > 0.0 && s.gap.is_finite()) {
            return Err(Error::Manifest(
                "[models.speech.speaker_norm]: prior_frames must be > 0 and gap finite".into(),
            ));
        }
        Ok(Some(s))
    }

    /// The current profile of `p` (`n_mels` values).
    pub fn profile(&self, p: &SpeakerProfile) -> Vec<f32> {
        let n = p.count + self.prior_frames as f64;
        self.prior
            .iter()
            .enumerate()
            .map(|(b, &m)| {
                let s = p.sum.get(b).copied().unwrap_or(0.0);
                ((s + self.prior_frames as f64 * m as f64) / n) as f32
            })
            .collect()
    }

    /// `feats` (row-major `n_mels × n_frames`) minus the profile on its signal frames.
    pub fn apply(&self, p: &SpeakerProfile, feats: &[f32]) -> Vec<f32> {
        let n_mels = self.prior.len();
        let Some(frames) = frame_count(feats, n_mels) else {
            return feats.to_vec();
        };
        let (signal, _) = masks(feats, n_mels, frames, self.gap);
        let profile = self.profile(p);
        let mut out = feats.to_vec();
        for (b, row) in out.chunks_mut(frames).enumerate() {
            for (t, x) in row.iter_mut().enumerate() {
                if signal[t] {
                    *x -= profile[b];
                }
            }
        }
        out
    }

    /// Add one window's voiced frames to `p`.
    pub fn observe(&self, p: &mut SpeakerProfile, feats: &[f32]) {
        let n_mels = self.prior.len();
        let Some(frames) = frame_count(feats, n_mels) else {
            return;
        };
        let (_, voiced) = masks(feats, n_mels, frames, self.gap);
        if p.sum.len() != n_mels {
            p.sum = vec![0.0; n_mels];
        }
        for (b, row) in feats.chunks(frames).enumerate() {
            p.sum[b] += row
                .iter()
                .zip(&voiced)
                .filter(|(_, &v)| v)
                .map(|(&x, _)| x as f64)
                .sum::<f64>();
        }
        p.count += voiced.iter().filter(|&&v| v).count() as f64;
    }
}

/// What has been heard of one speaker so far: the sum of their voiced frames and how many.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpeakerProfile {
    sum: Vec<f64>,
    count: f64,
}

impl SpeakerProfile {
    /// Voiced frames heard so far.
    pub fn frames(&self) -> f64 {
        self.count
    }
}

fn frame_count(feats: &[f32], n_mels: usize) -> Option<usize> {
    (n_mels > 0 && !feats.is_empty() && feats.len().is_multiple_of(n_mels))
        .then(|| feats.len() / n_mels)
}

/// (signal, voiced) per frame; see the module docs.
fn masks(feats: &[f32], n_mels: usize, frames: usize, gap: f32) -> (Vec<bool>, Vec<bool>) {
    let min = feats.iter().copied().fold(f32::INFINITY, f32::min);
    let mut top = vec![f32::NEG_INFINITY; frames];
    let mut mean = vec![0.0f32; frames];
    for row in feats.chunks(frames) {
        for (t, &x) in row.iter().enumerate() {
            top[t] = top[t].max(x);
            mean[t] += x;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n_mels as f32);
    let signal: Vec<bool> = top.iter().map(|&x| x > min + gap).collect();
    let mut means: Vec<f32> = (0..frames)
        .filter(|&t| signal[t])
        .map(|t| mean[t])
        .collect();
    if means.is_empty() {
        return (signal, vec![false; frames]);
    }
    means.sort_by(f32::total_cmp);
    let median = means[(means.len() - 1) / 2];
    let voiced = (0..frames)
        .map(|t| signal[t] && mean[t] >= median)
        .collect();
    (signal, voiced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(prior: f32) -> SpeakerNorm {
        SpeakerNorm {
            prior: vec![prior; 2],
            prior_frames: 4.0,
            gap: 1.0,
        }
    }

    /// Two bands × five frames: frames 0-1 padding (at the minimum), 2 quiet, 3-4 loud.
    const WINDOW: [f32; 10] = [
        -3.0, -3.0, 0.0, 2.0, 4.0, // band 0
        -3.0, -3.0, -1.0, 1.0, 3.0, // band 1
    ];

    #[test]
    fn masks_find_padding_and_the_louder_half() {
        let (signal, voiced) = masks(&WINDOW, 2, 5, 1.0);
        assert_eq!(signal, [false, false, true, true, true]);
        // Frame means of the signal frames: -0.5, 1.5, 3.5; lower median 1.5.
        assert_eq!(voiced, [false, false, false, true, true]);
    }

    #[test]
    fn the_profile_moves_from_the_prior_to_the_speaker() {
        let n = norm(0.0);
        let mut p = SpeakerProfile::default();
        assert_eq!(
            n.profile(&p),
            vec![0.0, 0.0],
            "before any speech: the prior"
        );
        n.observe(&mut p, &WINDOW);
        // Voiced frames 3 and 4: band sums 6 and 4, count 2; with 4 prior frames at 0:
        assert_eq!(p.frames(), 2.0);
        assert_eq!(n.profile(&p), vec![1.0, 4.0 / 6.0]);
        for _ in 0..1000 {
            n.observe(&mut p, &WINDOW);
        }
        let prof = n.profile(&p);
        assert!(
            (prof[0] - 3.0).abs() < 0.01 && (prof[1] - 2.0).abs() < 0.01,
            "{prof:?}"
        );
    }

    #[test]
    fn apply_shifts_signal_frames_only() {
        let n = norm(1.0);
        let out = n.apply(&SpeakerProfile::default(), &WINDOW);
        assert_eq!(&out[..5], &[-3.0, -3.0, -1.0, 1.0, 3.0]);
        assert_eq!(&out[5..], &[-3.0, -3.0, -2.0, 0.0, 2.0]);
        // A malformed window is passed through untouched.
        assert_eq!(
            n.apply(&SpeakerProfile::default(), &WINDOW[..9]),
            WINDOW[..9].to_vec()
        );
    }

    #[test]
    fn manifest_table_is_checked() {
        let entry = |t: &str| -> ModelEntry {
            toml::from_str(&format!("file = \"s.onnx\"\nsha256 = \"x\"\n{t}")).unwrap()
        };
        let ok = entry("[speaker_norm]\nprior = [0.5, -0.5]\nprior_frames = 600.0\n");
        let s = SpeakerNorm::from_entry(&ok, 2).unwrap().unwrap();
        assert_eq!((s.prior_frames, s.gap), (600.0, 1.0));
        assert!(SpeakerNorm::from_entry(&ok, 3).is_err());
        let zero = entry("[speaker_norm]\nprior = [0.5, -0.5]\nprior_frames = 0.0\n");
        assert!(SpeakerNorm::from_entry(&zero, 2).is_err());
        assert_eq!(SpeakerNorm::from_entry(&entry(""), 2).unwrap(), None);
    }
}
