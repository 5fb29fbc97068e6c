//! The database handle: which engine, the pool, and write transactions.

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row, Transaction};

use crate::dialect;

/// A write transaction on either engine, which workflows pass to the statements they compose.
pub type Tx = Transaction<'static, Any>;

/// Which database engine a URL selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded default: one file, one machine.
    Sqlite,
    /// The shared engine for many processes.
    Postgres,
}

impl Dialect {
    /// The engine's name in logs and test names.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// A pool on one engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    engine: Dialect,
    /// Wakes this process's workers when it queues a job (others poll).
    wake: std::sync::Arc<tokio::sync::Notify>,
    /// Seals gateway credentials; `None` until the process sets it (see `with_secret_key`).
    key: Option<std::sync::Arc<crate::sealed::SecretKey>>,
    /// Wakes this process's dispatchers when it queues a message (others poll).
    outbox: std::sync::Arc<tokio::sync::Notify>,
    /// Write transactions of this process waiting to begin (see `writers_waiting`).
    waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// What the other crates keep per database in this process (see [`Db::local`]).
    locals: std::sync::Arc<std::sync::Mutex<Locals>>,
}

/// [`Db::local`]'s values, one per type.
type Locals =
    std::collections::HashMap<std::any::TypeId, std::sync::Arc<dyn std::any::Any + Send + Sync>>;

/// Counts a writer waiting for its transaction while it lives.
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Turns what the user gave to `--db` into a driver URL: a plain path is a SQLite file.
pub fn normalise_url(url: &str) -> (Dialect, String) {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        (Dialect::Postgres, url.to_string())
    } else if url.starts_with("sqlite:") {
        (Dialect::Sqlite, url.to_string())
    } else {
        (Dialect::Sqlite, format!("sqlite://{url}?mode=rwc"))
    }
}

/// The file of a SQLite driver URL, `None` for a database in memory.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory =
        path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory");
    (!in_memory).then(|| std::path::PathBuf::from(path))
}

/// Makes the SQLite database readable by its owner only: it holds patient data and password
/// hashes. A new file is created empty with mode 0600 before SQLite opens it (SQLite gives its
/// `-wal` and `-shm` files the database file's mode); an existing file, and its `-wal` and
/// `-shm`, lose any permission for group and others. A failure is logged, and SQLite then
/// reports what it finds.
fn private_sqlite_file(url: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let Some(path) = sqlite_file(url) else {
            return;
        };
        if url.contains("mode=rwc") {
            // Only when the URL lets SQLite create the file; `create_new` never truncates one.
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
        }
        let mut files = vec![path.clone()];
        for suffix in ["-wal", "-shm"] {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            files.push(name.into());
        }
        for file in files {
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                if let Err(e) =
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & 0o700))
                {
                    tracing::warn!(file = %file.display(), error = %e,
                        "cannot make the database file readable by its owner only");
                }
            }
        }
    }
}

impl Db {
    /// Connects (creating a SQLite file if needed, readable by its owner only) without
    /// migrating.
    pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let (engine, url) = normalise_url(url);
        if engine == Dialect::Sqlite {
            private_sqlite_file(&url);
        }
        let options: AnyConnectOptions = url.parse()?;
        // One direct connection first: it fails with the real reason (refused, wrong password,
        // no such database) where the pool would only say that it timed out.
        match tokio::time::timeout(
            Duration::from_secs(15),
            AnyConnection::connect_with(&options),
        )
        .await
        {
            Ok(Ok(conn)) => conn.close().await?,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the database did not answer within 15 s",
                )))
            }
        }
        let max = match engine {
            Dialect::Sqlite => 8,
            Dialect::Postgres => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    for statement in dialect::connection_setup(engine) {
                        conn.execute(*statement).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Db {
            pool,
            engine,
            wake: Default::default(),
            key: None,
            outbox: Default::default(),
            waiting: Default::default(),
            locals: Default::default(),
        })
    }

    /// Connects and applies migrations: what every command does first.
    pub async fn open(url: &str) -> Result<Db, sqlx::Error> {
        let db = Db::connect(url).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// This handle with the key that seals gateway credentials.
    pub fn with_secret_key(mut self, key: crate::sealed::SecretKey) -> Db {
        self.key = Some(std::sync::Arc::new(key));
        self
    }

    /// The key that seals gateway credentials.
    pub(crate) fn secret_key(&self) -> Result<&crate::sealed::SecretKey, crate::StoreError> {
        self.key.as_deref().ok_or(crate::StoreError::Config(
            crate::error::SetupError::NoSecretKey,
        ))
    }

    /// Resolves when this process queues an outbound message.
    pub async fn message_queued(&self) {
        self.outbox.notified().await;
    }

    /// This process's value of type `T` for this database (made with `T::default()` the first
    /// time; shared by every clone of this handle): state a workflow keeps beside the database,
    /// such as the engine's batch of inbound messages being stored.
    pub fn local<T: std::any::Any + Send + Sync + Default>(&self) -> std::sync::Arc<T> {
        let mut locals = self.locals.lock().unwrap_or_else(|e| e.into_inner());
        let value = locals
            .entry(std::any::TypeId::of::<T>())
            .or_insert_with(|| std::sync::Arc::new(T::default()))
            .clone();
        drop(locals);
        value
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("stored under its own type id"))
    }

    /// Wakes this process's dispatchers (after queueing messages).
    pub fn wake_dispatchers(&self) {
        self.outbox.notify_waiters();
    }

    /// Resolves when this process queues a job.
    pub async fn job_queued(&self) {
        self.wake.notified().await;
    }

    /// Wakes this process's workers (after queueing a job).
    pub fn wake_workers(&self) {
        self.wake.notify_waiters();
    }

    /// The engine behind this handle.
    pub fn dialect(&self) -> Dialect {
        self.engine
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Connections open and idle, for `/metrics`.
    pub fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// A transaction that only reads: one consistent view for several statements.
    pub async fn begin_read(&self) -> Result<Tx, sqlx::Error> {
        self.pool.begin().await
    }

    /// A transaction that will write (see `dialect::begin_write`): the unit in which a
    /// workflow composes several statements atomically.
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        let _waiting = Waiting::new(&self.waiting);
        self.pool
            .begin_with(dialect::begin_write(self.engine))
            .await
    }

    /// How many of this process's write transactions are waiting to begin: a long bulk write
    /// (an import, an upload) lets them in between its batches (see `casecast_engine::pace`).
    pub fn writers_waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// After a bulk change of `rows` rows to `table`, brings the planner's statistics up to
    /// date (see `dialect::analyze`), so that the next query does not wait for autovacuum: a
    /// broadcast previewed right after a million-case upload otherwise took 26 s instead of 4
    /// on PostgreSQL. Failing to is logged, not an error.
    pub async fn refresh_statistics(&self, table: &str, rows: usize) {
        const BULK: usize = 10_000;
        let Some(sql) = dialect::analyze(self.engine, table) else {
            return;
        };
        if rows < BULK {
            return;
        }
        if let Err(e) = self.pool.execute(sql.as_str()).await {
            tracing::warn!(table, error = %e, "refreshing planner statistics failed");
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        self.pool.execute("SELECT 1").await.map(|_| ())
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A stored state or kind, read back; a text that names none is a decoding error.
pub(crate) fn stored<T: std::str::FromStr>(
    row: &sqlx::any::AnyRow,
    column: &str,
) -> Result<T, sqlx::Error>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.try_get(column)?;
    text.parse().map_err(|e: T::Err| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(e),
    })
}
