//! Fan-out's statements: one broadcast occurrence becomes outbox rows, batch by batch (the
//! workflow that drives them is `casecast_engine::fanout`).
//!
//! Each batch is one transaction that inserts its messages (`ON CONFLICT DO NOTHING` on
//! occurrence and phone: one message per number per occurrence) and advances the occurrence's
//! cursor, so a fan-out that dies half-way resumes where it stopped and never writes a message
//! twice. The next batch is read and rendered while the current one is written.

use std::collections::{HashMap, HashSet};

use casecast_core::states::OccurrenceStatus;
use sqlx::{Any, Row};

use crate::broadcasts::{broadcast_from_row, Excluded};
use crate::error::{StoreError, StoreResult};
use crate::recipients::{Batch, Outgoing};
use crate::Db;

/// Rows per multi-row insert on SQLite (6 parameters each).
const INSERT_ROWS: usize = 1000;

/// An occurrence being fanned out, as [`Db::fanout_work`] reads it.
#[derive(Clone, Debug)]
pub struct FanoutWork {
    /// When the occurrence was due (epoch ms).
    pub due_at: i64,
    /// Where a previous attempt stopped: (source, last case row); (0, 0) the first time.
    pub cursor: (i64, i64),
    pub broadcast: crate::broadcasts::Broadcast,
}

/// What writing one batch did.
pub enum Written {
    /// Written; the cursor moved on.
    More,
    /// The occurrence is done (or was cancelled, or ended elsewhere).
    Finished,
    /// The cursor was not where the batch was read from (another worker moved it).
    Moved(i64, i64),
}

impl Db {
    /// The occurrence to fan out, with its broadcast and where a previous attempt stopped;
    /// `None` when it is no longer fanning out (done, cancelled, failed).
    pub async fn fanout_work(&self, occurrence_id: i64) -> StoreResult<Option<FanoutWork>> {
        let row = sqlx::query(
            "SELECT o.status AS occurrence_status, o.due_at, o.source_pos, o.cursor_pk, b.id, b.project_id, b.name, b.recipients,
                b.content, b.schedule, b.gateway_id, b.state, b.next_run_at, b.next_index,
                b.last_run_at, b.created_at
             FROM broadcast_occurrences o JOIN broadcasts b ON b.id = o.broadcast_id WHERE o.id = $1",
        )
        .bind(occurrence_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("occurrence"))?;
        if crate::db::stored::<OccurrenceStatus>(&row, "occurrence_status")?
            != OccurrenceStatus::FanningOut
        {
            return Ok(None);
        }
        Ok(Some(FanoutWork {
            due_at: row.try_get("due_at")?,
            cursor: (row.try_get("source_pos")?, row.try_get("cursor_pk")?),
            broadcast: broadcast_from_row(&row)?,
        }))
    }

