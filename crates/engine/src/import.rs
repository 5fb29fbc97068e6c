//! Importing cases from a sheet: the sheet is parsed on a blocking thread and handed over in
//! batches through a bounded channel, so memory stays flat however long the sheet is; every
//! batch is written in one transaction (`ImportWriter`), so a file-level error (too many rows,
//! a corrupt file) leaves nothing half-written.

use casecast_core::case_sheet::ImportColumns;
use casecast_core::sheet::{self, Headers, Limits, Row, RowSink, SheetError};
use casecast_core::CountryCode;
use casecast_store::case_import::{ImportError, ImportReport, ImportWriter, Parsed};
use casecast_store::{Db, StoreError};
use tokio::sync::mpsc;

/// Rows handed from the parser to the writer at a time.
const BATCH: usize = 2000;

/// Imports a `.xlsx` or `.csv` of cases into a project; `progress` gets the rows done so far.
pub async fn import_cases(
    db: &Db,
    project_id: i64,
    country: Option<CountryCode>,
    bytes: Vec<u8>,
    file_name: &str,
    limits: Limits,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<ImportReport, ImportError> {
    let (tx, mut rx) = mpsc::channel::<Vec<Parsed>>(4);
    let name = file_name.to_string();
    let parser = tokio::task::spawn_blocking(move || {
        let mut sink = ChannelSink {
            columns: None,
            country,
            batch: Vec::with_capacity(BATCH),
            tx,
        };
        sheet::read_sheet(&bytes, &name, &limits, &mut sink)?;
        sink.flush()
    });
    let mut report = ImportReport::default();
    let mut writer = ImportWriter::new(db, project_id);
    let mut db_tx = db.begin_write().await.map_err(StoreError::from)?;
    let mut failure: Option<ImportError> = None;
    while let Some(batch) = rx.recv().await {
        report.rows += batch.len();
        if let Err(e) = writer.write_batch(&mut db_tx, batch, &mut report).await {
            failure = Some(e.into());
            break;
        }
        progress(report.rows);
    }
    drop(rx);
    let parsed = parser
        .await
        .map_err(|e| StoreError::internal(format!("import parser stopped: {e}")))?;
    if let Some(e) = failure {
        return Err(e);
    }
    parsed?;
    db_tx.commit().await.map_err(StoreError::from)?;
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

struct ChannelSink {
    columns: Option<ImportColumns>,
    country: Option<CountryCode>,
    batch: Vec<Parsed>,
    tx: mpsc::Sender<Vec<Parsed>>,
}

impl ChannelSink {
    fn flush(&mut self) -> Result<(), SheetError> {
        let batch = std::mem::take(&mut self.batch);
        self.tx
            .blocking_send(batch)
            .map_err(|_| SheetError::Sink("the import was stopped".into()))
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
            Parsed::Blank
        } else {
            match columns.parse_row(&row, self.country.as_ref()) {
                Ok(r) => Parsed::Valid(r),
                Err(e) => Parsed::Invalid(e),
            }
        };
        self.batch.push(parsed);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }
}
