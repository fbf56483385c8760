//! The thread every source runs on: open, deliver, report state changes, reopen a lost source
//! with back-off, and stop promptly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{CaptureError, SourceEvent, SourceKind, SourceState, OPEN_TIMEOUT};

/// First back-off after a loss; doubled after every failed reopen up to [`BACKOFF_MAX`].
pub(crate) const BACKOFF_START: Duration = Duration::from_millis(500);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long [`Worker::stop`] waits for the thread before leaving it to finish on its own (a
/// driver call that does not return must not hold up the daemon).
const STOP_WAIT: Duration = Duration::from_millis(900);
/// A source that ran at least this long before failing starts its back-off afresh.
const STABLE_RUN: Duration = Duration::from_secs(10);

/// A stop request that sleeping threads wake up for.
#[derive(Default)]
pub(crate) struct Stopper {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Stopper {
    pub(crate) fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleep for `d` unless stopped first; true when stopped.
    pub(crate) fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut g = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        while !*g {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self
                .cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Owns a source's thread: [`Worker::stop`] asks it to stop and joins it.
pub(crate) struct Worker {
    stopper: Arc<Stopper>,
    thread: Option<JoinHandle<()>>,
    done: Mutex<Receiver<()>>,
    finished: Arc<AtomicBool>,
}

/// Sends on drop, so the owner learns that the thread ended even when it panicked.
struct DoneGuard(SyncSender<()>, Arc<AtomicBool>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        self.1.store(true, Ordering::SeqCst);
        let _ = self.0.try_send(());
    }
}

impl Worker {
    pub(crate) fn spawn(
        name: &str,
        f: impl FnOnce(Arc<Stopper>) + Send + 'static,
    ) -> Result<Self, std::io::Error> {
        let stopper = Arc::new(Stopper::default());
        let (tx, done) = mpsc::sync_channel(1);
        let finished = Arc::new(AtomicBool::new(false));
        let guard = DoneGuard(tx, finished.clone());
        let s = stopper.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let _guard = guard;
                f(s)
            })?;
        Ok(Self {
            stopper,
            thread: Some(thread),
            done: Mutex::new(done),
            finished,
        })
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// Ask the thread to stop and join it; gives up waiting after [`STOP_WAIT`] (the thread
    /// then ends by itself as soon as the call it is blocked in returns).
    pub(crate) fn stop(&mut self) {
        self.stopper.stop();
        let Some(t) = self.thread.take() else { return };
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        match done.recv_timeout(STOP_WAIT) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = t.join();
            }
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!(
                    thread = t.thread().name().unwrap_or("capture"),
                    "capture thread did not stop within {STOP_WAIT:?}; leaving it to finish"
                );
            }
        }
    }
}

/// How one attempt at running a source ended.
pub(crate) enum Outcome {
    /// Stop was requested.
    Stopped,
    /// The input reached its end (a file, or a stream that closed).
    End(String),
    /// The source failed (could not be opened, or broke while running).
    Failed(String),
}

/// Reports the first start of a source to `open_*` and its state changes as events.
pub(crate) struct Notifier {
    kind: SourceKind,
    events: Sender<SourceEvent>,
    ready: Option<SyncSender<Result<(), String>>>,
    description: String,
    started_this_attempt: bool,
}

impl Notifier {
    /// The source delivers (its first frame or audio in this attempt).
    pub(crate) fn started(&mut self) {
        if self.started_this_attempt {
            return;
        }
        self.started_this_attempt = true;
        if let Some(ready) = self.ready.take() {
            let _ = ready.try_send(Ok(()));
            self.event(SourceState::Active, format!("{} opened", self.description));
        } else {
            self.event(
                SourceState::Recovered,
                format!("{} is back", self.description),
            );
        }
    }

    fn event(&self, state: SourceState, message: String) {
        // ffmpeg's own lines may quote the input with its credentials.
        let message = crate::redact_secrets(&message);
        match state {
            SourceState::Lost => tracing::warn!(source = %self.kind, %state, "{message}"),
            _ => tracing::info!(source = %self.kind, %state, "{message}"),
        }
        let _ = self.events.send(SourceEvent {
            kind: self.kind,
            state,
            message,
        });
    }
}

