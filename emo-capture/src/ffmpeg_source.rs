//! `file:` and `ffmpeg:` sources through the `ffmpeg` CLI: raw RGB frames or 16 kHz f32 audio
//! on its standard output.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use emo_ffmpeg::{last_line, FfChild};

use crate::worker::{self, Notifier, Outcome, Retry, Stopper, Worker};
use crate::{
    AudioChunk, CameraOptions, CaptureError, FrameSlot, SourceEvent, SourceKind, SourceSpec,
    VideoFrame, CHUNK_SAMPLES, OPEN_TIMEOUT, SAMPLE_RATE,
};

/// A running `ffmpeg` input that delivers nothing for this long is treated as lost.
const STALL: Duration = Duration::from_secs(10);
/// How often the supervising thread looks at the stop flag and the stall clock.
const POLL: Duration = Duration::from_millis(50);

/// The `ffmpeg` arguments that select the input, and how the source is described.
struct Input {
    args: Vec<String>,
    description: String,
    retry: Retry,
}

fn input(spec: &SourceSpec, kind: SourceKind) -> Result<Input, CaptureError> {
    match spec {
        SourceSpec::File(path) => {
            let meta = std::fs::metadata(path).map_err(|e| {
                CaptureError::unavailable(kind, format!("file:{}: {e}", path.display()))
            })?;
            if !meta.is_file() {
                return Err(CaptureError::unavailable(
                    kind,
                    format!("file:{}: not a regular file", path.display()),
                ));
            }
            Ok(Input {
                args: vec![
                    "-re".into(),
                    "-i".into(),
                    path.to_string_lossy().into_owned(),
                ],
                description: format!("file:{}", path.display()),
                retry: Retry::Never,
            })
        }
        SourceSpec::Ffmpeg(url) => {
            let mut words: Vec<String> = url.split_whitespace().map(str::to_string).collect();
            let Some(input) = words.pop() else {
                return Err(CaptureError::InvalidSpec("ffmpeg: needs an input".into()));
            };
            // A bare V4L2 device path: say which demuxer reads it.
            if input.starts_with("/dev/video") && !words.iter().any(|w| w == "-f") {
                words.extend(["-f".to_string(), "v4l2".to_string()]);
            }
            words.extend(["-i".to_string(), input]);
            Ok(Input {
                args: words,
                description: format!("ffmpeg:{}", crate::redact_secrets(url)),
                retry: Retry::Reopen,
            })
        }
        _ => Err(CaptureError::InvalidSpec(format!(
            "{spec} is not a file: or ffmpeg: source"
        ))),
    }
}

fn command(input: &[String], output: &[String]) -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args(input)
        .args(output);
    c
}

/// What the reading thread tells the supervising thread.
enum Msg {
    /// The first frame or chunk was read.
    Started,
    /// Standard output ended (`Ok`) or could not be read.
    Done(std::io::Result<()>),
}

/// The reading side's report of its deliveries: the stall clock the supervising thread watches
/// and, once, the news that the source delivers.
struct Delivery {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last delivery (0: none yet).
    last: Arc<AtomicU64>,
    started: Option<Sender<Msg>>,
}

impl Delivery {
    /// A frame or chunk was read.
    fn delivered(&mut self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
        if let Some(tx) = self.started.take() {
            let _ = tx.send(Msg::Started);
        }
    }
}

/// A running `ffmpeg` child, the thread reading its output and what that thread reports.
struct Running {
    child: FfChild,
    reader: JoinHandle<()>,
    rx: Receiver<Msg>,
    epoch: Instant,
    last: Arc<AtomicU64>,
}

