//! Survey sessions' rows: the state of `casecast_core::survey::session::SessionState` in
//! columns, the respondent, and the timers; inbound messages waiting to be handled. Statements
//! only, run inside the caller's transaction where they change anything: the workflow (which
//! session a reply goes to, what a timer does) is `casecast_engine::surveys`.
//!
//! Timers: while a session's latest message waits in the outbox, its timers are durations
//! (`reminder_in_ms`, `expiry_in_ms`) and the due instants are NULL; when the dispatcher is done
//! with that message (sent, failed or expired: [`Db::start_session_timers`]) the due instants
//! are set from then. Every transition ([`Db::write_session`]) clears the due instants, so a
//! due time always belongs to the session's current step.

use casecast_core::survey::session::{SessionState, SessionStatus};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::error::{StoreError, StoreResult};
use crate::Db;

/// A session as stored, with its case's IDs and name.
#[derive(Clone, Debug, Serialize)]
pub struct SurveySession {
    pub id: i64,
    #[serde(skip)]
    pub project_id: i64,
    pub survey_id: i64,
    #[serde(skip)]
    pub case_pk: i64,
    pub case_id: String,
    #[serde(skip)]
    pub case_name: String,
    #[serde(skip)]
    pub external_id: Option<String>,
    /// Whether its case is closed or deleted now (it is sent nothing more).
    #[serde(skip)]
    pub case_closed: bool,
    #[serde(skip)]
    pub case_deleted: bool,
    pub phone_number: String,
    #[serde(skip)]
    pub language_code: Option<String>,
    #[serde(skip)]
    pub gateway_id: Option<i64>,
    #[serde(skip)]
    pub occurrence_id: Option<i64>,
    pub status: SessionStatus,
    /// 0-based; `None` once finished.
    pub current_question: Option<usize>,
    pub answers: Map<String, Value>,
    /// Why it was cancelled or expired.
    pub reason: Option<String>,
    /// The session's whole state, as the step function reads it.
    #[serde(skip)]
    pub state: SessionState,
    #[serde(skip)]
    pub reminder_due: Option<i64>,
    #[serde(skip)]
    pub expiry_due: Option<i64>,
    #[serde(skip)]
    pub asked_at: i64,
    pub started_at: i64,
    pub completed_at: Option<i64>,
}

pub(crate) const SESSION_COLUMNS: &str = "s.id, s.project_id, s.survey_id, s.case_pk, c.case_id, \
    c.name AS case_name, c.external_id, c.closed AS case_closed, c.deleted AS case_deleted, s.phone, s.language_code, s.gateway_id, s.occurrence_id, \
    s.status, s.current_question, s.attempts, s.reminders_sent, s.step, s.answers, s.reason, \
    s.reminder_due, s.expiry_due, s.asked_at, s.started_at, s.completed_at";

/// `FROM` for [`SESSION_COLUMNS`].
pub(crate) const SESSION_FROM: &str = "survey_sessions s JOIN cases c ON c.id = s.case_pk";

