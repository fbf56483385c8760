//! The fuse stage: source events, one fused window per second once every live source has
//! delivered past it (or [`MAX_HOLD`] passed), and its face, voice and fused samples into
//! [`Ingest`].

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use emo_api_types::{Emotion, LiveEvent, Modality, SampleIn, SourceState};
use emo_capture::SourceKind;
use emo_inference::stream::FusedWindow;

use super::shared::{load, now_secs, FuseCtx, Shared, MAX_HOLD};
use super::stats::StatsState;

pub(super) fn to_time(t: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis((t * 1000.0).round() as i64).unwrap_or_else(Utc::now)
}

pub(super) fn probs(p: &[f32], labels: &[Emotion]) -> std::collections::BTreeMap<Emotion, f64> {
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

pub(super) fn source_state(s: emo_capture::SourceState) -> SourceState {
    match s {
        emo_capture::SourceState::Active => SourceState::Active,
        emo_capture::SourceState::Lost => SourceState::Lost,
        emo_capture::SourceState::Recovered => SourceState::Recovered,
        emo_capture::SourceState::Ended => SourceState::Ended,
    }
}

pub(super) fn fuse_loop(
    sh: &Shared,
    ctx: &FuseCtx,
    events: &mpsc::Receiver<emo_capture::SourceEvent>,
) {
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
pub(super) fn source_event(sh: &Shared, ctx: &FuseCtx, ev: emo_capture::SourceEvent) {
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
pub(super) fn emit_until(sh: &Shared, stopping: bool) -> f64 {
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
pub(super) fn submit_window(ctx: &FuseCtx, w: &FusedWindow) -> Option<f64> {
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
