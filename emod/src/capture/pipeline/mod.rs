//! The live pipeline of one capturing session, one file per stage: `face.rs`, `voice.rs`,
//! `fuse.rs` (with `stats.rs`), over the state in `shared.rs`.
//!
//! ```text
//! camera ──► FrameSlot (latest frame wins) ──► face thread: detect → subject tracker → classify ─┐
//! microphone ──► bounded channel ──► voice thread: SpeechStream (3-s window, 1-s hop, VAD) ──────┤
//!                                                                                               ▼
//!                      fuse thread: Fuser (1-s windows) → face/voice/fused samples → Ingest (writer + live bus)
//! ```
//!
//! Inference runs on these threads only, never on HTTP workers or the database's blocking pool.
//! A window is emitted as soon as every active source has delivered past its end, so latency is
//! about one frame interval plus inference. Frames and audio exist only in memory here.

mod face;
mod fuse;
mod shared;
mod stats;
mod voice;

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use emo_capture::{FrameSlot, SourceSpec};

use emo_api_types::SessionSource;

use super::{camera_options, CaptureRequest, AUDIO_CHUNKS};
use crate::config::CaptureConfig;
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::shared_engine::SharedEngine;
use face::face_loop;
use fuse::fuse_loop;
pub use fuse::window_samples;
use shared::{now_secs, FuseCtx, Shared};
pub use stats::percentile;
use voice::voice_loop;

/// Sources opened for a session, not yet feeding a pipeline.
pub struct Opened {
    camera: Option<(emo_capture::Camera, Arc<FrameSlot>)>,
    microphone: Option<(
        emo_capture::Microphone,
        mpsc::Receiver<emo_capture::AudioChunk>,
    )>,
    events: mpsc::Receiver<emo_capture::SourceEvent>,
}

impl Opened {
    /// Open every requested source or none (the error names the one that failed).
    pub fn open(sources: &[SessionSource], cfg: &CaptureConfig) -> Result<Self, String> {
        let (events_tx, events) = mpsc::channel();
        let mut camera = None;
        let mut microphone = None;
        for s in sources {
            match s {
                SessionSource::Camera => {
                    let spec: SourceSpec = cfg.camera.parse().map_err(|e| {
                        format!("camera `{}`: {e}", emo_capture::redact_secrets(&cfg.camera))
                    })?;
                    if spec == SourceSpec::None {
                        return Err("camera: capture.camera is `none` on this daemon".into());
                    }
                    let slot = FrameSlot::new();
                    let cam = emo_capture::open_camera(
                        &spec,
                        &camera_options(cfg),
                        slot.clone(),
                        events_tx.clone(),
                    )
                    .map_err(|e| e.to_string())?;
                    camera = Some((cam, slot));
                }
                SessionSource::Microphone => {
                    let spec: SourceSpec = cfg.microphone.parse().map_err(|e| {
                        let shown = emo_capture::redact_secrets(&cfg.microphone);
                        format!("microphone `{shown}`: {e}")
                    })?;
                    if spec == SourceSpec::None {
                        return Err(
                            "microphone: capture.microphone is `none` on this daemon".into()
                        );
                    }
                    let (tx, rx) = mpsc::sync_channel(AUDIO_CHUNKS);
                    let mic = emo_capture::open_microphone(&spec, tx, events_tx.clone())
                        .map_err(|e| e.to_string())?;
                    microphone = Some((mic, rx));
                }
                SessionSource::Remote => {}
            }
        }
        Ok(Self {
            camera,
            microphone,
            events,
        })
    }
}

/// The fuse thread: waits for the engine (loaded in the background at start), takes its fusion
/// weights and voice labels into `sh` and `ctx`, then runs [`fuse_loop`].
fn spawn_fuse(
    sh: Arc<Shared>,
    engine: SharedEngine,
    mut ctx: FuseCtx,
    events: mpsc::Receiver<emo_capture::SourceEvent>,
) -> JoinHandle<()> {
    spawn("emod-capture-fuse", move || {
        let loaded = engine.get().ok();
        ctx.voice_labels = loaded
            .as_ref()
            .and_then(|e| e.speech.as_ref().ok().map(|s| s.labels().to_vec()))
            .unwrap_or_default();
        if let Some(e) = &loaded {
            sh.fuser
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .set_weights(e.weights);
        }
        fuse_loop(&sh, &ctx, &events)
    })
}

/// A session's running pipeline.
pub struct Running {
    session: uuid::Uuid,
    user: uuid::Uuid,
    shared: Arc<Shared>,
    camera: Option<(emo_capture::Camera, Arc<FrameSlot>)>,
    microphone: Option<emo_capture::Microphone>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    pub fn session(&self) -> uuid::Uuid {
        self.session
    }

    pub fn user(&self) -> uuid::Uuid {
        self.user
    }

    /// Whether every source of the session has ended (none is left to capture from).
    pub fn sources_ended(&self) -> bool {
        self.shared.sources_left.load(Ordering::SeqCst) == 0
    }

