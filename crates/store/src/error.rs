//! The storage layer's error: what callers map to HTTP statuses and CLI messages.

use casecast_core::case::FieldError;

/// A storage outcome that is not success.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing does not exist (or belongs to another project).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique rule was broken; `code` is machine-readable (`name_taken`, `case_id_taken`).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A field broke a rule.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The database failed; never shown to users.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A file or temporary file failed (writing an export); like a database failure, logged
    /// and never shown.
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
    /// This process is not set up for the request; logged, never shown.
    #[error("configuration error: {0}")]
    Config(#[from] SetupError),
    /// Stored data that cannot be read back, though it was checked when written (`what` it
    /// is, and why); logged, never shown.
    #[error("stored {what} cannot be read: {reason}")]
    Corrupt { what: &'static str, reason: String },
    /// A part of the work running beside the request stopped (a task that panicked, a sheet
    /// writer that failed); logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What this process's configuration lacks for a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// Gateway credentials are sealed with a key, and this process was given none.
    #[error("no secret key is configured for gateway credentials")]
    NoSecretKey,
    /// Stored credentials were sealed with another key than this process's.
    #[error(transparent)]
    WrongSecretKey(#[from] crate::sealed::WrongKey),
}

impl StoreError {
    /// Stored data of `what` kind that cannot be read back, and why.
    pub fn corrupt(what: &'static str, reason: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            what,
            reason: reason.to_string(),
        }
    }

    /// Stored JSON of `what` kind that cannot be read back. The reason says where, never what
    /// (serde quotes the values it refuses, and they may be a person's data).
    pub fn corrupt_json(what: &'static str, e: &serde_json::Error) -> Self {
        StoreError::Corrupt {
            what,
            reason: format!(
                "{:?} error at line {}, column {}",
                e.classify(),
                e.line(),
                e.column()
            ),
        }
    }

    /// A part of the work running beside the request that stopped (a task that panicked, a
    /// reader that went away): logged, never shown.
    pub fn internal(what: impl std::fmt::Display) -> Self {
        StoreError::Internal(what.to_string())
    }

    /// Whether the database was too busy to answer in time (see [`is_busy`]): worth trying
    /// again in a moment, so the web answers 503 with `Retry-After`, not 500.
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Database(e) if is_busy(e))
    }
}

/// Whether a database error means "busy, try again": SQLite's `SQLITE_BUSY` or `SQLITE_LOCKED`
/// (any extended code) once its busy timeout has run out, or no pooled connection free within
/// the pool's acquire timeout.
pub fn is_busy(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::sqlite::SqliteError>()
            .and_then(sqlx::error::DatabaseError::code)
            .and_then(|c| c.parse::<i64>().ok())
            // The primary code is the low byte: 5 SQLITE_BUSY, 6 SQLITE_LOCKED.
            .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
        _ => false,
    }
}

/// Whether a database error is PostgreSQL's "lock not available" (55P03): a `NOWAIT` lock
/// another transaction holds. The caller rolls back and tries again later.
pub fn is_lock_unavailable(err: &StoreError) -> bool {
    match err {
        StoreError::Database(sqlx::Error::Database(db)) => db.code().as_deref() == Some("55P03"),
        _ => false,
    }
}

/// Results of storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Whether a database error is a unique-key violation (portable across both engines).
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_failures_have_variants_of_their_own() {
        let io = StoreError::from(std::io::Error::other("disk full"));
        assert!(matches!(io, StoreError::Io(_)));
        assert_eq!(io.to_string(), "file error: disk full");
        let key = StoreError::from(SetupError::NoSecretKey);
        assert_eq!(
            key.to_string(),
            "configuration error: no secret key is configured for gateway credentials"
        );
        let wrong = StoreError::from(SetupError::from(crate::sealed::WrongKey));
        assert!(matches!(
            wrong,
            StoreError::Config(SetupError::WrongSecretKey(_))
        ));
        let corrupt = StoreError::corrupt("broadcast schedule", "expected a kind");
        assert_eq!(
            corrupt.to_string(),
            "stored broadcast schedule cannot be read: expected a kind"
        );
    }
}
