//! Microphones through cpal (ALSA on Linux): any rate, format and channel count → 16 kHz mono.
//!
//! The audio callback only mixes to mono and hands the block over with `try_send` on a bounded
//! channel (a full channel is an overrun, counted); a worker thread resamples (rubato, one
//! stateful resampler per stream, so chunk boundaries are seamless) and sends ~100 ms chunks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, Sample, SampleFormat, SizedSample};
use rubato::{FftFixedIn, Resampler};

use crate::worker::{self, Notifier, Outcome, Retry, Stopper, Worker};
use crate::{
    AudioChunk, CaptureError, SourceEvent, SourceKind, SourceSpec, CHUNK_SAMPLES, OPEN_TIMEOUT,
    SAMPLE_RATE,
};

/// Blocks the callback may have waiting for the worker (a period is ~5–100 ms: seconds of
/// audio at most, bounded).
const BLOCKS: usize = 128;
/// A running stream that delivers nothing for this long is treated as lost.
const STALL: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(100);
/// Chunk times are re-anchored to the wall clock when the sample count drifts this far from it
/// (dropped blocks, device clock drift).
const RESYNC: Duration = Duration::from_millis(150);

/// An ALSA capture device as listed by cpal.
pub(crate) struct AlsaDevice {
    pub device: cpal::Device,
    /// The ALSA PCM id (`default`, `pulse`, `hw:CARD=PCH,DEV=0`): what a config names.
    pub id: String,
    /// Its description's first line.
    pub description: String,
}

/// Runs `f` (which asks alsa-lib something) with alsa-lib's own error lines (`ALSA lib
/// confmisc.c:855:(parse_card) cannot find card '0'`, printed to stderr on every machine without
/// a sound card) routed to our log at debug level instead. alsa-lib's handler for the calling
/// thread writes into a buffer (the `alsa` crate's safe `Output::local_error_handler`); each
/// call starts a fresh one, so the callers here must not nest.
fn alsa_messages_to_log<T>(f: impl FnOnce() -> T) -> T {
    let buffer = ::alsa::Output::local_error_handler().ok();
    let r = f();
    if let Some(b) = buffer {
        b.borrow().buffer_string(|text| {
            for line in String::from_utf8_lossy(text).lines() {
                tracing::debug!(target: "alsa", "{line}");
            }
        });
    }
    r
}

/// The capture devices ALSA knows now (empty when there are none; never an error).
pub(crate) fn devices() -> Vec<AlsaDevice> {
    alsa_messages_to_log(|| {
        let host = cpal::default_host();
        let Ok(devs) = host.input_devices() else {
            return Vec::new();
        };
        devs.map(|d| AlsaDevice::new(d, |d| d.to_string()))
            .collect()
    })
}

impl AlsaDevice {
    /// `d` with its ALSA id (`fallback_id` when cpal cannot tell it) and description.
    fn new(d: cpal::Device, fallback_id: impl FnOnce(&cpal::Device) -> String) -> Self {
        let id = d
            .id()
            .map(|i| i.id().to_string())
            .unwrap_or_else(|_| fallback_id(&d));
        let description = d
            .description()
            .map(|x| x.name().to_string())
            .unwrap_or_else(|_| id.clone());
        Self {
            device: d,
            id,
            description,
        }
    }
}

/// ALSA plugins that the hints list as capture-capable but that are no microphone (rate
/// converters, mixers, other sound systems' bridges, the silent `null`). They can still be opened
/// by name.
const NOT_MICROPHONES: [&str; 11] = [
    "null",
    "lavrate",
    "samplerate",
    "speexrate",
    "speex",
    "jack",
    "oss",
    "upmix",
    "vdownmix",
    "a52",
    "usbstream",
];

/// The capture devices worth offering as microphones, in the order an index refers to.
/// ALSA's `default` comes first when the hints do not list it.
pub(crate) fn microphones() -> Vec<AlsaDevice> {
    let mut mics: Vec<AlsaDevice> = devices()
        .into_iter()
        .filter(|d| {
            let base = d.id.split(':').next().unwrap_or("");
            !NOT_MICROPHONES.contains(&base)
        })
        .collect();
    if let Some(def) = default_device() {
        if !mics.iter().any(|m| m.id == def.id) {
            mics.insert(0, def);
        }
    }
    mics
}

/// The default capture device ("default" on ALSA: whatever the ALSA configuration routes it to).
pub(crate) fn default_device() -> Option<AlsaDevice> {
    alsa_messages_to_log(|| {
        let d = cpal::default_host().default_input_device()?;
        Some(AlsaDevice::new(d, |_| "default".into()))
    })
}

