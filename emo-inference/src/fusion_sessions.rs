//! `emod eval fusion --sessions`: pseudo-sessions, the fusion evaluation that looks like a real
//! session (issue 26).
//!
//! Label-matched random pairs (`emod eval fusion`) make every voice error independent of the
//! next. In a real session one person's face and one person's voice come together for minutes,
//! and a voice that is off for that speaker is off in the same direction all session. A
//! pseudo-session is one speaker's clips (all of them, every emotion, in a seeded shuffled
//! order), each paired with a face image of the same label, fed in sequence: one window per
//! clip, the voice through the same speaker profile a live session builds
//! ([`crate::speaker_norm`]: window i is normalised by what windows 0..=i taught it). Reported
//! per window: face, voice and fused accuracy and ECE, mean and worst over speakers.
//!
//! The speech model must not have heard the speakers for the figures to mean anything: the
//! shipped model trained on RAVDESS actors 01–20 and EmoDB, so through it both are in-sample;
//! the out-of-fold figures come from `models/train/pseudo_sessions.py` (models/README.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use crate::audio;
use crate::classifier::argmax;
use crate::engine::Engine;
use crate::eval::{face_files, speech_files_of, SpeechCorpus};
use crate::fusion::{self, FusionWeights, Pair, K};
use crate::reliability::VoiceEvidence;
use crate::session_trust::SessionTrust;
use crate::speaker_norm::SpeakerProfile;
use crate::{Error, Result};

/// One speaker's session.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionFigures {
    pub speaker: String,
    pub windows: usize,
    pub face_accuracy: f64,
    pub voice_accuracy: f64,
    pub fused_accuracy: f64,
    /// The same pool with the voice weight fixed all session (no [`crate::session_trust`]).
    pub fused_fixed_weight_accuracy: f64,
    /// The log-linear rule used before issue 26, on the same windows.
    pub fused_log_linear_accuracy: f64,
    /// The voice weight the session had earned by its last window.
    pub final_voice_weight: f32,
}

impl SessionFigures {
    /// Fused minus the better single modality of this session.
    pub fn margin(&self) -> f64 {
        self.fused_accuracy - self.face_accuracy.max(self.voice_accuracy)
    }
}

/// Result of `emod eval fusion --sessions`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionsReport {
    pub speech_corpus: SpeechCorpus,
    pub seed: u64,
    pub sessions: Vec<SessionFigures>,
    /// Means over sessions.
    pub face_accuracy: f64,
    pub voice_accuracy: f64,
    pub fused_accuracy: f64,
    pub fused_fixed_weight_accuracy: f64,
    pub fused_log_linear_accuracy: f64,
    /// Mean over sessions of the better single modality, and fused minus it (mean, worst).
    pub better_single_accuracy: f64,
    pub fused_minus_better_mean: f64,
    pub fused_minus_better_worst: f64,
    pub sessions_fused_below_better: usize,
    /// ECE over every window of every session.
    pub face_ece: f64,
    pub voice_ece: f64,
    pub fused_ece: f64,
    pub fused_log_linear_ece: f64,
    /// The configured voice weight (where every session starts).
    pub voice_weight: f32,
    /// Whether the voice weight adapted per session ([`crate::session_trust`]).
    pub session_trust: bool,
}

impl SessionsReport {
    /// The text `emod eval fusion --sessions` prints.
    pub fn to_text(&self) -> String {
        let mut out = vec![
            format!(
                "pseudo-sessions: {} speakers of {:?}, seed {}, voice weight {:.2} ({})",
                self.sessions.len(),
                self.speech_corpus,
                self.seed,
                self.voice_weight,
                if self.session_trust {
                    "adapting per session"
                } else {
                    "fixed"
                }
            ),
            format!(
                "  {:<10} {:>7} {:>7} {:>7} {:>7} {:>7} {:>10} {:>8}",
                "speaker", "windows", "face", "voice", "fused", "fixed", "log-linear", "voice w"
            ),
        ];
        for s in &self.sessions {
            out.push(format!(
                "  {:<10} {:>7} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>10.4} {:>8.2}",
                s.speaker,
                s.windows,
                s.face_accuracy,
                s.voice_accuracy,
                s.fused_accuracy,
                s.fused_fixed_weight_accuracy,
                s.fused_log_linear_accuracy,
                s.final_voice_weight
            ));
        }
        out.push(format!(
            "  mean       {:>7} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>10.4}",
            "",
            self.face_accuracy,
            self.voice_accuracy,
            self.fused_accuracy,
            self.fused_fixed_weight_accuracy,
            self.fused_log_linear_accuracy
        ));
        out.push(format!(
            "  fused minus the better single modality: mean {:+.4}, worst session {:+.4}; {} of {} sessions below it",
            self.fused_minus_better_mean,
            self.fused_minus_better_worst,
            self.sessions_fused_below_better,
            self.sessions.len()
        ));
        out.push(format!(
            "  ECE: face {:.4}, voice {:.4}, fused {:.4} (log-linear {:.4})",
            self.face_ece, self.voice_ece, self.fused_ece, self.fused_log_linear_ece
        ));
        out.join("\n") + "\n"
    }
}

