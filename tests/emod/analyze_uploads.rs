//! `POST /api/v1/analyze` uploads on the real daemon (SQLite): the multipart limits answer with
//! their documented codes (413 `payload_too_large` past 16 files or the byte limit, 422
//! `invalid_input` without a file, 429 `too_many_requests` past `analyze.max_concurrent`), and
//! no upload outlives its request: after analyses that succeed, fail, are refused, or whose
//! client leaves (during the upload or during the work), the daemon's temporary directory
//! (`TMPDIR`, owned by the test) holds no `emod-analyze-*` directory.
use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{error_of, wait_until, Backend, Env, Server};
use reqwest::blocking::multipart::{Form, Part};
use serde_json::Value;

const LIMIT: usize = 150_000;

fn models() -> PathBuf {
    std::env::var_os("EMO_TEST_MODELS_DIR")
        .map_or_else(|| common::workspace_root().join("models"), PathBuf::from)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        common::workspace_root()
            .join("emo-inference/tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// A daemon whose temporary directory is `tmp`.
fn env(tmp: &Path, models: &Path) -> Env {
    Env::new(Backend::Sqlite)
        .unwrap()
        .with("TMPDIR", &tmp.display().to_string())
        .with("EMO_MODELS_DIR", &models.display().to_string())
        .with("EMO_SERVER_UPLOAD_LIMIT_BYTES", &LIMIT.to_string())
        .with("EMO_ANALYZE_MAX_CONCURRENT", "1")
        .with("EMO_ONNXRUNTIME_INTRA_THREADS", "1")
}

/// The upload directories present in `tmp` now.
fn uploads(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("emod-analyze-"))
        .collect()
}

fn assert_no_uploads(tmp: &Path, after: &str) {
    let left = uploads(tmp);
    assert!(left.is_empty(), "after {after}, left behind: {left:?}");
}

fn post(server: &Server, token: &str, form: Form) -> reqwest::blocking::Response {
    server
        .client
        .post(server.url("/api/v1/analyze"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .unwrap()
}

/// A raw connection that has sent an upload's head and the start of one file part named
/// `file_name` (200,000 bytes declared); the caller sends the rest, or not.
fn raw_upload(server: &Server, token: &str, file_name: &str) -> TcpStream {
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    let head = format!(
        "--emo-test-boundary\r\nContent-Disposition: form-data; name=\"f\"; \
         filename=\"{file_name}\"\r\nContent-Type: audio/wav\r\n\r\n"
    );
    write!(
        s,
        "POST /api/v1/analyze HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=emo-test-boundary\r\n\
         Content-Length: 200000\r\n\r\n{head}"
    )
    .unwrap();
    s
}

/// `n` small text files (each analysed as "unsupported", quickly).
fn files(n: usize) -> Form {
    (0..n).fold(Form::new(), |f, i| {
        f.part(
            format!("f{i}"),
            Part::bytes(b"just text".to_vec()).file_name(format!("note-{i}.txt")),
        )
    })
}

#[test]
fn upload_limits_answer_their_codes_and_leave_no_files() {
    let tmp = tempfile::tempdir().unwrap();
    let env = env(tmp.path(), &models());
    env.add_user("ana", "agent");
    let server = env.start();
    let token = server.login("ana");

    // Succeeded: 16 files (the most allowed), one a real picture, the others unsupported.
    let form = files(15).part(
        "face",
        Part::bytes(fixture("astronaut.jpg")).file_name("astronaut.jpg"),
    );
    let r = post(&server, &token, form);
    assert_eq!(r.status(), 200, "{}", server.log_text());
    let v: Value = r.json().unwrap();
    assert_eq!(v["files"].as_array().unwrap().len(), 16, "{v}");
    assert_eq!(v["files"][15]["file"], "astronaut.jpg");
    assert_no_uploads(tmp.path(), "a successful analysis");

    // Failed per file: a picture that does not decode (the only file: 422).
    let r = post(
        &server,
        &token,
        Form::new().part(
            "f",
            Part::bytes(b"\x89PNG\r\n\x1a\nnot".to_vec()).file_name("x.png"),
        ),
    );
    assert_eq!(r.status(), 422);
    let v: Value = r.json().unwrap();
    assert!(v["files"][0]["error"].is_string(), "{v}");
    assert_no_uploads(tmp.path(), "an analysis whose file failed");

    // Refused: 17 files; over the byte limit in one file, and in many small ones; no file.
    let refusals = [
        ("17 files", files(17), 413, "payload_too_large"),
        (
            "one file over the limit",
            Form::new().part("f", Part::bytes(vec![7u8; LIMIT + 1]).file_name("big.wav")),
            413,
            "payload_too_large",
        ),
        (
            "16 files over the limit together",
            (0..16).fold(Form::new(), |f, i| {
                f.part(
                    format!("f{i}"),
                    Part::bytes(vec![7u8; LIMIT / 10]).file_name(format!("p{i}.wav")),
                )
            }),
            413,
            "payload_too_large",
        ),
        ("no file", Form::new().text("x", "y"), 422, "invalid_input"),
    ];
    for (what, form, status, code) in refusals {
        let (s, c) = error_of(post(&server, &token, form));
        assert_eq!((s, c.as_str()), (status, code), "{what}");
        assert_no_uploads(tmp.path(), what);
    }
    assert_eq!(server.get("/healthz", None).status(), 200);
}

/// The models cannot be loaded: 503 after the upload was saved, and the files are gone by the
/// time the answer arrives.
#[test]
fn an_analysis_without_models_leaves_no_files() {
    let tmp = tempfile::tempdir().unwrap();
    let no_models = tempfile::tempdir().unwrap();
    let env = env(tmp.path(), no_models.path());
    env.add_user("ana", "agent");
    let server = env.start();
    let token = server.login("ana");
    for _ in 0..5 {
        let (s, c) = error_of(post(&server, &token, files(3)));
        assert_eq!((s, c.as_str()), (503, "models_unavailable"));
        assert_no_uploads(tmp.path(), "an analysis without models");
    }
}

/// A client that leaves during the upload, or during the analysis: the files are removed, the
/// permit comes back (a second analysis meanwhile got 429 and left nothing either).
#[test]
fn clients_leaving_leave_no_files() {
    let tmp = tempfile::tempdir().unwrap();
    let env = env(tmp.path(), &models()).with("EMO_SERVER_UPLOAD_LIMIT_BYTES", "100000000");
    env.add_user("ana", "agent");
    let server = env.start();
    let token = server.login("ana");

    // During the upload: half of a declared body, then the connection closes.
    let mut s = raw_upload(&server, &token, "half.wav");
    s.write_all(&[1u8; 50_000]).unwrap();
    s.flush().unwrap();
    wait_until(
        "the upload to reach the disk",
        Duration::from_secs(20),
        || {
            uploads(tmp.path())
                .iter()
                .any(|d| tmp.path().join(d).join("upload-0.wav").exists())
        },
    );
    drop(s);
    wait_until(
        "the half upload to be removed",
        Duration::from_secs(20),
        || uploads(tmp.path()).is_empty(),
    );

    // During the analysis: a long video; its client gives up after a few seconds.
    let dir = tempfile::tempdir().unwrap();
    let video = common::media::test_pattern(dir.path(), "long.mp4", 500, 5);
    let bytes = std::fs::read(&video).unwrap();
    let url = server.url("/api/v1/analyze");
    let tok = token.clone();
    let (left_tx, left_rx) = std::sync::mpsc::channel::<()>();
    let impatient = std::thread::spawn(move || {
        let r = reqwest::blocking::Client::new()
            .post(url)
            .bearer_auth(tok)
            .multipart(Form::new().part("f", Part::bytes(bytes).file_name("long.mp4")))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        // The answer has started (spaces until the result): leave when told to.
        let _ = left_rx.recv();
        drop(r);
    });
    wait_until("the video to be saved", Duration::from_secs(20), || {
        !uploads(tmp.path()).is_empty()
    });
    let running = uploads(tmp.path());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        uploads(tmp.path()),
        running,
        "the analysis of 500 s of video finished in 2 s?"
    );
    // Meanwhile a second analysis is refused before its upload is stored.
    let (s, c) = error_of(post(&server, &token, files(2)));
    assert_eq!((s, c.as_str()), (429, "too_many_requests"));
    assert_eq!(uploads(tmp.path()), running);
    left_tx.send(()).unwrap();
    impatient.join().unwrap();
    wait_until(
        "the abandoned analysis to remove its files",
        Duration::from_secs(20),
        || uploads(tmp.path()).is_empty(),
    );
    // The permit is back.
    wait_until("the permit to be released", Duration::from_secs(20), || {
        let r = post(&server, &token, files(1));
        // Read to the end: a response dropped early would be a client leaving. (A text file
        // is no media: 422 once the request is served.)
        r.status() == 422 && r.text().is_ok()
    });
    assert_no_uploads(tmp.path(), "the last analysis");
}

/// A malformed body the multipart parser once answered with "not yet" forever, after it had
/// read every byte (fuzz/regressions/multipart/pending_after_the_body_ended, found by the
/// `multipart` fuzz target): the daemon answers 422 at once, keeps nothing, and the analysis slot
/// is free for the next request.
#[test]
fn a_body_that_ends_inside_a_part_is_refused_not_held() {
    let tmp = tempfile::tempdir().unwrap();
    let env = env(tmp.path(), &models());
    env.add_user("ana", "agent");
    let server = env.start();
    let token = server.login("ana");
    let input = std::fs::read(
        common::workspace_root().join("fuzz/regressions/multipart/pending_after_the_body_ended"),
    )
    .unwrap();
    // The fuzz input: two control bytes, the Content-Type line, then the body.
    let nl = input.iter().position(|&b| b == b'\n').unwrap();
    let content_type = String::from_utf8(input[2..nl].to_vec()).unwrap();
    let r = server
        .client
        .post(server.url("/api/v1/analyze"))
        .bearer_auth(&token)
        .header("Content-Type", content_type)
        .body(input[nl + 1..].to_vec())
        .timeout(Duration::from_secs(15))
        .send()
        .expect("the daemon held the request");
    let (status, code) = error_of(r);
    assert_eq!((status, code.as_str()), (422, "invalid_input"));
    assert_no_uploads(tmp.path(), "a body that ends inside a part");
    assert_eq!(post(&server, &token, files(1)).status(), 422);
}

/// A request where every file failed answers 422 `invalid_input`, with each file's error in
/// `files`, so that a script checking the status code sees it (an audio file at a sample rate the
/// decoders refuse, as an operator tried, and a text file); one analysable file among failed
/// ones keeps 200 with the per-file errors (issue 27).
#[test]
fn every_file_failed_is_422_with_each_error_and_mixed_stays_200() {
    let tmp = tempfile::tempdir().unwrap();
    let env = env(tmp.path(), &models());
    env.add_user("ana", "agent");
    let server = env.start();
    let token = server.login("ana");

    let mut wav = fixture("speech.wav");
    wav.truncate(20_000);
    // The canonical header's rate (bytes 24..28) and byte rate (28..32): 1 Hz.
    wav[24..28].copy_from_slice(&1u32.to_le_bytes());
    wav[28..32].copy_from_slice(&2u32.to_le_bytes());
    let failing = || {
        Form::new()
            .part("a", Part::bytes(wav.clone()).file_name("rate.wav"))
            .part(
                "b",
                Part::bytes(b"just text".to_vec()).file_name("notes.txt"),
            )
    };
    let r = post(&server, &token, failing());
    assert_eq!(r.status(), 422, "{}", server.log_text());
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"], "invalid_input", "{v}");
    assert!(v["message"].as_str().unwrap().contains("no file"), "{v}");
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{v}");
    assert_eq!(files[0]["file"], "rate.wav");
    let e = files[0]["error"].as_str().unwrap();
    assert!(
        e.contains("sample rate") || e.contains("not a readable WAV"),
        "{v}"
    );
    assert!(
        files[1]["error"].as_str().unwrap().contains("unsupported"),
        "{v}"
    );

    // Mixed: the picture is analysed, so 200 with the others' errors.
    let mixed = failing().part(
        "c",
        Part::bytes(fixture("astronaut.jpg")).file_name("astronaut.jpg"),
    );
    let r = post(&server, &token, mixed);
    assert_eq!(r.status(), 200, "{}", server.log_text());
    let v: Value = r.json().unwrap();
    assert!(v["files"][0]["error"].is_string(), "{v}");
    assert!(v["files"][1]["error"].is_string(), "{v}");
    assert!(v["files"][2]["error"].is_null(), "{v}");
    assert_no_uploads(tmp.path(), "the failed and the mixed analyses");
}

/// Issue 28, item 10: an upload that trickles (a byte a second) is dropped once it is slower
/// than `analyze.min_upload_bytes_per_sec` after the first 10 s, and its analysis slot is free
/// again (before: two such uploads held both slots for the whole 60-s body timeout).
#[test]
fn a_trickling_upload_is_dropped_and_frees_its_slot() {
    let tmp = tempfile::tempdir().unwrap();
    let env = env(tmp.path(), &models()).with("EMO_SERVER_BODY_TIMEOUT_SECS", "120");
    env.add_user("ana", "agent");
    let server = env.start();
    let token = server.login("ana");
    let mut s = raw_upload(&server, &token, "slow.wav");
    let t0 = std::time::Instant::now();
    // While it trickles, the one slot is taken.
    std::thread::sleep(Duration::from_secs(2));
    let (status, code) = error_of(post(&server, &token, files(1)));
    assert_eq!((status, code.as_str()), (429, "too_many_requests"));
    s.set_read_timeout(Some(Duration::from_millis(900)))
        .unwrap();
    let mut answer = Vec::new();
    while t0.elapsed() < Duration::from_secs(40) {
        if s.write_all(b"x").is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 422"), "{text}");
    assert!(text.contains("slower than 8192 bytes/s"), "{text}");
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(20), "dropped after {took:?}");
    // The slot is free again: a quick upload is analysed (every file unsupported: 422 with files).
    let r = post(&server, &token, files(1));
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().unwrap();
    assert!(body["files"].is_array(), "{body}");
    wait_until(
        "the slow upload's files are removed",
        Duration::from_secs(10),
        || uploads(tmp.path()).is_empty(),
    );
}