pub(crate) fn pick(spec: &SourceSpec) -> Result<AlsaDevice, String> {
    match spec {
        SourceSpec::Auto => default_device().ok_or_else(|| "no default capture device".into()),
        SourceSpec::Index(i) => microphones()
            .into_iter()
            .nth(*i as usize)
            .ok_or_else(|| format!("no capture device number {i}")),
        SourceSpec::Name(n) => {
            let devs = devices();
            if let Some(pos) = devs
                .iter()
                .position(|d| d.id == *n)
                .or_else(|| devs.iter().position(|d| d.description == *n))
                .or_else(|| {
                    devs.iter()
                        .position(|d| d.description.eq_ignore_ascii_case(n))
                })
            {
                return Ok(devs.into_iter().nth(pos).expect("position is in range"));
            }
            if n == "default" {
                return default_device().ok_or_else(|| "no default capture device".into());
            }
            Err(format!(
                "no capture device named {n:?} (present: {})",
                devs.iter()
                    .map(|d| d.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
        _ => Err(format!("{spec} is not an audio device")),
    }
}

/// The sample rates a device offers among the common ones (empty when it cannot be asked).
pub(crate) fn sample_rates(d: &cpal::Device) -> Vec<u32> {
    const COMMON: [u32; 8] = [
        8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000, 96_000,
    ];
    let Ok(ranges) =
        alsa_messages_to_log(|| d.supported_input_configs().map(|r| r.collect::<Vec<_>>()))
    else {
        return Vec::new();
    };
    COMMON
        .into_iter()
        .filter(|r| {
            ranges
                .iter()
                .any(|c| c.min_sample_rate() <= *r && *r <= c.max_sample_rate())
        })
        .collect()
}

pub(crate) fn open(
    spec: &SourceSpec,
    chunks: SyncSender<AudioChunk>,
    events: Sender<SourceEvent>,
    overruns: Arc<AtomicU64>,
) -> Result<(Worker, String), CaptureError> {
    let kind = SourceKind::Microphone;
    let dev = pick(spec).map_err(|m| CaptureError::unavailable(kind, m))?;
    let description = if dev.description == dev.id {
        dev.id.clone()
    } else {
        format!("{} ({})", dev.id, dev.description)
    };
    let spec = spec.clone();
    let mut first = Some(dev);
    let worker = worker::start(
        kind,
        description.clone(),
        Retry::Reopen,
        events,
        move |stopper, n| {
            let dev = match first.take() {
                Some(d) => d,
                None => match pick(&spec) {
                    Ok(d) => d,
                    Err(m) => return Outcome::Failed(m),
                },
            };
            run(&dev, &chunks, &overruns, stopper, n)
        },
    )?;
    Ok((worker, description))
}

/// One block from the audio callback: when it was handed over and its mono samples.
struct Block {
    at: SystemTime,
    samples: Vec<f32>,
}

fn mono<T>(data: &[T], channels: usize) -> Vec<f32>
where
    T: Sample,
    f32: FromSample<T>,
{
    if channels <= 1 {
        return data.iter().map(|s| f32::from_sample(*s)).collect();
    }
    let k = 1.0 / channels as f32;
    data.chunks_exact(channels)
        .map(|f| f.iter().map(|s| f32::from_sample(*s)).sum::<f32>() * k)
        .collect()
}

fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    blocks: SyncSender<Block>,
    errors: SyncSender<cpal::Error>,
    overruns: Arc<AtomicU64>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = config.channels as usize;
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            // Never blocks: a full channel drops the block and counts it.
            let block = Block {
                at: SystemTime::now(),
                samples: mono(data, channels),
            };
            if let Err(TrySendError::Full(_)) = blocks.try_send(block) {
                overruns.fetch_add(1, Ordering::Relaxed);
            }
        },
        move |e| {
            let _ = errors.try_send(e);
        },
        Some(OPEN_TIMEOUT),
    )
}

/// One attempt at capturing from `dev`: open its stream, then hand its audio on as chunks until
/// stop is asked, the device goes away or it falls silent.
fn run(
    dev: &AlsaDevice,
    chunks: &SyncSender<AudioChunk>,
    overruns: &Arc<AtomicU64>,
    stopper: &Stopper,
    n: &mut Notifier,
) -> Outcome {
    let open = match OpenStream::open(dev, overruns) {
        Ok(s) => s,
        Err(message) => return Outcome::Failed(message),
    };
    let mut conv = match Converter::new(open.rate) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e),
    };
    let opened = Instant::now();
    let mut last = None::<Instant>;
    let outcome = loop {
        if stopper.is_stopped() {
            break Outcome::Stopped;
        }
        if let Some(failure) = stream_errors(&open.errors, dev, overruns) {
            break failure;
        }
        match open.blocks.recv_timeout(POLL) {
            Ok(b) => {
                last = Some(Instant::now());
                n.started();
                conv.push(b.at, &b.samples, |c| {
                    if let Err(TrySendError::Full(_)) = chunks.try_send(c) {
                        overruns.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            Err(RecvTimeoutError::Timeout) => {
                let quiet = last.map_or(opened.elapsed(), |t| t.elapsed());
                let limit = if last.is_some() { STALL } else { OPEN_TIMEOUT };
                if quiet > limit {
                    break Outcome::Failed(format!("no audio for {} s", quiet.as_secs()));
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                break Outcome::Failed("the audio stream ended".into());
            }
        }
    };
    drop(open);
    outcome
}

/// The errors the stream reported since the last look: an xrun is counted as an overrun, a
/// device that went away ends the attempt.
fn stream_errors(
    errors: &Receiver<cpal::Error>,
    dev: &AlsaDevice,
    overruns: &AtomicU64,
) -> Option<Outcome> {
    while let Ok(e) = errors.try_recv() {
        match e.kind() {
            cpal::ErrorKind::Xrun => {
                overruns.fetch_add(1, Ordering::Relaxed);
            }
            cpal::ErrorKind::DeviceNotAvailable
            | cpal::ErrorKind::StreamInvalidated
            | cpal::ErrorKind::HostUnavailable => return Some(Outcome::Failed(e.to_string())),
            _ => tracing::debug!(device = %dev.id, "audio stream: {e}"),
        }
    }
    None
}

/// A playing input stream, the blocks and errors its callbacks send, and its sample rate.
struct OpenStream {
    /// First, so that it is dropped (and stops calling back) before the channels are.
    _stream: cpal::Stream,
    blocks: Receiver<Block>,
    errors: Receiver<cpal::Error>,
    rate: u32,
}

impl OpenStream {
    /// Open `dev` in its default format, asking for short periods (and taking the default ones
    /// when those are refused), and start it.
    fn open(dev: &AlsaDevice, overruns: &Arc<AtomicU64>) -> Result<Self, String> {
        alsa_messages_to_log(|| Self::open_routed(dev, overruns))
    }

    fn open_routed(dev: &AlsaDevice, overruns: &Arc<AtomicU64>) -> Result<Self, String> {
        let supported = dev
            .device
            .default_input_config()
            .map_err(|e| format!("{}: {e}", dev.id))?;
        let mut config = short_periods(&supported);
        let rate = config.sample_rate;
        let (btx, blocks) = mpsc::sync_channel::<Block>(BLOCKS);
        let (etx, errors) = mpsc::sync_channel::<cpal::Error>(16);
        let build_with = |config: cpal::StreamConfig| {
            let (b, e, o) = (btx.clone(), etx.clone(), overruns.clone());
            build_any(&dev.device, supported.sample_format(), config, b, e, o)
        };
        let stream = match build_with(config) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(device = %dev.id, "short periods refused ({e}); using the default");
                config.buffer_size = cpal::BufferSize::Default;
                build_with(config).map_err(|e| format!("{}: {e}", dev.id))?
            }
        };
        drop((btx, etx));
        stream.play().map_err(|e| format!("{}: {e}", dev.id))?;
        tracing::info!(
            device = %dev.id,
            "microphone {} Hz, {} channel(s), {}, buffer {:?}",
            rate,
            supported.channels(),
            supported.sample_format(),
            config.buffer_size
        );
        Ok(Self {
            _stream: stream,
            blocks,
            errors,
            rate,
        })
    }
}

/// The device's default configuration with short periods (~20 ms): left to itself a sound
/// server's plugin may pick periods of a second or more, which would delay every chunk by that
/// much.
fn short_periods(supported: &cpal::SupportedStreamConfig) -> cpal::StreamConfig {
    let mut config = supported.config();
    let want = (config.sample_rate / 50).max(64);
    config.buffer_size = match *supported.buffer_size() {
        cpal::SupportedBufferSize::Range { min, max } if min <= max => {
            cpal::BufferSize::Fixed(want.clamp(min, max))
        }
        _ => cpal::BufferSize::Fixed(want),
    };
    config
}

/// [`build`] for the device's sample format.
fn build_any(
    d: &cpal::Device,
    format: SampleFormat,
    config: cpal::StreamConfig,
    b: SyncSender<Block>,
    e: SyncSender<cpal::Error>,
    o: Arc<AtomicU64>,
) -> Result<cpal::Stream, cpal::Error> {
    match format {
        SampleFormat::F32 => build::<f32>(d, config, b, e, o),
        SampleFormat::I16 => build::<i16>(d, config, b, e, o),
        SampleFormat::I32 => build::<i32>(d, config, b, e, o),
        SampleFormat::U8 => build::<u8>(d, config, b, e, o),
        SampleFormat::U16 => build::<u16>(d, config, b, e, o),
        SampleFormat::I8 => build::<i8>(d, config, b, e, o),
        SampleFormat::U32 => build::<u32>(d, config, b, e, o),
        SampleFormat::F64 => build::<f64>(d, config, b, e, o),
        SampleFormat::I24 => build::<cpal::I24>(d, config, b, e, o),
        other => Err(cpal::Error::with_message(
            cpal::ErrorKind::UnsupportedConfig,
            format!("unsupported sample format {other}"),
        )),
    }
}

/// Mono blocks at the device rate → 16 kHz chunks of [`CHUNK_SAMPLES`], with the wall-clock
/// time of each chunk's first sample.
pub(crate) struct Converter {
    rate: u32,
    rs: Option<FftFixedIn<f32>>,
    pending: Vec<f32>,
    /// Output samples still to discard (the resampler's delay).
    skip: usize,
    out: Vec<f32>,
    /// Index (at 16 kHz) of `out[0]` since `origin`.
    out_index: u64,
    /// Input samples consumed since `origin`.
    n_in: u64,
    origin: Option<SystemTime>,
    /// The last chunk's capture time: a resync that moves `origin` back (a device that
    /// delivered a burst late, then on time) must not make capture times go back, which the
    /// fuser and the stored samples rely on (found by the source contract test,
    /// `tests/common/compliance.rs`: ALSA's null device went back by 60 ms).
    last: Option<SystemTime>,
}

impl Converter {
    pub(crate) fn new(rate: u32) -> Result<Self, String> {
        if rate == 0 {
            return Err("the device reports a sample rate of 0".into());
        }
        let rs = if rate == SAMPLE_RATE {
            None
        } else {
            Some(
                FftFixedIn::<f32>::new(rate as usize, SAMPLE_RATE as usize, 1024, 2, 1)
                    .map_err(|e| format!("resampling {rate} Hz: {e}"))?,
            )
        };
        let skip = rs.as_ref().map_or(0, |r| r.output_delay());
        Ok(Self {
            rate,
            rs,
            pending: Vec::new(),
            skip,
            out: Vec::with_capacity(CHUNK_SAMPLES * 2),
            out_index: 0,
            n_in: 0,
            origin: None,
            last: None,
        })
    }

    /// Add a block whose last sample was captured at `at`; complete chunks go to `emit`.
    pub(crate) fn push(&mut self, at: SystemTime, block: &[f32], mut emit: impl FnMut(AudioChunk)) {
        if block.is_empty() {
            return;
        }
        let span = Duration::from_secs_f64(block.len() as f64 / self.rate as f64);
        let first = at.checked_sub(span).unwrap_or(at);
        let elapsed = Duration::from_secs_f64(self.n_in as f64 / self.rate as f64);
        let expected = self.origin.map(|o| o + elapsed);
        let off = expected.map(|e| match first.duration_since(e) {
            Ok(d) => d,
            Err(e) => e.duration(),
        });
        if off.is_none_or(|d| d > RESYNC) {
            self.origin = Some(first.checked_sub(elapsed).unwrap_or(first));
        }
        self.n_in += block.len() as u64;
        match &mut self.rs {
            None => self.out.extend_from_slice(block),
            Some(rs) => {
                self.pending.extend_from_slice(block);
                let mut pos = 0;
                loop {
                    let need = rs.input_frames_next();
                    if self.pending.len() - pos < need {
                        break;
                    }
                    match rs.process(&[&self.pending[pos..pos + need]], None) {
                        Ok(v) => {
                            let mut o = &v[0][..];
                            let k = self.skip.min(o.len());
                            self.skip -= k;
                            o = &o[k..];
                            self.out.extend_from_slice(o);
                        }
                        Err(e) => tracing::warn!("resampling: {e}"),
                    }
                    pos += need;
                }
                self.pending.drain(..pos);
            }
        }
        let origin = self.origin.unwrap_or(first);
        while self.out.len() >= CHUNK_SAMPLES {
            let samples: Vec<f32> = self
                .out
                .drain(..CHUNK_SAMPLES)
                .map(|s| s.clamp(-1.0, 1.0))
                .collect();
            let t = Duration::from_secs_f64(self.out_index as f64 / SAMPLE_RATE as f64);
            self.out_index += CHUNK_SAMPLES as u64;
            let captured = self.last.map_or(origin + t, |l| l.max(origin + t));
            self.last = Some(captured);
            emit(AudioChunk { captured, samples });
        }
    }
}

#[cfg(test)]
mod tests {

    /// A block that arrives late moves the origin forward, the next one on time moves it back:
    /// capture times stay in order all the same.
    #[test]
    fn capture_times_never_go_back_across_a_resync() {
        let mut c = Converter::new(SAMPLE_RATE).unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let block = vec![0.1f32; CHUNK_SAMPLES];
        let mut out = Vec::new();
        let step = Duration::from_millis(100);
        c.push(t0 + step, &block, |k| out.push(k));
        c.push(t0 + 2 * step + Duration::from_millis(400), &block, |k| {
            out.push(k)
        });
        c.push(t0 + 3 * step, &block, |k| out.push(k));
        c.push(t0 + 4 * step, &block, |k| out.push(k));
        assert!(out.len() >= 3);
        assert!(
            out.windows(2).all(|w| w[1].captured >= w[0].captured),
            "{:?}",
            out.iter().map(|k| k.captured).collect::<Vec<_>>()
        );
    }

    use super::*;

    fn run_converter(rate: u32, secs: f64, freq: f32) -> Vec<AudioChunk> {
        let mut c = Converter::new(rate).unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let total = (rate as f64 * secs) as usize;
        let block = (rate / 100) as usize * 2 + 7; // odd sizes, like real periods
        let mut out = Vec::new();
        let mut i = 0;
        while i < total {
            let n = block.min(total - i);
            let x: Vec<f32> = (i..i + n)
                .map(|k| 0.5 * (2.0 * std::f32::consts::PI * freq * k as f32 / rate as f32).sin())
                .collect();
            let at = t0 + Duration::from_secs_f64((i + n) as f64 / rate as f64);
            c.push(at, &x, |ch| out.push(ch));
            i += n;
        }
        out
    }

    #[test]
    fn any_rate_becomes_seamless_16k_chunks_with_consistent_times() {
        for rate in [16_000, 44_100, 48_000, 22_050] {
            let chunks = run_converter(rate, 3.0, 440.0);
            let n: usize = chunks.iter().map(|c| c.samples.len()).sum();
            // All but the resampler's tail (< one chunk + its FFT block) comes out.
            assert!(
                (48_000 - 2 * CHUNK_SAMPLES..=48_000).contains(&n),
                "{rate}: {n}"
            );
            assert!(chunks.iter().all(|c| c.samples.len() == CHUNK_SAMPLES));
            // Times advance by exactly 100 ms from the first sample's time.
            let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
            for (k, c) in chunks.iter().enumerate() {
                let want = t0 + Duration::from_millis(100 * k as u64);
                let d = c
                    .captured
                    .duration_since(want)
                    .unwrap_or_else(|e| e.duration());
                assert!(
                    d < Duration::from_millis(2),
                    "{rate}: chunk {k} off by {d:?}"
                );
            }
            // A 440 Hz sine at amplitude 0.5 stays one: RMS ≈ 0.354 with no clicks between
            // chunks (the resampler is stateful across chunk boundaries).
            let all: Vec<f32> = chunks
                .iter()
                .flat_map(|c| c.samples.iter().copied())
                .collect();
            let body = &all[1600..all.len() - 1600];
            let rms = (body.iter().map(|x| x * x).sum::<f32>() / body.len() as f32).sqrt();
            assert!((rms - 0.3536).abs() < 0.01, "{rate}: rms {rms}");
            let max_step = body
                .windows(2)
                .map(|w| (w[1] - w[0]).abs())
                .fold(0.0, f32::max);
            let ideal = 0.5 * 2.0 * std::f32::consts::PI * 440.0 / 16_000.0;
            assert!(
                max_step < ideal * 1.1,
                "{rate}: a jump of {max_step} (ideal {ideal})"
            );
        }
    }

    #[test]
    fn a_gap_reanchors_the_times() {
        let mut c = Converter::new(16_000).unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(50);
        let mut out = Vec::new();
        c.push(t0 + Duration::from_millis(100), &[0.1; 1600], |ch| {
            out.push(ch)
        });
        // The next block arrives 2 s later than its samples account for (blocks were dropped).
        c.push(t0 + Duration::from_millis(2200), &[0.1; 1600], |ch| {
            out.push(ch)
        });
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].captured, t0);
        let d = out[1].captured.duration_since(t0).unwrap();
        assert!((d.as_secs_f64() - 2.1).abs() < 0.01, "{d:?}");
    }
}
