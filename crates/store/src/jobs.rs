//! The work queue is the database: jobs are rows that workers claim with a lease.

use std::collections::BTreeMap;

use sqlx::{Any, Row, Transaction};

use crate::dialect;
use crate::error::StoreResult;
use crate::Db;

/// What a job does; stored as text in `jobs.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Apply an uploaded sheet to a case group.
    Upload,
    /// Fan a broadcast occurrence out into the outbox.
    Fanout,
    /// Write a background case export.
    Export,
    /// Import a sheet of cases uploaded from the pages.
    Import,
}

impl JobKind {
    /// Every kind, for lists and tests.
    pub const ALL: [JobKind; 4] = [
        JobKind::Upload,
        JobKind::Fanout,
        JobKind::Export,
        JobKind::Import,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Upload => "upload",
            JobKind::Fanout => "fanout",
            JobKind::Export => "export",
            JobKind::Import => "import",
        }
    }

    /// The kind stored as `text`, if it is one.
    pub fn parse(text: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// A claimed job.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: i64,
    /// `None` for a kind this version does not know (written by a newer one).
    pub kind: Option<JobKind>,
    /// The stored kind, for logs when it is not one this version knows.
    pub kind_text: String,
    pub ref_id: i64,
    pub attempts: i64,
}

/// How long a claim lasts unless renewed.
pub const LEASE_MS: i64 = 30_000;

/// Extends the lease of a job that `worker` still holds; false when it holds it no more.
async fn renew<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    executor: E,
    job_id: i64,
    worker: &str,
) -> Result<bool, sqlx::Error> {
    let now = casecast_core::time::now_ms();
    let done = sqlx::query(
        "UPDATE jobs SET locked_until = $1 WHERE id = $2 AND locked_by = $3 AND done_at IS NULL",
    )
    .bind(now + LEASE_MS)
    .bind(job_id)
    .bind(worker)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Db {
    /// Queues a job (inside the caller's transaction).
    pub async fn enqueue_job(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        kind: JobKind,
        ref_id: i64,
    ) -> Result<i64, sqlx::Error> {
        let now = casecast_core::time::now_ms();
        sqlx::query_scalar("INSERT INTO jobs (kind, ref_id, run_at, created_at) VALUES ($1, $2, $3, $3) RETURNING id")
            .bind(kind.as_str())
            .bind(ref_id)
            .bind(now)
            .fetch_one(&mut **tx)
            .await
    }

    /// Claims the oldest due job not held by a live lease; several processes can call this at once.
    pub async fn claim_job(&self, worker: &str) -> StoreResult<Option<Job>> {
        self.claim(worker, None).await
    }

    /// Claims the job of one kind for one record (a CLI or benchmark processing its own upload
    /// in-process), if no live lease holds it.
    pub async fn claim_job_for(
        &self,
        kind: JobKind,
        ref_id: i64,
        worker: &str,
    ) -> StoreResult<Option<Job>> {
        self.claim(worker, Some((kind, ref_id))).await
    }

    async fn claim(&self, worker: &str, only: Option<(JobKind, i64)>) -> StoreResult<Option<Job>> {
        let now = casecast_core::time::now_ms();
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "UPDATE jobs SET locked_until = $1, locked_by = $2, attempts = attempts + 1
             WHERE id = (SELECT id FROM jobs WHERE done_at IS NULL AND run_at <= $3
                         AND (locked_until IS NULL OR locked_until < $3){} ORDER BY id LIMIT 1{})
             RETURNING id, kind, ref_id, attempts",
            if only.is_some() {
                " AND kind = $4 AND ref_id = $5"
            } else {
                ""
            },
            dialect::skip_locked(self.dialect())
        );
        let mut query = sqlx::query(&sql)
            .bind(now + LEASE_MS)
            .bind(worker)
            .bind(now);
        if let Some((kind, ref_id)) = only {
            query = query.bind(kind.as_str()).bind(ref_id);
        }
        let row = query.fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        row.map(|r| {
            let kind_text: String = r.try_get("kind")?;
            Ok(Job {
                id: r.try_get("id")?,
                kind: JobKind::parse(&kind_text),
                kind_text,
                ref_id: r.try_get("ref_id")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    /// Renews a claim; false when another worker has taken the job over.
    pub async fn renew_job(&self, job_id: i64, worker: &str) -> StoreResult<bool> {
        Ok(renew(self.pool(), job_id, worker).await?)
    }

    /// Renews the lease inside the caller's transaction: false when another worker holds the
    /// job now (the transaction should then write nothing).
    pub async fn still_holds(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        job_id: i64,
        worker: &str,
    ) -> Result<bool, sqlx::Error> {
        renew(&mut **tx, job_id, worker).await
    }

    /// Marks a job done.
    pub async fn finish_job(&self, job_id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE jobs SET done_at = $1, locked_until = NULL WHERE id = $2")
            .bind(casecast_core::time::now_ms())
            .bind(job_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Releases a job to be tried again after `delay_ms`.
    pub async fn retry_job(&self, job_id: i64, delay_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE jobs SET run_at = $1, locked_until = NULL, locked_by = NULL WHERE id = $2",
        )
        .bind(casecast_core::time::now_ms() + delay_ms)
        .bind(job_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// How far a job that works through a sheet row by row (a group upload, a page import) has
/// come: the rows done and their outcomes.
#[derive(Clone, Debug, Default)]
pub struct RowProgress {
    pub processed: i64,
    pub counts: BTreeMap<String, i64>,
}

impl RowProgress {
    /// Records, in `tx`, this progress moved on by `rows` rows with these outcomes on the job's
    /// row (`table`: `uploads` or `case_imports`, each with `processed_rows` and `counts`),
    /// guarded by the progress this worker last wrote: `None` (nothing recorded) when a worker
    /// that took the job over has moved on. The caller commits, then keeps the new progress.
    pub(crate) async fn advance<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        table: &'static str,
        id: i64,
        rows: i64,
        outcomes: impl Iterator<Item = &'a str>,
    ) -> StoreResult<Option<RowProgress>> {
        let mut counts = self.counts.clone();
        for outcome in outcomes {
            *counts.entry(outcome.to_string()).or_insert(0) += 1;
        }
        let processed = self.processed + rows;
        let moved = sqlx::query(&format!(
            "UPDATE {table} SET processed_rows = $1, counts = $2 WHERE id = $3 AND processed_rows = $4"
        ))
        .bind(processed)
        .bind(serde_json::to_string(&counts).unwrap_or_default())
        .bind(id)
        .bind(self.processed)
        .execute(&mut **tx)
        .await?;
        Ok((moved.rows_affected() > 0).then_some(RowProgress { processed, counts }))
    }
}
