//! Passwords (argon2id), bearer tokens (random 256-bit, stored as SHA-256), login throttling and
//! the authenticated-user extractor.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix_web::{web, FromRequest, HttpRequest};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::Engine;
use emo_api_types::{ErrorCode, Role};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::api::AppState;
use crate::error::AppError;
use crate::store::{now_ms, StoreError, UserRow};

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password failed: {e}"))
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Verifies against a fixed hash so an unknown username costs as much time as a wrong password
/// (no user enumeration by timing).
pub fn burn_password_check(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default());
    let _ = verify_password(hash, password);
}

/// Usernames: 1–64 of `[A-Za-z0-9._-]`, starting with a letter or digit.
pub fn validate_username(name: &str) -> Result<(), String> {
    let ok_len = (1..=64).contains(&name.len());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok_len && ok_chars && ok_first {
        Ok(())
    } else {
        Err(format!(
            "username `{name}` is invalid: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ))
    }
}

pub fn validate_password(password: &str, min_len: usize) -> Result<(), String> {
    if password.chars().count() < min_len {
        return Err(format!("password must be at least {min_len} characters"));
    }
    if password.len() > 1024 {
        return Err("password must be at most 1024 bytes".into());
    }
    Ok(())
}

/// A new bearer token and the hash that is stored.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "emo_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Counts failed logins per key (username, client address) inside a sliding window.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    /// `Err(seconds to wait)` if any key has reached its limit (`limits[i]` for `keys[i]`).
    pub fn check(&self, keys: &[String], limits: &[u32], window: Duration) -> Result<(), u64> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, (_, since)| now.duration_since(*since) < window);
        for (k, &max) in keys.iter().zip(limits) {
            if let Some((n, since)) = map.get(k) {
                if *n >= max {
                    let left = window.saturating_sub(now.duration_since(*since));
                    return Err(left.as_secs().max(1));
                }
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for k in keys {
            let e = map.entry(k.clone()).or_insert((0, now));
            e.0 += 1;
            e.1 = now;
        }
    }

    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// The caller, established from the bearer token.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthUser {
    pub id: Uuid,
    pub username: String,
    pub role: Role,
    /// SHA-256 of the presented token (for logout).
    pub token_hash: String,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AppError::forbidden("this needs the admin role"))
        }
    }
}

#[derive(Clone)]
struct CachedToken {
    user: AuthUser,
    expires_at: i64,
    checked: Instant,
}

/// Verified tokens, so most requests skip the database. Entries are trusted for
/// `token_cache_secs`; while the database is unreachable, older entries keep working until the
/// token's own expiry, so capture clients survive an outage.
#[derive(Default)]
pub struct TokenCache {
    map: Mutex<HashMap<String, CachedToken>>,
}

impl TokenCache {
    fn get(&self, hash: &str) -> Option<CachedToken> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            .cloned()
    }
    fn put(&self, hash: String, entry: CachedToken) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            let now = now_ms();
            map.retain(|_, v| v.expires_at > now);
        }
        map.insert(hash, entry);
    }
    pub fn forget(&self, hash: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(hash);
    }
    /// Drops every cached token of a user (disabled, password changed).
    pub fn forget_user(&self, user_id: Uuid) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, v| v.user.id != user_id);
    }
}

fn bearer(req: &HttpRequest) -> Result<String, AppError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| AppError::unauthenticated("missing Authorization: Bearer <token> header"))?;
    let value = header
        .to_str()
        .map_err(|_| AppError::unauthenticated("malformed Authorization header"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AppError::unauthenticated("Authorization header must be `Bearer <token>`")
        })?;
    Ok(token.to_string())
}

