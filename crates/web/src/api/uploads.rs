//! Sheet uploads to a case group: queue one, follow its progress, download its per-row results.

use std::collections::BTreeMap;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use casecast_core::sheet::Limits;
use casecast_store::membership::Change;
use casecast_store::uploads::Upload;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::case_groups::ApiPath;
use super::case_import::{check_announced_size, ENVELOPE};
use super::ErrorBody;
use crate::auth::{ApiAuth, WriteAuth};
use crate::downloads::Sheet;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    let limit = Limits::default().max_file_bytes as usize + ENVELOPE;
    OpenApiRouter::new()
        .routes(routes!(create_upload))
        .layer(DefaultBodyLimit::max(limit))
        .routes(routes!(get_upload))
        .routes(routes!(results_csv))
        .routes(routes!(results_xlsx))
}

/// The upload form.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// `.xlsx` or `.csv` with a `case_identifier` column (or typed `case_id`, `external_id`, `phone_number`).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// `add` (default) or `remove`.
    mode: Option<String>,
}

/// A queued upload.
#[derive(Serialize, ToSchema)]
pub struct UploadCreated {
    pub upload_id: i64,
}

/// An upload's progress.
#[derive(Serialize, ToSchema)]
pub struct UploadJson {
    pub upload_id: i64,
    pub group_id: Option<i64>,
    pub mode: String,
    pub file_name: String,
    /// queued, running, done or failed
    pub status: String,
    pub total_rows: i64,
    pub processed_rows: i64,
    pub counts: BTreeMap<String, i64>,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<Upload> for UploadJson {
    fn from(u: Upload) -> Self {
        UploadJson {
            upload_id: u.id,
            group_id: u.group_id,
            mode: u.mode.as_str().to_string(),
            file_name: u.file_name,
            status: u.status.to_string(),
            total_rows: u.total_rows,
            processed_rows: u.processed_rows,
            counts: u.counts,
            error: u.error,
            created_at: casecast_core::time::rfc3339(u.created_at),
            finished_at: u.finished_at.map(casecast_core::time::rfc3339),
        }
    }
}

#[derive(Deserialize)]
pub struct GroupPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

#[derive(Deserialize)]
pub struct UploadPath {
    #[allow(dead_code)]
    project: String,
    upload_id: i64,
}

/// Reads `file` and `mode` from a multipart upload form.
pub async fn upload_form(
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(String, Vec<u8>, Change)> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::invalid(format!(
            "send the file as multipart/form-data with a 'file' part ({})",
            e.body_text()
        ))
    })?;
    let mut file = None;
    let mut mode = Change::Add;
    let read_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the file is larger than the limit of 50 MB",
            )
        } else {
            ApiError::invalid(format!("could not read the upload: {}", e.body_text()))
        }
    };
    while let Some(field) = multipart.next_field().await.map_err(read_error)? {
        match field.name() {
            Some("file") => {
                let name = field.file_name().unwrap_or("upload").to_string();
                file = Some((name, field.bytes().await.map_err(read_error)?.to_vec()));
            }
            Some("mode") => {
                mode = match field.text().await.map_err(read_error)?.trim() {
                    "" | "add" => Change::Add,
                    "remove" => Change::Remove,
                    other => {
                        return Err(ApiError::invalid(format!(
                            "mode: '{other}' is neither add nor remove"
                        )))
                    }
                }
            }
            _ => {}
        }
    }
    let (name, bytes) =
        file.ok_or_else(|| ApiError::invalid("file: the upload has no 'file' part"))?;
    Ok((name, bytes, mode))
}

/// Upload a sheet of identifiers to add to (or remove from) the group; processed in the background.
#[utoipa::path(post, path = "/case-groups/{id}/uploads", tag = "case groups", params(("id" = i64, Path)),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 202, body = UploadCreated), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_upload(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiPath(p): ApiPath<GroupPath>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<UploadCreated>)> {
    state.db.get_group(auth.project.id, p.id).await?;
    check_announced_size(&headers)?;
    let (name, bytes, mode) = upload_form(multipart).await?;
    let upload = state
        .db
        .create_upload(
            auth.project.id,
            p.id,
            mode,
            &name,
            bytes,
            Some(auth.user_id),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(UploadCreated {
            upload_id: upload.id,
        }),
    ))
}

/// An upload's status and counts.
#[utoipa::path(get, path = "/uploads/{upload_id}", tag = "case groups", params(("upload_id" = i64, Path)),
    responses((status = 200, body = UploadJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_upload(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<UploadPath>,
) -> ApiResult<Json<UploadJson>> {
    Ok(Json(
        state
            .db
            .get_upload(auth.project.id, p.upload_id)
            .await?
            .into(),
    ))
}

async fn results(
    state: &AppState,
    auth: &ApiAuth,
    upload_id: i64,
    xlsx: bool,
) -> ApiResult<Response> {
    // The download's first page checks that the upload is this project's.
    let sheet = Sheet::Results {
        project_id: auth.project.id,
        upload_id,
    };
    Ok(sheet
        .download(&state.db, xlsx, &format!("upload-{upload_id}-results"))
        .await?)
}

/// The per-row report as CSV: `row, identifier, outcome, case_id, message`.
#[utoipa::path(get, path = "/uploads/{upload_id}/results.csv", tag = "case groups", params(("upload_id" = i64, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn results_csv(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<UploadPath>,
) -> ApiResult<Response> {
    results(&state, &auth, p.upload_id, false).await
}

/// The per-row report as `.xlsx`.
#[utoipa::path(get, path = "/uploads/{upload_id}/results.xlsx", tag = "case groups", params(("upload_id" = i64, Path)),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn results_xlsx(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<UploadPath>,
) -> ApiResult<Response> {
    results(&state, &auth, p.upload_id, true).await
}
