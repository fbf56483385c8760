//! The buffered sample writer.
//!
//! The API accepts a batch as soon as it is queued here; one background thread writes queued
//! samples in large transactions. While the database is unreachable the queue is the spool: it
//! keeps everything up to `capacity` samples and the writer retries with back-off; past that the
//! API refuses new samples (503) rather than silently dropping them. On shutdown whatever could
//! not be written is saved to a JSON-lines file in the spool directory and replayed at the next
//! start (inserts are idempotent, so a replay never double-counts).

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{SampleRow, Store, StoreError};
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub capacity: usize,
    pub spool_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("the sample spool is full ({pending} pending, capacity {capacity})")]
pub struct SpoolFull {
    pub pending: usize,
    pub capacity: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<SampleRow>,
    in_flight: usize,
    shutdown: bool,
    /// Set by `shutdown`: stop retrying after this instant.
    give_up_at: Option<Instant>,
}

struct Inner {
    store: Store,
    opts: WriterOptions,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    work: Condvar,
    idle: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the queue half-updated (every update is a
        // single push/drain), so recovering from poisoning is safe and keeps samples.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Clone)]
pub struct Writer {
    inner: Arc<Inner>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Writer {
    pub fn start(store: Store, opts: WriterOptions, metrics: Arc<Metrics>) -> Writer {
        let inner = Arc::new(Inner {
            store,
            opts,
            metrics,
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            idle: Condvar::new(),
        });
        let worker = inner.clone();
        let handle = std::thread::Builder::new()
            .name("emo-writer".into())
            .spawn(move || run(&worker))
            .expect("spawning the writer thread");
        Writer {
            inner,
            thread: Arc::new(Mutex::new(Some(handle))),
        }
    }

    /// Queues samples for writing; all or nothing.
    pub fn submit(&self, rows: Vec<SampleRow>) -> Result<usize, SpoolFull> {
        let n = rows.len();
        let mut st = self.inner.lock();
        let pending = st.queue.len() + st.in_flight;
        if pending + n > self.inner.opts.capacity || st.shutdown {
            Metrics::inc(&self.inner.metrics.samples_rejected, n as u64);
            return Err(SpoolFull {
                pending,
                capacity: self.inner.opts.capacity,
            });
        }
        st.queue.extend(rows);
        self.inner
            .metrics
            .writer_pending
            .store((st.queue.len() + st.in_flight) as i64, Ordering::Relaxed);
        Metrics::inc(&self.inner.metrics.samples_accepted, n as u64);
        drop(st);
        self.inner.work.notify_one();
        Ok(n)
    }

    pub fn pending(&self) -> usize {
        let st = self.inner.lock();
        st.queue.len() + st.in_flight
    }

    /// Waits until everything queued so far is written; false on timeout.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.lock();
        self.inner.work.notify_one();
        while !st.queue.is_empty() || st.in_flight > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .inner
                .idle
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Stops the writer: keeps writing for up to `grace`, then saves what is left to the spool
    /// directory. Returns the number of samples saved to disk.
    pub fn shutdown(&self, grace: Duration) -> std::io::Result<usize> {
        {
            let mut st = self.inner.lock();
            st.shutdown = true;
            st.give_up_at = Some(Instant::now() + grace);
        }
        self.inner.work.notify_all();
        if let Some(handle) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = handle.join();
        }
        let left: Vec<SampleRow> = self.inner.lock().queue.drain(..).collect();
        if left.is_empty() {
            return Ok(0);
        }
        let Some(dir) = &self.inner.opts.spool_dir else {
            tracing::error!(
                samples = left.len(),
                "database unreachable at shutdown and no spool directory: samples lost"
            );
            Metrics::inc(&self.inner.metrics.samples_dropped, left.len() as u64);
            return Ok(0);
        };
        let path = save_spool(dir, &left)?;
        tracing::warn!(
            samples = left.len(),
            file = %path.display(),
            "database unreachable at shutdown: samples saved, they will be written at the next start"
        );
        Ok(left.len())
    }
}

fn run(inner: &Inner) {
    let opts = &inner.opts;
    let mut backoff = Duration::from_millis(100);
    let mut failures_with_db_up = 0u32;
    loop {
        let batch: Vec<SampleRow> = {
            let mut st = inner.lock();
            loop {
                if !st.queue.is_empty() {
                    break;
                }
                if st.shutdown {
                    return;
                }
                st = inner
                    .work
                    .wait_timeout(st, opts.flush_interval)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            // Let a trickle accumulate into one transaction unless we are draining.
            if st.queue.len() < opts.batch_size && !st.shutdown {
                st = inner
                    .work
                    .wait_timeout(st, opts.flush_interval.min(Duration::from_millis(50)))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            let n = st.queue.len().min(opts.batch_size * 5);
            st.in_flight = n;
            st.queue.drain(..n).collect()
        };
        let result = inner.store.insert_samples(&batch);
        let mut st = inner.lock();
        match result {
            Ok(inserted) => {
                st.in_flight = 0;
                backoff = Duration::from_millis(100);
                failures_with_db_up = 0;
                let m = &inner.metrics;
                Metrics::inc(&m.samples_written, inserted as u64);
                Metrics::inc(&m.samples_duplicate, (batch.len() - inserted) as u64);
                Metrics::inc(&m.writer_batches, 1);
                m.database_up.store(1, Ordering::Relaxed);
            }
            Err(e) => {
                Metrics::inc(&inner.metrics.writer_errors, 1);
                drop(st);
                let db_up = inner.store.ping().is_ok();
                inner
                    .metrics
                    .database_up
                    .store(db_up as i64, Ordering::Relaxed);
                st = inner.lock();
                st.in_flight = 0;
                if db_up && !matches!(e, StoreError::Unavailable(_)) {
                    failures_with_db_up += 1;
                }
                let set_aside = if failures_with_db_up >= 3 {
                    // The database answers but keeps refusing this batch (read-only after a
                    // failover, disk full, its session deleted meanwhile): retrying it forever
                    // would block every later sample, and dropping it would lose samples the API
                    // already acknowledged. It goes to a spool file instead, which the next start
                    // replays (and keeps while the database still refuses it).
                    failures_with_db_up = 0;
                    drop(st);
                    let saved = set_aside_refused(inner, &batch, &e);
                    st = inner.lock();
                    saved
                } else {
                    false
                };
                if !set_aside {
                    tracing::warn!(samples = batch.len(), error = %e, retry_in_ms = backoff.as_millis() as u64, "sample batch not written; will retry");
                    for row in batch.into_iter().rev() {
                        st.queue.push_front(row);
                    }
                    if st.give_up_at.is_some_and(|t| Instant::now() >= t) {
                        inner.idle.notify_all();
                        return;
                    }
                    let wait = match st.give_up_at {
                        Some(t) => backoff.min(t.saturating_duration_since(Instant::now())),
                        None => backoff,
                    };
                    st = inner
                        .work
                        .wait_timeout(st, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        inner
            .metrics
            .writer_pending
            .store((st.queue.len() + st.in_flight) as i64, Ordering::Relaxed);
        if st.queue.is_empty() && st.in_flight == 0 {
            inner.idle.notify_all();
        }
    }
}

/// Saves a batch the database keeps refusing to the spool directory. False (keep it queued and
/// retry) when there is no spool directory or the file cannot be written.
fn set_aside_refused(inner: &Inner, batch: &[SampleRow], error: &StoreError) -> bool {
    let Some(dir) = &inner.opts.spool_dir else {
        tracing::error!(samples = batch.len(), error = %error, "the database keeps refusing a batch and there is no spool directory: keeping it queued");
        return false;
    };
    match save_spool_as(dir, "refused", batch) {
        Ok(path) => {
            tracing::error!(samples = batch.len(), error = %error, file = %path.display(),
                "the database keeps refusing a batch: saved to the spool, replayed at the next start");
            Metrics::inc(&inner.metrics.samples_set_aside, batch.len() as u64);
            true
        }
        Err(io) => {
            tracing::error!(samples = batch.len(), error = %error, io_error = %io, dir = %dir.display(),
                "the database keeps refusing a batch and the spool directory is not writable: keeping it queued");
            false
        }
    }
}

fn save_spool(dir: &Path, rows: &[SampleRow]) -> std::io::Result<PathBuf> {
    save_spool_as(dir, "pending", rows)
}

fn save_spool_as(dir: &Path, prefix: &str, rows: &[SampleRow]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let path = dir.join(format!(
        "{prefix}-{}-{}-{}.jsonl",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_extension("tmp");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    for row in rows {
        serde_json::to_writer(&mut f, row)?;
        f.write_all(b"\n")?;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Writes spool files left by an earlier shutdown into the database and deletes them.
/// Returns the number of samples replayed. A file that cannot be written stays for next time.
pub fn replay_spool(store: &Store, dir: &Path) -> anyhow::Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut total = 0;
    for path in files {
        let file = std::fs::File::open(&path)?;
        let mut rows = Vec::new();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<SampleRow>(&line) {
                Ok(r) => rows.push(r),
                Err(e) => {
                    tracing::error!(file = %path.display(), line = i + 1, "skipping an unreadable spooled sample: {e}")
                }
            }
        }
        match store.insert_samples(&rows) {
            Ok(_) => {}
            // Unreachable database: the start cannot go on anyway, and the files stay.
            Err(e @ StoreError::Unavailable(_)) => {
                return Err(anyhow::anyhow!("replaying {}: {e}", path.display()))
            }
            // Refused rows must neither block the start nor be lost: the file stays for the
            // next start (and for an operator), everything else is replayed.
            Err(e) => {
                tracing::error!(file = %path.display(), samples = rows.len(), "spooled samples refused by the database, file kept: {e}");
                continue;
            }
        }
        std::fs::remove_file(&path)?;
        tracing::info!(file = %path.display(), samples = rows.len(), "replayed spooled samples");
        total += rows.len();
    }
    Ok(total)
}