async fn authenticate(state: web::Data<AppState>, token: String) -> Result<AuthUser, AppError> {
    let hash = hash_token(&token);
    let now = now_ms();
    let cached = state.tokens.get(&hash);
    let fresh = Duration::from_secs(state.config.auth.token_cache_secs);
    if let Some(c) = &cached {
        if c.checked.elapsed() < fresh && c.expires_at > now {
            return Ok(c.user.clone());
        }
    }
    let store = state.store.clone();
    let lookup_hash = hash.clone();
    let found = web::block(move || store.token_with_user(&lookup_hash)).await?;
    let (tok, user): (_, UserRow) = match found {
        Ok(Some(pair)) => pair,
        Ok(None) => {
            state.tokens.forget(&hash);
            return Err(AppError::unauthenticated("unknown token; log in again"));
        }
        Err(StoreError::Unavailable(msg)) => {
            // Grace while the database is down: a token verified earlier stays valid until it expires.
            if let Some(c) = cached.filter(|c| c.expires_at > now) {
                tracing::debug!("database unavailable ({msg}); using cached token");
                return Ok(c.user);
            }
            return Err(StoreError::Unavailable(msg).into());
        }
        Err(e) => return Err(e.into()),
    };
    if tok.revoked {
        state.tokens.forget(&hash);
        return Err(AppError::unauthenticated("token revoked; log in again"));
    }
    if tok.expires_at <= now {
        state.tokens.forget(&hash);
        return Err(AppError::unauthenticated("token expired; log in again"));
    }
    if user.disabled {
        state.tokens.forget(&hash);
        return Err(AppError::new(
            ErrorCode::AccountDisabled,
            "this account is disabled",
        ));
    }
    let auth = AuthUser {
        id: crate::store::parse_uuid(&user.id),
        username: user.username.clone(),
        role: user.role(),
        token_hash: hash.clone(),
    };
    state.tokens.put(
        hash,
        CachedToken {
            user: auth.clone(),
            expires_at: tok.expires_at,
            checked: Instant::now(),
        },
    );
    Ok(auth)
}

impl FromRequest for AuthUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let token = bearer(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let token = token?;
            let state =
                state.ok_or_else(|| AppError::Internal("application state missing".into()))?;
            authenticate(state, token).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "wrong horse"));
        assert!(!verify_password("garbage", "x"));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with("emo_") && a.len() == 4 + 43);
        assert_eq!(ha, hash_token(&a));
        assert_eq!(ha.len(), 64);
    }

    #[test]
    fn usernames() {
        assert!(validate_username("alice.b-2_x").is_ok());
        for bad in ["", "-x", "a b", "ä", &"x".repeat(65)] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn throttle_locks_after_max_failures() {
        let t = LoginThrottle::default();
        let keys = vec!["u:alice".to_string(), "ip:1.2.3.4".to_string()];
        let w = Duration::from_secs(60);
        for _ in 0..3 {
            assert!(t.check(&keys, &[3, 3], w).is_ok());
            t.record_failure(&keys);
        }
        let wait = t.check(&keys, &[3, 3], w).unwrap_err();
        assert!((1..=60).contains(&wait));
        t.reset("u:alice");
        // The address is still locked.
        assert!(t.check(&keys, &[3, 3], w).is_err());
        assert!(t.check(&["u:alice".to_string()], &[3], w).is_ok());
    }

    #[test]
    fn a_shared_address_has_its_own_higher_limit() {
        // Behind a reverse proxy everyone shares one address: one user's typos lock that user,
        // not the address; many failures across usernames do lock the address.
        let t = LoginThrottle::default();
        let w = Duration::from_secs(60);
        let keys = |u: &str| vec![format!("u:{u}"), "ip:127.0.0.1".to_string()];
        for _ in 0..5 {
            t.record_failure(&keys("typo"));
        }
        assert!(t.check(&keys("typo"), &[5, 20], w).is_err());
        assert!(t.check(&keys("bob"), &[5, 20], w).is_ok());
        for i in 0..15 {
            t.record_failure(&keys(&format!("guess{i}")));
        }
        assert!(t.check(&keys("bob"), &[5, 20], w).is_err());
    }
}
