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

    /// Prometheus text exposition format 0.0.4: the daemon's families, then the capture
    /// pipeline's, in the order `/metrics` prints them.
    pub fn render(&self) -> String {
        let mut out = Exposition::default();
        self.render_samples(&mut out);
        self.render_accounts(&mut out);
        self.capture.render(&mut out);
        out.0
    }

    /// HTTP answers, the fate of samples and how the writer and database do.
    fn render_samples(&self, out: &mut Exposition) {
        out.family(
            "emo_http_responses_total",
            "counter",
            "HTTP responses by status class.",
            &[
                ("{class=\"2xx\"}", count(&self.http_2xx)),
                ("{class=\"4xx\"}", count(&self.http_4xx)),
                ("{class=\"5xx\"}", count(&self.http_5xx)),
                ("{class=\"other\"}", count(&self.http_other)),
            ],
        );
        out.family(
            "emo_samples_total",
            "counter",
            "Samples by fate: accepted by the API, rejected (spool full), written, duplicate (already stored), set_aside (refused by the database, saved to a spool file for the next start), dropped (unwritable).",
            &[
                ("{fate=\"accepted\"}", count(&self.samples_accepted)),
                ("{fate=\"rejected\"}", count(&self.samples_rejected)),
                ("{fate=\"written\"}", count(&self.samples_written)),
                ("{fate=\"duplicate\"}", count(&self.samples_duplicate)),
                ("{fate=\"set_aside\"}", count(&self.samples_set_aside)),
                ("{fate=\"dropped\"}", count(&self.samples_dropped)),
            ],
        );
        out.family(
            "emo_writer_pending_samples",
            "gauge",
            "Samples accepted but not yet written to the database.",
            &[("", level(&self.writer_pending))],
        );
        out.family(
            "emo_writer_batches_total",
            "counter",
            "Batches written.",
            &[("", count(&self.writer_batches))],
        );
        out.family(
            "emo_writer_errors_total",
            "counter",
            "Failed batch writes (retried).",
            &[("", count(&self.writer_errors))],
        );
        out.family(
            "emo_database_up",
            "gauge",
            "1 when the last database round trip succeeded.",
            &[("", level(&self.database_up))],
        );
    }

    /// Logins, sessions and the audit log.
    fn render_accounts(&self, out: &mut Exposition) {
        out.family(
            "emo_logins_total",
            "counter",
            "Login attempts by result.",
            &[
                ("{result=\"ok\"}", count(&self.logins_ok)),
                ("{result=\"failed\"}", count(&self.logins_failed)),
                ("{result=\"throttled\"}", count(&self.logins_throttled)),
            ],
        );
        out.family(
            "emo_sessions_total",
            "counter",
            "Sessions started and stopped.",
            &[
                ("{event=\"started\"}", count(&self.sessions_started)),
                ("{event=\"stopped\"}", count(&self.sessions_stopped)),
            ],
        );
        out.family(
            "emo_audit_entries_total",
            "counter",
            "Audit log entries written.",
            &[("", count(&self.audit_entries))],
        );
    }
}

impl CaptureMetrics {
    /// Frames, audio overruns, source states and the latency histogram.
    fn render(&self, out: &mut Exposition) {
        out.family(
            "emo_capture_frames_total",
            "counter",
            "Camera frames: delivered by the source, analysed, and skipped because a newer frame had arrived (latest frame wins).",
            &[
                ("{fate=\"in\"}", count(&self.frames_in)),
                ("{fate=\"processed\"}", count(&self.frames_processed)),
                ("{fate=\"dropped\"}", count(&self.frames_dropped)),
            ],
        );
        out.family(
            "emo_capture_audio_overruns_total",
            "counter",
            "Audio chunks lost because the pipeline did not keep up (the audio callback never waits).",
            &[("", count(&self.audio_overruns))],
        );
        out.family(
            "emo_capture_source_state",
            "gauge",
            "Capture source state: 0 idle, 1 active, 2 lost, 3 ended.",
            &[
                ("{source=\"camera\"}", level(&self.camera_state)),
                ("{source=\"microphone\"}", level(&self.microphone_state)),
            ],
        );
        let o = &mut out.0;
        let _ = writeln!(
            o,
            "# HELP emo_capture_latency_ms Capture time of a window's end to its estimate being published.\n# TYPE emo_capture_latency_ms histogram"
        );
        let mut cum = 0u64;
        for (i, b) in self.latency_buckets.iter().enumerate() {
            cum += b.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS_MS
                .get(i)
                .map_or("+Inf".to_string(), |v| v.to_string());
            let _ = writeln!(o, "emo_capture_latency_ms_bucket{{le=\"{le}\"}} {cum}");
        }
        let _ = writeln!(
            o,
            "emo_capture_latency_ms_sum {}",
            count(&self.latency_sum_ms)
        );
        let _ = writeln!(
            o,
            "emo_capture_latency_ms_count {}",
            count(&self.latency_count)
        );
    }
}

/// Prometheus text being written, one family (help, type, samples) at a time.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str, rows: &[(&str, i128)]) {
        let out = &mut self.0;
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    }
}

/// A counter's value.
fn count(a: &AtomicU64) -> i128 {
    a.load(Ordering::Relaxed) as i128
}

/// A gauge's value.
fn level(a: &AtomicI64) -> i128 {
    a.load(Ordering::Relaxed) as i128
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