pub(crate) fn session_from_row(row: &AnyRow) -> StoreResult<SurveySession> {
    let status_text: String = row.try_get("status")?;
    let status = SessionStatus::parse(&status_text)
        .ok_or_else(|| StoreError::corrupt("survey session", "unknown status"))?;
    let answers: Map<String, Value> =
        serde_json::from_str(&row.try_get::<String, _>("answers")?)
            .map_err(|e| StoreError::corrupt_json("survey answers", &e))?;
    let current_question = row
        .try_get::<Option<i64>, _>("current_question")?
        .map(|q| q as usize);
    let count = |column: &str| -> StoreResult<u32> {
        Ok(u32::try_from(row.try_get::<i64, _>(column)?).unwrap_or(u32::MAX))
    };
    let reason: Option<String> = row.try_get("reason")?;
    let state = SessionState {
        status,
        current_question,
        attempts: count("attempts")?,
        reminders_sent: count("reminders_sent")?,
        answers: answers.clone(),
        step: u64::try_from(row.try_get::<i64, _>("step")?).unwrap_or_default(),
        reason: reason.clone(),
    };
    Ok(SurveySession {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        survey_id: row.try_get("survey_id")?,
        case_pk: row.try_get("case_pk")?,
        case_id: row.try_get("case_id")?,
        case_name: row.try_get("case_name")?,
        external_id: row.try_get("external_id")?,
        case_closed: row.try_get::<i64, _>("case_closed")? != 0,
        case_deleted: row.try_get::<i64, _>("case_deleted")? != 0,
        phone_number: row.try_get("phone")?,
        language_code: row.try_get("language_code")?,
        gateway_id: row.try_get("gateway_id")?,
        occurrence_id: row.try_get("occurrence_id")?,
        status,
        current_question,
        answers,
        reason,
        state,
        reminder_due: row.try_get("reminder_due")?,
        expiry_due: row.try_get("expiry_due")?,
        asked_at: row.try_get("asked_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

/// A session to insert (its state is written after, by [`Db::write_session`]).
#[derive(Clone, Debug)]
pub struct NewSession<'a> {
    pub project_id: i64,
    pub survey_id: i64,
    pub case_pk: i64,
    pub phone: &'a str,
    pub language_code: Option<&'a str>,
    pub gateway_id: i64,
    pub occurrence_id: Option<i64>,
    pub started_by: Option<i64>,
    pub now: i64,
}

/// What a transition writes besides the state.
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionWrite {
    /// The timers the transition set (durations from when its message is done with), or
    /// `None` to keep the session without timers (a finished one, or one that sent nothing).
    pub timers: Option<Timers>,
    /// When it queued a message (the session was asked); `None`: it sent nothing.
    pub asked_at: Option<i64>,
    /// The gateway of the message it queued.
    pub gateway_id: Option<i64>,
    pub now: i64,
}

/// A session's timers as durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    pub reminder_in_ms: Option<i64>,
    pub expiry_in_ms: i64,
}

/// A session whose reminder or expiry is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueSession {
    pub id: i64,
    pub project_id: i64,
    pub phone: String,
}

/// An inbound message stored and not handled yet.
#[derive(Clone, Debug)]
pub struct Unhandled {
    pub id: i64,
    pub phone: String,
    pub case_pk: Option<i64>,
    pub text: String,
    pub gateway_id: Option<i64>,
}

pub(crate) fn unhandled_from_row(row: &AnyRow) -> StoreResult<Unhandled> {
    Ok(Unhandled {
        id: row.try_get("id")?,
        phone: row.try_get("phone")?,
        case_pk: row.try_get("case_pk")?,
        text: row.try_get("text")?,
        gateway_id: row.try_get("gateway_id")?,
    })
}

/// The key of a project's number's lock on PostgreSQL (hashed into an advisory lock): the one
/// key [`Db::lock_number`] and [`Db::lock_numbers`] take, and tests that hold it.
pub fn number_lock_key(project_id: i64, phone: &str) -> String {
    format!("casecast-number:{project_id}:{phone}")
}

fn status_text(status: SessionStatus) -> &'static str {
    status.as_str()
}

