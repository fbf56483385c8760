//! The voice stage: 16-kHz chunks → the speech stream (3-s windows, 1-s hop, voice activity,
//! the session speaker's profile) → the fuser.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use emo_inference::stream::{SpeechStream, VoiceObs};

use super::shared::{secs, store, Shared};
use crate::shared_engine::SharedEngine;

pub(super) fn voice_loop(
    sh: &Shared,
    engine: &SharedEngine,
    rx: &mpsc::Receiver<emo_capture::AudioChunk>,
) {
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
