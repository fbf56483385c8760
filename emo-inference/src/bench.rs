//! `emod bench`: face pipeline frames/s (one face and four faces in a 640×480 frame, detector,
//! crop and classifier timed separately), speech real-time factor, feature extraction speed and
//! the ratio to librosa's MFCC measured in the same run. Warm-up, then the median of repeated
//! runs. Run it with one intra-op thread for the per-core figures.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image::imageops::FilterType;
use image::{Rgb, RgbImage};
use serde::Serialize;

use crate::engine::Engine;
use crate::face::FaceTimings;
use crate::features::{Dct, FeatureExtractor};
use crate::speech::SpeechModel;
use crate::{Error, Result};

/// Public-domain face fixture (NASA portrait from scikit-image).
pub const FACE_FIXTURE: &str = "astronaut.jpg";
/// Synthetic speech fixture (espeak-ng), 16 kHz mono.
pub const SPEECH_FIXTURE: &str = "speech.wav";

/// Where the benchmark reads its fixtures: `EMO_BENCH_FIXTURES`, else this crate's
/// `tests/fixtures` in the source checkout. They are read at run time, so the daemon binary
/// carries no test data.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("EMO_BENCH_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

fn fixture(name: &str) -> Result<Vec<u8>> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).map_err(|e| {
        Error::Media(format!(
            "bench fixture {}: {e} (EMO_BENCH_FIXTURES names a directory with {FACE_FIXTURE} and {SPEECH_FIXTURE})",
            path.display()
        ))
    })
}

/// The librosa timing script, run from the source checkout (never compiled in).
fn librosa_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/librosa_mfcc.py")
}
/// Seconds of audio used for the speech and feature timings.
pub const AUDIO_SECONDS: usize = 60;
/// MFCC coefficients for the feature timing (as the librosa script).
pub const N_MFCC: usize = 40;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchReport {
    pub face_pipeline_fps: f64,
    pub face_pipeline_fps_4faces: f64,
    pub faces_found: usize,
    pub faces_found_4faces: usize,
    pub face_detect_ms: f64,
    pub face_crop_ms: f64,
    pub face_classify_ms: f64,
    pub face_detect_ms_4faces: f64,
    pub face_crop_ms_4faces: f64,
    pub face_classify_ms_4faces: f64,
    pub speech_realtime_factor: f64,
    pub features_realtime_factor: f64,
    pub logmel_window_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub librosa_mfcc_realtime_factor: Option<f64>,
    /// features_realtime_factor / librosa_mfcc_realtime_factor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features_vs_librosa: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub librosa_error: Option<String>,
    pub iterations: usize,
    pub intra_threads: usize,
    /// The expression model in each precision it ships, timed side by side in this run.
    pub expression_precisions: Vec<PrecisionTiming>,
    /// The precision the engine runs (and why).
    pub expression_precision_chosen: String,
}

/// Classifying one face (with its mirror image when the model uses TTA) in one precision.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PrecisionTiming {
    pub precision: String,
    /// Median milliseconds per face, TTA included.
    pub classify_ms: f64,
    /// `classify_ms` of this precision / that of the engine's chosen precision.
    pub ratio_to_chosen: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn face_image() -> Result<RgbImage> {
    Ok(image::load_from_memory(&fixture(FACE_FIXTURE)?)
        .map_err(|e| Error::Media(format!("bench fixture: {e}")))?
        .to_rgb8())
}

/// A 640×480 frame with one face (the portrait scaled into the middle) or four faces (four
/// face-centred crops in a 2×2 grid).
pub fn bench_frame(faces: usize) -> Result<RgbImage> {
    let src = face_image()?;
    let mut frame = RgbImage::from_pixel(640, 480, Rgb([90, 90, 90]));
    if faces <= 1 {
        let s = image::imageops::resize(&src, 420, 420, FilterType::Triangle);
        image::imageops::overlay(&mut frame, &s, 110, 30);
    } else {
        // The face is around (113, 64) of the 256×256 portrait.
        let crop = image::imageops::crop_imm(&src, 58, 4, 112, 112).to_image();
        let s = image::imageops::resize(&crop, 236, 236, FilterType::Triangle);
        for (x, y) in [(42, 2), (362, 2), (42, 242), (362, 242)] {
            image::imageops::overlay(&mut frame, &s, x, y);
        }
    }
    Ok(frame)
}

