//! Sheet uploads to a case group: stored with a job, processed in the background in batches
//! (by `casecast_engine::upload`), each batch one transaction with its per-row results, so that
//! a restarted worker resumes where the last one stopped and the results stay available.

use std::collections::{BTreeMap, HashSet};

use casecast_core::identifier::Outcome;
use casecast_core::sheet::{self, Limits, SheetError};
use casecast_core::states::JobStatus;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};

use crate::case_groups::{record, Actor};
use crate::case_import::ImportError;
use crate::dialect::{Placeholders, MAX_BIND_PARAMS};
use crate::error::{StoreError, StoreResult};
use crate::membership::{apply_batch, Change, Entry, ItemResult};
use crate::{Db, Dialect};

/// An upload and its progress.
#[derive(Clone, Debug, Serialize)]
pub struct Upload {
    pub id: i64,
    #[serde(skip)]
    pub project_id: i64,
    pub group_id: Option<i64>,
    pub mode: Change,
    pub file_name: String,
    pub status: JobStatus,
    pub total_rows: i64,
    pub processed_rows: i64,
    pub counts: BTreeMap<String, i64>,
    pub error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// An upload as its job reads it.
#[derive(Clone, Debug)]
pub struct UploadWork {
    pub id: i64,
    pub project_id: i64,
    /// `None` when the group was deleted before the upload was processed.
    pub group_id: Option<i64>,
    pub change: Change,
    pub file_name: String,
    pub bytes: Vec<u8>,
    /// Rows an earlier attempt already wrote.
    pub processed_rows: i64,
    pub counts: BTreeMap<String, i64>,
    pub user_id: Option<i64>,
}

/// How far an upload has come: the rows written and their outcomes.
pub type UploadProgress = crate::jobs::RowProgress;

/// One input row's result.
#[derive(Clone, Debug, Serialize)]
pub struct ResultRow {
    pub row: i64,
    pub identifier: String,
    pub outcome: Outcome,
    pub case_id: Option<String>,
    pub message: String,
    /// The matched case's name and external ID, while the case exists (for reports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

const UPLOAD_COLUMNS: &str =
    "id, project_id, group_id, mode, file_name, status, total_rows, processed_rows, counts, error, created_at, finished_at";

fn upload_from_row(r: &AnyRow) -> Result<Upload, sqlx::Error> {
    let counts: String = r.try_get("counts")?;
    Ok(Upload {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        group_id: r.try_get("group_id")?,
        mode: crate::db::stored(r, "mode")?,
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

async fn insert_results(
    tx: &mut Transaction<'static, Any>,
    engine: Dialect,
    upload_id: i64,
    rows: &[(i64, ItemResult)],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(MAX_BIND_PARAMS / 7) {
        let mut params = Placeholders::new(engine);
        let values: Vec<String> = chunk
            .iter()
            .map(|_| format!("({})", params.list(7)))
            .collect();
        let sql = format!(
            "INSERT INTO upload_results (upload_id, row_number, identifier, outcome, case_id, case_pk, message) VALUES {} ON CONFLICT DO NOTHING",
            values.join(",")
        );
        let mut q = sqlx::query(&sql);
        for (row, r) in chunk {
            q = q
                .bind(upload_id)
                .bind(*row)
                .bind(r.identifier.clone())
                .bind(r.outcome.as_str())
                .bind(r.case_id.clone())
                .bind(r.case_pk)
                .bind(r.message.clone());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Db {
    /// Stores an upload and queues its job; refuses at once what is plainly not a sheet.
    pub async fn create_upload(
        &self,
        project_id: i64,
        group_id: i64,
        change: Change,
        file_name: &str,
        bytes: Vec<u8>,
        user_id: Option<i64>,
    ) -> Result<Upload, ImportError> {
        self.plain_group(project_id, group_id).await?;
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
        // A sheet without an identifier column is refused now, with the columns it has,
        // rather than queued to fail. Only the header row is read (off the async threads: an
        // .xlsx is unzipped for it).
        let name = file_name.to_string();
        let (checked, bytes) = tokio::task::spawn_blocking(move || {
            let checked = casecast_core::identifier::check_upload_headers(&bytes, &name);
            (checked, bytes)
        })
        .await
        .map_err(|e| StoreError::internal(format!("upload check stopped: {e}")))?;
        checked?;
        let file_name: String = file_name
            .chars()
            .filter(|c| !c.is_control())
            .take(255)
            .collect();
        let file_name = file_name.as_str();
        let now = casecast_core::time::now_ms();
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO uploads (project_id, group_id, mode, file_name, file_bytes, status, user_id, created_at)
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7) RETURNING id",
        )
        .bind(project_id)
        .bind(group_id)
        .bind(change.as_str())
        .bind(file_name)
        .bind(bytes)
        .bind(user_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        Db::enqueue_job(&mut tx, crate::jobs::JobKind::Upload, id).await?;
        tx.commit().await?;
        self.wake_workers();
        Ok(self.get_upload(project_id, id).await?)
    }

    /// An upload of the project.
    pub async fn get_upload(&self, project_id: i64, upload_id: i64) -> StoreResult<Upload> {
        let row = sqlx::query(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE project_id = $1 AND id = $2"
        ))
        .bind(project_id)
        .bind(upload_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("upload"))?;
        Ok(upload_from_row(&row)?)
    }

    /// The latest uploads to a group, newest first.
    pub async fn group_uploads(
        &self,
        project_id: i64,
        group_id: i64,
        limit: usize,
    ) -> StoreResult<Vec<Upload>> {
        let rows = sqlx::query(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE project_id = $1 AND group_id = $2 ORDER BY id DESC LIMIT {limit}"
        ))
        .bind(project_id)
        .bind(group_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(upload_from_row)
            .collect::<Result<_, _>>()
            .map_err(Into::into)
    }

    /// Result rows after `after_row`, in row order.
    pub async fn upload_results(
        &self,
        project_id: i64,
        upload_id: i64,
        after_row: i64,
        limit: usize,
    ) -> StoreResult<Vec<ResultRow>> {
        self.upload_report(project_id, upload_id, after_row, limit, false)
            .await
    }

    /// Result rows after `after_row`, in row order, with the matched case's name and external
    /// ID; with `problems_only`, only rows whose outcome `Outcome::is_problem`.
    pub async fn upload_report(
        &self,
        project_id: i64,
        upload_id: i64,
        after_row: i64,
        limit: usize,
        problems_only: bool,
    ) -> StoreResult<Vec<ResultRow>> {
        self.get_upload(project_id, upload_id).await?;
        let problems = if problems_only {
            let names: Vec<String> = casecast_core::identifier::ALL_OUTCOMES
                .iter()
                .filter(|o| o.is_problem())
                .map(|o| format!("'{}'", o.as_str()))
                .collect();
            format!("AND r.outcome IN ({})", names.join(","))
        } else {
            String::new()
        };
        let rows = sqlx::query(&format!(
            "SELECT r.row_number, r.identifier, r.outcome, r.case_id, r.message,
                    c.name AS case_name, c.external_id
             FROM upload_results r LEFT JOIN cases c ON c.id = r.case_pk AND c.project_id = $3
             WHERE r.upload_id = $1 AND r.row_number > $2 {problems}
             ORDER BY r.row_number LIMIT {limit}"
        ))
        .bind(upload_id)
        .bind(after_row)
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ResultRow {
                    row: r.try_get("row_number")?,
                    identifier: r.try_get("identifier")?,
                    outcome: {
                        let text: String = r.try_get("outcome")?;
                        Outcome::parse(&text).ok_or_else(|| sqlx::Error::ColumnDecode {
                            index: "outcome".into(),
                            source: format!("{text:?} is not an outcome").into(),
                        })?
                    },
                    case_id: r.try_get("case_id")?,
                    message: r.try_get("message")?,
                    case_name: r.try_get("case_name")?,
                    external_id: r.try_get("external_id")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Marks an upload failed with a message for its user.
    pub async fn fail_upload(&self, upload_id: i64, message: &str) -> StoreResult<()> {
        sqlx::query("UPDATE uploads SET status = 'failed', error = $1, finished_at = $2, file_bytes = NULL WHERE id = $3")
            .bind(message)
            .bind(casecast_core::time::now_ms())
            .bind(upload_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks an upload failed after its job gave up.
    pub async fn give_up_upload(&self, upload_id: i64, message: &str) -> StoreResult<()> {
        self.fail_upload(upload_id, message).await
    }

    /// The upload a job is to process; `None` when it is already done or failed.
    pub async fn upload_work(&self, upload_id: i64) -> StoreResult<Option<UploadWork>> {
        let row = sqlx::query(
            "SELECT project_id, group_id, mode, file_name, file_bytes, status, processed_rows, counts, user_id FROM uploads WHERE id = $1",
        )
        .bind(upload_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("upload"))?;
        let status: JobStatus = crate::db::stored(&row, "status")?;
        if status.is_finished() {
            return Ok(None);
        }
        let change: Change = crate::db::stored(&row, "mode")?;
        Ok(Some(UploadWork {
            id: upload_id,
            project_id: row.try_get("project_id")?,
            group_id: row.try_get("group_id")?,
            change,
            file_name: row.try_get("file_name")?,
            bytes: row
                .try_get::<Option<Vec<u8>>, _>("file_bytes")?
                .unwrap_or_default(),
            processed_rows: row.try_get("processed_rows")?,
            counts: serde_json::from_str(&row.try_get::<String, _>("counts")?).unwrap_or_default(),
            user_id: row.try_get("user_id")?,
        }))
    }

    /// Marks an upload as running over `total` rows (its sheet checked whole).
    pub async fn start_upload(&self, upload_id: i64, total: i64) -> StoreResult<()> {
        sqlx::query("UPDATE uploads SET status = 'running', total_rows = $1 WHERE id = $2")
            .bind(total)
            .bind(upload_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The cases an earlier attempt of this upload already wrote a result for.
    pub async fn upload_cases_done(&self, upload_id: i64) -> StoreResult<HashSet<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT case_pk FROM upload_results WHERE upload_id = $1 AND case_pk IS NOT NULL",
        )
        .bind(upload_id)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .collect())
    }

    /// Applies one batch of an upload in one transaction with its per-row results and the
    /// progress, guarded by the progress this worker last wrote (`progress.processed`): if a
    /// worker that took the job over has moved on, nothing is written and this returns false.
    /// `seen` (cases already met) and `progress` are updated as the batch is written.
    pub async fn apply_upload_batch(
        &self,
        work: &UploadWork,
        group_id: i64,
        country: Option<&casecast_core::CountryCode>,
        batch: &[(i64, Entry)],
        seen: &mut HashSet<i64>,
        progress: &mut UploadProgress,
    ) -> StoreResult<bool> {
        let entries: Vec<Entry> = batch.iter().map(|(_, e)| e.clone()).collect();
        let mut tx = self.begin_write().await?;
        crate::case_groups::lock_group(&mut tx, self.dialect(), group_id).await?;
        let results = apply_batch(
            &mut tx,
            self.dialect(),
            work.project_id,
            group_id,
            work.change,
            country,
            &entries,
            seen,
        )
        .await?;
        let rows: Vec<(i64, ItemResult)> = batch.iter().map(|(n, _)| *n).zip(results).collect();
        insert_results(&mut tx, self.dialect(), work.id, &rows).await?;
        let outcomes = rows.iter().map(|(_, r)| r.outcome.as_str());
        let Some(next) = progress
            .advance(&mut tx, "uploads", work.id, rows.len() as i64, outcomes)
            .await?
        else {
            return Ok(false);
        };
        tx.commit().await?;
        *progress = next;
        Ok(true)
    }

    /// Marks an upload done and records it in its group's history; returns (added, removed).
    pub async fn finish_upload(
        &self,
        work: &UploadWork,
        group_id: i64,
        progress: &UploadProgress,
    ) -> StoreResult<(i64, i64)> {
        let added = progress
            .counts
            .get(Outcome::Added.as_str())
            .copied()
            .unwrap_or(0);
        let removed = (progress.counts.get(Outcome::Removed.as_str()).copied()).unwrap_or(0);
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE uploads SET status = 'done', finished_at = $1, file_bytes = NULL WHERE id = $2",
        )
        .bind(casecast_core::time::now_ms())
        .bind(work.id)
        .execute(&mut *tx)
        .await?;
        let actor = Actor {
            user_id: work.user_id,
            via: "upload",
        };
        record(
            &mut tx,
            group_id,
            actor,
            &format!("upload_{}", work.change.as_str()),
            added,
            removed,
            &work.file_name,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok((added, removed))
    }
}
