//! Surveys as written (the definition is the CONTRACT's survey body, checked by
//! `casecast_core::survey::Survey::parse` before it is stored). Sessions are in
//! `survey_sessions.rs`; what happens in them is the engine's (`casecast_engine::surveys`).
//!
//! Rules kept here, each checked and written in one transaction with the survey's row locked:
//! - Names are unique per project ignoring case and surrounding spaces (`name_taken`), as case
//!   groups' are: a survey is chosen by name in broadcasts and keywords.
//! - Its `questions` cannot change while it has active sessions (`survey_in_use`): a running
//!   session's answers and the responses export are keyed by the questions it started with.
//!   Every other field may change; running sessions use it from their next message.
//! - It cannot be deleted while it has active sessions, or while a broadcast that is active or
//!   paused (or still fanning out) sends it (`survey_in_use`). Deleting it deletes its
//!   sessions and unlinks their messages, which stay in the message log.

use std::collections::BTreeMap;

use casecast_core::case::FieldError;
use casecast_core::survey::session::SessionStatus;
use casecast_core::survey::Survey;
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::cases::Page;
use crate::error::{is_unique_violation, StoreError, StoreResult};
use crate::Db;

/// A stored survey.
#[derive(Clone, Debug, Serialize)]
pub struct StoredSurvey {
    pub id: i64,
    #[serde(skip)]
    pub project_id: i64,
    #[serde(flatten)]
    pub survey: Survey,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A survey with its sessions counted by status (every status, zeros included).
#[derive(Clone, Debug, Serialize)]
pub struct SurveyOverview {
    #[serde(flatten)]
    pub stored: StoredSurvey,
    pub sessions: BTreeMap<String, i64>,
}

/// Why a survey could not be changed: its new body breaks rules (every problem, with its
/// field path), or storage said no (not found, `name_taken`, `survey_in_use`, a failure).
#[derive(Debug, thiserror::Error)]
pub enum SurveyEditError {
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for SurveyEditError {
    fn from(e: sqlx::Error) -> Self {
        SurveyEditError::Store(e.into())
    }
}

/// The key a survey's name must not share with another survey of the project.
fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

fn name_taken(name: &str) -> StoreError {
    StoreError::Conflict {
        code: "name_taken",
        message: format!(
            "another survey of this project is named '{}' (names ignore case)",
            name.trim()
        ),
    }
}

/// The `survey_in_use` conflict for `what` (a change of questions, a deletion) refused
/// because of `active` sessions.
fn in_use(what: &str, active: i64) -> StoreError {
    let sessions = if active == 1 {
        "1 active session".to_string()
    } else {
        format!("{active} active sessions")
    };
    StoreError::Conflict {
        code: "survey_in_use",
        message: format!(
            "{what} while the survey has {sessions}; they end by completing, expiring, or \
             being cancelled (sessions of one case end when another survey starts for it)"
        ),
    }
}

pub(crate) const SURVEY_COLUMNS: &str = "id, project_id, definition, created_at, updated_at";

pub(crate) fn survey_from_row(row: &AnyRow) -> StoreResult<StoredSurvey> {
    let text: String = row.try_get("definition")?;
    let survey: Survey =
        serde_json::from_str(&text).map_err(|e| StoreError::corrupt_json("survey", &e))?;
    Ok(StoredSurvey {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        survey,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Db {
    /// Stores a checked survey.
    pub async fn create_survey(
        &self,
        project_id: i64,
        survey: &Survey,
        user_id: Option<i64>,
    ) -> StoreResult<StoredSurvey> {
        let now = casecast_core::time::now_ms();
        let definition =
            serde_json::to_string(survey).map_err(|e| StoreError::internal(e.to_string()))?;
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO surveys (project_id, name, name_key, definition, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
        )
        .bind(project_id)
        .bind(&survey.name)
        .bind(name_key(&survey.name))
        .bind(&definition)
        .bind(user_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                name_taken(&survey.name)
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        self.survey(project_id, id).await
    }

    /// One survey of the project.
    pub async fn survey(&self, project_id: i64, id: i64) -> StoreResult<StoredSurvey> {
        let row = sqlx::query(&format!(
            "SELECT {SURVEY_COLUMNS} FROM surveys WHERE project_id = $1 AND id = $2"
        ))
        .bind(project_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("survey"))?;
        survey_from_row(&row)
    }

    /// One survey of the project, read inside the caller's transaction (a workflow that holds
    /// a transaction must not wait for a second connection of the pool).
    pub async fn survey_tx(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        project_id: i64,
        id: i64,
    ) -> StoreResult<StoredSurvey> {
        let row = sqlx::query(&format!(
            "SELECT {SURVEY_COLUMNS} FROM surveys WHERE project_id = $1 AND id = $2"
        ))
        .bind(project_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("survey"))?;
        survey_from_row(&row)
    }

    /// The project's surveys, newest first.
    pub async fn list_surveys(&self, project_id: i64) -> StoreResult<Vec<StoredSurvey>> {
        let rows = sqlx::query(&format!(
            "SELECT {SURVEY_COLUMNS} FROM surveys WHERE project_id = $1 ORDER BY id DESC"
        ))
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(survey_from_row).collect()
    }

    /// The survey's row, locked for a change until the transaction ends.
    async fn survey_for_update(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        id: i64,
    ) -> StoreResult<StoredSurvey> {
        let row = sqlx::query(&format!(
            "SELECT {SURVEY_COLUMNS} FROM surveys WHERE project_id = $1 AND id = $2{}",
            crate::dialect::for_update(self.dialect())
        ))
        .bind(project_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("survey"))?;
        survey_from_row(&row)
    }

    /// Changes a survey: `edit` gets the stored survey and returns the new one (checked), or
    /// every problem with the change. Refused with `survey_in_use` when the questions change
    /// while sessions are active, `name_taken` when the new name is another survey's.
    pub async fn update_survey<F>(
        &self,
        project_id: i64,
        id: i64,
        edit: F,
    ) -> Result<StoredSurvey, SurveyEditError>
    where
        F: FnOnce(&Survey) -> Result<Survey, Vec<FieldError>>,
    {
        let mut tx = self.begin_write().await?;
        let old = self.survey_for_update(&mut tx, project_id, id).await?;
        let new = edit(&old.survey).map_err(SurveyEditError::Invalid)?;
        if new.questions != old.survey.questions {
            let active = active_sessions(&mut tx, id).await?;
            if active > 0 {
                return Err(in_use("its questions cannot change", active).into());
            }
        }
        let definition =
            serde_json::to_string(&new).map_err(|e| StoreError::internal(e.to_string()))?;
        sqlx::query(
            "UPDATE surveys SET name = $1, name_key = $2, definition = $3, updated_at = $4
             WHERE project_id = $5 AND id = $6",
        )
        .bind(&new.name)
        .bind(name_key(&new.name))
        .bind(&definition)
        .bind(casecast_core::time::now_ms().max(old.updated_at))
        .bind(project_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                name_taken(&new.name)
            } else {
                StoreError::from(e)
            }
        })?;
        tx.commit().await?;
        Ok(self.survey(project_id, id).await?)
    }

    /// Deletes a survey with its sessions; their messages stay, unlinked. Refused with
    /// `survey_in_use` while it has active sessions or a live broadcast sends it.
    pub async fn delete_survey(&self, project_id: i64, id: i64) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        self.survey_for_update(&mut tx, project_id, id).await?;
        let active = active_sessions(&mut tx, id).await?;
        if active > 0 {
            return Err(in_use("it cannot be deleted", active));
        }
        if let Some((broadcast_id, name)) = broadcast_sending(&mut tx, project_id, id).await? {
            return Err(StoreError::Conflict {
                code: "survey_in_use",
                message: format!(
                    "it cannot be deleted while broadcast '{name}' (id {broadcast_id}) sends it \
                     (it is scheduled, sending or paused): cancel the broadcast first"
                ),
            });
        }
        sqlx::query(
            "UPDATE messages SET survey_session_id = NULL, survey_step = NULL
             WHERE survey_session_id IN (SELECT id FROM survey_sessions WHERE survey_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM survey_sessions WHERE survey_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM surveys WHERE project_id = $1 AND id = $2")
            .bind(project_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A page of the project's surveys, newest first, each with its sessions by status.
    pub async fn survey_overviews(
        &self,
        project_id: i64,
        limit: usize,
        cursor: Option<i64>,
    ) -> StoreResult<Page<SurveyOverview>> {
        let rows = sqlx::query(&format!(
            "SELECT {SURVEY_COLUMNS} FROM surveys WHERE project_id = $1 AND id < $2
             ORDER BY id DESC LIMIT {}",
            limit + 1
        ))
        .bind(project_id)
        .bind(cursor.unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        let surveys: Vec<StoredSurvey> = rows
            .iter()
            .take(limit)
            .map(survey_from_row)
            .collect::<StoreResult<_>>()?;
        let next_cursor = (rows.len() > limit)
            .then(|| surveys.last().map(|s| s.id.to_string()))
            .flatten();
        let mut counts: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
        if let (Some(newest), Some(oldest)) = (surveys.first(), surveys.last()) {
            let rows = sqlx::query(
                "SELECT survey_id, status, COUNT(*) AS n FROM survey_sessions
                 WHERE project_id = $1 AND survey_id BETWEEN $2 AND $3
                 GROUP BY survey_id, status",
            )
            .bind(project_id)
            .bind(oldest.id)
            .bind(newest.id)
            .fetch_all(self.pool())
            .await?;
            for row in &rows {
                counts
                    .entry(row.try_get("survey_id")?)
                    .or_default()
                    .insert(row.try_get("status")?, row.try_get("n")?);
            }
        }
        let items = surveys
            .into_iter()
            .map(|stored| {
                let found = counts.remove(&stored.id).unwrap_or_default();
                SurveyOverview {
                    sessions: all_statuses(found),
                    stored,
                }
            })
            .collect();
        Ok(Page { items, next_cursor })
    }

    /// One survey of the project with its sessions by status.
    pub async fn survey_overview(&self, project_id: i64, id: i64) -> StoreResult<SurveyOverview> {
        let stored = self.survey(project_id, id).await?;
        let sessions = self.session_counts(id).await?;
        Ok(SurveyOverview { stored, sessions })
    }
}

/// Counts by status with every status present.
fn all_statuses(found: BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    let mut counts: BTreeMap<String, i64> = SessionStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    counts.extend(found);
    counts
}

/// How many active sessions the survey has.
async fn active_sessions(tx: &mut Transaction<'static, Any>, survey_id: i64) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM survey_sessions WHERE survey_id = $1 AND status = 'active'",
    )
    .bind(survey_id)
    .fetch_one(&mut **tx)
    .await?)
}

/// A broadcast of the project that sends the survey and is not done with it: active or paused
/// (occurrences to come), or with an occurrence still fanning out. Its content is JSON text
/// (`{"survey": id}`, the id as a number or as text), read here rather than matched in SQL.
async fn broadcast_sending(
    tx: &mut Transaction<'static, Any>,
    project_id: i64,
    survey_id: i64,
) -> StoreResult<Option<(i64, String)>> {
    let rows = sqlx::query(
        "SELECT b.id, b.name, b.content FROM broadcasts b
         WHERE b.project_id = $1 AND b.content LIKE '%\"survey\"%'
           AND (b.state IN ('active', 'paused') OR EXISTS (SELECT 1 FROM broadcast_occurrences o
                WHERE o.broadcast_id = b.id AND o.status = 'fanning_out'))
         ORDER BY b.id",
    )
    .bind(project_id)
    .fetch_all(&mut **tx)
    .await?;
    for row in &rows {
        let content: String = row.try_get("content")?;
        let sends = serde_json::from_str::<Value>(&content)
            .ok()
            .and_then(|v| v.get("survey").cloned())
            .is_some_and(|v| match v {
                Value::Number(n) => n.as_i64() == Some(survey_id),
                Value::String(s) => s.trim().parse::<i64>().ok() == Some(survey_id),
                _ => false,
            });
        if sends {
            return Ok(Some((row.try_get("id")?, row.try_get("name")?)));
        }
    }
    Ok(None)
}
