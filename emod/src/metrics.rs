//! Prometheus counters, kept as plain atomics: a handful of numbers does not need a registry.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub http_2xx: AtomicU64,
    pub http_4xx: AtomicU64,
    pub http_5xx: AtomicU64,
    pub http_other: AtomicU64,
    pub samples_accepted: AtomicU64,
    pub samples_rejected: AtomicU64,
    pub samples_written: AtomicU64,
    pub samples_duplicate: AtomicU64,
    pub samples_dropped: AtomicU64,
    pub samples_set_aside: AtomicU64,
    pub writer_batches: AtomicU64,
    pub writer_errors: AtomicU64,
    pub writer_pending: AtomicI64,
    pub database_up: AtomicI64,
    pub logins_ok: AtomicU64,
    pub logins_failed: AtomicU64,
    pub logins_throttled: AtomicU64,
    pub sessions_started: AtomicU64,
    pub sessions_stopped: AtomicU64,
    pub audit_entries: AtomicU64,
    pub capture: CaptureMetrics,
}

/// Upper bounds (ms) of the capture latency histogram buckets.
pub const LATENCY_BUCKETS_MS: [u64; 9] = [25, 50, 100, 150, 250, 500, 1000, 2500, 5000];

/// The live capture pipeline's figures.
#[derive(Debug, Default)]
pub struct CaptureMetrics {
    pub frames_in: AtomicU64,
    pub frames_processed: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub audio_overruns: AtomicU64,
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS_MS`], then +Inf.
    pub latency_buckets: [AtomicU64; 10],
    pub latency_sum_ms: AtomicU64,
    pub latency_count: AtomicU64,
    /// 0 idle, 1 active, 2 lost, 3 ended.
    pub camera_state: AtomicI64,
    pub microphone_state: AtomicI64,
}

impl CaptureMetrics {
    pub fn observe_latency(&self, ms: f64) {
        let ms = ms.max(0.0);
        let i = LATENCY_BUCKETS_MS
            .iter()
            .position(|&b| ms <= b as f64)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ms
            .fetch_add(ms.round() as u64, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn inc(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    pub fn record_status(&self, status: u16) {
        let c = match status {
            200..=299 => &self.http_2xx,
            400..=499 => &self.http_4xx,
            500..=599 => &self.http_5xx,
            _ => &self.http_other,
        };
        Self::inc(c, 1);
    }

    /// Prometheus text exposition format 0.0.4.
    ///
    /// Long on purpose: one `family(...)` per metric, in the order `/metrics` prints them, so the
    /// whole exposition reads top to bottom in one place.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, rows: &[(&str, i128)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        family(
            "emo_http_responses_total",
            "counter",
            "HTTP responses by status class.",
            &[
                ("{class=\"2xx\"}", g(&self.http_2xx) as i128),
                ("{class=\"4xx\"}", g(&self.http_4xx) as i128),
                ("{class=\"5xx\"}", g(&self.http_5xx) as i128),
                ("{class=\"other\"}", g(&self.http_other) as i128),
            ],
        );
        family(
            "emo_samples_total",
            "counter",
            "Samples by fate: accepted by the API, rejected (spool full), written, duplicate (already stored), set_aside (refused by the database, saved to a spool file for the next start), dropped (unwritable).",
            &[
                ("{fate=\"accepted\"}", g(&self.samples_accepted) as i128),
                ("{fate=\"rejected\"}", g(&self.samples_rejected) as i128),
                ("{fate=\"written\"}", g(&self.samples_written) as i128),
                ("{fate=\"duplicate\"}", g(&self.samples_duplicate) as i128),
                ("{fate=\"set_aside\"}", g(&self.samples_set_aside) as i128),
                ("{fate=\"dropped\"}", g(&self.samples_dropped) as i128),
            ],
        );
        family(
            "emo_writer_pending_samples",
            "gauge",
            "Samples accepted but not yet written to the database.",
            &[("", self.writer_pending.load(Ordering::Relaxed) as i128)],
        );
        family(
            "emo_writer_batches_total",
            "counter",
            "Batches written.",
            &[("", g(&self.writer_batches) as i128)],
        );
        family(
            "emo_writer_errors_total",
            "counter",
            "Failed batch writes (retried).",
            &[("", g(&self.writer_errors) as i128)],
        );
        family(
            "emo_database_up",
            "gauge",
            "1 when the last database round trip succeeded.",
            &[("", self.database_up.load(Ordering::Relaxed) as i128)],
        );
        family(
            "emo_logins_total",
            "counter",
            "Login attempts by result.",
            &[
                ("{result=\"ok\"}", g(&self.logins_ok) as i128),
                ("{result=\"failed\"}", g(&self.logins_failed) as i128),
                ("{result=\"throttled\"}", g(&self.logins_throttled) as i128),
            ],
        );
        family(
            "emo_sessions_total",
            "counter",
            "Sessions started and stopped.",
            &[
                ("{event=\"started\"}", g(&self.sessions_started) as i128),
                ("{event=\"stopped\"}", g(&self.sessions_stopped) as i128),
            ],
        );
        family(
            "emo_audit_entries_total",
            "counter",
            "Audit log entries written.",
            &[("", g(&self.audit_entries) as i128)],
        );
        let c = &self.capture;
        family(
            "emo_capture_frames_total",
            "counter",
            "Camera frames: delivered by the source, analysed, and skipped because a newer frame had arrived (latest frame wins).",
            &[
                ("{fate=\"in\"}", g(&c.frames_in) as i128),
                ("{fate=\"processed\"}", g(&c.frames_processed) as i128),
                ("{fate=\"dropped\"}", g(&c.frames_dropped) as i128),
            ],
        );
        family(
            "emo_capture_audio_overruns_total",
            "counter",
            "Audio chunks lost because the pipeline did not keep up (the audio callback never waits).",
            &[("", g(&c.audio_overruns) as i128)],
        );
        family(
            "emo_capture_source_state",
            "gauge",
            "Capture source state: 0 idle, 1 active, 2 lost, 3 ended.",
            &[
                (
                    "{source=\"camera\"}",
                    c.camera_state.load(Ordering::Relaxed) as i128,
                ),
                (
                    "{source=\"microphone\"}",
                    c.microphone_state.load(Ordering::Relaxed) as i128,
                ),
            ],
        );
        let _ = writeln!(
            out,
            "# HELP emo_capture_latency_ms Capture time of a window's end to its estimate being published.\n# TYPE emo_capture_latency_ms histogram"
        );
        let mut cum = 0u64;
        for (i, b) in c.latency_buckets.iter().enumerate() {
            cum += g(b);
            let le = LATENCY_BUCKETS_MS
                .get(i)
                .map_or("+Inf".to_string(), |v| v.to_string());
            let _ = writeln!(out, "emo_capture_latency_ms_bucket{{le=\"{le}\"}} {cum}");
        }
        let _ = writeln!(out, "emo_capture_latency_ms_sum {}", g(&c.latency_sum_ms));
        let _ = writeln!(out, "emo_capture_latency_ms_count {}", g(&c.latency_count));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.record_status(201);
        m.record_status(404);
        Metrics::inc(&m.samples_written, 5);
        let text = m.render();
        assert!(text.contains("emo_http_responses_total{class=\"2xx\"} 1"));
        assert!(text.contains("emo_http_responses_total{class=\"4xx\"} 1"));
        assert!(text.contains("emo_samples_total{fate=\"written\"} 5"));
        assert!(text.contains("# TYPE emo_database_up gauge"));
        m.capture.observe_latency(40.0);
        m.capture.observe_latency(120.0);
        m.capture.observe_latency(9000.0);
        let text = m.render();
        assert!(
            text.contains("emo_capture_latency_ms_bucket{le=\"50\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("emo_capture_latency_ms_bucket{le=\"150\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("emo_capture_latency_ms_bucket{le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(text.contains("emo_capture_latency_ms_count 3"), "{text}");
    }
}
