//! Who the caller is, and the rules around it: passwords (argon2id, `password.rs`), names
//! (`names.rs`), bearer tokens (random 256-bit, stored as SHA-256, `tokens.rs`) and login
//! throttling (`throttle.rs`). Nothing here knows about HTTP: the request extractors that turn an
//! `Authorization` header into an [`AuthUser`] are in `api/extract.rs`.

mod names;
mod password;
mod throttle;
mod tokens;

use emo_api_types::Role;
use uuid::Uuid;

use crate::error::AppError;

pub use names::*;
pub use password::*;
pub use throttle::*;
pub use tokens::*;

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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
    use argon2::{Algorithm, Argon2, Params, Version};

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
