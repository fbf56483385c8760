//! Passwords (argon2id), bearer tokens (random 256-bit, stored as SHA-256), login throttling and
//! the authenticated-user extractor.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix_web::{web, FromRequest, HttpRequest};
use argon2::password_hash::{
    self, rand_core::OsRng, Output, ParamsString, PasswordHash, SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use emo_api_types::{ErrorCode, Role};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::AppError;
use crate::state::AppState;
use crate::store::{now_ms, StoreError, UserRow};

/// Argon2 working memory (19 MiB per computation with the default parameters), kept and reused.
/// Allocating it per check made glibc keep every thread's copy: 200 concurrent logins took the
/// daemon from 0.9 to 4.7 GB and it stayed there. With [`LoginThrottle::hash_bounded`] at most
/// one buffer per hashing permit is in use, so the pool holds about that many.
static ARGON2_MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());
/// Buffers kept for reuse; more concurrent computations (only outside the daemon's bounded
/// path) free theirs.
const POOLED_BUFFERS: usize = 64;
/// Stored hashes asking for more than this (256 MiB) are not verified.
const MAX_BLOCKS: usize = 256 * 1024;

fn with_argon2_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    let mut mem = ARGON2_MEMORY
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop()
        .unwrap_or_default();
    if mem.len() < blocks {
        mem.resize(blocks, Block::default());
    }
    let out = f(&mut mem[..blocks]);
    let mut pool = ARGON2_MEMORY.lock().unwrap_or_else(|p| p.into_inner());
    if pool.len() < POOLED_BUFFERS {
        pool.push(mem);
    }
    out
}

/// An argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`), computed in pooled memory.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("hashing the password failed: {e}");
    let salt = SaltString::generate(&mut OsRng);
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(|e| fail(&e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_argon2_memory(params.block_count(), |m| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, m)
    })
    .map_err(|e| fail(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| fail(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
    };
    Ok(phc.to_string())
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => verify_parsed(&parsed, password).unwrap_or(false),
        Err(_) => false,
    }
}

fn verify_parsed(parsed: &PasswordHash, password: &str) -> password_hash::Result<bool> {
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let params = Params::try_from(parsed)?;
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return Ok(false);
    };
    if params.block_count() > MAX_BLOCKS {
        return Ok(false);
    }
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf)?;
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    with_argon2_memory(params.block_count(), |m| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, m)
    })?;
    // `Output` compares in constant time.
    Ok(Output::new(&out)? == expected)
}

/// Verifies against a fixed hash so an unknown username costs as much time as a wrong password
/// (no user enumeration by timing).
pub fn burn_password_check(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default());
    let _ = verify_password(hash, password);
}

/// Usernames: 1–64 of `[A-Za-z0-9._-]`, starting with a letter or digit. The message never
/// repeats the name: it may be a megabyte of control characters.
/// A username as it may exist: 1–64 ASCII letters, digits, `.`, `_` or `-`, starting with a
/// letter or digit. Lookups (login, `/users/{name}`) check this, so accounts created before
/// [`validate_new_username`] tightened the rule keep working.
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
        Err("invalid username: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit".into())
    }
}

/// A name for a new account: [`validate_username`], and it must also end with a letter or digit
/// and have no two of `.`, `_`, `-` in a row, so `alice.` or `alice--` cannot sit beside `alice` in
/// an admin's list looking like the same person (issue 28, item 12). Names that differ only in
/// case are refused by the store.
pub fn validate_new_username(name: &str) -> Result<(), String> {
    let punct = |c: char| !c.is_ascii_alphanumeric();
    let ok_last = name.chars().last().is_some_and(|c| !punct(c));
    let ok_runs = !name
        .chars()
        .zip(name.chars().skip(1))
        .any(|(a, b)| punct(a) && punct(b));
    match validate_username(name) {
        Ok(()) if ok_last && ok_runs => Ok(()),
        _ => Err("invalid username: use 1-64 letters, digits and single '.', '_' or '-' between them, starting and ending with a letter or digit".into()),
    }
}

