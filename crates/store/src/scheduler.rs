//! When broadcasts fire. Every worker process looks for due broadcasts; firing one records its
//! occurrence and queues its fan-out in the transaction that moves the broadcast on to its next
//! occurrence, so each occurrence fires exactly once however many processes look.

use std::collections::HashMap;

use jiff::Timestamp;
use sqlx::{Any, Row, Transaction};

use crate::error::{StoreError, StoreResult};
use crate::projects::Project;
use crate::Db;

/// Broadcasts looked at per call of [`Db::fire_due_broadcasts`].
const DUE_BATCH: i64 = 100;
/// Occurrences one broadcast may catch up on per call (after a long outage, each is recorded
/// as missed; the next call carries on).
const MAX_CATCH_UP: usize = 1000;

impl Db {
    /// Fires every broadcast occurrence due at `now` (epoch ms; the worker passes the clock,
    /// tests pass any instant). Occurrences that are more than the project's message validity
    /// late are recorded as missed instead of sent. Returns the occurrences recorded.
    pub async fn fire_due_broadcasts(&self, now: i64) -> StoreResult<usize> {
        let due = sqlx::query(
            "SELECT id, project_id FROM broadcasts WHERE state = 'active' AND next_run_at <= $1
             ORDER BY next_run_at LIMIT $2",
        )
        .bind(now)
        .bind(DUE_BATCH)
        .fetch_all(self.pool())
        .await?;
        let mut projects: HashMap<i64, Project> = HashMap::new();
        let mut fired = 0;
        for row in due {
            let id: i64 = row.try_get("id")?;
            let project_id: i64 = row.try_get("project_id")?;
            let project = match projects.entry(project_id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(self.project_by_id(project_id).await?)
                }
            };
            for _ in 0..MAX_CATCH_UP {
                let mut tx = self.begin_write().await?;
                let done = self.fire_in_tx(&mut tx, project, id, now).await?;
                tx.commit().await?;
                if !done {
                    break;
                }
                fired += 1;
            }
        }
        if fired > 0 {
            self.wake_workers();
        }
        Ok(fired)
    }

    /// Fires the broadcast's next occurrence if it is due at `now`, inside the caller's
    /// transaction: records the occurrence (missed, if it is too late to send), queues its
    /// fan-out and moves the broadcast on. False when nothing was due (or another process
    /// fired it first).
    pub(crate) async fn fire_in_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project: &Project,
        id: i64,
        now: i64,
    ) -> StoreResult<bool> {
        // The row lock makes a second process wait here, then find the broadcast moved on.
        let row = sqlx::query(&format!(
            "SELECT next_run_at, next_index, schedule FROM broadcasts
             WHERE id = $1 AND state = 'active' AND next_run_at <= $2{}",
            crate::dialect::for_update(self.dialect())
        ))
        .bind(id)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let due: i64 = row.try_get("next_run_at")?;
        let index: i64 = row.try_get::<Option<i64>, _>("next_index")?.unwrap_or(1);
        let schedule: serde_json::Value =
            serde_json::from_str(&row.try_get::<String, _>("schedule")?)
                .map_err(|e| StoreError::corrupt_json("broadcast schedule", &e))?;
        let schedule = casecast_core::recurrence::Schedule::parse(&schedule)
            .map_err(|e| StoreError::corrupt("broadcast schedule", e))?;
        let validity_ms = project.validity_seconds() * 1000;
        let missed = now - due > validity_ms;
        let (status, error, finished) = if missed {
            (
                "missed",
                Some(format!(
                    "not sent: the server was not running between the time it was due and {} hours after (the message validity)",
                    project.validity_seconds() / 3600
                )),
                Some(now),
            )
        } else {
            ("fanning_out", None, None)
        };
        let occurrence: Option<i64> = sqlx::query_scalar(
            "INSERT INTO broadcast_occurrences (broadcast_id, occurrence_index, due_at, status, error,
                finished_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(id)
        .bind(index)
        .bind(due)
        .bind(status)
        .bind(error)
        .bind(finished)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        if let (Some(occurrence), false) = (occurrence, missed) {
            Db::enqueue_job(tx, "fanout", occurrence).await?;
            tracing::info!(
                broadcast.id = id,
                occurrence.id = occurrence,
                index,
                "broadcast fired"
            );
        } else if missed {
            tracing::warn!(broadcast.id = id, index, "broadcast occurrence missed");
        }
        let next = Timestamp::from_millisecond(due)
            .ok()
            .and_then(|after| schedule.next_after(after, &project.zone()));
        let (state, next_at, next_index) = match next {
            Some(o) => (
                "active",
                Some(o.at.as_millisecond()),
                Some(i64::from(o.index)),
            ),
            None => ("finished", None, None),
        };
        sqlx::query(
            "UPDATE broadcasts SET state = $1, next_run_at = $2, next_index = $3,
                last_run_at = CASE WHEN $4 = 1 THEN last_run_at ELSE $5 END, updated_at = $6
             WHERE id = $7",
        )
        .bind(state)
        .bind(next_at)
        .bind(next_index)
        .bind(i64::from(missed))
        .bind(due)
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(true)
    }
}
