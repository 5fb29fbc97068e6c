//! Schema migrations: numbered SQL scripts per engine, applied once each, in order.
//!
//! Hand-written rather than `sqlx::migrate!`: that macro needs sqlx's `macros` feature, which
//! compiles every driver a second time for the proc-macro host; this runner is 40 lines.

use sqlx::Executor;

use crate::db::Db;
use crate::dialect;

impl Db {
    /// Creates or upgrades the schema. Safe to run from several processes at once.
    pub async fn migrate(&self) -> Result<(), sqlx::Error> {
        self.pool()
            .execute(
                "CREATE TABLE IF NOT EXISTS casecast_migrations (
                   version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            )
            .await?;
        for (version, description, sql) in dialect::migrations(self.dialect()) {
            let mut tx = self.begin_write().await?;
            if self.dialect() == crate::Dialect::Postgres {
                // Serialises concurrent migrators; released at commit.
                sqlx::query("SELECT pg_advisory_xact_lock(7261001)")
                    .execute(&mut *tx)
                    .await?;
            }
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM casecast_migrations WHERE version = $1")
                    .bind(*version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            tx.execute(*sql).await?;
            if *version == 5 {
                crate::cases::relower_names(&mut tx, self.dialect()).await?;
            }
            sqlx::query("INSERT INTO casecast_migrations (version, description, applied_at) VALUES ($1, $2, $3)")
                .bind(*version)
                .bind(*description)
                .bind(casecast_core::time::now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version, description, "applied migration");
        }
        Ok(())
    }

    /// Whether every migration has been applied (for `/healthz`).
    pub async fn is_migrated(&self) -> Result<bool, sqlx::Error> {
        let latest = dialect::latest_migration(self.dialect());
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM casecast_migrations")
                .fetch_one(self.pool())
                .await?;
        Ok(applied.unwrap_or(0) >= latest)
    }
}