impl Db {
    /// Holds the number's lock until the transaction ends: replies, timers and starts of one
    /// number's sessions are handled one at a time across every process. SQLite's write
    /// transaction already excludes every other writer; PostgreSQL takes an advisory lock.
    pub async fn lock_number(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phone: &str,
    ) -> StoreResult<()> {
        if self.dialect() == crate::Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(number_lock_key(project_id, phone))
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// One session of the project, with its row locked until the transaction ends.
    pub async fn survey_session_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        id: i64,
    ) -> StoreResult<Option<SurveySession>> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM {SESSION_FROM} WHERE s.project_id = $1 AND s.id = $2{}",
            crate::dialect::for_update_of(self.dialect(), "s")
        ))
        .bind(project_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// One session of the project.
    pub async fn survey_session(&self, project_id: i64, id: i64) -> StoreResult<SurveySession> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM {SESSION_FROM} WHERE s.project_id = $1 AND s.id = $2"
        ))
        .bind(project_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("survey session"))?;
        session_from_row(&row)
    }

    /// The case's active session, if any.
    pub async fn active_session_of_case(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        case_pk: i64,
    ) -> StoreResult<Option<SurveySession>> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM {SESSION_FROM}
             WHERE s.project_id = $1 AND s.case_pk = $2 AND s.status = 'active'{}",
            crate::dialect::for_update_of(self.dialect(), "s")
        ))
        .bind(project_id)
        .bind(case_pk)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// The active sessions of a number, the one asked most recently first (the one its reply
    /// answers).
    pub async fn active_sessions_of_phone(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phone: &str,
    ) -> StoreResult<Vec<SurveySession>> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM {SESSION_FROM}
             WHERE s.project_id = $1 AND s.phone = $2 AND s.status = 'active'
             ORDER BY s.asked_at DESC, s.id DESC{}",
            crate::dialect::for_update_of(self.dialect(), "s")
        ))
        .bind(project_id)
        .bind(phone)
        .fetch_all(&mut **tx)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// Inserts a session (not started: step 0, active) and returns its id. The unique index
    /// allows one active session per case: end the case's old one first.
    pub async fn insert_session(
        tx: &mut Transaction<'static, Any>,
        new: &NewSession<'_>,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO survey_sessions (project_id, survey_id, case_pk, phone, language_code, gateway_id,
                occurrence_id, started_by, status, step, asked_at, started_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', 0, $9, $9, $9) RETURNING id",
        )
        .bind(new.project_id)
        .bind(new.survey_id)
        .bind(new.case_pk)
        .bind(new.phone)
        .bind(new.language_code)
        .bind(new.gateway_id)
        .bind(new.occurrence_id)
        .bind(new.started_by)
        .bind(new.now)
        .fetch_one(&mut **tx)
        .await?)
    }

    /// Writes a session's state after a transition, with its new timers (durations; the due
    /// instants are cleared until its message is done with). A finished session gets its
    /// `completed_at` and no timers.
    pub async fn write_session(
        tx: &mut Transaction<'static, Any>,
        id: i64,
        state: &SessionState,
        write: &SessionWrite,
    ) -> StoreResult<()> {
        let answers = Value::Object(state.answers.clone()).to_string();
        let finished = state.status.is_finished();
        let timers = write.timers.filter(|_| !finished);
        sqlx::query(
            "UPDATE survey_sessions SET status = $1, current_question = $2, attempts = $3,
                reminders_sent = $4, step = $5, answers = $6, reason = $7,
                reminder_in_ms = $8, expiry_in_ms = $9, reminder_due = NULL, expiry_due = NULL,
                asked_at = COALESCE($10, asked_at), gateway_id = COALESCE($11, gateway_id),
                completed_at = CASE WHEN $12 = 1 THEN COALESCE(completed_at, $13) ELSE NULL END,
                updated_at = $13
             WHERE id = $14",
        )
        .bind(status_text(state.status))
        .bind(state.current_question.map(|q| q as i64))
        .bind(i64::from(state.attempts))
        .bind(i64::from(state.reminders_sent))
        .bind(i64::try_from(state.step).unwrap_or(i64::MAX))
        .bind(answers)
        .bind(state.reason.as_deref())
        .bind(timers.and_then(|t| t.reminder_in_ms))
        .bind(timers.map(|t| t.expiry_in_ms))
        .bind(write.asked_at)
        .bind(write.gateway_id)
        .bind(i64::from(finished))
        .bind(write.now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Starts the timers of the sessions whose latest message is one of `message_ids` and
    /// which wait for it: due `reminder_in_ms` and `expiry_in_ms` after `now`. The dispatcher
    /// calls this for messages it is done with (sent, failed, expired), in the transaction that
    /// records it; a message of an earlier step changes nothing.
    pub async fn start_session_timers(
        &self,
        tx: &mut Transaction<'static, Any>,
        message_ids: &[i64],
        now: i64,
    ) -> StoreResult<u64> {
        let mut started = 0;
        for chunk in message_ids.chunks(500) {
            let mut p = crate::dialect::Placeholders::new(self.dialect());
            let (at1, at2, at3) = (p.next(), p.next(), p.next());
            let sql = format!(
                "UPDATE survey_sessions SET
                    reminder_due = CASE WHEN reminder_in_ms IS NULL THEN NULL ELSE {at1} + reminder_in_ms END,
                    expiry_due = {at2} + expiry_in_ms, updated_at = {at3}
                 WHERE status = 'active' AND expiry_due IS NULL AND expiry_in_ms IS NOT NULL
                   AND id IN (SELECT m.survey_session_id FROM messages m
                       WHERE m.id IN ({}) AND m.survey_session_id IS NOT NULL
                         AND m.survey_step = survey_sessions.step
                         AND m.status NOT IN ('queued', 'sending'))",
                p.list(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(now).bind(now).bind(now);
            for id in chunk {
                q = q.bind(*id);
            }
            started += q
                .persistent(false)
                .execute(&mut **tx)
                .await?
                .rows_affected();
        }
        Ok(started)
    }

    /// Sessions whose latest message was done with but whose timers did not start (its end was
    /// recorded by a path that does not start them: a sweep, a take-back): started from the
    /// message's last change. At most `limit` a call; returns how many.
    pub async fn start_missed_session_timers(&self, limit: i64) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "SELECT s.id, m.updated_at FROM survey_sessions s
               JOIN messages m ON m.survey_session_id = s.id AND m.survey_step = s.step
                 AND m.direction = 'outbound'
             WHERE s.status = 'active' AND s.expiry_due IS NULL AND s.expiry_in_ms IS NOT NULL
               AND m.status NOT IN ('queued', 'sending')
             LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut started = 0;
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let at: i64 = row.try_get("updated_at")?;
            started += sqlx::query(
                "UPDATE survey_sessions SET
                    reminder_due = CASE WHEN reminder_in_ms IS NULL THEN NULL ELSE $1 + reminder_in_ms END,
                    expiry_due = $1 + expiry_in_ms
                 WHERE id = $2 AND status = 'active' AND expiry_due IS NULL",
            )
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(started)
    }

    /// Clears a session's due reminder, or its expiry too (a timer that fired and changed
    /// nothing, so that it does not fire again and again).
    pub async fn clear_due_timers(
        tx: &mut Transaction<'static, Any>,
        id: i64,
        expiry_too: bool,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE survey_sessions SET reminder_due = NULL,
                expiry_due = CASE WHEN $1 = 1 THEN NULL ELSE expiry_due END WHERE id = $2",
        )
        .bind(i64::from(expiry_too))
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Active sessions whose reminder or expiry is due at `now`, soonest first, at most `limit`.
    pub async fn due_sessions(&self, now: i64, limit: i64) -> StoreResult<Vec<DueSession>> {
        let rows = sqlx::query(
            "SELECT id, project_id, phone FROM (
                SELECT id, project_id, phone, reminder_due AS due FROM survey_sessions
                 WHERE status = 'active' AND reminder_due IS NOT NULL AND reminder_due <= $1
                UNION
                SELECT id, project_id, phone, expiry_due AS due FROM survey_sessions
                 WHERE status = 'active' AND expiry_due IS NOT NULL AND expiry_due <= $1
             ) AS due ORDER BY due LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<DueSession> = Vec::with_capacity(rows.len());
        for row in &rows {
            let due = DueSession {
                id: row.try_get("id")?,
                project_id: row.try_get("project_id")?,
                phone: row.try_get("phone")?,
            };
            if !out.contains(&due) {
                out.push(due);
            }
        }
        Ok(out)
    }

    /// A number's inbound messages not handled yet, oldest first, at most `limit`.
    pub async fn unhandled_inbound(
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phone: &str,
        limit: i64,
    ) -> StoreResult<Vec<Unhandled>> {
        let rows = sqlx::query(
            "SELECT id, phone, case_pk, text, gateway_id FROM messages
             WHERE project_id = $1 AND phone = $2 AND direction = 'inbound' AND handled_at IS NULL
             ORDER BY id LIMIT $3",
        )
        .bind(project_id)
        .bind(phone)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
        rows.iter().map(unhandled_from_row).collect()
    }

    /// Marks an inbound message handled, with the case and session it turned out to be for.
    pub async fn mark_inbound_handled(
        tx: &mut Transaction<'static, Any>,
        id: i64,
        case_pk: Option<i64>,
        session_id: Option<i64>,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE messages SET handled_at = $1, case_pk = COALESCE($2, case_pk),
                survey_session_id = $3, updated_at = $1
             WHERE id = $4 AND handled_at IS NULL",
        )
        .bind(now)
        .bind(case_pk)
        .bind(session_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Numbers with an inbound message stored before `before` and not handled (its process
    /// died before handling it), at most `limit`.
    pub async fn numbers_with_unhandled(
        &self,
        before: i64,
        limit: i64,
    ) -> StoreResult<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT DISTINCT project_id, phone FROM messages
             WHERE direction = 'inbound' AND handled_at IS NULL AND created_at < $1 LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("project_id")?, row.try_get("phone")?)))
            .collect()
    }

    /// A survey's sessions by status.
    pub async fn session_counts(
        &self,
        survey_id: i64,
    ) -> StoreResult<std::collections::BTreeMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM survey_sessions WHERE survey_id = $1 GROUP BY status",
        )
        .bind(survey_id)
        .fetch_all(self.pool())
        .await?;
        let mut counts: std::collections::BTreeMap<String, i64> = SessionStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        for row in &rows {
            counts.insert(row.try_get("status")?, row.try_get("n")?);
        }
        Ok(counts)
    }

    /// A case's sessions, newest first, at most `limit`.
    pub async fn sessions_of_case(
        &self,
        project_id: i64,
        case_pk: i64,
        limit: i64,
    ) -> StoreResult<Vec<SurveySession>> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM {SESSION_FROM}
             WHERE s.project_id = $1 AND s.case_pk = $2 ORDER BY s.id DESC LIMIT $3"
        ))
        .bind(project_id)
        .bind(case_pk)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(session_from_row).collect()
    }
}
