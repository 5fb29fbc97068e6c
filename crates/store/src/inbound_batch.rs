//! The many-row forms of the inbound router's statements: storing the inbound messages of many
//! numbers and handling their survey replies in one transaction each, with one statement per
//! table instead of one per message (`casecast_engine::inbound` batches the messages that
//! arrive together). Each is the multi-row twin of a single-row statement in `messages.rs`,
//! `survey_sessions.rs`, `cases.rs` or `surveys.rs`, and writes what that one writes.

use std::collections::HashMap;

use casecast_core::case::Case;
use casecast_core::sms;
use casecast_core::survey::session::SessionState;
use serde_json::Value;
use sqlx::{Any, Row, Transaction};

use crate::dialect::Placeholders;
use crate::error::StoreResult;
use crate::messages::{Message, NewOutbound};
use crate::projects::Project;
use crate::survey_sessions::{
    session_from_row, SessionWrite, SurveySession, Unhandled, SESSION_COLUMNS, SESSION_FROM,
};
use crate::surveys::{survey_from_row, StoredSurvey, SURVEY_COLUMNS};
use crate::{Db, Dialect};

/// An inbound message handled: (its id, its case, the session it answered, the keyword it
/// matched).
pub type HandledMark = (i64, Option<i64>, Option<i64>, Option<i64>);

/// Most rows one multi-row statement takes (the widest has 14 parameters a row: well under
/// SQLite's 32,766).
pub const MAX_BATCH_ROWS: usize = 500;

