//! Issue 18, item 7: one agent flooding the shared writer queue, replayed against the real
//! `emod` binary. A per-user quota keeps the flood to that agent's share (429 with Retry-After),
//! the other agents still post and stop, duplicate re-posts are answered as such (`accepted`
//! counts only what will be stored) and the live stream carries every sample once.
use crate::common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::time::Duration;

use chrono::Utc;
use common::*;
use serde_json::{json, Value};

/// `n` fused samples at `start_ms`, `start_ms + 100`, … (the densest a session accepts: one per
/// modality per 100 ms; all distinct keys).
fn samples_from(start_ms: i64, n: i64) -> Value {
    let samples: Vec<Value> = (0..n)
        .map(|i| {
            let t = chrono::DateTime::from_timestamp_millis(start_ms + i * 100).unwrap();
            json!({"t": t.to_rfc3339(), "modality": "fused", "emotion": "happy", "confidence": 0.9,
                   "probabilities": {"happy": 0.9, "neutral": 0.1}})
        })
        .collect();
    json!({ "samples": samples })
}

fn post(srv: &Server, token: &str, sid: &str, body: &Value) -> (u16, Value, Option<String>) {
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(token),
        body,
    );
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, r.json().unwrap_or(Value::Null), retry)
}

/// Reads a session's SSE stream until its `stopped` event; the (modality, t) of every sample
/// event, in arrival order.
fn collect_live(
    srv: &Server,
    token: &str,
    sid: &str,
) -> std::thread::JoinHandle<Vec<(String, String)>> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let resp = client
        .get(srv.url(&format!("/api/v1/sessions/{sid}/live")))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut lines = BufReader::new(resp).lines();
    // The stream is subscribed once its first comment arrives.
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, ": connected");
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in lines {
            let line = line.unwrap();
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            let ev: Value = serde_json::from_str(data).unwrap();
            match ev["type"].as_str() {
                Some("stopped") => break,
                Some("sample") => seen.push((
                    ev["modality"].as_str().unwrap().to_string(),
                    ev["t"].as_str().unwrap().to_string(),
                )),
                _ => {}
            }
        }
        seen
    })
}

