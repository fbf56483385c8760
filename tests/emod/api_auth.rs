//! Auth, users and access rules against the real daemon, on SQLite and on PostgreSQL.

use crate::common;

use common::*;
use serde_json::{json, Value};

both_backends!(register_login_me_logout, |b| {
    let Some(env) = Env::new(b) else { return };
    let srv = env.start();
    let token = srv.register("alice");
    let me: Value = srv.get("/api/v1/me", Some(&token)).json().unwrap();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["role"], "agent");

    // Taken username, bad username, short password.
    let r = srv.post(
        "/api/v1/auth/register",
        None,
        &json!({"username": "alice", "password": PASSWORD}),
    );
    assert_eq!(error_of(r), (409, "conflict".into()));
    let r = srv.post(
        "/api/v1/auth/register",
        None,
        &json!({"username": "a b", "password": PASSWORD}),
    );
    assert_eq!(error_of(r), (422, "invalid_input".into()));
    let r = srv.post(
        "/api/v1/auth/register",
        None,
        &json!({"username": "carol", "password": "short"}),
    );
    assert_eq!(error_of(r), (422, "invalid_input".into()));

    // Wrong password and unknown user look the same.
    let r = srv.post(
        "/api/v1/auth/login",
        None,
        &json!({"username": "alice", "password": "nope-nope-nope"}),
    );
    assert_eq!(error_of(r), (401, "invalid_credentials".into()));
    let r = srv.post(
        "/api/v1/auth/login",
        None,
        &json!({"username": "nobody", "password": "nope-nope-nope"}),
    );
    assert_eq!(error_of(r), (401, "invalid_credentials".into()));

    // Logout revokes exactly this token.
    let other = srv.login("alice");
    let r = srv.post("/api/v1/auth/logout", Some(&token), &json!({}));
    assert_eq!(r.status(), 204);
    assert_eq!(
        error_of(srv.get("/api/v1/me", Some(&token))),
        (401, "unauthenticated".into())
    );
    assert_eq!(srv.get("/api/v1/me", Some(&other)).status(), 200);

    // Garbage and missing tokens.
    assert_eq!(
        error_of(srv.get("/api/v1/me", Some("emo_garbage"))),
        (401, "unauthenticated".into())
    );
    assert_eq!(
        error_of(srv.get("/api/v1/me", None)),
        (401, "unauthenticated".into())
    );
});

both_backends!(expired_tokens_are_refused, |b| {
    let Some(env) = Env::new(b) else { return };
    let env = env.with("EMO_AUTH_TOKEN_TTL_HOURS", "0");
    let srv = env.start();
    let token = srv.register("alice");
    let r = srv.get("/api/v1/me", Some(&token));
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap();
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthenticated");
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
});

both_backends!(login_throttling, |b| {
    let Some(env) = Env::new(b) else { return };
    let env = env.with("EMO_AUTH_MAX_FAILED_LOGINS", "3");
    let srv = env.start();
    srv.register("alice");
    for _ in 0..3 {
        let r = srv.post(
            "/api/v1/auth/login",
            None,
            &json!({"username": "alice", "password": "wrong-password"}),
        );
        assert_eq!(r.status(), 401);
    }
    // Locked: even the right password is refused, with Retry-After.
    let r = srv.post(
        "/api/v1/auth/login",
        None,
        &json!({"username": "alice", "password": PASSWORD}),
    );
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(error_of(r), (429, "too_many_attempts".into()));
    let retry: u64 = retry.expect("Retry-After header").parse().unwrap();
    assert!((1..=300).contains(&retry));
});

both_backends!(registration_can_be_closed, |b| {
    let Some(env) = Env::new(b) else { return };
    let env = env.with("EMO_ALLOW_REGISTER", "false");
    env.add_user("root", "admin");
    let srv = env.start();
    let r = srv.post(
        "/api/v1/auth/register",
        None,
        &json!({"username": "eve", "password": PASSWORD}),
    );
    assert_eq!(error_of(r), (403, "registration_closed".into()));
    // Admins can still create accounts.
    let admin = srv.login("root");
    let r = srv.post(
        "/api/v1/users",
        Some(&admin),
        &json!({"username": "eve", "password": PASSWORD, "role": "agent"}),
    );
    assert_eq!(r.status(), 201);
    srv.login("eve");
});