    /// Ends an occurrence that will queue nothing (more).
    pub async fn end_occurrence(
        &self,
        occurrence_id: i64,
        status: OccurrenceStatus,
        error: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE broadcast_occurrences SET status = $1, error = $2, finished_at = $3
             WHERE id = $4 AND status = 'fanning_out'",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(casecast_core::time::now_ms())
        .bind(occurrence_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Writes one batch in one transaction, if the occurrence's cursor is where the batch was
    /// read from.
    pub async fn write_batch(&self, target: &Target, batch: Batch) -> StoreResult<Written> {
        let mut tx = self.begin_write().await?;
        // Locks the occurrence: a cancel waits for this batch, and a second worker for the
        // same occurrence reads the cursor this batch leaves.
        let row = sqlx::query(&format!(
            "SELECT status, source_pos, cursor_pk FROM broadcast_occurrences WHERE id = $1{}",
            crate::dialect::for_update(self.dialect())
        ))
        .bind(target.occurrence_id)
        .fetch_one(&mut *tx)
        .await?;
        if crate::db::stored::<OccurrenceStatus>(&row, "status")? != OccurrenceStatus::FanningOut {
            return Ok(Written::Finished);
        }
        let cursor: (i64, i64) = (row.try_get("source_pos")?, row.try_get("cursor_pk")?);
        if cursor != batch.from {
            return Ok(Written::Moved(cursor.0, cursor.1));
        }
        let now = casecast_core::time::now_ms();
        let Some((next_pos, next_after)) = batch.next else {
            sqlx::query(
                "UPDATE broadcast_occurrences SET status = 'done', finished_at = $1,
                    started_at = COALESCE(started_at, $1) WHERE id = $2",
            )
            .bind(now)
            .bind(target.occurrence_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Written::Finished);
        };
        let mut excluded = Excluded::default();
        let mut messages = Vec::with_capacity(batch.items.len());
        let mut phones: HashSet<u64> = HashSet::new();
        for item in &batch.items {
            match item {
                Err(reason) => excluded.add(*reason),
                Ok(m) if !phones.insert(m.phone_key) => excluded.duplicate_phone += 1,
                Ok(m) => messages.push(m),
            }
        }
        let mut inserted = 0;
        // PostgreSQL takes the batch as one JSON parameter; SQLite binds six values a row.
        let rows_per_insert = match self.dialect() {
            crate::Dialect::Postgres => messages.len().max(1),
            crate::Dialect::Sqlite => INSERT_ROWS,
        };
        // A survey's messages come back with their ids: (message id, case row) of each written.
        let mut returned: Vec<(i64, i64)> = Vec::new();
        for chunk in messages.chunks(rows_per_insert) {
            let returning = target.survey.is_some().then_some(&mut returned);
            inserted +=
                insert_messages(&mut tx, self.dialect(), target, now, chunk, returning).await?;
        }
        if let Some(survey) = &target.survey {
            start_sessions(&mut tx, target, survey, &returned, now).await?;
        }
        // Numbers an earlier batch (or source) of this occurrence already took were skipped:
        // find which messages were written to count only theirs. (A message of the same case
        // already there counts as written: the cursor never moves back, so this batch cannot
        // have written it before.)
        let attempted = messages.len() as i64;
        let written: Vec<&Outgoing> = if inserted == messages.len() as u64 {
            messages
        } else {
            let ours = written_by(&mut tx, self.dialect(), target.occurrence_id, &messages).await?;
            messages
                .into_iter()
                .filter(|m| ours.contains(&m.case_pk))
                .collect()
        };
        excluded.duplicate_phone += attempted - written.len() as i64;
        let segments: i64 = written.iter().map(|m| m.segments).sum();
        let missing = written.iter().filter(|m| !m.missing.is_empty()).count() as i64;
        sqlx::query(
            "UPDATE broadcast_occurrences SET source_pos = $1, cursor_pk = $2, queued = queued + $3,
                segments = segments + $4, no_phone = no_phone + $5, opted_out = opted_out + $6,
                closed = closed + $7, deleted = deleted + $8, duplicate_phone = duplicate_phone + $9,
                missing_values = missing_values + $10, started_at = COALESCE(started_at, $11),
                no_gateway = no_gateway + $12
             WHERE id = $13",
        )
        .bind(next_pos)
        .bind(next_after)
        .bind(written.len() as i64)
        .bind(segments)
        .bind(excluded.no_phone)
        .bind(excluded.opted_out)
        .bind(excluded.closed)
        .bind(excluded.deleted)
        .bind(excluded.duplicate_phone)
        .bind(missing)
        .bind(now)
        .bind(excluded.no_gateway)
        .bind(target.occurrence_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Written::More)
    }
}

/// The occurrence a fan-out writes for.
pub struct Target {
    pub project_id: i64,
    pub broadcast_id: i64,
    pub occurrence_id: i64,
    /// When its messages expire (epoch ms).
    pub expires: i64,
    /// For a survey broadcast: the sessions its messages start.
    pub survey: Option<SurveyStart>,
}

/// What a survey broadcast's fan-out writes besides the messages: each recipient whose message
/// is written gets a session, asked its first question (the message); the case's active
/// session, if any, ends first.
#[derive(Clone, Debug)]
pub struct SurveyStart {
    pub survey_id: i64,
    /// The timers `Event::Start` sets (the same for every recipient), as durations: the
    /// dispatcher starts them when the first message is done with.
    pub reminder_in_ms: Option<i64>,
    pub expiry_in_ms: i64,
    /// Why a case's active session ends (`Event::Cancel`'s reason).
    pub cancel_reason: String,
}

/// Starts the sessions of a batch's written messages, `(message id, case row)`, in the batch's
/// transaction: ends the cases' active sessions as `cancelled` (the state
/// `session::step(.., Event::Cancel(reason))` leaves: no question, one step on, the reason, no
/// timers, completed now), inserts a session per message at its first question (step 1, the
/// case's language code, the message's number and gateway) and links each message to its
/// session at step 1. Three statements per batch, whatever its size.
///
/// A reply handled at the same time (PostgreSQL) locks the session row it advances: the cancel
/// waits for it, or it finds the session cancelled. A survey started for one of the cases at
/// the same moment makes the insert fail on the one-active-session index: the batch rolls back
/// and the job retries it.
async fn start_sessions(
    tx: &mut sqlx::Transaction<'static, Any>,
    target: &Target,
    survey: &SurveyStart,
    written: &[(i64, i64)],
    now: i64,
) -> StoreResult<()> {
    if written.is_empty() {
        return Ok(());
    }
    let project_id = target.project_id;
    let occurrence_id = target.occurrence_id;
    // Row ids read from the database, written into the SQL as literals.
    let list = |ids: &mut dyn Iterator<Item = i64>| {
        ids.map(|id| id.to_string()).collect::<Vec<_>>().join(",")
    };
    for chunk in written.chunks(5000) {
        let cases = list(&mut chunk.iter().map(|(_, pk)| *pk));
        let messages = list(&mut chunk.iter().map(|(id, _)| *id));
        sqlx::query(&format!(
            "UPDATE survey_sessions SET status = 'cancelled', current_question = NULL,
                step = step + 1, reason = $1, reminder_in_ms = NULL, expiry_in_ms = NULL,
                reminder_due = NULL, expiry_due = NULL, completed_at = $2, updated_at = $2
             WHERE project_id = {project_id} AND status = 'active' AND case_pk IN ({cases})"
        ))
        .bind(survey.cancel_reason.as_str())
        .bind(now)
        .persistent(false)
        .execute(&mut **tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO survey_sessions (project_id, survey_id, case_pk, phone, language_code,
                gateway_id, occurrence_id, status, current_question, attempts, reminders_sent,
                step, answers, reminder_in_ms, expiry_in_ms, asked_at, started_at, updated_at)
             SELECT m.project_id, $1, m.case_pk, m.phone, c.language_code, m.gateway_id,
                m.occurrence_id, 'active', 0, 0, 0, 1, '{{}}', $2, $3, $4, $4, $4
             FROM messages m JOIN cases c ON c.id = m.case_pk
             WHERE m.id IN ({messages}) AND m.occurrence_id = {occurrence_id}"
        ))
        .bind(survey.survey_id)
        .bind(survey.reminder_in_ms)
        .bind(survey.expiry_in_ms)
        .bind(now)
        .persistent(false)
        .execute(&mut **tx)
        .await?;
        // Each case has one active session: the one just inserted.
        sqlx::query(&format!(
            "UPDATE messages SET survey_step = 1, survey_session_id = (
                SELECT s.id FROM survey_sessions s WHERE s.project_id = {project_id}
                   AND s.case_pk = messages.case_pk AND s.status = 'active')
             WHERE id IN ({messages})"
        ))
        .persistent(false)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Inserts one chunk of messages, skipping numbers the occurrence already has; returns how many
/// were written.
async fn insert_messages(
    tx: &mut sqlx::Transaction<'static, Any>,
    engine: crate::Dialect,
    target: &Target,
    now: i64,
    chunk: &[&Outgoing],
    returning: Option<&mut Vec<(i64, i64)>>,
) -> StoreResult<u64> {
    let Target {
        project_id,
        broadcast_id,
        occurrence_id,
        expires,
        ..
    } = target;
    // With `returning`, the written messages' (id, case row) are added to it.
    let tail = if returning.is_some() {
        " RETURNING id, case_pk"
    } else {
        ""
    };
    if engine == crate::Dialect::Postgres {
        // PostgreSQL parses and plans a 6,000-parameter statement slowly; the chunk goes as one
        // JSON parameter instead, to a statement it prepares once.
        let rows: Vec<serde_json::Value> = chunk
            .iter()
            .map(|m| {
                serde_json::json!([
                    m.case_pk,
                    m.phone,
                    m.text,
                    m.encoding.as_str(),
                    m.segments,
                    m.gateway_id
                ])
            })
            .collect();
        let sql = format!(
            "INSERT INTO messages (project_id, direction, kind, case_pk, phone, text, encoding, segments,
                status, gateway_id, broadcast_id, occurrence_id, attempts, next_attempt_at, created_at,
                expires_at, updated_at)
             SELECT $2, 'outbound', 'normal', (r->>0)::BIGINT, r->>1, r->>2, r->>3, (r->>4)::BIGINT,
                'queued', (r->>5)::BIGINT, $3, $4, 0, $5, $5, $6, $5
             FROM json_array_elements($1::json) AS r
             ON CONFLICT DO NOTHING{tail}"
        );
        let q = sqlx::query(&sql)
            .bind(serde_json::Value::Array(rows).to_string())
            .bind(project_id)
            .bind(broadcast_id)
            .bind(occurrence_id)
            .bind(now)
            .bind(expires);
        return match returning {
            None => Ok(q.execute(&mut **tx).await?.rows_affected()),
            Some(out) => fetch_returned(q.fetch_all(&mut **tx).await?, out),
        };
    }
    let mut p = crate::dialect::Placeholders::new(engine);
    // Integers of our own are written as literals: only the six per-message values are bound.
    let rows: Vec<String> = chunk
        .iter()
        .map(|_| {
            format!(
                "({project_id}, 'outbound', 'normal', {}, 'queued', {}, {broadcast_id}, {occurrence_id}, 0, {now}, {now}, {expires}, {now})",
                p.list(5),
                p.next()
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO messages (project_id, direction, kind, case_pk, phone, text, encoding, segments,
            status, gateway_id, broadcast_id, occurrence_id, attempts, next_attempt_at, created_at,
            expires_at, updated_at)
         VALUES {} ON CONFLICT DO NOTHING{tail}",
        rows.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for m in chunk {
        q = q
            .bind(m.case_pk)
            .bind(m.phone.as_str())
            .bind(m.text.as_str())
            .bind(m.encoding.as_str())
            .bind(m.segments)
            .bind(m.gateway_id);
    }
    let q = q.persistent(false);
    match returning {
        None => Ok(q.execute(&mut **tx).await?.rows_affected()),
        Some(out) => fetch_returned(q.fetch_all(&mut **tx).await?, out),
    }
}

/// Adds the (id, case row) of `RETURNING id, case_pk` rows to `out`; returns how many.
fn fetch_returned(rows: Vec<sqlx::any::AnyRow>, out: &mut Vec<(i64, i64)>) -> StoreResult<u64> {
    for row in &rows {
        out.push((row.try_get("id")?, row.try_get("case_pk")?));
    }
    Ok(rows.len() as u64)
}

/// Of these messages, the case rows whose message the occurrence holds (the others' numbers
/// were taken by earlier recipients).
async fn written_by(
    tx: &mut sqlx::Transaction<'static, Any>,
    engine: crate::Dialect,
    occurrence_id: i64,
    messages: &[&Outgoing],
) -> StoreResult<HashSet<i64>> {
    let mut ours = HashSet::new();
    let wanted: HashMap<&str, i64> = messages
        .iter()
        .map(|m| (m.phone.as_str(), m.case_pk))
        .collect();
    for chunk in messages.chunks(500) {
        let mut p = crate::dialect::Placeholders::new(engine);
        let sql = format!(
            "SELECT phone, case_pk FROM messages WHERE occurrence_id = {} AND phone IN ({})",
            p.next(),
            p.list(chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(occurrence_id);
        for m in chunk {
            q = q.bind(m.phone.as_str());
        }
        for row in q.persistent(false).fetch_all(&mut **tx).await? {
            let phone: String = row.try_get("phone")?;
            let case_pk: Option<i64> = row.try_get("case_pk")?;
            if case_pk.is_some() && wanted.get(phone.as_str()).copied() == case_pk {
                ours.insert(case_pk.unwrap_or_default());
            }
        }
    }
    Ok(ours)
}
