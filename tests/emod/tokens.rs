//! Bearer tokens over time: a cached token expiring (a lifetime of seconds, `token_ttl_secs`),
//! the cached-token grace while PostgreSQL is down, and the purge of expired and revoked tokens.

use crate::common;

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
// must still stop working at its own expiry, 10 s after login, not when the cache entry ages.
// Nothing here depends on how fast the machine is: the token is asked for until it is refused,
// and that moment is compared with its `expires_at` (the daemon's clock is this machine's).
both_backends!(a_cached_token_expires_on_time, |b| {
    let Some(env) = Env::new(b) else { return };
    let env = env
        .with("EMO_AUTH_TOKEN_TTL_SECS", "10")
        .with("EMO_AUTH_TOKEN_CACHE_SECS", "30");
    let srv = env.start();
    srv.register("ann");
    let issued = Instant::now();
    let r: Value = srv
        .post(
            "/api/v1/auth/login",
            None,
            &serde_json::json!({"username": "ann", "password": PASSWORD}),
        )
        .json()
        .unwrap();
    let token = r["token"].as_str().unwrap().to_string();
    let expires_at = chrono::DateTime::parse_from_rfc3339(r["expires_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let lifetime = expires_at.signed_duration_since(chrono::Utc::now());
    assert!(
        lifetime <= chrono::Duration::seconds(10) && lifetime > chrono::Duration::seconds(5),
        "token_ttl_secs = 10 gave a lifetime of {lifetime}"
    );
    assert_eq!(me(&srv, &token).0, 200, "fresh token");
    assert_eq!(me(&srv, &token).0, 200, "cached token");
    // Until it is refused: the cache entry made above stays fresh until at least issued + 30 s,
    // so a refusal before then is the token's own expiry.
    let refused = loop {
        let (status, code) = me(&srv, &token);
        let now = chrono::Utc::now();
        if status != 200 {
            assert_eq!(
                (status, code.as_str()),
                (401, "unauthenticated"),
                "an expiring token"
            );
            break now;
        }
        assert!(
            issued.elapsed() < Duration::from_secs(25),
            "the token still served from the cache at {now}, it expired at {expires_at}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        refused >= expires_at,
        "refused at {refused}, before its expiry at {expires_at}"
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
        .with("EMO_AUTH_TOKEN_TTL_SECS", "12")
        .with("EMO_AUTH_TOKEN_CACHE_SECS", "1")
        .with("EMO_DATABASE_CONNECT_TIMEOUT_SECS", "1");
    let srv = env.start();
    srv.register("ann");
    let seen = srv.login("ann");
    let unseen = srv.login("ann");
    // Both tokens expire at most 12 s after this instant (12 s, not less: everything up to the
    // outage's first two requests must happen before, on a loaded machine too).
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
    sleep_until(logged_in + Duration::from_millis(12_500));
    // Expired, and the database cannot be asked: refused as a token nobody verified is (503,
    // not 201, and not a 500 from a failed look-up).
    assert_eq!(
        error_of(post(&seen, 3)),
        (503, "storage_unavailable".into()),
        "an expired token during the outage"
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
