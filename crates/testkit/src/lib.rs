//! Test support shared by the test suites: a fresh database on either engine, the
//! `on_both_engines!` macro, a server spawned on port 0, seeded data, and a small WebDriver client.
//!
//! Only test suites use this crate (it is a dev-dependency everywhere): a step that fails here
//! fails the test that took it, as an `unwrap` in the test itself would, so the workspace's
//! `unwrap_used` lint, which spares tests (clippy.toml), spares this crate too.
#![allow(clippy::unwrap_used)]

mod app;
mod browser;
pub mod capture;
pub mod cli;
pub mod kannel;
mod pg_locks;
pub mod seed;
mod workflows;

use casecast_store::Db;
pub use casecast_store::Dialect;
use sqlx::{Connection, Executor};

pub use app::{test_dispatch_options, Fixture, TestApp};
pub use browser::Browser;
pub use pg_locks::PgLock;
pub use workflows::Workflows;

/// Runs each named `async fn(Dialect)` as two tests, `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => { $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$name($crate::Dialect::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::$name($crate::Dialect::Postgres).await }
        }
    )* };
}

/// The key that seals gateway credentials in tests (the CLI gets it as `CASECAST_SECRET_KEY`).
pub const TEST_SECRET_KEY: &str =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// [`TEST_SECRET_KEY`] as a key.
pub fn test_key() -> casecast_store::sealed::SecretKey {
    casecast_store::sealed::SecretKey::from_hex(TEST_SECRET_KEY).expect("a valid test key")
}

/// A migrated, empty database of its own, removed when this value is dropped.
pub struct TestDb {
    pub db: Db,
    pub url: String,
    _scratch: Scratch,
}

/// What a test database lives in: a SQLite file's temporary folder, or a PostgreSQL database of
/// the test cluster. Dropping it removes the folder or drops the database: a test run makes a
/// thousand databases, and kept they filled gigabytes of the machine's disk (a CI machine with
/// little room failed every test after the disk was full).
pub struct Scratch {
    kind: ScratchKind,
}

enum ScratchKind {
    Dir { _dir: tempfile::TempDir },
    Postgres { admin: String, name: String },
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let ScratchKind::Postgres { admin, name } = &self.kind else {
            return;
        };
        let (admin, name) = (admin.clone(), name.clone());
        // Its own thread and runtime: a drop cannot wait for the test's runtime, which may be
        // a current-thread one or shutting down. WITH (FORCE) ends the connections that the
        // test's pools (or a server it started) still hold. Best effort: a failure is printed,
        // never a panic (this may run while a failed test unwinds).
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = sqlx::AnyConnection::connect(&admin)
                    .await
                    .map_err(|e| e.to_string())?;
                conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                conn.close().await.ok();
                Ok::<(), String>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("dropping a test database failed: {e}"),
            Err(_) => eprintln!("dropping a test database failed"),
        }
    }
}

/// The URL of a new, empty database on `engine` (not yet migrated), and what holds it: keep
/// that as long as the database is used.
pub async fn fresh_url(engine: Dialect) -> (String, Scratch) {
    match engine {
        Dialect::Sqlite => {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let url = dir.path().join("casecast.db").to_string_lossy().to_string();
            (
                url,
                Scratch {
                    kind: ScratchKind::Dir { _dir: dir },
                },
            )
        }
        Dialect::Postgres => {
            let admin = std::env::var("CASECAST_TEST_PG").expect(
                "CASECAST_TEST_PG is not set: run the tests with scripts/test, which starts a private PostgreSQL",
            );
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&admin)
                .await
                .expect("connecting to the test PostgreSQL");
            let name = format!("t_{}", casecast_store::secrets::random_hex(8));
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("creating a test database");
            conn.close().await.ok();
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            let url = format!("{base}/{name}");
            (
                url,
                Scratch {
                    kind: ScratchKind::Postgres { admin, name },
                },
            )
        }
    }
}

impl TestDb {
    /// A fresh, migrated database.
    pub async fn new(engine: Dialect) -> TestDb {
        let (url, scratch) = fresh_url(engine).await;
        let db = Db::open(&url)
            .await
            .expect("opening the test database")
            .with_secret_key(test_key());
        db.check_secret_key().await.expect("the test key");
        assert_eq!(db.dialect(), engine);
        TestDb {
            db,
            url,
            _scratch: scratch,
        }
    }

    /// Stores `text` as a project's messaging settings past every check, as a hand edit of the
    /// database (or damage) would.
    pub async fn store_messaging_settings_unchecked(&self, project_id: i64, text: &str) {
        sqlx::any::install_default_drivers();
        let mut conn =
            sqlx::AnyConnection::connect(&casecast_store::db::normalise_url(&self.url).1)
                .await
                .expect("connecting to the test database");
        let done = sqlx::query("UPDATE projects SET messaging_settings = $1 WHERE id = $2")
            .bind(text)
            .bind(project_id)
            .execute(&mut conn)
            .await
            .expect("writing the settings");
        assert_eq!(done.rows_affected(), 1, "project {project_id}");
        conn.close().await.ok();
    }
}

impl TestDb {
    /// A connection of its own holding the write lock of a SQLite test database (`BEGIN
    /// IMMEDIATE`) until it is dropped: what another process's long write looks like.
    pub async fn hold_write_lock(&self) -> sqlx::AnyConnection {
        assert_eq!(self.db.dialect(), Dialect::Sqlite, "a SQLite database");
        sqlx::any::install_default_drivers();
        let mut conn =
            sqlx::AnyConnection::connect(&casecast_store::db::normalise_url(&self.url).1)
                .await
                .expect("connecting to the test database");
        conn.execute("BEGIN IMMEDIATE")
            .await
            .expect("taking the write lock");
        conn
    }
}

/// Polls `check` every 50 ms until it gives a value; panics naming `what` after `within`
/// (a generous deadline: tests wait for outcomes, they do not time them).
pub async fn eventually<T, F, Fut>(what: &str, within: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Serves `state` on a free loopback port until the test ends; returns its base URL
/// (`http://127.0.0.1:PORT`), for tests that need a server configured otherwise than
/// [`TestApp`]'s.
pub async fn serve_state(state: casecast_web::AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(casecast_web::serve(listener, state, std::future::pending()));
    base
}
