//! The audit trail, table-driven: every admin endpoint that reads or changes another user's data
//! writes exactly the expected entry (and an admin's own data none), and when the audit write
//! fails (a trigger on `audit_log` refuses every insert, on both backends) nothing is served and
//! nothing is changed.

mod common;

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
    /// `Some((action, target, detail-contains))`, or `None` when no entry is expected.
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
    let own = srv.start_session(&root, None);

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
            e("read.sessions", "ann", "agent=Some(\"ann\")"),
        ),
        get("/api/v1/sessions", e("read.sessions", "-", "agent=None")),
        get(
            &format!("/api/v1/sessions/{sid}"),
            e("read.session", "ann", &format!("session={sid}")),
        ),
        get(
            &format!("/api/v1/sessions/{sid}/samples"),
            e("read.samples", "ann", &format!("session={sid}")),
        ),
        get(
            "/api/v1/stats/distribution?agent=ann",
            e("read.stats.distribution", "ann", ""),
        ),
        get(
            "/api/v1/stats/distribution",
            e("read.stats.distribution", "-", ""),
        ),
        get(
            "/api/v1/stats/timeline?agent=ann",
            e("read.stats.timeline", "ann", ""),
        ),
        get(
            "/api/v1/stats/heatmap?agent=ann",
            e("read.stats.heatmap", "ann", ""),
        ),
        get(
            "/api/v1/export?agent=ann&format=csv",
            e("read.export", "ann", ""),
        ),
        get("/api/v1/export?format=json", e("read.export", "-", "")),
        get("/api/v1/audit", e("read.audit", "-", "")),
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
    ];

    // First with the audit write failing: no audited request is served or changes anything.
    break_audit(&env);
    for case in &cases {
        let r = send(&srv, &root, case);
        let status = r.status().as_u16();
        let body = r.text().unwrap_or_default();
        if case.entry.is_some() {
            assert!(
                status >= 500,
                "{} was served ({status}) although its audit entry could not be written: {body}",
                case.path
            );
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            assert!(v["error"].is_string(), "{}: {body}", case.path);
            assert!(!body.contains("happy"), "{}: data in {body}", case.path);
        } else {
            assert_eq!(status, 200, "{}: {body}", case.path);
        }
    }
    assert!(audit_entries(&env).is_empty());
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
                assert!(parts[3].contains(detail.as_str()), "{}: {new:?}", case.path);
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
