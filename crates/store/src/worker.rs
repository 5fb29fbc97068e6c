//! The background worker loop: claims jobs from the database and runs them, in `serve` and in
//! `casecast worker` alike.

use std::time::Duration;

use tokio::sync::watch;

use crate::jobs::Job;
use crate::{Db, StoreError};

/// Attempts before a job is given up.
pub const MAX_ATTEMPTS: i64 = 5;

/// Runs jobs until `stop` turns true.
pub async fn run_worker(db: Db, name: String, mut stop: watch::Receiver<bool>) {
    tracing::info!(worker = %name, "worker started");
    loop {
        if *stop.borrow() {
            break;
        }
        match db.claim_job(&name).await {
            Ok(Some(job)) => run_job(&db, &name, job).await,
            Ok(None) => {
                tokio::select! {
                    () = db.job_queued() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "claiming a job failed");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    tracing::info!(worker = %name, "worker stopped");
}

async fn run_job(db: &Db, worker: &str, job: Job) {
    let result = match job.kind.as_str() {
        "upload" => db.process_upload(job.ref_id, job.id, worker).await,
        other => {
            tracing::error!(job.id = job.id, kind = other, "unknown job kind");
            Ok(())
        }
    };
    let done = match result {
        Ok(()) => db.finish_job(job.id).await,
        // Another worker holds the job now: retrying or giving up here would release its
        // lease (or fail the upload) under it.
        Err(StoreError::Conflict {
            code: "lease_lost", ..
        }) => {
            tracing::warn!(job.id = job.id, "job taken over by another worker");
            Ok(())
        }
        Err(e) if job.attempts >= MAX_ATTEMPTS => {
            tracing::error!(job.id = job.id, error = %e, "job failed for good");
            if job.kind == "upload" {
                let _ = db
                    .give_up_upload(
                        job.ref_id,
                        "the upload could not be processed; it has been logged",
                    )
                    .await;
            }
            db.finish_job(job.id).await
        }
        Err(e) => {
            tracing::warn!(job.id = job.id, attempts = job.attempts, error = %e, "job failed; will retry");
            db.retry_job(job.id, 1000 * job.attempts * job.attempts)
                .await
        }
    };
    if let Err(e) = done {
        tracing::error!(job.id = job.id, error = %e, "recording a job's end failed");
    }
}
