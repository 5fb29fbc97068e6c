//! Case exports' statements: their columns, their rows a page at a time, and the exports made
//! in the background, whose finished file is kept in the database in chunks so that whichever
//! process answers the download can send it. Writing files and running the background job is
//! the engine's (`casecast_engine::export`).

use casecast_core::case::Case;
use casecast_core::sheet_out::XLSX_MAX_ROWS;
use casecast_core::states::JobStatus;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::cases::CaseFilter;
use crate::error::{StoreError, StoreResult};
use crate::projects::Project;
use crate::Db;

/// The columns every export starts with; one column per property follows.
pub const FIXED_COLUMNS: [&str; 9] = [
    "case_id",
    "external_id",
    "name",
    "phone_number",
    "case_type",
    "language_code",
    "owner_id",
    "closed",
    "modified_at",
];
/// The most columns an export has: Excel's limit.
pub const MAX_COLUMNS: usize = 16_384;
/// Cases read from the database per page.
pub const PAGE: usize = 5000;
/// Bytes per stored chunk of a background export's file.
pub const CHUNK: usize = 1024 * 1024;
/// Background exports of one project queued or running at once.
const MAX_PENDING: i64 = 3;
/// Finished exports a project keeps (the oldest go first, even within the day).
const MAX_KEPT: i64 = 20;
/// How long a background export's file is kept.
pub const KEPT_MS: i64 = 24 * 3600 * 1000;

/// CSV or `.xlsx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Xlsx,
}

impl ExportFormat {
    /// The file extension, which is also the stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Xlsx => "xlsx",
        }
    }

    pub fn from_stored(s: &str) -> Self {
        if s == "xlsx" {
            ExportFormat::Xlsx
        } else {
            ExportFormat::Csv
        }
    }
}

/// The columns of one export: the fixed ones, then the properties the exported cases have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportColumns {
    pub properties: Vec<String>,
}

impl ExportColumns {
    /// Every header, in order.
    pub fn headers(&self) -> Vec<&str> {
        FIXED_COLUMNS
            .iter()
            .copied()
            .chain(self.properties.iter().map(String::as_str))
            .collect()
    }

    /// One case as a row of cells.
    pub fn row(&self, c: Case) -> Vec<String> {
        let mut row = Vec::with_capacity(FIXED_COLUMNS.len() + self.properties.len());
        let (mut props, modified_at) = push_standard_cells(&mut row, c);
        row.push(casecast_core::time::rfc3339(modified_at));
        row.extend(
            self.properties
                .iter()
                .map(|k| props.remove(k).unwrap_or_default()),
        );
        row
    }

    /// Every column is text in `.xlsx`: IDs, phone numbers and codes keep their leading zeros.
    pub fn text_columns(&self) -> Vec<usize> {
        (0..FIXED_COLUMNS.len() + self.properties.len()).collect()
    }
}

/// Pushes a case's standard fields as cells, in the order of
/// [`casecast_core::case::STANDARD_FIELDS`] (a group's member export, and the first columns of
/// a case export), and gives back the rest: its properties and when it changed.
pub fn push_standard_cells(
    row: &mut Vec<String>,
    c: Case,
) -> (std::collections::BTreeMap<String, String>, i64) {
    row.extend([
        c.case_id.as_str().to_string(),
        c.external_id.unwrap_or_default(),
        c.name,
        c.phone_number.map(String::from).unwrap_or_default(),
        c.case_type,
        c.language_code.unwrap_or_default(),
        c.owner_id.unwrap_or_default(),
        c.closed.to_string(),
    ]);
    (c.properties, c.modified_at)
}

/// The refusal of an `.xlsx` of more rows than a sheet holds.
pub fn too_many_rows(rows: usize) -> StoreError {
    casecast_core::case::FieldError::new(
        "rows",
        format!(
            "{rows} cases are more than the {XLSX_MAX_ROWS} rows an .xlsx sheet holds; \
             export them as CSV, or narrow the export with a filter"
        ),
    )
    .into()
}

/// A background export.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Export {
    pub id: i64,
    #[serde(skip)]
    pub project_id: i64,
    #[serde(skip)]
    pub user_id: Option<i64>,
    pub format: &'static str,
    pub file_name: String,
    pub status: JobStatus,
    pub total_rows: i64,
    pub processed_rows: i64,
    pub size_bytes: i64,
    pub error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// The run of the job whose chunks are the file.
    #[serde(skip)]
    pub run: i64,
}

const EXPORT_COLUMNS: &str = "id, project_id, user_id, format, file_name, status, total_rows, processed_rows, size_bytes, error, created_at, finished_at, run";