impl Running {
    /// Run `read` with `out` on its own thread (the child is killed if that fails).
    fn start<R>(child: FfChild, out: File, read: R) -> std::io::Result<Self>
    where
        R: FnOnce(File, &mut Delivery) -> std::io::Result<()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let epoch = Instant::now();
        let last = Arc::new(AtomicU64::new(0));
        let mut delivery = Delivery {
            epoch,
            last: last.clone(),
            started: Some(tx.clone()),
        };
        let reader = std::thread::Builder::new()
            .name("emo-ffmpeg-read".into())
            .spawn(move || {
                let r = read(out, &mut delivery);
                let _ = tx.send(Msg::Done(r));
            })?;
        Ok(Self {
            child,
            reader,
            rx,
            epoch,
            last,
        })
    }

    /// Milliseconds since the last delivery (since the start when there was none).
    fn quiet_ms(&self) -> u64 {
        let now = self.epoch.elapsed().as_millis() as u64;
        now.saturating_sub(self.last.load(Ordering::Relaxed))
    }

    /// Kill the child (if still running) and wait for the reader, which then sees EOF.
    fn kill(mut self) {
        self.child.kill();
        drop(self.child);
        drop(self.reader.join());
    }
}

/// Run one `ffmpeg` child until it ends, fails, stalls or the source is stopped. `read` runs on
/// its own thread with the child's standard output and calls [`Delivery::delivered`] for each
/// frame or chunk; the supervising thread kills the child to stop it, which ends `read` with EOF.
fn run_child<R>(
    cmd: &mut Command,
    stopper: &Stopper,
    n: &mut Notifier,
    pids: &Mutex<Vec<u32>>,
    read: R,
) -> Outcome
where
    R: FnOnce(File, &mut Delivery) -> std::io::Result<()> + Send + 'static,
{
    let (child, out) = match spawn_child(cmd) {
        Ok(x) => x,
        Err(message) => return Outcome::Failed(message),
    };
    let pid = child.id();
    pids.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    let outcome = match Running::start(child, out, read) {
        Ok(running) => supervise(running, stopper, n),
        Err(e) => Outcome::Failed(format!("cannot start a thread: {e}")),
    };
    remove_pid(pids, pid);
    outcome
}

/// Start `ffmpeg` with its standard output as a file to read.
fn spawn_child(cmd: &mut Command) -> Result<(FfChild, File), String> {
    let mut child = FfChild::spawn(cmd, None).map_err(|e| e.to_string())?;
    let out = match child.stdout().map(|o| o.as_fd().try_clone_to_owned()) {
        Ok(Ok(fd)) => File::from(fd),
        Ok(Err(e)) => return Err(format!("cannot read ffmpeg's output: {e}")),
        Err(e) => return Err(e.to_string()),
    };
    Ok((child, out))
}

