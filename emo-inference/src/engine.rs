//! File analysis: images, audio and video → per-face and per-window expression estimates and a
//! fused per-second timeline. Shared by `emod analyze`, `POST /api/v1/analyze` and `emod eval`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use emo_api_types::analyze::{
    AnalysisSummary, FaceBox, FaceEstimate, FileAnalysis, FusedEstimate, MediaKind, VoiceEstimate,
};
use emo_api_types::Emotion;

use crate::audio::{self, Audio};
use crate::classifier::argmax;
use crate::face::{ExpressionModel, FaceDetector, FacePipeline, FaceResult};
use crate::fusion::{self, FusionWeights, Strategy, K};
use crate::limits::MediaLimits;
use crate::manifest::Manifest;
use crate::media::{self, VideoFrames};
use crate::model_precision::PrecisionPolicy;
use crate::runtime::{self, RuntimeConfig, RuntimeInfo};
use crate::speech::{SpeechModel, WindowResult};
use crate::stream::{FaceObs, Fuser, VoiceObs};
use crate::{Error, Result};

/// Default frames per second sampled from videos.
pub const DEFAULT_VIDEO_FPS: f64 = 5.0;

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub models_dir: PathBuf,
    pub runtime: RuntimeConfig,
    pub strategy: Strategy,
    pub video_fps: f64,
    /// Load the face models (detector + expression).
    pub faces: bool,
    /// Load the speech model.
    pub speech: bool,
    /// What decoding one file may cost.
    pub limits: MediaLimits,
    /// Which precision of the expression model to run (see [`crate::precision`]).
    pub expression_precision: PrecisionPolicy,
    /// Where the precision measurement is remembered between runs (None: measure each load).
    pub precision_cache: Option<PathBuf>,
}

impl EngineOptions {
    pub fn new(models_dir: impl Into<PathBuf>, runtime: RuntimeConfig) -> Self {
        Self {
            models_dir: models_dir.into(),
            runtime,
            strategy: Strategy::default(),
            video_fps: DEFAULT_VIDEO_FPS,
            faces: true,
            speech: true,
            limits: MediaLimits::default(),
            expression_precision: PrecisionPolicy::Auto,
            precision_cache: None,
        }
    }
}

/// Loaded models. A model that failed to load is kept as its error and reported when needed.
pub struct Engine {
    pub manifest: Manifest,
    pub runtime: RuntimeInfo,
    pub faces: std::result::Result<FacePipeline, String>,
    pub speech: std::result::Result<SpeechModel, String>,
    pub weights: FusionWeights,
    pub strategy: Strategy,
    pub video_fps: f64,
    pub limits: MediaLimits,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("faces", &self.faces.is_ok())
            .field("speech", &self.speech.is_ok())
            .field("strategy", &self.strategy)
            .finish()
    }
}

fn probs_map(p: &[f32], labels: &[Emotion]) -> BTreeMap<Emotion, f64> {
    p.iter().zip(labels).map(|(&v, &l)| (l, v as f64)).collect()
}