pub fn validate_password(password: &str, min_len: usize) -> Result<(), String> {
    if password.chars().count() < min_len {
        return Err(format!("password must be at least {min_len} characters"));
    }
    if password.len() > 1024 {
        return Err("password must be at most 1024 bytes".into());
    }
    if password.chars().all(char::is_whitespace) {
        return Err("password must not be only spaces".into());
    }
    Ok(())
}

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// Display names are shown in admins' terminals: no control characters (an `ESC]2;…` retitles
/// a tmux pane), at most [`MAX_DISPLAY_NAME_CHARS`].
pub fn validate_display_name(name: &str) -> Result<(), String> {
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(format!(
            "display_name must be at most {MAX_DISPLAY_NAME_CHARS} characters"
        ));
    }
    if name
        .chars()
        .any(|c| c.is_control() || crate::sessions::validate::is_invisible(c))
    {
        return Err(
            "display_name must not contain control, invisible or text-direction characters".into(),
        );
    }
    Ok(())
}

/// A client-supplied string made safe for one log line: control characters escaped, at most
/// `max` characters (the rest counted, not written).
pub fn log_safe(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push_str(&format!("…(+{} chars)", s.chars().count() - max));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
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

/// Counts failed logins per key (a username *from one client address*, and the client address
/// alone), and bounds the password hashing everybody can trigger.
///
/// The user's key includes the address: counted per username alone, anybody could lock anybody
/// out by typing wrong passwords for their name. A key that reached its limit is locked for
/// [`Backoff::lock`], which doubles with each further lockout (up to `max`), so a patient
/// guesser from one address slows down exponentially while the user logs in from elsewhere.
///
/// A login *reserves* a failure on each of its keys before its password is checked
/// ([`LoginThrottle::reserve`]) and gives it back only when the password was right
/// ([`LoginThrottle::succeeded`]): concurrent guesses count while they are in flight, so no more
/// than the limit are ever verified (checking first and recording after let 60 concurrent
/// guesses through 40 checks with a limit of 5).
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Failures>>,
    /// Attempts counted per key in fixed windows: registrations per client address (every
    /// attempt counts), backdated session starts per user.
    registrations: Mutex<HashMap<String, (u32, Instant)>>,
    /// Permits for concurrent argon2 computations (≈ cores; each costs 19 MiB while it runs).
    hashing: Arc<tokio::sync::Semaphore>,
}

/// How long a login or registration waits for a hashing permit before it is refused with 429.
pub const HASH_QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Failed logins of one key.
struct Failures {
    /// Failures (and attempts in flight) since the last lockout or reset.
    n: u32,
    /// The latest failure or attempt; a lockout runs from here.
    last: Instant,
    /// Lockouts served so far: the next one lasts `base × 2^strikes`.
    strikes: u32,
}

/// How long a key that reached its limit is locked: `base` the first time, doubled with each
/// further lockout, at most `max`. Failures below the limit are forgotten after the current lock
/// length without any; the lockout history (strikes) after `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn lock(&self, strikes: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << strikes.min(30))
            .min(self.max.max(self.base))
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        LoginThrottle::with_hashing_permits(cores)
    }
}

fn count_in_window(
    map: &Mutex<HashMap<String, (u32, Instant)>>,
    keys: &[String],
    limits: &[u32],
    window: Duration,
) -> Result<(), u64> {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
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
    for k in keys {
        let e = map.entry(k.clone()).or_insert((0, now));
        e.0 += 1;
        e.1 = now;
    }
    Ok(())
}

impl LoginThrottle {
    pub fn with_hashing_permits(permits: usize) -> Self {
        LoginThrottle {
            failures: Mutex::default(),
            registrations: Mutex::default(),
            hashing: Arc::new(tokio::sync::Semaphore::new(permits.max(1))),
        }
    }

