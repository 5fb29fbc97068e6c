//! Case imports from the pages: the sheet is stored with a job and processed in the background
//! (by `casecast_engine::import::process_case_import`), batch by batch, each batch one
//! transaction with its rows' results and the progress, so that a restarted worker resumes
//! after the rows already written and the per-row report stays available.

use std::collections::BTreeMap;

use casecast_core::sheet::{self, Limits, SheetError};
use casecast_core::states::JobStatus;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row as _;

use crate::case_import::{ImportError, ImportReport, ImportWriter, Parsed, RowOutcome, RowResult};
use crate::dialect::{Placeholders, MAX_BIND_PARAMS};
use crate::error::{StoreError, StoreResult};
use crate::Db;

/// A case import and its progress.
#[derive(Clone, Debug, Serialize)]
pub struct CaseImport {
    pub id: i64,
    #[serde(skip)]
    pub project_id: i64,
    pub file_name: String,
    pub status: JobStatus,
    pub total_rows: i64,
    pub processed_rows: i64,
    /// Rows by outcome: `created`, `updated`, `unchanged`, `blank`, `error`.
    pub counts: BTreeMap<String, i64>,
    pub error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// A case import as its job reads it.
#[derive(Clone, Debug)]
pub struct CaseImportWork {
    pub id: i64,
    pub project_id: i64,
    pub file_name: String,
    pub bytes: Vec<u8>,
    /// Rows an earlier attempt already wrote.
    pub processed_rows: i64,
    pub counts: BTreeMap<String, i64>,
}

/// How far an import has come: the rows written and their outcomes.
pub type ImportProgress = crate::jobs::RowProgress;

const COLUMNS: &str =
    "id, project_id, file_name, status, total_rows, processed_rows, counts, error, created_at, finished_at";

fn import_from_row(r: &AnyRow) -> Result<CaseImport, sqlx::Error> {
    let counts: String = r.try_get("counts")?;
    Ok(CaseImport {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        file_name: r.try_get("file_name")?,
        status: crate::db::stored(r, "status")?,
        total_rows: r.try_get("total_rows")?,
        processed_rows: r.try_get("processed_rows")?,
        counts: serde_json::from_str(&counts).unwrap_or_default(),
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

impl Db {
    /// Stores a sheet of cases to import and queues its job; refuses at once a file over the
    /// size limit or plainly not a sheet.
    pub async fn create_case_import(
        &self,
        project_id: i64,
        file_name: &str,
        bytes: Vec<u8>,
        user_id: Option<i64>,
    ) -> Result<CaseImport, ImportError> {
        let limits = Limits::default();
        if bytes.len() as u64 > limits.max_file_bytes {
            return Err(SheetError::TooLarge {
                file: file_name.into(),
                bytes: bytes.len() as u64,
                limit: limits.max_file_bytes,
            }
            .into());
        }
        sheet::detect_format(&bytes, file_name)?;
        let file_name: String = file_name
            .chars()
            .filter(|c| !c.is_control())
            .take(255)
            .collect();
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO case_imports (project_id, file_name, file_bytes, status, user_id, created_at)
             VALUES ($1, $2, $3, 'queued', $4, $5) RETURNING id",
        )
        .bind(project_id)
        .bind(file_name)
        .bind(bytes)
        .bind(user_id)
        .bind(casecast_core::time::now_ms())
        .fetch_one(&mut *tx)
        .await?;
        Db::enqueue_job(&mut tx, crate::jobs::JobKind::Import, id).await?;
        tx.commit().await?;
        self.wake_workers();
        Ok(self.get_case_import(project_id, id).await?)
    }

    /// A case import of the project.
    pub async fn get_case_import(&self, project_id: i64, id: i64) -> StoreResult<CaseImport> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM case_imports WHERE project_id = $1 AND id = $2"
        ))
        .bind(project_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("import"))?;
        Ok(import_from_row(&row)?)
    }

