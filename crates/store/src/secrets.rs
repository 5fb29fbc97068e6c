//! Secrets: random tokens, their SHA-256 digests for storage, and argon2 password hashes.

use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    hex::encode(bytes)
}

/// The SHA-256 of a high-entropy token, as hex: what is stored instead of the token.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// An argon2id hash of a password, with a random salt.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system's random source failed");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters does not fail")
        .to_string()
}

/// argon2's working memory (19 MiB a check at the default parameters), kept for the next
/// check instead of freed: the allocator would keep a freed block in the arena of whichever
/// thread freed it, so checks spread over many blocking threads would hold many blocks for
/// good. Kept here, the memory is bounded by the most checks ever run at once, which the
/// server bounds (`--max-password-checks`).
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// The most memory a stored hash may ask a check for (KiB); ours ask 19 MiB.
const MAX_MEMORY_KIB: u32 = 64 * 1024;

/// Whether a password matches a stored hash (argon2, with the hash's own parameters).
pub fn verify_password(password: &str, stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) =
        (Algorithm::try_from(hash.algorithm), Params::try_from(&hash))
    else {
        return false;
    };
    let Ok(version) = hash.version.map(Version::try_from).transpose() else {
        return false;
    };
    if params.m_cost() > MAX_MEMORY_KIB {
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut blocks = MEMORY
        .lock()
        .ok()
        .and_then(|mut kept| kept.pop())
        .unwrap_or_default();
    blocks.resize(params.block_count(), Block::default());
    let mut computed = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version.unwrap_or_default(), params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut computed, &mut blocks[..])
        .is_ok();
    if let Ok(mut kept) = MEMORY.lock() {
        kept.push(blocks);
    }
    hashed && bool::from(expected.as_bytes().ct_eq(&computed))
}

/// Compares two secrets in time that does not depend on where they differ (only on their
/// lengths: secrets of different lengths are unequal at once).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("x", "not a hash"));
        // A hash made with other parameters is checked with its own.
        use argon2::password_hash::PasswordVerifier;
        let params = Params::new(8 * 1024, 3, 1, Some(24)).unwrap();
        let other = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(
                b"other",
                &SaltString::encode_b64(b"0123456789abcdef").unwrap(),
            )
            .unwrap()
            .to_string();
        assert!(verify_password("other", &other));
        assert!(!verify_password("Other", &other));
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        // A hash that would ask for more memory than any of ours is refused unchecked.
        let greedy = "$argon2id$v=19$m=1048576,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$\
                      AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(!verify_password("x", greedy));
        let t = random_hex(32);
        assert_eq!(t.len(), 64);
        assert_ne!(t, random_hex(32));
        assert!(t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_eq!(
            token_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(
            constant_time_eq("abc", "abc")
                && !constant_time_eq("abc", "abd")
                && !constant_time_eq("a", "ab")
                && !constant_time_eq("ab", "a")
                && constant_time_eq("", "")
                && !constant_time_eq("", "a")
        );
    }
}