fn export_from_row(row: &AnyRow) -> Result<Export, sqlx::Error> {
    Ok(Export {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        user_id: row.try_get("user_id")?,
        format: ExportFormat::from_stored(&row.try_get::<String, _>("format")?).as_str(),
        file_name: row.try_get("file_name")?,
        status: crate::db::stored(row, "status")?,
        total_rows: row.try_get("total_rows")?,
        processed_rows: row.try_get("processed_rows")?,
        size_bytes: row.try_get("size_bytes")?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
        run: row.try_get("run")?,
    })
}

impl Db {
    /// The columns of an export of the cases that pass the filter: the fixed ones, then the
    /// union of their property names, sorted. Refused past Excel's column limit.
    pub async fn export_columns(
        &self,
        project_id: i64,
        filter: &CaseFilter,
    ) -> StoreResult<ExportColumns> {
        let f = filter.sql(self.dialect(), project_id, 0);
        let sql = format!(
            "SELECT DISTINCT c.property_keys {} AND c.property_keys <> ''",
            f.from_where
        );
        // Read as a stream, stopping past the limit: sparse properties can make many sets.
        let mut names = std::collections::BTreeSet::new();
        let query = f.bind(sqlx::query(&sql)).persistent(false);
        let mut rows = query.fetch(self.pool());
        while let Some(row) = futures_util::StreamExt::next(&mut rows).await {
            let set: String = row?.try_get(0)?;
            names.extend(set.split(',').filter(|k| !k.is_empty()).map(str::to_string));
            if FIXED_COLUMNS.len() + names.len() > MAX_COLUMNS {
                break;
            }
        }
        if FIXED_COLUMNS.len() + names.len() > MAX_COLUMNS {
            return Err(casecast_core::case::FieldError::new(
                "properties",
                format!(
                    "these cases have {} different properties, more than the {} columns a sheet can hold; \
                     narrow the export with a filter (a case type or a group)",
                    names.len(),
                    MAX_COLUMNS - FIXED_COLUMNS.len()
                ),
            )
            .into());
        }
        Ok(ExportColumns {
            properties: names.into_iter().collect(),
        })
    }

    /// One page of export rows after row id `after`, and where the next page starts.
    pub async fn export_page(
        &self,
        project_id: i64,
        filter: &CaseFilter,
        columns: &ExportColumns,
        after: i64,
    ) -> StoreResult<(Vec<Vec<String>>, Option<i64>)> {
        let (cases, next) = self.filtered_cases(project_id, filter, PAGE, after).await?;
        Ok((
            cases.into_iter().map(|(_, c)| columns.row(c)).collect(),
            next,
        ))
    }

    /// How many cases an export of the filter holds; an `.xlsx` of more rows than a sheet
    /// holds is refused here, before anything is written, with what to do instead.
    pub async fn count_for_export(
        &self,
        project_id: i64,
        filter: &CaseFilter,
        format: ExportFormat,
    ) -> StoreResult<i64> {
        let rows = self.count_filtered_cases(project_id, filter).await?;
        if format == ExportFormat::Xlsx && rows as usize > XLSX_MAX_ROWS {
            return Err(too_many_rows(rows as usize));
        }
        Ok(rows)
    }

