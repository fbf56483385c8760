//! The buffered sample writer.
//!
//! The API accepts a batch as soon as it is queued here; background threads write queued
//! samples in large transactions. On PostgreSQL there is one thread (and connection) per
//! `connections`, each owning the users whose id hashes to it: a single connection leaves the
//! server's second core idle while the client waits for each transaction, and because every
//! roll-up row and sample key belongs to exactly one user, concurrent transactions never touch
//! the same rows (no lock waits, no deadlocks). SQLite has one writer at a time, so one thread.
//!
//! While the database is unreachable the queues are the spool: they keep everything up to
//! `capacity` samples in all and the writers retry with back-off; past that the API refuses new
//! samples (503) rather than silently dropping them. Each user may hold at most `user_quota` of
//! them (429 past it): one agent flooding the queue must not fill the spool the others share,
//! nor make their `stop` (which waits for their own samples only) time out. On shutdown whatever could
//! not be written is saved to a JSON-lines file in the spool directory and replayed at the next
//! start (inserts are idempotent, so a replay never double-counts).

use std::collections::{HashMap, VecDeque};
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
    /// Concurrent write transactions (PostgreSQL; SQLite always uses one).
    pub connections: usize,
    /// Most samples one user may have waiting (queued or being written); 0 = no per-user limit.
    pub user_quota: usize,
}

/// Why a batch was not queued. Nothing of it was.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    SpoolFull(#[from] SpoolFull),
    /// This user already has `quota` samples waiting: the client should slow down and retry.
    #[error("{pending} of this user's samples are still waiting to be written (writer.user_quota {quota})")]
    UserQuota { pending: usize, quota: usize },
}

#[derive(Debug, thiserror::Error)]
#[error("the sample spool is full ({pending} pending, capacity {capacity})")]
pub struct SpoolFull {
    pub pending: usize,
    pub capacity: usize,
}

struct State {
    /// One queue per writer thread; a user's samples always go to the same one.
    queues: Vec<VecDeque<SampleRow>>,
    /// Samples each thread is writing right now.
    in_flight: Vec<usize>,
    /// Samples waiting (queued or in flight) per user id; users with none have no entry.
    per_user: HashMap<String, usize>,
    shutdown: bool,
    /// Set by `shutdown`: stop retrying after this instant.
    give_up_at: Option<Instant>,
}

impl State {
    fn new(shards: usize) -> State {
        State {
            queues: (0..shards).map(|_| VecDeque::new()).collect(),
            in_flight: vec![0; shards],
            per_user: HashMap::new(),
            shutdown: false,
            give_up_at: None,
        }
    }

    fn pending(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum::<usize>() + self.in_flight.iter().sum::<usize>()
    }

    fn pending_of(&self, user_id: &str) -> usize {
        self.per_user.get(user_id).copied().unwrap_or(0)
    }

    /// `rows` left the writer (written, or set aside to a spool file).
    fn done(&mut self, rows: &[SampleRow]) {
        for row in rows {
            if let Some(n) = self.per_user.get_mut(&row.user_id) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_user.remove(&row.user_id);
                }
            }
        }
    }
}

