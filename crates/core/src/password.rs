//! The rules a new password must meet: 8 characters to 1024 bytes, and not one of the few
//! thousand most common passwords (compared ignoring case).

use std::collections::HashSet;
use std::sync::OnceLock;

/// The fewest characters a password may have.
pub const MIN_CHARS: usize = 8;
/// The most bytes a password may have (argon2 hashes whatever it is given).
pub const MAX_BYTES: usize = 1024;

/// The common passwords of at least [`MIN_CHARS`] characters, lowercased (see the file's
/// header for where they come from and their licence).
const COMMON: &str = include_str!("common_passwords.txt");

fn common() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// Why a new password was refused, in words for the person choosing it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    #[error("the password must have at least {MIN_CHARS} characters")]
    TooShort,
    #[error("the password must have at most {MAX_BYTES} bytes")]
    TooLong,
    #[error("that password is one of the most common passwords, which are guessed first: choose another")]
    Common,
}

/// Checks a password someone is choosing (not one typed to log in).
pub fn check_new(password: &str) -> Result<(), WeakPassword> {
    if password.chars().count() < MIN_CHARS {
        return Err(WeakPassword::TooShort);
    }
    if password.len() > MAX_BYTES {
        return Err(WeakPassword::TooLong);
    }
    if common().contains(password.to_lowercase().as_str()) {
        return Err(WeakPassword::Common);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_passwords_are_refused_ignoring_case() {
        assert!(common().len() > 3000, "{}", common().len());
        for p in ["password", "PassWord", "12345678", "iloveyou", "Qwertyuiop"] {
            assert_eq!(check_new(p), Err(WeakPassword::Common), "{p}");
        }
        assert_eq!(check_new("short"), Err(WeakPassword::TooShort));
        assert_eq!(check_new(&"x".repeat(1025)), Err(WeakPassword::TooLong));
        assert_eq!(check_new("correct horse battery"), Ok(()));
        assert_eq!(check_new("pw-alpha-admin"), Ok(()));
    }
}
