//! The live pipeline of one capturing session.
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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use emo_api_types::{CaptureStats, Emotion, LiveEvent, Modality, SampleIn, SourceState};
use emo_capture::{FrameSlot, SourceKind, SourceSpec};
use emo_inference::fusion::K;
use emo_inference::stream::{FaceObs, FusedWindow, Fuser, SpeechStream, VoiceObs};
use emo_inference::tracker::SubjectTracker;

use super::{camera_options, CaptureRequest, Source, AUDIO_CHUNKS};
use crate::config::CaptureConfig;
use crate::engine::SharedEngine;
use crate::ingest::Ingest;
use crate::metrics::Metrics;

/// How often the live stream gets a `stats` event.
const STATS_EVERY: Duration = Duration::from_secs(5);
/// A stalled source holds fused windows back at most this long.
const MAX_HOLD: f64 = 1.0;

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn now_secs() -> f64 {
    secs(SystemTime::now())
}

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
    pub fn open(sources: &[Source], cfg: &CaptureConfig) -> Result<Self, String> {
        let (events_tx, events) = mpsc::channel();
        let mut camera = None;
        let mut microphone = None;
        for s in sources {
            match s {
                Source::Camera => {
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
                Source::Microphone => {
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
                Source::Remote => {}
            }
        }
        Ok(Self {
            camera,
            microphone,
            events,
        })
    }
}

/// State the pipeline threads share.
struct Shared {
    stop: AtomicBool,
    fuser: Mutex<Fuser>,
    /// Capture time up to which each source's data has been pushed into the fuser (f64 bits).
    face_mark: AtomicU64,
    voice_mark: AtomicU64,
    /// Nothing new can change the voice of a second ending before this: the next window ends
    /// one hop after the last one (f64 bits).
    voice_settled: AtomicU64,
    camera_live: AtomicBool,
    microphone_live: AtomicBool,
    /// Sources opened for the session that have not reported `ended` (a file played to its
    /// end); a lost device is reopened and never counts as ended.
    sources_left: std::sync::atomic::AtomicUsize,
    frames_processed: AtomicU64,
}

fn load(a: &AtomicU64) -> f64 {
    f64::from_bits(a.load(Ordering::Acquire))
}

fn store(a: &AtomicU64, v: f64) {
    a.store(v.to_bits(), Ordering::Release);
}

impl Shared {
    /// Fusion from `origin` (seconds) on, nothing pushed yet.
    fn new(origin: f64, cfg: &CaptureConfig, camera: bool, microphone: bool) -> Self {
        Self {
            stop: AtomicBool::new(false),
            fuser: Mutex::new(Fuser::new(
                origin,
                1.0,
                cfg.strategy(),
                // The engine's weights are set by the fuse thread: loading the engine here would
                // block the HTTP worker that started the session.
                Default::default(),
            )),
            face_mark: AtomicU64::new(origin.to_bits()),
            voice_mark: AtomicU64::new(origin.to_bits()),
            voice_settled: AtomicU64::new(origin.to_bits()),
            camera_live: AtomicBool::new(camera),
            microphone_live: AtomicBool::new(microphone),
            sources_left: std::sync::atomic::AtomicUsize::new(
                usize::from(camera) + usize::from(microphone),
            ),
            frames_processed: AtomicU64::new(0),
        }
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

fn face_loop(sh: &Shared, engine: &SharedEngine, slot: &FrameSlot, metrics: &Metrics) {
    let engine = match engine.get() {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("live capture: face analysis unavailable: {e}");
            sh.camera_live.store(false, Ordering::SeqCst);
            return;
        }
    };
    let Ok(faces) = engine.faces() else {
        tracing::warn!("live capture: face models unavailable");
        sh.camera_live.store(false, Ordering::SeqCst);
        return;
    };
    let mut tracker = SubjectTracker::new();
    while !sh.stop.load(Ordering::Relaxed) {
        let Some(frame) = slot.take(Duration::from_millis(100)) else {
            continue;
        };
        let t = secs(frame.captured);
        let dets = match faces.detector.detect(&frame.image) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("live capture: face detection failed: {e}");
                continue;
            }
        };
        if let Some(i) = tracker.update(&dets) {
            match faces.classify_detection(&frame.image, &dets[i]) {
                Ok(r) => {
                    let mut p = [0.0f32; K];
                    for (x, y) in p.iter_mut().zip(&r.probabilities) {
                        *x = *y;
                    }
                    sh.fuser
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_face(FaceObs {
                            t,
                            probabilities: p,
                            detection_score: r.detection.score,
                            crop_px: r.detection.width().min(r.detection.height())
                                * faces.expression.crop_scale,
                        });
                }
                Err(e) => tracing::warn!("live capture: expression failed: {e}"),
            }
        }
        // Bystanders' faces were detected (to know who is who) but never classified.
        drop(frame);
        sh.frames_processed.fetch_add(1, Ordering::Relaxed);
        Metrics::inc(&metrics.capture.frames_processed, 1);
        store(&sh.face_mark, t);
    }
}

