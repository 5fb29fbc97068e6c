//! Reminder rules as written, each case's schedule under a rule, the record of each occurrence
//! handled, and the queue of cases whose rules need a new look (issue 15). What is due when,
//! and what is sent, is the engine's (`casecast_engine::reminders`); this module only keeps
//! the rows.
//!
//! Rules kept here:
//! - A rule's edit bumps its `version` and clears its evaluation progress: the engine's
//!   background evaluation of the rule's cases runs for one version.
//! - `reminder_pending` is filled by triggers (migration 11) whenever a case or a group
//!   membership is written in a project with an active rule, by every write path alike.
//! - An occurrence is recorded once: (rule, case, scheduled instant) is the table's key, so
//!   two workers racing for it cannot both record it, and only the one that did sends.

use casecast_core::reminder::ReminderRule;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::cases::{case_from_row, CASE_COLUMNS};
use crate::dialect::Placeholders;
use crate::error::{StoreError, StoreResult};
use crate::Db;
use crate::Dialect;

/// A stored reminder rule.
#[derive(Clone, Debug, Serialize)]
pub struct StoredReminder {
    pub id: i64,
    #[serde(skip)]
    pub project_id: i64,
    #[serde(skip)]
    pub rule: ReminderRule,
    /// Bumped by every edit.
    pub version: i64,
    /// The last case row id the background evaluation of this version did.
    #[serde(skip)]
    pub evaluated_through: Option<i64>,
    /// When the evaluation of this version finished (`None`: running).
    pub evaluated_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const REMINDER_COLUMNS: &str =
    "id, project_id, definition, version, evaluated_through, evaluated_at, created_at, updated_at";

fn reminder_from_row(row: &AnyRow) -> StoreResult<StoredReminder> {
    let text: String = row.try_get("definition")?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| StoreError::corrupt_json("reminder", &e))?;
    // Stored rules were checked when saved (their queries too): read back as they are.
    let rule = ReminderRule::parse(&value, &|_| Ok(())).map_err(|problems| {
        StoreError::corrupt(
            "reminder",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    Ok(StoredReminder {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        rule,
        version: row.try_get("version")?,
        evaluated_through: row.try_get("evaluated_through")?,
        evaluated_at: row.try_get("evaluated_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Where a case stands under a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleState {
    /// An occurrence is due at `next_at`.
    Scheduled,
    /// Every occurrence was handled.
    Done,
    /// The case matches but has no usable date or zone (`skip_reason`).
    Skipped,
    /// The case no longer matches, matches the stop query, or is closed or deleted.
    Stopped,
}

impl ScheduleState {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleState::Scheduled => "scheduled",
            ScheduleState::Done => "done",
            ScheduleState::Skipped => "skipped",
            ScheduleState::Stopped => "stopped",
        }
    }

    fn parse(s: &str) -> Result<ScheduleState, sqlx::Error> {
        Ok(match s {
            "scheduled" => ScheduleState::Scheduled,
            "done" => ScheduleState::Done,
            "skipped" => ScheduleState::Skipped,
            "stopped" => ScheduleState::Stopped,
            other => {
                return Err(sqlx::Error::Decode(
                    format!("unknown reminder schedule state {other:?}").into(),
                ))
            }
        })
    }
}

/// A (rule, case) row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleRow {
    pub reminder_id: i64,
    pub case_pk: i64,
    pub state: ScheduleState,
    pub skip_reason: Option<String>,
    pub matched_since: i64,
    /// The instant of the last occurrence handled (sent or missed).
    pub handled_through: Option<i64>,
    /// The series of that occurrence: the case's start date, or `since:<ms>` for an
    /// `immediately` rule (see migration 12).
    pub handled_series: Option<String>,
    /// The number of that occurrence in its series.
    pub handled_occurrence: Option<i64>,
    pub next_occurrence: Option<i64>,
    pub next_at: Option<i64>,
}

const SCHEDULE_COLUMNS: &str = "reminder_id, case_pk, state, skip_reason, matched_since, \
     handled_through, handled_series, handled_occurrence, next_occurrence, next_at";

fn schedule_from_row(row: &AnyRow) -> Result<ScheduleRow, sqlx::Error> {
    Ok(ScheduleRow {
        reminder_id: row.try_get("reminder_id")?,
        case_pk: row.try_get("case_pk")?,
        state: ScheduleState::parse(&row.try_get::<String, _>("state")?)?,
        skip_reason: row.try_get("skip_reason")?,
        matched_since: row.try_get("matched_since")?,
        handled_through: row.try_get("handled_through")?,
        handled_series: row.try_get("handled_series")?,
        handled_occurrence: row.try_get("handled_occurrence")?,
        next_occurrence: row.try_get("next_occurrence")?,
        next_at: row.try_get("next_at")?,
    })
}

/// An occurrence handled, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OccurrenceRecord {
    #[serde(skip)]
    pub case_pk: i64,
    /// The case's public id and name.
    pub case_id: String,
    pub case_name: String,
    pub due_at: i64,
    pub occurrence: i64,
    /// `queued`, `missed`, `opted_out`, `no_phone`, `same_phone`, `survey_refused`.
    pub outcome: String,
    pub recorded_at: i64,
}

/// Counts of a rule's cases by state (skipped ones by reason) and of its occurrences by
/// outcome, for its page.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReminderCounts {
    pub states: std::collections::BTreeMap<String, i64>,
    pub skipped: std::collections::BTreeMap<String, i64>,
    pub outcomes: std::collections::BTreeMap<String, i64>,
}

/// An occurrence to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOccurrence {
    pub reminder_id: i64,
    pub case_pk: i64,
    /// The instant it was due: with the rule and the case, the record's key.
    pub due_at: i64,
    pub occurrence: i64,
    /// `queued`, `missed`, `opted_out`, `no_phone`, `same_phone`, `no_gateway`, `empty_text`.
    pub outcome: &'static str,
    /// The number it went (or would have gone) to.
    pub phone: Option<String>,
}

