//! PostgreSQL locks held by a connection of the test's own, which a test uses to stop a process
//! at a known step (and then kill it there): a table in `SHARE` mode (the statements that write
//! it wait inside their transactions, with what they wrote before uncommitted; readers go on),
//! or the inbound router's lock on one number (whoever stores or handles that number's messages
//! waits for it).

use sqlx::{Connection, Executor};

use crate::{Dialect, TestDb};

/// A lock held until [`PgLock::release`] (or until the test ends).
pub struct PgLock {
    conn: sqlx::AnyConnection,
    /// Counts the statements of the database that wait for this kind of lock.
    waiting: String,
}

impl TestDb {
    /// Takes `LOCK TABLE {table} IN SHARE MODE` in a transaction of a connection of its own
    /// (waiting for the transactions that wrote the table to end first).
    pub async fn lock_table_for_writes(&self, table: &str) -> PgLock {
        assert!(
            !table.is_empty() && table.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{table:?} is not a plain table name"
        );
        let mut conn = self.pg_transaction().await;
        conn.execute(format!("LOCK TABLE {table} IN SHARE MODE").as_str())
            .await
            .expect("locking the table");
        PgLock {
            conn,
            waiting: format!(
                "NOT granted AND locktype = 'relation' AND relation = '{table}'::regclass"
            ),
        }
    }

    /// Takes the lock the inbound router takes on a project's number (the key of
    /// `Db::lock_number`) in a transaction of a connection of its own.
    pub async fn lock_number(&self, project_id: i64, phone: &str) -> PgLock {
        let mut conn = self.pg_transaction().await;
        let key = casecast_store::survey_sessions::number_lock_key(project_id, phone);
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(&key)
            .execute(&mut conn)
            .await
            .expect("locking the number");
        // pg_locks shows a bigint key as its high (classid) and low (objid) halves.
        let key = key.replace('\'', "''");
        PgLock {
            conn,
            waiting: format!(
                "NOT granted AND locktype = 'advisory' AND objsubid = 1
                   AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('{key}', 0)"
            ),
        }
    }

    async fn pg_transaction(&self) -> sqlx::AnyConnection {
        assert_eq!(
            self.db.dialect(),
            Dialect::Postgres,
            "a PostgreSQL database"
        );
        sqlx::any::install_default_drivers();
        let mut conn =
            sqlx::AnyConnection::connect(&casecast_store::db::normalise_url(&self.url).1)
                .await
                .expect("connecting to the test database");
        conn.execute("BEGIN").await.expect("beginning");
        conn
    }
}

impl PgLock {
    /// How many statements of this database wait for this lock.
    pub async fn waiting(&mut self) -> i64 {
        let sql = format!(
            "SELECT COUNT(*) FROM pg_locks WHERE {}
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            self.waiting
        );
        sqlx::query_scalar(&sql)
            .fetch_one(&mut self.conn)
            .await
            .expect("reading pg_locks")
    }

    /// Waits (up to `within`) until a statement waits for the lock.
    pub async fn wait_for_a_waiter(&mut self, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        while self.waiting().await == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing waited for the lock within {within:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Ends the transaction: those waiting go on.
    pub async fn release(mut self) {
        self.conn.execute("ROLLBACK").await.expect("releasing");
        self.conn.close().await.ok();
    }
}
