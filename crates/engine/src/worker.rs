//! The background worker loop: claims jobs from the database and runs them, fires due
//! broadcasts and survey timers, handles inbound messages a dead process left unhandled, and
//! deletes old exports, in `serve` and in `casecast worker` alike.

use std::time::Duration;

use casecast_store::jobs::{Job, JobKind};
use casecast_store::Db;
use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::faults::Faults;
use crate::permits::Permits;
use crate::JobError;

/// Attempts before a job is given up.
pub const MAX_ATTEMPTS: i64 = 5;

/// How often each worker deletes the exports older than a day.
const CLEANUP_EVERY: Duration = Duration::from_secs(600);

/// How often each worker starts the timers of survey sessions whose latest message ended by a
/// path other than the dispatcher's results (expired in the outbox, taken back).
const TIMER_SWEEP_EVERY: Duration = Duration::from_secs(30);

/// How often each worker looks for due broadcasts, survey reminders and expiries, and inbound
/// messages left unhandled.
const SCHEDULER_TICK: Duration = Duration::from_secs(1);

/// What a worker needs besides the database.
#[derive(Clone, Debug)]
pub struct WorkerContext {
    /// The name in job leases: role, host and process id.
    pub name: String,
    /// The scheduler's clock (the system clock, except in tests).
    pub clock: SharedClock,
    /// Fault points at which this process holds (none, except in tests).
    pub faults: Faults,
    /// The process's bound on sheets parsed at once, shared with its web requests.
    pub sheets: Permits,
}

impl WorkerContext {
    /// A worker on the system clock, with no fault point.
    pub fn new(name: impl Into<String>) -> WorkerContext {
        WorkerContext {
            name: name.into(),
            clock: crate::clock::system(),
            faults: Faults::none(),
            sheets: Permits::sheets(),
        }
    }
}