    /// Reserves one failure on every key, atomically: `Err(seconds to wait)` (and nothing
    /// reserved) if any key is locked (it reached `limits[i]` for `keys[i]` less than its lock
    /// length ago). A key whose lock has run out starts again from zero, with the next lock
    /// twice as long.
    pub fn reserve(&self, keys: &[String], limits: &[u32], backoff: Backoff) -> Result<(), u64> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let keep = backoff.max.max(backoff.base);
        map.retain(|_, f| now.duration_since(f.last) < keep);
        for (k, &max) in keys.iter().zip(limits) {
            let Some(f) = map.get_mut(k) else { continue };
            let lock = backoff.lock(f.strikes);
            let idle = now.duration_since(f.last);
            if f.n >= max {
                if idle < lock {
                    let left = lock - idle;
                    return Err(left.as_millis().div_ceil(1000).max(1) as u64);
                }
                f.n = 0;
                f.strikes = f.strikes.saturating_add(1);
            } else if idle >= lock {
                f.n = 0;
            }
        }
        for k in keys {
            let f = map.entry(k.clone()).or_insert(Failures {
                n: 0,
                last: now,
                strikes: 0,
            });
            f.n += 1;
            f.last = now;
        }
        Ok(())
    }

    /// The password was right: the user's failures are forgotten and the other keys' reserved
    /// failure is given back.
    pub fn succeeded(&self, user_key: &str, other_keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(user_key);
        for k in other_keys {
            if let Some(e) = map.get_mut(k) {
                e.n = e.n.saturating_sub(1);
            }
        }
    }

    /// Gives back a reservation that was not a verdict on the password (the database failed).
    pub fn release(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            if let Some(e) = map.get_mut(k) {
                e.n = e.n.saturating_sub(1);
            }
        }
    }

    /// Counts one registration attempt from `address`: `Err(seconds to wait)` past `limit` in
    /// `window` (0 = no limit).
    pub fn register_attempt(&self, address: &str, limit: u32, window: Duration) -> Result<(), u64> {
        if limit == 0 {
            return Ok(());
        }
        count_in_window(
            &self.registrations,
            &[format!("reg:{address}")],
            &[limit],
            window,
        )
    }

    /// Counts one backdated session start by `user`: `Err(seconds to wait)` past `limit` in
    /// `window` (0 = no limit).
    pub fn backdated_attempt(&self, user: Uuid, limit: u32, window: Duration) -> Result<(), u64> {
        if limit == 0 {
            return Ok(());
        }
        count_in_window(
            &self.registrations,
            &[format!("backdated:{user}")],
            &[limit],
            window,
        )
    }

    /// Runs an argon2 computation with a hashing permit, off the async runtime. At most
    /// `permits` run at once (each holds 19 MiB while it runs); a caller that waits longer than
    /// [`HASH_QUEUE_WAIT`] gets 429 `too_many_attempts`.
    pub async fn hash_bounded<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let permit = tokio::time::timeout(HASH_QUEUE_WAIT, self.hashing.clone().acquire_owned())
            .await
            .map_err(|_| AppError::Throttled { retry_after: 1 })?
            .map_err(|_| AppError::Internal("hashing semaphore closed".into()))?;
        // The permit moves into the blocking task: it is held until the hash is done, even
        // when the client leaves and this future is dropped.
        Ok(web::block(move || {
            let out = f();
            drop(permit);
            out
        })
        .await?)
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
        id: crate::store::parse_uuid(&user.id)?,
        username: user.username.clone(),
        role: user.role()?,
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

/// The caller and a body extracted only once they are authenticated. Actix polls a handler's
/// extractors together, so `(AuthUser, Json<T>)` answered a malformed body from a caller with a
/// bad token with 400/422 (the body was parsed while the token lookup waited on the database):
/// the body's shape told an unauthenticated client which fields an endpoint checks, and it did
/// work for nobody. Here the body is not read before the token is accepted (issue 28, item 12).
pub struct Authed<T>(pub AuthUser, pub T);

