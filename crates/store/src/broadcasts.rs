//! Broadcasts: creating them, their state (active, paused, cancelled, finished), the status and
//! per-status counts users see, and cancelling, pausing and resuming. When they fire is in
//! `broadcast_runs.rs` (the scheduler is the engine's); how an occurrence becomes messages is in `fanout.rs`.

use std::collections::BTreeMap;

use casecast_core::broadcast::{content_json, BroadcastContent, Draft, Recipients};
use casecast_core::case::FieldError;
use casecast_core::recurrence::Schedule;
use casecast_core::states::{BroadcastState, BroadcastStatus, OccurrenceStatus};
use jiff::Timestamp;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::{StoreError, StoreResult};
use crate::projects::Project;
use crate::Db;

/// A broadcast as stored, with what users see of its progress.
#[derive(Clone, Debug, Serialize)]
pub struct Broadcast {
    pub id: i64,
    #[serde(skip)]
    pub project_id: i64,
    pub name: String,
    pub recipients: Recipients,
    #[serde(skip)]
    pub content: BroadcastContent,
    #[serde(skip)]
    pub schedule: Schedule,
    pub gateway_id: Option<i64>,
    /// `active`, `paused`, `cancelled` or `finished` (the stored state; see `status`).
    #[serde(skip)]
    pub state: BroadcastState,
    /// `scheduled`, `sending`, `completed`, `cancelled`, `paused` or `failed`.
    pub status: BroadcastStatus,
    /// Messages of all its occurrences by status.
    pub counts: BTreeMap<String, i64>,
    pub next_run_at: Option<i64>,
    #[serde(skip)]
    pub next_index: Option<i64>,
    pub last_run_at: Option<i64>,
    /// Occurrences so far (fired or missed).
    pub occurrences: i64,
    /// Why the last occurrence failed, if it did.
    pub error: Option<String>,
    pub created_at: i64,
}

/// One time a broadcast fired, or was due and missed.
#[derive(Clone, Debug, Serialize)]
pub struct Occurrence {
    pub id: i64,
    #[serde(skip)]
    pub broadcast_id: i64,
    /// 1-based, counted from the schedule's start.
    pub index: i64,
    pub due_at: i64,
    pub status: OccurrenceStatus,
    /// Messages queued by the fan-out, and their segments.
    pub queued: i64,
    pub segments: i64,
    pub excluded: Excluded,
    /// Recipients whose text lacked a placeholder's value (rendered empty).
    pub missing_values: i64,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Its messages by status, now.
    pub counts: BTreeMap<String, i64>,
}

/// Cases left out of a broadcast, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Excluded {
    pub no_phone: i64,
    pub opted_out: i64,
    pub closed: i64,
    pub deleted: i64,
    /// The number was already taken by another recipient of the same occurrence (or the same
    /// case came in through a second group).
    pub duplicate_phone: i64,
    /// No gateway takes the number (the project has no gateway).
    pub no_gateway: i64,
}

const BROADCAST_COLUMNS: &str =
    "b.id, b.project_id, b.name, b.recipients, b.content, b.schedule, b.gateway_id, \
    b.state, b.next_run_at, b.next_index, b.last_run_at, b.created_at";

pub(crate) fn broadcast_from_row(row: &AnyRow) -> StoreResult<Broadcast> {
    let json = |column: &str, what: &'static str| -> StoreResult<serde_json::Value> {
        serde_json::from_str(&row.try_get::<String, _>(column)?)
            .map_err(|e| StoreError::corrupt_json(what, &e))
    };
    let recipients = json("recipients", "broadcast recipients")?;
    let content = json("content", "broadcast content")?;
    let schedule = json("schedule", "broadcast schedule")?;
    // Stored bodies were checked when saved: parse them back through the same rules.
    let draft = Draft::parse(&serde_json::json!({
        "name": row.try_get::<String, _>("name")?,
        "recipients": recipients,
        "content": content,
        "schedule": schedule,
    }))
    .map_err(|e| StoreError::corrupt("broadcast", e))?;
    Ok(Broadcast {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: draft.name,
        recipients: draft.recipients,
        content: draft.content,
        schedule: draft.schedule,
        gateway_id: row.try_get("gateway_id")?,
        state: crate::db::stored(row, "state")?,
        status: BroadcastStatus::Scheduled,
        counts: BTreeMap::new(),
        next_run_at: row.try_get("next_run_at")?,
        next_index: row.try_get("next_index")?,
        last_run_at: row.try_get("last_run_at")?,
        occurrences: 0,
        error: None,
        created_at: row.try_get("created_at")?,
    })
}

