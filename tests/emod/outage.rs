//! Durability: a real PostgreSQL outage, a full spool, a graceful stop while the database is
//! down, and a crash in the middle of a session.

use crate::common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use serde_json::{json, Value};

#[test]
fn samples_survive_a_postgres_outage() {
    let Some(env) = Env::new(Backend::Postgres) else {
        return;
    };
    let env = env
        .with("EMO_WRITER_SPOOL_CAPACITY", "500")
        .with("EMO_DATABASE_CONNECT_TIMEOUT_SECS", "1");
    let srv = env.start();
    let token = srv.register("alice");
    let sid = srv.start_session(&token, None);
    let pg = env.pg.as_ref().unwrap();
    let t0 = Utc::now().timestamp_millis();
    let emotions = vec!["happy"; 100];
    assert_eq!(
        srv.post(
            &format!("/api/v1/sessions/{sid}/samples"),
            Some(&token),
            &fused_samples(t0, 0, &emotions[..1])
        )
        .status(),
        201
    );
    wait_until("first sample written", Duration::from_secs(10), || {
        pg.count("samples") == 1
    });

    pg.cut();
    // While the database refuses connections, batches are accepted into the spool...
    let mut accepted = 1;
    for k in 0..4 {
        let batch = fused_samples(t0 + 1000 + k * 100_000, 1, &emotions);
        let batch = json!({"samples": batch["samples"].as_array().unwrap().iter().enumerate().map(|(i, s)| {
            let mut s = s.clone();
            s["t"] = json!(chrono::DateTime::from_timestamp_millis(t0 + 1000 + (k * 100 + i as i64) * 100).unwrap().to_rfc3339());
            s
        }).collect::<Vec<_>>()});
        let r = srv.post(
            &format!("/api/v1/sessions/{sid}/samples"),
            Some(&token),
            &batch,
        );
        assert_eq!(r.status(), 201, "batch {k} during the outage");
        accepted += 100;
    }
    // ...readiness reports the outage...
    let r = srv.get("/readyz", None);
    assert_eq!(error_of(r), (503, "storage_unavailable".into()));
    // ...and once the spool is full, new samples are refused, not dropped.
    let batch = fused_samples(t0 + 40_000, 0, &emotions[..1]);
    let more = json!({"samples": (0..150).map(|i| {
        let mut s = batch["samples"][0].clone();
        s["t"] = json!(chrono::DateTime::from_timestamp_millis(t0 + 42_000 + i * 100).unwrap().to_rfc3339());
        s
    }).collect::<Vec<_>>()});
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(&token),
        &more,
    );
    assert_eq!(error_of(r), (503, "storage_unavailable".into()));
    // Stopping needs the samples written first: it reports the outage instead of a wrong summary.
    let metrics = srv.get("/metrics", None).text().unwrap();
    assert!(
        metrics.contains("emo_writer_pending_samples 400"),
        "{metrics}"
    );

    pg.restore();
    wait_until("spooled samples written", Duration::from_secs(60), || {
        pg.count("samples") == accepted
    });
    assert_eq!(srv.get("/readyz", None).status(), 200);
    let s: Value = srv
        .post(
            &format!("/api/v1/sessions/{sid}/stop"),
            Some(&token),
            &json!({}),
        )
        .json()
        .unwrap();
    assert_eq!(s["summary"]["samples"]["fused"], accepted);
    assert_eq!(pg.count("samples"), 401);
}

#[test]
fn graceful_stop_during_an_outage_spools_to_disk() {
    let Some(env) = Env::new(Backend::Postgres) else {
        return;
    };
    let env = env.with("EMO_DATABASE_CONNECT_TIMEOUT_SECS", "1");
    let mut srv = env.start();
    let token = srv.register("alice");
    let sid = srv.start_session(&token, None);
    let pg = env.pg.as_ref().unwrap();
    pg.cut();
    let t0 = Utc::now().timestamp_millis();
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(&token),
        &fused_samples(t0, 1, &["sad"; 20]),
    );
    assert_eq!(r.status(), 201);
    srv.sigterm();
    let files: Vec<_> = std::fs::read_dir(env.spool_dir()).unwrap().collect();
    assert_eq!(files.len(), 1, "one spool file; log:\n{}", srv.log_text());
    pg.restore();
    assert_eq!(pg.count("samples"), 0);
    // Next start replays the spool file and removes it.
    let srv = env.start();
    assert_eq!(pg.count("samples"), 20);
    assert_eq!(std::fs::read_dir(env.spool_dir()).unwrap().count(), 0);
    let token = srv.login("alice");
    let s: Value = srv
        .get(
            &format!("/api/v1/sessions/{sid}/samples?limit=100"),
            Some(&token),
        )
        .json()
        .unwrap();
    assert_eq!(s["total"], 20);
}