/// Runs jobs, and fires due broadcasts, until `stop` turns true. A failure of the database is
/// logged and waited out; the supervisor restarts the loop if it panics.
pub async fn run_worker(db: Db, cx: WorkerContext, mut stop: watch::Receiver<bool>) {
    tracing::info!(worker = %cx.name, "worker started");
    let mut last_tick: Option<std::time::Instant> = None;
    let mut last_cleanup: Option<std::time::Instant> = None;
    let mut last_timer_sweep: Option<std::time::Instant> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        if last_tick.is_none_or(|t| t.elapsed() >= SCHEDULER_TICK) {
            last_tick = Some(std::time::Instant::now());
            if let Err(e) = crate::scheduler::fire_due_broadcasts(&db, cx.clock.now_ms()).await {
                tracing::error!(error = %e, "firing due broadcasts failed");
            }
            if let Err(e) = crate::surveys::fire_due_timers(&db, &*cx.clock).await {
                tracing::error!(error = %e, "firing survey reminders and expiries failed");
            }
            if let Err(e) =
                crate::inbound::handle_unhandled_with_faults(&db, &*cx.clock, &cx.faults).await
            {
                tracing::error!(error = %e, "handling left-over inbound messages failed");
            }
            reminders_tick(&db, &*cx.clock, &cx.faults).await;
        }
        if last_timer_sweep.is_none_or(|t| t.elapsed() >= TIMER_SWEEP_EVERY) {
            last_timer_sweep = Some(std::time::Instant::now());
            if let Err(e) = db.start_missed_session_timers(1000).await {
                tracing::error!(error = %e, "starting survey timers failed");
            }
        }
        if last_cleanup.is_none_or(|t| t.elapsed() >= CLEANUP_EVERY) {
            last_cleanup = Some(std::time::Instant::now());
            let before = casecast_core::time::now_ms() - casecast_store::case_export::KEPT_MS;
            if let Err(e) = db.delete_old_exports(before).await {
                tracing::error!(error = %e, "deleting old exports failed");
            }
        }
        match db.claim_job(&cx.name).await {
            Ok(Some(job)) => run_job(&db, &cx, job).await,
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
    tracing::info!(worker = %cx.name, "worker stopped");
}

/// Runs one job of a known kind: the job body, without the bookkeeping of [`run_job`].
pub async fn run_job_body(
    db: &Db,
    cx: &WorkerContext,
    kind: JobKind,
    ref_id: i64,
    job_id: i64,
) -> Result<(), JobError> {
    match kind {
        JobKind::Upload => {
            crate::upload::process_upload_within(
                db, ref_id, job_id, &cx.name, &cx.faults, &cx.sheets,
            )
            .await
        }
        JobKind::Fanout => {
            crate::fanout::process_fanout(db, ref_id, job_id, &cx.name, &cx.faults).await
        }
        JobKind::Export => crate::export::process_export(db, ref_id, job_id, &cx.name).await,
        JobKind::Import => {
            // An import reads its sheet twice (to check, then to write): it holds one of the
            // process's sheet permits throughout, waiting its turn, as uploads do per pass.
            let _parsing = cx.sheets.acquire().await;
            crate::import::process_case_import(db, ref_id, job_id, &cx.name).await
        }
    }
}

/// Runs a claimed job and records how it ended: done, to be retried with backoff, or given up
/// after [`MAX_ATTEMPTS`] (its upload, export or occurrence then marked failed).
pub async fn run_job(db: &Db, cx: &WorkerContext, job: Job) {
    let Some(kind) = job.kind else {
        tracing::error!(job.id = job.id, kind = %job.kind_text, "unknown job kind");
        if let Err(e) = db.finish_job(job.id).await {
            tracing::error!(job.id = job.id, error = %e, "recording a job's end failed");
        }
        return;
    };
    let result = run_job_body(db, cx, kind, job.ref_id, job.id).await;
    let done = match result {
        Ok(()) => db.finish_job(job.id).await,
        Err(JobError::LeaseLost(_)) => {
            tracing::warn!(job.id = job.id, "job taken over by another worker");
            Ok(())
        }
        Err(JobError::Store(e)) if job.attempts >= MAX_ATTEMPTS => {
            tracing::error!(job.id = job.id, error = %e, "job failed for good");
            let given_up = match kind {
                JobKind::Upload => {
                    db.fail_upload(
                        job.ref_id,
                        "the upload could not be processed; it has been logged",
                    )
                    .await
                }
                JobKind::Export => {
                    db.fail_export(
                        job.ref_id,
                        "the export could not be made; it has been logged",
                    )
                    .await
                }
                JobKind::Import => {
                    db.fail_case_import(
                        job.ref_id,
                        "the import could not be finished; it has been logged (the rows in the report were written)",
                    )
                    .await
                }
                JobKind::Fanout => {
                    db.end_occurrence(
                        job.ref_id,
                        casecast_core::states::OccurrenceStatus::Failed,
                        Some("the fan-out failed; it has been logged (messages already queued still go out)"),
                    )
                    .await
                }
            };
            if let Err(e) = given_up {
                tracing::error!(job.id = job.id, error = %e, "marking a given-up job's record failed");
            }
            db.finish_job(job.id).await
        }
        Err(JobError::Store(e)) => {
            tracing::warn!(job.id = job.id, attempts = job.attempts, error = %e, "job failed; will retry");
            db.retry_job(job.id, 1000 * job.attempts * job.attempts)
                .await
        }
    };
    if let Err(e) = done {
        tracing::error!(job.id = job.id, error = %e, "recording a job's end failed");
    }
}

/// Renews a job's lease every 10 s in the background until dropped (or until the lease is
/// lost, which the job finds out when it ends: see `Db::still_holds`).
pub(crate) struct Heartbeat(tokio::task::JoinHandle<()>);

impl Heartbeat {
    pub(crate) fn start(db: Db, job_id: i64, worker: &str) -> Heartbeat {
        let worker = worker.to_string();
        Heartbeat(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                if !matches!(db.renew_job(job_id, &worker).await, Ok(true)) {
                    break;
                }
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Most time a tick spends evaluating reminder rules' cases (the rest waits for the next tick).
const RULE_EVALUATION_BUDGET: Duration = Duration::from_secs(2);

/// Reminders' share of a tick: cases written since re-evaluated, pages of rules saved since
/// evaluated (within a time budget), due occurrences sent.
async fn reminders_tick(db: &Db, clock: &dyn crate::clock::Clock, faults: &Faults) {
    if let Err(e) = crate::reminders::evaluate_pending(db, clock).await {
        tracing::error!(error = %e, "re-evaluating reminders of written cases failed");
    }
    let started = std::time::Instant::now();
    while started.elapsed() < RULE_EVALUATION_BUDGET {
        match crate::reminders::evaluate_rules(db, clock).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                tracing::error!(error = %e, "evaluating a reminder rule's cases failed");
                break;
            }
        }
    }
    if let Err(e) = crate::reminders::fire_all_due(db, clock, faults).await {
        tracing::error!(error = %e, "sending due reminders failed");
    }
}