    /// The import a job is to process; `None` when it is already done or failed.
    pub async fn case_import_work(&self, id: i64) -> StoreResult<Option<CaseImportWork>> {
        let row = sqlx::query(
            "SELECT project_id, file_name, file_bytes, status, processed_rows, counts FROM case_imports WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("import"))?;
        let status: JobStatus = crate::db::stored(&row, "status")?;
        if status.is_finished() {
            return Ok(None);
        }
        Ok(Some(CaseImportWork {
            id,
            project_id: row.try_get("project_id")?,
            file_name: row.try_get("file_name")?,
            bytes: row
                .try_get::<Option<Vec<u8>>, _>("file_bytes")?
                .unwrap_or_default(),
            processed_rows: row.try_get("processed_rows")?,
            counts: serde_json::from_str(&row.try_get::<String, _>("counts")?).unwrap_or_default(),
        }))
    }

    /// Marks an import as running over `total` rows (its sheet checked whole).
    pub async fn start_case_import(&self, id: i64, total: i64) -> StoreResult<()> {
        sqlx::query("UPDATE case_imports SET status = 'running', total_rows = $1 WHERE id = $2")
            .bind(total)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks an import failed with a message for its user; the rows written so far stay, and
    /// so does their report.
    pub async fn fail_case_import(&self, id: i64, message: &str) -> StoreResult<()> {
        sqlx::query("UPDATE case_imports SET status = 'failed', error = $1, finished_at = $2, file_bytes = NULL WHERE id = $3")
            .bind(message)
            .bind(casecast_core::time::now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks an import done.
    pub async fn finish_case_import(&self, id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE case_imports SET status = 'done', finished_at = $1, file_bytes = NULL WHERE id = $2")
            .bind(casecast_core::time::now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Writes one batch of an import in one transaction with its rows' results and the
    /// progress, guarded by the progress this worker last wrote (`progress.processed`): if a
    /// worker that took the job over has moved on, nothing is written and this returns false.
    pub async fn write_case_import_batch(
        &self,
        work: &CaseImportWork,
        writer: &mut ImportWriter,
        batch: Vec<Parsed>,
        progress: &mut ImportProgress,
    ) -> StoreResult<bool> {
        let rows = batch.len() as i64;
        let mut report = ImportReport::default();
        let mut tx = self.begin_write().await?;
        writer.write_batch(&mut tx, batch, &mut report).await?;
        let results = writer.take_results();
        for chunk in results.chunks(MAX_BIND_PARAMS / 6) {
            let mut params = Placeholders::new(self.dialect());
            let values: Vec<String> = chunk
                .iter()
                .map(|_| format!("({})", params.list(6)))
                .collect();
            let sql = format!(
                "INSERT INTO case_import_results (import_id, row_number, outcome, case_id, column_name, message) VALUES {} ON CONFLICT DO NOTHING",
                values.join(",")
            );
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q
                    .bind(work.id)
                    .bind(r.row as i64)
                    .bind(r.outcome.as_str())
                    .bind(r.case_id.clone())
                    .bind(r.column.clone())
                    .bind(r.message.clone());
            }
            q.execute(&mut *tx).await?;
        }
        let outcomes = results.iter().map(|r| r.outcome.as_str());
        let Some(next) = progress
            .advance(&mut tx, "case_imports", work.id, rows, outcomes)
            .await?
        else {
            return Ok(false);
        };
        tx.commit().await?;
        *progress = next;
        Ok(true)
    }

    /// An import's row results after `after_row`, in row order.
    pub async fn case_import_results(
        &self,
        project_id: i64,
        id: i64,
        after_row: i64,
        limit: usize,
    ) -> StoreResult<Vec<RowResult>> {
        self.get_case_import(project_id, id).await?;
        let rows = sqlx::query(&format!(
            "SELECT row_number, outcome, case_id, column_name, message FROM case_import_results
             WHERE import_id = $1 AND row_number > $2 ORDER BY row_number LIMIT {limit}"
        ))
        .bind(id)
        .bind(after_row)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get("outcome")?;
                Ok(RowResult {
                    row: r.try_get::<i64, _>("row_number")? as usize,
                    outcome: RowOutcome::parse(&text).ok_or_else(|| {
                        StoreError::corrupt("import outcome", format!("{text:?} is not one"))
                    })?,
                    case_id: r.try_get("case_id")?,
                    column: r.try_get("column_name")?,
                    message: r.try_get("message")?,
                })
            })
            .collect()
    }
}
