//! Speech: 3-s windows with a 1-s hop (from the manifest's feature spec), voice-activity gating,
//! "logmel64_v1" features and the speech classifier (8 RAVDESS classes).

use std::sync::Mutex;

use emo_api_types::Emotion;

use crate::audio::{self, Audio, VadConfig};
use crate::classifier::{argmax, Classifier};
use crate::features::{FeatureExtractor, FeatureSpec};
use crate::manifest::Manifest;
use crate::runtime::RuntimeConfig;
use crate::speaker_norm::{SpeakerNorm, SpeakerProfile};
use crate::voice_domain::DomainModel;
use crate::{Error, Result};

/// Windows per inference batch.
const BATCH: usize = 32;

#[derive(Debug)]
pub struct SpeechModel {
    pub clf: Classifier,
    pub spec: FeatureSpec,
    fx: Mutex<FeatureExtractor>,
    pub vad: VadConfig,
    /// Hop between windows in samples (1 s at the model rate).
    pub hop_samples: usize,
    /// Training-domain statistics for the out-of-domain score (`[models.speech.domain]`).
    pub domain: Option<DomainModel>,
    /// Speaker normalisation (`[models.speech.speaker_norm]`): when present the model was
    /// trained on speaker-normalised features and must be fed them ([`crate::speaker_norm`]).
    pub speaker_norm: Option<SpeakerNorm>,
}

/// One analysed window.
#[derive(Debug, Clone)]
pub struct WindowResult {
    pub start: f64,
    pub end: f64,
    pub level_dbfs: f32,
    pub voiced: bool,
    /// 8 probabilities in the model's label order (empty when not voiced).
    pub probabilities: Vec<f32>,
    pub label: Option<Emotion>,
    pub confidence: f32,
    /// Out-of-domain distance ([`crate::voice_domain`]) of a voiced window, when the manifest
    /// has the training statistics.
    pub domain_distance: Option<f32>,
}

impl SpeechModel {
    pub fn load(manifest: &Manifest, rt: &RuntimeConfig) -> Result<Self> {
        const N: &str = "speech";
        let clf = Classifier::load(manifest, N, rt)?;
        let spec = clf
            .entry
            .features
            .clone()
            .ok_or_else(|| Error::Manifest(format!("[models.{N}.features] is missing")))?;
        let fx = FeatureExtractor::new(spec.clone())
            .map_err(|e| Error::Manifest(format!("[models.{N}.features] {e}")))?;
        let want = vec![1, spec.n_mels, spec.n_frames()];
        if clf.item_shape != want {
            return Err(Error::Manifest(format!(
                "[models.{N}] input_shape {:?} does not match the features (want [-1, {}, {}, {}])",
                clf.item_shape, want[0], want[1], want[2]
            )));
        }
        let hop_s = clf
            .entry
            .extra
            .get("hop_seconds")
            .and_then(|v| v.as_float())
            .unwrap_or(1.0);
        let domain = DomainModel::from_entry(&clf.entry, spec.n_mels)?;
        let speaker_norm = SpeakerNorm::from_entry(&clf.entry, spec.n_mels)?;
        Ok(Self {
            domain,
            speaker_norm,
            hop_samples: (spec.sample_rate as f64 * hop_s) as usize,
            fx: Mutex::new(fx),
            spec,
            clf,
            vad: VadConfig::default(),
        })
    }

    /// Confidence below which the voice estimate is withheld (`abstain_below` in the manifest's
    /// speech entry): an unsure voice then says nothing instead of outvoting a face.
    pub fn abstain_below(&self) -> Option<f32> {
        self.clf
            .entry
            .extra
            .get("abstain_below")
            .and_then(|v| v.as_float())
            .map(|v| v as f32)
    }

    /// Out-of-domain distance of one feature window (`None` without `[models.speech.domain]`).
    pub fn domain_distance(&self, feats: &[f32]) -> Option<f32> {
        self.domain.as_ref()?.distance(feats)
    }

    pub fn labels(&self) -> &[Emotion] {
        &self.clf.labels
    }

    /// Bring audio to the model rate.
    pub fn prepare(&self, a: &Audio) -> Result<Vec<f32>> {
        audio::resample(&a.samples, a.sample_rate, self.spec.sample_rate)
    }

    /// Features of one clip fitted to one window (centre crop / pad), as in training.
    pub fn clip_features(&self, samples16k: &[f32]) -> Vec<f32> {
        self.fx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .logmel_clip(samples16k)
    }

    /// Calibrated probabilities for feature windows (each `n_mels × n_frames`), batched.
    pub fn classify_features(&self, feats: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(feats.len());
        for chunk in feats.chunks(BATCH) {
            let data: Vec<f32> = chunk.iter().flatten().copied().collect();
            for l in self.clf.logits(&data, chunk.len())? {
                out.push(self.clf.probabilities(&l));
            }
        }
        Ok(out)
    }

    /// What the model is fed for a feature window: the window itself, or with speaker
    /// normalisation the window minus `profile` ([`crate::speaker_norm`]).
    pub fn model_input(&self, profile: &SpeakerProfile, feats: &[f32]) -> Vec<f32> {
        match &self.speaker_norm {
            Some(n) => n.apply(profile, feats),
            None => feats.to_vec(),
        }
    }

    /// Add a voiced window to a speaker's profile (nothing without speaker normalisation).
    pub fn observe_speaker(&self, profile: &mut SpeakerProfile, feats: &[f32]) {
        if let Some(n) = &self.speaker_norm {
            n.observe(profile, feats);
        }
    }