/// The writer is held (the samples table is locked from outside, so nothing drains) while one
/// agent floods it: it gets exactly `writer.user_quota` samples in, then 429 with Retry-After;
/// the other agent still posts (the shared spool is not full) and, once the database is back,
/// stops with 200. Re-posts are `accepted: 0` with `duplicates`, and the live stream shows
/// every sample once.
#[test]
fn one_agent_cannot_fill_the_spool_and_duplicates_are_not_counted() {
    let Some(env) = Env::new(Backend::Postgres) else {
        return;
    };
    // Spool 500, quota 300 per user: without the quota the flood takes all 500 and the other
    // agent's post gets 503.
    let env = env
        .with("EMO_WRITER_SPOOL_CAPACITY", "500")
        .with("EMO_WRITER_USER_QUOTA", "300");
    let srv = env.start();
    let alice = srv.register("alice");
    let bob = srv.register("bob");
    let started = Utc::now() - chrono::Duration::minutes(10);
    let a_sid = srv.start_session(&alice, Some(&started.to_rfc3339()));
    let b_sid = srv.start_session(&bob, Some(&started.to_rfc3339()));
    let t0 = started.timestamp_millis() + 1_000;
    let live = collect_live(&srv, &alice, &a_sid);

    // Before the flood: a batch and its re-post, the re-post answered as duplicates.
    let first = samples_from(t0, 100);
    let (s, body, _) = post(&srv, &alice, &a_sid, &first);
    assert_eq!((s, body["accepted"].as_i64()), (201, Some(100)), "{body}");
    let (s, body, _) = post(&srv, &alice, &a_sid, &first);
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["accepted"], 0, "a re-post stores nothing: {body}");
    assert_eq!(body["duplicates"], 100, "{body}");
    // Half old, half new: only the new half counts.
    let (s, body, _) = post(&srv, &alice, &a_sid, &samples_from(t0 + 50 * 100, 100));
    assert_eq!(s, 201, "{body}");
    assert_eq!(
        (body["accepted"].as_i64(), body["duplicates"].as_i64()),
        (Some(50), Some(50))
    );
    wait_until("the first samples written", Duration::from_secs(20), || {
        env.pg.as_ref().unwrap().count("samples") == 150
    });

    // The database stops taking samples: another client holds the table.
    let pg = env.pg.as_ref().unwrap();
    let lock = pg.lock_table("samples", Duration::from_secs(120));

    // The flood: new batches (each interleaved with a re-post of the first) until refused.
    let mut accepted_in_flood = 0;
    let mut refusal = None;
    for k in 0..20 {
        let (s, body, retry) = post(
            &srv,
            &alice,
            &a_sid,
            &samples_from(t0 + (1_000 + k * 100) * 100, 100),
        );
        if s != 201 {
            refusal = Some((s, body, retry));
            break;
        }
        accepted_in_flood += body["accepted"].as_i64().unwrap();
        let (s, body, _) = post(&srv, &alice, &a_sid, &first);
        assert_eq!((s, body["accepted"].as_i64()), (201, Some(0)), "{body}");
    }
    let (status, body, retry) = refusal.expect("the flood was never refused");
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "too_many_requests", "{body}");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(accepted_in_flood, 300, "exactly the quota got in");

    // Another agent is not affected: its samples are taken.
    let (s, body, _) = post(&srv, &bob, &b_sid, &samples_from(t0, 100));
    assert_eq!(
        (s, body["accepted"].as_i64()),
        (201, Some(100)),
        "bob: {body}"
    );

    // The database comes back: bob stops (his samples written), alice's queue drains.
    lock.release();
    let r = srv.post(
        &format!("/api/v1/sessions/{b_sid}/stop"),
        Some(&bob),
        &json!({}),
    );
    assert_eq!(r.status(), 200, "bob's stop: {}", r.text().unwrap());
    // Re-posting what is now stored is still no new sample.
    let (s, body, _) = post(&srv, &alice, &a_sid, &samples_from(t0 + 1_000 * 100, 100));
    assert_eq!((s, body["accepted"].as_i64()), (201, Some(0)), "{body}");
    assert_eq!(body["duplicates"], 100, "{body}");
    let r = srv.post(
        &format!("/api/v1/sessions/{a_sid}/stop"),
        Some(&alice),
        &json!({}),
    );
    assert_eq!(r.status(), 200, "alice's stop: {}", r.text().unwrap());
    let stopped: Value = r.json().unwrap();
    assert_eq!(
        stopped["summary"]["samples"]["fused"],
        150 + 300,
        "{stopped}"
    );
    assert_eq!(pg.count("samples"), 150 + 300 + 100);

    // Every stored sample was published live exactly once, and nothing else.
    let seen = live.join().unwrap();
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a sample was published twice");
    assert_eq!(seen.len(), 150 + 300, "live samples");
}

/// A second daemon on the same database (another node) knows the session's stored samples:
/// its first post for the session loads their keys, so re-posts of samples the first daemon
/// stored are answered as duplicates there too.
#[test]
fn another_node_recognises_stored_samples_as_duplicates() {
    let mut env = Env::new(Backend::Sqlite).unwrap();
    let a = env.start();
    let alice = a.register("alice");
    let started = Utc::now() - chrono::Duration::minutes(10);
    let sid = a.start_session(&alice, Some(&started.to_rfc3339()));
    let t0 = started.timestamp_millis() + 1_000;
    let (s, body, _) = post(&a, &alice, &sid, &samples_from(t0, 80));
    assert_eq!((s, body["accepted"].as_i64()), (201, Some(80)), "{body}");
    wait_until("80 samples stored", Duration::from_secs(20), || {
        let page: Value = a
            .get(
                &format!("/api/v1/sessions/{sid}/samples?limit=1"),
                Some(&alice),
            )
            .json()
            .unwrap();
        page["total"] == 80
    });
    env.extra
        .push(("EMO_SERVER_NODE_NAME".into(), "node-b".into()));
    let b = env.start();
    let (s, body, _) = post(&b, &alice, &sid, &samples_from(t0 + 40 * 100, 80));
    assert_eq!(s, 201, "{body}");
    assert_eq!(
        (body["accepted"].as_i64(), body["duplicates"].as_i64()),
        (Some(40), Some(40)),
        "{body}"
    );
    let r = b.post(
        &format!("/api/v1/sessions/{sid}/stop"),
        Some(&alice),
        &json!({}),
    );
    assert_eq!(r.status(), 200);
    let s: Value = r.json().unwrap();
    assert_eq!(s["summary"]["samples"]["fused"], 120, "{s}");
}