/// An error once the caller has given up on the analysis (its client left).
fn not_cancelled(cancelled: &dyn Fn() -> bool) -> Result<()> {
    if cancelled() {
        Err(Error::Media("analysis cancelled".into()))
    } else {
        Ok(())
    }
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

impl Engine {
    /// Initialise the runtime and load the requested models. Fails only when the runtime or the
    /// manifest cannot be loaded; individual models report their error when used.
    pub fn load(opts: &EngineOptions) -> Result<Self> {
        let info = runtime::init(&opts.runtime)?;
        let manifest = Manifest::load(&opts.models_dir)?;
        let faces = if opts.faces {
            FaceDetector::load(&manifest, &opts.runtime)
                .and_then(|detector| {
                    Ok(FacePipeline {
                        detector,
                        expression: ExpressionModel::load_with(
                            &manifest,
                            &opts.runtime,
                            &opts.expression_precision,
                            opts.precision_cache.as_deref(),
                        )?,
                    })
                })
                .map_err(|e| e.to_string())
        } else {
            Err("face models not loaded".into())
        };
        let speech = if opts.speech {
            SpeechModel::load(&manifest, &opts.runtime).map_err(|e| e.to_string())
        } else {
            Err("speech model not loaded".into())
        };
        Ok(Self {
            weights: FusionWeights::from_manifest(&manifest),
            manifest,
            runtime: info,
            faces,
            speech,
            strategy: opts.strategy,
            limits: opts.limits,
            video_fps: if opts.video_fps > 0.0 {
                opts.video_fps
            } else {
                DEFAULT_VIDEO_FPS
            },
        })
    }

    pub fn faces(&self) -> Result<&FacePipeline> {
        self.faces
            .as_ref()
            .map_err(|e| Error::Model(format!("face analysis unavailable: {e}")))
    }

    pub fn speech(&self) -> Result<&SpeechModel> {
        self.speech
            .as_ref()
            .map_err(|e| Error::Model(format!("speech analysis unavailable: {e}")))
    }

    /// Analyse one file. Never fails: a problem is reported in [`FileAnalysis::error`].
    /// `name` is what to call the file in the result; `progress` receives fractions in 0..=1.
    pub fn analyze_file(&self, path: &Path, name: &str, progress: &dyn Fn(f64)) -> FileAnalysis {
        self.analyze_file_until(path, name, progress, &|| false)
    }

    /// [`Engine::analyze_file`] that gives up (with an error in the result) as soon as
    /// `cancelled()` says so: checked between video frames and before each expensive step, so a
    /// client that leaves or a deadline stops the work and kills its `ffmpeg`.
    pub fn analyze_file_until(
        &self,
        path: &Path,
        name: &str,
        progress: &dyn Fn(f64),
        cancelled: &dyn Fn() -> bool,
    ) -> FileAnalysis {
        let mut fa = FileAnalysis {
            file: name.to_string(),
            kind: None,
            duration_s: None,
            strategy: self.strategy.as_str().to_string(),
            faces: Vec::new(),
            voice: Vec::new(),
            timeline: Vec::new(),
            summary: None,
            error: None,
        };
        if let Err(e) = self.analyze_into(path, &mut fa, progress, cancelled) {
            fa.faces.clear();
            fa.voice.clear();
            fa.timeline.clear();
            fa.summary = None;
            fa.error = Some(e.to_string());
        }
        fa
    }

    /// Checks the path, probes the media kind and hands over to the analysis for that kind.
    fn analyze_into(
        &self,
        path: &Path,
        fa: &mut FileAnalysis,
        progress: &dyn Fn(f64),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        if !path.exists() {
            return Err(Error::Media("no such file".into()));
        }
        if path.is_dir() {
            return Err(Error::Media("is a directory".into()));
        }
        let kind = media::kind_of(path, &self.limits)?;
        fa.kind = Some(kind);
        match kind {
            MediaKind::Image => self.analyze_image(path, fa, cancelled)?,
            MediaKind::Audio => self.analyze_audio(path, fa, cancelled)?,
            MediaKind::Video => self.analyze_video(path, fa, progress, cancelled)?,
        }
        fa.summary = summarize(&fa.timeline, self.strategy);
        progress(1.0);
        Ok(())
    }

    fn analyze_image(
        &self,
        path: &Path,
        fa: &mut FileAnalysis,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        let img = media::read_image(path, &self.limits)?;
        not_cancelled(cancelled)?;
        let faces = self.faces()?.analyze(&img)?;
        fa.faces = faces.iter().map(|f| face_dto(f, 0.0, 0)).collect();
        fa.duration_s = Some(0.0);
        fa.timeline = self.timeline(&fa.faces, &[], 0.0);
        Ok(())
    }

    fn analyze_audio(
        &self,
        path: &Path,
        fa: &mut FileAnalysis,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        let lim = &self.limits;
        let a = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
        {
            match audio::read_wav(path, lim) {
                Ok(a) => a,
                // A limit is final; anything else may be a WAV variant hound lacks.
                Err(e @ Error::Limit(_)) => return Err(e),
                Err(e) => audio::read_with_ffmpeg(path, self.speech_rate(), lim)
                    .map_err(|_| e)?
                    .ok_or_else(|| Error::Media("no audio stream".into()))?,
            }
        } else {
            audio::read_with_ffmpeg(path, self.speech_rate(), lim)?
                .ok_or_else(|| Error::Media("no audio stream".into()))?
        };
        not_cancelled(cancelled)?;
        let d = a.duration();
        fa.duration_s = Some(round4(d));
        fa.voice = self.voice_dtos(&a)?;
        fa.timeline = self.timeline(&[], &fa.voice, d);
        Ok(())
    }

    /// Faces frame by frame (progress follows the frames), then the soundtrack, if any.
    fn analyze_video(
        &self,
        path: &Path,
        fa: &mut FileAnalysis,
        progress: &dyn Fn(f64),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        let lim = &self.limits;
        let mut frames = VideoFrames::open(path, self.video_fps, lim)?;
        let duration = frames.info.duration;
        let pipeline = self.faces.as_ref().ok();
        let mut last_t = 0.0;
        let mut n = 0u64;
        while let Some((t, img)) = frames.next_frame()? {
            not_cancelled(cancelled)?;
            if let Some(p) = pipeline {
                for f in p.analyze(&img)? {
                    fa.faces.push(face_dto(&f, t, n));
                }
            }
            n += 1;
            last_t = t;
            if let Some(d) = duration.filter(|d| *d > 0.0) {
                progress((t / d).min(0.99));
            }
        }
        if n == 0 {
            return Err(Error::Media("the video has no frames".into()));
        }
        let mut d = duration.unwrap_or(last_t + 1.0 / self.video_fps);
        drop(frames);
        not_cancelled(cancelled)?;
        let audio = audio::read_with_ffmpeg(path, self.speech_rate(), lim)?;
        not_cancelled(cancelled)?;
        let have_speech = self.speech.is_ok();
        if let (Some(a), true) = (&audio, have_speech) {
            d = d.max(a.duration());
            fa.voice = self.voice_dtos(a)?;
        }
        if pipeline.is_none() && !(audio.is_some() && have_speech) {
            // Nothing could be analysed: say why.
            self.faces()?;
        }
        fa.duration_s = Some(round4(d));
        fa.timeline = self.timeline(&fa.faces, &fa.voice, d);
        Ok(())
    }

    /// The rate ffmpeg decodes audio to: the speech model's (no second resampling), or 16 kHz.
    fn speech_rate(&self) -> Option<u32> {
        Some(
            self.speech
                .as_ref()
                .map(|s| s.spec.sample_rate)
                .unwrap_or(16_000),
        )
    }

    fn voice_windows(&self, a: &Audio) -> Result<Vec<WindowResult>> {
        let sp = self.speech()?;
        let x = sp.prepare(a)?;
        sp.analyze(&x)
    }

    /// One voice estimate per speech window of `a`.
    fn voice_dtos(&self, a: &Audio) -> Result<Vec<VoiceEstimate>> {
        self.voice_windows(a)?
            .iter()
            .map(|w| self.voice_dto(w))
            .collect()
    }

    fn voice_dto(&self, w: &WindowResult) -> Result<VoiceEstimate> {
        let sp = self.speech()?;
        Ok(VoiceEstimate {
            start: round4(w.start),
            end: round4(w.end),
            level_dbfs: round4(w.level_dbfs as f64),
            voiced: w.voiced,
            emotion: w.label,
            confidence: w.label.map(|_| w.confidence as f64),
            probabilities: probs_map(&w.probabilities, sp.labels()),
            abstained: w.label.is_some() && self.weights.rules.voice_abstains(w.confidence),
            domain_distance: w.domain_distance.map(|d| round4(d as f64)),
        })
    }

    /// The fused per-second timeline (the same [`Fuser`] as live capture). Face: mean over the faces of the second,
    /// weighted by detection score. Voice: the latest voiced window covering the second
    /// (3-s windows, 1-s hop). Images give one entry at t = 0.
    pub fn timeline(
        &self,
        faces: &[FaceEstimate],
        voice: &[VoiceEstimate],
        duration: f64,
    ) -> Vec<FusedEstimate> {
        timeline(faces, voice, duration, self.strategy, self.weights)
    }
}

fn face_dto(f: &FaceResult, t: f64, frame: u64) -> FaceEstimate {
    let d = &f.detection;
    FaceEstimate {
        t: round4(t),
        frame,
        bbox: FaceBox {
            x: round4(d.xmin as f64),
            y: round4(d.ymin as f64),
            width: round4(d.width() as f64),
            height: round4(d.height() as f64),
        },
        detection_score: round4(d.score as f64),
        emotion: f.label,
        confidence: f.confidence as f64,
        probabilities: probs_map(&f.probabilities, &Emotion::FACE),
    }
}

fn to_array(m: &BTreeMap<Emotion, f64>) -> [f32; K] {
    let mut a = [0.0f32; K];
    for (e, v) in m {
        a[e.to_face_space().index()] += *v as f32;
    }
    a
}

/// See [`Engine::timeline`]. The whole file goes through the same [`Fuser`] as live capture.
pub fn timeline(
    faces: &[FaceEstimate],
    voice: &[VoiceEstimate],
    duration: f64,
    strategy: Strategy,
    weights: FusionWeights,
) -> Vec<FusedEstimate> {
    let mut fuser = Fuser::new(0.0, 1.0, strategy, weights);
    for f in faces {
        fuser.push_face(FaceObs {
            t: f.t,
            probabilities: to_array(&f.probabilities),
            detection_score: f.detection_score as f32,
            crop_px: f.bbox.width.min(f.bbox.height) as f32 * weights.rules.crop_scale,
        });
    }
    let mut windows: Vec<&VoiceEstimate> = voice.iter().collect();
    windows.sort_by(|a, b| a.start.total_cmp(&b.start));
    for v in windows {
        fuser.push_voice(VoiceObs {
            start: v.start,
            end: v.end,
            probabilities: (v.voiced && !v.probabilities.is_empty())
                .then(|| to_array(&v.probabilities)),
            raw: Vec::new(),
            label: v.emotion,
            confidence: v.confidence.unwrap_or(0.0) as f32,
            domain_distance: v.domain_distance.map(|d| d as f32),
        });
    }
    let windows = if duration <= 0.0 {
        fuser.single(0.0, 0.0).into_iter().collect()
    } else {
        fuser.poll(duration.ceil())
    };
    windows
        .into_iter()
        .filter_map(|w| {
            let (p, k) = w.fused?;
            let mut modalities = Vec::new();
            if w.face.is_some() {
                modalities.push("face".to_string());
            }
            if w.voice.is_some() {
                modalities.push("voice".to_string());
            }
            Some(FusedEstimate {
                start: w.start,
                end: if duration <= 0.0 {
                    0.0
                } else {
                    w.end.min(duration.max(w.start))
                },
                emotion: Emotion::FACE[k],
                confidence: p[k] as f64,
                probabilities: probs_map(&p, &Emotion::FACE),
                modalities,
            })
        })
        .collect()
}

/// Distribution (mean of the fused probabilities), dominant emotion and coverage.
pub fn summarize(timeline: &[FusedEstimate], strategy: Strategy) -> Option<AnalysisSummary> {
    if timeline.is_empty() {
        return None;
    }
    let n = timeline.len() as f64;
    let mut dist = [0.0f64; K];
    for e in timeline {
        for (k, v) in to_array(&e.probabilities).iter().enumerate() {
            dist[k] += *v as f64 / n;
        }
    }
    let k = match strategy {
        Strategy::Calibrated => argmax(&dist.map(|v| v as f32)).0,
        Strategy::Mode => {
            let votes: Vec<(usize, f32)> = timeline
                .iter()
                .map(|e| (e.emotion.index(), e.confidence as f32))
                .collect();
            fusion::mode_winner(&votes).unwrap_or(0)
        }
    };
    let cov = |m: &str| {
        timeline
            .iter()
            .filter(|e| e.modalities.iter().any(|x| x == m))
            .count() as f64
            / n
    };
    Some(AnalysisSummary {
        emotion: Emotion::FACE[k],
        confidence: dist[k],
        distribution: Emotion::FACE
            .iter()
            .zip(dist)
            .map(|(e, v)| (*e, v))
            .collect(),
        face_coverage: cov("face"),
        voice_coverage: cov("voice"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(t: f64, e: Emotion, c: f64, score: f64) -> FaceEstimate {
        let mut p: BTreeMap<Emotion, f64> = Emotion::FACE
            .iter()
            .map(|&x| (x, (1.0 - c) / 6.0))
            .collect();
        p.insert(e, c);
        FaceEstimate {
            t,
            frame: 0,
            bbox: FaceBox {
                x: 0.0,
                y: 0.0,
                width: 100.0,
                height: 100.0,
            },
            detection_score: score,
            emotion: e,
            confidence: c,
            probabilities: p,
        }
    }

    fn voice(start: f64, e: Emotion, c: f64, voiced: bool) -> VoiceEstimate {
        let mut p: BTreeMap<Emotion, f64> =
            Emotion::ALL.iter().map(|&x| (x, (1.0 - c) / 7.0)).collect();
        p.insert(e, c);
        VoiceEstimate {
            start,
            end: start + 3.0,
            level_dbfs: -20.0,
            voiced,
            emotion: voiced.then_some(e),
            confidence: voiced.then_some(c),
            probabilities: if voiced { p } else { BTreeMap::new() },
            abstained: false,
            domain_distance: None,
        }
    }

    #[test]
    fn timeline_fuses_per_second_and_drops_missing_modalities() {
        let faces = vec![
            face(0.2, Emotion::Happy, 0.8, 0.9),
            face(0.6, Emotion::Happy, 0.6, 0.8),
            face(2.5, Emotion::Sad, 0.9, 0.9),
        ];
        let voices = vec![
            voice(0.0, Emotion::Calm, 0.9, true),
            voice(1.0, Emotion::Angry, 0.9, false),
        ];
        let tl = timeline(
            &faces,
            &voices,
            4.0,
            Strategy::Calibrated,
            FusionWeights::default(),
        );
        // Second 0: face + voice; 1: voice window at 1.0 is unvoiced → nothing; 2: face only;
        // 3: no face, latest window covering it is unvoiced → nothing.
        assert_eq!(tl.len(), 2);
        assert_eq!(tl[0].modalities, vec!["face", "voice"]);
        assert_eq!(tl[1].start, 2.0);
        assert_eq!(tl[1].emotion, Emotion::Sad);
        assert_eq!(tl[1].modalities, vec!["face"]);
        let s = summarize(&tl, Strategy::Calibrated).unwrap();
        assert!((s.face_coverage - 1.0).abs() < 1e-9 && (s.voice_coverage - 0.5).abs() < 1e-9);
        assert!((s.distribution.values().sum::<f64>() - 1.0).abs() < 1e-5);
        // Calm voice folds into neutral.
        let tl2 = timeline(
            &[],
            &[voice(0.0, Emotion::Calm, 0.9, true)],
            2.0,
            Strategy::Calibrated,
            FusionWeights::default(),
        );
        assert_eq!(tl2[0].emotion, Emotion::Neutral);
        let tl3 = timeline(
            &faces,
            &voices,
            4.0,
            Strategy::Mode,
            FusionWeights::default(),
        );
        // A second's two face frames are one estimate, one vote (issue 26), against the voice's
        // one: a 1-1 tie that the surer, fully trusted voice (0.9 vs the face's 0.7) wins.
        assert_eq!(tl3[0].emotion, Emotion::Neutral);
    }

    #[test]
    fn image_timeline_is_one_entry() {
        let faces = vec![face(0.0, Emotion::Fear, 0.7, 0.9)];
        let tl = timeline(
            &faces,
            &[],
            0.0,
            Strategy::Calibrated,
            FusionWeights::default(),
        );
        assert_eq!(tl.len(), 1);
        assert_eq!(
            (tl[0].start, tl[0].end, tl[0].emotion),
            (0.0, 0.0, Emotion::Fear)
        );
        assert!(timeline(
            &[],
            &[],
            0.0,
            Strategy::Calibrated,
            FusionWeights::default()
        )
        .is_empty());
    }
}