both_backends!(rbac_and_audit, |b| {
    let Some(env) = Env::new(b) else { return };
    env.add_user("root", "admin");
    let srv = env.start();
    let a = srv.register("agent-a");
    let bt = srv.register("agent-b");
    let admin = srv.login("root");
    let sid = srv.start_session(&a, None);
    let now = chrono::Utc::now().timestamp_millis();
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(&a),
        &fused_samples(now, 1, &["happy", "sad"]),
    );
    assert_eq!(r.status(), 201);

    // B cannot see, feed or stop A's session: it does not exist for B.
    assert_eq!(
        error_of(srv.get(&format!("/api/v1/sessions/{sid}"), Some(&bt))),
        (404, "not_found".into())
    );
    assert_eq!(
        error_of(srv.get(&format!("/api/v1/sessions/{sid}/samples"), Some(&bt))),
        (404, "not_found".into())
    );
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/stop"),
        Some(&bt),
        &json!({}),
    );
    assert_eq!(error_of(r), (404, "not_found".into()));
    let r = srv.post(
        &format!("/api/v1/sessions/{sid}/samples"),
        Some(&bt),
        &fused_samples(now, 1, &["sad"]),
    );
    assert_eq!(error_of(r), (404, "not_found".into()));
    let list: Value = srv.get("/api/v1/sessions", Some(&bt)).json().unwrap();
    assert_eq!(list["total"], 0);
    assert_eq!(
        error_of(srv.get("/api/v1/stats/distribution?agent=agent-a", Some(&bt))),
        (403, "forbidden".into())
    );
    assert_eq!(
        error_of(srv.get("/api/v1/export?agent=agent-a", Some(&bt))),
        (403, "forbidden".into())
    );
    assert_eq!(
        error_of(srv.get("/api/v1/audit", Some(&bt))),
        (403, "forbidden".into())
    );
    assert_eq!(
        error_of(srv.get("/api/v1/users", Some(&bt))),
        (403, "forbidden".into())
    );
    // B's own stats do not include A's samples.
    let d: Value = srv
        .get("/api/v1/stats/distribution", Some(&bt))
        .json()
        .unwrap();
    assert_eq!(d["total"], 0);

    // A sees its own data without an audit trail; the admin sees it and is audited.
    assert_eq!(
        srv.get(&format!("/api/v1/sessions/{sid}"), Some(&a))
            .status(),
        200
    );
    // Reading the audit log is itself audited (before it is served), so it holds that read.
    let audit: Value = srv.get("/api/v1/audit", Some(&admin)).json().unwrap();
    assert_eq!(audit["total"], 1, "{audit}");
    assert_eq!(audit["items"][0]["action"], "read.audit", "{audit}");
    assert_eq!(
        srv.get(&format!("/api/v1/sessions/{sid}"), Some(&admin))
            .status(),
        200
    );
    let s: Value = srv
        .get(&format!("/api/v1/sessions/{sid}/samples"), Some(&admin))
        .json()
        .unwrap();
    assert_eq!(s["total"], 2);
    assert_eq!(
        srv.get("/api/v1/stats/distribution?agent=agent-a", Some(&admin))
            .status(),
        200
    );
    assert_eq!(srv.get("/api/v1/sessions", Some(&admin)).status(), 200);
    let audit: Value = srv.get("/api/v1/audit", Some(&admin)).json().unwrap();
    let actions: Vec<(String, Value)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["target_user"].clone(),
            )
        })
        .collect();
    // The four reads of agent-a's data and the two reads of the audit log.
    assert_eq!(audit["total"], 6, "{audit}");
    assert!(
        actions.contains(&("read.session".into(), json!("agent-a"))),
        "{actions:?}"
    );
    assert!(actions.contains(&("read.samples".into(), json!("agent-a"))));
    assert!(actions.contains(&("read.stats.distribution".into(), json!("agent-a"))));
    assert!(actions.contains(&("read.sessions".into(), Value::Null)));
    assert!(audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor"] == "root"));

    // Admin filter naming an unknown agent.
    assert_eq!(
        error_of(srv.get("/api/v1/stats/distribution?agent=ghost", Some(&admin))),
        (404, "not_found".into())
    );

    // Disabling B revokes B's tokens and blocks login.
    let r = srv.patch(
        "/api/v1/users/agent-b",
        Some(&admin),
        &json!({"disabled": true}),
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        error_of(srv.get("/api/v1/me", Some(&bt))),
        (401, "unauthenticated".into())
    );
    let r = srv.post(
        "/api/v1/auth/login",
        None,
        &json!({"username": "agent-b", "password": PASSWORD}),
    );
    assert_eq!(error_of(r), (403, "account_disabled".into()));
    let users: Value = srv.get("/api/v1/users", Some(&admin)).json().unwrap();
    let b_row = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "agent-b")
        .unwrap();
    assert_eq!(b_row["disabled"], true);
    // Agents cannot administer users.
    let r = srv.post(
        "/api/v1/users",
        Some(&a),
        &json!({"username": "x1", "password": PASSWORD}),
    );
    assert_eq!(error_of(r), (403, "forbidden".into()));
});