/// Issue 28 item 12: what the validation let through. A fused sample with a `calm`
/// probability, a stop dated 59 s ahead, labels and display names with U+202E, U+2028 or a
/// zero-width joiner, an unknown source echoed whole: each 422 `invalid_input` now, and the
/// message of a 100 KB source is short.
#[test]
fn validation_round_two() {
    let env = Env::new(Backend::Sqlite).unwrap();
    env.add_user("root", "admin");
    let srv = env.start();
    let ann = srv.register("ann");
    let root = srv.login("root");
    let invalid = |r: reqwest::blocking::Response, what: &str| {
        let status = r.status().as_u16();
        let body: Value = r.json().unwrap();
        assert_eq!(
            (status, body["error"].as_str()),
            (422, Some("invalid_input")),
            "{what}: {body}"
        );
        body
    };
    let sid = srv.start_session(&ann, None);
    let t = Utc::now().to_rfc3339();
    let calm = json!({"samples": [{"t": t, "modality": "fused", "emotion": "happy", "confidence": 0.6,
        "probabilities": {"happy": 0.6, "calm": 0.4}}]});
    invalid(
        srv.post(
            &format!("/api/v1/sessions/{sid}/samples"),
            Some(&ann),
            &calm,
        ),
        "fused sample with a calm probability",
    );
    let ahead = (Utc::now() + chrono::Duration::seconds(59)).to_rfc3339();
    invalid(
        srv.post(
            &format!("/api/v1/sessions/{sid}/stop"),
            Some(&ann),
            &json!({"ended_at": ahead}),
        ),
        "ended_at 59 s ahead",
    );
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/stop"),
        Some(&ann),
        &json!({}),
    );
    assert_eq!(r.status(), 200);
    for bad in [
        "evil\u{202E}txt.exe",
        "line\u{2028}break",
        "a\u{200D}b",
        "\u{FEFF}bom",
    ] {
        invalid(
            srv.post(
                "/api/v1/sessions",
                Some(&ann),
                &json!({"consent": true, "sources": ["remote"], "label": bad}),
            ),
            &format!("label {bad:?}"),
        );
        invalid(
            srv.patch(
                "/api/v1/users/ann",
                Some(&root),
                &json!({"display_name": bad}),
            ),
            &format!("display name {bad:?}"),
        );
    }
    let huge = "x".repeat(100_000);
    let body = invalid(
        srv.post(
            "/api/v1/sessions",
            Some(&ann),
            &json!({"consent": true, "sources": [huge]}),
        ),
        "100 KB source",
    );
    assert!(body["message"].as_str().unwrap().len() < 200, "{body}");
    // Ordinary text still passes.
    let r = srv.post(
        "/api/v1/sessions",
        Some(&ann),
        &json!({"consent": true, "sources": ["remote"], "label": "Réunion – équipe 2 ✓"}),
    );
    assert_eq!(r.status(), 201);
}

