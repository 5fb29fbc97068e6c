//! Backups of a SQLite database (`casecast backup`, `casecast restore`).
//!
//! A backup is `VACUUM INTO`: SQLite writes a compact copy from one read transaction, so the
//! copy holds exactly what was committed when it began (a batch of an upload or a fan-out is
//! in it whole or not at all, and the job's progress with it), and writers go on meanwhile.
//! Not the online backup API: sqlx does not expose it, and it restarts whenever another
//! connection writes, which a busy server always does. A PostgreSQL database is backed up with
//! its own tools (`pg_dump`), which the operations guide shows.

use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use crate::sealed::SecretKey;
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
        // An absolute path: SQLite reads a name starting `file:` as a URI.
        let target = std::path::absolute(dest).map_err(|source| BackupError::Create {
            path: dest.display().to_string(),
            source,
        })?;
        let written = sqlx::query("VACUUM INTO $1")
            .bind(target.to_string_lossy().to_string())
            .execute(self.pool())
            .await;
        if let Err(e) = written {
            // No half-written copy is left to be taken for a backup.
            let _ = std::fs::remove_file(dest);
            return Err(e.into());
        }
        // VACUUM INTO does not sync what it wrote: a copy reported made must survive a power
        // cut.
        let synced = std::fs::File::open(&target).and_then(|f| f.sync_all());
        if let Some(dir) = target.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        synced.map_err(|source| BackupError::Create {
            path: dest.display().to_string(),
            source,
        })?;
        Ok(())
    }
}

/// A read-only connection to the SQLite file at `path`, named as a file, never as a URL (a `?`,
/// `%` or `:` in the name is part of it).
async fn read_only(path: &Path) -> Result<SqliteConnection, sqlx::Error> {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
}

/// Whether `key` opens what the copy at `path` sealed, read without writing: its key check and
/// every gateway's settings and webhook secret. A copy that sealed nothing takes any key.
pub async fn key_opens_copy(path: &Path, key: &SecretKey) -> Result<bool, sqlx::Error> {
    let mut conn = read_only(path).await?;
    let mut sealed: Vec<String> =
        sqlx::query_scalar("SELECT sealed FROM server_key_check WHERE id = 1")
            .fetch_all(&mut conn)
            .await?;
    let gateways: Vec<(String, String)> =
        sqlx::query_as("SELECT config_sealed, webhook_secret_sealed FROM gateways")
            .fetch_all(&mut conn)
            .await?;
    conn.close().await.ok();
    for (config, secret) in gateways {
        sealed.push(config);
        sealed.push(secret);
    }
    Ok(sealed.iter().all(|s| key.open(s).is_ok()))
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
    let mut conn = read_only(path).await.map_err(unreadable)?;
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
    let known = crate::dialect::latest_migration(Dialect::Sqlite);
    if schema_version > known {
        return Err(BadCopy::Newer {
            path: shown,
            found: schema_version,
            known,
        });
    }
    // Both tables exist from migration 1.
    let (projects, cases): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM projects), (SELECT COUNT(*) FROM cases)")
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

/// Checkpoints the SQLite database at `path` into its main file and takes it out of WAL mode,
/// so that no `-wal` holds anything of it; false when another connection has it open (SQLite
/// leaves WAL mode only for its last connection), which is how a running process is found. A
/// file SQLite cannot read at all counts as done: it is to be replaced as it is.
pub async fn quiesce(path: &Path) -> bool {
    let opened = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(std::time::Duration::from_millis(200))
        .connect()
        .await;
    let Ok(mut conn) = opened else {
        return true;
    };
    let checkpoint: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&mut conn)
        .await;
    let mode: Result<String, _> = sqlx::query_scalar("PRAGMA journal_mode = DELETE")
        .fetch_one(&mut conn)
        .await;
    conn.close().await.ok();
    match (checkpoint, mode) {
        (Ok((0, _, _)), Ok(mode)) => mode.eq_ignore_ascii_case("delete"),
        // The checkpoint could not finish: another connection reads or writes.
        (Ok(_), Ok(_)) => false,
        (Err(e), _) | (_, Err(e)) => !is_busy(&e),
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED, with their extended codes.
fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}
