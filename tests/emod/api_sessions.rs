//! Sessions, samples, stats and export on known data, and every error code, against the real
//! daemon on SQLite and on PostgreSQL.

use crate::common;

use chrono::{Datelike, Duration, TimeZone, Utc};
use common::*;
use serde_json::{json, Value};

both_backends!(concurrent_starts_give_one_running_session, |b| {
    let Some(env) = Env::new(b) else { return };
    let srv = env.start();
    let token = srv.register("alice");
    let statuses: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let r = srv.post(
                        "/api/v1/sessions",
                        Some(&token),
                        &json!({"consent": true, "sources": ["remote"]}),
                    );
                    if r.status() == 201 {
                        (201, String::new())
                    } else {
                        error_of(r)
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = statuses.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|(s, c)| *s == 201 || (*s == 409 && c == "session_already_running")),
        "{statuses:?}"
    );
    let l: Value = srv
        .get("/api/v1/sessions?status=running", Some(&token))
        .json()
        .unwrap();
    assert_eq!(l["total"], 1);
});

both_backends!(error_codes, |b| {
    let Some(env) = Env::new(b) else { return };
    let env = env.with("EMO_SERVER_JSON_LIMIT_BYTES", "4096");
    let srv = env.start();
    let token = srv.register("alice");
    let c = &srv.client;
    let post_raw = |path: &str, ctype: &str, body: String| {
        c.post(srv.url(path))
            .bearer_auth(&token)
            .header("content-type", ctype)
            .body(body)
            .send()
            .unwrap()
    };
    // 400 malformed JSON, 422 wrong types, 415 wrong content type, 413 too large.
    assert_eq!(
        error_of(post_raw(
            "/api/v1/sessions",
            "application/json",
            "{\"consent\": tru".into()
        )),
        (400, "malformed_json".into())
    );
    assert_eq!(
        error_of(post_raw(
            "/api/v1/sessions",
            "application/json",
            "{\"consent\": \"yes\"}".into()
        )),
        (422, "invalid_input".into())
    );
    assert_eq!(
        error_of(post_raw("/api/v1/sessions", "text/plain", "{}".into())),
        (415, "unsupported_media_type".into())
    );
    let big = format!(
        "{{\"consent\": true, \"label\": \"{}\"}}",
        "x".repeat(10_000)
    );
    assert_eq!(
        error_of(post_raw("/api/v1/sessions", "application/json", big)),
        (413, "payload_too_large".into())
    );
    // 400 consent_required.
    assert_eq!(
        error_of(srv.post("/api/v1/sessions", Some(&token), &json!({}))),
        (400, "consent_required".into())
    );
    assert_eq!(
        error_of(srv.post("/api/v1/sessions", Some(&token), &json!({"consent": false}))),
        (400, "consent_required".into())
    );
    // 401 / 404 / 405.
    assert_eq!(
        error_of(srv.get("/api/v1/sessions", None)),
        (401, "unauthenticated".into())
    );
    assert_eq!(
        error_of(srv.get("/api/v1/sessions/not-a-uuid", Some(&token))),
        (404, "not_found".into())
    );
    assert_eq!(
        error_of(srv.get(
            &format!("/api/v1/sessions/{}", uuid::Uuid::now_v7()),
            Some(&token)
        )),
        (404, "not_found".into())
    );
    assert_eq!(
        error_of(srv.get("/api/v1/no-such-thing", Some(&token))),
        (404, "not_found".into())
    );
    assert_eq!(
        error_of(srv.get("/nothing-here", None)),
        (404, "not_found".into())
    );
    assert_eq!(
        error_of(
            c.delete(srv.url("/api/v1/sessions"))
                .bearer_auth(&token)
                .send()
                .unwrap()
        ),
        (405, "method_not_allowed".into())
    );
    // 400 invalid query.
    assert_eq!(
        error_of(srv.get("/api/v1/stats/distribution?emotion=bored", Some(&token))),
        (400, "invalid_query".into())
    );
    assert_eq!(
        error_of(srv.get("/api/v1/stats/distribution?agnet=alice", Some(&token))),
        (400, "invalid_query".into())
    );
    assert_eq!(
        error_of(srv.get("/api/v1/sessions?limit=0", Some(&token))),
        (400, "invalid_query".into())
    );
    for path in [
        "/api/v1/sessions?offset=18446744073709551615",
        "/api/v1/sessions?offset=9223372036854775807",
    ] {
        assert_eq!(
            error_of(srv.get(path, Some(&token))),
            (400, "invalid_query".into()),
            "{path}"
        );
    }
    assert_eq!(
        error_of(srv.post(
            "/api/v1/sessions",
            Some(&token),
            &json!({"consent": true, "started_at": "1969-12-31T23:00:00Z"})
        )),
        (422, "invalid_input".into())
    );
    assert_eq!(
        error_of(srv.get("/api/v1/stats/timeline?bucket=minute", Some(&token))),
        (400, "invalid_query".into())
    );
    assert_eq!(
        error_of(srv.get("/api/v1/export?format=xml", Some(&token))),
        (400, "invalid_query".into())
    );
    // Each endpoint takes its own parameters only: export's `format` is no stats parameter,
    // the heatmap's `kind` no timeline one, the time-zone shift nothing distribution or export use.
    for path in [
        "/api/v1/stats/distribution?format=csv",
        "/api/v1/stats/timeline?format=json",
        "/api/v1/stats/heatmap?format=csv",
        "/api/v1/stats/timeline?kind=weekday_hour",
        "/api/v1/stats/heatmap?bucket=day",
        "/api/v1/stats/distribution?tz_offset_minutes=60",
        "/api/v1/export?bucket=day",
        "/api/v1/export?tz_offset_minutes=60",
    ] {
        assert_eq!(
            error_of(srv.get(path, Some(&token))),
            (400, "invalid_query".into()),
            "{path}"
        );
    }
    assert_eq!(
        error_of(srv.get(
            "/api/v1/stats/distribution?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            Some(&token)
        )),
        (400, "invalid_query".into())
    );

    // Samples: validation names the offending sample, nothing of a bad batch is stored.
    let sid = srv.start_session(&token, None);
    let second = srv.post("/api/v1/sessions", Some(&token), &json!({"consent": true}));
    assert_eq!(error_of(second), (409, "session_already_running".into()));
    let now = Utc::now().timestamp_millis();
    let mut bad = fused_samples(now, 1, &["happy", "sad"]);
    bad["samples"][1]["confidence"] = json!(7.0);
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(&token),
        &bad,
    );
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"], "invalid_input");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("samples[1].confidence"),
        "{body}"
    );
    let mut bad = fused_samples(now, 1, &["happy"]);
    bad["samples"][0]["emotion"] = json!("bored");
    assert_eq!(
        error_of(srv.post(
            &format!("/api/v1/sessions/{sid}/samples"),
            Some(&token),
            &bad
        )),
        (422, "invalid_input".into())
    );
    let mut bad = fused_samples(now, 1, &["happy"]);
    bad["samples"][0]["modality"] = json!("smell");
    assert_eq!(
        error_of(srv.post(
            &format!("/api/v1/sessions/{sid}/samples"),
            Some(&token),
            &bad
        )),
        (422, "invalid_input".into())
    );
    assert_eq!(
        error_of(srv.post(
            &format!("/api/v1/sessions/{sid}/samples"),
            Some(&token),
            &json!({"samples": []})
        )),
        (422, "invalid_input".into())
    );
    let ok = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(&token),
        &fused_samples(now, 1, &["happy", "sad"]),
    );
    assert_eq!(ok.status(), 201);
    assert_eq!(
        ok.json::<Value>().unwrap(),
        json!({"accepted": 2, "duplicates": 0})
    );
    // A broken stop body is an error and leaves the session running.
    let stop_url = srv.url(&format!("/api/v1/sessions/{sid}/stop"));
    let r = c
        .post(&stop_url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"ended_at\": ")
        .send()
        .unwrap();
    assert_eq!(error_of(r), (400, "malformed_json".into()));
    let r = c
        .post(&stop_url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"ended_at\": 17}")
        .send()
        .unwrap();
    assert_eq!(error_of(r), (422, "invalid_input".into()));
    let s: Value = srv
        .get(&format!("/api/v1/sessions/{sid}"), Some(&token))
        .json()
        .unwrap();
    assert_eq!(s["status"], "running");
    // Stop, then the session refuses samples and a second stop.
    let stopped: Value = srv
        .post(
            &format!("/api/v1/sessions/{sid}/stop"),
            Some(&token),
            &json!({}),
        )
        .json()
        .unwrap();
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(stopped["summary"]["samples"]["fused"], 2);
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(&token),
        &fused_samples(now + 5000, 1, &["sad"]),
    );
    assert_eq!(error_of(r), (409, "session_not_running".into()));
    assert_eq!(
        error_of(srv.post(
            &format!("/api/v1/sessions/{sid}/stop"),
            Some(&token),
            &json!({})
        )),
        (409, "session_not_running".into())
    );
    let s: Value = srv
        .get(&format!("/api/v1/sessions/{sid}/samples"), Some(&token))
        .json()
        .unwrap();
    assert_eq!(s["total"], 2);

    // The daemon is still healthy after all that.
    assert_eq!(srv.get("/readyz", None).status(), 200);
});

