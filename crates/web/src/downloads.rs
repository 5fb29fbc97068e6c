//! Sheets people download (a group's members, an upload's report, the example sheet), shared by
//! the API and the pages. Long ones are read from the database a page at a time: CSV is
//! streamed to the client as it is read, `.xlsx` is written to a temporary file row by row.

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use casecast_core::sheet_out::{self, Table, XlsxWriter};
use casecast_engine::export::{read_ahead, write_case_export, Pages};
use casecast_store::case_export::{push_standard_cells, Export, ExportFormat};
use casecast_store::cases::CaseFilter;
use casecast_store::{Db, StoreError, StoreResult};

/// The content type of `.xlsx` files.
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
/// The columns of member exports: the case's standard fields.
pub const MEMBER_COLUMNS: [&str; 8] = casecast_core::case::STANDARD_FIELDS;
/// The columns of upload reports.
pub const RESULT_COLUMNS: [&str; 5] = ["row", "identifier", "outcome", "case_id", "message"];

/// The columns of case import reports.
pub const IMPORT_REPORT_COLUMNS: [&str; 5] = ["row", "outcome", "case_id", "column", "message"];

/// Rows read from the database per page.
const PAGE: usize = 5000;

/// A file download response.
pub fn download(bytes: impl Into<Body>, content_type: &'static str, file_name: &str) -> Response {
    let disposition = format!(
        "attachment; filename=\"{}\"",
        file_name.replace(['"', '\\', '\r', '\n'], "_")
    );
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes.into(),
    )
        .into_response()
}

/// What a download holds.
#[derive(Clone, Copy, Debug)]
pub enum Sheet {
    /// The live members of a group.
    Members { project_id: i64, group_id: i64 },
    /// The per-row report of an upload.
    Results { project_id: i64, upload_id: i64 },
    /// The per-row report of a case import.
    ImportReport { project_id: i64, import_id: i64 },
}

/// Why a download could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
}

impl Sheet {
    fn headers(self) -> &'static [&'static str] {
        match self {
            Sheet::Members { .. } => &MEMBER_COLUMNS,
            Sheet::Results { .. } => &RESULT_COLUMNS,
            Sheet::ImportReport { .. } => &IMPORT_REPORT_COLUMNS,
        }
    }

    /// IDs and phone numbers stay text in `.xlsx`.
    fn text_columns(self) -> &'static [usize] {
        match self {
            Sheet::Members { .. } => &[0, 1, 3],
            Sheet::Results { .. } => &[1, 3],
            Sheet::ImportReport { .. } => &[2],
        }
    }

    fn sheet_name(self) -> &'static str {
        match self {
            Sheet::Members { .. } => "members",
            Sheet::Results { .. } => "results",
            Sheet::ImportReport { .. } => "report",
        }
    }

    /// One page of rows after `after`, and where the next page starts (None at the end).
    async fn page(self, db: &Db, after: i64) -> StoreResult<(Vec<Vec<String>>, Option<i64>)> {
        match self {
            Sheet::Members {
                project_id,
                group_id,
            } => {
                let page = db
                    .group_members(
                        project_id,
                        group_id,
                        None,
                        PAGE,
                        (after > 0).then_some(after),
                    )
                    .await?;
                let next = page.next_cursor.and_then(|c| c.parse().ok());
                let rows = page
                    .items
                    .into_iter()
                    .map(|c| {
                        let mut row = Vec::with_capacity(MEMBER_COLUMNS.len());
                        push_standard_cells(&mut row, c);
                        row
                    })
                    .collect();
                Ok((rows, next))
            }
            Sheet::Results {
                project_id,
                upload_id,
            } => {
                let page = db
                    .upload_results(project_id, upload_id, after, PAGE)
                    .await?;
                let next = (page.len() == PAGE)
                    .then(|| page.last().map(|r| r.row))
                    .flatten();
                let rows = page
                    .into_iter()
                    .map(|r| {
                        vec![
                            r.row.to_string(),
                            r.identifier,
                            r.outcome.as_str().to_string(),
                            r.case_id.unwrap_or_default(),
                            r.message,
                        ]
                    })
                    .collect();
                Ok((rows, next))
            }
            Sheet::ImportReport {
                project_id,
                import_id,
            } => {
                let page = db
                    .case_import_results(project_id, import_id, after, PAGE)
                    .await?;
                let next = (page.len() == PAGE)
                    .then(|| page.last().map(|r| r.row as i64))
                    .flatten();
                let rows = page
                    .into_iter()
                    .map(|r| {
                        vec![
                            r.row.to_string(),
                            r.outcome.as_str().to_string(),
                            r.case_id.unwrap_or_default(),
                            r.column,
                            r.message,
                        ]
                    })
                    .collect();
                Ok((rows, next))
            }
        }
    }

    /// The sheet as `{stem}.csv` (streamed) or `{stem}.xlsx`. The first page is read before
    /// answering, so that a missing group or upload is a 404, not a broken download.
    pub async fn download(
        self,
        db: &Db,
        xlsx: bool,
        stem: &str,
    ) -> Result<Response, DownloadError> {
        let (first, mut next) = self.page(db, 0).await?;
        if xlsx {
            let mut writer =
                XlsxWriter::new(self.headers(), self.text_columns(), self.sheet_name())?;
            writer.append(&first)?;
            while let Some(after) = next {
                let (rows, more) = self.page(db, after).await?;
                writer.append(&rows)?;
                next = more;
            }
            // Writing the workbook is CPU work: off the async threads.
            let bytes = tokio::task::spawn_blocking(move || writer.finish())
                .await
                .unwrap_or_else(|e| {
                    Err(rust_xlsxwriter::XlsxError::IoError(std::io::Error::other(
                        e.to_string(),
                    )))
                })?;
            return Ok(download(bytes, XLSX, &format!("{stem}.xlsx")));
        }
        let mut head = sheet_out::csv_start(self.headers());
        head.extend(sheet_out::csv_rows(&first));
        let db = db.clone();
        let body = csv_body(
            head,
            read_ahead(next, move |after| {
                let db = db.clone();
                async move { self.page(&db, after).await }
            }),
        );
        Ok(download(
            body,
            "text/csv; charset=utf-8",
            &format!("{stem}.csv"),
        ))
    }
}