impl Db {
    /// Holds the locks of many numbers of a project until the transaction ends, as
    /// [`Db::lock_number`] does for one, taken in one order (by key) in every process so that
    /// two batches never wait for each other in a circle.
    pub async fn lock_numbers(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phones: &[&str],
    ) -> StoreResult<()> {
        if self.dialect() != Dialect::Postgres || phones.is_empty() {
            return Ok(());
        }
        for chunk in phones.chunks(MAX_BATCH_ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let values: Vec<String> = chunk.iter().map(|_| format!("({})", p.next())).collect();
            let sql = format!(
                "SELECT pg_advisory_xact_lock(k) FROM (
                    SELECT hashtextextended(v.column1, 0) AS k FROM (VALUES {}) AS v ORDER BY k
                 ) AS keys",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for phone in chunk {
                q = q.bind(crate::survey_sessions::number_lock_key(project_id, phone));
            }
            q.persistent(false).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// The live case of each number, chosen as [`Db::case_for_phone`] chooses: an open one
    /// before a closed one, then the one changed last, then the newest.
    pub async fn cases_for_phones(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phones: &[&str],
    ) -> StoreResult<HashMap<String, i64>> {
        let mut best: HashMap<String, (i64, i64, i64)> = HashMap::new();
        for chunk in phones.chunks(MAX_BATCH_ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let first = p.next();
            let sql = format!(
                "SELECT id, phone_number, closed, modified_at FROM cases
                 WHERE project_id = {first} AND deleted = 0 AND phone_number IN ({})",
                p.list(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(project_id);
            for phone in chunk {
                q = q.bind(*phone);
            }
            for row in q.persistent(false).fetch_all(&mut **tx).await? {
                let phone: String = row.try_get("phone_number")?;
                let id: i64 = row.try_get("id")?;
                let closed: i64 = row.try_get("closed")?;
                let modified: i64 = row.try_get("modified_at")?;
                // Smallest (closed, -modified_at, -id) wins, as the single lookup's ORDER BY.
                let key = (closed, -modified, -id);
                match best.get(&phone) {
                    Some(old) if *old <= key => {}
                    _ => {
                        best.insert(phone, key);
                    }
                }
            }
        }
        Ok(best
            .into_iter()
            .map(|(phone, (_, _, id))| (phone, -id))
            .collect())
    }

    /// The messages with these ids, in id order.
    pub async fn messages_by_ids(&self, project_id: i64, ids: &[i64]) -> StoreResult<Vec<Message>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_BATCH_ROWS) {
            // By id alone (the project checked on each row): with statistics that a burst left
            // behind, PostgreSQL read the project's every message for `project_id = …`.
            let mut p = Placeholders::new(self.dialect());
            let sql = format!(
                "SELECT {} FROM messages m LEFT JOIN cases c ON c.id = m.case_pk AND c.project_id = m.project_id
                 WHERE m.id IN ({}) ORDER BY m.id",
                crate::messages::COLUMNS,
                p.list(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.persistent(false).fetch_all(self.pool()).await? {
                let message = crate::messages::from_row(&row)?;
                if message.project_id == project_id {
                    out.push(message);
                }
            }
        }
        Ok(out)
    }

    /// The project's keywords among these folded words, by folded word.
    pub async fn keywords_by_words_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        words: &[String],
    ) -> StoreResult<HashMap<String, crate::keywords::StoredKeyword>> {
        let mut found = HashMap::new();
        for chunk in words.chunks(MAX_BATCH_ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let first = p.next();
            let sql = format!(
                "SELECT word_key, {} FROM keywords WHERE project_id = {first} AND word_key IN ({})",
                crate::keywords::KEYWORD_COLUMNS,
                p.list(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(project_id);
            for w in chunk {
                q = q.bind(w.as_str());
            }
            for row in q.persistent(false).fetch_all(&mut **tx).await? {
                found.insert(
                    row.try_get("word_key")?,
                    crate::keywords::keyword_from_row(&row)?,
                );
            }
        }
        Ok(found)
    }

    /// The live cases of each of these numbers, as [`Db::cases_of_phone_tx`] orders them.
    pub async fn cases_of_phones_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phones: &[&str],
    ) -> StoreResult<HashMap<String, Vec<(i64, Case)>>> {
        let mut found: HashMap<String, Vec<(i64, Case)>> = HashMap::new();
        for chunk in phones.chunks(MAX_BATCH_ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let first = p.next();
            let sql = format!(
                "SELECT {} FROM cases WHERE project_id = {first} AND deleted = 0 AND phone_number IN ({})",
                crate::cases::CASE_COLUMNS,
                p.list(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(project_id);
            for phone in chunk {
                q = q.bind(*phone);
            }
            for row in q.persistent(false).fetch_all(&mut **tx).await? {
                let (pk, case) = crate::cases::case_from_row(&row)?;
                if let Some(phone) = case.phone_number.as_ref().map(|n| n.as_str().to_string()) {
                    found.entry(phone).or_default().push((pk, case));
                }
            }
        }
        for cases in found.values_mut() {
            cases.sort_by_key(|(pk, c)| (c.closed, -c.modified_at, -pk));
        }
        Ok(found)
    }

    /// Which of these numbers are opted out of the project.
    pub async fn opted_out_of_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phones: &[&str],
    ) -> StoreResult<std::collections::HashSet<String>> {
        let mut found = std::collections::HashSet::new();
        for chunk in phones.chunks(MAX_BATCH_ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let first = p.next();
            let sql = format!(
                "SELECT phone FROM opt_outs WHERE project_id = {first} AND phone IN ({})",
                p.list(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(project_id);
            for phone in chunk {
                q = q.bind(*phone);
            }
            for row in q.persistent(false).fetch_all(&mut **tx).await? {
                found.insert(row.try_get("phone")?);
            }
        }
        Ok(found)
    }

    /// When the automatic replies queued for each of these numbers since `since` were queued.
    pub async fn auto_replies_of_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phones: &[&str],
        since: i64,
    ) -> StoreResult<HashMap<String, Vec<i64>>> {
        let mut found: HashMap<String, Vec<i64>> = HashMap::new();
        for chunk in phones.chunks(MAX_BATCH_ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let (first, second) = (p.next(), p.next());
            let sql = format!(
                "SELECT phone, created_at FROM messages WHERE project_id = {first}
                   AND reply_to IS NOT NULL AND created_at >= {second} AND phone IN ({})",
                p.list(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(project_id).bind(since);
            for phone in chunk {
                q = q.bind(*phone);
            }
            for row in q.persistent(false).fetch_all(&mut **tx).await? {
                found
                    .entry(row.try_get("phone")?)
                    .or_default()
                    .push(row.try_get("created_at")?);
            }
        }
        Ok(found)
    }

    /// The inbound messages not handled yet of these numbers, oldest first, at most `limit`
    /// (which ones, when there are more, is not said).
    pub async fn unhandled_inbound_of(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phones: &[&str],
        limit: usize,
    ) -> StoreResult<Vec<Unhandled>> {
        let mut p = Placeholders::new(self.dialect());
        let first = p.next();
        let sql = format!(
            "SELECT id, phone, case_pk, text, gateway_id FROM messages
             WHERE project_id = {first} AND direction = 'inbound' AND handled_at IS NULL
               AND phone IN ({}) LIMIT {limit}",
            p.list(phones.len())
        );
        // Not ordered in SQL: with an ORDER BY, SQLite reads the project's every message by id
        // instead of these numbers' waiting ones (the partial index `messages_unhandled`).
        let mut q = sqlx::query(&sql).bind(project_id);
        for phone in phones {
            q = q.bind(*phone);
        }
        let mut waiting = q
            .persistent(false)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(crate::survey_sessions::unhandled_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        waiting.sort_by_key(|m| m.id);
        Ok(waiting)
    }

    /// The active sessions of these numbers, each number's asked most recently first (as
    /// [`Db::active_sessions_of_phone`], locked the same way).
    pub async fn active_sessions_of_phones(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phones: &[&str],
    ) -> StoreResult<Vec<SurveySession>> {
        let mut p = Placeholders::new(self.dialect());
        let first = p.next();
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM {SESSION_FROM}
             WHERE s.project_id = {first} AND s.status = 'active' AND s.phone IN ({})
             ORDER BY s.asked_at DESC, s.id DESC{}",
            p.list(phones.len()),
            crate::dialect::for_update_of(self.dialect(), "s")
        );
        let mut q = sqlx::query(&sql).bind(project_id);
        for phone in phones {
            q = q.bind(*phone);
        }
        q.persistent(false)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(session_from_row)
            .collect()
    }

    /// The project's surveys with these ids (share-locked on PostgreSQL, as
    /// [`Db::survey_tx`]); an id of no survey of the project is left out.
    pub async fn surveys_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        ids: &[i64],
    ) -> StoreResult<Vec<StoredSurvey>> {
        let mut p = Placeholders::new(self.dialect());
        let first = p.next();
        let lock = match self.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR SHARE",
        };
        let sql = format!(
            "SELECT {SURVEY_COLUMNS} FROM surveys WHERE project_id = {first} AND id IN ({}){lock}",
            p.list(ids.len())
        );
        let mut q = sqlx::query(&sql).bind(project_id);
        for id in ids {
            q = q.bind(*id);
        }
        q.persistent(false)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(survey_from_row)
            .collect()
    }

    /// Queues outbound messages of one project, as [`Db::queue_outbound`] does each.
    pub async fn queue_outbound_many(
        &self,
        tx: &mut Transaction<'static, Any>,
        project: &Project,
        items: &[NewOutbound],
    ) -> StoreResult<()> {
        let now = casecast_core::time::now_ms();
        let expires = now + project.validity_seconds() * 1000;
        for chunk in items.chunks(MAX_BATCH_ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let rows: Vec<String> = chunk
                .iter()
                .map(|_| {
                    format!(
                        "({}, 'outbound', {}, 'queued', {})",
                        p.next(),
                        p.list(4),
                        p.list(13)
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO messages (project_id, direction, kind, case_pk, phone, text, status,
                    encoding, segments, gateway_id, user_id, next_attempt_at, created_at, expires_at,
                    updated_at, survey_session_id, survey_step, reply_to, keyword_id, reminder_id)
                 VALUES {}",
                rows.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for new in chunk {
                let info = sms::analyse(&new.text);
                q = q
                    .bind(project.id)
                    .bind(new.kind.as_str())
                    .bind(new.case_pk)
                    .bind(new.phone.as_str())
                    .bind(new.text.as_str())
                    .bind(info.encoding.as_str())
                    .bind(info.segments as i64)
                    .bind(new.gateway_id)
                    .bind(new.user_id)
                    .bind(now)
                    .bind(now)
                    .bind(expires)
                    .bind(now)
                    .bind(new.survey.map(|(session, _)| session))
                    .bind(new.survey.map(|(_, step)| step))
                    .bind(new.reply_to.map(|(to, _)| to))
                    .bind(new.reply_to.and_then(|(_, keyword)| keyword))
                    .bind(new.reminder_id);
            }
            q.persistent(false).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Sets properties of many live cases (each case at most once), as
    /// [`Db::set_case_properties_tx`] does for one; a case deleted meanwhile is left alone.
    pub async fn set_properties_of_cases_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        changes: &[(i64, Vec<(String, String)>)],
        now: i64,
    ) -> StoreResult<()> {
        for chunk in changes.chunks(MAX_BATCH_ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let sql = format!(
                "SELECT {} FROM cases WHERE deleted = 0 AND id IN ({}){}",
                crate::cases::CASE_COLUMNS,
                p.list(chunk.len()),
                crate::dialect::for_update(self.dialect())
            );
            let mut q = sqlx::query(&sql);
            for (pk, _) in chunk {
                q = q.bind(*pk);
            }
            let mut cases: HashMap<i64, Case> = HashMap::new();
            for row in q.persistent(false).fetch_all(&mut **tx).await? {
                let (pk, case) = crate::cases::case_from_row(&row)?;
                cases.insert(pk, case);
            }
            let mut rows = Vec::new();
            for (pk, properties) in chunk {
                let Some(case) = cases.get_mut(pk) else {
                    continue;
                };
                for (key, value) in properties {
                    case.properties.insert(key.clone(), value.clone());
                }
                rows.push((
                    *pk,
                    crate::cases::properties_json(case),
                    crate::cases::property_keys(case),
                ));
            }
            if rows.is_empty() {
                continue;
            }
            let mut p = Placeholders::new(self.dialect());
            let at = p.next();
            let values: Vec<String> = rows.iter().map(|_| format!("({})", p.list(3))).collect();
            let sql = format!(
                "UPDATE cases SET properties = v.column2, property_keys = v.column3, modified_at = {at}
                 FROM (VALUES {}) AS v WHERE cases.id = v.column1",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(now);
            for (pk, properties, keys) in rows {
                q = q.bind(pk).bind(properties).bind(keys);
            }
            q.persistent(false).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Writes many sessions' states after their transitions, as [`Db::write_session`] does
    /// each.
    pub async fn write_sessions(
        &self,
        tx: &mut Transaction<'static, Any>,
        writes: &[(i64, &SessionState, SessionWrite)],
    ) -> StoreResult<()> {
        for chunk in writes.chunks(MAX_BATCH_ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let values: Vec<String> = chunk.iter().map(|_| format!("({})", p.list(14))).collect();
            let sql = format!(
                "UPDATE survey_sessions SET status = v.column2, current_question = v.column3,
                    attempts = v.column4, reminders_sent = v.column5, step = v.column6,
                    answers = v.column7, reason = v.column8, reminder_in_ms = v.column9,
                    expiry_in_ms = v.column10, reminder_due = NULL, expiry_due = NULL,
                    asked_at = COALESCE(v.column11, survey_sessions.asked_at),
                    gateway_id = COALESCE(v.column12, survey_sessions.gateway_id),
                    completed_at = CASE WHEN v.column13 = 1
                        THEN COALESCE(survey_sessions.completed_at, v.column14) ELSE NULL END,
                    updated_at = v.column14
                 FROM (VALUES {}) AS v WHERE survey_sessions.id = v.column1",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for (id, state, write) in chunk {
                let finished = state.status.is_finished();
                let timers = write.timers.filter(|_| !finished);
                q = q
                    .bind(*id)
                    .bind(state.status.as_str())
                    .bind(state.current_question.map(|q| q as i64))
                    .bind(i64::from(state.attempts))
                    .bind(i64::from(state.reminders_sent))
                    .bind(i64::try_from(state.step).unwrap_or(i64::MAX))
                    .bind(Value::Object(state.answers.clone()).to_string())
                    .bind(state.reason.clone())
                    .bind(timers.and_then(|t| t.reminder_in_ms))
                    .bind(timers.map(|t| t.expiry_in_ms))
                    .bind(write.asked_at)
                    .bind(write.gateway_id)
                    .bind(i64::from(finished))
                    .bind(write.now);
            }
            q.persistent(false).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Marks many inbound messages handled ([`HandledMark`]s), each with the case, session and keyword it turned
    /// out to be for, as [`Db::mark_inbound_handled`] does each.
    pub async fn mark_inbound_handled_many(
        &self,
        tx: &mut Transaction<'static, Any>,
        handled: &[HandledMark],
        now: i64,
    ) -> StoreResult<()> {
        for chunk in handled.chunks(MAX_BATCH_ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let (at1, at2) = (p.next(), p.next());
            let values: Vec<String> = chunk.iter().map(|_| format!("({})", p.list(4))).collect();
            let sql = format!(
                "UPDATE messages SET handled_at = {at1}, case_pk = COALESCE(v.column2, messages.case_pk),
                    survey_session_id = v.column3, keyword_id = v.column4, updated_at = {at2}
                 FROM (VALUES {}) AS v WHERE messages.id = v.column1 AND messages.handled_at IS NULL",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(now).bind(now);
            for (id, case_pk, session_id, keyword_id) in chunk {
                q = q
                    .bind(*id)
                    .bind(*case_pk)
                    .bind(*session_id)
                    .bind(*keyword_id);
            }
            q.persistent(false).execute(&mut **tx).await?;
        }
        Ok(())
    }
}
