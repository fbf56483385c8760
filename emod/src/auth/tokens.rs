//! Bearer tokens: random 256-bit, stored as their SHA-256; verified ones cached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use emo_api_types::ErrorCode;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::AuthUser;
use crate::error::AppError;
use crate::store::{now_ms, Store, StoreError, UserRow};

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

/// The user a bearer token belongs to: from the cache while it is fresh (`cache_for`), else from
/// the store (and cached); while the store is unreachable a cached token keeps working until its
/// own expiry.
pub async fn authenticate(
    tokens: &TokenCache,
    store: &Store,
    cache_for: Duration,
    token: String,
) -> Result<AuthUser, AppError> {
    let hash = hash_token(&token);
    let now = now_ms();
    let cached = tokens.get(&hash);
    let fresh = cache_for;
    if let Some(c) = &cached {
        if c.checked.elapsed() < fresh && c.expires_at > now {
            return Ok(c.user.clone());
        }
    }
    let store = store.clone();
    let lookup_hash = hash.clone();
    let found = crate::blocking(move || store.token_with_user(&lookup_hash)).await?;
    let (tok, user): (_, UserRow) = match found {
        Ok(Some(pair)) => pair,
        Ok(None) => {
            tokens.forget(&hash);
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
        tokens.forget(&hash);
        return Err(AppError::unauthenticated("token revoked; log in again"));
    }
    if tok.expires_at <= now {
        tokens.forget(&hash);
        return Err(AppError::unauthenticated("token expired; log in again"));
    }
    if user.disabled {
        tokens.forget(&hash);
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
    tokens.put(
        hash,
        CachedToken {
            user: auth.clone(),
            expires_at: tok.expires_at,
            checked: Instant::now(),
        },
    );
    Ok(auth)
}
