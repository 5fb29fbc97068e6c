//! Surveys as written (the definition is the CONTRACT's survey body, checked by
//! `casecast_core::survey::Survey::parse` before it is stored). Sessions are in
//! `survey_sessions.rs`; what happens in them is the engine's (`casecast_engine::surveys`).

use casecast_core::survey::Survey;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::{StoreError, StoreResult};
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
            "INSERT INTO surveys (project_id, name, definition, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        )
        .bind(project_id)
        .bind(&survey.name)
        .bind(&definition)
        .bind(user_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
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
}
