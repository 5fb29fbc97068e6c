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
}

impl StoreError {
    /// A file or temporary-file failure (writing an export): like a database failure, logged
    /// and never shown.
    pub fn from_io(e: std::io::Error) -> Self {
        StoreError::Database(sqlx::Error::Io(e))
    }

    /// A stored value that does not read back (a schedule, a JSON column): logged, never shown.
    pub fn corrupt(what: impl std::fmt::Display) -> Self {
        StoreError::Database(sqlx::Error::Decode(what.to_string().into()))
    }

    /// A background task of the caller's that stopped unexpectedly: logged, never shown.
    pub fn internal(what: impl std::fmt::Display) -> Self {
        StoreError::Database(sqlx::Error::Protocol(what.to_string()))
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
