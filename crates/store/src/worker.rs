//! The background worker loop: claims jobs from the database and runs them, in `serve` and in
//! `casecast worker` alike.

use std::time::Duration;

use tokio::sync::watch;

use crate::jobs::Job;
use crate::{Db, StoreError};

/// Attempts before a job is given up.
pub const MAX_ATTEMPTS: i64 = 5;

/// How often each worker deletes the exports older than a day.
const CLEANUP_EVERY: Duration = Duration::from_secs(600);

/// How often each worker looks for due broadcasts.
const SCHEDULER_TICK: Duration = Duration::from_secs(1);

/// The scheduler's clock: the real one, unless `CASECAST_TEST_CLOCK` is `ANCHOR:START:SPEED`
/// (epoch ms, epoch ms, factor): from the real instant ANCHOR the scheduler sees START, and its
/// time runs SPEED times faster. Tests use it to let several processes live through days in
/// seconds on one shared fake clock; it changes only when broadcasts fire.
fn scheduler_now() -> i64 {
    static CLOCK: std::sync::OnceLock<Option<(i64, i64, f64)>> = std::sync::OnceLock::new();
    let real = casecast_core::time::now_ms();
    let clock = CLOCK.get_or_init(|| {
        let spec = std::env::var("CASECAST_TEST_CLOCK").ok()?;
        let mut parts = spec.split(':');
        let parsed = (|| {
            Some((
                parts.next()?.parse().ok()?,
                parts.next()?.parse().ok()?,
                parts.next()?.parse().ok()?,
            ))
        })();
        if parsed.is_none() {
            tracing::error!(
                "CASECAST_TEST_CLOCK is not ANCHOR_MS:START_MS:SPEED; using the real clock"
            );
        }
        parsed
    });
    match clock {
        Some((anchor, start, speed)) => start + ((real - anchor) as f64 * speed) as i64,
        None => real,
    }
}

/// Runs jobs, and fires due broadcasts, until `stop` turns true.
pub async fn run_worker(db: Db, name: String, mut stop: watch::Receiver<bool>) {
    tracing::info!(worker = %name, "worker started");
    let mut last_tick: Option<std::time::Instant> = None;
    let mut last_cleanup: Option<std::time::Instant> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        if last_tick.is_none_or(|t| t.elapsed() >= SCHEDULER_TICK) {
            last_tick = Some(std::time::Instant::now());
            if let Err(e) = db.fire_due_broadcasts(scheduler_now()).await {
                tracing::error!(error = %e, "firing due broadcasts failed");
            }
        }
        if last_cleanup.is_none_or(|t| t.elapsed() >= CLEANUP_EVERY) {
            last_cleanup = Some(std::time::Instant::now());
            let before = casecast_core::time::now_ms() - crate::case_export::KEPT_MS;
            if let Err(e) = db.delete_old_exports(before).await {
                tracing::error!(error = %e, "deleting old exports failed");
            }
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
        "fanout" => db.process_fanout(job.ref_id, job.id, worker).await,
        "export" => db.process_export(job.ref_id, job.id, worker).await,
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
            if job.kind == "export" {
                let _ = db
                    .fail_export(
                        job.ref_id,
                        "the export could not be made; it has been logged",
                    )
                    .await;
            }
            if job.kind == "fanout" {
                let _ = db
                    .end_occurrence(
                        job.ref_id,
                        "failed",
                        Some("the fan-out failed; it has been logged (messages already queued still go out)"),
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