/// A case's next occurrence under a rule, with the case's public id and name (a rule's page
/// lists what is due next).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NextDue {
    pub case_id: String,
    pub case_name: String,
    /// The occurrence's number (1 is the first).
    pub occurrence: i64,
    /// When it is due (ms since the epoch).
    pub at: i64,
}

/// Rows a multi-row statement of this module writes at once.
const ROWS: usize = 500;

impl Db {
    /// Stores a checked rule (its evaluation not started).
    pub async fn create_reminder(
        &self,
        project_id: i64,
        rule: &ReminderRule,
        user_id: Option<i64>,
    ) -> StoreResult<StoredReminder> {
        let now = casecast_core::time::now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO reminders (project_id, definition, active, case_type, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
        )
        .bind(project_id)
        .bind(rule.to_json().to_string())
        .bind(i64::from(rule.active))
        .bind(&rule.case_type)
        .bind(user_id)
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        self.reminder(project_id, id).await
    }

    /// One rule of the project.
    pub async fn reminder(&self, project_id: i64, id: i64) -> StoreResult<StoredReminder> {
        let row = sqlx::query(&format!(
            "SELECT {REMINDER_COLUMNS} FROM reminders WHERE project_id = $1 AND id = $2"
        ))
        .bind(project_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("reminder"))?;
        reminder_from_row(&row)
    }

