//! Password hashing (argon2id with pooled working memory) and the rules a password must meet.

use std::sync::{Mutex, OnceLock};

use argon2::password_hash::{
    self, rand_core::OsRng, Output, ParamsString, PasswordHash, SaltString,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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
