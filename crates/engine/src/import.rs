//! Importing cases from a sheet, in two passes. The first reads the whole sheet and checks it
//! (its header, the row limit, that it can be read at all) before anything is written: a
//! file-level error writes nothing. The second parses it again on a blocking thread and hands
//! the rows over in batches through a bounded channel, so memory stays flat however long the
//! sheet is; each batch is written in a transaction of its own (`ImportWriter`), paced so that
//! other writers get in between (`crate::pace`). Rows with errors are skipped and reported, as
//! they always were.
//!
//! A failure half-way (the database, a crash) leaves the batches already committed written:
//! the synchronous import says how many rows that was (`ImportStopped`); the page's background
//! import (`process_case_import`) keeps its progress and per-row results with each batch and
//! resumes after them when its job is retried. Importing the same sheet again is always safe:
//! every row names its case (by `case_id` or `external_id`), so rows already written come out
//! unchanged.

use std::path::PathBuf;
use std::sync::Arc;

use casecast_core::case_sheet::ImportColumns;
use casecast_core::sheet::{self, Headers, Limits, Row, RowSink, SheetError};
use casecast_core::CountryCode;
use casecast_store::case_import::{ImportError, ImportReport, ImportWriter, Parsed};
use casecast_store::import_jobs::ImportProgress;
use casecast_store::{Db, StoreError};
use tokio::sync::mpsc;

use crate::pace::Pacer;
use crate::worker::Heartbeat;
use crate::JobError;

/// Rows handed from the parser to the writer, and written in one transaction, at a time.
const BATCH: usize = 2000;

/// The limits of a file imported from disk (`casecast cases import`): a CSV is streamed, so
/// its size does not matter and only its rows are capped; an `.xlsx` is read into memory, at
/// most 500 MB (Excel itself holds at most 1,048,575 data rows), unpacking to at most 500 MB as
/// over HTTP.
pub const FILE_LIMITS: Limits = Limits {
    max_file_bytes: 500 * 1024 * 1024,
    max_rows: 100_000_000,
    max_xlsx_uncompressed_bytes: 500 * 1024 * 1024,
    // As over HTTP (`Limits::default`): the shared strings are held whole.
    max_shared_strings: 3_000_000,
    max_shared_strings_bytes: 150 * 1024 * 1024,
};

/// Where a sheet is read from.
#[derive(Clone, Debug)]
pub enum Source {
    /// An upload, in memory (the API's and the pages' 50 MB at most).
    Bytes(Arc<Vec<u8>>),
    /// A file, streamed (the CLI's, of any size: see `sheet::read_sheet_file`).
    File(PathBuf),
}

impl Source {
    fn read(
        &self,
        name: &str,
        limits: &Limits,
        sink: &mut impl RowSink,
    ) -> Result<usize, SheetError> {
        match self {
            Source::Bytes(bytes) => sheet::read_sheet(bytes, name, limits, sink),
            Source::File(path) => sheet::read_sheet_file(path, name, limits, sink),
        }
    }
}

/// Pass 1: reads the whole sheet, checking its header, and counts its data rows.
async fn check(
    source: &Source,
    name: &str,
    limits: Limits,
) -> Result<Result<usize, SheetError>, StoreError> {
    let (source, name) = (source.clone(), name.to_string());
    tokio::task::spawn_blocking(move || {
        let mut checker = Checker;
        source.read(&name, &limits, &mut checker)
    })
    .await
    .map_err(|e| StoreError::internal(format!("import check stopped: {e}")))
}

/// Pass 2: parses the sheet on a blocking thread into batches, after the first `skip` rows
/// (which an earlier attempt wrote: they go to the writer to remember, not to write).
fn feed(
    source: &Source,
    name: &str,
    limits: Limits,
    country: Option<CountryCode>,
    skip: usize,
) -> (
    mpsc::Receiver<Feed>,
    tokio::task::JoinHandle<Result<(), SheetError>>,
) {
    let (tx, rx) = mpsc::channel::<Feed>(4);
    let (source, name) = (source.clone(), name.to_string());
    let parser = tokio::task::spawn_blocking(move || {
        let mut sink = ChannelSink {
            columns: None,
            country,
            skip,
            seen: 0,
            skipped: Vec::new(),
            batch: Vec::with_capacity(BATCH),
            tx,
        };
        source.read(&name, &limits, &mut sink)?;
        sink.flush()
    });
    (rx, parser)
}

