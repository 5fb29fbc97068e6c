//! The statements with which the engine's scheduler fires broadcast occurrences: the due
//! broadcasts, the row lock on one, the occurrence it records and the broadcast moved on. The
//! engine composes them in one transaction per occurrence (see `casecast_engine::scheduler`).

use casecast_core::states::{BroadcastState, OccurrenceStatus};
use sqlx::Row;

use crate::error::{StoreError, StoreResult};
use crate::{Db, Tx};

/// A broadcast whose next occurrence is due, read under its row lock.
#[derive(Clone, Debug)]
pub struct DueBroadcast {
    pub id: i64,
    /// When the occurrence was due (epoch ms).
    pub due_at: i64,
    /// Its number in the schedule (1 for the first).
    pub index: i64,
    /// The broadcast's schedule as stored.
    pub schedule: serde_json::Value,
}

/// An occurrence to record.
#[derive(Clone, Debug)]
pub struct NewOccurrence<'a> {
    pub broadcast_id: i64,
    pub index: i64,
    pub due_at: i64,
    /// `FanningOut`, or `Missed` when it came too late.
    pub status: OccurrenceStatus,
    pub error: Option<&'a str>,
    pub finished_at: Option<i64>,
    pub now: i64,
}

/// Where a broadcast goes after an occurrence.
#[derive(Clone, Copy, Debug)]
pub struct Advance {
    /// The next occurrence's instant and number, or `None` when the schedule is over.
    pub next: Option<(i64, i64)>,
    /// Whether the occurrence just recorded was missed (it does not count as the last run).
    pub missed: bool,
    pub due_at: i64,
    pub now: i64,
}

impl Db {
    /// Active broadcasts whose next occurrence is due at `now`, oldest first: (id, project).
    pub async fn due_broadcasts(&self, now: i64, limit: i64) -> StoreResult<Vec<(i64, i64)>> {
        let rows = sqlx::query(
            "SELECT id, project_id FROM broadcasts WHERE state = 'active' AND next_run_at <= $1
             ORDER BY next_run_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("project_id")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Locks the broadcast if its next occurrence is still due at `now`: a second process
    /// waits on the lock, then finds it moved on (`None`).
    pub async fn lock_due_broadcast(
        &self,
        tx: &mut Tx,
        id: i64,
        now: i64,
    ) -> StoreResult<Option<DueBroadcast>> {
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
            return Ok(None);
        };
        let schedule = serde_json::from_str(&row.try_get::<String, _>("schedule")?)
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.into())))?;
        Ok(Some(DueBroadcast {
            id,
            due_at: row.try_get("next_run_at")?,
            index: row.try_get::<Option<i64>, _>("next_index")?.unwrap_or(1),
            schedule,
        }))
    }

    /// Records an occurrence unless it already is; its row id when this call wrote it.
    pub async fn insert_occurrence(tx: &mut Tx, o: &NewOccurrence<'_>) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "INSERT INTO broadcast_occurrences (broadcast_id, occurrence_index, due_at, status, error,
                finished_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(o.broadcast_id)
        .bind(o.index)
        .bind(o.due_at)
        .bind(o.status.as_str())
        .bind(o.error)
        .bind(o.finished_at)
        .bind(o.now)
        .fetch_optional(&mut **tx)
        .await?)
    }

    /// Moves the broadcast on to its next occurrence, or finishes it.
    pub async fn advance_broadcast(tx: &mut Tx, id: i64, a: Advance) -> StoreResult<()> {
        let (state, next_at, next_index) = match a.next {
            Some((at, index)) => (BroadcastState::Active, Some(at), Some(index)),
            None => (BroadcastState::Finished, None, None),
        };
        sqlx::query(
            "UPDATE broadcasts SET state = $1, next_run_at = $2, next_index = $3,
                last_run_at = CASE WHEN $4 = 1 THEN last_run_at ELSE $5 END, updated_at = $6
             WHERE id = $7",
        )
        .bind(state.as_str())
        .bind(next_at)
        .bind(next_index)
        .bind(i64::from(a.missed))
        .bind(a.due_at)
        .bind(a.now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