const OCCURRENCE_COLUMNS: &str = "id, broadcast_id, occurrence_index, due_at, status, queued, segments, \
    no_phone, opted_out, closed, deleted, duplicate_phone, no_gateway, missing_values, error, started_at, finished_at";

fn occurrence_from_row(row: &AnyRow) -> Result<Occurrence, sqlx::Error> {
    Ok(Occurrence {
        id: row.try_get("id")?,
        broadcast_id: row.try_get("broadcast_id")?,
        index: row.try_get("occurrence_index")?,
        due_at: row.try_get("due_at")?,
        status: crate::db::stored(row, "status")?,
        queued: row.try_get("queued")?,
        segments: row.try_get("segments")?,
        excluded: Excluded {
            no_phone: row.try_get("no_phone")?,
            opted_out: row.try_get("opted_out")?,
            closed: row.try_get("closed")?,
            deleted: row.try_get("deleted")?,
            duplicate_phone: row.try_get("duplicate_phone")?,
            no_gateway: row.try_get("no_gateway")?,
        },
        missing_values: row.try_get("missing_values")?,
        error: row.try_get("error")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        counts: BTreeMap::new(),
    })
}

/// The first occurrence of a schedule for a broadcast created at `now`: (index, instant).
/// `Immediate` fires at once; a schedule with nothing after `now` is refused.
pub fn first_occurrence(
    schedule: &Schedule,
    project: &Project,
    now: i64,
) -> Result<(i64, i64), FieldError> {
    if *schedule == Schedule::Immediate {
        return Ok((1, now));
    }
    let after = Timestamp::from_millisecond(now - 1).unwrap_or(Timestamp::UNIX_EPOCH);
    match schedule.next_after(after, &project.zone()) {
        Some(o) => Ok((i64::from(o.index), o.at.as_millisecond())),
        None => Err(FieldError::new(
            match schedule {
                Schedule::Once { .. } => "schedule.at",
                _ => "schedule",
            },
            format!(
                "has no occurrence after now ({} in {}): choose a time in the future",
                casecast_core::time::local_minute(now, &project.zone()),
                project.time_zone
            ),
        )),
    }
}

impl Db {
    /// Checks that a draft's groups, cases and gateway belong to the project.
    pub async fn check_draft_refs(&self, project: &Project, draft: &Draft) -> StoreResult<()> {
        for (i, id) in draft.recipients.case_groups.iter().enumerate() {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT id FROM case_groups WHERE id = $1 AND project_id = $2")
                    .bind(id)
                    .bind(project.id)
                    .fetch_optional(self.pool())
                    .await?;
            if found.is_none() {
                return Err(FieldError::new(
                    format!("recipients.case_groups[{i}]"),
                    format!("there is no case group {id} in this project"),
                )
                .into());
            }
        }
        let found = self.case_pks(project.id, &draft.recipients.cases).await?;
        if found.len() < draft.recipients.cases.len() {
            let missing: Vec<&str> = (draft.recipients.cases.iter())
                .filter(|c| !found.iter().any(|(id, _)| id == *c))
                .map(String::as_str)
                .take(5)
                .collect();
            return Err(FieldError::new(
                "recipients.cases",
                format!("no such case in this project: {}", missing.join(", ")),
            )
            .into());
        }
        if let Some(id) = draft.gateway_id {
            self.gateway(project.id, id).await.map_err(|_| {
                FieldError::new("gateway_id", "there is no such gateway in this project")
            })?;
        }
        Ok(())
    }