fn voice_loop(sh: &Shared, engine: &SharedEngine, rx: &mpsc::Receiver<emo_capture::AudioChunk>) {
    let engine = match engine.get() {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("live capture: speech analysis unavailable: {e}");
            sh.microphone_live.store(false, Ordering::SeqCst);
            return;
        }
    };
    let Ok(sp) = engine.speech() else {
        tracing::warn!("live capture: speech model unavailable");
        sh.microphone_live.store(false, Ordering::SeqCst);
        return;
    };
    let hop = sp.hop_samples as f64 / sp.spec.sample_rate as f64;
    let mut stream = SpeechStream::new(sp);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(chunk) => {
                let t0 = secs(chunk.captured);
                match stream.push(sp, &chunk.samples, t0) {
                    Ok(windows) => {
                        let mut f = sh.fuser.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(last) = windows.last() {
                            store(&sh.voice_settled, last.end + hop - 0.01);
                        }
                        for w in windows {
                            // Every voiced window goes to the fuser, which trusts it as far as
                            // its confidence and domain distance allow and marks it abstained
                            // below the model's threshold (then no voice sample is emitted).
                            let voiced = w.voiced && !w.probabilities.is_empty();
                            f.push_voice(VoiceObs {
                                start: w.start,
                                end: w.end,
                                probabilities: voiced.then(|| {
                                    emo_inference::fusion::to_face_space(
                                        &w.probabilities,
                                        sp.labels(),
                                    )
                                }),
                                raw: w.probabilities,
                                label: w.label,
                                confidence: w.confidence,
                                domain_distance: w.domain_distance,
                            });
                        }
                    }
                    Err(e) => tracing::warn!("live capture: speech failed: {e}"),
                }
                if let Some(t) = stream.time() {
                    store(&sh.voice_mark, t);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if sh.stop.load(Ordering::Relaxed) {
            // Drain what is already queued (bounded), then leave.
            while let Ok(chunk) = rx.try_recv() {
                let t0 = secs(chunk.captured);
                let _ = stream.push(sp, &chunk.samples, t0);
            }
            break;
        }
    }
}

struct FuseCtx {
    session: uuid::Uuid,
    user: uuid::Uuid,
    ingest: Ingest,
    metrics: Arc<Metrics>,
    slot: Option<Arc<FrameSlot>>,
    voice_labels: Vec<Emotion>,
}

fn to_time(t: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis((t * 1000.0).round() as i64).unwrap_or_else(Utc::now)
}

fn probs(p: &[f32], labels: &[Emotion]) -> std::collections::BTreeMap<Emotion, f64> {
    // Rounded so that the stored sum stays 1 within the API's tolerance.
    p.iter()
        .zip(labels)
        .map(|(v, e)| (*e, (*v as f64 * 1e6).round() / 1e6))
        .collect()
}

