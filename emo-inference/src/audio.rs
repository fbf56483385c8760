//! Audio input: WAV decoding (hound), other formats through the `ffmpeg` CLI, resampling to the
//! model rate with rubato, and energy-based voice-activity gating.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use rubato::{FftFixedIn, Resampler};

use crate::ffmpeg::{self, FfChild};
use crate::limits::{MediaLimits, MAX_CHANNELS};
use crate::{Error, Result};

/// Voice-activity gate. A 25 ms frame (10 ms hop) is "active" when its RMS level is at least
/// `frame_dbfs` (default −40 dBFS, i.e. 1 % of full scale); a window counts as voiced when at
/// least `min_active_fraction` (default 10 %) of its frames are active. Synthetic digital silence
/// and room noise stay well below −40 dBFS; normal speech peaks at −30…−10 dBFS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    pub frame_dbfs: f32,
    pub min_active_fraction: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            frame_dbfs: -40.0,
            min_active_fraction: 0.10,
        }
    }
}

/// RMS level in dBFS (−inf floor clamped to −120).
pub fn dbfs(rms: f32) -> f32 {
    (20.0 * rms.max(1e-6).log10()).max(-120.0)
}

impl VadConfig {
    /// Whether `x` (at `sample_rate`) contains voice activity.
    pub fn is_voiced(&self, x: &[f32], sample_rate: u32) -> bool {
        let frame = (sample_rate as usize * 25 / 1000).max(1);
        let hop = (sample_rate as usize / 100).max(1);
        if x.len() < frame {
            return dbfs(crate::features::rms(x)) >= self.frame_dbfs;
        }
        let n = 1 + (x.len() - frame) / hop;
        let active = (0..n)
            .filter(|&i| {
                dbfs(crate::features::rms(&x[i * hop..i * hop + frame])) >= self.frame_dbfs
            })
            .count();
        active as f32 >= self.min_active_fraction * n as f32
    }
}

/// Mono samples in [-1, 1] and their rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Audio {
    pub fn duration(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate.max(1) as f64
    }
}

/// Decode a WAV file (8–192 kHz, 8/16/24/32-bit int or float, up to 64 channels → mono mean).
/// The header is checked before anything is allocated, and decoding stops with an error past
/// `limits.max_seconds`: a crafted header (a 1 Hz rate, a huge length) is an error, never an
/// allocation that scales with it.
pub fn read_wav(path: &Path, limits: &MediaLimits) -> Result<Audio> {
    let r = hound::WavReader::open(path)
        .map_err(|e| Error::Media(format!("not a readable WAV file ({e})")))?;
    decode_wav(r, limits)
}

/// [`read_wav`] on a file already in memory (the fuzz targets and their replay test use it).
pub fn read_wav_bytes(bytes: &[u8], limits: &MediaLimits) -> Result<Audio> {
    let r = hound::WavReader::new(std::io::Cursor::new(bytes))
        .map_err(|e| Error::Media(format!("not a readable WAV file ({e})")))?;
    decode_wav(r, limits)
}

fn decode_wav<R: Read>(r: hound::WavReader<R>, limits: &MediaLimits) -> Result<Audio> {
    let spec = r.spec();
    MediaLimits::check_rate(spec.sample_rate)?;
    if spec.channels == 0 || spec.channels > MAX_CHANNELS {
        return Err(Error::Media(format!(
            "unsupported channel count {} (accepted: 1–{MAX_CHANNELS})",
            spec.channels
        )));
    }
    let ch = spec.channels as usize;
    let max_frames = limits.max_samples(spec.sample_rate);
    if r.duration() as usize > max_frames {
        return Err(limits.too_long());
    }
    let max_values = max_frames.saturating_mul(ch);
    let bad = |e: hound::Error| Error::Media(format!("corrupt WAV data ({e})"));
    // Mono mean computed while reading: memory is one f32 per frame, whatever the channel count.
    let mut samples: Vec<f32> = Vec::with_capacity((r.duration() as usize).min(max_frames));
    let mut acc = 0.0f32;
    let mut k = 0usize;
    let mut push = |v: f32| {
        acc += v;
        k += 1;
        if k == ch {
            samples.push(acc / ch as f32);
            acc = 0.0;
            k = 0;
        }
    };
    let mut n = 0usize;
    match spec.sample_format {
        hound::SampleFormat::Float => {
            for s in r.into_samples::<f32>() {
                n += 1;
                if n > max_values {
                    return Err(limits.too_long());
                }
                push(full_scale(s.map_err(bad)?));
            }
        }
        hound::SampleFormat::Int => {
            if !(8..=32).contains(&spec.bits_per_sample) {
                return Err(Error::Media(format!(
                    "unsupported sample size {} bits",
                    spec.bits_per_sample
                )));
            }
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            for s in r.into_samples::<i32>() {
                n += 1;
                if n > max_values {
                    return Err(limits.too_long());
                }
                push(s.map_err(bad)? as f32 * scale);
            }
        }
    }
    Ok(Audio {
        samples,
        sample_rate: spec.sample_rate,
    })
}

