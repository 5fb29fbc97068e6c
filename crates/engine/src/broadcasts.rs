//! Creating a broadcast: one sent now fires in the transaction that saves it.

use casecast_core::broadcast::Draft;
use casecast_store::broadcasts::Broadcast;
use casecast_store::projects::Project;
use casecast_store::{Db, StoreResult};

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