/// The speaker of a clip, from its file name: RAVDESS's actor (`…-AA.wav`), EmoDB's first two
/// characters.
pub fn speaker_of(corpus: SpeechCorpus, file_name: &str) -> Option<String> {
    match corpus {
        SpeechCorpus::Ravdess => {
            let stem = file_name.rsplit_once('.').map_or(file_name, |x| x.0);
            let a = stem.rsplit('-').next()?;
            (a.len() == 2 && a.bytes().all(|b| b.is_ascii_digit())).then(|| format!("actor {a}"))
        }
        SpeechCorpus::Emodb => {
            let s = file_name.get(..2)?;
            s.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| format!("speaker {s}"))
        }
    }
}

/// `emod eval fusion --sessions` (module docs). `crops`: the face images are crops (FER-2013
/// layout), classified without the detector.
pub fn eval_sessions(
    engine: &Engine,
    faces_dir: &Path,
    speech_dir: &Path,
    corpus: SpeechCorpus,
    seed: u64,
    crops: bool,
    progress: &dyn Fn(&str, usize, usize),
) -> Result<SessionsReport> {
    let sessions = plan(faces_dir, speech_dir, corpus, seed)?;
    let total: usize = sessions.values().map(Vec::len).sum();
    let w = engine.weights;
    let mut figures = Vec::new();
    let mut rows: Vec<Pair> = Vec::new();
    let mut fused: Vec<[f32; K]> = Vec::new();
    let mut done = 0;
    for (speaker, clips) in &sessions {
        let faces: Vec<PathBuf> = clips.iter().map(|c| c.0.clone()).collect();
        let voices: Vec<PathBuf> = clips.iter().map(|c| c.1.clone()).collect();
        let f = crate::fusion_eval::face_estimates(engine, &faces, crops, &|_| {})?;
        let v = session_voices(engine, &voices)?;
        let pairs: Vec<Pair> = f
            .into_iter()
            .zip(v)
            .zip(clips)
            .filter_map(|((f, v), c)| {
                let ((face, face_evidence), (voice, voice_evidence)) = (f?, v?);
                Some(Pair {
                    face,
                    face_evidence,
                    voice,
                    voice_evidence,
                    y: c.2,
                })
            })
            .collect();
        done += clips.len();
        progress("sessions", done, total);
        if pairs.is_empty() {
            continue;
        }
        let (figs, session_fused) = session_figures(speaker, &pairs, w);
        figures.push(figs);
        fused.extend(session_fused);
        rows.extend(pairs);
    }
    if figures.is_empty() {
        return Err(Error::Media("no usable face/speech pairs".into()));
    }
    Ok(summarise(corpus, seed, figures, &rows, &fused, w))
}

/// One modality's probabilities (7 classes) with the evidence behind them; `None` for a file
/// that could not be read.
type Estimates<E> = Vec<Option<([f32; K], E)>>;

/// Per speaker (sorted), their clips in a seeded shuffled order, each with a face of its class.
type Plan = BTreeMap<String, Vec<(PathBuf, PathBuf, usize)>>;