    /// Probabilities for whole clips (one centre window each), as `emod eval speech` uses. Each
    /// clip is its own speaker (its profile is its own window over the prior), as for a short
    /// file through `emod analyze`.
    pub fn classify_clips(&self, clips16k: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let feats: Vec<Vec<f32>> = clips16k
            .iter()
            .map(|c| {
                let f = self.clip_features(c);
                let mut profile = SpeakerProfile::default();
                self.observe_speaker(&mut profile, &f);
                self.model_input(&profile, &f)
            })
            .collect();
        self.classify_features(&feats)
    }

    /// Window start offsets (samples) for a signal of `len` samples; see [`window_starts`].
    pub fn window_starts(&self, len: usize) -> Vec<usize> {
        window_starts(len, self.spec.window_samples, self.hop_samples)
    }

    /// Analyse a whole signal already at the model rate: 3-s windows, 1-s hop, VAD-gated.
    pub fn analyze(&self, x: &[f32]) -> Result<Vec<WindowResult>> {
        let sr = self.spec.sample_rate as f64;
        let w = self.spec.window_samples;
        let mut res = Vec::new();
        let (mut full, mut partial) = (Vec::new(), Vec::new());
        for s in self.window_starts(x.len()) {
            let seg = &x[s.min(x.len())..(s + w).min(x.len())];
            let voiced = self.vad.is_voiced(seg, self.spec.sample_rate);
            if voiced {
                if s + w <= x.len() {
                    full.push((res.len(), s));
                } else {
                    partial.push((res.len(), s));
                }
            }
            res.push(WindowResult {
                start: s as f64 / sr,
                end: (s + w) as f64 / sr,
                level_dbfs: audio::dbfs(crate::features::rms(seg)),
                voiced,
                probabilities: Vec::new(),
                label: None,
                confidence: 0.0,
                domain_distance: None,
            });
        }
        // Overlapping full windows share their frames; a short clip or the tail window is
        // centre-padded as in training.
        let starts: Vec<usize> = full.iter().map(|&(_, s)| s).collect();
        let shared = self
            .fx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .logmel_windows(x, &starts);
        let (mut idx, mut feats) = match shared {
            Some(f) => (full.iter().map(|&(i, _)| i).collect::<Vec<_>>(), f),
            None => {
                partial.extend(full);
                (Vec::new(), Vec::new())
            }
        };
        for (i, s) in partial {
            feats.push(self.clip_features(&x[s..(s + w).min(x.len())]));
            idx.push(i);
        }
        // One speaker per file: every voiced window counts towards the profile that normalises
        // all of them.
        let mut profile = SpeakerProfile::default();
        for (&i, f) in idx.iter().zip(&feats) {
            res[i].domain_distance = self.domain_distance(f);
            self.observe_speaker(&mut profile, f);
        }
        let input: Vec<Vec<f32>> = feats
            .iter()
            .map(|f| self.model_input(&profile, f))
            .collect();
        for (i, p) in idx.into_iter().zip(self.classify_features(&input)?) {
            let (k, c) = argmax(&p);
            res[i].label = self.clf.labels.get(k).copied();
            res[i].confidence = c;
            res[i].probabilities = p;
        }
        Ok(res)
    }
}

/// Window start offsets (samples) for a signal of `len` samples, windows of `w` samples every
/// `hop` samples while a full window fits; a single (padded) window when the signal is shorter
/// than one window; one more window over the tail when more than half a hop would be left out.
pub fn window_starts(len: usize, w: usize, hop: usize) -> Vec<usize> {
    let hop = hop.max(1);
    if len <= w {
        return vec![0];
    }
    let mut v: Vec<usize> = (0..)
        .map(|k| k * hop)
        .take_while(|s| s + w <= len)
        .collect();
    if let Some(&last) = v.last() {
        if len - (last + w) > hop / 2 {
            v.push(last + hop);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::window_starts;

    const SR: usize = 16_000;

    #[test]
    fn three_second_windows_one_second_hop() {
        let (w, hop) = (3 * SR, SR);
        // Shorter than a window, or exactly one: a single window.
        assert_eq!(window_starts(0, w, hop), vec![0]);
        assert_eq!(window_starts(SR, w, hop), vec![0]);
        assert_eq!(window_starts(w, w, hop), vec![0]);
        // 5 s: windows at 0, 1, 2 s (the last ends at 5 s), no tail.
        assert_eq!(window_starts(5 * SR, w, hop), vec![0, SR, 2 * SR]);
        // 5.4 s: 0.4 s left over is under half a hop: no extra window.
        assert_eq!(window_starts(5 * SR + 6_400, w, hop), vec![0, SR, 2 * SR]);
        // 5.6 s: 0.6 s left over: one more window (padded past the end).
        assert_eq!(
            window_starts(5 * SR + 9_600, w, hop),
            vec![0, SR, 2 * SR, 3 * SR]
        );
        // Every window but the tail one lies inside the signal; hops are exact.
        let v = window_starts(60 * SR, w, hop);
        assert_eq!(v.len(), 58);
        assert!(v.windows(2).all(|p| p[1] - p[0] == hop));
        assert_eq!(*v.last().unwrap() + w, 60 * SR);
    }

    #[test]
    fn a_zero_hop_does_not_loop_forever() {
        assert_eq!(window_starts(5, 3, 0).len(), 3);
    }
}
