//! Audio input: WAV decoding (hound), other formats through the `ffmpeg` CLI, resampling to the
//! model rate with rubato, and energy-based voice-activity gating.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use rubato::{FftFixedIn, Resampler};

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

/// Decode a WAV file (any rate, 8/16/24/32-bit int or float, any channel count → mono mean).
pub fn read_wav(path: &Path) -> Result<Audio> {
    let r = hound::WavReader::open(path)
        .map_err(|e| Error::Media(format!("not a readable WAV file ({e})")))?;
    let spec = r.spec();
    let ch = spec.channels.max(1) as usize;
    let bad = |e: hound::Error| Error::Media(format!("corrupt WAV data ({e})"));
    let inter: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r
            .into_samples::<f32>()
            .collect::<std::result::Result<_, _>>()
            .map_err(bad)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            r.into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<std::result::Result<_, _>>()
                .map_err(bad)?
        }
    };
    let samples = inter
        .chunks(ch)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect();
    Ok(Audio {
        samples,
        sample_rate: spec.sample_rate,
    })
}

/// Run `ffprobe` and return `key=value` lines for the first stream of `kind` ("a" or "v").
pub fn probe(path: &Path, kind: &str, entries: &str) -> Result<Vec<(String, String)>> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            &format!("{kind}:0"),
            "-show_entries",
        ])
        .arg(entries)
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Media(format!("cannot run ffprobe ({e}); install ffmpeg")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Media(format!(
            "ffprobe cannot read it: {}",
            msg.lines().last().unwrap_or("unknown error").trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect())
}

/// Decode the first audio stream of any file ffmpeg understands, at its native rate, to mono.
/// `Ok(None)` when the file has no audio stream.
pub fn read_with_ffmpeg(path: &Path) -> Result<Option<Audio>> {
    let info = probe(path, "a", "stream=sample_rate")?;
    let Some(rate) = info
        .iter()
        .find(|(k, _)| k == "sample_rate")
        .and_then(|(_, v)| v.parse::<u32>().ok())
    else {
        return Ok(None);
    };
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:a:0",
            "-vn",
            "-ac",
            "1",
            "-f",
            "f32le",
            "-acodec",
            "pcm_f32le",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Media(format!("cannot run ffmpeg ({e}); install ffmpeg")))?;
    let mut bytes = Vec::new();
    if let Some(mut so) = child.stdout.take() {
        so.read_to_end(&mut bytes)
            .map_err(|e| Error::Media(format!("reading ffmpeg output: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Media(format!("ffmpeg: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Media(format!(
            "ffmpeg cannot decode the audio: {}",
            msg.lines().last().unwrap_or("unknown error").trim()
        )));
    }
    let samples = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Some(Audio {
        samples,
        sample_rate: rate,
    }))
}

/// Resample mono audio to `to` Hz with rubato's FFT resampler (output delay removed, length
/// `round(len × to / from)`). Returns the input unchanged when the rates already match.
pub fn resample(x: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == to || x.is_empty() {
        return Ok(x.to_vec());
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
        let a = read_wav(&p).unwrap();
        assert_eq!(a.sample_rate, 8000);
        assert_eq!(a.samples.len(), 100);
        assert!((a.samples[0] - 0.25).abs() < 1e-6);
        std::fs::write(&p, b"RIFF garbage").unwrap();
        assert!(read_wav(&p).is_err());
    }
}
