//! Attacks from the security audit replayed against the real `emod` binary (SQLite, loopback).
//! Each test sends what an attacker sent and asserts the daemon answers with a clear error,
//! keeps serving, and keeps what it had accepted.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{wait_until, Backend, Env, Server};
use reqwest::blocking::multipart::{Form, Part};
use serde_json::Value;

fn models() -> PathBuf {
    std::env::var_os("EMO_TEST_MODELS_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"),
        PathBuf::from,
    )
}

fn env() -> Env {
    Env::new(Backend::Sqlite)
        .unwrap()
        .with("EMO_MODELS_DIR", &models().display().to_string())
        .with("EMO_ONNXRUNTIME_INTRA_THREADS", "1")
}

/// A canonical 16-bit mono PCM WAV with `data` bytes of samples whose header declares `rate`.
fn wav_declaring(rate: u32, data: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(44 + data);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&((36 + data) as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&rate.wrapping_mul(2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data as u32).to_le_bytes());
    b.extend((0..data).map(|i| (i * 31 % 251) as u8));
    b
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A tiny valid PNG whose header then claims `w`×`h` (IHDR patched, CRC fixed): a decoder that
/// trusts the header allocates w×h×3 bytes before finding the data short.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbImage::new(1, 1)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    let mut b = out.into_inner();
    // Signature (8) + length (4) + "IHDR" (4): width at 16, height at 20, CRC after 13 bytes.
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

fn analyze(server: &Server, token: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let r = server
        .client
        .post(server.url("/api/v1/analyze"))
        .bearer_auth(token)
        .multipart(Form::new().part("f", Part::bytes(bytes).file_name(name.to_string())))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn file_error(v: &Value) -> String {
    v["files"][0]["error"].as_str().unwrap_or("").to_string()
}

/// Critical: a 2 MB WAV declaring a 1 Hz (or 4294967295 Hz) rate made the resampler allocate
/// 128 GB and the process abort, losing accepted samples. Now: a per-file error, the daemon keeps
/// serving, and samples accepted before the attack are all stored.
#[test]
fn crafted_wav_sample_rates_do_not_kill_the_daemon() {
    let env = env();
    env.add_user("mallory", "agent");
    let mut server = env.start();
    let token = server.login("mallory");
    let session = server.start_session(&token, None);
    let now = chrono::Utc::now().timestamp_millis();
    let r = server.post(
        &format!("/api/v1/sessions/{session}/samples"),
        Some(&token),
        &common::fused_samples(now, 1, &["happy"; 30]),
    );
    assert!(r.status().is_success(), "{}", r.status());
    for rate in [1u32, 7_999, 192_001, u32::MAX, 0] {
        let (status, v) = analyze(&server, &token, "bomb.wav", wav_declaring(rate, 2_000_000));
        // Nothing could be analysed: 422, with the file's error in `files`.
        assert_eq!(status, 422, "rate {rate}: {v}\n{}", server.log_text());
        let e = file_error(&v);
        assert!(
            e.contains("sample rate") || e.contains("not a readable WAV"),
            "rate {rate}: {v}"
        );
        assert_eq!(server.get("/healthz", None).status(), 200, "rate {rate}");
    }
    // The same file at a sane rate is analysed normally.
    let (status, v) = analyze(&server, &token, "ok.wav", wav_declaring(16_000, 64_000));
    assert_eq!(status, 200);
    assert!(v["files"][0]["error"].is_null(), "{v}");
    server.sigterm();
    let server = env.start();
    let token = server.login("mallory");
    // The restart closed the session left running; every accepted sample is there.
    let v: Value = server
        .get(&format!("/api/v1/sessions/{session}"), Some(&token))
        .json()
        .unwrap();
    assert_eq!(v["status"], "interrupted", "{v}");
    let page: Value = server
        .get(&format!("/api/v1/sessions/{session}/samples"), Some(&token))
        .json()
        .unwrap();
    assert_eq!(page["total"], 30, "{page}");
}

/// Decompression bombs: a few hundred bytes of PNG claiming 13000×13000, and a compact FLAC of
/// silence longer than the configured limit, are refused before the memory is spent.
#[test]
fn decompression_bombs_are_refused_before_decoding() {
    let env = env().with("EMO_ANALYZE_MAX_MEDIA_SECONDS", "60");
    env.add_user("mallory", "agent");
    let server = env.start();
    let token = server.login("mallory");

    let (status, v) = analyze(&server, &token, "bomb.png", png_claiming(13_000, 13_000));
    assert_eq!(status, 422, "{v}");
    assert!(file_error(&v).contains("over the limit"), "{v}");

    let dir = tempfile::tempdir().unwrap();
    let flac = dir.path().join("silence.flac");
    let ok = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
        .arg("anullsrc=r=48000:cl=mono")
        .args(["-t", "600", "-c:a", "flac", "-y"])
        .arg(&flac)
        .status()
        .expect("ffmpeg is needed by the tests");
    assert!(ok.success());
    let bytes = std::fs::read(&flac).unwrap();
    assert!(bytes.len() < 2_000_000, "{} bytes", bytes.len());
    let (status, v) = analyze(&server, &token, "silence.flac", bytes);
    assert_eq!(status, 422, "{v}");
    assert!(file_error(&v).contains("longer than the limit"), "{v}");
    assert_eq!(server.get("/healthz", None).status(), 200);
}

/// ffmpeg children of the daemon (by parent pid, from /proc).
fn ffmpeg_children(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // "pid (comm) state ppid ..."
            let Some(close) = stat.rfind(')') else {
                return false;
            };
            let comm = &stat[stat.find('(').unwrap_or(0) + 1..close];
            let ppid = stat[close + 1..].split_whitespace().nth(1);
            comm.starts_with("ff") && ppid == Some(&pid.to_string())
        })
        .count()
}

