//! Writing case exports: files written a page at a time while the database reads the next
//! page, for downloads, the CLI and the background `export` job, which stores its finished file
//! in the database in chunks (`Db::insert_export_chunk`) so that whichever process answers the
//! download can send it.

use std::io::{BufWriter, Write};
use std::path::Path;

use casecast_core::sheet_out::{self, XlsxWriter, XLSX_MAX_ROWS};
use casecast_store::case_export::{too_many_rows, ExportColumns, ExportFormat, CHUNK};
use casecast_store::cases::CaseFilter;
use casecast_store::{Db, StoreError, StoreResult};

use crate::worker::Heartbeat;
use crate::JobError;

/// Writes an export file a page at a time: CSV as it goes, `.xlsx` into a temporary file that
/// becomes the workbook at the end.
pub enum ExportWriter {
    Csv(BufWriter<std::fs::File>),
    Xlsx(Box<XlsxWriter>),
}

/// A failure of the sheet writer (never shown; logged).
fn file_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::internal(format!("writing an export: {e}"))
}

impl ExportWriter {
    /// Starts a file at `path` (CSV) or a workbook to be saved there (`.xlsx`).
    pub fn new(format: ExportFormat, columns: &ExportColumns, path: &Path) -> StoreResult<Self> {
        Self::sheet(
            format,
            &columns.headers(),
            &columns.text_columns(),
            &[],
            "cases",
            path,
        )
    }

    /// Starts a file of any table: its headers, the columns that are text and those that are
    /// numbers in `.xlsx`, and the sheet's name.
    pub fn sheet(
        format: ExportFormat,
        headers: &[&str],
        text_columns: &[usize],
        number_columns: &[usize],
        sheet_name: &str,
        path: &Path,
    ) -> StoreResult<Self> {
        match format {
            ExportFormat::Csv => {
                let mut out = BufWriter::new(std::fs::File::create(path).map_err(StoreError::Io)?);
                out.write_all(&sheet_out::csv_start(headers))
                    .map_err(StoreError::Io)?;
                Ok(ExportWriter::Csv(out))
            }
            ExportFormat::Xlsx => Ok(ExportWriter::Xlsx(Box::new(
                XlsxWriter::new(headers, text_columns, sheet_name)
                    .map_err(file_error)?
                    .with_number_columns(number_columns),
            ))),
        }
    }

    /// Adds rows.
    pub fn append(&mut self, rows: &[Vec<String>]) -> StoreResult<()> {
        match self {
            ExportWriter::Csv(out) => out
                .write_all(&sheet_out::csv_rows(rows))
                .map_err(StoreError::Io),
            ExportWriter::Xlsx(w) => {
                let before = w.rows_written();
                w.append(rows).map_err(|e| {
                    if before + rows.len() > XLSX_MAX_ROWS {
                        // Cases added since the rows were counted.
                        too_many_rows(before + rows.len())
                    } else {
                        file_error(e)
                    }
                })
            }
        }
    }

    /// Adds rows on a blocking thread (writing a page is CPU and file work), and gives the
    /// writer back.
    pub async fn append_off_thread(self, rows: Vec<Vec<String>>) -> StoreResult<Self> {
        tokio::task::spawn_blocking(move || {
            let mut w = self;
            w.append(&rows).map(|()| w)
        })
        .await
        .map_err(file_error)?
    }

    /// Finishes the file at `path` (the workbook is zipped off the async threads).
    pub async fn finish(self, path: &Path) -> StoreResult<()> {
        match self {
            ExportWriter::Csv(mut out) => out.flush().map_err(StoreError::Io),
            ExportWriter::Xlsx(w) => {
                let path = path.to_path_buf();
                tokio::task::spawn_blocking(move || w.finish_to(&path))
                    .await
                    .map_err(file_error)?
                    .map_err(file_error)
            }
        }
    }
}

/// Pages of rows as [`read_ahead`] delivers them.
pub type Pages = tokio::sync::mpsc::Receiver<StoreResult<Vec<Vec<String>>>>;