impl<T: FromRequest + 'static> FromRequest for Authed<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let auth = AuthUser::from_request(req, &mut actix_web::dev::Payload::None);
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let user = auth.await?;
            let body = T::from_request(&req, &mut payload)
                .await
                .map_err(Into::into)?;
            Ok(Authed(user, body))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "wrong horse"));
        assert!(!verify_password("garbage", "x"));
    }

    #[test]
    fn pooled_hashes_match_the_argon2_crate_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        // Hashes stored by earlier versions (the crate's own API) still verify...
        let salt = SaltString::generate(&mut OsRng);
        let old = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password(&old, "correct horse"));
        assert!(!verify_password(&old, "correct horsf"));
        // ...and new ones verify with the crate's API.
        let new = hash_password("correct horse").unwrap();
        let parsed = PasswordHash::new(&new).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        // Other parameters (argon2i, other costs) are honoured.
        let custom = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(1024, 3, 1, Some(16)).unwrap(),
        )
        .hash_password(b"pw", &salt)
        .unwrap()
        .to_string();
        assert!(verify_password(&custom, "pw"));
        assert!(!verify_password(&custom, "px"));
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
        assert!(validate_new_username("alice.b-2_x").is_ok());
        assert!(validate_new_username("a").is_ok());
        for bad in ["", "-x", "a b", "ä", &"x".repeat(65)] {
            assert!(validate_username(bad).is_err(), "{bad}");
            assert!(validate_new_username(bad).is_err(), "{bad}");
        }
        // Only for new names: an existing `alice.` can still log in.
        for bad in ["alice.", "alice-", "a..b", "a._b"] {
            assert!(validate_username(bad).is_ok(), "{bad}");
            assert!(validate_new_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_and_display_names() {
        assert!(validate_password("        ", 8).is_err());
        assert!(validate_password(" \t  \u{a0}    ", 8).is_err());
        assert!(validate_password(" a       ", 8).is_ok());
        assert!(validate_display_name("Ann Émilie-Ø").is_ok());
        assert!(validate_display_name(&"x".repeat(100)).is_ok());
        assert!(validate_display_name(&"x".repeat(101)).is_err());
        for bad in ["a\nb", "\u{1b}]2;pwned\u{7}", "tab\there", "\u{9b}31m"] {
            assert!(validate_display_name(bad).is_err(), "{bad:?}");
        }
        assert!(!validate_username(&"\n".repeat(1000))
            .unwrap_err()
            .contains('\n'));
    }

    #[test]
    fn log_safe_escapes_and_caps() {
        assert_eq!(log_safe("a\nINFO x", 64), "a\\nINFO x");
        assert_eq!(log_safe("\u{1b}[2J", 64), "\\u{1b}[2J");
        let long = log_safe(&"x".repeat(1_000_000), 64);
        assert!(
            long.len() < 100 && long.ends_with("(+999936 chars)"),
            "{long}"
        );
    }

    fn backoff(base_ms: u64, max_ms: u64) -> Backoff {
        Backoff {
            base: Duration::from_millis(base_ms),
            max: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn throttle_locks_after_max_failures() {
        let t = LoginThrottle::default();
        let keys = vec!["u:alice@1.2.3.4".to_string(), "ip:1.2.3.4".to_string()];
        let w = backoff(60_000, 600_000);
        for _ in 0..3 {
            assert!(t.reserve(&keys, &[3, 3], w).is_ok());
        }
        let wait = t.reserve(&keys, &[3, 3], w).unwrap_err();
        assert!((1..=60).contains(&wait));
        t.succeeded("u:alice@1.2.3.4", &keys[1..]);
        // The address still has two failures and one free slot; the user none.
        assert!(t.reserve(&keys, &[3, 3], w).is_ok());
        assert!(t.reserve(&keys, &[3, 3], w).is_err());
        assert!(t.reserve(&["u:alice@1.2.3.4".to_string()], &[3], w).is_ok());
    }

    #[test]
    fn lockouts_double_up_to_the_maximum() {
        assert_eq!(backoff(1000, 5000).lock(0), Duration::from_secs(1));
        assert_eq!(backoff(1000, 5000).lock(2), Duration::from_secs(4));
        assert_eq!(backoff(1000, 5000).lock(3), Duration::from_secs(5));
        assert_eq!(backoff(1000, 5000).lock(u32::MAX), Duration::from_secs(5));
        // Served for real: 2 failures lock for 100 ms, then 200 ms, then 400 ms.
        let t = LoginThrottle::default();
        let key = ["u:alice@1.2.3.4".to_string()];
        let w = backoff(100, 10_000);
        for lock_ms in [100u64, 200, 400] {
            t.reserve(&key, &[2], w).unwrap();
            t.reserve(&key, &[2], w).unwrap();
            let start = Instant::now();
            assert!(t.reserve(&key, &[2], w).is_err());
            std::thread::sleep(Duration::from_millis(lock_ms * 3 / 4));
            assert!(t.reserve(&key, &[2], w).is_err(), "lock of {lock_ms} ms");
            while start.elapsed() < Duration::from_millis(lock_ms + 20) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // The right password ends the history: the next lock is the base again.
        t.succeeded(&key[0], &[]);
        t.reserve(&key, &[2], w).unwrap();
        t.reserve(&key, &[2], w).unwrap();
        std::thread::sleep(Duration::from_millis(120));
        assert!(t.reserve(&key, &[2], w).is_ok());
    }

    #[test]
    fn in_flight_attempts_count() {
        // Reservations are taken before the password check: 60 concurrent attempts, 5 pass.
        let t = std::sync::Arc::new(LoginThrottle::default());
        let keys = vec!["u:alice@1.2.3.4".to_string(), "ip:1.2.3.4".to_string()];
        let w = backoff(60_000, 600_000);
        let passed: usize = (0..60)
            .map(|_| {
                let (t, keys) = (t.clone(), keys.clone());
                std::thread::spawn(move || t.reserve(&keys, &[5, 50], w).is_ok() as usize)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(passed, 5);
        // A reservation given back (database error) frees its slot.
        t.release(&keys);
        assert!(t.reserve(&keys, &[5, 50], w).is_ok());
    }

    #[test]
    fn a_shared_address_has_its_own_higher_limit() {
        // Behind a reverse proxy everyone shares one address: one user's typos lock that user
        // there, not the address; many failures across usernames do lock the address.
        let t = LoginThrottle::default();
        let w = backoff(60_000, 600_000);
        let keys = |u: &str| vec![format!("u:{u}@127.0.0.1"), "ip:127.0.0.1".to_string()];
        for _ in 0..5 {
            t.reserve(&keys("typo"), &[5, 20], w).unwrap();
        }
        assert!(t.reserve(&keys("typo"), &[5, 20], w).is_err());
        t.reserve(&keys("bob"), &[5, 20], w).unwrap();
        t.succeeded("u:bob@127.0.0.1", &keys("bob")[1..]);
        for i in 0..15 {
            t.reserve(&keys(&format!("guess{i}")), &[5, 20], w).unwrap();
        }
        assert!(t.reserve(&keys("bob"), &[5, 20], w).is_err());
    }

    #[test]
    fn registrations_are_counted_per_address() {
        let t = LoginThrottle::default();
        let w = Duration::from_secs(60);
        for _ in 0..3 {
            assert!(t.register_attempt("1.2.3.4", 3, w).is_ok());
        }
        assert!(t.register_attempt("1.2.3.4", 3, w).is_err());
        assert!(t.register_attempt("5.6.7.8", 3, w).is_ok());
        assert!(t.register_attempt("1.2.3.4", 0, w).is_ok());
    }

    #[tokio::test]
    async fn hashing_is_bounded() {
        let t = std::sync::Arc::new(LoginThrottle::with_hashing_permits(2));
        let running = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (t, running, peak) = (t.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    t.hash_bounded(move || {
                        use std::sync::atomic::Ordering::SeqCst;
                        let now = running.fetch_add(1, SeqCst) + 1;
                        peak.fetch_max(now, SeqCst);
                        std::thread::sleep(Duration::from_millis(30));
                        running.fetch_sub(1, SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