/// Run `ffprobe` and return `key=value` lines for the first stream of `kind` ("a" or "v").
pub fn probe(
    path: &Path,
    kind: &str,
    entries: &str,
    limits: &MediaLimits,
) -> Result<Vec<(String, String)>> {
    probe_streams(path, Some(kind), entries, limits)
}

/// `key=value` lines of `ffprobe` for every stream (in order).
pub fn probe_all(
    path: &Path,
    entries: &str,
    limits: &MediaLimits,
) -> Result<Vec<(String, String)>> {
    probe_streams(path, None, entries, limits)
}

fn probe_streams(
    path: &Path,
    kind: Option<&str>,
    entries: &str,
    limits: &MediaLimits,
) -> Result<Vec<(String, String)>> {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error"]);
    if let Some(k) = kind {
        cmd.args(["-select_streams", &format!("{k}:0")]);
    }
    let (out, status, err) = ffmpeg::output(
        cmd.arg("-show_entries")
            .arg(entries)
            .args(["-of", "default=noprint_wrappers=1"])
            .arg(path),
        limits.ffmpeg_deadline.min(PROBE_DEADLINE),
        64 * 1024,
    )?;
    if !status.success() {
        return Err(Error::Media(format!(
            "ffprobe cannot read it: {}",
            ffmpeg::last_line(&err)
        )));
    }
    Ok(parse_probe(&out))
}

/// The `key=value` lines of ffprobe's `default=noprint_wrappers=1` output (what a file declares
/// about itself, so it is parsed as untrusted input).
pub fn parse_probe(out: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Longest `ffprobe` may take on one file.
const PROBE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Decode the first audio stream of any file ffmpeg understands to mono, at `rate` Hz (ffmpeg
/// resamples) or at its native rate when `rate` is `None`. `Ok(None)` when the file has no audio
/// stream. The output is read with a cap of `limits.max_seconds` (the child is killed past it),
/// stderr is drained, and the child is killed at the deadline.
pub fn read_with_ffmpeg(
    path: &Path,
    rate: Option<u32>,
    limits: &MediaLimits,
) -> Result<Option<Audio>> {
    let info = probe(path, "a", "stream=sample_rate", limits)?;
    let Some(native) = info
        .iter()
        .find(|(k, _)| k == "sample_rate")
        .and_then(|(_, v)| v.parse::<u32>().ok())
    else {
        return Ok(None);
    };
    let rate = rate.unwrap_or(native);
    MediaLimits::check_rate(rate)?;
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-vn", "-ac", "1", "-ar"])
        .arg(rate.to_string())
        .args(["-f", "f32le", "-acodec", "pcm_f32le", "-"]);
    let mut child = FfChild::spawn(&mut cmd, Some(limits.ffmpeg_deadline))?;
    let samples = read_f32le(child.stdout()?, rate, limits)?;
    let timed_out = child.timed_out();
    let (status, err) = child.finish()?;
    if timed_out || !status.success() {
        return Err(if timed_out {
            Error::Media("ffmpeg took too long decoding the audio and was stopped".into())
        } else {
            Error::Media(format!(
                "ffmpeg cannot decode the audio: {}",
                ffmpeg::last_line(&err)
            ))
        });
    }
    Ok(Some(Audio {
        samples,
        sample_rate: rate,
    }))
}

/// Mono samples from ffmpeg's `f32le` output stream at `rate`: at most `limits.max_seconds` of
/// them (one byte more is an error, so the stream is never read past the limit); a trailing
/// partial sample is dropped.
pub fn read_f32le(stream: impl Read, rate: u32, limits: &MediaLimits) -> Result<Vec<f32>> {
    let max_bytes = limits.max_samples(rate).saturating_mul(4);
    let mut bytes = Vec::new();
    stream
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Media(format!("reading ffmpeg output: {e}")))?;
    if bytes.len() > max_bytes {
        return Err(limits.too_long());
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| full_scale(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        .collect())
}

/// A decoded float sample as the rest of the pipeline expects it: within [-1, 1] (a float file
/// may hold louder values; they clip, as on any converter) and never NaN. A float WAV holding NaN
/// or 1e38 made the resampler's FFT panic (found by the `wav` fuzz target).
fn full_scale(v: f32) -> f32 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(-1.0, 1.0)
    }
}

