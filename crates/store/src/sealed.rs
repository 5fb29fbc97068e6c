//! Credentials at rest: gateway settings and webhook secrets are sealed with the server's key
//! (ChaCha20-Poly1305, a random nonce per value), so a copy of the database alone does not give
//! away a gateway's password. The key comes from `CASECAST_SECRET_KEY` or a key file (see the
//! CLI); every process sharing a database needs the same key.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// The server's 32-byte key. `Debug` does not show it.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

/// Sealed values start with this, so a later key scheme can be told apart.
const PREFIX: &str = "v1:";

/// A secret key written as something other than 64 hexadecimal digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the secret key must be 64 hexadecimal digits (32 bytes)")]
pub struct BadKey;

/// A sealed value this key cannot open: sealed with another key, or not a sealed value at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "stored gateway credentials cannot be read with this server's secret key \
     (CASECAST_SECRET_KEY or the key file): every process must use the same key"
)]
pub struct WrongKey;

impl SecretKey {
    /// A new random key.
    pub fn generate() -> SecretKey {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).expect("the operating system's random source failed");
        SecretKey(k)
    }

    /// Reads a key written as 64 hexadecimal digits.
    pub fn from_hex(s: &str) -> Result<SecretKey, BadKey> {
        let s = s.trim();
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadKey);
        }
        let mut k = [0u8; 32];
        hex::decode_to_slice(s, &mut k).map_err(|_| BadKey)?;
        Ok(SecretKey(k))
    }

    /// The key as 64 lowercase hexadecimal digits (for writing a key file).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.0))
    }

    /// Encrypts `plain`: `v1:` + base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, plain: &str) -> String {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .expect("ChaCha20-Poly1305 encrypts any length we store");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", BASE64.encode(out))
    }

    /// Decrypts a value sealed with this key; an error when the key is another one.
    pub fn open(&self, sealed: &str) -> Result<String, WrongKey> {
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| BASE64.decode(b).ok())
            .ok_or(WrongKey)?;
        if bytes.len() < 12 + 16 {
            return Err(WrongKey);
        }
        let (nonce, body) = bytes.split_at(12);
        let plain = self
            .cipher()
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| WrongKey)?;
        String::from_utf8(plain).map_err(|_| WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_key() {
        let key = SecretKey::generate();
        let sealed = key.seal("s3cret password");
        assert!(!sealed.contains("s3cret"));
        assert_ne!(
            sealed,
            key.seal("s3cret password"),
            "a fresh nonce each time"
        );
        assert_eq!(key.open(&sealed).unwrap(), "s3cret password");
        assert_eq!(SecretKey::generate().open(&sealed), Err(WrongKey));
        assert_eq!(key.open("v1:AAAA"), Err(WrongKey));
        assert_eq!(key.open("s3cret password"), Err(WrongKey));
        assert!(WrongKey
            .to_string()
            .contains("every process must use the same key"));
        let again = SecretKey::from_hex(&format!(" {} ", key.to_hex())).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "s3cret password");
        assert_eq!(SecretKey::from_hex("abc").unwrap_err(), BadKey);
        assert_eq!(
            SecretKey::from_hex(&"g".repeat(64))
                .unwrap_err()
                .to_string(),
            "the secret key must be 64 hexadecimal digits (32 bytes)"
        );
        assert!(!format!("{key:?}").contains(&key.to_hex()));
    }

    #[test]
    fn a_key_in_hex_reads_in_either_case_and_writes_lowercase() {
        let digits: String = (0u8..32).map(|b| format!("{b:02X}")).collect();
        let key = SecretKey::from_hex(&format!("  {digits}\n")).unwrap();
        assert_eq!(key.0, std::array::from_fn::<u8, 32, _>(|i| i as u8));
        assert_eq!(key.to_hex(), digits.to_lowercase());
        assert_eq!(
            SecretKey::from_hex(&key.to_hex()).unwrap().0,
            key.0,
            "written and read back"
        );
    }
}