/// Issue 28, item 12 (rest): a name that looks like another one cannot be created, and a body is
/// not parsed for a caller who is not authenticated.
#[test]
fn lookalike_names_and_bodies_before_authentication() {
    let env = Env::new(Backend::Sqlite).unwrap();
    env.add_user("root", "admin");
    let srv = env.start();
    srv.register("alice");
    let root = srv.login("root");
    let refused = |r: reqwest::blocking::Response, what: &str| {
        let status = r.status().as_u16();
        let body: Value = r.json().unwrap();
        assert_eq!(
            (status, body["error"].as_str()),
            (422, Some("invalid_input")),
            "{what}: {body}"
        );
    };
    for name in ["alice.", "alice-", "al..ice", "al_-ice"] {
        refused(
            srv.post(
                "/api/v1/auth/register",
                None,
                &json!({"username": name, "password": PASSWORD}),
            ),
            &format!("register {name}"),
        );
        refused(
            srv.post(
                "/api/v1/users",
                Some(&root),
                &json!({"username": name, "password": PASSWORD, "role": "agent"}),
            ),
            &format!("admin creates {name}"),
        );
    }
    let r = srv.post(
        "/api/v1/users",
        Some(&root),
        &json!({"username": "a.l-i_ce2", "password": PASSWORD, "role": "agent"}),
    );
    assert_eq!(
        r.status(),
        201,
        "single separators between letters are fine"
    );
    // A malformed or ill-typed body from a caller with a token that is not valid: 401, not the
    // body's error (before: 400 malformed_json / 422 with the field that was wrong).
    let sid = uuid::Uuid::now_v7();
    for path in [
        "/api/v1/users".to_string(),
        "/api/v1/sessions".to_string(),
        format!("/api/v1/sessions/{sid}/samples"),
        "/api/v1/users/alice".to_string(),
    ] {
        for body in ["{bad", r#"{"username": 7}"#] {
            let req = if path.ends_with("/alice") {
                reqwest::blocking::Client::new().patch(srv.url(&path))
            } else {
                reqwest::blocking::Client::new().post(srv.url(&path))
            };
            for token in [None, Some("emo_not-a-real-token")] {
                let mut req = req
                    .try_clone()
                    .unwrap()
                    .header("content-type", "application/json")
                    .body(body);
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let r = req.send().unwrap();
                let status = r.status().as_u16();
                let answer: Value = r.json().unwrap();
                assert_eq!(
                    (status, answer["error"].as_str()),
                    (401, Some("unauthenticated")),
                    "{path} {body} token {token:?}: {answer}"
                );
            }
        }
    }
}

/// Issue 28, item 6: a session takes at most one sample per modality per 100 ms, across batches
/// too (before: a backdated session took 5.77 M samples in 60 s); the whole batch is refused.
#[test]
fn samples_denser_than_a_session_makes_are_refused() {
    let env = Env::new(Backend::Sqlite).unwrap();
    let srv = env.start();
    let ann = srv.register("ann");
    let started = Utc::now() - chrono::Duration::minutes(10);
    let sid = srv.start_session(&ann, Some(&started.to_rfc3339()));
    let t0 = started.timestamp_millis() + 1_000;
    let at = |ms: i64, modality: &str| {
        json!({"t": chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339(),
               "modality": modality, "emotion": "happy", "confidence": 0.9,
               "probabilities": {"happy": 0.9, "neutral": 0.1}})
    };
    let send = |samples: Vec<Value>| post(&srv, &ann, &sid, &json!({ "samples": samples }));
    // One burst of 2,000 samples 10 ms apart.
    let burst: Vec<Value> = (0..2_000).map(|i| at(t0 + i * 10, "fused")).collect();
    let (s, body, _) = send(burst);
    assert_eq!(
        (s, body["error"].as_str()),
        (422, Some("invalid_input")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("samples[1]"),
        "{body}"
    );
    // Three modalities at one instant, and 100 ms apart: a real session's shape.
    let (s, body, _) = send(vec![
        at(t0, "face"),
        at(t0, "voice"),
        at(t0, "fused"),
        at(t0 + 100, "face"),
    ]);
    assert_eq!((s, body["accepted"].as_i64()), (201, Some(4)), "{body}");
    // Across batches: 50 ms after a stored face is refused, the exact same one is a duplicate.
    let (s, body, _) = send(vec![at(t0 + 1_000, "face"), at(t0 + 150, "face")]);
    assert_eq!(
        (s, body["error"].as_str()),
        (422, Some("invalid_input")),
        "{body}"
    );
    let (s, body, _) = send(vec![at(t0 + 100, "face"), at(t0 + 200, "face")]);
    assert_eq!(
        (s, body["accepted"].as_i64(), body["duplicates"].as_i64()),
        (201, Some(1), Some(1)),
        "{body}"
    );
    wait_until("stored", Duration::from_secs(10), || {
        srv.get(&format!("/api/v1/sessions/{sid}/samples"), Some(&ann))
            .json::<Value>()
            .unwrap()["total"]
            == 5
    });
}
