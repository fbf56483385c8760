//! The face stage: the latest frame → detector → subject tracker → expression model, each
//! estimate pushed into the fuser with the frame's capture time.

use std::sync::atomic::Ordering;
use std::time::Duration;

use emo_capture::FrameSlot;
use emo_inference::fusion::K;
use emo_inference::stream::FaceObs;
use emo_inference::tracker::SubjectTracker;

use super::shared::{secs, store, Shared};
use crate::metrics::Metrics;
use crate::shared_engine::SharedEngine;

pub(super) fn face_loop(sh: &Shared, engine: &SharedEngine, slot: &FrameSlot, metrics: &Metrics) {
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
