//! `file:` and `ffmpeg:` sources through the `ffmpeg` CLI: raw RGB frames or 16 kHz f32 audio
//! on its standard output.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use emo_inference::ffmpeg::{last_line, FfChild};

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
                description: format!("ffmpeg:{url}"),
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

/// Run one `ffmpeg` child until it ends, fails, stalls or the source is stopped. `read` runs on
/// its own thread with the child's standard output and calls the given closure after its first
/// delivery; the supervising thread kills the child to stop it, which ends `read` with EOF.
fn run_child(
    cmd: &mut Command,
    stopper: &Stopper,
    n: &mut Notifier,
    pids: &Mutex<Vec<u32>>,
    epoch: Instant,
    last_data: Arc<AtomicU64>,
    read: impl FnOnce(File, &dyn Fn()) -> std::io::Result<()> + Send + 'static,
) -> Outcome {
    let mut child = match FfChild::spawn(cmd, None) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let out = match child.stdout().map(|o| o.as_fd().try_clone_to_owned()) {
        Ok(Ok(fd)) => File::from(fd),
        Ok(Err(e)) => return Outcome::Failed(format!("cannot read ffmpeg's output: {e}")),
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let pid = child.id();
    pids.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    let (tx, rx) = mpsc::channel();
    let started_tx = tx.clone();
    let reader = std::thread::Builder::new()
        .name("emo-ffmpeg-read".into())
        .spawn(move || {
            let started = move || {
                let _ = started_tx.send(Msg::Started);
            };
            let r = read(out, &started);
            let _ = tx.send(Msg::Done(r));
        });
    let reader = match reader {
        Ok(r) => r,
        Err(e) => {
            remove_pid(pids, pid);
            return Outcome::Failed(format!("cannot start a thread: {e}"));
        }
    };
    let mut started = false;
    let outcome = loop {
        match rx.recv_timeout(POLL) {
            Ok(Msg::Started) => {
                started = true;
                n.started();
            }
            Ok(Msg::Done(r)) => {
                // Output closed: ffmpeg is exiting. Its status and last words say why.
                drop(reader.join());
                let read_err = r.err();
                let (status, stderr) = match child.finish() {
                    Ok(x) => x,
                    Err(e) => break Outcome::Failed(e.to_string()),
                };
                break if let Some(e) = read_err {
                    Outcome::Failed(format!("reading ffmpeg's output: {e}"))
                } else if status.success() {
                    Outcome::End(if started {
                        "end of input".into()
                    } else {
                        "the input has no usable stream".into()
                    })
                } else {
                    Outcome::Failed(format!("ffmpeg: {}", last_line(&stderr)))
                };
            }
            Err(RecvTimeoutError::Timeout) => {
                // Milliseconds since `epoch` of the last delivery (0: none yet).
                let now = epoch.elapsed().as_millis() as u64;
                let quiet = now.saturating_sub(last_data.load(Ordering::Relaxed));
                let limit = if started { STALL } else { OPEN_TIMEOUT };
                let stalled = quiet > limit.as_millis() as u64;
                if stopper.is_stopped() || stalled {
                    child.kill();
                    drop(child);
                    drop(reader.join());
                    break if stalled {
                        Outcome::Failed(format!("nothing received for {} s", quiet / 1000))
                    } else {
                        Outcome::Stopped
                    };
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                drop(child);
                drop(reader.join());
                break Outcome::Failed("the reading thread ended".into());
            }
        }
    };
    remove_pid(pids, pid);
    outcome
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

pub(crate) fn open_video(
    spec: &SourceSpec,
    opts: &CameraOptions,
    slot: Arc<FrameSlot>,
    events: Sender<SourceEvent>,
    pids: Arc<Mutex<Vec<u32>>>,
) -> Result<(Worker, String), CaptureError> {
    let kind = SourceKind::Camera;
    let inp = input(spec, kind)?;
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
    let args = inp.args.clone();
    let description = inp.description.clone();
    let worker = worker::start(
        kind,
        description.clone(),
        inp.retry,
        events,
        move |stopper, n| {
            let mut cmd = command(&args, &output);
            let slot = slot.clone();
            let last_data = Arc::new(AtomicU64::new(0));
            let ld = last_data.clone();
            let t0 = Instant::now();
            run_child(
                &mut cmd,
                stopper,
                n,
                &pids,
                t0,
                last_data,
                move |mut out, started| {
                    let frame_bytes = (w * h * 3) as usize;
                    let mut first = true;
                    loop {
                        let mut buf = vec![0u8; frame_bytes];
                        if read_full(&mut out, &mut buf)? < frame_bytes {
                            return Ok(());
                        }
                        let captured = SystemTime::now();
                        ld.store(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
                        let Some(image) = image::RgbImage::from_raw(w, h, buf) else {
                            return Ok(());
                        };
                        if first {
                            first = false;
                            started();
                        }
                        slot.put(VideoFrame { captured, image });
                    }
                },
            )
        },
    )?;
    Ok((worker, description))
}

pub(crate) fn open_audio(
    spec: &SourceSpec,
    chunks: SyncSender<AudioChunk>,
    events: Sender<SourceEvent>,
    overruns: Arc<AtomicU64>,
    pids: Arc<Mutex<Vec<u32>>>,
) -> Result<(Worker, String), CaptureError> {
    let kind = SourceKind::Microphone;
    let inp = input(spec, kind)?;
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
    let args = inp.args.clone();
    let description = inp.description.clone();
    let worker = worker::start(
        kind,
        description.clone(),
        inp.retry,
        events,
        move |stopper, n| {
            let mut cmd = command(&args, &output);
            let chunks = chunks.clone();
            let overruns = overruns.clone();
            let last_data = Arc::new(AtomicU64::new(0));
            let ld = last_data.clone();
            let t0 = Instant::now();
            run_child(
                &mut cmd,
                stopper,
                n,
                &pids,
                t0,
                last_data,
                move |mut out, started| {
                    let mut buf = vec![0u8; CHUNK_SAMPLES * 4];
                    let mut first = true;
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
                        ld.store(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
                        let span =
                            Duration::from_secs_f64(samples.len() as f64 / SAMPLE_RATE as f64);
                        let captured = now.checked_sub(span).unwrap_or(now);
                        let short = samples.len() < CHUNK_SAMPLES;
                        if first {
                            first = false;
                            started();
                        }
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
                },
            )
        },
    )?;
    Ok((worker, description))
}
