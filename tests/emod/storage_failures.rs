//! What clients see when storage fails in ways other than a clean outage: a batch the database
//! keeps refusing (set aside, later batches still written, the file kept while it is still
//! refused at the next start), a stop during a PostgreSQL outage, and reads (export, sample
//! listing) while accepted samples cannot be written.

use crate::common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};
use serde_json::{json, Value};

fn count_samples(env: &Env) -> i64 {
    env.sql_lines("SELECT CAST(COUNT(*) AS TEXT) AS r FROM samples")[0]
        .parse()
        .unwrap()
}

/// A database that stays reachable but refuses every sample with `t < cut_ms` (as a constraint
/// added by hand, a corrupt index or a full tablespace for one partition would).
fn refuse_samples_before(env: &Env, cut_ms: i64) {
    match env.backend {
        Backend::Postgres => env.sql(&format!(
            "CREATE FUNCTION refuse_samples() RETURNS trigger LANGUAGE plpgsql AS
                   $$ BEGIN IF NEW.t < {cut_ms} THEN RAISE EXCEPTION 'refused by the test'; END IF;
                      RETURN NEW; END $$;
                 CREATE TRIGGER refuse_samples BEFORE INSERT ON samples
                   FOR EACH ROW EXECUTE FUNCTION refuse_samples();"
        )),
        Backend::Sqlite => env.sql(&format!(
            "CREATE TRIGGER refuse_samples BEFORE INSERT ON samples WHEN NEW.t < {cut_ms}
                   BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
        )),
    }
}

fn accept_samples(env: &Env) {
    match env.backend {
        Backend::Postgres => {
            env.sql("DROP TRIGGER refuse_samples ON samples; DROP FUNCTION refuse_samples();")
        }
        Backend::Sqlite => env.sql("DROP TRIGGER refuse_samples;"),
    }
}

fn spool_files(env: &Env) -> Vec<String> {
    match std::fs::read_dir(env.spool_dir()) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn metric(srv: &Server, line_prefix: &str) -> Option<i64> {
    srv.get("/metrics", None)
        .text()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
}

both_backends!(
    a_refused_batch_does_not_block_later_ones_and_waits_for_a_fix,
    |b| {
        let Some(env) = Env::new(b) else { return };
        let mut srv = env.start();
        let token = srv.register("alice");
        let started = Utc::now() - chrono::Duration::minutes(10);
        let sid = srv.start_session(&token, Some(&started.to_rfc3339()));
        let t0 = started.timestamp_millis() + 1_000;
        let cut = t0 + 60_000;
        refuse_samples_before(&env, cut);
        let samples = format!("/api/v1/sessions/{sid}/samples");
        let r = srv.post(
            &samples,
            Some(&token),
            &fused_samples(t0, 1, &["angry"; 25]),
        );
        assert_eq!(r.status(), 201);
        wait_until("refused batch set aside", Duration::from_secs(30), || {
            metric(&srv, "emo_samples_total{fate=\"set_aside\"} ") == Some(25)
        });
        let files = spool_files(&env);
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].starts_with("refused-"), "{files:?}");

        // A later batch the database takes is written; the refused one does not hold it up.
        let r = srv.post(
            &samples,
            Some(&token),
            &fused_samples(cut + 1_000, 1, &["happy"; 10]),
        );
        assert_eq!(r.status(), 201);
        wait_until("later batch written", Duration::from_secs(30), || {
            count_samples(&env) == 10
        });
        assert_eq!(
            metric(&srv, "emo_samples_total{fate=\"dropped\"} "),
            Some(0)
        );
        assert_eq!(spool_files(&env), files);
        srv.sigterm();

        // Still refused at the next start: the daemon serves, the file is kept, nothing is lost.
        let srv = env.start();
        assert_eq!(srv.get("/readyz", None).status(), 200);
        assert_eq!(count_samples(&env), 10);
        assert_eq!(
            spool_files(&env),
            files,
            "a still-refused spool file was removed"
        );
        drop(srv);

        // Once the database takes them, the next start writes them and removes the file.
        accept_samples(&env);
        let srv = env.start();
        assert_eq!(count_samples(&env), 35);
        assert!(spool_files(&env).is_empty());
        let token = srv.login("alice");
        let s: Value = srv
            .get(&format!("{samples}?limit=100"), Some(&token))
            .json()
            .unwrap();
        assert_eq!(s["total"], 35);
    }
);

