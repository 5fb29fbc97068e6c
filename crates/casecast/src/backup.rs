//! `casecast backup FILE` and `casecast restore FILE`: a consistent copy of a SQLite database,
//! taken while `serve` runs, with the key that seals its gateway credentials beside it; and
//! that copy put back into a stopped installation. PostgreSQL has its own tools (`pg_dump`,
//! `pg_restore`); on a postgres:// database both commands say so.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use casecast_store::backup::{check_copy, key_opens_copy, quiesce};
use casecast_store::db::{normalise_url, sqlite_file};
use casecast_store::sealed::{self, SecretKey};
use casecast_store::Dialect;

use crate::config::Config;

const POSTGRES: &str = "this installation's database is PostgreSQL: back it up with \
     `pg_dump --format=custom --file=casecast.dump \"$CASECAST_DB\"` and restore it with \
     `pg_restore --clean --if-exists --dbname=\"$CASECAST_DB\" casecast.dump` (docs/operations.md); \
     keep the key file (or CASECAST_SECRET_KEY) with the dump";

/// The key file written beside a backup: `FILE.key`.
pub fn key_file_of(backup: &Path) -> PathBuf {
    with_suffix(backup, ".key")
}

/// The SQLite file of the configured database, or the PostgreSQL advice.
fn sqlite_path(cfg: &Config) -> anyhow::Result<PathBuf> {
    let (dialect, url) = normalise_url(&cfg.db);
    if dialect == Dialect::Postgres {
        bail!("{POSTGRES}");
    }
    sqlite_file(&url)
        .ok_or_else(|| anyhow!("an in-memory database cannot be backed up or restored"))
}

/// Writes `text` to a new file at `path`, readable by its owner only; refuses an existing one.
fn write_new_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_if_there(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => bail!("cannot remove {}: {e}", path.display()),
    }
}

/// Makes a rename in `path`'s folder durable (best effort: some file systems refuse).
fn sync_folder_of(path: &Path) {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Removes a SQLite database file and its `-wal` and `-shm`, where they are.
fn remove_database_files(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        remove_if_there(&with_suffix(path, suffix))?;
    }
    Ok(())
}

pub async fn backup(cfg: &Config, file: &Path) -> anyhow::Result<()> {
    let source = sqlite_path(cfg)?;
    if !source.is_file() {
        bail!("there is no database at {} to back up", source.display());
    }
    let key_path = key_file_of(file);
    for path in [file, key_path.as_path()] {
        if path.exists() {
            bail!(
                "{} exists: a backup never overwrites a file; choose another name",
                path.display()
            );
        }
    }
    let key = crate::admin::secret_key(cfg)?;
    let db = crate::admin::open_with_key(cfg, key.clone()).await?;
    db.backup_into(file).await?;
    db.close().await;
    let summary = match check_copy(file).await {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(file);
            bail!("the copy failed its check, and was removed: {e}");
        }
    };
    write_new_private(&key_path, &format!("{}\n", key.to_hex()))?;
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up {} to {} ({:.1} MB; {} projects, {} cases, schema version {})",
        source.display(),
        file.display(),
        bytes as f64 / 1e6,
        summary.projects,
        summary.cases,
        summary.schema_version
    );
    println!(
        "the key that seals its gateway credentials is in {}: keep the two files together, and as private as the database",
        key_path.display()
    );
    Ok(())
}

pub async fn restore(cfg: &Config, file: &Path, force: bool) -> anyhow::Result<()> {
    let target = sqlite_path(cfg)?;
    let summary = check_copy(file).await?;
    if target.exists() && !force {
        bail!(
            "{} exists: restoring would replace it. Stop every casecast process that uses it, then run again with --force",
            target.display()
        );
    }

    // The key: the backup's, and the one this installation will use.
    let backup_key_path = key_file_of(file);
    let backup_key = sealed::read_key_file(&backup_key_path)?;
    let key_path = match &cfg.key_file {
        Some(p) => p.clone(),
        None => sealed::default_key_file(&cfg.db),
    };
    let installed_key = match &cfg.secret_key {
        Some(hex) => {
            Some(SecretKey::from_hex(hex).map_err(|e| anyhow!("CASECAST_SECRET_KEY: {e}"))?)
        }
        None => sealed::read_key_file(&key_path)?,
    };
    let write_key = match (&backup_key, &installed_key) {
        (Some(b), Some(i)) if b.to_hex() == i.to_hex() => false,
        (Some(_), Some(_)) if cfg.secret_key.is_some() => bail!(
            "CASECAST_SECRET_KEY is not the key of this backup ({}): set it to that key, or its gateway credentials cannot be opened",
            backup_key_path.display()
        ),
        (Some(_), Some(_)) if !force => bail!(
            "{} holds another key than the backup's ({}): run again with --force to replace it",
            key_path.display(),
            backup_key_path.display()
        ),
        (Some(_), _) => cfg.secret_key.is_none(),
        (None, _) => false,
    };
    let key = backup_key.as_ref().or(installed_key.as_ref()).ok_or_else(|| {
        anyhow!(
            "no key for this backup: {} is missing and this installation has none (CASECAST_SECRET_KEY or {})",
            backup_key_path.display(),
            key_path.display()
        )
    })?;
    // The key must open what the backup sealed, before anything is replaced.
    let opens = key_opens_copy(file, key)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    if !opens {
        bail!(
            "the key does not open this backup's gateway credentials: give this installation the key the backup was made with (its FILE.key)"
        );
    }

    // The database in place is brought to one file first: its WAL checkpointed, and out of WAL
    // mode, which SQLite allows only when no other connection has it open, so a running
    // casecast process is found here and nothing is touched.
    if target.exists() && !quiesce(&target).await {
        bail!(
            "{} is in use by another process: stop every casecast process that uses it, then run again",
            target.display()
        );
    }
    // The copy is written beside the target, made durable, then renamed over it: a crash
    // leaves the old database or the new one, never a mix.
    let partial = with_suffix(&target, ".restoring");
    remove_database_files(&partial)?;
    {
        let mut from =
            std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
        let mut to = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        std::io::copy(&mut from, &mut to)
            .and_then(|_| to.sync_all())
            .with_context(|| format!("cannot write {}", partial.display()))?;
    }
    // A -wal or -shm left beside the target would be read as the new file's.
    for suffix in ["-wal", "-shm"] {
        remove_if_there(&with_suffix(&target, suffix))?;
    }
    std::fs::rename(&partial, &target)
        .with_context(|| format!("cannot move the copy to {}", target.display()))?;
    sync_folder_of(&target);
    if write_key {
        let written = (|| {
            let partial_key = with_suffix(&key_path, ".restoring");
            remove_if_there(&partial_key)?;
            write_new_private(&partial_key, &format!("{}\n", key.to_hex()))?;
            std::fs::rename(&partial_key, &key_path)
                .with_context(|| format!("cannot move the key to {}", key_path.display()))
        })();
        if let Err(e) = written {
            bail!(
                "{} is restored, but its key could not be installed ({e:#}): copy {} to {} before starting casecast",
                target.display(),
                backup_key_path.display(),
                key_path.display()
            );
        }
        sync_folder_of(&key_path);
    }

    // Brought up to this build's schema, as every command does.
    let db = crate::admin::open(cfg).await?;
    db.close().await;
    println!(
        "restored {} from {} ({} projects, {} cases, schema version {})",
        target.display(),
        file.display(),
        summary.projects,
        summary.cases,
        summary.schema_version
    );
    if write_key {
        println!("wrote the backup's key to {}", key_path.display());
    }
    Ok(())
}
