//! `POST /api/v1/analyze` on the real daemon (SQLite): auth required, multipart files in, the
//! same JSON as `emod analyze --json` out, upload size limit, unsupported files reported per file.
use crate::common;
use crate::models;

use std::path::{Path, PathBuf};

use common::{Backend, Env};
use reqwest::blocking::multipart::{Form, Part};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn models() -> PathBuf {
    std::env::var_os("EMO_TEST_MODELS_DIR").map_or_else(|| root().join("models"), PathBuf::from)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(root().join("emo-inference/tests/fixtures").join(name)).unwrap()
}

#[test]
fn analyze_endpoint() {
    let env = Env::new(Backend::Sqlite)
        .unwrap()
        .with("EMO_MODELS_DIR", &models().display().to_string())
        .with("EMO_SERVER_UPLOAD_LIMIT_BYTES", "150000")
        .with("EMO_ONNXRUNTIME_INTRA_THREADS", "1");
    env.add_user("ana", "agent");
    let server = env.start();
    let token = server.login("ana");
    let url = server.url("/api/v1/analyze");
    let form = || {
        Form::new()
            .part(
                "file",
                Part::bytes(fixture("astronaut.jpg")).file_name("astronaut.jpg"),
            )
            .part(
                "other",
                Part::bytes(b"just text".to_vec()).file_name("notes.txt"),
            )
    };

    let r = server.client.post(&url).multipart(form()).send().unwrap();
    assert_eq!(r.status(), 401);

    let r = server
        .client
        .post(&url)
        .bearer_auth(&token)
        .multipart(form())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", server.log_text());
    let v: Value = r.json().unwrap();
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["file"], "astronaut.jpg");
    assert!(
        files[1]["error"].as_str().unwrap().contains("unsupported"),
        "{v}"
    );
    if models::have_models(&models(), &["expression"]) {
        assert!(files[0]["error"].is_null(), "{v}");
        assert_eq!(files[0]["faces"].as_array().unwrap().len(), 1);
    }

    // Over the upload limit (speech.wav is ~180 kB).
    let big = Form::new().part(
        "f",
        Part::bytes(fixture("speech.wav")).file_name("speech.wav"),
    );
    let r = server
        .client
        .post(&url)
        .bearer_auth(&token)
        .multipart(big)
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().unwrap()["error"], "payload_too_large");

    // No file at all.
    let r = server
        .client
        .post(&url)
        .bearer_auth(&token)
        .multipart(Form::new().text("x", "y"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 422);
}

#[test]
fn analyze_without_models_is_models_unavailable() {
    // A models directory without a manifest: the daemon still serves everything else, and
    // analysis answers 503 with a stable code and a message naming the problem.
    let empty = tempfile::tempdir().unwrap();
    let env = Env::new(Backend::Sqlite)
        .unwrap()
        .with("EMO_MODELS_DIR", &empty.path().display().to_string());
    env.add_user("ana", "agent");
    let server = env.start();
    let token = server.login("ana");
    let form = Form::new().part(
        "file",
        Part::bytes(fixture("astronaut.jpg")).file_name("astronaut.jpg"),
    );
    let r = server
        .client
        .post(server.url("/api/v1/analyze"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"], "models_unavailable", "{v}");
    assert!(v["message"].as_str().unwrap().contains("manifest"), "{v}");
    assert_eq!(server.get("/healthz", None).status(), 200);
}