/// The writer thread that owns `user_id` (FNV-1a: stable, cheap, no allocation).
fn shard_of(user_id: &str, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user_id.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % shards.max(1) as u64) as usize
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
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Writer {
    pub fn start(store: Store, mut opts: WriterOptions, metrics: Arc<Metrics>) -> Writer {
        opts.connections = if store.is_postgres() {
            opts.connections.max(1)
        } else {
            1
        };
        let shards = opts.connections;
        let inner = Arc::new(Inner {
            store,
            opts,
            metrics,
            state: Mutex::new(State::new(shards)),
            work: Condvar::new(),
            idle: Condvar::new(),
        });
        let threads = (0..shards)
            .map(|shard| {
                let worker = inner.clone();
                std::thread::Builder::new()
                    .name(format!("emo-writer-{shard}"))
                    .spawn(move || run(&worker, shard))
                    .expect("spawning a writer thread")
            })
            .collect();
        Writer {
            inner,
            threads: Arc::new(Mutex::new(threads)),
        }
    }

    /// Queues samples for writing; all or nothing. The user quota is checked per user id in
    /// the batch (the API and the capture pipeline submit one user's samples at a time).
    pub fn submit(&self, rows: Vec<SampleRow>) -> Result<usize, SubmitError> {
        let n = rows.len();
        let mut st = self.inner.lock();
        let pending = st.pending();
        if pending + n > self.inner.opts.capacity || st.shutdown {
            Metrics::inc(&self.inner.metrics.samples_rejected, n as u64);
            return Err(SpoolFull {
                pending,
                capacity: self.inner.opts.capacity,
            }
            .into());
        }
        let quota = self.inner.opts.user_quota;
        if quota > 0 {
            let mut per_user: HashMap<&str, usize> = HashMap::new();
            for row in &rows {
                *per_user.entry(row.user_id.as_str()).or_default() += 1;
            }
            for (user, adding) in per_user {
                let pending = st.pending_of(user);
                if pending + adding > quota {
                    Metrics::inc(&self.inner.metrics.samples_rejected, n as u64);
                    return Err(SubmitError::UserQuota { pending, quota });
                }
            }
        }
        let shards = st.queues.len();
        for row in rows {
            *st.per_user.entry(row.user_id.clone()).or_default() += 1;
            st.queues[shard_of(&row.user_id, shards)].push_back(row);
        }
        self.inner
            .metrics
            .writer_pending
            .store(st.pending() as i64, Ordering::Relaxed);
        Metrics::inc(&self.inner.metrics.samples_accepted, n as u64);
        drop(st);
        self.inner.work.notify_all();
        Ok(n)
    }

    pub fn pending(&self) -> usize {
        self.inner.lock().pending()
    }

    /// Waits until everything queued so far is written; false on timeout.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.flush_while(timeout, |st| st.pending() > 0)
    }

    /// Waits until `user_id`'s samples queued so far are written; false on timeout. Another
    /// user's backlog delays this only by what sits ahead in the same queue, which the user
    /// quota bounds.
    pub fn flush_user(&self, user_id: &str, timeout: Duration) -> bool {
        self.flush_while(timeout, |st| st.pending_of(user_id) > 0)
    }

    fn flush_while(&self, timeout: Duration, waiting: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.lock();
        self.inner.work.notify_all();
        while waiting(&st) {
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
        let handles: Vec<_> = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for handle in handles {
            let _ = handle.join();
        }
        let left: Vec<SampleRow> = self
            .inner
            .lock()
            .queues
            .iter_mut()
            .flat_map(|q| q.drain(..))
            .collect();
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

/// How long one writer thread waits before retrying, and how often in a row the database
/// answered but refused its batch.
struct Retry {
    backoff: Duration,
    failures_with_db_up: u32,
}

impl Retry {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);
}

/// One writer thread: writes the samples of queue `shard` until shutdown.
fn run(inner: &Inner, shard: usize) {
    let mut retry = Retry {
        backoff: Retry::FIRST,
        failures_with_db_up: 0,
    };
    while let Some(batch) = next_batch(inner, shard) {
        let st = match inner.store.insert_samples(&batch) {
            Ok(inserted) => written(inner, shard, &batch, inserted, &mut retry),
            Err(e) => match not_written(inner, shard, batch, e, &mut retry) {
                Some(st) => st,
                None => return,
            },
        };
        inner
            .metrics
            .writer_pending
            .store(st.pending() as i64, Ordering::Relaxed);
        // Every finished batch wakes the flushers: `flush_user` waits for one user's share only.
        inner.idle.notify_all();
    }
}

/// Wait for samples in queue `shard` and take up to five batches' worth (marked in flight);
/// `None` at shutdown once the queue is empty.
fn next_batch(inner: &Inner, shard: usize) -> Option<Vec<SampleRow>> {
    let opts = &inner.opts;
    let mut st = inner.lock();
    while st.queues[shard].is_empty() {
        if st.shutdown {
            return None;
        }
        st = inner
            .work
            .wait_timeout(st, opts.flush_interval)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    // Let a trickle accumulate into one transaction unless we are draining.
    if st.queues[shard].len() < opts.batch_size && !st.shutdown {
        st = inner
            .work
            .wait_timeout(st, opts.flush_interval.min(Duration::from_millis(50)))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    let n = st.queues[shard].len().min(opts.batch_size * 5);
    st.in_flight[shard] = n;
    Some(st.queues[shard].drain(..n).collect())
}

/// The store took `batch` (`inserted` of it new, the rest duplicates).
fn written<'a>(
    inner: &'a Inner,
    shard: usize,
    batch: &[SampleRow],
    inserted: usize,
    retry: &mut Retry,
) -> MutexGuard<'a, State> {
    let mut st = inner.lock();
    st.in_flight[shard] = 0;
    st.done(batch);
    retry.backoff = Retry::FIRST;
    retry.failures_with_db_up = 0;
    let m = &inner.metrics;
    Metrics::inc(&m.samples_written, inserted as u64);
    Metrics::inc(&m.samples_duplicate, (batch.len() - inserted) as u64);
    Metrics::inc(&m.writer_batches, 1);
    m.database_up.store(1, Ordering::Relaxed);
    st
}

/// The store did not take `batch`: set it aside when the database answers but keeps refusing
/// it, else put it back at the front of its queue and sit out the back-off. `None` when the
/// shutdown grace is over (what is queued then goes to the spool).
fn not_written<'a>(
    inner: &'a Inner,
    shard: usize,
    batch: Vec<SampleRow>,
    e: StoreError,
    retry: &mut Retry,
) -> Option<MutexGuard<'a, State>> {
    Metrics::inc(&inner.metrics.writer_errors, 1);
    let db_up = inner.store.ping().is_ok();
    inner
        .metrics
        .database_up
        .store(db_up as i64, Ordering::Relaxed);
    let mut st = inner.lock();
    st.in_flight[shard] = 0;
    if db_up && !matches!(e, StoreError::Unavailable(_)) {
        retry.failures_with_db_up += 1;
    }
    if retry.failures_with_db_up >= 3 {
        // The database answers but keeps refusing this batch (read-only after a failover, disk
        // full, its session deleted meanwhile): retrying it forever would block every later
        // sample, and dropping it would lose samples the API already acknowledged. It goes to a
        // spool file instead, which the next start replays (and keeps while the database still
        // refuses it).
        retry.failures_with_db_up = 0;
        drop(st);
        let saved = set_aside_refused(inner, &batch, &e);
        st = inner.lock();
        if saved {
            st.done(&batch);
            return Some(st);
        }
    }
    tracing::warn!(samples = batch.len(), error = %e, retry_in_ms = retry.backoff.as_millis() as u64, "sample batch not written; will retry");
    for row in batch.into_iter().rev() {
        st.queues[shard].push_front(row);
    }
    if st.give_up_at.is_some_and(|t| Instant::now() >= t) {
        inner.idle.notify_all();
        return None;
    }
    let wait = match st.give_up_at {
        Some(t) => retry
            .backoff
            .min(t.saturating_duration_since(Instant::now())),
        None => retry.backoff,
    };
    let st = sit_out(inner, st, wait);
    retry.backoff = (retry.backoff * 2).min(Retry::MAX);
    Some(st)
}