/// 16 kHz mono test speech tiled to `seconds`.
pub fn bench_audio(seconds: usize) -> Result<Vec<f32>> {
    let r = hound::WavReader::new(std::io::Cursor::new(fixture(SPEECH_FIXTURE)?))
        .map_err(|e| Error::Media(format!("bench fixture: {e}")))?;
    let base: Vec<f32> = r
        .into_samples::<i16>()
        .map(|s| s.unwrap_or(0) as f32 / 32768.0)
        .collect();
    let n = seconds * 16000;
    Ok(base.iter().copied().cycle().take(n).collect())
}

fn time_faces(
    engine: &Engine,
    frame: &RgbImage,
    iters: usize,
) -> Result<(f64, FaceTimings, usize)> {
    let fp = engine.faces()?;
    let mut found = 0;
    for _ in 0..3 {
        found = fp.analyze(frame)?.len();
    }
    let (mut tot, mut d, mut c, mut k) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..iters {
        let t0 = Instant::now();
        let (_, t) = fp.analyze_timed(frame)?;
        tot.push(t0.elapsed().as_secs_f64());
        d.push(t.detect.as_secs_f64());
        c.push(t.crop.as_secs_f64());
        k.push(t.classify.as_secs_f64());
    }
    let timings = FaceTimings {
        detect: Duration::from_secs_f64(median(d)),
        crop: Duration::from_secs_f64(median(c)),
        classify: Duration::from_secs_f64(median(k)),
    };
    Ok((1.0 / median(tot).max(1e-9), timings, found))
}

