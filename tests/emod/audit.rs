//! The audit trail, table-driven: every admin endpoint that reads or changes another user's data
//! writes exactly the expected entry (and an admin's own data none), and when the audit write
//! fails (a trigger on `audit_log` refuses every insert, on both backends) nothing is served and
//! nothing is changed.

use crate::common;

use chrono::Utc;
use common::*;
use reqwest::blocking::Response;
use serde_json::{json, Value};

/// `actor|action|target|detail` of every audit entry, oldest first.
fn audit_entries(env: &Env) -> Vec<String> {
    env.sql_lines(
        "SELECT actor || '|' || action || '|' || COALESCE(target_user, '-') || '|' || detail AS r \
         FROM audit_log ORDER BY id",
    )
}

/// Makes every audit insert fail, as a full disk or a revoked privilege would.
fn break_audit(env: &Env) {
    match env.backend {
        Backend::Postgres => env.sql(
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'audit refused by the test'; END $$;
             CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log
               FOR EACH ROW EXECUTE FUNCTION refuse_audit();",
        ),
        Backend::Sqlite => env.sql(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log
               BEGIN SELECT RAISE(ABORT, 'audit refused by the test'); END;",
        ),
    }
}

fn repair_audit(env: &Env) {
    match env.backend {
        Backend::Postgres => {
            env.sql("DROP TRIGGER refuse_audit ON audit_log; DROP FUNCTION refuse_audit();")
        }
        Backend::Sqlite => env.sql("DROP TRIGGER refuse_audit;"),
    }
}

enum Method {
    Get,
    Post(Value),
    Patch(Value),
}

struct Case {
    method: Method,
    path: String,
    /// `Some((action, target, detail))`, or `None` when no entry is expected. The detail is
    /// compared whole; `{id}` in it stands for the `id` the response names (a new session).
    entry: Option<(&'static str, &'static str, String)>,
}

fn send(srv: &Server, token: &str, case: &Case) -> Response {
    match &case.method {
        Method::Get => srv.get(&case.path, Some(token)),
        Method::Post(b) => srv.post(&case.path, Some(token), b),
        Method::Patch(b) => srv.patch(&case.path, Some(token), b),
    }
}

