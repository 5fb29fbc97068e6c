//! Writing a survey's responses (`responses.csv`/`.xlsx` downloads, `casecast surveys
//! responses`): one row per session in id order, read a page at a time one page ahead of the
//! writer, so that any number of sessions is written in bounded memory.

use std::path::Path;
use std::sync::Arc;

use casecast_core::case::FieldError;
use casecast_core::sheet_out::XLSX_MAX_ROWS;
use casecast_store::case_export::ExportFormat;
use casecast_store::projects::Project;
use casecast_store::survey_responses::{ResponseColumns, RESPONSES_PAGE};
use casecast_store::surveys::StoredSurvey;
use casecast_store::{Db, StoreResult};

use crate::export::{read_ahead, ExportWriter, Pages};

/// The columns of a survey's responses, times in the project's time zone.
pub fn response_columns(project: &Project, survey: &StoredSurvey) -> ResponseColumns {
    ResponseColumns::new(&survey.survey, project.zone())
}

/// One page of response rows after session `after` (0: from the start), and where the next
/// page starts.
pub async fn response_rows(
    db: &Db,
    project_id: i64,
    survey_id: i64,
    columns: &ResponseColumns,
    after: i64,
) -> StoreResult<(Vec<Vec<String>>, Option<i64>)> {
    let (sessions, next) = db
        .responses_page(project_id, survey_id, after, RESPONSES_PAGE)
        .await?;
    Ok((sessions.iter().map(|s| columns.row(s)).collect(), next))
}

/// Every page of response rows from cursor `start` on, read one page ahead of the caller.
pub fn response_pages(
    db: &Db,
    project_id: i64,
    survey_id: i64,
    columns: Arc<ResponseColumns>,
    start: Option<i64>,
) -> Pages {
    let db = db.clone();
    read_ahead(start, move |after| {
        let (db, columns) = (db.clone(), columns.clone());
        async move { response_rows(&db, project_id, survey_id, &columns, after).await }
    })
}

/// Refuses an `.xlsx` of more sessions than a sheet holds, before anything is written.
pub async fn check_xlsx_rows(db: &Db, project_id: i64, survey_id: i64) -> StoreResult<()> {
    let total = db.survey_progress(project_id, survey_id).await?.total;
    if total as usize > XLSX_MAX_ROWS {
        return Err(FieldError::new(
            "rows",
            format!(
                "{total} sessions are more than the {XLSX_MAX_ROWS} rows an .xlsx sheet holds; \
                 download the responses as CSV"
            ),
        )
        .into());
    }
    Ok(())
}

/// Writes every response of the survey to `path` as CSV or `.xlsx`; returns the rows written.
pub async fn write_responses(
    db: &Db,
    project: &Project,
    survey: &StoredSurvey,
    format: ExportFormat,
    path: &Path,
) -> StoreResult<u64> {
    if format == ExportFormat::Xlsx {
        check_xlsx_rows(db, project.id, survey.id).await?;
    }
    let columns = Arc::new(response_columns(project, survey));
    let mut writer = ExportWriter::sheet(
        format,
        &columns.headers(),
        &columns.text_columns(),
        &columns.number_columns(),
        "responses",
        path,
    )?;
    let mut pages = response_pages(db, project.id, survey.id, columns, Some(0));
    let mut written = 0u64;
    while let Some(rows) = pages.recv().await {
        let rows = rows?;
        written += rows.len() as u64;
        writer = writer.append_off_thread(rows).await?;
    }
    writer.finish(path).await?;
    Ok(written)
}