/// Concurrency is bounded (429 with Retry-After past `analyze.max_concurrent`), and a client
/// that leaves stops its analysis: the ffmpeg child is killed and the permit comes back.
#[test]
fn analyses_are_bounded_and_cancelled_when_the_client_leaves() {
    let env = env().with("EMO_ANALYZE_MAX_CONCURRENT", "1");
    env.add_user("mallory", "agent");
    let server = env.start();
    let token = server.login("mallory");
    let pid = server.child.as_ref().unwrap().id();

    // A long video: decoding and classifying it takes far longer than the client waits.
    let dir = tempfile::tempdir().unwrap();
    let video = common::media::test_pattern(dir.path(), "long.mp4", 400, 25);
    let bytes = std::fs::read(&video).unwrap();

    // A long video holds the only permit; its client gives up after 8 s.
    let url = server.url("/api/v1/analyze");
    let tok = token.clone();
    let impatient = std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(8))
            .build()
            .unwrap()
            .post(url)
            .bearer_auth(tok)
            .multipart(Form::new().part("f", Part::bytes(bytes).file_name("long.mp4")))
            .send()
            .and_then(|r| r.text())
    });
    wait_until(
        "the video analysis to start ffmpeg",
        Duration::from_secs(10),
        || ffmpeg_children(pid) > 0,
    );
    // While it runs, a second analysis is refused.
    let r = server
        .client
        .post(server.url("/api/v1/analyze"))
        .bearer_auth(&token)
        .multipart(Form::new().part("f", Part::bytes(b"x".to_vec()).file_name("a.txt")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.json::<Value>().unwrap()["error"], "too_many_requests");
    // The client leaves; the daemon must notice, stop the work and kill its ffmpeg.
    let answer = impatient.join().unwrap();
    assert!(
        answer.is_err(),
        "the analysis of 400 s of video finished in 8 s? {answer:?}"
    );
    wait_until(
        "the abandoned analysis to stop",
        Duration::from_secs(15),
        || ffmpeg_children(pid) == 0,
    );
    // Its permit is back: a new (small) analysis is served (422: a text file is no media).
    wait_until("the permit to be released", Duration::from_secs(15), || {
        analyze(&server, &token, "a.txt", b"x".to_vec()).0 == 422
    });
}

/// A label contradicting its own probabilities, and fields the API does not know, are refused
/// (422) instead of being stored or silently dropped.
#[test]
fn contradicting_labels_and_unknown_fields_are_refused() {
    let env = env();
    env.add_user("mallory", "agent");
    let server = env.start();
    let token = server.login("mallory");
    let session = server.start_session(&token, None);
    let t = chrono::Utc::now().to_rfc3339();
    let url = format!("/api/v1/sessions/{session}/samples");
    let contradicting = serde_json::json!({"samples": [{"t": t, "modality": "fused",
        "emotion": "happy", "confidence": 0.9, "probabilities": {"happy": 0.1, "sad": 0.9}}]});
    let (status, code) = common::error_of(server.post(&url, Some(&token), &contradicting));
    assert_eq!((status, code.as_str()), (422, "invalid_input"));
    let unknown = serde_json::json!({"samples": [{"t": t, "modality": "fused",
        "emotion": "happy", "confidence": 0.9, "admin": true}]});
    let (status, code) = common::error_of(server.post(&url, Some(&token), &unknown));
    assert_eq!((status, code.as_str()), (422, "invalid_input"));
    let start = serde_json::json!({"consent": true, "sources": ["remote"], "role": "admin"});
    let (status, _) = common::error_of(server.post("/api/v1/sessions", Some(&token), &start));
    assert_eq!(status, 422);
    // The honest sample still goes in.
    let ok = serde_json::json!({"samples": [{"t": t, "modality": "fused",
        "emotion": "sad", "confidence": 0.9, "probabilities": {"happy": 0.1, "sad": 0.9}}]});
    assert_eq!(server.post(&url, Some(&token), &ok).status(), 201);
}