fn plan(faces_dir: &Path, speech_dir: &Path, corpus: SpeechCorpus, seed: u64) -> Result<Plan> {
    let speech = speech_files_of(speech_dir, corpus, None)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut by_class: Vec<Vec<PathBuf>> = vec![Vec::new(); K];
    for (p, k) in face_files(faces_dir)? {
        by_class[k].push(p);
    }
    for c in by_class.iter_mut() {
        c.shuffle(&mut rng);
    }
    let mut by_speaker: BTreeMap<String, Vec<(PathBuf, usize)>> = BTreeMap::new();
    for (p, e) in speech {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if let Some(s) = speaker_of(corpus, name) {
            by_speaker
                .entry(s)
                .or_default()
                .push((p.clone(), e.to_face_space().index()));
        }
    }
    let mut cursor = [0usize; K];
    let mut out = Plan::new();
    for (s, mut clips) in by_speaker {
        clips.shuffle(&mut rng);
        let session = clips
            .into_iter()
            .filter(|(_, k)| !by_class[*k].is_empty())
            .map(|(p, k)| {
                let face = by_class[k][cursor[k] % by_class[k].len()].clone();
                cursor[k] += 1;
                (face, p, k)
            })
            .collect();
        out.insert(s, session);
    }
    Ok(out)
}

/// One speaker's clips in session order through one speaker profile, as live: clip i is
/// normalised by the profile of clips 0..=i.
fn session_voices(engine: &Engine, files: &[PathBuf]) -> Result<Estimates<VoiceEvidence>> {
    let sp = engine.speech()?;
    let mut profile = SpeakerProfile::default();
    let mut out = Vec::with_capacity(files.len());
    for p in files {
        let Some(feats) = audio::read_wav(p, &crate::MediaLimits::default())
            .ok()
            .and_then(|a| sp.prepare(&a).ok())
            .map(|x| sp.clip_features(&x))
        else {
            out.push(None);
            continue;
        };
        sp.observe_speaker(&mut profile, &feats);
        let input = sp.model_input(&profile, &feats);
        let probs = sp.classify_features(&[input])?.pop();
        out.push(probs.map(|p| {
            let ev = VoiceEvidence {
                confidence: argmax(&p).1,
                domain_distance: sp.domain_distance(&feats),
            };
            (fusion::to_face_space(&p, sp.labels()), ev)
        }));
    }
    Ok(out)
}

fn accuracy(rows: &[Pair], f: &dyn Fn(&Pair) -> [f32; K]) -> f64 {
    rows.iter().filter(|r| argmax(&f(r)).0 == r.y).count() as f64 / rows.len().max(1) as f64
}

/// One session's figures and its fused windows: in order, each fused with the voice weight the
/// windows before it earned ([`SessionTrust`]), as live.
fn session_figures(
    speaker: &str,
    rows: &[Pair],
    w: FusionWeights,
) -> (SessionFigures, Vec<[f32; K]>) {
    let mut trust = SessionTrust::default();
    let fused: Vec<[f32; K]> = rows
        .iter()
        .map(|r| {
            let p = r.fused(trust.weights(w));
            let (f, v) = r.inputs(&w);
            trust.observe(&f, &v);
            p
        })
        .collect();
    let right = fused
        .iter()
        .zip(rows)
        .filter(|(p, r)| argmax(*p).0 == r.y)
        .count();
    let fixed = FusionWeights { session: None, ..w };
    let figures = SessionFigures {
        speaker: speaker.to_string(),
        windows: rows.len(),
        face_accuracy: accuracy(rows, &|r| r.face),
        voice_accuracy: accuracy(rows, &|r| r.voice),
        fused_accuracy: right as f64 / rows.len().max(1) as f64,
        fused_fixed_weight_accuracy: accuracy(rows, &|r| r.fused(fixed)),
        fused_log_linear_accuracy: accuracy(rows, &|r| r.fused_log_linear(log_linear_weights(w))),
        final_voice_weight: trust.voice_weight(&w),
    };
    (figures, fused)
}

/// The weights of the log-linear rule as it shipped before issue 26 (voice 0.75).
fn log_linear_weights(w: FusionWeights) -> FusionWeights {
    FusionWeights { voice: 0.75, ..w }
}

