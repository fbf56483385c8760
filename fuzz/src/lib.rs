//! Fuzzing harness: one function per decoder that bytes from the network reach, each driving the
//! product's own entry point with the limits the daemon uses. The cargo-fuzz targets
//! (`fuzz_targets/*.rs`) call these, and the corpus replay test (`tests/emod/fuzz_corpus.rs`, part of
//! the normal test suite) includes this file and feeds every committed corpus input through the
//! same functions, so a regression shows up in `cargo test` without libFuzzer.
//!
//! A decoder may refuse its input (that is an `Err`, which the daemon turns into a 4xx or a
//! per-file error); what the fuzzer looks for is a panic, an abort, a hang or an allocation out of
//! proportion to the input.

use std::io::Read;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use actix_web::error::PayloadError;
use actix_web::http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use actix_web::web::{self, Bytes};
use emo_api_types::{CreateUser, Credentials, SampleBatch, StartSession, StopSession, UpdateUser};
use emo_inference::audio::{self, Audio, VadConfig};
use emo_inference::features::{FeatureExtractor, FeatureSpec};
use emo_inference::{media, speech, MediaLimits};
use emod::sessions::validate;

/// The limits `POST /api/v1/analyze` applies (the daemon's default `[analyze]` section).
pub fn daemon_limits() -> MediaLimits {
    emod::config::AnalyzeConfig::default().limits()
}

/// Limits for one input: the first byte picks either the daemon's or a tiny media length (so the
/// "too long" paths are reachable with the small inputs a fuzzer makes).
fn limits_from(selector: u8) -> MediaLimits {
    let mut lim = daemon_limits();
    if selector < 128 {
        lim.max_seconds = selector as f64 / 1000.0;
    }
    lim
}

/// A reader that hands out at most `step` bytes per `read`, like a pipe from ffmpeg does.
struct Chunked<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn speech_spec() -> &'static (FeatureSpec, usize) {
    static SPEC: OnceLock<(FeatureSpec, usize)> = OnceLock::new();
    SPEC.get_or_init(|| {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models"));
        let m = emo_inference::manifest::Manifest::load(&dir).expect("models/manifest.toml");
        let e = m.entry("speech").expect("[models.speech]");
        let spec = e.features.clone().expect("[models.speech.features]");
        let hop_s = e
            .extra
            .get("hop_seconds")
            .and_then(|v| v.as_float())
            .unwrap_or(1.0);
        let hop = (spec.sample_rate as f64 * hop_s) as usize;
        (spec, hop)
    })
}

/// What the analysis does with decoded audio before the model sees it (`SpeechModel::prepare`
/// and `SpeechModel::analyze` up to the classifier): resample to the model rate, 3-s windows,
/// the voice-activity gate and level, and the log-mel features of the voiced windows. Decoded
/// samples are whatever the file holds (NaN and infinity included), so this is part of what an
/// upload reaches.
fn speech_front_end(a: &Audio) {
    static FX: OnceLock<Mutex<FeatureExtractor>> = OnceLock::new();
    let (spec, hop) = speech_spec();
    let Ok(x) = audio::resample(&a.samples, a.sample_rate, spec.sample_rate) else {
        return;
    };
    let fx = FX.get_or_init(|| Mutex::new(FeatureExtractor::new(spec.clone()).expect("spec")));
    let mut fx = fx.lock().unwrap_or_else(|e| e.into_inner());
    let w = spec.window_samples;
    let vad = VadConfig::default();
    let (mut full, mut partial) = (Vec::new(), Vec::new());
    for s in speech::window_starts(x.len(), w, *hop) {
        let seg = &x[s.min(x.len())..(s + w).min(x.len())];
        let _level = audio::dbfs(emo_inference::features::rms(seg));
        if vad.is_voiced(seg, spec.sample_rate) {
            if s + w <= x.len() {
                full.push(s);
            } else {
                partial.push(s);
            }
        }
    }
    if let Some(feats) = fx.logmel_windows(&x, &full) {
        assert_eq!(feats.len(), full.len());
    } else {
        partial.extend(full);
    }
    for s in partial {
        let f = fx.logmel_clip(&x[s..(s + w).min(x.len())]);
        assert_eq!(f.len(), spec.n_mels * spec.n_frames());
    }
}