both_backends!(samples_pagination_and_summary, |b| {
    let Some(env) = Env::new(b) else { return };
    let srv = env.start();
    let token = srv.register("alice");
    let start = Utc::now() - Duration::seconds(100);
    let sid = srv.start_session(&token, Some(&start.to_rfc3339()));
    let t0 = start.timestamp_millis();
    // 60 fused windows (1/s): 30 happy, 20 sad, 10 neutral; 30 face windows; 10 voice windows.
    let mut emotions = vec!["happy"; 30];
    emotions.extend(vec!["sad"; 20]);
    emotions.extend(vec!["neutral"; 10]);
    let mut batch = fused_samples(t0, 1, &emotions);
    for i in 0..30 {
        batch["samples"].as_array_mut().unwrap().push(json!({
            "t": chrono::DateTime::from_timestamp_millis(t0 + i * 1000).unwrap().to_rfc3339(),
            "modality": "face", "emotion": "angry", "confidence": 0.5}));
    }
    for i in 0..10 {
        batch["samples"].as_array_mut().unwrap().push(json!({
            "t": chrono::DateTime::from_timestamp_millis(t0 + i * 3000).unwrap().to_rfc3339(),
            "modality": "voice", "emotion": "calm", "confidence": 0.6}));
    }
    assert_eq!(
        srv.post(
            &format!("/api/v1/sessions/{sid}/samples"),
            Some(&token),
            &batch
        )
        .status(),
        201
    );
    // Posting the same batch again is accepted but stores nothing twice.
    assert_eq!(
        srv.post(
            &format!("/api/v1/sessions/{sid}/samples"),
            Some(&token),
            &batch
        )
        .status(),
        201
    );
    let end = (start + Duration::seconds(100)).to_rfc3339();
    let s: Value = srv
        .post(
            &format!("/api/v1/sessions/{sid}/stop"),
            Some(&token),
            &json!({"ended_at": end}),
        )
        .json()
        .unwrap();
    let sum = &s["summary"];
    assert_eq!(sum["dominant"], "happy");
    assert_eq!(
        sum["samples"],
        json!({"face": 30, "voice": 10, "fused": 60})
    );
    assert!((sum["distribution"]["happy"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    assert!((sum["distribution"]["neutral"].as_f64().unwrap() - 10.0 / 60.0).abs() < 1e-9);
    assert!((sum["coverage"]["fused"].as_f64().unwrap() - 0.6).abs() < 1e-9);
    assert!((sum["coverage"]["voice"].as_f64().unwrap() - 0.1).abs() < 1e-9);
    assert_eq!(sum["duration_seconds"], 100.0);

    // Pages of 25 over the 100 stored samples, in time order.
    let mut seen = 0;
    let mut offset = 0;
    let mut last_t = String::new();
    loop {
        let p: Value = srv
            .get(
                &format!("/api/v1/sessions/{sid}/samples?limit=25&offset={offset}"),
                Some(&token),
            )
            .json()
            .unwrap();
        assert_eq!(p["total"], 100);
        for item in p["items"].as_array().unwrap() {
            let t = item["t"].as_str().unwrap().to_string();
            assert!(t >= last_t);
            last_t = t;
            seen += 1;
        }
        match p["next_offset"].as_u64() {
            Some(n) => offset = n,
            None => break,
        }
    }
    assert_eq!(seen, 100);
    let voice: Value = srv
        .get(
            &format!("/api/v1/sessions/{sid}/samples?modality=voice"),
            Some(&token),
        )
        .json()
        .unwrap();
    assert_eq!(voice["total"], 10);
    assert_eq!(voice["items"][0]["emotion"], "calm");

    // Live stream of a stopped session ends with a `stopped` event.
    let live = srv
        .get(&format!("/api/v1/sessions/{sid}/live"), Some(&token))
        .text()
        .unwrap();
    assert!(live.contains("\"type\":\"stopped\""), "{live}");
});

/// Monday 09:00 UTC at least a week ago.
fn a_monday() -> chrono::DateTime<Utc> {
    let d = Utc::now() - Duration::days(14);
    let monday = d.date_naive() - Duration::days(d.weekday().num_days_from_monday() as i64);
    Utc.from_utc_datetime(&monday.and_hms_opt(9, 0, 0).unwrap())
}

both_backends!(stats_and_export_on_known_data, |b| {
    let Some(env) = Env::new(b) else { return };
    env.add_user("root", "admin");
    let srv = env.start();
    let ann = srv.register("ann");
    let bob = srv.register("bob");
    let admin = srv.login("root");
    let mon = a_monday();
    let wed = mon + Duration::days(2) + Duration::hours(5); // Wednesday 14:00
    let m0 = mon.timestamp_millis();

    let s_ann = srv.start_session(&ann, Some(&mon.to_rfc3339()));
    let r = srv.post(
        &format!("/api/v1/sessions/{s_ann}/samples"),
        Some(&ann),
        &fused_samples(
            m0,
            60,
            &["happy", "happy", "sad", "happy", "neutral", "angry"],
        ),
    );
    assert_eq!(r.status(), 201);
    let r = srv.post(
        &format!("/api/v1/sessions/{s_ann}/samples"),
        Some(&ann),
        &fused_samples(m0 + 90 * 60_000, 60, &["surprise", "surprise"]),
    );
    assert_eq!(r.status(), 201);
    let s_bob = srv.start_session(&bob, Some(&wed.to_rfc3339()));
    let mut batch = fused_samples(wed.timestamp_millis(), 60, &["sad", "sad", "sad"]);
    batch["samples"].as_array_mut().unwrap().push(
        json!({"t": wed.to_rfc3339(), "modality": "voice", "emotion": "calm", "confidence": 0.7}),
    );
    assert_eq!(
        srv.post(
            &format!("/api/v1/sessions/{s_bob}/samples"),
            Some(&bob),
            &batch
        )
        .status(),
        201
    );
    for (sid, tok) in [(&s_ann, &ann), (&s_bob, &bob)] {
        assert_eq!(
            srv.post(
                &format!("/api/v1/sessions/{sid}/stop"),
                Some(tok),
                &json!({})
            )
            .status(),
            200
        );
    }

    let get = |path: &str, tok: &str| -> Value {
        let r = srv.get(path, Some(tok));
        assert_eq!(r.status(), 200, "{path}");
        r.json().unwrap()
    };
    let enc = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    // Distribution: all agents (fused only), one agent, one emotion, aligned and unaligned ranges.
    let d = get("/api/v1/stats/distribution", &admin);
    assert_eq!(d["total"], 11);
    assert_eq!(
        d["counts"],
        json!({"angry": 1, "happy": 3, "sad": 4, "surprise": 2, "neutral": 1})
    );
    let d = get("/api/v1/stats/distribution?agent=ann", &admin);
    assert_eq!(d["total"], 8);
    assert!((d["shares"]["happy"].as_f64().unwrap() - 3.0 / 8.0).abs() < 1e-12);
    let d = get("/api/v1/stats/distribution", &ann);
    assert_eq!(d["total"], 8, "an agent's stats are their own");
    assert_eq!(
        get("/api/v1/stats/distribution?emotion=sad", &admin)["total"],
        4
    );
    assert_eq!(
        get("/api/v1/stats/distribution?modality=voice", &admin)["counts"],
        json!({"calm": 1})
    );
    let aligned = format!(
        "/api/v1/stats/distribution?from={}&to={}",
        enc(mon),
        enc(mon + Duration::hours(1))
    );
    assert_eq!(get(&aligned, &admin)["total"], 6);
    let unaligned = format!(
        "/api/v1/stats/distribution?from={}&to={}",
        enc(mon + Duration::seconds(150)),
        enc(mon + Duration::minutes(91) + Duration::seconds(30))
    );
    let d = get(&unaligned, &admin);
    assert_eq!(
        d["counts"],
        json!({"angry": 1, "happy": 1, "surprise": 2, "neutral": 1}),
        "raw-sample path"
    );

    // Timeline in hour, day, minute buckets, with a time-zone shift.
    let t = get("/api/v1/stats/timeline?agent=ann&bucket=hour", &admin);
    let pts = t["points"].as_array().unwrap();
    assert_eq!(pts.len(), 2);
    assert_eq!(
        pts[0]["t"].as_str().unwrap(),
        mon.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    assert_eq!(pts[0]["total"], 6);
    assert_eq!(pts[0]["counts"]["happy"], 3);
    assert_eq!(pts[1]["total"], 2);
    let t = get("/api/v1/stats/timeline?bucket=day", &admin);
    let totals: Vec<u64> = t["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["total"].as_u64().unwrap())
        .collect();
    assert_eq!(totals, vec![8, 3]);
    let t = get(
        "/api/v1/stats/timeline?bucket=day&tz_offset_minutes=-600",
        &admin,
    );
    // 10 hours west, Monday 09:00 UTC is still Sunday 23:00 local.
    let first = t["points"][0]["t"].as_str().unwrap().to_string();
    assert_eq!(
        first,
        enc(mon - Duration::hours(9) - Duration::hours(24) + Duration::hours(10))
    );
    let minute = format!(
        "/api/v1/stats/timeline?bucket=minute&from={}&to={}",
        enc(mon),
        enc(mon + Duration::minutes(10))
    );
    let t = get(&minute, &admin);
    assert_eq!(t["points"].as_array().unwrap().len(), 6);
    assert!(t["points"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["total"] == 1));

    // Heatmaps.
    let h = get("/api/v1/stats/heatmap?kind=agent_emotion", &admin);
    assert_eq!(h["rows"], json!(["ann", "bob"]));
    assert_eq!(h["columns"][3], "happy");
    assert_eq!(h["cells"][0], json!([1, 0, 0, 3, 1, 2, 1, 0]));
    assert_eq!(h["cells"][1], json!([0, 0, 0, 0, 3, 0, 0, 0]));
    assert_eq!(h["max"], 3);
    let h = get("/api/v1/stats/heatmap?kind=weekday_hour", &admin);
    assert_eq!(h["cells"][0][9], 6);
    assert_eq!(h["cells"][0][10], 2);
    assert_eq!(h["cells"][2][14], 3);
    let total: u64 = h["cells"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 11);
    let h = get(
        "/api/v1/stats/heatmap?kind=weekday_hour&tz_offset_minutes=60",
        &admin,
    );
    assert_eq!(h["cells"][0][10], 6);
    assert_eq!(h["cells"][2][15], 3);
    let h = get(
        "/api/v1/stats/heatmap?kind=weekday_hour&tz_offset_minutes=30",
        &admin,
    );
    assert_eq!(h["cells"][0][9], 6, "half-hour zones use the raw path");
    assert_eq!(h["cells"][0][11], 2);
    assert_eq!(h["cells"][0][10], 0);

    // Sessions list filters.
    let l = get("/api/v1/sessions?emotion=sad", &admin);
    assert_eq!(l["total"], 1);
    assert_eq!(l["items"][0]["username"], "bob");
    let l = get("/api/v1/sessions?agent=ann&status=stopped", &admin);
    assert_eq!(l["total"], 1);
    assert_eq!(l["items"][0]["summary"]["dominant"], "happy");
    assert_eq!(get("/api/v1/sessions?status=running", &admin)["total"], 0);
    let l = get(
        &format!("/api/v1/sessions?from={}", enc(mon + Duration::days(1))),
        &admin,
    );
    assert_eq!(l["total"], 1);

    // Export: JSON rows carry the contract fields; CSV has one line per sample.
    let rows: Vec<Value> = srv
        .get("/api/v1/export?format=json&agent=bob", Some(&admin))
        .json()
        .unwrap();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        for k in [
            "session_id",
            "username",
            "t",
            "modality",
            "emotion",
            "confidence",
        ] {
            assert!(r.get(k).is_some(), "{k} missing in {r}");
        }
        assert_eq!(r["username"], "bob");
        assert_eq!(r["session_id"], s_bob.as_str());
    }
    let csv = srv
        .get("/api/v1/export?format=csv", Some(&admin))
        .text()
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("session_id,username,t,modality,emotion,confidence"));
    assert_eq!(lines.len(), 1 + 12);
    let fused_sad = get(
        "/api/v1/export?format=json&emotion=sad&modality=fused",
        &admin,
    );
    assert_eq!(fused_sad.as_array().unwrap().len(), 4);
});
