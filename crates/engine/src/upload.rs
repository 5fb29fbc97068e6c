//! Processing a sheet upload to a case group: the whole sheet is checked before anything
//! changes, then resolved and applied batch by batch, each batch one transaction with its
//! per-row results (`Db::apply_upload_batch`), resuming after the rows a previous attempt wrote.

use casecast_core::identifier::{identifier_columns, IdentifierKind};
use casecast_core::sheet::{self, Headers, Limits, Row, RowSink, SheetError};
use casecast_store::membership::Entry;
use casecast_store::uploads::UploadProgress;
use casecast_store::{Db, StoreError};
use tokio::sync::mpsc;

use crate::faults::{Fault, Faults};
use crate::permits::Permits;
use crate::worker::Heartbeat;
use crate::JobError;

/// Rows resolved and written per transaction.
const BATCH: usize = 2000;
/// The job body: checks the sheet, then resolves and applies it batch by batch, resuming
/// after the rows a previous attempt already wrote.
pub async fn process_upload(
    db: &Db,
    upload_id: i64,
    job_id: i64,
    worker: &str,
    faults: &Faults,
) -> Result<(), JobError> {
    process_upload_within(db, upload_id, job_id, worker, faults, &Permits::sheets()).await
}

/// [`process_upload`], each pass over the sheet holding one of the process's `sheets` permits
/// (waiting its turn), so that uploads and imports never parse more sheets at once than it
/// allows.
pub async fn process_upload_within(
    db: &Db,
    upload_id: i64,
    job_id: i64,
    worker: &str,
    faults: &Faults,
    sheets: &Permits,
) -> Result<(), JobError> {
    let Some(work) = db.upload_work(upload_id).await? else {
        return Ok(());
    };
    let Some(group_id) = work.group_id else {
        db.fail_upload(
            upload_id,
            "the case group was deleted before the upload was processed",
        )
        .await?;
        return Ok(());
    };
    let country = db.project_by_id(work.project_id).await?.country_code();
    let bytes = std::sync::Arc::new(work.bytes.clone());
    let file_name = work.file_name.clone();

    // The lease is renewed every 10 s while this runs, whatever it is doing (a long check
    // pass included), so that no other worker takes a live job over.
    let _heartbeat = Heartbeat::start(db.clone(), job_id, worker);

    // Pass 1: the whole sheet is checked before anything changes.
    let (check_bytes, check_name) = (bytes.clone(), file_name.clone());
    let permit = sheets.acquire().await;
    let checked = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut counter = Counter {
            rows: 0,
            cols: Vec::new(),
            kept: Some(Vec::new()),
        };
        sheet::read_sheet(&check_bytes, &check_name, &Limits::default(), &mut counter)
            .map(|_| (counter.rows, counter.kept))
    })
    .await
    .map_err(|e| StoreError::internal(format!("upload check stopped: {e}")))?;
    let (total, kept) = match checked {
        Ok(n) => n,
        Err(e) => {
            db.fail_upload(upload_id, &e.to_string()).await?;
            return Ok(());
        }
    };
    db.start_upload(upload_id, total as i64).await?;

    // Pass 2: batches, each one transaction with its results and the progress.
    let mut seen = db.upload_cases_done(upload_id).await?;
    let done_rows = work.processed_rows;
    let (tx, mut rx) = mpsc::channel::<Vec<(i64, Entry)>>(4);
    let name = file_name.clone();
    let permit = sheets.acquire().await;
    let feeder = tokio::task::spawn_blocking(move || {
        let _permit = permit;
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
    let mut progress = UploadProgress {
        processed: done_rows,
        counts: work.counts.clone(),
    };
    let mut outcome = Ok(());
    let mut written = 0u64;
    let mut pacer = crate::pace::Pacer::new(db);
    while let Some(batch) = rx.recv().await {
        let kept = match db
            .apply_upload_batch(
                &work,
                group_id,
                country.as_ref(),
                &batch,
                &mut seen,
                &mut progress,
            )
            .await
        {
            Ok(kept) => kept,
            Err(e) => {
                outcome = Err(JobError::from(e));
                break;
            }
        };
        written += 1;
        if kept {
            faults.reached(Fault::UploadBatchWritten(written)).await;
        }
        if !kept || !db.renew_job(job_id, worker).await? {
            outcome = Err(JobError::LeaseLost("another worker took the upload over"));
            break;
        }
        pacer.after_commit().await;
    }
    drop(rx);
    let fed = feeder
        .await
        .map_err(|e| StoreError::internal(format!("upload reader stopped: {e}")))?;
    outcome?;
    if let Err(e) = fed {
        db.fail_upload(upload_id, &e.to_string()).await?;
        return Ok(());
    }
    let (added, removed) = db.finish_upload(&work, group_id, &progress).await?;
    tracing::info!(
        upload.id = upload_id,
        group.id = group_id,
        rows = progress.processed,
        added,
        removed,
        "upload processed"
    );
    db.refresh_statistics("case_group_members", (added + removed) as usize)
        .await;
    Ok(())
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