/// Run `librosa_mfcc.py` on `wav`: the seconds of each timed run (after its own warm-up).
pub fn librosa_runs(wav: &Path, reps: usize) -> std::result::Result<Vec<f64>, String> {
    let script = librosa_script();
    if !script.exists() {
        return Err(format!(
            "{} not found (needs the source checkout)",
            script.display()
        ));
    }
    let out = Command::new("python3")
        .arg(&script)
        .arg(wav)
        .arg(reps.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        let e = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "librosa script failed: {}",
            e.lines().last().unwrap_or("").trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let runs: Vec<f64> = v["runs"]
        .as_array()
        .ok_or("bad output")?
        .iter()
        .filter_map(|x| x.as_f64())
        .collect();
    if runs.is_empty() {
        return Err("librosa script reported no runs".into());
    }
    Ok(runs)
}

/// Rounds of the features-vs-librosa comparison: Rust and librosa take turns, so both see the
/// same machine conditions (on a shared or throttled machine a single Rust burst followed by a
/// single librosa burst gave ratios anywhere between 1.2 and 4.3 for the same code).
const FEATURE_ROUNDS: usize = 5;

/// Run all timings. `librosa = false` skips the Python comparison.
pub fn run(
    engine: &Engine,
    iters: usize,
    intra_threads: usize,
    librosa: bool,
    progress: &dyn Fn(&str),
) -> Result<BenchReport> {
    let iters = iters.max(3);
    progress("face pipeline, one face");
    let (fps1, t1, n1) = time_faces(engine, &bench_frame(1)?, iters)?;
    progress("face pipeline, four faces");
    let (fps4, t4, n4) = time_faces(engine, &bench_frame(4)?, iters)?;
    progress("expression model, each precision");
    let precisions = time_precisions(engine, intra_threads, iters)?;

    progress("speech");
    let sp = engine.speech()?;
    let audio = bench_audio(AUDIO_SECONDS)?;
    let speech_rtf = time_speech(sp, &audio, iters)?;

    progress("features");
    let mut fx = FeatureExtractor::new(sp.spec.clone()).map_err(Error::Manifest)?;
    let dct = Dct::new(N_MFCC, sp.spec.n_mels);
    fx.mfcc_with(&audio, &dct);
    let window = &audio[..sp.spec.window_samples.min(audio.len())];
    let mut wt = Vec::new();
    for _ in 0..iters {
        let t0 = Instant::now();
        std::hint::black_box(fx.logmel(window));
        wt.push(t0.elapsed().as_secs_f64());
    }
    let (feat_rtf, lib_rtf, lib_err) =
        time_features(&mut fx, &dct, &audio, iters, librosa, progress)?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(BenchReport {
        face_pipeline_fps: fps1,
        face_pipeline_fps_4faces: fps4,
        faces_found: n1,
        faces_found_4faces: n4,
        face_detect_ms: ms(t1.detect),
        face_crop_ms: ms(t1.crop),
        face_classify_ms: ms(t1.classify),
        face_detect_ms_4faces: ms(t4.detect),
        face_crop_ms_4faces: ms(t4.crop),
        face_classify_ms_4faces: ms(t4.classify),
        speech_realtime_factor: speech_rtf,
        features_realtime_factor: feat_rtf,
        logmel_window_ms: median(wt) * 1e3,
        features_vs_librosa: lib_rtf.map(|l| feat_rtf / l),
        librosa_mfcc_realtime_factor: lib_rtf,
        librosa_error: lib_err,
        iterations: iters,
        intra_threads,
        expression_precisions: precisions,
        expression_precision_chosen: {
            let c = &engine.faces()?.expression.precision;
            format!("{} ({})", c.precision, c.reason)
        },
    })
}

/// The speech model's real-time factor on `audio` (the median of several whole runs).
fn time_speech(sp: &SpeechModel, audio: &[f32], iters: usize) -> Result<f64> {
    sp.analyze(&audio[..16000 * 4])?;
    // 60 s of audio per run; enough runs that one burst of a noisy machine cannot move the median.
    let reps = (iters / 8).clamp(3, 15);
    let mut st = Vec::new();
    for _ in 0..reps {
        let t0 = Instant::now();
        sp.analyze(audio)?;
        st.push(t0.elapsed().as_secs_f64());
    }
    Ok(AUDIO_SECONDS as f64 / median(st).max(1e-12))
}

/// MFCC extraction's real-time factor on `audio`, and (with `librosa`) librosa's in the same
/// rounds, or why it could not be measured: (ours, librosa's, librosa's error).
fn time_features(
    fx: &mut FeatureExtractor,
    dct: &Dct,
    audio: &[f32],
    iters: usize,
    librosa: bool,
    progress: &dyn Fn(&str),
) -> Result<(f64, Option<f64>, Option<String>)> {
    let wav_dir = if librosa {
        let dir = tempfile_dir()?;
        write_wav(&dir.join("bench.wav"), audio, 16000)?;
        Some(dir)
    } else {
        None
    };
    let rust_reps = (iters / 10).clamp(2, 10);
    let lib_reps = (iters / 20).clamp(2, 5);
    let (mut ft, mut lt) = (Vec::new(), Vec::new());
    let mut lib_err = None;
    for round in 0..FEATURE_ROUNDS {
        for _ in 0..rust_reps {
            let t0 = Instant::now();
            std::hint::black_box(fx.mfcc_with(audio, dct));
            ft.push(t0.elapsed().as_secs_f64());
        }
        if let (Some(dir), None) = (&wav_dir, &lib_err) {
            progress(&format!("librosa reference {}/{FEATURE_ROUNDS}", round + 1));
            match librosa_runs(&dir.join("bench.wav"), lib_reps) {
                Ok(runs) => lt.extend(runs),
                Err(e) => lib_err = Some(e),
            }
        }
    }
    if let Some(dir) = wav_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let feat_rtf = AUDIO_SECONDS as f64 / median(ft).max(1e-12);
    let lib_rtf =
        (lib_err.is_none() && !lt.is_empty()).then(|| AUDIO_SECONDS as f64 / median(lt).max(1e-12));
    Ok((feat_rtf, lib_rtf, lib_err))
}

/// Each precision of the expression model on the same real face crop, in alternating rounds so
/// that the machine's load skews every precision alike.
fn time_precisions(
    engine: &Engine,
    intra_threads: usize,
    iters: usize,
) -> Result<Vec<PrecisionTiming>> {
    let fp = engine.faces()?;
    let frame = bench_frame(1)?;
    let det = fp
        .detector
        .detect(&frame)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Inference("bench fixture: no face found".into()))?;
    let size = fp.expression.size;
    let mut crop = vec![0.0; size * size];
    crate::face::aligned_crop(&frame, &det, size, fp.expression.crop_scale, &mut crop);
    let crops = vec![crop];
    let rt = crate::runtime::RuntimeConfig {
        intra_threads,
        ..Default::default()
    };
    let models = crate::model_precision::variants(&engine.manifest, "expression")?
        .into_iter()
        .map(|v| {
            let policy = crate::model_precision::PrecisionPolicy::Fixed(v.precision.clone());
            crate::face::ExpressionModel::load_with(&engine.manifest, &rt, &policy, None)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut times = vec![Vec::new(); models.len()];
    let per_round = (iters / 5).max(3);
    for round in 0..6 {
        for (i, m) in models.iter().enumerate() {
            for _ in 0..per_round {
                let t0 = Instant::now();
                std::hint::black_box(m.classify(&crops)?);
                if round > 0 {
                    times[i].push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
    }
    let medians: Vec<f64> = times.into_iter().map(median).collect();
    let chosen = &fp.expression.precision.precision;
    let base = models
        .iter()
        .zip(&medians)
        .find(|(m, _)| &m.precision.precision == chosen)
        .map_or(1.0, |(_, &t)| t);
    Ok(models
        .iter()
        .zip(medians)
        .map(|(m, t)| PrecisionTiming {
            precision: m.precision.precision.clone(),
            classify_ms: t,
            ratio_to_chosen: t / base.max(1e-9),
        })
        .collect())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("emo-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Write 16-bit mono PCM.
pub fn write_wav(path: &Path, x: &[f32], rate: u32) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let err = |e: hound::Error| Error::Media(format!("{}: {e}", path.display()));
    let mut w = hound::WavWriter::create(path, spec).map_err(err)?;
    for &v in x {
        w.write_sample((v.clamp(-1.0, 1.0) * 32767.0) as i16)
            .map_err(err)?;
    }
    w.finalize().map_err(err)
}

impl BenchReport {
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        s += &format!(
            "intra-op threads: {}, iterations: {} (median after warm-up)\n\n",
            self.intra_threads, self.iterations
        );
        s += &format!(
            "face pipeline, 1 face:   {:>8.1} frames/s  (detect {:.2} ms, crop {:.2} ms, classify {:.2} ms; {} face(s) found)\n",
            self.face_pipeline_fps, self.face_detect_ms, self.face_crop_ms, self.face_classify_ms, self.faces_found
        );
        s += &format!(
            "face pipeline, 4 faces:  {:>8.1} frames/s  (detect {:.2} ms, crop {:.2} ms, classify {:.2} ms; {} face(s) found)\n",
            self.face_pipeline_fps_4faces,
            self.face_detect_ms_4faces,
            self.face_crop_ms_4faces,
            self.face_classify_ms_4faces,
            self.faces_found_4faces
        );
        for p in &self.expression_precisions {
            s += &format!(
                "expression {:<5}         {:>8.2} ms per face with TTA ({:.2}x the chosen one)\n",
                p.precision, p.classify_ms, p.ratio_to_chosen
            );
        }
        s += &format!(
            "expression precision:    {}\n",
            self.expression_precision_chosen
        );
        s += &format!("speech:                  {:>8.0}x real time (3-s windows, 1-s hop, features + model)\n", self.speech_realtime_factor);
        s += &format!(
            "features (MFCC-{N_MFCC}):      {:>8.0}x real time; one log-mel window {:.3} ms\n",
            self.features_realtime_factor, self.logmel_window_ms
        );
        match (
            self.librosa_mfcc_realtime_factor,
            self.features_vs_librosa,
            &self.librosa_error,
        ) {
            (Some(l), Some(r), _) => {
                s += &format!(
                    "librosa MFCC:            {l:>8.0}x real time → Rust is {r:.1}x faster\n"
                )
            }
            (_, _, Some(e)) => s += &format!("librosa MFCC:            not measured ({e})\n"),
            _ => {}
        }
        s
    }
}