#[test]
fn a_batch_the_database_refuses_is_set_aside_not_dropped() {
    let Some(env) = Env::new(Backend::Postgres) else {
        return;
    };
    let mut srv = env.start();
    let token = srv.register("alice");
    let sid = srv.start_session(&token, None);
    let pg = env.pg.as_ref().unwrap();
    // The database stays reachable (pings work) but refuses every write, as a standby promoted
    // read-only or a full disk would.
    pg.admin_sql(&format!(
        "ALTER DATABASE {} SET default_transaction_read_only = on",
        pg.name
    ));
    pg.kill_connections();
    let t0 = Utc::now().timestamp_millis();
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(&token),
        &fused_samples(t0, 1, &["angry"; 25]),
    );
    assert_eq!(r.status(), 201);
    wait_until("refused batch set aside", Duration::from_secs(30), || {
        let m = srv.get("/metrics", None).text().unwrap();
        m.contains("emo_samples_total{fate=\"set_aside\"} 25")
    });
    let m = srv.get("/metrics", None).text().unwrap();
    assert!(m.contains("emo_samples_total{fate=\"dropped\"} 0"), "{m}");
    assert!(m.contains("emo_writer_pending_samples 0"), "{m}");
    let files: Vec<String> = std::fs::read_dir(env.spool_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with("refused-"), "{files:?}");
    assert_eq!(pg.count("samples"), 0);
    // Later samples are not blocked behind the refused batch.
    srv.sigterm();

    // Once the database takes writes again, the next start writes them and removes the file.
    pg.admin_sql(&format!(
        "ALTER DATABASE {} RESET default_transaction_read_only",
        pg.name
    ));
    let srv = env.start();
    assert_eq!(pg.count("samples"), 25);
    assert_eq!(std::fs::read_dir(env.spool_dir()).unwrap().count(), 0);
    let token = srv.login("alice");
    let s: Value = srv
        .get(&format!("/api/v1/sessions/{sid}"), Some(&token))
        .json()
        .unwrap();
    assert_eq!(s["summary"]["samples"]["fused"], 25, "{s}");
}

/// The shutdown flush, exercised for real: the samples table is locked from outside, so 200
/// accepted samples provably wait in the writer (the pending gauge says so) when SIGTERM
/// arrives; the lock is released during the shutdown, the daemon writes them and exits 0, and
/// after a restart every one is there. (If `serve()` dropped its queue on exit, they would be
/// spooled or lost, and the test fails.)
#[test]
fn sigterm_flushes_every_accepted_sample() {
    let Some(env) = Env::new(Backend::Postgres) else {
        return;
    };
    let mut srv = env.start();
    let token = srv.register("alice");
    let started = Utc::now() - chrono::Duration::minutes(10);
    let sid = srv.start_session(&token, Some(&started.to_rfc3339()));
    let t0 = started.timestamp_millis() + 1_000;
    let pg = env.pg.as_ref().unwrap();

    // Another client holds the samples table: the writer's inserts wait behind it.
    let lock = pg.lock_table("samples", Duration::from_secs(60));
    let mut accepted = 0;
    for k in 0..5 {
        let r = srv.post(
            &format!("/api/v1/sessions/{sid}/samples"),
            Some(&token),
            &fused_samples(t0 + k * 60_000, 1, &["surprise"; 40]),
        );
        assert_eq!(r.status(), 201);
        accepted += r.json::<Value>().unwrap()["accepted"].as_i64().unwrap();
        if k == 0 {
            // The writer takes the first batch and waits behind the lock; the next four stay
            // in its queue.
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert_eq!(accepted, 200);
    let pending = || {
        srv.get("/metrics", None)
            .text()
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("emo_writer_pending_samples "))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(-1)
    };
    assert_eq!(pending(), 200, "the samples must be waiting at SIGTERM");
    assert_eq!(pg.count("samples"), 0);
    // Release the table a moment after SIGTERM: the shutdown flush must wait and write.
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        lock.release();
    });
    let status = srv.sigterm_status().expect("emod was running");
    releaser.join().unwrap();
    assert!(status.success(), "emod exited with {status}");
    assert!(
        !path_exists(&env.spool_dir()) || std::fs::read_dir(env.spool_dir()).unwrap().count() == 0,
        "the shutdown flush spooled instead of writing"
    );
    assert_eq!(pg.count("samples"), 200, "written by the shutdown flush");
    let srv = env.start();
    let token = srv.login("alice");
    let s: Value = srv
        .get(
            &format!("/api/v1/sessions/{sid}/samples?limit=1"),
            Some(&token),
        )
        .json()
        .unwrap();
    assert_eq!(s["total"], accepted);
}

