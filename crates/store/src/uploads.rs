//! Sheet uploads to a case group: stored with a job, processed in the background in batches,
//! each batch one transaction with its per-row results, so that a restarted worker resumes
//! where the last one stopped and the results stay available.

use std::collections::{BTreeMap, HashSet};

use casecast_core::identifier::{IdentifierKind, Outcome};
use casecast_core::sheet::{self, Headers, Limits, Row, RowSink, SheetError};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _, Transaction};
use tokio::sync::mpsc;

use crate::case_groups::{record, Actor};
use crate::case_import::ImportError;
use crate::dialect::{Placeholders, MAX_BIND_PARAMS};
use crate::error::{StoreError, StoreResult};
use crate::membership::{apply_batch, Change, Entry, ItemResult};
use crate::{Db, Dialect};

/// Rows resolved and written per transaction.
const BATCH: usize = 2000;
/// Identifier columns, typed ones first: a row uses the first that is not blank.
const COLUMNS: [IdentifierKind; 4] = [
    IdentifierKind::CaseId,
    IdentifierKind::ExternalId,
    IdentifierKind::PhoneNumber,
    IdentifierKind::Any,
];

/// An upload and its progress.
#[derive(Clone, Debug, Serialize)]
pub struct Upload {
    pub id: i64,
    #[serde(skip)]
    pub project_id: i64,
    pub group_id: Option<i64>,
    pub mode: String,
    pub file_name: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    pub total_rows: i64,
    pub processed_rows: i64,
    pub counts: BTreeMap<String, i64>,
    pub error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// One input row's result.
#[derive(Clone, Debug, Serialize)]
pub struct ResultRow {
    pub row: i64,
    pub identifier: String,
    pub outcome: String,
    pub case_id: Option<String>,
    pub message: String,
}

const UPLOAD_COLUMNS: &str =
    "id, project_id, group_id, mode, file_name, status, total_rows, processed_rows, counts, error, created_at, finished_at";

fn upload_from_row(r: &AnyRow) -> Result<Upload, sqlx::Error> {
    let counts: String = r.try_get("counts")?;
    Ok(Upload {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        group_id: r.try_get("group_id")?,
        mode: r.try_get("mode")?,
        file_name: r.try_get("file_name")?,
        status: r.try_get("status")?,
        total_rows: r.try_get("total_rows")?,
        processed_rows: r.try_get("processed_rows")?,
        counts: serde_json::from_str(&counts).unwrap_or_default(),
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

/// Finds the identifier columns; the message lists the headers found when there is none.
fn identifier_columns(headers: &Headers) -> Result<Vec<(usize, IdentifierKind)>, SheetError> {
    let cols: Vec<(usize, IdentifierKind)> = COLUMNS
        .iter()
        .filter_map(|k| headers.find(k.column()).map(|i| (i, *k)))
        .collect();
    if cols.is_empty() {
        let found = if headers.0.iter().all(|h| h.trim().is_empty()) {
            "no names".to_string()
        } else {
            headers.list()
        };
        return Err(SheetError::Sink(format!(
            "the sheet has no case_identifier column (nor case_id, external_id or phone_number); its header row has {found}"
        )));
    }
    Ok(cols)
}

fn entry_of(row: &Row, cols: &[(usize, IdentifierKind)]) -> Entry {
    cols.iter()
        .find(|(i, _)| !row.get(*i).trim().is_empty())
        .map(|(i, kind)| Entry {
            raw: row.get(*i).to_string(),
            kind: *kind,
        })
        .unwrap_or(Entry {
            raw: String::new(),
            kind: IdentifierKind::Any,
        })
}

/// Checks the whole sheet before anything changes; counts its rows.
/// Sheets up to this many rows are kept in memory after the check (a few MB), so they are not
/// parsed twice; longer ones are read again, to keep memory flat.
const KEEP_ROWS: usize = 200_000;

struct Counter {
    rows: usize,
    cols: Vec<(usize, IdentifierKind)>,
    /// The rows' entries while there are at most `KEEP_ROWS`.
    kept: Option<Vec<(i64, Entry)>>,
}

impl RowSink for Counter {
    fn headers(&mut self, headers: &Headers) -> Result<(), SheetError> {
        self.cols = identifier_columns(headers)?;
        Ok(())
    }
    fn row(&mut self, row: Row) -> Result<(), SheetError> {
        self.rows += 1;
        if self.rows > KEEP_ROWS {
            self.kept = None;
        } else if let Some(kept) = &mut self.kept {
            kept.push((row.number as i64, entry_of(&row, &self.cols)));
        }
        Ok(())
    }
}

/// Hands rows (after `skip`) in batches to the writer.
struct Feeder {
    cols: Vec<(usize, IdentifierKind)>,
    skip: usize,
    seen: usize,
    batch: Vec<(i64, Entry)>,
    tx: mpsc::Sender<Vec<(i64, Entry)>>,
}

impl Feeder {
    fn flush(&mut self) -> Result<(), SheetError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.tx
            .blocking_send(batch)
            .map_err(|_| SheetError::Sink("the upload was stopped".into()))
    }
}

impl RowSink for Feeder {
    fn headers(&mut self, headers: &Headers) -> Result<(), SheetError> {
        self.cols = identifier_columns(headers)?;
        Ok(())
    }
    fn row(&mut self, row: Row) -> Result<(), SheetError> {
        self.seen += 1;
        if self.seen <= self.skip {
            return Ok(());
        }
        let entry = entry_of(&row, &self.cols);
        self.batch.push((row.number as i64, entry));
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }
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
        self.get_group(project_id, group_id).await?;
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
        Db::enqueue_job(&mut tx, "upload", id).await?;
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
        self.get_upload(project_id, upload_id).await?;
        let rows = sqlx::query(&format!(
            "SELECT row_number, identifier, outcome, case_id, message FROM upload_results
             WHERE upload_id = $1 AND row_number > $2 ORDER BY row_number LIMIT {limit}"
        ))
        .bind(upload_id)
        .bind(after_row)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ResultRow {
                    row: r.try_get("row_number")?,
                    identifier: r.try_get("identifier")?,
                    outcome: r.try_get("outcome")?,
                    case_id: r.try_get("case_id")?,
                    message: r.try_get("message")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn fail_upload(&self, upload_id: i64, message: &str) -> StoreResult<()> {
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

    /// The job body: checks the sheet, then resolves and applies it batch by batch, resuming
    /// after the rows a previous attempt already wrote.
    pub async fn process_upload(
        &self,
        upload_id: i64,
        job_id: i64,
        worker: &str,
    ) -> StoreResult<()> {
        let row = sqlx::query(
            "SELECT project_id, group_id, mode, file_name, file_bytes, status, processed_rows, counts, user_id FROM uploads WHERE id = $1",
        )
        .bind(upload_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("upload"))?;
        let status: String = row.try_get("status")?;
        if status == "done" || status == "failed" {
            return Ok(());
        }
        let project_id: i64 = row.try_get("project_id")?;
        let Some(group_id) = row.try_get::<Option<i64>, _>("group_id")? else {
            return self
                .fail_upload(
                    upload_id,
                    "the case group was deleted before the upload was processed",
                )
                .await;
        };
        let change = if row.try_get::<String, _>("mode")? == "remove" {
            Change::Remove
        } else {
            Change::Add
        };
        let file_name: String = row.try_get("file_name")?;
        let bytes: Vec<u8> = row
            .try_get::<Option<Vec<u8>>, _>("file_bytes")?
            .unwrap_or_default();
        let done_rows: i64 = row.try_get("processed_rows")?;
        let mut counts: BTreeMap<String, i64> =
            serde_json::from_str(&row.try_get::<String, _>("counts")?).unwrap_or_default();
        let actor = Actor {
            user_id: row.try_get("user_id")?,
            via: "upload",
        };
        let country = self.project_by_id(project_id).await?.country_code();
        let bytes = std::sync::Arc::new(bytes);

        // The lease is renewed every 10 s while this runs, whatever it is doing (a long check
        // pass included), so that no other worker takes a live job over.
        let _heartbeat = crate::jobs::Heartbeat::start(self.clone(), job_id, worker);

        // Pass 1: the whole sheet is checked before anything changes.
        let (check_bytes, check_name) = (bytes.clone(), file_name.clone());
        let checked = tokio::task::spawn_blocking(move || {
            let mut counter = Counter {
                rows: 0,
                cols: Vec::new(),
                kept: Some(Vec::new()),
            };
            sheet::read_sheet(&check_bytes, &check_name, &Limits::default(), &mut counter)
                .map(|_| (counter.rows, counter.kept))
        })
        .await
        .map_err(|e| StoreError::Internal(format!("upload check stopped: {e}")))?;
        let (total, kept) = match checked {
            Ok(n) => n,
            Err(e) => return self.fail_upload(upload_id, &e.to_string()).await,
        };
        sqlx::query("UPDATE uploads SET status = 'running', total_rows = $1 WHERE id = $2")
            .bind(total as i64)
            .bind(upload_id)
            .execute(self.pool())
            .await?;

        // Pass 2: batches, each one transaction with its results and the progress.
        let mut seen: HashSet<i64> = sqlx::query_scalar(
            "SELECT case_pk FROM upload_results WHERE upload_id = $1 AND case_pk IS NOT NULL",
        )
        .bind(upload_id)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .collect();
        let (tx, mut rx) = mpsc::channel::<Vec<(i64, Entry)>>(4);
        let name = file_name.clone();
        let feeder = tokio::task::spawn_blocking(move || {
            if let Some(kept) = kept {
                let rest = &kept[(done_rows as usize).min(kept.len())..];
                for batch in rest.chunks(BATCH) {
                    tx.blocking_send(batch.to_vec())
                        .map_err(|_| SheetError::Sink("the upload was stopped".into()))?;
                }
                return Ok(());
            }
            let mut feeder = Feeder {
                cols: Vec::new(),
                skip: done_rows as usize,
                seen: 0,
                batch: Vec::with_capacity(BATCH),
                tx,
            };
            sheet::read_sheet(&bytes, &name, &Limits::default(), &mut feeder)?;
            feeder.flush()
        });
        let mut processed = done_rows;
        let mut outcome = Ok(());
        while let Some(batch) = rx.recv().await {
            let entries: Vec<Entry> = batch.iter().map(|(_, e)| e.clone()).collect();
            let step = async {
                let mut db_tx = self.begin_write().await?;
                crate::case_groups::lock_group(&mut db_tx, self.dialect(), group_id).await?;
                let results = apply_batch(
                    &mut db_tx,
                    self.dialect(),
                    project_id,
                    group_id,
                    change,
                    country.as_ref(),
                    &entries,
                    &mut seen,
                )
                .await?;
                for r in &results {
                    *counts.entry(r.outcome.as_str().to_string()).or_insert(0) += 1;
                }
                let rows: Vec<(i64, ItemResult)> =
                    batch.iter().map(|(n, _)| *n).zip(results).collect();
                insert_results(&mut db_tx, self.dialect(), upload_id, &rows).await?;
                let before = processed;
                processed += rows.len() as i64;
                // Guarded by the progress this worker last wrote: if a worker that took the job
                // over has moved on, this batch is dropped rather than counted twice.
                let moved = sqlx::query(
                    "UPDATE uploads SET processed_rows = $1, counts = $2 WHERE id = $3 AND processed_rows = $4",
                )
                .bind(processed)
                .bind(serde_json::to_string(&counts).unwrap_or_default())
                .bind(upload_id)
                .bind(before)
                .execute(&mut *db_tx)
                .await?;
                if moved.rows_affected() == 0 {
                    return Ok::<bool, sqlx::Error>(false);
                }
                db_tx.commit().await?;
                Ok(true)
            };
            let kept = match step.await {
                Ok(kept) => kept,
                Err(e) => {
                    outcome = Err(StoreError::from(e));
                    break;
                }
            };
            if !kept || !self.renew_job(job_id, worker).await? {
                outcome = Err(StoreError::Conflict {
                    code: "lease_lost",
                    message: "another worker took the upload over".into(),
                });
                break;
            }
        }
        drop(rx);
        let fed = feeder
            .await
            .map_err(|e| StoreError::Internal(format!("upload reader stopped: {e}")))?;
        outcome?;
        if let Err(e) = fed {
            return self.fail_upload(upload_id, &e.to_string()).await;
        }
        let added = counts.get(Outcome::Added.as_str()).copied().unwrap_or(0);
        let removed = counts.get(Outcome::Removed.as_str()).copied().unwrap_or(0);
        let mut db_tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE uploads SET status = 'done', finished_at = $1, file_bytes = NULL WHERE id = $2",
        )
        .bind(casecast_core::time::now_ms())
        .bind(upload_id)
        .execute(&mut *db_tx)
        .await?;
        record(
            &mut db_tx,
            group_id,
            actor,
            &format!("upload_{}", change.as_str()),
            added,
            removed,
            &file_name,
        )
        .await?;
        db_tx.commit().await?;
        tracing::info!(
            upload.id = upload_id,
            group.id = group_id,
            rows = processed,
            added,
            removed,
            "upload processed"
        );
        self.refresh_statistics("case_group_members", (added + removed) as usize)
            .await;
        Ok(())
    }
}
