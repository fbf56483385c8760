//! The stats stage of the fuse thread: frame counters and latency percentiles, published as a
//! `stats` live event every few seconds.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use emo_api_types::{CaptureStats, LiveEvent};

use super::shared::{FuseCtx, Shared};
use crate::metrics::Metrics;

/// How often the live stream gets a `stats` event.
pub(super) const STATS_EVERY: Duration = Duration::from_secs(5);
/// Frame counters and latencies behind the periodic `stats` event.
pub(super) struct StatsState {
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
    pub(super) fn new(ctx: &FuseCtx) -> Self {
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

    pub(super) fn observe(&mut self, ms: f64) {
        if self.latencies.len() == 512 {
            self.latencies.pop_front();
        }
        self.latencies.push_back(ms);
    }

    /// Add the frames the camera slot took in and dropped since the last call to the metrics.
    pub(super) fn count_frames(&mut self, ctx: &FuseCtx) {
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
    pub(super) fn publish_due(&mut self, sh: &Shared, ctx: &FuseCtx) {
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
