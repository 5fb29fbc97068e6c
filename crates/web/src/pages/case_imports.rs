//! Importing cases from the pages: the form, the import's progress and results, and its
//! per-row report. The sheet is imported by a background job (`casecast_engine::import`).

use askama::Template;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use casecast_core::sheet::SheetError;
use casecast_store::case_import::{ImportError, RowResult};
use casecast_store::import_jobs::CaseImport;
use serde::Deserialize;

use super::{html, Chrome};
use crate::auth::ProjectPage;
use crate::downloads::Sheet;
use crate::error::{PageError, PageResult};
use crate::AppState;

const RESULTS_SHOWN: usize = 500;

#[derive(Template)]
#[template(path = "case_import_form.html")]
struct FormPage {
    chrome: Chrome,
    slug: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "case_import.html")]
struct ImportPage {
    chrome: Chrome,
    slug: String,
    job: CaseImport,
    created: String,
    results: Vec<RowResult>,
    more_results: bool,
}

fn form(page: &ProjectPage, status: StatusCode, error: Option<String>) -> PageResult<Response> {
    let view = FormPage {
        chrome: Chrome::project(page, "cases"),
        slug: page.project.slug.clone(),
        error,
    };
    Ok((status, html(&view)?).into_response())
}

/// `GET /a/{project}/cases/import`: the form (editors and admins).
pub(super) async fn new(page: ProjectPage) -> PageResult<Response> {
    page.require_write()?;
    form(&page, StatusCode::OK, None)
}

/// `POST /a/{project}/cases/import` (multipart: csrf, file): queues the import and answers
/// with its page.
pub(super) async fn create(
    State(state): State<AppState>,
    page: ProjectPage,
    multipart: Result<Multipart, MultipartRejection>,
) -> PageResult<Response> {
    page.require_write()?;
    let mut multipart = multipart.map_err(|_| {
        PageError::bad_request("The import form was incomplete. Go back and try again.")
    })?;
    let too_big = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            PageError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: "The file is larger than the limit of 50 MB. Split it and import the parts one by one, or use casecast cases import on the server.".into(),
            }
        } else {
            PageError::bad_request("The file could not be read. Go back and try again.")
        }
    };
    let mut csrf = String::new();
    let mut file = None;
    while let Some(field) = multipart.next_field().await.map_err(too_big)? {
        match field.name() {
            Some("csrf") => csrf = field.text().await.map_err(too_big)?,
            Some("file") => {
                // The token comes first in the form: check it before reading the file.
                page.me.check_csrf(&csrf)?;
                let name = field.file_name().unwrap_or("import").to_string();
                file = Some((name, field.bytes().await.map_err(too_big)?.to_vec()));
            }
            _ => {}
        }
    }
    page.me.check_csrf(&csrf)?;
    let Some((name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        return form(
            &page,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("Choose a file to import.".into()),
        );
    };
    match state
        .db
        .create_case_import(page.project.id, &name, bytes, Some(page.me.user.id))
        .await
    {
        Ok(i) => Ok(
            Redirect::to(&format!("/a/{}/cases/imports/{}", page.project.slug, i.id))
                .into_response(),
        ),
        Err(ImportError::Sheet(e @ SheetError::TooLarge { .. })) => {
            form(&page, StatusCode::PAYLOAD_TOO_LARGE, Some(e.to_string()))
        }
        Err(ImportError::Sheet(e)) => {
            form(&page, StatusCode::UNPROCESSABLE_ENTITY, Some(e.to_string()))
        }
        Err(ImportError::Store(e)) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct ImportPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

/// `GET /a/{project}/cases/imports/{id}`: progress, then counts and the per-row report.
pub(super) async fn show(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<ImportPath>,
) -> PageResult<Response> {
    let job = state.db.get_case_import(page.project.id, p.id).await?;
    let mut results = if job.status.is_finished() {
        state
            .db
            .case_import_results(page.project.id, p.id, 0, RESULTS_SHOWN + 1)
            .await?
    } else {
        Vec::new()
    };
    let more_results = results.len() > RESULTS_SHOWN;
    results.truncate(RESULTS_SHOWN);
    let view = ImportPage {
        chrome: Chrome::project(&page, "cases"),
        slug: page.project.slug.clone(),
        created: casecast_core::time::local_minute(job.created_at, &page.project.zone()),
        job,
        results,
        more_results,
    };
    Ok(html(&view)?.into_response())
}

/// `GET /a/{project}/cases/imports/{id}/status.json`: what the progress bar polls.
pub(super) async fn status(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<ImportPath>,
) -> PageResult<Json<CaseImport>> {
    Ok(Json(state.db.get_case_import(page.project.id, p.id).await?))
}

async fn report(state: &AppState, page: &ProjectPage, id: i64, xlsx: bool) -> PageResult<Response> {
    // The download's first page checks that the import is this project's.
    let sheet = Sheet::ImportReport {
        project_id: page.project.id,
        import_id: id,
    };
    Ok(sheet
        .download(&state.db, xlsx, &format!("import-{id}-report"))
        .await?)
}

/// `GET /a/{project}/cases/imports/{id}/report.csv`.
pub(super) async fn report_csv(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<ImportPath>,
) -> PageResult<Response> {
    report(&state, &page, p.id, false).await
}

/// `GET /a/{project}/cases/imports/{id}/report.xlsx`.
pub(super) async fn report_xlsx(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<ImportPath>,
) -> PageResult<Response> {
    report(&state, &page, p.id, true).await
}