    /// The project's rules, oldest first.
    pub async fn list_reminders(&self, project_id: i64) -> StoreResult<Vec<StoredReminder>> {
        sqlx::query(&format!(
            "SELECT {REMINDER_COLUMNS} FROM reminders WHERE project_id = $1 ORDER BY id"
        ))
        .bind(project_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(reminder_from_row)
        .collect()
    }

    /// A page of the project's rules, oldest first: up to `limit` with an id after `after`, and
    /// the cursor of the next page (the last id) when there are more.
    pub async fn reminders_page(
        &self,
        project_id: i64,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<(Vec<StoredReminder>, Option<i64>)> {
        let mut items = sqlx::query(&format!(
            "SELECT {REMINDER_COLUMNS} FROM reminders WHERE project_id = $1 AND id > $2
             ORDER BY id LIMIT $3"
        ))
        .bind(project_id)
        .bind(after.unwrap_or(0))
        .bind(limit as i64 + 1)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(reminder_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|r| r.id)
        } else {
            None
        };
        Ok((items, next))
    }

    /// The project's active rules, read inside the caller's transaction.
    pub async fn active_reminders_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
    ) -> StoreResult<Vec<StoredReminder>> {
        sqlx::query(&format!(
            "SELECT {REMINDER_COLUMNS} FROM reminders WHERE project_id = $1 AND active = 1 ORDER BY id"
        ))
        .bind(project_id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(reminder_from_row)
        .collect()
    }

    /// Replaces a rule; its version goes up and its evaluation starts again.
    pub async fn update_reminder(
        &self,
        project_id: i64,
        id: i64,
        rule: &ReminderRule,
    ) -> StoreResult<StoredReminder> {
        let now = casecast_core::time::now_ms();
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE reminders SET definition = $1, active = $2, case_type = $3, version = version + 1,
                evaluated_through = NULL, evaluated_at = NULL, updated_at = $4
             WHERE project_id = $5 AND id = $6",
        )
        .bind(rule.to_json().to_string())
        .bind(i64::from(rule.active))
        .bind(&rule.case_type)
        .bind(now)
        .bind(project_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("reminder"));
        }
        if !rule.active {
            // Nothing of an inactive rule is due; its cases are judged again (their next
            // occurrences found again) when it is activated.
            sqlx::query("UPDATE reminder_schedules SET next_at = NULL WHERE reminder_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.reminder(project_id, id).await
    }

    /// Deletes a rule with its schedules and records (its messages stay in the log).
    pub async fn delete_reminder(&self, project_id: i64, id: i64) -> StoreResult<()> {
        let n = sqlx::query("DELETE FROM reminders WHERE project_id = $1 AND id = $2")
            .bind(project_id)
            .bind(id)
            .execute(self.pool())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("reminder"));
        }
        Ok(())
    }

    /// Records how far the evaluation of `version` of a rule went (`done`: finished); nothing
    /// when the rule was edited since (another version's evaluation has the rule now).
    pub async fn set_reminder_progress_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: i64,
        version: i64,
        through: Option<i64>,
        done_at: Option<i64>,
    ) -> StoreResult<bool> {
        Ok(sqlx::query(
            "UPDATE reminders SET evaluated_through = $1, evaluated_at = $2 WHERE id = $3 AND version = $4",
        )
        .bind(through)
        .bind(done_at)
        .bind(id)
        .bind(version)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1)
    }

    /// Up to `limit` live and deleted cases of the project of one type with a row id after
    /// `after`, in row id order: a page of a rule's evaluation.
    pub async fn cases_of_type_after_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        case_type: &str,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<(i64, casecast_core::case::Case)>> {
        sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE project_id = $1 AND case_type = $2 AND id > $3
             ORDER BY id LIMIT $4"
        ))
        .bind(project_id)
        .bind(case_type)
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(case_from_row)
        .collect()
    }

    /// The cases with these row ids (deleted ones included), read inside the caller's
    /// transaction.
    pub async fn cases_by_pks_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        pks: &[i64],
    ) -> StoreResult<Vec<(i64, casecast_core::case::Case)>> {
        let mut out = Vec::with_capacity(pks.len());
        for chunk in pks.chunks(ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let sql = format!(
                "SELECT {CASE_COLUMNS} FROM cases WHERE id IN ({})",
                p.list(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for pk in chunk {
                q = q.bind(*pk);
            }
            for row in q.persistent(false).fetch_all(&mut **tx).await? {
                out.push(case_from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// The groups (id, name) each of these cases belongs to.
    pub async fn groups_of_cases_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        pks: &[i64],
    ) -> StoreResult<std::collections::HashMap<i64, Vec<(i64, String)>>> {
        let mut out: std::collections::HashMap<i64, Vec<(i64, String)>> = Default::default();
        for chunk in pks.chunks(ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let sql = format!(
                "SELECT m.case_pk, g.id, g.name FROM case_group_members m
                 JOIN case_groups g ON g.id = m.group_id WHERE m.case_pk IN ({})",
                p.list(chunk.len())
            );
            let mut q = sqlx::query_as::<_, (i64, i64, String)>(&sql);
            for pk in chunk {
                q = q.bind(*pk);
            }
            for (case_pk, id, name) in q.persistent(false).fetch_all(&mut **tx).await? {
                out.entry(case_pk).or_default().push((id, name));
            }
        }
        Ok(out)
    }

    /// The schedule rows of these cases under any rule of the given ones.
    pub async fn schedules_of_cases_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        reminder_ids: &[i64],
        pks: &[i64],
    ) -> StoreResult<Vec<ScheduleRow>> {
        if reminder_ids.is_empty() || pks.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for chunk in pks.chunks(ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let rules = p.list(reminder_ids.len());
            let sql = format!(
                "SELECT {SCHEDULE_COLUMNS} FROM reminder_schedules
                 WHERE reminder_id IN ({rules}) AND case_pk IN ({})",
                p.list(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in reminder_ids {
                q = q.bind(*id);
            }
            for pk in chunk {
                q = q.bind(*pk);
            }
            for row in q.persistent(false).fetch_all(&mut **tx).await? {
                out.push(schedule_from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// Writes schedule rows (inserted, or replacing the (rule, case) row), releasing any claim.
    pub async fn write_schedules_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        rows: &[ScheduleRow],
        now: i64,
    ) -> StoreResult<()> {
        for chunk in rows.chunks(ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let values: Vec<String> = chunk.iter().map(|_| format!("({})", p.list(11))).collect();
            let sql = format!(
                "INSERT INTO reminder_schedules (reminder_id, case_pk, state, skip_reason, matched_since,
                    handled_through, handled_series, handled_occurrence, next_occurrence, next_at,
                    updated_at)
                 VALUES {}
                 ON CONFLICT (reminder_id, case_pk) DO UPDATE SET state = excluded.state,
                    skip_reason = excluded.skip_reason, matched_since = excluded.matched_since,
                    handled_through = excluded.handled_through,
                    handled_series = excluded.handled_series,
                    handled_occurrence = excluded.handled_occurrence,
                    next_occurrence = excluded.next_occurrence, next_at = excluded.next_at,
                    locked_until = NULL, updated_at = excluded.updated_at",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q
                    .bind(r.reminder_id)
                    .bind(r.case_pk)
                    .bind(r.state.as_str())
                    .bind(r.skip_reason.clone())
                    .bind(r.matched_since)
                    .bind(r.handled_through)
                    .bind(r.handled_series.clone())
                    .bind(r.handled_occurrence)
                    .bind(r.next_occurrence)
                    .bind(r.next_at)
                    .bind(now);
            }
            q.persistent(false).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Takes up to `limit` cases waiting for their rules' new look, oldest first, removing them
    /// from the queue inside the caller's transaction (a failure puts them back). Two workers
    /// take different cases (PostgreSQL skips the rows another holds; SQLite writes one at a
    /// time). Returns (case row id, project). `project_id`: only that project's.
    pub async fn take_pending_cases_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        limit: usize,
        project_id: Option<i64>,
    ) -> StoreResult<Vec<(i64, i64)>> {
        let skip = match self.dialect() {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let only = if project_id.is_some() {
            "WHERE project_id = $2"
        } else {
            ""
        };
        let sql = format!(
            "DELETE FROM reminder_pending WHERE case_pk IN
               (SELECT case_pk FROM reminder_pending {only} ORDER BY case_pk LIMIT $1{skip})
             RETURNING case_pk, project_id"
        );
        let mut q = sqlx::query_as(&sql).bind(limit as i64);
        if let Some(id) = project_id {
            q = q.bind(id);
        }
        Ok(q.fetch_all(&mut **tx).await?)
    }

    /// Whether any case waits for its rules' new look (a read, so that an idle worker's tick
    /// takes no write lock).
    pub async fn has_pending_cases(&self) -> StoreResult<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM reminder_pending LIMIT 1")
            .fetch_optional(self.pool())
            .await?;
        Ok(found.is_some())
    }

    /// Whether any (rule, case) row is due at `now` (a read, so that an idle worker's tick takes
    /// no write lock).
    pub async fn has_due_schedules(&self, now: i64) -> StoreResult<bool> {
        // In index order, so that the plan reads the index whatever the statistics say.
        let any: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM reminder_schedules WHERE next_at <= $1 ORDER BY next_at LIMIT 1",
        )
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        Ok(any.is_some())
    }

    /// Takes up to `limit` (rule, case) rows due at `now` of active rules, soonest first, for
    /// the caller's transaction: on PostgreSQL the rows are locked until it ends and another
    /// worker skips them (and, once it commits, finds them no longer due); SQLite writes one
    /// transaction at a time. Returns each row with its rule's project.
    ///
    /// `after`: only rows after this (due instant, rule, case) in that order, the greatest key
    /// claimed so far by the caller's pages (of any of its lanes). Pages taken one after
    /// another then start where the last ended instead of walking again over the index entries
    /// of every row fired before them (on PostgreSQL those are dead until a vacuum, and the walk
    /// cost a page more each time).
    pub async fn claim_due_schedules_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        now: i64,
        limit: usize,
        after: Option<(i64, i64, i64)>,
    ) -> StoreResult<Vec<(ScheduleRow, i64)>> {
        let skip = match self.dialect() {
            Dialect::Postgres => " FOR UPDATE OF s SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let from = if after.is_some() {
            " AND (s.next_at, s.reminder_id, s.case_pk) > ($3, $4, $5)"
        } else {
            ""
        };
        let columns: Vec<String> = SCHEDULE_COLUMNS
            .split(", ")
            .map(|c| format!("s.{}", c.trim()))
            .collect();
        let sql = format!(
            "SELECT {}, r.project_id FROM reminder_schedules s
             JOIN reminders r ON r.id = s.reminder_id
             WHERE s.next_at <= $1 AND r.active = 1{from}
             ORDER BY s.next_at, s.reminder_id, s.case_pk LIMIT $2{skip}",
            columns.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(now).bind(limit as i64);
        if let Some((at, reminder_id, case_pk)) = after {
            q = q.bind(at).bind(reminder_id).bind(case_pk);
        }
        q.fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| Ok((schedule_from_row(row)?, row.try_get("project_id")?)))
            .collect()
    }

    /// The rows of one rule for the cases with a row id in `first..=last` (a page of the rule's
    /// evaluation, read as one range of the key).
    pub async fn schedules_in_range_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        reminder_id: i64,
        first: i64,
        last: i64,
    ) -> StoreResult<Vec<ScheduleRow>> {
        sqlx::query(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM reminder_schedules
             WHERE reminder_id = $1 AND case_pk >= $2 AND case_pk <= $3"
        ))
        .bind(reminder_id)
        .bind(first)
        .bind(last)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| schedule_from_row(r).map_err(StoreError::from))
        .collect()
    }

    /// The names of the project's reminder rules (active or not) whose query or stop query
    /// names group `group_id`, by id or by its name.
    pub async fn reminders_naming(
        &self,
        project_id: i64,
        group_id: i64,
    ) -> StoreResult<Vec<String>> {
        use casecast_core::case_query::{CaseQuery, GroupRef};
        let name: Option<String> =
            sqlx::query_scalar("SELECT name FROM case_groups WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(group_id)
                .fetch_optional(self.pool())
                .await?;
        let Some(name) = name else {
            return Ok(Vec::new());
        };
        let key = name.trim().to_lowercase();
        let mut names = Vec::new();
        for r in self.list_reminders(project_id).await? {
            let names_it = [Some(r.rule.query.as_str()), r.rule.stop_query.as_deref()]
                .into_iter()
                .flatten()
                .filter_map(|text| CaseQuery::parse_optional(text).ok().flatten())
                .any(|q| {
                    q.groups_referenced().any(|g| match g {
                        GroupRef::Id(id) => *id == group_id,
                        GroupRef::Name(n) => n.trim().to_lowercase() == key,
                    })
                });
            if names_it {
                names.push(r.rule.name.clone());
            }
        }
        Ok(names)
    }

    /// Records occurrences handled; returns those recorded now as they were asked, as (rule,
    /// case, due instant), and how many were recorded `same_phone` instead of `queued`. One
    /// recorded already (by another worker, or before) is in neither: nothing may be sent for
    /// it. A `queued` one whose number a message was queued to for the same occurrence already
    /// (an earlier page or tick, or another worker: a unique index, which makes this insert wait
    /// for that worker's commit) is recorded `same_phone` and counted, not returned.
    pub async fn record_occurrences_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        rows: &[NewOccurrence],
        now: i64,
    ) -> StoreResult<(std::collections::HashSet<(i64, i64, i64)>, usize)> {
        let recorded = self.insert_occurrences_tx(tx, rows, now).await?;
        // A 'queued' row that was not recorded met either its own key (another worker recorded
        // this case's occurrence) or the one-queued-a-number index (a message to the number
        // went for this occurrence already). The second is recorded as 'same_phone'; the first
        // does nothing again.
        let lost: Vec<NewOccurrence> = rows
            .iter()
            .filter(|o| {
                o.outcome == "queued" && !recorded.contains(&(o.reminder_id, o.case_pk, o.due_at))
            })
            .map(|o| NewOccurrence {
                outcome: "same_phone",
                ..o.clone()
            })
            .collect();
        let same_phone = self.insert_occurrences_tx(tx, &lost, now).await?.len();
        Ok((recorded, same_phone))
    }

    /// Inserts occurrences, skipping those a unique key or index already holds; returns those
    /// inserted, as (rule, case, due instant).
    async fn insert_occurrences_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        rows: &[NewOccurrence],
        now: i64,
    ) -> StoreResult<std::collections::HashSet<(i64, i64, i64)>> {
        let mut inserted = std::collections::HashSet::new();
        for chunk in rows.chunks(ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let values: Vec<String> = chunk.iter().map(|_| format!("({})", p.list(7))).collect();
            let sql = format!(
                "INSERT INTO reminder_occurrences (reminder_id, case_pk, due_at, occurrence, outcome, phone, recorded_at)
                 VALUES {} ON CONFLICT DO NOTHING RETURNING reminder_id, case_pk, due_at",
                values.join(", ")
            );
            let mut q = sqlx::query_as::<_, (i64, i64, i64)>(&sql);
            for o in chunk {
                q = q
                    .bind(o.reminder_id)
                    .bind(o.case_pk)
                    .bind(o.due_at)
                    .bind(o.occurrence)
                    .bind(o.outcome)
                    .bind(o.phone.clone())
                    .bind(now);
            }
            inserted.extend(q.persistent(false).fetch_all(&mut **tx).await?);
        }
        Ok(inserted)
    }

    /// A rule's occurrences handled, newest first (at most `limit`).
    pub async fn reminder_occurrences(
        &self,
        reminder_id: i64,
        limit: usize,
    ) -> StoreResult<Vec<OccurrenceRecord>> {
        Ok(sqlx::query_as::<_, (i64, String, String, i64, i64, String, i64)>(
            "SELECT o.case_pk, c.case_id, c.name, o.due_at, o.occurrence, o.outcome, o.recorded_at
             FROM reminder_occurrences o JOIN cases c ON c.id = o.case_pk
             WHERE o.reminder_id = $1 ORDER BY o.recorded_at DESC, o.due_at DESC, o.case_pk LIMIT $2",
        )
        .bind(reminder_id)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(
            |(case_pk, case_id, case_name, due_at, occurrence, outcome, recorded_at)| OccurrenceRecord {
                case_pk,
                case_id,
                case_name,
                due_at,
                occurrence,
                outcome,
                recorded_at,
            },
        )
        .collect())
    }

    /// A rule's schedule rows that are due next, soonest first (at most `limit`).
    pub async fn reminder_next_due(
        &self,
        reminder_id: i64,
        limit: usize,
    ) -> StoreResult<Vec<ScheduleRow>> {
        sqlx::query(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM reminder_schedules
             WHERE reminder_id = $1 AND next_at IS NOT NULL ORDER BY next_at, case_pk LIMIT $2"
        ))
        .bind(reminder_id)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| schedule_from_row(r).map_err(StoreError::from))
        .collect()
    }

    /// A rule's counts for its page.
    pub async fn reminder_counts(&self, reminder_id: i64) -> StoreResult<ReminderCounts> {
        let mut counts = ReminderCounts::default();
        let states: Vec<(String, Option<String>, i64)> = sqlx::query_as(
            "SELECT state, skip_reason, COUNT(*) FROM reminder_schedules WHERE reminder_id = $1
             GROUP BY state, skip_reason",
        )
        .bind(reminder_id)
        .fetch_all(self.pool())
        .await?;
        for (state, reason, n) in states {
            *counts.states.entry(state).or_default() += n;
            if let Some(reason) = reason {
                *counts.skipped.entry(reason).or_default() += n;
            }
        }
        let outcomes: Vec<(String, i64)> = sqlx::query_as(
            "SELECT outcome, COUNT(*) FROM reminder_occurrences WHERE reminder_id = $1 GROUP BY outcome",
        )
        .bind(reminder_id)
        .fetch_all(self.pool())
        .await?;
        counts.outcomes.extend(outcomes);
        Ok(counts)
    }
    /// How many messages of the project a rule has queued (whatever became of them since).
    pub async fn count_reminder_messages(
        &self,
        project_id: i64,
        reminder_id: i64,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE reminder_id = $1 AND project_id = $2",
        )
        .bind(reminder_id)
        .bind(project_id)
        .fetch_one(self.pool())
        .await?)
    }

    /// A rule whose evaluation has not finished (the oldest), as (rule, project).
    pub async fn next_unevaluated_reminder(&self) -> StoreResult<Option<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT id, project_id FROM reminders WHERE evaluated_at IS NULL ORDER BY updated_at, id LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?)
    }

    /// The rule, if its evaluation has not finished, locked for the caller's transaction
    /// (PostgreSQL: `None` when another worker holds it; SQLite writes one at a time).
    pub async fn lock_unevaluated_reminder_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: i64,
    ) -> StoreResult<Option<StoredReminder>> {
        let skip = match self.dialect() {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        sqlx::query(&format!(
            "SELECT {REMINDER_COLUMNS} FROM reminders WHERE id = $1 AND evaluated_at IS NULL{skip}"
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .as_ref()
        .map(reminder_from_row)
        .transpose()
    }

    /// Marks the messages a survey session queued so far (its start) as sent for a rule.
    pub async fn set_session_messages_reminder_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        session_id: i64,
        reminder_id: i64,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE messages SET reminder_id = $1 WHERE survey_session_id = $2")
            .bind(reminder_id)
            .bind(session_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Changes the outcome recorded for an occurrence (a message that could not go after all).
    pub async fn set_occurrence_outcome_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        reminder_id: i64,
        case_pk: i64,
        due_at: i64,
        outcome: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE reminder_occurrences SET outcome = $1 WHERE reminder_id = $2 AND case_pk = $3 AND due_at = $4",
        )
        .bind(outcome)
        .bind(reminder_id)
        .bind(case_pk)
        .bind(due_at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// A rule's cases due next with their public ids and names, soonest first (at most
    /// `limit`).
    pub async fn reminder_next_due_cases(
        &self,
        reminder_id: i64,
        limit: usize,
    ) -> StoreResult<Vec<NextDue>> {
        Ok(sqlx::query_as::<_, (String, String, i64, i64)>(
            "SELECT c.case_id, c.name, s.next_occurrence, s.next_at
             FROM reminder_schedules s JOIN cases c ON c.id = s.case_pk
             WHERE s.reminder_id = $1 AND s.next_at IS NOT NULL AND s.next_occurrence IS NOT NULL
             ORDER BY s.next_at, s.case_pk LIMIT $2",
        )
        .bind(reminder_id)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|(case_id, case_name, occurrence, at)| NextDue {
            case_id,
            case_name,
            occurrence,
            at,
        })
        .collect())
    }

    /// How far a rule's background evaluation went: (cases of its type up to the row id
    /// `through`, all cases of its type), deleted ones included as the evaluation takes them.
    pub async fn reminder_evaluation_progress(
        &self,
        project_id: i64,
        case_type: &str,
        through: Option<i64>,
    ) -> StoreResult<(i64, i64)> {
        Ok(sqlx::query_as::<_, (i64, i64)>(
            "SELECT COALESCE(SUM(CASE WHEN id <= $3 THEN 1 ELSE 0 END), 0), COUNT(*)
             FROM cases WHERE project_id = $1 AND case_type = $2",
        )
        .bind(project_id)
        .bind(case_type)
        .bind(through.unwrap_or(0))
        .fetch_one(self.pool())
        .await?)
    }
}
