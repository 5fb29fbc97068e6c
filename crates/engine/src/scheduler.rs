//! When broadcasts fire. Every worker process looks for due broadcasts; firing one records its
//! occurrence and queues its fan-out in the transaction that moves the broadcast on to its next
//! occurrence, so each occurrence fires exactly once however many processes look.

use std::collections::HashMap;

use casecast_core::recurrence::Schedule;
use casecast_core::states::OccurrenceStatus;
use casecast_store::broadcast_runs::{Advance, NewOccurrence};
use casecast_store::jobs::JobKind;
use casecast_store::projects::Project;
use casecast_store::{Db, StoreError, StoreResult, Tx};
use jiff::Timestamp;

/// Broadcasts looked at per call of [`fire_due_broadcasts`].
const DUE_BATCH: i64 = 100;
/// Occurrences one broadcast may catch up on per call (after a long outage, each is recorded
/// as missed; the next call carries on).
const MAX_CATCH_UP: usize = 1000;

/// Fires every broadcast occurrence due at `now` (epoch ms; the worker passes its clock, tests
/// any instant). Occurrences that are more than the project's message validity late are
/// recorded as missed instead of sent. Returns the occurrences recorded.
pub async fn fire_due_broadcasts(db: &Db, now: i64) -> StoreResult<usize> {
    let due = db.due_broadcasts(now, DUE_BATCH).await?;
    let mut projects: HashMap<i64, Project> = HashMap::new();
    let mut fired = 0;
    for (id, project_id) in due {
        let project = match projects.entry(project_id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(db.project_by_id(project_id).await?)
            }
        };
        for _ in 0..MAX_CATCH_UP {
            let mut tx = db.begin_write().await?;
            let done = fire_in_tx(db, &mut tx, project, id, now).await?;
            tx.commit().await?;
            if !done {
                break;
            }
            fired += 1;
        }
    }
    if fired > 0 {
        db.wake_workers();
    }
    Ok(fired)
}

/// Fires the broadcast's next occurrence if it is due at `now`, inside the caller's
/// transaction: records the occurrence (missed, if it is too late to send), queues its fan-out
/// and moves the broadcast on. False when nothing was due (or another process fired it first).
pub async fn fire_in_tx(
    db: &Db,
    tx: &mut Tx,
    project: &Project,
    id: i64,
    now: i64,
) -> StoreResult<bool> {
    let Some(due) = db.lock_due_broadcast(tx, id, now).await? else {
        return Ok(false);
    };
    let schedule =
        Schedule::parse(&due.schedule).map_err(|e| StoreError::corrupt("broadcast schedule", e))?;
    let validity_ms = project.validity_seconds() * 1000;
    let missed = now - due.due_at > validity_ms;
    let error = missed.then(|| {
        format!(
            "not sent: the server was not running between the time it was due and {} hours after (the message validity)",
            project.validity_seconds() / 3600
        )
    });
    let occurrence = Db::insert_occurrence(
        tx,
        &NewOccurrence {
            broadcast_id: id,
            index: due.index,
            due_at: due.due_at,
            status: if missed {
                OccurrenceStatus::Missed
            } else {
                OccurrenceStatus::FanningOut
            },
            error: error.as_deref(),
            finished_at: missed.then_some(now),
            now,
        },
    )
    .await?;
    if let (Some(occurrence), false) = (occurrence, missed) {
        Db::enqueue_job(tx, JobKind::Fanout, occurrence).await?;
        tracing::info!(
            broadcast.id = id,
            occurrence.id = occurrence,
            index = due.index,
            "broadcast fired"
        );
    } else if missed {
        tracing::warn!(
            broadcast.id = id,
            index = due.index,
            "broadcast occurrence missed"
        );
    }
    let next = Timestamp::from_millisecond(due.due_at)
        .ok()
        .and_then(|after| schedule.next_after(after, &project.zone()))
        .map(|o| (o.at.as_millisecond(), i64::from(o.index)));
    Db::advance_broadcast(
        tx,
        id,
        Advance {
            next,
            missed,
            due_at: due.due_at,
            now,
        },
    )
    .await?;
    Ok(true)
}