    pub fn start(
        req: CaptureRequest,
        opened: Opened,
        ingest: Ingest,
        engine: SharedEngine,
        metrics: Arc<Metrics>,
        cfg: &CaptureConfig,
    ) -> Self {
        let shared = Arc::new(Shared::new(
            now_secs(),
            cfg,
            opened.camera.is_some(),
            opened.microphone.is_some(),
        ));
        let mut threads = Vec::new();
        let Opened {
            camera,
            microphone,
            events,
        } = opened;
        let slot = camera.as_ref().map(|(_, s)| s.clone());
        if let Some(slot) = slot.clone() {
            let (sh, en, m) = (shared.clone(), engine.clone(), metrics.clone());
            threads.push(spawn("emod-capture-face", move || {
                face_loop(&sh, &en, &slot, &m)
            }));
        }
        let (mic, audio) = match microphone {
            Some((mic, rx)) => (Some(mic), Some(rx)),
            None => (None, None),
        };
        if let Some(rx) = audio {
            let (sh, en) = (shared.clone(), engine.clone());
            threads.push(spawn("emod-capture-voice", move || {
                voice_loop(&sh, &en, &rx)
            }));
        }
        let ctx = FuseCtx {
            session: req.session,
            user: req.user,
            ingest,
            metrics,
            slot,
            voice_labels: Vec::new(),
        };
        threads.push(spawn_fuse(shared.clone(), engine, ctx, events));
        Self {
            session: req.session,
            user: req.user,
            shared,
            camera,
            microphone: mic,
            threads,
        }
    }

    /// Stop the sources, let the threads finish what they hold, emit the completed windows.
    pub fn stop(mut self) {
        if let Some((cam, slot)) = self.camera.take() {
            drop(cam);
            slot.close();
        }
        drop(self.microphone.take());
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some((_, slot)) = &self.camera {
            slot.close();
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("spawning a capture thread")
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use emo_api_types::{Emotion, Modality};
    use emo_inference::fusion::K;
    use emo_inference::stream::{FaceObs, FusedWindow, Fuser, VoiceObs};

    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: VecDeque<f64> = (1..=100).map(|i| i as f64).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&VecDeque::new(), 0.95), 0.0);
    }

    #[test]
    fn a_window_gives_face_voice_and_fused_samples_that_pass_validation() {
        let mut face = [0.02f32; K];
        face[3] = 0.88;
        let mut raw = vec![0.02f32; 8];
        raw[7] = 0.86; // calm, voice only
        let w = FusedWindow {
            start: 1_700_000_000.0,
            end: 1_700_000_001.0,
            face: Some((face, 4)),
            voice: Some(VoiceObs {
                start: 1_699_999_998.0,
                end: 1_700_000_001.0,
                probabilities: Some(face),
                raw,
                label: Some(Emotion::Calm),
                confidence: 0.86,
                domain_distance: Some(1.0),
            }),
            voice_abstained: false,
            fused: Some((face, 3)),
        };
        let labels = Emotion::ALL;
        let s = window_samples(&w, &labels);
        assert_eq!(
            s.iter().map(|s| s.modality).collect::<Vec<_>>(),
            [Modality::Face, Modality::Voice, Modality::Fused]
        );
        assert_eq!(s[0].emotion, Emotion::Happy);
        assert_eq!(s[1].emotion, Emotion::Calm);
        assert_eq!(s[2].t.timestamp_millis(), 1_700_000_001_000);
        let batch = emo_api_types::SampleBatch { samples: s };
        crate::sessions::validate::validate_batch(&batch, 1_699_999_000_000, 1_700_000_001_000)
            .unwrap();
    }

    /// A voice below the speech model's abstain threshold still moves the fused estimate (with
    /// the little trust its confidence earns), but the stream gets no voice sample for it.
    #[test]
    fn an_abstaining_voice_counts_in_fusion_but_is_not_reported() {
        use emo_inference::fusion::{FusionWeights, Strategy};
        let mut weights = FusionWeights::default();
        weights.rules.abstain_below = Some(0.5);
        let mut face = [0.05f32; K];
        (face[3], face[4]) = (0.40, 0.35); // happy, sad close behind
        let mut raw = vec![0.06f32; 8];
        raw[4] = 0.45; // sad, below the threshold
        raw[7] = 0.13;
        let labels = Emotion::ALL;
        let run = |voice: bool| {
            let mut f = Fuser::new(100.0, 1.0, Strategy::Calibrated, weights);
            f.push_face(FaceObs {
                t: 100.5,
                probabilities: face,
                detection_score: 0.95,
                crop_px: 150.0,
            });
            if voice {
                f.push_voice(VoiceObs {
                    start: 99.0,
                    end: 102.0,
                    probabilities: Some(emo_inference::fusion::to_face_space(&raw, &labels)),
                    raw: raw.clone(),
                    label: Some(Emotion::Sad),
                    confidence: 0.45,
                    domain_distance: Some(1.0),
                });
            }
            f.poll(101.0).pop().unwrap()
        };
        let (with, without) = (run(true), run(false));
        assert!(with.voice_abstained && with.voice.is_some());
        let (pw, pwo) = (with.fused.unwrap().0, without.fused.unwrap().0);
        assert!(pw[4] > pwo[4] + 0.02, "{pw:?} vs {pwo:?}");
        let s = window_samples(&with, &labels);
        assert_eq!(
            s.iter().map(|s| s.modality).collect::<Vec<_>>(),
            [Modality::Face, Modality::Fused]
        );
    }
}