    /// The row ids of the project's cases with these case IDs (deleted ones included, so that
    /// the fan-out can count them), as (case ID, row id).
    pub(crate) async fn case_pks(
        &self,
        project_id: i64,
        case_ids: &[String],
    ) -> StoreResult<Vec<(String, i64)>> {
        let mut conn = self.pool().acquire().await?;
        let wanted = case_ids.iter().cloned().collect();
        let found =
            crate::membership::lookup(&mut conn, self.dialect(), project_id, "case_id", wanted)
                .await?;
        // A case ID names one case in its project.
        Ok(found
            .into_iter()
            .filter_map(|(case_id, cases)| Some((case_id, cases.first()?.pk)))
            .collect())
    }

    /// Inserts a draft whose references were checked ([`Db::check_draft_refs`]) as an active
    /// broadcast inside the caller's transaction; refused when its schedule has no occurrence
    /// to come. Returns its id and its first occurrence's instant: the engine fires that
    /// occurrence in the same transaction when it is due now (`casecast_engine::broadcasts`).
    pub async fn insert_broadcast(
        &self,
        tx: &mut crate::Tx,
        project: &Project,
        draft: &Draft,
        user_id: Option<i64>,
        now: i64,
    ) -> StoreResult<(i64, i64)> {
        let (index, at) = first_occurrence(&draft.schedule, project, now)?;
        let recipients = serde_json::to_string(&draft.recipients).expect("recipients serialise");
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO broadcasts (project_id, name, recipients, content, schedule, gateway_id, state,
                next_run_at, next_index, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $9, $10, $10) RETURNING id",
        )
        .bind(project.id)
        .bind(&draft.name)
        .bind(recipients)
        .bind(content_json(&draft.content).to_string())
        .bind(draft.schedule.to_json().to_string())
        .bind(draft.gateway_id)
        .bind(at)
        .bind(index)
        .bind(user_id)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        Ok((id, at))
    }

    /// One broadcast of the project, with its status and counts.
    pub async fn broadcast(&self, project_id: i64, id: i64) -> StoreResult<Broadcast> {
        let mut b = self.broadcast_row(project_id, id).await?;
        self.fill_progress(&mut b).await?;
        Ok(b)
    }

    /// One broadcast of the project as stored, without its counts and derived status (`status`
    /// reads `scheduled`): cheap, for checks that it exists and for its settings.
    pub async fn broadcast_row(&self, project_id: i64, id: i64) -> StoreResult<Broadcast> {
        let row = sqlx::query(&format!(
            "SELECT {BROADCAST_COLUMNS} FROM broadcasts b WHERE b.id = $1 AND b.project_id = $2"
        ))
        .bind(id)
        .bind(project_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("broadcast"))?;
        broadcast_from_row(&row)
    }

    /// The project's broadcasts, newest first.
    pub async fn list_broadcasts(
        &self,
        project_id: i64,
        limit: i64,
        cursor: Option<i64>,
    ) -> StoreResult<(Vec<Broadcast>, Option<i64>)> {
        let rows = sqlx::query(&format!(
            "SELECT {BROADCAST_COLUMNS} FROM broadcasts b WHERE b.project_id = $1 AND b.id < $2
             ORDER BY b.id DESC LIMIT $3"
        ))
        .bind(project_id)
        .bind(cursor.unwrap_or(i64::MAX))
        .bind(limit + 1)
        .fetch_all(self.pool())
        .await?;
        let mut items = rows
            .iter()
            .map(broadcast_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|b| b.id)
        } else {
            None
        };
        for b in &mut items {
            self.fill_progress(b).await?;
        }
        Ok((items, next))
    }

    /// The occurrences of a broadcast, newest first (at most `limit`), each with its counts.
    pub async fn broadcast_occurrences(
        &self,
        project_id: i64,
        id: i64,
        limit: i64,
    ) -> StoreResult<Vec<Occurrence>> {
        Db::broadcast_state(self.pool(), "", project_id, id).await?;
        let rows = sqlx::query(&format!(
            "SELECT {OCCURRENCE_COLUMNS} FROM broadcast_occurrences WHERE broadcast_id = $1
             ORDER BY occurrence_index DESC LIMIT $2"
        ))
        .bind(id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut items = rows
            .iter()
            .map(occurrence_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        for o in &mut items {
            o.counts = self.occurrence_counts(o.id).await?;
        }
        Ok(items)
    }

    /// One occurrence, by id, if it belongs to the project.
    pub async fn occurrence(&self, project_id: i64, occurrence_id: i64) -> StoreResult<Occurrence> {
        let row = sqlx::query(&format!(
            "SELECT {OCCURRENCE_COLUMNS} FROM broadcast_occurrences o WHERE o.id = $1
             AND EXISTS (SELECT 1 FROM broadcasts b WHERE b.id = o.broadcast_id AND b.project_id = $2)"
        ))
        .bind(occurrence_id)
        .bind(project_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("occurrence"))?;
        let mut o = occurrence_from_row(&row)?;
        o.counts = self.occurrence_counts(o.id).await?;
        Ok(o)
    }

    async fn occurrence_counts(&self, occurrence_id: i64) -> StoreResult<BTreeMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM messages WHERE occurrence_id = $1 GROUP BY status",
        )
        .bind(occurrence_id)
        .fetch_all(self.pool())
        .await?;
        let mut counts = zero_counts();
        for r in rows {
            counts.insert(r.try_get("status")?, r.try_get("n")?);
        }
        Ok(counts)
    }

    /// Fills in a broadcast's counts, occurrences, error and derived status.
    async fn fill_progress(&self, b: &mut Broadcast) -> StoreResult<()> {
        let rows = sqlx::query(
            "SELECT m.status, COUNT(*) AS n FROM broadcast_occurrences o
             JOIN messages m ON m.occurrence_id = o.id WHERE o.broadcast_id = $1 GROUP BY m.status",
        )
        .bind(b.id)
        .fetch_all(self.pool())
        .await?;
        b.counts = zero_counts();
        for r in rows {
            b.counts.insert(r.try_get("status")?, r.try_get("n")?);
        }
        let last = sqlx::query(
            "SELECT status, error, (SELECT COUNT(*) FROM broadcast_occurrences x WHERE x.broadcast_id = $1) AS n
             FROM broadcast_occurrences WHERE broadcast_id = $1 ORDER BY occurrence_index DESC LIMIT 1",
        )
        .bind(b.id)
        .fetch_optional(self.pool())
        .await?;
        let (last_status, error, occurrences) = match &last {
            Some(r) => (
                Some(crate::db::stored::<OccurrenceStatus>(r, "status")?),
                r.try_get::<Option<String>, _>("error")?,
                r.try_get::<i64, _>("n")?,
            ),
            None => (None, None, 0),
        };
        b.occurrences = occurrences;
        b.error = error;
        let messages_pending = b.counts["queued"] > 0 || b.counts["sending"] > 0;
        b.status = BroadcastStatus::derive(b.state, last_status, messages_pending);
        Ok(())
    }

    /// The stored state of a broadcast of the project; `lock` ends the SELECT (`""`, or
    /// `dialect::for_update` inside a write transaction).
    async fn broadcast_state<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
        executor: E,
        lock: &str,
        project_id: i64,
        id: i64,
    ) -> StoreResult<BroadcastState> {
        let text: String = sqlx::query_scalar(&format!(
            "SELECT state FROM broadcasts WHERE id = $1 AND project_id = $2{lock}"
        ))
        .bind(id)
        .bind(project_id)
        .fetch_optional(executor)
        .await?
        .ok_or(StoreError::NotFound("broadcast"))?;
        text.parse()
            .map_err(|e| StoreError::corrupt("broadcast state", e))
    }

    /// Cancels a broadcast: no further occurrence, the running fan-out stops, and every message
    /// not yet handed to a gateway (`queued`) is cancelled. Returns the messages cancelled.
    pub async fn cancel_broadcast(&self, project_id: i64, id: i64) -> StoreResult<u64> {
        let now = casecast_core::time::now_ms();
        let mut tx = self.begin_write().await?;
        let lock = crate::dialect::for_update(self.dialect());
        let state = Db::broadcast_state(&mut *tx, lock, project_id, id).await?;
        if state == BroadcastState::Cancelled {
            return Ok(0);
        }
        // The occurrence row first: a fan-out batch holds it while it writes, so this waits for
        // that batch, and the next batch sees the occurrence cancelled and stops.
        let stopped = sqlx::query(
            "UPDATE broadcast_occurrences SET status = 'cancelled', finished_at = $1
             WHERE broadcast_id = $2 AND status = 'fanning_out'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let cancelled = sqlx::query(
            "UPDATE messages SET status = 'cancelled', error = 'the broadcast was cancelled', updated_at = $1
             WHERE status = 'queued' AND occurrence_id IN (SELECT id FROM broadcast_occurrences WHERE broadcast_id = $2)",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // A broadcast that had finished and had nothing left to stop stays completed.
        if state != BroadcastState::Finished || stopped > 0 || cancelled > 0 {
            sqlx::query(
                "UPDATE broadcasts SET state = 'cancelled', next_run_at = NULL, updated_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        tracing::info!(broadcast.id = id, cancelled, "broadcast cancelled");
        Ok(cancelled)
    }

    /// Pauses a broadcast with occurrences to come: none fires until it is resumed. What an
    /// occurrence already queued still goes out.
    pub async fn pause_broadcast(&self, project_id: i64, id: i64) -> StoreResult<()> {
        let state = Db::broadcast_state(self.pool(), "", project_id, id).await?;
        if state != BroadcastState::Active {
            return Err(StoreError::Conflict {
                code: "not_active",
                message: format!(
                    "only a broadcast with occurrences to come can be paused (it is {state})"
                ),
            });
        }
        sqlx::query("UPDATE broadcasts SET state = 'paused', updated_at = $1 WHERE id = $2 AND state = 'active'")
            .bind(casecast_core::time::now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Resumes a paused broadcast from its next occurrence after now; occurrences that fell
    /// while it was paused are skipped, not sent late.
    pub async fn resume_broadcast(&self, project: &Project, id: i64) -> StoreResult<()> {
        // The stored row is enough here: counting its messages is for the refusal only.
        let b = self.broadcast_row(project.id, id).await?;
        if b.state != BroadcastState::Paused {
            let status = self.broadcast(project.id, id).await?.status;
            return Err(StoreError::Conflict {
                code: "not_paused",
                message: format!("only a paused broadcast can be resumed (it is {status})"),
            });
        }
        let now = casecast_core::time::now_ms();
        let zone = project.zone();
        let next = match (b.next_run_at, b.next_index) {
            (Some(at), Some(index)) if at > now => Some((index, at)),
            _ => Timestamp::from_millisecond(now)
                .ok()
                .and_then(|after| b.schedule.next_after(after, &zone))
                .map(|o| (i64::from(o.index), o.at.as_millisecond())),
        };
        let (state, next_at, next_index) = match next {
            Some((index, at)) => (BroadcastState::Active, Some(at), Some(index)),
            None => (BroadcastState::Finished, None, None),
        };
        sqlx::query(
            "UPDATE broadcasts SET state = $1, next_run_at = $2, next_index = $3, updated_at = $4
             WHERE id = $5 AND state = 'paused'",
        )
        .bind(state.as_str())
        .bind(next_at)
        .bind(next_index)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        self.wake_workers();
        Ok(())
    }
}

/// Every outbound status at zero, so that lists show them all.
fn zero_counts() -> BTreeMap<String, i64> {
    (casecast_core::states::MessageStatus::OUTBOUND.into_iter())
        .map(|s| (s.to_string(), 0))
        .collect()
}