both_backends!(crash_marks_session_interrupted_and_keeps_samples, |b| {
    let Some(env) = Env::new(b) else { return };
    let mut srv = env.start();
    let token = srv.register("alice");
    let sid = srv.start_session(&token, None);
    let t0 = Utc::now().timestamp_millis();
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(&token),
        &fused_samples(t0, 1, &["happy", "happy", "fear"]),
    );
    assert_eq!(r.status(), 201);
    wait_until("samples flushed", Duration::from_secs(10), || {
        let m = srv.get("/metrics", None).text().unwrap();
        m.contains("emo_samples_total{fate=\"written\"} 3")
    });
    srv.sigkill();
    let srv = env.start();
    let token = srv.login("alice");
    let s: Value = srv
        .get(&format!("/api/v1/sessions/{sid}"), Some(&token))
        .json()
        .unwrap();
    assert_eq!(s["status"], "interrupted");
    assert_eq!(s["summary"]["samples"]["fused"], 3);
    assert_eq!(s["summary"]["dominant"], "happy");
    // A new session can start.
    srv.start_session(&token, None);
});

both_backends!(retention_deletes_old_sessions_and_their_counts, |b| {
    let Some(env) = Env::new(b) else { return };
    let env = env.with("EMO_PRIVACY_RETENTION_DAYS", "7");
    let mut srv = env.start();
    let token = srv.register("alice");
    let old = Utc::now() - chrono::Duration::days(14);
    let sid = srv.start_session(&token, Some(&old.to_rfc3339()));
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(&token),
        &fused_samples(old.timestamp_millis(), 1, &["sad", "sad"]),
    );
    assert_eq!(r.status(), 201);
    let end = (old + chrono::Duration::minutes(5)).to_rfc3339();
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/stop"),
        Some(&token),
        &json!({"ended_at": end}),
    );
    assert_eq!(r.status(), 200);
    let recent = srv.start_session(&token, None);
    let t = Utc::now().timestamp_millis();
    let r = srv.post(
        &format!("/api/v1/sessions/{recent}/samples"),
        Some(&token),
        &fused_samples(t, 1, &["happy"]),
    );
    assert_eq!(r.status(), 201);
    wait_until("samples written", Duration::from_secs(10), || {
        srv.get("/api/v1/stats/distribution", Some(&token))
            .json::<Value>()
            .unwrap()["total"]
            == 3
    });
    // Retention runs at start and then hourly.
    srv.sigterm();
    let srv = env.start();
    let token = srv.login("alice");
    assert_eq!(
        error_of(srv.get(&format!("/api/v1/sessions/{sid}"), Some(&token))),
        (404, "not_found".into())
    );
    let d: Value = srv
        .get("/api/v1/stats/distribution", Some(&token))
        .json()
        .unwrap();
    assert_eq!(
        d["counts"],
        json!({"happy": 1}),
        "old samples and their roll-up counts are gone"
    );
    let l: Value = srv.get("/api/v1/sessions", Some(&token)).json().unwrap();
    assert_eq!(l["total"], 1);
});