/// Stopping a session needs its samples written (the summary counts them): during an outage
/// it is refused with 503 `storage_unavailable`, and works once the database is back.
#[test]
fn stop_during_an_outage_is_503_storage_unavailable() {
    let Some(env) = Env::new(Backend::Postgres) else {
        return;
    };
    let env = env.with("EMO_DATABASE_CONNECT_TIMEOUT_SECS", "1");
    let srv = env.start();
    let token = srv.register("alice");
    let sid = srv.start_session(&token, None);
    let pg = env.pg.as_ref().unwrap();
    pg.cut();
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(&token),
        &fused_samples(Utc::now().timestamp_millis(), 1, &["sad"; 5]),
    );
    assert_eq!(r.status(), 201);
    let stop = format!("/api/v1/sessions/{sid}/stop");
    assert_eq!(
        error_of(srv.post(&stop, Some(&token), &json!({}))),
        (503, "storage_unavailable".into())
    );
    pg.restore();
    wait_until("samples written", Duration::from_secs(60), || {
        pg.count("samples") == 5
    });
    let r = srv.post(&stop, Some(&token), &json!({}));
    assert_eq!(r.status(), 200);
    let s: Value = r.json().unwrap();
    assert_eq!(s["status"], "stopped");
    assert_eq!(s["summary"]["samples"]["fused"], 5, "{s}");
}

// Samples accepted but not yet written (the writer is blocked by a lock another client holds on
// the samples table) must not silently be missing from an export or a sample listing: the read
// fails with 503 `storage_unavailable`, and once they are written it returns all of them.
both_backends!(reads_fail_rather_than_miss_accepted_samples, |b| {
    let Some(env) = Env::new(b) else { return };
    let srv = env.start();
    let token = srv.register("alice");
    let started = Utc::now() - chrono::Duration::minutes(10);
    let sid = srv.start_session(&token, Some(&started.to_rfc3339()));
    let t0 = started.timestamp_millis() + 1_000;
    let samples = format!("/api/v1/sessions/{sid}/samples");
    let r = srv.post(&samples, Some(&token), &fused_samples(t0, 1, &["fear"; 5]));
    assert_eq!(r.status(), 201);
    wait_until("first batch written", Duration::from_secs(10), || {
        count_samples(&env) == 5
    });

    // Another client takes the write lock: the writer's next insert waits behind it.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (backend, pg_url, sqlite) = (
        env.backend,
        env.pg.as_ref().map(|p| p.url.clone()),
        env.sqlite_path(),
    );
    let holder = std::thread::spawn(move || match backend {
        Backend::Postgres => {
            let mut c = PgConnection::establish(&pg_url.unwrap()).unwrap();
            c.batch_execute("BEGIN; LOCK TABLE samples IN EXCLUSIVE MODE")
                .unwrap();
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(Duration::from_secs(60));
            c.batch_execute("COMMIT").unwrap();
        }
        Backend::Sqlite => {
            let mut c = SqliteConnection::establish(sqlite.to_str().unwrap()).unwrap();
            c.batch_execute("BEGIN IMMEDIATE").unwrap();
            locked_tx.send(()).unwrap();
            // The daemon's writers wait up to 10 s (busy_timeout) before failing: release
            // well before that.
            let _ = release_rx.recv_timeout(Duration::from_secs(6));
            c.batch_execute("COMMIT").unwrap();
        }
    });
    locked_rx.recv().unwrap();
    let r = srv.post(
        &samples,
        Some(&token),
        &fused_samples(t0 + 60_000, 1, &["happy"; 7]),
    );
    assert_eq!(r.status(), 201);
    assert_eq!(
        error_of(srv.get("/api/v1/export?format=csv", Some(&token))),
        (503, "storage_unavailable".into()),
        "an export without the accepted samples was served"
    );
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    let csv = srv
        .get("/api/v1/export?format=csv", Some(&token))
        .text()
        .unwrap();
    assert_eq!(csv.lines().count(), 1 + 12, "{csv}");
    let s: Value = srv
        .get(&format!("{samples}?limit=100"), Some(&token))
        .json()
        .unwrap();
    assert_eq!(s["total"], 12);
});

