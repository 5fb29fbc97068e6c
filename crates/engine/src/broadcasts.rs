//! Creating a broadcast: one sent now fires in the transaction that saves it.

use casecast_core::broadcast::Draft;
use casecast_core::case::FieldError;
use casecast_store::broadcasts::Broadcast;
use casecast_store::projects::Project;
use casecast_store::surveys::StoredSurvey;
use casecast_store::{Db, StoreError, StoreResult};

use crate::clock::Clock;

/// Saves a broadcast. One sent now fires in the same transaction (its fan-out is queued as a
/// job); a scheduled one waits for the scheduler.
pub async fn create_broadcast(
    db: &Db,
    clock: &dyn Clock,
    project: &Project,
    draft: &Draft,
    user_id: Option<i64>,
) -> StoreResult<Broadcast> {
    db.check_draft_refs(project, draft).await?;
    draft_survey(db, project, draft).await?;
    let now = clock.now_ms();
    let mut tx = db.begin_write().await?;
    let (id, first_at) = db
        .insert_broadcast(&mut tx, project, draft, user_id, now)
        .await?;
    if first_at <= now {
        crate::scheduler::fire_in_tx(db, &mut tx, project, id, now).await?;
    }
    tx.commit().await?;
    db.wake_workers();
    tracing::info!(
        broadcast.id = id,
        project.id = project.id,
        "broadcast created"
    );
    db.broadcast(project.id, id).await
}

/// The survey a draft sends, if it sends one: one of the project's surveys, else an error on
/// `content.survey` (a survey of another project is not found either).
pub async fn draft_survey(
    db: &Db,
    project: &Project,
    draft: &Draft,
) -> StoreResult<Option<StoredSurvey>> {
    let Some(id) = draft.content.survey() else {
        return Ok(None);
    };
    match db.survey(project.id, id).await {
        Ok(survey) => Ok(Some(survey)),
        Err(StoreError::NotFound(_)) => Err(FieldError::new(
            "content.survey",
            format!("there is no survey {id} in this project"),
        )
        .into()),
        Err(e) => Err(e),
    }
}