/// `read_wav` (uploads whose content is RIFF/WAVE), then the speech front end.
pub fn wav(data: &[u8]) {
    let lim = daemon_limits();
    if let Ok(a) = audio::read_wav_bytes(data, &lim) {
        assert!(a.duration() <= lim.max_seconds);
        speech_front_end(&a);
    }
}

/// `read_image` (uploads recognised as JPEG/PNG, or named like one). The first byte stands in for
/// the file name's extension.
pub fn image(data: &[u8]) {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let ext = match sel % 4 {
        0 => None,
        1 => Some("png"),
        2 => Some("jpg"),
        _ => Some("jpeg"),
    };
    let lim = daemon_limits();
    if let Ok(img) = media::read_image_bytes(bytes, ext, &lim) {
        assert!(img.width() as u64 * img.height() as u64 <= lim.max_pixels);
    }
}

/// ffmpeg's `f32le` output as `read_with_ffmpeg` reads it (byte 0: media-length limit, byte 1:
/// bytes per pipe read), at the model rate, then the speech front end.
pub fn ffmpeg_pcm(data: &[u8]) {
    let [sel, step, rest @ ..] = data else {
        return;
    };
    let lim = limits_from(*sel);
    let rate = speech_spec().0.sample_rate;
    let stream = Chunked {
        data: rest,
        step: *step as usize + 1,
    };
    if let Ok(samples) = audio::read_f32le(stream, rate, &lim) {
        assert!(samples.len() <= lim.max_samples(rate));
        speech_front_end(&Audio {
            samples,
            sample_rate: rate,
        });
    }
}

