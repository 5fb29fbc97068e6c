//! Fan-out: one broadcast occurrence becomes outbox rows, batch by batch.
//!
//! Each batch is one transaction that inserts its messages (one message per number per
//! occurrence) and advances the occurrence's cursor (`Db::write_batch`), so a fan-out that dies
//! half-way resumes where it stopped and never writes a message twice. The next batch is read
//! and rendered while the current one is written.

use casecast_core::broadcast::{survey_content, BroadcastContent};
use casecast_core::states::OccurrenceStatus;
use casecast_core::survey::Survey;
use casecast_store::fanout::{SurveyStart, Target, Written};
use casecast_store::recipients::Walk;
use casecast_store::{Db, StoreError, StoreResult};

use crate::faults::{Fault, Faults};
use crate::recipients::{batches, received};
use crate::JobError;

/// The job body: fans an occurrence out into the outbox, batch by batch, resuming after the
/// last batch a previous attempt committed.
pub async fn process_fanout(
    db: &Db,
    occurrence_id: i64,
    job_id: i64,
    worker: &str,
    faults: &Faults,
) -> Result<(), JobError> {
    let Some(work) = db.fanout_work(occurrence_id).await? else {
        return Ok(());
    };
    let broadcast = work.broadcast;
    let project = db.project_by_id(broadcast.project_id).await?;
    // Smart groups' members as the cases are now.
    crate::smart_groups::settle(db, &crate::clock::SystemClock, project.id).await?;
    let expires = work.due_at + project.validity_seconds() * 1000;
    let now = casecast_core::time::now_ms();
    if now >= expires {
        return end(
            db,
            occurrence_id,
            OccurrenceStatus::Missed,
            "not sent: its fan-out could not start within the message validity",
        )
        .await;
    }
    let Some(router) = db.router_for(project.id, broadcast.gateway_id).await? else {
        return end(
            db,
            occurrence_id,
            OccurrenceStatus::Failed,
            "not sent: the broadcast's gateway was deleted",
        )
        .await;
    };
    if router.is_empty() {
        return end(
            db,
            occurrence_id,
            OccurrenceStatus::Failed,
            "not sent: no SMS gateway is set up (an admin can add one under Messaging → Gateways)",
        )
        .await;
    }
    let (content, survey) = match &broadcast.content {
        BroadcastContent::Sms(content) => (content.clone(), None),
        BroadcastContent::Survey(survey_id) => {
            let stored = match db.survey(project.id, *survey_id).await {
                Ok(stored) => stored,
                Err(StoreError::NotFound(_)) => {
                    return end(
                        db,
                        occurrence_id,
                        OccurrenceStatus::Failed,
                        &format!("not sent: the broadcast's survey ({survey_id}) was deleted"),
                    )
                    .await
                }
                Err(e) => return Err(e.into()),
            };
            let Some(start) = survey_start(&stored.survey, *survey_id, broadcast.id) else {
                return end(
                    db,
                    occurrence_id,
                    OccurrenceStatus::Failed,
                    "not sent: the broadcast's survey has no questions",
                )
                .await;
            };
            (survey_content(&stored.survey), Some(start))
        }
    };
    let sources = db.sources(project.id, &broadcast.recipients).await?;
    let target = Target {
        project_id: project.id,
        broadcast_id: broadcast.id,
        occurrence_id,
        expires,
        survey,
    };
    let walk = Walk::new(db, project.id, sources, content, router);
    tracing::info!(
        broadcast.id = broadcast.id,
        occurrence.id = occurrence_id,
        "fan-out started"
    );
    let mut rx = batches(&walk, work.cursor.0, work.cursor.1);
    let mut written = 0u64;
    loop {
        let batch = received(&mut rx).await?;
        match db.write_batch(&target, batch).await? {
            Written::More => {}
            Written::Finished => break,
            // Another worker moved the cursor: read again from where it is.
            Written::Moved(pos, after) => rx = batches(&walk, pos, after),
        }
        db.wake_dispatchers();
        written += 1;
        faults.reached(Fault::FanoutBatchWritten(written)).await;
        if !db.renew_job(job_id, worker).await? {
            return Err(JobError::LeaseLost("another worker took the fan-out over"));
        }
    }
    db.wake_dispatchers();
    tracing::info!(
        broadcast.id = broadcast.id,
        occurrence.id = occurrence_id,
        "fan-out done"
    );
    // A large fan-out changes the tables at once: the planner learns it now rather than at the
    // next automatic analyse (a minute on), so that the replies that follow at once use the
    // right indexes (without it, PostgreSQL read every active session of the project for each
    // batch of survey replies: 200-300 replies/s instead of about 1,000).
    if let Ok(o) = db.occurrence(project.id, occurrence_id).await {
        let rows = usize::try_from(o.queued).unwrap_or_default();
        db.refresh_statistics("messages", rows).await;
        if target.survey.is_some() {
            db.refresh_statistics("survey_sessions", rows).await;
        }
    }
    Ok(())
}

/// The sessions a survey broadcast starts: the timers `Event::Start` sets (the same for every
/// recipient, whatever its language: `surveys::started_state`), and why a case's active session
/// ends. `None` when the survey starts nothing (no questions).
pub fn survey_start(survey: &Survey, survey_id: i64, broadcast_id: i64) -> Option<SurveyStart> {
    let (state, timers) = crate::surveys::started_state(survey);
    let timers = timers.filter(|_| state.step == 1)?;
    Some(SurveyStart {
        survey_id,
        reminder_in_ms: timers.reminder_in_ms,
        expiry_in_ms: timers.expiry_in_ms,
        cancel_reason: format!("a new survey was started for the case (broadcast {broadcast_id})"),
    })
}

async fn end(
    db: &Db,
    occurrence_id: i64,
    status: OccurrenceStatus,
    error: &str,
) -> Result<(), JobError> {
    let r: StoreResult<()> = db.end_occurrence(occurrence_id, status, Some(error)).await;
    Ok(r?)
}