/// Sit out the whole back-off (new submissions must not turn it into a retry per request
/// against a database that is down); only shutdown cuts it short.
fn sit_out<'a>(
    inner: &'a Inner,
    mut st: MutexGuard<'a, State>,
    wait: Duration,
) -> MutexGuard<'a, State> {
    let until = Instant::now() + wait;
    while !st.shutdown {
        let now = Instant::now();
        if now >= until {
            break;
        }
        st = inner
            .work
            .wait_timeout(st, until - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    st
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
    use std::os::unix::fs::OpenOptionsExt;
    // Samples are personal data: the directory and the files are the owner's only.
    super::sqlite::create_private_dir(dir)?;
    {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(dir)?.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let path = dir.join(format!(
        "{prefix}-{}-{}-{}.jsonl",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_extension("tmp");
    let mut f = std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?,
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_files_and_their_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        // An existing, world-readable spool directory is tightened too.
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = save_spool(&dir, &[]).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn users_spread_over_shards_and_always_land_on_the_same_one() {
        let ids: Vec<String> = (0..1000)
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect();
        for shards in [1usize, 2, 3, 8] {
            let mut counts = vec![0usize; shards];
            for id in &ids {
                let s = shard_of(id, shards);
                assert_eq!(s, shard_of(id, shards));
                counts[s] += 1;
            }
            // Each shard gets its share within ±30 % (UUIDv7 ids share their time prefix).
            let share = ids.len() / shards;
            for c in counts {
                assert!(
                    c * 10 >= share * 7 && c * 10 <= share * 13,
                    "{shards} shards: {c}"
                );
            }
        }
        assert_eq!(shard_of("anything", 0), 0);
    }

    #[test]
    fn pending_counts_every_queue_and_every_batch_in_flight() {
        let mut st = State::new(3);
        assert_eq!(st.pending(), 0);
        st.in_flight[1] = 5;
        st.queues[2].extend((0..4).map(|i| SampleRow {
            session_id: "s".into(),
            user_id: "u".into(),
            t: i,
            modality: 0,
            emotion: 0,
            confidence: 0.5,
            p_angry: None,
            p_disgust: None,
            p_fear: None,
            p_happy: None,
            p_sad: None,
            p_surprise: None,
            p_neutral: None,
            p_calm: None,
        }));
        assert_eq!(st.pending(), 9);
    }
}