/// What `VideoFrames` reads from its two ffmpeg children: ffprobe's `key=value` answer about the
/// video stream (up to the first NUL byte), checked by `video_info_from`, then ffmpeg's `rgb24`
/// rawvideo stream (the rest) read frame by frame with `read_rgb_frame`. Byte 0 is the
/// media-length limit, byte 1 the bytes per pipe read.
pub fn ffmpeg_frames(data: &[u8]) {
    let [sel, step, rest @ ..] = data else {
        return;
    };
    let lim = limits_from(*sel);
    let (probe, frames) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let kv = audio::parse_probe(probe);
    let Ok(info) = media::video_info_from(&kv, &lim) else {
        return;
    };
    assert!(info.width as u64 * info.height as u64 <= lim.max_pixels);
    let mut stream = Chunked {
        data: frames,
        step: *step as usize + 1,
    };
    let mut n = 0usize;
    while let Ok(Some(img)) = media::read_rgb_frame(&mut stream, info.width, info.height) {
        assert_eq!((img.width(), img.height()), (info.width, info.height));
        n += 1;
        assert!(n <= frames.len() / 3, "more frames than bytes");
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Every JSON request body (and every query string) the API deserialises, each followed by the
/// checks its handler makes before touching state. Byte 0 picks the type.
pub fn json_bodies(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    // The minimum password length of the default configuration.
    let min_pw = 8;
    match sel % 11 {
        0 => {
            if let Ok(c) = serde_json::from_slice::<Credentials>(body) {
                let _ = emod::auth::validate_username(c.username.trim());
                let _ = emod::auth::validate_password(&c.password, min_pw);
                let _ = emod::auth::log_safe(&c.username, 64);
            }
        }
        1 => {
            if let Ok(c) = serde_json::from_slice::<CreateUser>(body) {
                let _ = emod::auth::validate_username(c.username.trim());
                let _ = emod::auth::validate_password(&c.password, min_pw);
                if let Some(d) = &c.display_name {
                    let _ = emod::auth::validate_display_name(d);
                }
            }
        }
        2 => {
            if let Ok(u) = serde_json::from_slice::<UpdateUser>(body) {
                if let Some(d) = &u.display_name {
                    let _ = emod::auth::validate_display_name(d);
                }
                if let Some(p) = &u.password {
                    let _ = emod::auth::validate_password(p, min_pw);
                }
            }
        }
        3 => {
            if let Ok(s) = serde_json::from_slice::<StartSession>(body) {
                let _ = validate::text("label", s.label.as_deref().unwrap_or(""), 200);
                if let Some(t) = s.started_at {
                    let t = t.timestamp_millis();
                    let _ = t > now_ms() + validate::SKEW_MS || t < validate::EARLIEST_MS;
                }
            }
        }
        4 => {
            let _ = serde_json::from_slice::<StopSession>(body);
        }
        5 => {
            if let Ok(b) = serde_json::from_slice::<SampleBatch>(body) {
                let now = now_ms();
                let _ = validate::validate_batch(&b, validate::EARLIEST_MS, now);
                if let Some(first) = b.samples.first() {
                    let _ = validate::validate_batch(&b, first.t.timestamp_millis(), now);
                }
            }
        }
        6 => query::<emod::api::sessions::ListQuery>(body, |q| (q.limit, q.offset)),
        7 => query::<emod::api::sessions::SamplesQuery>(body, |q| (q.limit, q.offset)),
        8 => query::<emod::api::audit::AuditQuery>(body, |q| (q.limit, q.offset)),
        9 => {
            if let Ok(s) = std::str::from_utf8(body) {
                // Each stats endpoint and export have their own query type.
                use emo_api_types::{DistributionQuery, ExportQuery, HeatmapQuery, TimelineQuery};
                use emod::api::scope::describe;
                if let Ok(q) = web::Query::<DistributionQuery>::from_query(s) {
                    let _ = describe(&q.filters());
                }
                if let Ok(q) = web::Query::<TimelineQuery>::from_query(s) {
                    let _ = describe(&q.filters());
                }
                if let Ok(q) = web::Query::<HeatmapQuery>::from_query(s) {
                    let _ = describe(&q.filters());
                }
                if let Ok(q) = web::Query::<ExportQuery>::from_query(s) {
                    let _ = describe(&q.filters());
                }
            }
        }
        _ => {
            // Any JSON at all (the body of an unknown route, or a type above with a typo).
            let _ = serde_json::from_slice::<serde_json::Value>(body);
        }
    }
}

fn query<T: serde::de::DeserializeOwned>(
    body: &[u8],
    page: impl Fn(&T) -> (Option<u64>, Option<u64>),
) {
    if let Ok(s) = std::str::from_utf8(body) {
        if let Ok(q) = web::Query::<T>::from_query(s) {
            let (limit, offset) = page(&q);
            let _ = emod::api::paging::page_bounds(limit, offset);
        }
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio runtime")
    })
}

/// The multipart body of `POST /api/v1/analyze` through `save_uploads`, the handler's parsing of
/// it: byte 0 is the bytes per network read, byte 1 the upload limit (small, or the daemon's),
/// then the `Content-Type` header up to the first newline, then the body.
pub fn multipart(data: &[u8]) {
    let [step, lim, rest @ ..] = data else {
        return;
    };
    let (ct, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(ct) {
        headers.insert(CONTENT_TYPE, v);
    }
    let limit = if *lim < 128 {
        *lim as usize * 16
    } else {
        emod::config::ServerConfig::default().upload_limit_bytes
    };
    let chunks: Vec<Result<Bytes, PayloadError>> = body
        .chunks(*step as usize + 1)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let (mut payload, ended) =
        emod::api::analyze::multipart_body(&headers, futures_util::stream::iter(chunks));
    let dir = tempfile::tempdir().expect("temporary directory");
    // The whole body is in memory: parsing it must end, with files or an error. A hang is a
    // finding (it would hold an HTTP request and the analysis slot), reported as a panic so the
    // corpus replay in the test suite fails instead of hanging.
    let r = runtime()
        .block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(5),
                emod::api::analyze::save_uploads(&headers, &mut payload, &ended, dir.path(), limit),
            )
            .await
        })
        .expect("save_uploads hung on a body that had ended");
    if let Ok(files) = r {
        assert!(!files.is_empty() && files.len() <= emod::api::analyze::MAX_FILES);
        let mut total = 0;
        for (path, original) in &files {
            assert!(!original.is_empty());
            // Every file stays in the private directory, whatever name the client gave.
            assert_eq!(path.parent(), Some(dir.path()));
            total += std::fs::metadata(path).expect("saved upload").len() as usize;
        }
        assert!(total <= limit);
    }
}