/// Reads pages from cursor `start` on (`page` gives a page's rows and the next cursor) in a
/// task of its own, one page ahead of the receiver: the database reads the next page while the
/// caller writes this one. A failure is the last item; dropping the receiver stops the reading.
pub fn read_ahead<F, Fut>(start: Option<i64>, page: F) -> Pages
where
    F: Fn(i64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = StoreResult<(Vec<Vec<String>>, Option<i64>)>> + Send,
{
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut cursor = start;
        while let Some(after) = cursor {
            let result = page(after).await;
            cursor = result.as_ref().ok().and_then(|(_, next)| *next);
            if tx.send(result.map(|(rows, _)| rows)).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// Every page of export rows of the cases that pass the filter, read one page ahead while the
/// caller writes the previous one.
pub fn export_pages(
    db: &Db,
    project_id: i64,
    filter: &CaseFilter,
    columns: &ExportColumns,
) -> Pages {
    let (db, filter, columns) = (db.clone(), filter.clone(), columns.clone());
    read_ahead(Some(0), move |after| {
        let (db, filter, columns) = (db.clone(), filter.clone(), columns.clone());
        async move { db.export_page(project_id, &filter, &columns, after).await }
    })
}

/// Writes every case that passes the filter to `path`; `progress` hears the rows written
/// after each page. Returns the number of rows. Callers that want an `.xlsx` refused before
/// any work count first (`Db::count_for_export`); cases added meanwhile past a sheet's rows
/// are refused when they come.
pub async fn write_case_export<F, Fut>(
    db: &Db,
    project_id: i64,
    filter: &CaseFilter,
    format: ExportFormat,
    path: &Path,
    mut progress: F,
) -> StoreResult<u64>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = StoreResult<()>>,
{
    let columns = db.export_columns(project_id, filter).await?;
    let mut writer = ExportWriter::new(format, &columns, path)?;
    let mut pages = export_pages(db, project_id, filter, &columns);
    let mut written = 0u64;
    while let Some(rows) = pages.recv().await {
        let rows = rows?;
        written += rows.len() as u64;
        writer = writer.append_off_thread(rows).await?;
        progress(written).await?;
    }
    writer.finish(path).await?;
    Ok(written)
}

/// Makes a queued export's file (the worker's `export` job): rows to a temporary file with the
/// progress recorded after each page, then the file into the database in chunks. Each run
/// writes its chunks under its own number, and only a run that still holds the job's lease at
/// the end makes them the file.
pub async fn process_export(
    db: &Db,
    export_id: i64,
    job_id: i64,
    worker: &str,
) -> Result<(), JobError> {
    let _heartbeat = Heartbeat::start(db.clone(), job_id, worker);
    let Some((export, filter, run)) = db.start_export_run(export_id).await? else {
        return Ok(()); // deleted or finished meanwhile
    };
    let format = ExportFormat::from_stored(export.format);
    let dir = tempfile::tempdir().map_err(StoreError::Io)?;
    let path = dir.path().join(format!("export.{}", format.as_str()));
    let progress = |written: u64| async move { db.export_progress(export_id, run, written).await };
    let written =
        match write_case_export(db, export.project_id, &filter, format, &path, progress).await {
            Ok(n) => n as i64,
            // Too many columns, or rows added past a sheet's: the user's to narrow.
            Err(StoreError::Invalid(e)) => {
                db.fail_export(export_id, &e.message).await?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
    let mut file = tokio::fs::File::open(&path).await.map_err(StoreError::Io)?;
    let (mut seq, mut size) = (0i64, 0i64);
    loop {
        let chunk = read_chunk(&mut file).await?;
        if chunk.is_empty() {
            break;
        }
        size += chunk.len() as i64;
        db.insert_export_chunk(export_id, run, seq, chunk).await?;
        seq += 1;
    }
    let mut tx = db.begin_write().await.map_err(StoreError::from)?;
    if !Db::still_holds(&mut tx, job_id, worker)
        .await
        .map_err(StoreError::from)?
    {
        return Err(JobError::LeaseLost("another worker took the export over"));
    }
    Db::complete_export(&mut tx, export_id, run, written, size).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// Up to [`CHUNK`] bytes of a file (fewer only at its end; none past it).
async fn read_chunk(file: &mut tokio::fs::File) -> StoreResult<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; CHUNK];
    let mut filled = 0;
    while filled < CHUNK {
        let n = file
            .read(&mut buf[filled..])
            .await
            .map_err(StoreError::Io)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}
