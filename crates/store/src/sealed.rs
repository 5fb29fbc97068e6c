//! Credentials at rest: gateway settings and webhook secrets are sealed with the server's key
//! (ChaCha20-Poly1305, a random nonce per value), so a copy of the database alone does not give
//! away a gateway's password. The key comes from `CASECAST_SECRET_KEY` or a key file (see the
//! CLI; [`default_key_file`] and [`read_or_create_key_file`]); every process sharing a database
//! needs the same key.

use std::path::{Path, PathBuf};

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

/// Where the key file is when none is named: `casecast.key` beside a SQLite database file, else
/// (PostgreSQL, or SQLite in memory) in the working directory.
pub fn default_key_file(url: &str) -> PathBuf {
    let (dialect, _) = crate::db::normalise_url(url);
    let sqlite_file = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
        .split('?')
        .next()
        .unwrap_or("");
    match dialect {
        crate::Dialect::Sqlite if !sqlite_file.is_empty() => {
            let dir = Path::new(sqlite_file)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            dir.join("casecast.key")
        }
        _ => PathBuf::from("casecast.key"),
    }
}

/// Why a key file could not be read or made; says which file and what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path}: {source}")]
    Bad { path: String, source: BadKey },
    #[error("cannot write a key file in {dir}: {source}")]
    Write { dir: String, source: std::io::Error },
    #[error("cannot create the key file {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
}

/// The key in the key file `path`; `None` when there is no such file.
pub fn read_key_file(path: &Path) -> Result<Option<SecretKey>, KeyFileError> {
    let shown = || path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => SecretKey::from_hex(&text)
            .map(Some)
            .map_err(|source| KeyFileError::Bad {
                path: shown(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KeyFileError::Read {
            path: shown(),
            source,
        }),
    }
}

/// Reads the key in `path`, or creates that file with a new random key (readable by its owner
/// only) when there is none. The second value says whether the file was created here.
pub fn read_or_create_key_file(path: &Path) -> Result<(SecretKey, bool), KeyFileError> {
    let shown = || path.display().to_string();
    if let Some(key) = read_key_file(path)? {
        return Ok((key, false));
    }
    // Written beside the target and linked into place: a process starting at the same moment
    // sees either no file or the whole key, and the first link wins.
    let key = SecretKey::generate();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let cannot_write = |source: std::io::Error| KeyFileError::Write {
        dir: dir.display().to_string(),
        source,
    };
    let tmp = tempfile::Builder::new()
        .prefix(".casecast-key")
        .tempfile_in(dir)
        .map_err(cannot_write)?;
    std::fs::write(tmp.path(), key.to_hex()).map_err(cannot_write)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))
            .map_err(cannot_write)?;
    }
    match std::fs::hard_link(tmp.path(), path) {
        Ok(()) => Ok((key, true)),
        // Another process linked its key first: that one is the key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match read_key_file(path)? {
            Some(key) => Ok((key, false)),
            None => Err(KeyFileError::Read {
                path: shown(),
                source: e,
            }),
        },
        Err(source) => Err(KeyFileError::Create {
            path: shown(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_once_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("casecast.key");
        let (made, created) = read_or_create_key_file(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (read, created) = read_or_create_key_file(&path).unwrap();
        assert!(!created);
        assert_eq!(read.to_hex(), made.to_hex());
        std::fs::write(&path, "not a key").unwrap();
        let err = read_or_create_key_file(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::Bad { .. }), "{err}");
        assert!(err.to_string().contains("casecast.key"), "{err}");
    }

    #[test]
    fn default_key_file_is_beside_a_sqlite_file() {
        let key = |url| default_key_file(url).to_string_lossy().into_owned();
        assert_eq!(key("data/casecast.db"), "data/casecast.key");
        assert_eq!(key("sqlite:///srv/c.db?mode=rwc"), "/srv/casecast.key");
        assert_eq!(key("casecast.db"), "./casecast.key");
        assert_eq!(key("postgres://u@h/db"), "casecast.key");
    }

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