    /// Queues an export of the cases that pass the filter, made by a worker; the project keeps
    /// its file for a day. Old exports of every project are deleted here.
    pub async fn create_export(
        &self,
        project: &Project,
        user_id: Option<i64>,
        filter: &CaseFilter,
        format: ExportFormat,
    ) -> StoreResult<Export> {
        let now = casecast_core::time::now_ms();
        self.delete_old_exports(now - KEPT_MS).await?;
        // The job reads national numbers in the project's country: so does the count.
        let filter = &CaseFilter {
            country: project.country_code(),
            time_zone: Some(project.zone()),
            ..filter.clone()
        };
        let total = self.count_for_export(project.id, filter, format).await?;
        let mut tx = self.begin_write().await?;
        // One request at a time per project counts and adds (SQLite's write transaction
        // already serialises them).
        sqlx::query(&format!(
            "SELECT id FROM projects WHERE id = $1{}",
            crate::dialect::for_update(self.dialect())
        ))
        .bind(project.id)
        .fetch_one(&mut *tx)
        .await?;
        let pending: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM exports WHERE project_id = $1 AND status IN ('queued', 'running')",
        )
        .bind(project.id)
        .fetch_one(&mut *tx)
        .await?;
        if pending >= MAX_PENDING {
            return Err(StoreError::Conflict {
                code: "too_many_exports",
                message: format!(
                    "this project already has {pending} exports being made; wait for one to finish"
                ),
            });
        }
        let stamp = jiff::Timestamp::from_millisecond(now)
            .map(|t| {
                t.to_zoned(project.zone())
                    .strftime("%Y%m%d-%H%M")
                    .to_string()
            })
            .unwrap_or_default();
        let file_name = format!("cases-{}-{stamp}.{}", project.slug, format.as_str());
        let filter_json = serde_json::to_string(filter).expect("a filter serialises");
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO exports (project_id, user_id, format, filter, file_name, status, total_rows, created_at)
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7) RETURNING id",
        )
        .bind(project.id)
        .bind(user_id)
        .bind(format.as_str())
        .bind(filter_json)
        .bind(file_name)
        .bind(total)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        Db::enqueue_job(&mut tx, crate::jobs::JobKind::Export, id).await?;
        // The project keeps its newest finished exports only.
        sqlx::query(
            "DELETE FROM exports WHERE project_id = $1 AND status IN ('done', 'failed') AND id NOT IN
               (SELECT id FROM exports WHERE project_id = $1 AND status IN ('done', 'failed')
                ORDER BY id DESC LIMIT $2)",
        )
        .bind(project.id)
        .bind(MAX_KEPT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.wake_workers();
        self.get_export(project.id, id).await
    }

    /// An export of the project.
    pub async fn get_export(&self, project_id: i64, export_id: i64) -> StoreResult<Export> {
        let row = sqlx::query(&format!(
            "SELECT {EXPORT_COLUMNS} FROM exports WHERE project_id = $1 AND id = $2"
        ))
        .bind(project_id)
        .bind(export_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("export"))?;
        Ok(export_from_row(&row)?)
    }

    /// Chunk `seq` of a finished export's file (None past the end).
    pub async fn export_chunk(&self, export_id: i64, seq: i64) -> StoreResult<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar(
                "SELECT ch.bytes FROM export_chunks ch JOIN exports e ON e.id = ch.export_id AND ch.run = e.run
                 WHERE ch.export_id = $1 AND ch.seq = $2 AND e.status = 'done'",
            )
                .bind(export_id)
                .bind(seq)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Deletes the exports (and files) asked for before `before`: each worker calls this now
    /// and then, and so does every new export.
    pub async fn delete_old_exports(&self, before: i64) -> StoreResult<()> {
        // Their chunks go with them (ON DELETE CASCADE).
        sqlx::query("DELETE FROM exports WHERE created_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A queued or running export, its filter and the number of the run this call starts
    /// (which resets its progress); `None` when it was deleted or has finished.
    pub async fn start_export_run(
        &self,
        export_id: i64,
    ) -> StoreResult<Option<(Export, CaseFilter, i64)>> {
        let row = sqlx::query(&format!(
            "SELECT {EXPORT_COLUMNS}, filter FROM exports WHERE id = $1"
        ))
        .bind(export_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None); // deleted meanwhile
        };
        let export = export_from_row(&row)?;
        let mut filter: CaseFilter = serde_json::from_str(&row.try_get::<String, _>("filter")?)
            .map_err(|e| StoreError::corrupt_json("export filter", &e))?;
        let project = self.project_by_id(export.project_id).await?;
        filter.country = project.country_code();
        filter.time_zone = Some(project.zone());
        let run: Option<i64> = sqlx::query_scalar(
            "UPDATE exports SET status = 'running', processed_rows = 0, error = NULL, run = run + 1
             WHERE id = $1 AND status IN ('queued', 'running') RETURNING run",
        )
        .bind(export_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(run.map(|run| (export, filter, run)))
    }

    /// Records the rows a run of an export has written so far.
    pub async fn export_progress(&self, export_id: i64, run: i64, written: u64) -> StoreResult<()> {
        sqlx::query("UPDATE exports SET processed_rows = $1 WHERE id = $2 AND run = $3")
            .bind(written as i64)
            .bind(export_id)
            .bind(run)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Stores chunk `seq` of a run's file, in a statement of its own (a long transaction
    /// would hold SQLite's one writer).
    pub async fn insert_export_chunk(
        &self,
        export_id: i64,
        run: i64,
        seq: i64,
        bytes: Vec<u8>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO export_chunks (export_id, run, seq, bytes) VALUES ($1, $2, $3, $4)",
        )
        .bind(export_id)
        .bind(run)
        .bind(seq)
        .bind(bytes)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Makes a run's chunks the export's file, inside the caller's transaction (which also
    /// checks that the run's job still holds its lease), and drops other runs' chunks.
    pub async fn complete_export(
        tx: &mut crate::Tx,
        export_id: i64,
        run: i64,
        rows: i64,
        size: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE exports SET status = 'done', processed_rows = $1, total_rows = $1, size_bytes = $2,
             finished_at = $3 WHERE id = $4 AND run = $5",
        )
        .bind(rows)
        .bind(size)
        .bind(casecast_core::time::now_ms())
        .bind(export_id)
        .bind(run)
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM export_chunks WHERE export_id = $1 AND run <> $2")
            .bind(export_id)
            .bind(run)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Ends an export as failed, with a message for the user.
    pub async fn fail_export(&self, export_id: i64, message: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE exports SET status = 'failed', error = $1, finished_at = $2 WHERE id = $3",
        )
        .bind(message)
        .bind(casecast_core::time::now_ms())
        .bind(export_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
