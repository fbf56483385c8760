//! `ffmpeg` / `ffprobe` child processes that cannot hang or leak: the one piece of process
//! handling that the file decoders (`emo-inference`) and the capture sources (`emo-capture`) share,
//! in a crate of its own so that capture does not depend on the inference engine for it.
//!
//! A child that writes more than a pipe's worth of error text blocks forever unless somebody
//! reads its stderr, and a corrupt file can keep a decoder busy indefinitely. So every child
//! here has its stderr drained on a thread (only the tail is kept, for the error message), an
//! optional deadline after which a watchdog kills it, and a `Drop` that kills and reaps it when
//! the caller gives up early (an error, a cancelled request, a capture source being stopped).

#![forbid(unsafe_code)]

use std::io::Read;
use std::process::{ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What went wrong with a child: a message naming the program and ffmpeg's own last line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FfError(pub String);

impl std::fmt::Display for FfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FfError {}

pub type Result<T> = std::result::Result<T, FfError>;

impl From<std::io::Error> for FfError {
    fn from(e: std::io::Error) -> Self {
        FfError(format!("ffmpeg child: {e}"))
    }
}

/// How much of a child's stderr is kept for error messages.
const STDERR_TAIL: usize = 8 * 1024;

/// A running `ffmpeg`/`ffprobe` with a drained stderr, a deadline and kill-on-drop.
pub struct FfChild {
    child: Arc<Mutex<std::process::Child>>,
    stdout: Option<ChildStdout>,
    stderr: Option<JoinHandle<String>>,
    stop_watchdog: Option<mpsc::Sender<()>>,
    timed_out: Arc<AtomicBool>,
    finished: bool,
    program: String,
}

impl FfChild {
    /// Start `cmd` (stdin closed, stdout piped, stderr drained). With a `deadline` the child is
    /// killed when it is still running after that long.
    pub fn spawn(cmd: &mut Command, deadline: Option<Duration>) -> Result<Self> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| FfError(format!("cannot run {program} ({e}); install ffmpeg")))?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take().map(|mut se| {
            std::thread::spawn(move || {
                let mut tail: Vec<u8> = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match se.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            tail.extend_from_slice(&buf[..n]);
                            if tail.len() > 2 * STDERR_TAIL {
                                tail.drain(..tail.len() - STDERR_TAIL);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                if tail.len() > STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
                String::from_utf8_lossy(&tail).into_owned()
            })
        });
        let child = Arc::new(Mutex::new(child));
        let timed_out = Arc::new(AtomicBool::new(false));
        let stop_watchdog = deadline.map(|d| {
            let (tx, rx) = mpsc::channel::<()>();
            let (c, flag) = (child.clone(), timed_out.clone());
            std::thread::spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(d) {
                    flag.store(true, Ordering::SeqCst);
                    let _ = c.lock().unwrap_or_else(|e| e.into_inner()).kill();
                }
            });
            tx
        });
        Ok(Self {
            child,
            stdout,
            stderr,
            stop_watchdog,
            timed_out,
            finished: false,
            program,
        })
    }

    /// The child's standard output.
    pub fn stdout(&mut self) -> Result<&mut ChildStdout> {
        self.stdout
            .as_mut()
            .ok_or_else(|| FfError(format!("{} has no output", self.program)))
    }

    /// Whether the deadline killed the child.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::SeqCst)
    }

    /// The process id (for metrics and logs).
    pub fn id(&self) -> u32 {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).id()
    }

    /// Kill the child now (idempotent).
    pub fn kill(&mut self) {
        let _ = self.child.lock().unwrap_or_else(|e| e.into_inner()).kill();
    }

    /// Close stdout, wait for the child to exit and return its status and the tail of its
    /// stderr. The deadline still applies while waiting.
    pub fn finish(mut self) -> Result<(ExitStatus, String)> {
        self.stdout = None;
        let status = loop {
            let st = self
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_wait()?;
            if let Some(st) = st {
                break st;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        self.finished = true;
        self.stop_watchdog = None;
        let err = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Ok((status, err))
    }

    /// An error naming the child's last line of stderr (or the deadline when it was hit).
    pub fn failure(&self, what: &str, stderr: &str) -> FfError {
        if self.timed_out() {
            return FfError(format!(
                "{what}: {} took too long and was stopped",
                self.program
            ));
        }
        FfError(format!("{what}: {}", last_line(stderr)))
    }
}

impl Drop for FfChild {
    fn drop(&mut self) {
        self.stop_watchdog = None;
        if !self.finished {
            let mut c = self.child.lock().unwrap_or_else(|e| e.into_inner());
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The last non-empty line of a child's stderr, or "unknown error".
pub fn last_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown error")
}

/// Run `cmd` to the end and return its stdout (at most `max_stdout` bytes: more is an error),
/// with the deadline applied. Used for `ffprobe`.
pub fn output(
    cmd: &mut Command,
    deadline: Duration,
    max_stdout: usize,
) -> Result<(Vec<u8>, ExitStatus, String)> {
    let mut child = FfChild::spawn(cmd, Some(deadline))?;
    let mut out = Vec::new();
    child
        .stdout()?
        .take(max_stdout as u64 + 1)
        .read_to_end(&mut out)?;
    if out.len() > max_stdout {
        return Err(FfError("unexpectedly long output from ffprobe".into()));
    }
    let timed_out = child.timed_out();
    let (st, err) = child.finish()?;
    if timed_out {
        return Err(FfError("ffprobe took too long and was stopped".into()));
    }
    Ok((out, st, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noisy_child_does_not_block_and_its_tail_is_kept() {
        // 200 KiB on stderr would fill the pipe and block a child nobody drains.
        let mut c = FfChild::spawn(
            Command::new("sh").args([
                "-c",
                "head -c 204800 /dev/zero | tr '\\0' x >&2; echo >&2; echo last line >&2; echo out",
            ]),
            Some(Duration::from_secs(20)),
        )
        .unwrap();
        let mut s = String::new();
        c.stdout().unwrap().read_to_string(&mut s).unwrap();
        let (st, err) = c.finish().unwrap();
        assert!(st.success());
        assert_eq!(s.trim(), "out");
        assert!(err.len() <= STDERR_TAIL);
        assert_eq!(last_line(&err), "last line");
    }

    #[test]
    fn the_deadline_kills_a_hung_child() {
        let t0 = std::time::Instant::now();
        let mut c = FfChild::spawn(
            Command::new("sleep").arg("30"),
            Some(Duration::from_millis(200)),
        )
        .unwrap();
        let mut s = Vec::new();
        c.stdout().unwrap().read_to_end(&mut s).unwrap();
        assert!(c.timed_out());
        let (st, _) = c.finish().unwrap();
        assert!(!st.success());
        assert!(t0.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn drop_kills_the_child() {
        let c = FfChild::spawn(Command::new("sleep").arg("30"), None).unwrap();
        let pid = c.id();
        drop(c);
        // The child was reaped: its /proc entry is gone.
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
}