/// A CSV body: `head` at once, then each page the reader delivers. A failure midway ends the
/// body with an error (the client sees a broken download, never a file that looks complete).
fn csv_body(head: Vec<u8>, pages: Pages) -> Body {
    let rest = futures_util::stream::unfold(Some(pages), |pages| async move {
        let mut pages = pages?;
        match pages.recv().await? {
            Ok(rows) => Some((
                Ok::<Bytes, std::io::Error>(Bytes::from(sheet_out::csv_rows(&rows))),
                Some(pages),
            )),
            Err(e) => {
                tracing::error!(error = %e, "a download stopped");
                Some((
                    Err(std::io::Error::other(
                        "the download stopped; it has been logged",
                    )),
                    None,
                ))
            }
        }
    });
    Body::from_stream(futures_util::stream::StreamExt::chain(
        futures_util::stream::once(async move { Ok(Bytes::from(head)) }),
        rest,
    ))
}

/// Streams a file a block at a time; `keep` (its temporary folder) lives until the body ends.
fn file_body<K: Send + 'static>(file: tokio::fs::File, keep: K) -> Body {
    use tokio::io::AsyncReadExt;
    let stream = futures_util::stream::unfold(Some((file, keep)), |state| async move {
        let (mut file, keep) = state?;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<Bytes, std::io::Error>(Bytes::from(buf)),
                    Some((file, keep)),
                ))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Body::from_stream(stream)
}

/// The project's cases that pass the filter, as `{stem}.csv` (streamed as the database is
/// read) or `{stem}.xlsx` (written to a temporary file, then sent). Errors before the first
/// byte (too many columns or rows) are answers, not broken downloads.
pub async fn cases_download(
    db: &Db,
    project_id: i64,
    filter: CaseFilter,
    xlsx: bool,
    stem: &str,
) -> Result<Response, DownloadError> {
    if xlsx {
        // Counts first, and refuses more rows than a sheet holds before anything is written.
        db.count_for_export(project_id, &filter, ExportFormat::Xlsx)
            .await?;
        let dir = tempfile::tempdir().map_err(StoreError::Io)?;
        let path = dir.path().join("cases.xlsx");
        write_case_export(db, project_id, &filter, ExportFormat::Xlsx, &path, |_| {
            std::future::ready(Ok(()))
        })
        .await?;
        let file = tokio::fs::File::open(&path).await.map_err(StoreError::Io)?;
        return Ok(download(
            file_body(file, dir),
            XLSX,
            &format!("{stem}.xlsx"),
        ));
    }
    let columns = std::sync::Arc::new(db.export_columns(project_id, &filter).await?);
    let (first, next) = db.export_page(project_id, &filter, &columns, 0).await?;
    let mut head = sheet_out::csv_start(&columns.headers());
    head.extend(sheet_out::csv_rows(&first));
    let db = db.clone();
    let filter = std::sync::Arc::new(filter);
    let body = csv_body(
        head,
        read_ahead(next, move |after| {
            let (db, filter, columns) = (db.clone(), filter.clone(), columns.clone());
            async move { db.export_page(project_id, &filter, &columns, after).await }
        }),
    );
    Ok(download(
        body,
        "text/csv; charset=utf-8",
        &format!("{stem}.csv"),
    ))
}