/// The samples of one fused window: face, voice and fused, each when available.
pub fn window_samples(w: &FusedWindow, voice_labels: &[Emotion]) -> Vec<SampleIn> {
    let t = to_time(w.end);
    let mut out = Vec::with_capacity(3);
    if let Some((p, _)) = &w.face {
        let (k, c) = emo_inference::classifier::argmax(p);
        out.push(SampleIn {
            t,
            modality: Modality::Face,
            emotion: Emotion::FACE[k],
            confidence: c as f64,
            probabilities: probs(p, &Emotion::FACE),
        });
    }
    // An abstaining voice counted (a little) in the fused estimate, but its label is withheld.
    if let Some(v) = w.voice.as_ref().filter(|_| !w.voice_abstained) {
        if let Some(label) = v.label.filter(|_| v.raw.len() == voice_labels.len()) {
            out.push(SampleIn {
                t,
                modality: Modality::Voice,
                emotion: label,
                confidence: v.confidence as f64,
                probabilities: probs(&v.raw, voice_labels),
            });
        }
    }
    if let Some((p, k)) = &w.fused {
        out.push(SampleIn {
            t,
            modality: Modality::Fused,
            emotion: Emotion::FACE[*k],
            confidence: p[*k] as f64,
            probabilities: probs(p, &Emotion::FACE),
        });
    }
    out
}

fn source_state(s: emo_capture::SourceState) -> SourceState {
    match s {
        emo_capture::SourceState::Active => SourceState::Active,
        emo_capture::SourceState::Lost => SourceState::Lost,
        emo_capture::SourceState::Recovered => SourceState::Recovered,
        emo_capture::SourceState::Ended => SourceState::Ended,
    }
}

