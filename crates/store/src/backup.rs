//! Backups of a SQLite database (`casecast backup`, `casecast restore`).
//!
//! A backup is `VACUUM INTO`: SQLite writes a compact copy from one read transaction, so the
//! copy holds exactly what was committed when it began (a batch of an upload or a fan-out is
//! in it whole or not at all, and the job's progress with it), and writers go on meanwhile.
//! Not the online backup API: sqlx does not expose it, and it restarts whenever another
//! connection writes, which a busy server always does. A PostgreSQL database is backed up with
//! its own tools (`pg_dump`), which the operations guide shows.

use std::path::Path;

use sqlx::{AnyConnection, Connection};

use crate::{Db, Dialect};

/// What a database copy holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopySummary {
    /// The newest schema migration applied to it.
    pub schema_version: i64,
    pub projects: i64,
    pub cases: i64,
}

/// Why a file is not a usable copy of a Casecast database.
#[derive(Debug, thiserror::Error)]
pub enum BadCopy {
    #[error("{path} cannot be opened as a SQLite database: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{path} is damaged: SQLite's check says {reason}")]
    Damaged { path: String, reason: String },
    #[error("{path} is not a Casecast database (it has no casecast_migrations table)")]
    NotCasecast { path: String },
    #[error(
        "{path} was made by a newer Casecast (schema version {found}; this one knows up to {known}): restore it with that version"
    )]
    Newer {
        path: String,
        found: i64,
        known: i64,
    },
}

/// Why a backup was not made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "a PostgreSQL database is backed up with pg_dump, and restored with pg_restore (docs/operations.md shows how)"
    )]
    Postgres,
    #[error("cannot create {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("writing the copy failed: {0}")]
    Write(#[from] sqlx::Error),
}

impl Db {
    /// Writes a consistent copy of this SQLite database to `dest`, which must not exist, and
    /// makes it readable by its owner only (it holds the same personal data). An error on
    /// PostgreSQL.
    pub async fn backup_into(&self, dest: &Path) -> Result<(), BackupError> {
        if self.dialect() != Dialect::Sqlite {
            return Err(BackupError::Postgres);
        }
        // Made empty and private first: VACUUM INTO writes into an empty file, and the copy
        // is never readable by others, not even while it is being written.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)
                .map_err(|source| BackupError::Create {
                    path: dest.display().to_string(),
                    source,
                })?;
        }
        let written = sqlx::query("VACUUM INTO $1")
            .bind(dest.to_string_lossy().to_string())
            .execute(self.pool())
            .await;
        if let Err(e) = written {
            // No half-written copy is left to be taken for a backup.
            let _ = std::fs::remove_file(dest);
            return Err(e.into());
        }
        Ok(())
    }
}

/// Opens `path` read-only and checks that it is a whole Casecast database of a schema this
/// build knows; returns what it holds.
pub async fn check_copy(path: &Path) -> Result<CopySummary, BadCopy> {
    let shown = path.display().to_string();
    let unreadable = |e: sqlx::Error| BadCopy::Unreadable {
        path: shown.clone(),
        reason: e.to_string(),
    };
    if !path.is_file() {
        return Err(BadCopy::Unreadable {
            path: shown.clone(),
            reason: "there is no such file".into(),
        });
    }
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn = AnyConnection::connect(&url).await.map_err(unreadable)?;
    let check: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut conn)
        .await
        .map_err(unreadable)?;
    if check != "ok" {
        return Err(BadCopy::Damaged {
            path: shown,
            reason: check,
        });
    }
    let has_migrations: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'casecast_migrations'",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(unreadable)?;
    if has_migrations == 0 {
        return Err(BadCopy::NotCasecast { path: shown });
    }
    let schema_version: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM casecast_migrations")
            .fetch_one(&mut conn)
            .await
            .map_err(unreadable)?;
    let known = crate::dialect::migrations(Dialect::Sqlite)
        .last()
        .map_or(0, |m| m.0);
    if schema_version > known {
        return Err(BadCopy::Newer {
            path: shown,
            found: schema_version,
            known,
        });
    }
    let count = |table: &'static str| {
        // Tables of early schema versions all exist from migration 1.
        format!("SELECT COUNT(*) FROM {table}")
    };
    let projects: i64 = sqlx::query_scalar(&count("projects"))
        .fetch_one(&mut conn)
        .await
        .map_err(unreadable)?;
    let cases: i64 = sqlx::query_scalar(&count("cases"))
        .fetch_one(&mut conn)
        .await
        .map_err(unreadable)?;
    conn.close().await.ok();
    Ok(CopySummary {
        schema_version,
        projects,
        cases,
    })
}