/// Issue 28, item 4: a read waits only for its own scope's pending samples. While carol's
/// samples cannot be written (another client holds the samples table), bob's reads of his own
/// session and his export are served; an admin's export of everyone still waits and then says
/// 503 rather than serve an export without carol's accepted samples.
#[test]
fn a_reader_waits_only_for_its_own_samples() {
    let Some(env) = Env::new(Backend::Postgres) else {
        return;
    };
    env.add_user("root", "admin");
    let srv = env.start();
    let root = srv.login("root");
    let bob = srv.register("bob");
    let carol = srv.register("carol");
    let started = Utc::now() - chrono::Duration::minutes(10);
    let b_sid = srv.start_session(&bob, Some(&started.to_rfc3339()));
    let c_sid = srv.start_session(&carol, Some(&started.to_rfc3339()));
    let t0 = started.timestamp_millis() + 1_000;
    let post = |token: &str, sid: &str, t: i64, n: usize| {
        let r = srv.post(
            &format!("/api/v1/sessions/{sid}/samples"),
            Some(token),
            &fused_samples(t, 1, &vec!["happy"; n]),
        );
        assert_eq!(r.status(), 201);
    };
    post(&bob, &b_sid, t0, 5);
    let pg = env.pg.as_ref().unwrap();
    wait_until("bob's samples written", Duration::from_secs(20), || {
        pg.count("samples") == 5
    });
    let lock = pg.lock_table("samples", Duration::from_secs(60));
    post(&carol, &c_sid, t0, 200);
    for _ in 0..3 {
        let r = srv.get(&format!("/api/v1/sessions/{b_sid}/samples"), Some(&bob));
        assert_eq!(r.status(), 200, "bob's own samples while carol's wait");
        assert_eq!(r.json::<Value>().unwrap()["total"], 5);
        let r = srv.get("/api/v1/export?format=json", Some(&bob));
        assert_eq!(r.status(), 200, "bob's export while carol's wait");
        assert_eq!(r.json::<Value>().unwrap().as_array().unwrap().len(), 5);
    }
    let r = srv.get("/api/v1/export?format=json", Some(&root));
    assert_eq!(
        error_of(r),
        (503, "storage_unavailable".into()),
        "everyone's export waits for carol's"
    );
    lock.release();
    wait_until("carol's samples written", Duration::from_secs(20), || {
        pg.count("samples") == 205
    });
    let r = srv.get("/api/v1/export?format=json", Some(&root));
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap().as_array().unwrap().len(), 205);
}

/// Issue 28, item 5: listing reads cannot take the whole pool. With 4 pooled connections and
/// the samples table held by another client (reads wait too), six sample reads at once hold at
/// most 2 connections: `/readyz` and a login still answer at once, and reads that find no
/// permit within the connect timeout say 503 (before: 16 such reads made `/readyz` 503 and the
/// writer time out).
#[test]
fn listing_reads_leave_connections_for_health_and_logins() {
    let Some(env) = Env::new(Backend::Postgres) else {
        return;
    };
    let env = env
        .with("EMO_DATABASE_POOL_SIZE", "4")
        .with("EMO_DATABASE_CONNECT_TIMEOUT_SECS", "3");
    let srv = env.start();
    let ann = srv.register("ann");
    let started = Utc::now() - chrono::Duration::minutes(10);
    let sid = srv.start_session(&ann, Some(&started.to_rfc3339()));
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(&ann),
        &fused_samples(started.timestamp_millis() + 1_000, 1, &["happy"; 3]),
    );
    assert_eq!(r.status(), 201);
    let pg = env.pg.as_ref().unwrap();
    wait_until("samples written", Duration::from_secs(20), || {
        pg.count("samples") == 3
    });
    let lock = pg.lock_table_in("samples", "ACCESS EXCLUSIVE", Duration::from_secs(30));
    let readers: Vec<_> = (0..6)
        .map(|_| {
            let (client, url, token) = (
                srv.client.clone(),
                srv.url(&format!("/api/v1/sessions/{sid}/samples")),
                ann.clone(),
            );
            std::thread::spawn(move || {
                let r = client.get(url).bearer_auth(token).send().unwrap();
                r.status().as_u16()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let t = std::time::Instant::now();
    assert_eq!(
        srv.get("/readyz", None).status(),
        200,
        "readyz while reads wait"
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "readyz took {:?}",
        t.elapsed()
    );
    srv.login("ann");
    std::thread::sleep(Duration::from_secs(4));
    lock.release();
    let answers: Vec<u16> = readers.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        answers.iter().all(|s| *s == 200 || *s == 503),
        "{answers:?}"
    );
    assert!(
        answers.contains(&200) && answers.contains(&503),
        "{answers:?}"
    );
}