fn fuse_loop(sh: &Shared, ctx: &FuseCtx, events: &mpsc::Receiver<emo_capture::SourceEvent>) {
    let mut stats = StatsState::new(ctx);
    loop {
        let stopping = sh.stop.load(Ordering::SeqCst);
        while let Ok(ev) = events.try_recv() {
            source_event(sh, ctx, ev);
        }
        let windows = sh
            .fuser
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .poll(emit_until(sh, stopping));
        for w in &windows {
            if let Some(ms) = submit_window(ctx, w) {
                stats.observe(ms);
            }
        }
        stats.count_frames(ctx);
        stats.publish_due(sh, ctx);
        if stopping {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A camera or microphone changed state: record it and tell the live stream.
fn source_event(sh: &Shared, ctx: &FuseCtx, ev: emo_capture::SourceEvent) {
    let state = source_state(ev.state);
    let live = matches!(state, SourceState::Active | SourceState::Recovered);
    let code = match state {
        SourceState::Active | SourceState::Recovered => 1,
        SourceState::Lost => 2,
        SourceState::Ended => 3,
    };
    let (flag, gauge) = match ev.kind {
        SourceKind::Camera => (&sh.camera_live, &ctx.metrics.capture.camera_state),
        SourceKind::Microphone => (&sh.microphone_live, &ctx.metrics.capture.microphone_state),
    };
    flag.store(live, Ordering::SeqCst);
    gauge.store(code, Ordering::Relaxed);
    if state == SourceState::Ended {
        // An ended source is never reopened: one fewer to capture from.
        let _ = sh
            .sources_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }
    tracing::info!(session = %ctx.session, source = %ev.kind, state = ?state, "{}", ev.message);
    ctx.ingest.live.publish(
        ctx.session,
        LiveEvent::Source {
            source: ev.kind.to_string(),
            state,
            message: ev.message,
        },
    );
}

/// Windows may be emitted up to the time every live source has delivered past (a stalled
/// source holds them back at most MAX_HOLD seconds); when stopping, up to what was delivered.
fn emit_until(sh: &Shared, stopping: bool) -> f64 {
    if stopping {
        return load(&sh.face_mark).max(load(&sh.voice_mark));
    }
    let now = now_secs();
    let mut marks = Vec::new();
    if sh.camera_live.load(Ordering::SeqCst) {
        marks.push(load(&sh.face_mark));
    }
    if sh.microphone_live.load(Ordering::SeqCst) {
        marks.push(load(&sh.voice_mark).max(load(&sh.voice_settled)));
    }
    marks
        .into_iter()
        .fold(now, f64::min)
        .max(now - MAX_HOLD)
        .min(now)
}

/// Hand one fused window's samples to the writer and the live bus; its latency in ms (`None`
/// when the window had nothing to report).
fn submit_window(ctx: &FuseCtx, w: &FusedWindow) -> Option<f64> {
    let samples = window_samples(w, &ctx.voice_labels);
    if samples.is_empty() {
        return None;
    }
    if let Err(e) = ctx.ingest.submit(ctx.session, ctx.user, &samples) {
        tracing::warn!(session = %ctx.session, "live capture: samples not accepted: {e}");
    }
    let ms = (now_secs() - w.end) * 1000.0;
    ctx.metrics.capture.observe_latency(ms);
    Some(ms)
}

/// Frame counters and latencies behind the periodic `stats` event.
struct StatsState {
    latencies: VecDeque<f64>,
    last_stats: Instant,
    seen_in: u64,
    seen_dropped: u64,
    base_dropped: u64,
    last_in: u64,
    last_processed: u64,
}

impl StatsState {
    /// Frames the source delivered before the pipeline ran (while the session was being
    /// stored) are not the session's: counting starts here.
    fn new(ctx: &FuseCtx) -> Self {
        let (seen_in, seen_dropped) = ctx
            .slot
            .as_ref()
            .map_or((0, 0), |s| (s.frames_in(), s.frames_dropped()));
        Self {
            latencies: VecDeque::with_capacity(512),
            last_stats: Instant::now(),
            seen_in,
            seen_dropped,
            base_dropped: seen_dropped,
            last_in: seen_in,
            last_processed: 0,
        }
    }

    fn observe(&mut self, ms: f64) {
        if self.latencies.len() == 512 {
            self.latencies.pop_front();
        }
        self.latencies.push_back(ms);
    }

    /// Add the frames the camera slot took in and dropped since the last call to the metrics.
    fn count_frames(&mut self, ctx: &FuseCtx) {
        if let Some(slot) = &ctx.slot {
            let (fin, fdrop) = (slot.frames_in(), slot.frames_dropped());
            Metrics::inc(&ctx.metrics.capture.frames_in, fin - self.seen_in.min(fin));
            Metrics::inc(
                &ctx.metrics.capture.frames_dropped,
                fdrop - self.seen_dropped.min(fdrop),
            );
            (self.seen_in, self.seen_dropped) = (fin, fdrop);
        }
    }

    /// Publish a `stats` event every STATS_EVERY.
    fn publish_due(&mut self, sh: &Shared, ctx: &FuseCtx) {
        if self.last_stats.elapsed() < STATS_EVERY {
            return;
        }
        let dt = self.last_stats.elapsed().as_secs_f64();
        let processed = sh.frames_processed.load(Ordering::Relaxed);
        let stats = CaptureStats {
            fps_in: (self.seen_in - self.last_in.min(self.seen_in)) as f64 / dt,
            fps_processed: (processed - self.last_processed.min(processed)) as f64 / dt,
            frames_dropped: self.seen_dropped - self.base_dropped.min(self.seen_dropped),
            latency_ms_p50: percentile(&self.latencies, 0.50),
            latency_ms_p95: percentile(&self.latencies, 0.95),
        };
        (self.last_in, self.last_processed) = (self.seen_in, processed);
        self.last_stats = Instant::now();
        ctx.ingest
            .live
            .publish(ctx.session, LiveEvent::Stats(stats));
    }
}

/// The `q` quantile of `v` (nearest rank), 0 when empty.
pub fn percentile(v: &VecDeque<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s: Vec<f64> = v.iter().copied().collect();
    s.sort_by(|a, b| a.total_cmp(b));
    let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    (s[i] * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
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