/// Whether a failed source is reopened.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Devices and `ffmpeg:` inputs: reopened with back-off after a loss.
    Reopen,
    /// `file:` sources: the first end or failure ends the source.
    Never,
}

/// Start a source's thread running `attempt` until stopped, and wait (up to [`OPEN_TIMEOUT`])
/// for its first start. `attempt` opens the source, calls `Notifier::started` once it delivers
/// and returns how it ended.
pub(crate) fn start(
    kind: SourceKind,
    description: String,
    retry: Retry,
    events: Sender<SourceEvent>,
    attempt: impl FnMut(&Stopper, &mut Notifier) -> Outcome + Send + 'static,
) -> Result<Worker, CaptureError> {
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let mut n = Notifier {
        kind,
        events,
        ready: Some(ready_tx),
        description: description.clone(),
        started_this_attempt: false,
    };
    let name = format!("emo-{kind}");
    let worker = Worker::spawn(&name, move |stopper| {
        keep_running(&stopper, &mut n, retry, attempt)
    })
    .map_err(|e| CaptureError::unavailable(kind, format!("cannot start a thread: {e}")))?;
    wait_until_open(worker, &ready_rx, kind, &description)
}

/// The source thread: run `attempt` again and again, with back-off between reopenings, until
/// stop is asked, the source ends for good or it fails before ever delivering.
fn keep_running(
    stopper: &Stopper,
    n: &mut Notifier,
    retry: Retry,
    mut attempt: impl FnMut(&Stopper, &mut Notifier) -> Outcome,
) {
    let mut backoff = BACKOFF_START;
    loop {
        n.started_this_attempt = false;
        let t0 = Instant::now();
        let (end, message) = match attempt(stopper, n) {
            Outcome::Stopped => return,
            Outcome::End(m) => (true, m),
            Outcome::Failed(m) => (false, m),
        };
        if stopper.is_stopped() || !n.reopen_after(retry, end, message) {
            return;
        }
        if n.started_this_attempt && t0.elapsed() >= STABLE_RUN {
            backoff = BACKOFF_START;
        }
        if stopper.sleep(backoff) {
            return;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

impl Notifier {
    /// Report how an attempt ended (`end`: the input ended rather than failed); whether the
    /// source is to be reopened.
    fn reopen_after(&mut self, retry: Retry, end: bool, message: String) -> bool {
        if let Some(ready) = self.ready.take() {
            // Never delivered: `open_*` reports why.
            let _ = ready.try_send(Err(message));
            return false;
        }
        if retry == Retry::Never {
            let m = if end {
                format!("{}: {message}", self.description)
            } else {
                format!("{} failed: {message}", self.description)
            };
            self.event(SourceState::Ended, m);
            return false;
        }
        if self.started_this_attempt {
            let m = format!("{} lost: {message}", self.description);
            self.event(SourceState::Lost, m);
        } else {
            tracing::debug!(source = %self.kind, "reopening failed: {message}");
        }
        true
    }
}

/// Wait for the source's first delivery (or its reason not to); a worker that does not start
/// is stopped.
fn wait_until_open(
    mut worker: Worker,
    ready: &Receiver<Result<(), String>>,
    kind: SourceKind,
    description: &str,
) -> Result<Worker, CaptureError> {
    let why = match ready.recv_timeout(OPEN_TIMEOUT) {
        Ok(Ok(())) => return Ok(worker),
        Ok(Err(message)) => message,
        Err(RecvTimeoutError::Timeout) => {
            format!("nothing received within {} s", OPEN_TIMEOUT.as_secs())
        }
        Err(RecvTimeoutError::Disconnected) => "the capture thread ended unexpectedly".into(),
    };
    worker.stop();
    Err(CaptureError::unavailable(
        kind,
        format!("{description}: {why}"),
    ))
}
