//! `POST /cases/import`: create and update cases from an `.xlsx` or `.csv` upload.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use casecast_core::sheet::Limits;
use casecast_store::case_import::ImportReport;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorBody;
use crate::auth::WriteAuth;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Room for the multipart envelope around the largest accepted file.
pub const ENVELOPE: usize = 64 * 1024;

pub(super) fn router() -> OpenApiRouter<AppState> {
    let limit = Limits::default().max_file_bytes as usize + ENVELOPE;
    OpenApiRouter::new()
        .routes(routes!(import_cases))
        .layer(DefaultBodyLimit::max(limit))
}

/// The upload form.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ImportForm {
    /// The sheet: `.xlsx` or `.csv`, at most 50 MB and 1,000,000 rows.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// What an import did.
#[derive(serde::Serialize, ToSchema)]
pub struct ImportResult {
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub blank: usize,
    /// `{row, column, message}` for each row that was skipped.
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<casecast_core::case_sheet::RowError>,
}

impl From<ImportReport> for ImportResult {
    fn from(r: ImportReport) -> Self {
        Self {
            rows: r.rows,
            created: r.created,
            updated: r.updated,
            unchanged: r.unchanged,
            blank: r.blank,
            errors: r.errors,
        }
    }
}

/// Refuses an upload whose announced size is over the limit, before reading any of it.
pub fn check_announced_size(headers: &HeaderMap) -> ApiResult<()> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > Limits::default().max_file_bytes + ENVELOPE as u64) {
        return Err(too_large());
    }
    Ok(())
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        "the file is larger than the limit of 50 MB",
    )
}

/// Reads the `file` part of a multipart upload, mapping every failure to an API error.
pub async fn file_part(
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(String, Vec<u8>)> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::invalid(format!(
            "send the file as multipart/form-data with a 'file' part ({})",
            e.body_text()
        ))
    })?;
    loop {
        let field = multipart.next_field().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::invalid(format!("could not read the upload: {}", e.body_text()))
            }
        })?;
        let Some(field) = field else {
            return Err(ApiError::invalid("file: the upload has no 'file' part"));
        };
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or("upload").to_string();
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::invalid(format!("could not read the upload: {}", e.body_text()))
            }
        })?;
        return Ok((name, bytes.to_vec()));
    }
}

/// Create and update cases from a sheet. A row updates the case with its `case_id`, else the
/// case with its `external_id`, else creates one; blank cells change nothing; rows with errors
/// are skipped and reported.
#[utoipa::path(post, path = "/cases/import", tag = "cases", request_body(content = ImportForm, content_type = "multipart/form-data"),
    responses((status = 200, body = ImportResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn import_cases(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<ImportResult>> {
    check_announced_size(&headers)?;
    let (name, bytes) = file_part(multipart).await?;
    let _parsing = state.sheets.try_acquire().await.map_err(|_| {
        ApiError::overloaded(
            "the server is reading as many sheets as it may at once; try again in a few seconds",
        )
    })?;
    let report = casecast_engine::import::import_cases(
        &state.db,
        auth.project.id,
        auth.project.country_code(),
        bytes,
        &name,
        Limits::default(),
        &|_| {},
    )
    .await?;
    Ok(Json(report.into()))
}