/// A finished background export's file, read from the database a chunk at a time. Its length
/// is announced, and a chunk missing before the end (the export deleted meanwhile) breaks the
/// download instead of ending it early.
pub fn export_download(db: &Db, export: &Export) -> Response {
    let db = db.clone();
    let (id, size) = (export.id, export.size_bytes);
    let stream = futures_util::stream::unfold(Some((0i64, 0i64)), move |state| {
        let db = db.clone();
        async move {
            let (seq, sent) = state?;
            let broken = |what: &str| {
                tracing::error!(export.id = id, "an export download stopped: {what}");
                Some((
                    Err(std::io::Error::other(
                        "the download stopped; it has been logged",
                    )),
                    None,
                ))
            };
            match db.export_chunk(id, seq).await {
                Ok(Some(bytes)) => {
                    let sent = sent + bytes.len() as i64;
                    Some((
                        Ok::<Bytes, std::io::Error>(Bytes::from(bytes)),
                        Some((seq + 1, sent)),
                    ))
                }
                Ok(None) if sent == size => None,
                Ok(None) => broken("the file is gone"),
                Err(e) => broken(&e.to_string()),
            }
        }
    });
    let content_type = if export.format == "xlsx" {
        XLSX
    } else {
        "text/csv; charset=utf-8"
    };
    let mut response = download(Body::from_stream(stream), content_type, &export.file_name);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, header::HeaderValue::from(size));
    response
}

/// Every live member of a group as one table (for the command line, which writes a file).
pub async fn members_table(db: &Db, project_id: i64, group_id: i64) -> StoreResult<Table<'static>> {
    let sheet = Sheet::Members {
        project_id,
        group_id,
    };
    let (mut rows, mut next) = sheet.page(db, 0).await?;
    while let Some(after) = next {
        let (more, n) = sheet.page(db, after).await?;
        rows.extend(more);
        next = n;
    }
    Ok(Table {
        headers: &MEMBER_COLUMNS,
        rows,
        text_columns: &[0, 1, 3],
    })
}

/// A survey's responses as `{stem}.csv` (streamed as the sessions are read) or `{stem}.xlsx`
/// (written to a temporary file a page at a time, then sent): one row per session, in the
/// order they started. The survey must be the project's (the caller read it so).
pub async fn responses_download(
    db: &Db,
    project: &casecast_store::projects::Project,
    survey: &casecast_store::surveys::StoredSurvey,
    xlsx: bool,
    stem: &str,
) -> Result<Response, DownloadError> {
    use casecast_engine::survey_export;
    if xlsx {
        let dir = tempfile::tempdir().map_err(StoreError::Io)?;
        let path = dir.path().join("responses.xlsx");
        survey_export::write_responses(db, project, survey, ExportFormat::Xlsx, &path).await?;
        let file = tokio::fs::File::open(&path).await.map_err(StoreError::Io)?;
        return Ok(download(
            file_body(file, dir),
            XLSX,
            &format!("{stem}.xlsx"),
        ));
    }
    let columns = std::sync::Arc::new(survey_export::response_columns(project, survey));
    let (first, next) =
        survey_export::response_rows(db, project.id, survey.id, &columns, 0).await?;
    let mut head = sheet_out::csv_start(&columns.headers());
    head.extend(sheet_out::csv_rows(&first));
    let pages = survey_export::response_pages(db, project.id, survey.id, columns, next);
    Ok(download(
        csv_body(head, pages),
        "text/csv; charset=utf-8",
        &format!("{stem}.csv"),
    ))
}