/// Means, worst session and window-level ECE of a set of sessions.
pub fn summarise(
    corpus: SpeechCorpus,
    seed: u64,
    sessions: Vec<SessionFigures>,
    rows: &[Pair],
    fused: &[[f32; K]],
    w: FusionWeights,
) -> SessionsReport {
    let n = sessions.len().max(1) as f64;
    let mean = |f: &dyn Fn(&SessionFigures) -> f64| sessions.iter().map(f).sum::<f64>() / n;
    let ece = |f: &dyn Fn(&Pair) -> [f32; K]| {
        fusion::ece(&rows.iter().map(|r| (f(r), r.y)).collect::<Vec<_>>())
    };
    let better = mean(&|s| s.face_accuracy.max(s.voice_accuracy));
    let fused_mean = mean(&|s| s.fused_accuracy);
    SessionsReport {
        speech_corpus: corpus,
        seed,
        face_accuracy: mean(&|s| s.face_accuracy),
        voice_accuracy: mean(&|s| s.voice_accuracy),
        fused_accuracy: fused_mean,
        fused_fixed_weight_accuracy: mean(&|s| s.fused_fixed_weight_accuracy),
        fused_log_linear_accuracy: mean(&|s| s.fused_log_linear_accuracy),
        better_single_accuracy: better,
        fused_minus_better_mean: fused_mean - better,
        fused_minus_better_worst: sessions
            .iter()
            .map(SessionFigures::margin)
            .fold(f64::INFINITY, f64::min),
        sessions_fused_below_better: sessions.iter().filter(|s| s.margin() < -1e-9).count(),
        face_ece: ece(&|r| r.face),
        voice_ece: ece(&|r| r.voice),
        fused_ece: fusion::ece(
            &fused
                .iter()
                .zip(rows)
                .map(|(p, r)| (*p, r.y))
                .collect::<Vec<_>>(),
        ),
        fused_log_linear_ece: ece(&|r| r.fused_log_linear(log_linear_weights(w))),
        voice_weight: w.voice,
        session_trust: w.session.is_some(),
        sessions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reliability::FaceEvidence;

    #[test]
    fn speakers_come_from_the_file_names() {
        let r = SpeechCorpus::Ravdess;
        assert_eq!(
            speaker_of(r, "03-01-05-01-02-01-07.wav").as_deref(),
            Some("actor 07")
        );
        assert_eq!(speaker_of(r, "03-01-05-01-02-01-7.wav"), None);
        let e = SpeechCorpus::Emodb;
        assert_eq!(speaker_of(e, "03a01Fa.wav").as_deref(), Some("speaker 03"));
        assert_eq!(speaker_of(e, "x3a01Fa.wav"), None);
    }

    fn row(face: usize, voice: usize, y: usize) -> Pair {
        let one = |k: usize, c: f32| {
            let mut p = [(1.0 - c) / 6.0; K];
            p[k] = c;
            p
        };
        Pair {
            face: one(face, 0.8),
            face_evidence: FaceEvidence {
                detection_score: 1.0,
                crop_px: 48.0,
            },
            voice: one(voice, 0.6),
            voice_evidence: VoiceEvidence {
                confidence: 0.6,
                domain_distance: None,
            },
            y,
        }
    }

    /// A voice that hears one class all session: per-session figures, the worst session and the
    /// margin over the better modality come out as counted by hand.
    #[test]
    fn summary_of_two_hand_made_sessions() {
        let w = FusionWeights::default();
        // Speaker A: face right 3 of 4, voice always "sad" (4), right once.
        let a = vec![row(0, 4, 0), row(3, 4, 3), row(4, 4, 4), row(2, 4, 6)];
        // Speaker B: both right on all 2.
        let b = vec![row(1, 1, 1), row(5, 5, 5)];
        let ((fa, pa), (fb, pb)) = (session_figures("a", &a, w), session_figures("b", &b, w));
        assert_eq!((fa.face_accuracy, fa.voice_accuracy), (0.75, 0.25));
        // A face 0.8 sure beats a 0.6 voice at half weight: fused follows the face.
        assert_eq!(fa.fused_accuracy, 0.75);
        assert_eq!(fb.fused_accuracy, 1.0);
        let rows: Vec<Pair> = a.iter().chain(&b).copied().collect();
        let fused: Vec<_> = pa.into_iter().chain(pb).collect();
        let r = summarise(SpeechCorpus::Emodb, 1, vec![fa, fb], &rows, &fused, w);
        assert_eq!(r.sessions.len(), 2);
        assert!((r.face_accuracy - 0.875).abs() < 1e-12);
        assert!((r.better_single_accuracy - 0.875).abs() < 1e-12);
        assert!(r.fused_minus_better_mean.abs() < 1e-12);
        assert_eq!(
            (r.fused_minus_better_worst, r.sessions_fused_below_better),
            (0.0, 0)
        );
        assert!(r.to_text().contains("2 speakers"));
    }
}
