//! Bearer tokens over time: a cached token expiring (a lifetime of seconds, `token_ttl_secs`),
//! the cached-token grace while PostgreSQL is down, and the purge of expired and revoked tokens.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn token_hashes(env: &Env) -> Vec<String> {
    let mut v = env.sql_lines("SELECT token_hash AS r FROM api_tokens");
    v.sort();
    v
}

fn me(srv: &Server, token: &str) -> (u16, String) {
    let r = srv.get("/api/v1/me", Some(token));
    if r.status() == 200 {
        (200, String::new())
    } else {
        error_of(r)
    }
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

// A token verified a moment ago sits in the cache (trusted for 30 s without the database); it
// must still stop working at its own expiry, 3 s after login, not when the cache entry ages.
both_backends!(a_cached_token_expires_on_time, |b| {
    let Some(env) = Env::new(b) else { return };
    let env = env
        .with("EMO_AUTH_TOKEN_TTL_SECS", "3")
        .with("EMO_AUTH_TOKEN_CACHE_SECS", "30");
    let srv = env.start();
    let token = srv.register("ann");
    // The token expires at most 3 s after this instant.
    let issued = Instant::now();
    let r: Value = srv
        .post(
            "/api/v1/auth/login",
            None,
            &serde_json::json!({"username": "ann", "password": PASSWORD}),
        )
        .json()
        .unwrap();
    let lifetime = chrono::DateTime::parse_from_rfc3339(r["expires_at"].as_str().unwrap())
        .unwrap()
        .signed_duration_since(chrono::Utc::now());
    assert!(
        lifetime <= chrono::Duration::seconds(3) && lifetime > chrono::Duration::seconds(1),
        "token_ttl_secs = 3 gave a lifetime of {lifetime}"
    );
    assert_eq!(me(&srv, &token).0, 200, "fresh token");
    assert_eq!(me(&srv, &token).0, 200, "cached token");
    sleep_until(issued + Duration::from_millis(3_300));
    let (status, code) = me(&srv, &token);
    assert_eq!(
        (status, code.as_str()),
        (401, "unauthenticated"),
        "an expired token was served from the cache"
    );
});

/// While PostgreSQL is down, a capture client whose token was verified before the outage keeps
/// posting samples after the token's cache entry went stale (grace), until the token itself
/// expires; a token this daemon never verified cannot be checked and gets 503
/// `storage_unavailable`.
#[test]
fn cached_token_grace_during_an_outage() {
    let Some(env) = Env::new(Backend::Postgres) else {
        return;
    };
    let env = env
        .with("EMO_AUTH_TOKEN_TTL_SECS", "6")
        .with("EMO_AUTH_TOKEN_CACHE_SECS", "1")
        .with("EMO_DATABASE_CONNECT_TIMEOUT_SECS", "1");
    let srv = env.start();
    srv.register("ann");
    let seen = srv.login("ann");
    let unseen = srv.login("ann");
    // Both tokens expire at most 6 s after this instant.
    let logged_in = Instant::now();
    let sid = srv.start_session(&seen, None);
    let path = format!("/api/v1/sessions/{sid}/samples");
    let t0 = chrono::Utc::now().timestamp_millis();
    let post = |token: &str, k: i64| {
        srv.post(
            &path,
            Some(token),
            &fused_samples(t0 + k * 1000, 1, &["happy"]),
        )
    };
    assert_eq!(post(&seen, 0).status(), 201);
    // The cache entry is stale after 1 s: from then on every request asks the database.
    std::thread::sleep(Duration::from_millis(1_500));
    let pg = env.pg.as_ref().unwrap();
    pg.cut();
    let r = post(&seen, 1);
    assert_eq!(
        r.status(),
        201,
        "no grace for a verified token: {}",
        r.text().unwrap()
    );
    assert_eq!(
        error_of(post(&unseen, 2)),
        (503, "storage_unavailable".into()),
        "a token nobody verified was let in during the outage"
    );
    // The grace ends with the token's lifetime.
    sleep_until(logged_in + Duration::from_millis(6_500));
    let r = post(&seen, 3);
    assert_ne!(
        r.status(),
        201,
        "an expired token was let in during the outage"
    );
    pg.restore();
    wait_until("database back", Duration::from_secs(30), || {
        srv.get("/readyz", None).status() == 200
    });
    assert_eq!(me(&srv, &seen), (401, "unauthenticated".into()));
    wait_until("samples written", Duration::from_secs(30), || {
        pg.count("samples") == 2
    });
}

// Tokens that expired more than a day ago, and revoked tokens older than a day, are deleted by
// the maintenance pass (which runs at start-up, then hourly); everything else is kept.
both_backends!(expired_and_revoked_tokens_are_purged, |b| {
    let Some(env) = Env::new(b) else { return };
    let mut srv = env.start();
    let first = srv.register("ann");
    let live = srv.login("ann");
    srv.sigterm();
    let now = chrono::Utc::now().timestamp_millis();
    let day = 86_400_000;
    let rows = [
        (
            "expired-2-days-ago",
            now - 3 * day,
            now - 2 * day,
            false,
            false,
        ),
        (
            "expired-1-hour-ago",
            now - day,
            now - 3_600_000,
            false,
            true,
        ),
        ("revoked-2-days-ago", now - 2 * day, now + day, true, false),
        ("revoked-1-hour-ago", now - 3_600_000, now + day, true, true),
        ("valid-old", now - 5 * day, now + day, false, true),
    ];
    let mut statements = String::new();
    for (name, created, expires, revoked, _) in rows {
        statements.push_str(&format!(
            "INSERT INTO api_tokens SELECT '{}', id, {created}, {expires}, {revoked} FROM users WHERE username = 'ann';",
            emod::auth::hash_token(name),
            revoked = if revoked { "TRUE" } else { "FALSE" }
        ));
    }
    env.sql(&statements);
    assert_eq!(token_hashes(&env).len(), 7);
    let srv = env.start();
    let mut kept: Vec<String> = rows
        .iter()
        .filter(|r| r.4)
        .map(|r| emod::auth::hash_token(r.0))
        .chain([
            emod::auth::hash_token(&first),
            emod::auth::hash_token(&live),
        ])
        .collect();
    kept.sort();
    assert_eq!(token_hashes(&env), kept);
    assert_eq!(me(&srv, &live).0, 200);
});