/// Resample mono audio to `to` Hz with rubato's FFT resampler (output delay removed, length
/// `round(len × to / from)`). Returns the input unchanged when the rates already match.
pub fn resample(x: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == to || x.is_empty() {
        return Ok(x.to_vec());
    }
    // The output length and rubato's filter scale with the rates: refuse absurd ones.
    MediaLimits::check_rate(from)?;
    MediaLimits::check_rate(to)?;
    // rubato panics on a spectrum that is not finite; decoded audio never is (`full_scale`).
    if !x.iter().all(|v| v.is_finite()) {
        return Err(Error::Media(
            "audio holds samples that are not numbers".into(),
        ));
    }
    let err =
        |e: &dyn std::fmt::Display| Error::Media(format!("resampling {from} Hz → {to} Hz: {e}"));
    let chunk = 1024;
    let mut rs =
        FftFixedIn::<f32>::new(from as usize, to as usize, chunk, 2, 1).map_err(|e| err(&e))?;
    let want = (x.len() as f64 * to as f64 / from as f64).round() as usize;
    let delay = rs.output_delay();
    let mut out: Vec<f32> = Vec::with_capacity(want + delay + chunk);
    let mut pos = 0;
    while pos < x.len() {
        let need = rs.input_frames_next();
        let r = if x.len() - pos >= need {
            let v = rs
                .process(&[&x[pos..pos + need]], None)
                .map_err(|e| err(&e))?;
            pos += need;
            v
        } else {
            let v = rs
                .process_partial(Some(&[&x[pos..]]), None)
                .map_err(|e| err(&e))?;
            pos = x.len();
            v
        };
        out.extend_from_slice(&r[0]);
    }
    while out.len() < want + delay {
        let r = rs
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| err(&e))?;
        if r[0].is_empty() {
            break;
        }
        out.extend_from_slice(&r[0]);
    }
    let end = (delay + want).min(out.len());
    let mut v = out[delay.min(end)..end].to_vec();
    v.resize(want, 0.0);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `wav` fuzz target: a float WAV holding NaN, infinity or values far past full
    /// scale made the resampler panic (rubato's FFT) in the analysis of an upload.
    #[test]
    fn float_samples_that_are_not_audio_are_clipped_not_a_panic() {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
        let odd = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e38, -1e38, 0.5];
        for i in 0..4000 {
            w.write_sample(odd[i % odd.len()]).unwrap();
        }
        w.finalize().unwrap();
        let bytes = buf.into_inner();
        let a = read_wav_bytes(&bytes, &MediaLimits::default()).unwrap();
        assert_eq!(&a.samples[..6], &[0.0, 1.0, -1.0, 1.0, -1.0, 0.5]);
        let y = resample(&a.samples, 8000, 16000).unwrap();
        assert_eq!(y.len(), 8000);
        assert!(y.iter().all(|v| v.is_finite()));
        // ffmpeg's f32le output carries whatever the file held, too.
        let raw: Vec<u8> = odd.iter().flat_map(|v| v.to_le_bytes()).collect();
        let x = read_f32le(&raw[..], 16000, &MediaLimits::default()).unwrap();
        assert_eq!(x, [0.0, 1.0, -1.0, 1.0, -1.0, 0.5]);
        // The resampler itself refuses what it cannot transform.
        assert!(resample(&[0.0, f32::NAN, 0.0], 8000, 16000).is_err());
    }

    #[test]
    fn resample_keeps_a_tone() {
        let from = 44100;
        let x: Vec<f32> = (0..from)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / from as f32).sin())
            .collect();
        let y = resample(&x, from, 16000).unwrap();
        assert_eq!(y.len(), 16000);
        // Compare against the ideal tone away from the edges.
        let err: f32 = (2000..14000)
            .map(|i| (y[i] - (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16000.0).sin()).abs())
            .fold(0.0, f32::max);
        assert!(err < 0.02, "max error {err}");
        assert_eq!(resample(&x[..10], 16000, 16000).unwrap().len(), 10);
    }

    #[test]
    fn vad_gate() {
        let vad = VadConfig::default();
        let silence = vec![0.0f32; 16000];
        assert!(!vad.is_voiced(&silence, 16000));
        let noise: Vec<f32> = (0..16000)
            .map(|i| ((i * 7919 % 101) as f32 / 101.0 - 0.5) * 0.002)
            .collect();
        assert!(!vad.is_voiced(&noise, 16000));
        let tone: Vec<f32> = (0..16000).map(|i| 0.1 * (i as f32 * 0.2).sin()).collect();
        assert!(vad.is_voiced(&tone, 16000));
        assert!((dbfs(1.0)).abs() < 1e-6 && (dbfs(0.01) + 40.0).abs() < 1e-4);
    }

    #[test]
    fn wav_roundtrip_stereo_to_mono() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        for _ in 0..100 {
            w.write_sample(16384i16).unwrap();
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        let lim = MediaLimits::default();
        let a = read_wav(&p, &lim).unwrap();
        assert_eq!(a.sample_rate, 8000);
        assert_eq!(a.samples.len(), 100);
        assert!((a.samples[0] - 0.25).abs() < 1e-6);
        std::fs::write(&p, b"RIFF garbage").unwrap();
        assert!(read_wav(&p, &lim).is_err());
    }

    /// A valid 16-bit mono WAV of `n` samples whose header declares `rate`.
    fn wav_with_rate(p: &Path, rate: u32, n: usize) {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(p, spec).unwrap();
        for i in 0..n {
            w.write_sample(((i % 100) as i16 - 50) * 100).unwrap();
        }
        w.finalize().unwrap();
        // Patch the rate (bytes 24..28) and the byte rate (28..32) of the canonical header.
        let mut b = std::fs::read(p).unwrap();
        b[24..28].copy_from_slice(&rate.to_le_bytes());
        b[28..32].copy_from_slice(&rate.wrapping_mul(2).to_le_bytes());
        std::fs::write(p, b).unwrap();
    }

    #[test]
    fn absurd_sample_rates_are_errors_not_allocations() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let lim = MediaLimits::default();
        for rate in [0u32, 1, 7_999, 192_001, u32::MAX] {
            wav_with_rate(&p, rate, 1_000_000);
            // hound itself refuses some (an inconsistent byte rate); either way, an error.
            let e = read_wav(&p, &lim).unwrap_err().to_string();
            assert!(
                e.contains("sample rate") || e.contains("not a readable WAV"),
                "{rate}: {e}"
            );
            let e = resample(&[0.0; 1000], rate, 16000).unwrap_err().to_string();
            assert!(e.contains("sample rate"), "{rate}: {e}");
        }
        wav_with_rate(&p, 8_000, 1000);
        assert_eq!(read_wav(&p, &lim).unwrap().sample_rate, 8_000);
    }

    #[test]
    fn wav_longer_than_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        wav_with_rate(&p, 8_000, 8_000 * 3);
        let lim = MediaLimits {
            max_seconds: 2.0,
            ..MediaLimits::default()
        };
        let e = read_wav(&p, &lim).unwrap_err().to_string();
        assert!(e.contains("longer than the limit"), "{e}");
        let ok = MediaLimits {
            max_seconds: 3.0,
            ..MediaLimits::default()
        };
        assert_eq!(read_wav(&p, &ok).unwrap().samples.len(), 24_000);
    }
}