/// Wait for the reader's news until the output ends, the input stalls or stop is asked.
fn supervise(r: Running, stopper: &Stopper, n: &mut Notifier) -> Outcome {
    let mut started = false;
    loop {
        match r.rx.recv_timeout(POLL) {
            Ok(Msg::Started) => {
                started = true;
                n.started();
            }
            Ok(Msg::Done(result)) => return finished(r, result, started),
            Err(RecvTimeoutError::Timeout) => {
                let quiet = r.quiet_ms();
                let limit = if started { STALL } else { OPEN_TIMEOUT };
                let stalled = quiet > limit.as_millis() as u64;
                if stopper.is_stopped() || stalled {
                    r.kill();
                    return if stalled {
                        Outcome::Failed(format!("nothing received for {} s", quiet / 1000))
                    } else {
                        Outcome::Stopped
                    };
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                drop(r.child);
                drop(r.reader.join());
                return Outcome::Failed("the reading thread ended".into());
            }
        }
    }
}

/// Output closed: ffmpeg is exiting. Its status and last words say why.
fn finished(r: Running, result: std::io::Result<()>, started: bool) -> Outcome {
    drop(r.reader.join());
    let read_err = result.err();
    let (status, stderr) = match r.child.finish() {
        Ok(x) => x,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    if let Some(e) = read_err {
        Outcome::Failed(format!("reading ffmpeg's output: {e}"))
    } else if status.success() {
        Outcome::End(if started {
            "end of input".into()
        } else {
            "the input has no usable stream".into()
        })
    } else {
        Outcome::Failed(format!("ffmpeg: {}", last_line(&stderr)))
    }
}

fn remove_pid(pids: &Mutex<Vec<u32>>, pid: u32) {
    pids.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|&p| p != pid);
}

/// Read until `buf` is full or EOF; the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Start a worker that runs `ffmpeg` on `spec` with `output` arguments, reading its output with
/// a fresh reader from `reader` on every (re)open.
fn open<R>(
    spec: &SourceSpec,
    kind: SourceKind,
    output: Vec<String>,
    events: Sender<SourceEvent>,
    pids: Arc<Mutex<Vec<u32>>>,
    mut reader: impl FnMut() -> R + Send + 'static,
) -> Result<(Worker, String), CaptureError>
where
    R: FnOnce(File, &mut Delivery) -> std::io::Result<()> + Send + 'static,
{
    let inp = input(spec, kind)?;
    let args = inp.args;
    let worker = worker::start(
        kind,
        inp.description.clone(),
        inp.retry,
        events,
        move |stopper, n| run_child(&mut command(&args, &output), stopper, n, &pids, reader()),
    )?;
    Ok((worker, inp.description))
}

pub(crate) fn open_video(
    spec: &SourceSpec,
    opts: &CameraOptions,
    slot: Arc<FrameSlot>,
    events: Sender<SourceEvent>,
    pids: Arc<Mutex<Vec<u32>>>,
) -> Result<(Worker, String), CaptureError> {
    let (w, h) = (opts.width, opts.height);
    let output: Vec<String> = [
        "-an".to_string(),
        "-vf".into(),
        format!("fps={},scale={w}:{h}", opts.fps),
        "-f".into(),
        "rawvideo".into(),
        "-pix_fmt".into(),
        "rgb24".into(),
        "-".into(),
    ]
    .into();
    open(spec, SourceKind::Camera, output, events, pids, move || {
        let slot = slot.clone();
        move |out: File, d: &mut Delivery| read_frames(out, d, &slot, w, h)
    })
}

/// Raw RGB frames of `w`×`h` from `out` into `slot` until the output ends.
fn read_frames(
    mut out: File,
    d: &mut Delivery,
    slot: &FrameSlot,
    w: u32,
    h: u32,
) -> std::io::Result<()> {
    let frame_bytes = (w * h * 3) as usize;
    loop {
        let mut buf = vec![0u8; frame_bytes];
        if read_full(&mut out, &mut buf)? < frame_bytes {
            return Ok(());
        }
        let captured = SystemTime::now();
        let Some(image) = image::RgbImage::from_raw(w, h, buf) else {
            return Ok(());
        };
        d.delivered();
        slot.put(VideoFrame { captured, image });
    }
}

pub(crate) fn open_audio(
    spec: &SourceSpec,
    chunks: SyncSender<AudioChunk>,
    events: Sender<SourceEvent>,
    overruns: Arc<AtomicU64>,
    pids: Arc<Mutex<Vec<u32>>>,
) -> Result<(Worker, String), CaptureError> {
    let output: Vec<String> = [
        "-vn",
        "-ac",
        "1",
        "-ar",
        &SAMPLE_RATE.to_string(),
        "-f",
        "f32le",
        "-",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    open(
        spec,
        SourceKind::Microphone,
        output,
        events,
        pids,
        move || {
            let (chunks, overruns) = (chunks.clone(), overruns.clone());
            move |out: File, d: &mut Delivery| read_chunks(out, d, &chunks, &overruns)
        },
    )
}

/// 16 kHz mono f32 chunks of [`CHUNK_SAMPLES`] from `out` until the output ends; a chunk the
/// consumer has no room for is counted as an overrun.
fn read_chunks(
    mut out: File,
    d: &mut Delivery,
    chunks: &SyncSender<AudioChunk>,
    overruns: &AtomicU64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK_SAMPLES * 4];
    loop {
        let got = read_full(&mut out, &mut buf)?;
        let samples: Vec<f32> = buf[..got - got % 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).clamp(-1.0, 1.0))
            .collect();
        if samples.is_empty() {
            return Ok(());
        }
        let now = SystemTime::now();
        d.delivered();
        let span = Duration::from_secs_f64(samples.len() as f64 / SAMPLE_RATE as f64);
        let captured = now.checked_sub(span).unwrap_or(now);
        let short = samples.len() < CHUNK_SAMPLES;
        match chunks.try_send(AudioChunk { captured, samples }) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                overruns.fetch_add(1, Ordering::Relaxed);
            }
        }
        if short {
            return Ok(());
        }
    }
}