/// Why an import stopped after writing part of the sheet.
#[derive(Debug, thiserror::Error)]
#[error("the import stopped after {} rows were written: {cause}", .written.rows)]
pub struct ImportStopped {
    /// What the batches committed before the failure did.
    pub written: ImportReport,
    pub cause: ImportError,
}

/// Imports an uploaded `.xlsx` or `.csv` of cases into a project (see [`import_source`]); a
/// failure after the first batch is logged with the rows written, and is its cause.
pub async fn import_cases(
    db: &Db,
    project_id: i64,
    country: Option<CountryCode>,
    bytes: Vec<u8>,
    file_name: &str,
    limits: Limits,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<ImportReport, ImportError> {
    let source = Source::Bytes(Arc::new(bytes));
    import_source(db, project_id, country, source, file_name, limits, progress)
        .await
        .map_err(|e| {
            if e.written.rows > 0 {
                tracing::warn!(
                    project.id = project_id,
                    rows = e.written.rows,
                    "an import stopped half-way"
                );
            }
            e.cause
        })
}

/// Imports a `.xlsx` or `.csv` of cases into a project; `progress` gets the rows written so
/// far. A file-level error (`ImportError::Sheet`) writes nothing; a failure after the first
/// batch is an `ImportStopped` with what was written.
pub async fn import_source(
    db: &Db,
    project_id: i64,
    country: Option<CountryCode>,
    source: Source,
    file_name: &str,
    limits: Limits,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<ImportReport, ImportStopped> {
    let stopped = |written: &ImportReport, cause: ImportError| ImportStopped {
        written: written.clone(),
        cause,
    };
    let mut report = ImportReport::default();
    check(&source, file_name, limits)
        .await
        .map_err(|e| stopped(&report, e.into()))?
        .map_err(|e| stopped(&report, e.into()))?;
    let (mut rx, parser) = feed(&source, file_name, limits, country, 0);
    let mut writer = ImportWriter::new(db, project_id);
    let mut pacer = Pacer::new(db);
    let mut failure: Option<ImportError> = None;
    while let Some(feed) = rx.recv().await {
        let Feed::Write(batch) = feed else {
            continue;
        };
        let rows = batch.len();
        let mut part = ImportReport::default();
        let written = async {
            let mut tx = db.begin_write().await?;
            writer.write_batch(&mut tx, batch, &mut part).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        }
        .await;
        if let Err(e) = written {
            failure = Some(e.into());
            break;
        }
        report.rows += rows;
        report.created += part.created;
        report.updated += part.updated;
        report.unchanged += part.unchanged;
        report.blank += part.blank;
        report.errors.append(&mut part.errors);
        progress(report.rows);
        pacer.after_commit().await;
    }
    drop(rx);
    let parsed = parser
        .await
        .map_err(|e| StoreError::internal(format!("import parser stopped: {e}")))
        .map_err(|e| stopped(&report, e.into()))?;
    if let Some(e) = failure {
        return Err(stopped(&report, e));
    }
    // Checked whole before: the file changed under the reader (the CLI's), or the reader failed.
    parsed.map_err(|e| stopped(&report, e.into()))?;
    tracing::info!(
        project.id = project_id,
        rows = report.rows,
        created = report.created,
        updated = report.updated,
        errors = report.errors.len(),
        "imported cases"
    );
    db.refresh_statistics("cases", report.created + report.updated)
        .await;
    Ok(report)
}

/// The job body of an import from the pages: checks the sheet, then writes it batch by batch
/// with each row's result, resuming after the rows a previous attempt already wrote.
pub async fn process_case_import(
    db: &Db,
    import_id: i64,
    job_id: i64,
    worker: &str,
) -> Result<(), JobError> {
    let Some(work) = db.case_import_work(import_id).await? else {
        return Ok(());
    };
    let country = db.project_by_id(work.project_id).await?.country_code();
    let source = Source::Bytes(Arc::new(work.bytes.clone()));
    let _heartbeat = Heartbeat::start(db.clone(), job_id, worker);
    let limits = Limits::default();
    let total = match check(&source, &work.file_name, limits).await? {
        Ok(total) => total,
        Err(e) => {
            db.fail_case_import(import_id, &e.to_string()).await?;
            return Ok(());
        }
    };
    db.start_case_import(import_id, total as i64).await?;
    let done_rows = work.processed_rows;
    let (mut rx, parser) = feed(
        &source,
        &work.file_name,
        limits,
        country,
        done_rows as usize,
    );
    let mut writer = ImportWriter::new(db, work.project_id).with_results();
    let mut pacer = Pacer::new(db);
    let mut progress = ImportProgress {
        processed: done_rows,
        counts: work.counts.clone(),
    };
    let mut outcome = Ok(());
    while let Some(batch) = rx.recv().await {
        let batch = match batch {
            Feed::Remember(rows) => {
                rows.iter().for_each(|p| writer.remember(p));
                continue;
            }
            Feed::Write(rows) => rows,
        };
        let kept = match db
            .write_case_import_batch(&work, &mut writer, batch, &mut progress)
            .await
        {
            Ok(kept) => kept,
            Err(e) => {
                outcome = Err(JobError::from(e));
                break;
            }
        };
        if !kept || !db.renew_job(job_id, worker).await? {
            outcome = Err(JobError::LeaseLost("another worker took the import over"));
            break;
        }
        pacer.after_commit().await;
    }
    drop(rx);
    let parsed = parser
        .await
        .map_err(|e| StoreError::internal(format!("import parser stopped: {e}")))?;
    outcome?;
    if let Err(e) = parsed {
        db.fail_case_import(import_id, &e.to_string()).await?;
        return Ok(());
    }
    db.finish_case_import(import_id).await?;
    tracing::info!(
        import.id = import_id,
        project.id = work.project_id,
        rows = progress.processed,
        "case import processed"
    );
    let changed = ["created", "updated"]
        .iter()
        .map(|k| progress.counts.get(*k).copied().unwrap_or(0))
        .sum::<i64>();
    db.refresh_statistics("cases", changed as usize).await;
    Ok(())
}

/// Checks the header; counts rows (the reader enforces the row limit).
struct Checker;

impl RowSink for Checker {
    fn headers(&mut self, headers: &Headers) -> Result<(), SheetError> {
        ImportColumns::from_headers(headers).map_err(|e| SheetError::Sink(e.to_string()))?;
        Ok(())
    }
    fn row(&mut self, _row: Row) -> Result<(), SheetError> {
        Ok(())
    }
}

/// What the parser hands the writer.
enum Feed {
    /// Rows an earlier attempt wrote: to remember, not to write.
    Remember(Vec<Parsed>),
    /// Rows to write, in one transaction.
    Write(Vec<Parsed>),
}

struct ChannelSink {
    columns: Option<ImportColumns>,
    country: Option<CountryCode>,
    skip: usize,
    seen: usize,
    skipped: Vec<Parsed>,
    batch: Vec<Parsed>,
    tx: mpsc::Sender<Feed>,
}

impl ChannelSink {
    fn send(&self, feed: Feed) -> Result<(), SheetError> {
        self.tx
            .blocking_send(feed)
            .map_err(|_| SheetError::Sink("the import was stopped".into()))
    }

    fn flush(&mut self) -> Result<(), SheetError> {
        if !self.skipped.is_empty() {
            let feed = Feed::Remember(std::mem::take(&mut self.skipped));
            self.send(feed)?;
        }
        if !self.batch.is_empty() {
            let feed = Feed::Write(std::mem::take(&mut self.batch));
            self.send(feed)?;
        }
        Ok(())
    }
}

impl RowSink for ChannelSink {
    fn headers(&mut self, headers: &Headers) -> Result<(), SheetError> {
        self.columns = Some(
            ImportColumns::from_headers(headers).map_err(|e| SheetError::Sink(e.to_string()))?,
        );
        Ok(())
    }
    fn row(&mut self, row: Row) -> Result<(), SheetError> {
        let columns = self.columns.as_ref().expect("headers come first");
        let parsed = if row.is_blank() {
            Parsed::Blank(row.number)
        } else {
            match columns.parse_row(&row, self.country.as_ref()) {
                Ok(r) => Parsed::Valid(r),
                Err(e) => Parsed::Invalid(e),
            }
        };
        self.seen += 1;
        if self.seen <= self.skip {
            if matches!(parsed, Parsed::Valid(_)) {
                self.skipped.push(parsed);
            }
            if self.skipped.len() >= BATCH {
                let feed = Feed::Remember(std::mem::take(&mut self.skipped));
                self.send(feed)?;
            }
            return Ok(());
        }
        self.batch.push(parsed);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }
}