both_backends!(every_admin_access_is_audited_or_refused, |b| {
    let Some(env) = Env::new(b) else { return };
    env.add_user("root", "admin");
    let srv = env.start();
    let root = srv.login("root");
    let ann = srv.register("ann");
    let sid = srv.start_session(&ann, None);
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(&ann),
        &fused_samples(Utc::now().timestamp_millis(), 1, &["happy", "sad"]),
    );
    assert_eq!(r.status(), 201);
    wait_until(
        "samples written",
        std::time::Duration::from_secs(10),
        || {
            srv.get(&format!("/api/v1/sessions/{sid}/samples"), Some(&ann))
                .json::<Value>()
                .unwrap()["total"]
                == 2
        },
    );
    // The admin's own session, finished, so that the back-dated start below is the admin's only
    // running one.
    let own = srv.start_session(&root, None);
    let r = srv.post(
        &format!("/api/v1/sessions/{own}/stop"),
        Some(&root),
        &json!({}),
    );
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    let backdated = (Utc::now() - chrono::Duration::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let backdated_stored = chrono::DateTime::parse_from_rfc3339(&backdated)
        .unwrap()
        .with_timezone(&Utc)
        .to_rfc3339();

    let get = |path: &str, entry: Option<(&'static str, &'static str, String)>| Case {
        method: Method::Get,
        path: path.to_string(),
        entry,
    };
    let e = |action: &'static str, target: &'static str, detail: &str| {
        Some((action, target, detail.to_string()))
    };
    let cases = vec![
        get("/api/v1/users", e("read.users", "-", "")),
        get("/api/v1/users/ann", e("read.user", "ann", "")),
        get(
            "/api/v1/sessions?agent=ann",
            e(
                "read.sessions",
                "ann",
                "agent=Some(\"ann\") from=None to=None",
            ),
        ),
        get(
            "/api/v1/sessions",
            e("read.sessions", "-", "agent=None from=None to=None"),
        ),
        get(
            &format!("/api/v1/sessions/{sid}"),
            e("read.session", "ann", &format!("session={sid}")),
        ),
        get(
            &format!("/api/v1/sessions/{sid}/samples"),
            e("read.samples", "ann", &format!("session={sid}")),
        ),
        // An admin watching someone's session live.
        get(
            &format!("/api/v1/sessions/{sid}/live"),
            e("read.live", "ann", &format!("session={sid}")),
        ),
        get(
            "/api/v1/stats/distribution?agent=ann&emotion=happy&modality=fused",
            e(
                "read.stats.distribution",
                "ann",
                "agent=ann emotion=happy modality=fused",
            ),
        ),
        get(
            "/api/v1/stats/distribution",
            e("read.stats.distribution", "-", ""),
        ),
        get(
            "/api/v1/stats/timeline?agent=ann&from=2020-01-02T03:04:05Z",
            e(
                "read.stats.timeline",
                "ann",
                "agent=ann from=2020-01-02T03:04:05+00:00",
            ),
        ),
        get(
            "/api/v1/stats/heatmap?agent=ann",
            e("read.stats.heatmap", "ann", "agent=ann"),
        ),
        get(
            "/api/v1/export?agent=ann&format=csv",
            e("read.export", "ann", "agent=ann"),
        ),
        get("/api/v1/export?format=json", e("read.export", "-", "")),
        get(
            "/api/v1/audit?limit=7",
            e("read.audit", "-", "limit=7,offset=0"),
        ),
        // An admin's own data is not audited.
        get("/api/v1/sessions?agent=root", None),
        get(&format!("/api/v1/sessions/{own}"), None),
        get("/api/v1/stats/distribution?agent=root", None),
        // Changes.
        Case {
            method: Method::Patch(json!({"display_name": "Ann B."})),
            path: "/api/v1/users/ann".into(),
            entry: e("user.update", "ann", "display_name"),
        },
        Case {
            method: Method::Post(
                json!({"username": "carl", "password": PASSWORD, "role": "agent"}),
            ),
            path: "/api/v1/users".into(),
            entry: e("user.create", "carl", "role=agent"),
        },
        Case {
            method: Method::Post(json!({})),
            path: format!("/api/v1/sessions/{sid}/stop"),
            entry: e("session.stop", "ann", &format!("session={sid}")),
        },
        // A session dated back (an upload of an earlier recording): its own entry, whoever
        // starts it.
        Case {
            method: Method::Post(
                json!({"consent": true, "sources": ["remote"], "started_at": backdated}),
            ),
            path: "/api/v1/sessions".into(),
            entry: e(
                "session.backdated",
                "root",
                &format!("session={{id}} started_at={backdated_stored}"),
            ),
        },
    ];
    let sessions_before = env.sql_lines("SELECT id AS r FROM sessions").len();

    // First with the audit write failing: no audited request is served or changes anything.
    break_audit(&env);
    for case in &cases {
        let r = send(&srv, &root, case);
        let status = r.status().as_u16();
        if case.entry.is_some() {
            // (The body is read only after this: a live stream that was served never ends.)
            assert!(
                status >= 500,
                "{} was served ({status}) although its audit entry could not be written",
                case.path
            );
            let body = r.text().unwrap_or_default();
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            assert!(v["error"].is_string(), "{}: {body}", case.path);
            assert!(!body.contains("happy"), "{}: data in {body}", case.path);
        } else {
            assert_eq!(
                status,
                200,
                "{}: {}",
                case.path,
                r.text().unwrap_or_default()
            );
        }
    }
    assert!(audit_entries(&env).is_empty());
    assert_eq!(
        env.sql_lines("SELECT id AS r FROM sessions").len(),
        sessions_before,
        "a session was started unaudited"
    );
    let user: Value = srv.get("/api/v1/me", Some(&ann)).json().unwrap();
    assert_eq!(user["display_name"], Value::Null, "ann changed unaudited");
    assert_eq!(
        env.sql_lines("SELECT username AS r FROM users WHERE username = 'carl'")
            .len(),
        0,
        "carl created unaudited"
    );
    let s: Value = srv
        .get(&format!("/api/v1/sessions/{sid}"), Some(&ann))
        .json()
        .unwrap();
    assert_eq!(s["status"], "running", "ann's session stopped unaudited");

    // Then working: each request writes exactly its entry.
    repair_audit(&env);
    for case in &cases {
        let before = audit_entries(&env).len();
        let r = send(&srv, &root, case);
        let status = r.status().as_u16();
        assert!(
            (200..300).contains(&status),
            "{}: {status} {}",
            case.path,
            r.text().unwrap_or_default()
        );
        // A new session's id, for `{id}` in the expected detail (the live stream is not read).
        let created = if status == 201 {
            r.json::<Value>().unwrap()["id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        } else {
            drop(r);
            String::new()
        };
        let after = audit_entries(&env);
        let new = &after[before..];
        match &case.entry {
            None => assert!(new.is_empty(), "{}: unexpected {new:?}", case.path),
            Some((action, target, detail)) => {
                assert_eq!(new.len(), 1, "{}: {new:?}", case.path);
                let parts: Vec<&str> = new[0].splitn(4, '|').collect();
                assert_eq!(parts[0], "root", "{}: {new:?}", case.path);
                assert_eq!(parts[1], *action, "{}: {new:?}", case.path);
                assert_eq!(parts[2], *target, "{}: {new:?}", case.path);
                assert_eq!(
                    parts[3],
                    detail.replace("{id}", &created),
                    "{}: detail of {new:?}",
                    case.path
                );
            }
        }
    }
    // The changes took effect once audited.
    let user: Value = srv.get("/api/v1/me", Some(&ann)).json().unwrap();
    assert_eq!(user["display_name"], "Ann B.");
    srv.login("carl");
    // Agents reading their own data are never audited.
    let before = audit_entries(&env).len();
    for path in [
        "/api/v1/sessions",
        "/api/v1/stats/distribution",
        "/api/v1/export",
    ] {
        assert_eq!(srv.get(path, Some(&ann)).status(), 200, "{path}");
    }
    assert_eq!(audit_entries(&env).len(), before);
});

// Issue 28, item 11: backdated starts are bounded per user (each writes an audit row), and
// `/audit` filters by action, user and time, its total counting only what matches.
both_backends!(
    backdated_starts_are_bounded_and_the_audit_log_filters,
    |b| {
        let Some(mut env) = Env::new(b) else { return };
        env.extra.push((
            "EMO_AUTH_MAX_BACKDATED_SESSIONS_PER_HOUR".into(),
            "3".into(),
        ));
        env.add_user("root", "admin");
        let srv = env.start();
        let root = srv.login("root");
        let ann = srv.register("ann");
        let bob = srv.register("bob");
        let before = Utc::now();
        let backdated = (Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
        for _ in 0..3 {
            let sid = srv.start_session(&ann, Some(&backdated));
            let r = srv.post(
                &format!("/api/v1/sessions/{sid}/stop"),
                Some(&ann),
                &json!({}),
            );
            assert_eq!(r.status(), 200);
        }
        let r = srv.post(
            "/api/v1/sessions",
            Some(&ann),
            &json!({"consent": true, "sources": ["remote"], "started_at": backdated}),
        );
        let retry = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        assert_eq!(error_of(r), (429, "too_many_attempts".into()));
        assert!(retry.is_some_and(|s| s > 0 && s <= 3600), "{retry:?}");
        // Another user, and ann's sessions that are not backdated, are not affected.
        let sid = srv.start_session(&bob, Some(&backdated));
        srv.post(
            &format!("/api/v1/sessions/{sid}/stop"),
            Some(&bob),
            &json!({}),
        );
        srv.start_session(&ann, None);
        let page = |q: &str| -> Value {
            let r = srv.get(&format!("/api/v1/audit?limit=500{q}"), Some(&root));
            assert_eq!(r.status(), 200, "{q}");
            r.json().unwrap()
        };
        let actions = |v: &Value| -> Vec<(String, String)> {
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["action"].as_str().unwrap().to_string(),
                        e["actor"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        let all = page("");
        let backdated_rows = page("&action=session.backdated");
        assert_eq!(backdated_rows["total"], 4, "{backdated_rows}");
        assert!(actions(&backdated_rows)
            .iter()
            .all(|(a, _)| a == "session.backdated"));
        assert!(all["total"].as_i64().unwrap() > 4, "{all}");
        let anns = page("&action=session.backdated&user=ann");
        assert_eq!(anns["total"], 3, "{anns}");
        assert!(actions(&anns).iter().all(|(_, who)| who == "ann"));
        // Time: nothing before the test began, everything of it after.
        let enc = |t: chrono::DateTime<Utc>| t.to_rfc3339().replace('+', "%2B");
        let earlier = page(&format!("&action=session.backdated&to={}", enc(before)));
        assert_eq!(earlier["total"], 0, "{earlier}");
        let later = page(&format!(
            "&action=session.backdated&from={}&to={}",
            enc(before),
            enc(Utc::now() + chrono::Duration::minutes(1))
        ));
        assert_eq!(later["total"], 4, "{later}");
        // Bad filters are the client's error.
        for q in [
            "&action=a%20b",
            "&user=%E2%80%AEx",
            "&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        ] {
            let (status, _) = error_of(srv.get(&format!("/api/v1/audit?{q}"), Some(&root)));
            assert_eq!(status, 400, "{q}");
        }
    }
);
