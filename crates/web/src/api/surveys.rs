//! `/surveys`: survey definitions (CONTRACT *Surveys*). Anyone in the project may read them;
//! editors and admins (who may send broadcasts) create, change and delete them. A body that
//! breaks rules is a 422 naming every field at fault, not only the first.

use std::collections::BTreeMap;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use casecast_core::case::FieldError;
use casecast_core::survey::Survey;
use casecast_store::surveys::{SurveyEditError, SurveyOverview};
use casecast_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::case_groups::ApiPath;
use super::{ErrorBody, PageParams};
use crate::auth::{ApiAuth, WriteAuth};
use crate::error::ApiError;
use crate::json::{ApiJson, ApiQuery};
use crate::AppState;

/// The largest survey body, in bytes, the API and the builder's form take (other JSON bodies:
/// 2 MB). A survey at the rules' limits (50 questions of 20 options with 10 synonyms each,
/// every message near its longest) in eight translations of a three-byte script is about
/// 2.3 MB of JSON; a form's URL encoding makes it up to three times that.
pub const SURVEY_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// Fields a survey answers that are not part of what is written (ignored when sent back).
const READ_ONLY: [&str; 4] = ["id", "created_at", "updated_at", "sessions"];

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_surveys, create_survey))
        .routes(routes!(get_survey, update_survey, delete_survey))
        .layer(DefaultBodyLimit::max(SURVEY_BODY_LIMIT))
}

/// A survey, with its sessions counted by status.
#[derive(Serialize, ToSchema)]
pub struct SurveyJson {
    pub id: i64,
    /// Unique in the project ignoring case; 1–200 characters.
    pub name: String,
    /// `[{key, type: text|number|date|choice|yes_no, text, required, min, max, choices:
    /// [{value, text, synonyms}], case_property, invalid_text}]`, asked in order.
    #[schema(value_type = Vec<Object>)]
    pub questions: Value,
    /// Texts are maps by language code, `*` the default: `{"*": "…", "sw": "…"}`.
    #[schema(value_type = Option<Object>)]
    pub intro: Value,
    #[schema(value_type = Option<Object>)]
    pub end_text: Value,
    #[schema(value_type = Option<Object>)]
    pub invalid_text: Value,
    /// Invalid replies to one question before the session is cancelled (1–10).
    pub max_attempts: u32,
    /// `{every_minutes, times}` or null.
    #[schema(value_type = Option<Object>)]
    pub reminders: Value,
    /// Silence after the last message sent before a session expires (1–43200).
    pub expire_after_minutes: u32,
    pub created_at: String,
    pub updated_at: String,
    /// Sessions by status: `active`, `completed`, `expired`, `cancelled`.
    pub sessions: BTreeMap<String, i64>,
}

impl From<SurveyOverview> for SurveyJson {
    fn from(o: SurveyOverview) -> Self {
        let s = o.stored.survey;
        SurveyJson {
            id: o.stored.id,
            name: s.name.clone(),
            questions: json(&s.questions),
            intro: json(&s.intro),
            end_text: json(&s.end_text),
            invalid_text: json(&s.invalid_text),
            max_attempts: s.max_attempts,
            reminders: json(&s.reminders),
            expire_after_minutes: s.expire_after_minutes,
            created_at: casecast_core::time::rfc3339(o.stored.created_at),
            updated_at: casecast_core::time::rfc3339(o.stored.updated_at),
            sessions: o.sessions,
        }
    }
}

/// A part of a survey as JSON (its types serialise infallibly).
fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A page of surveys, newest first.
#[derive(Serialize, ToSchema)]
pub struct SurveyList {
    pub surveys: Vec<SurveyJson>,
    pub next_cursor: Option<String>,
}

/// A survey to create. Only the documentation reads this type: the body is checked by
/// `casecast_core::survey::Survey::parse`, which names every field at fault.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SurveyBody {
    pub name: String,
    #[schema(value_type = Vec<Object>)]
    pub questions: Value,
    #[schema(value_type = Option<Object>)]
    pub intro: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub end_text: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub invalid_text: Option<Value>,
    /// Default 3.
    pub max_attempts: Option<u32>,
    #[schema(value_type = Option<Object>)]
    pub reminders: Option<Value>,
    /// Default 1440 (a day).
    pub expire_after_minutes: Option<u32>,
}

/// A 422 listing every field at fault: `{"error": {"code": "invalid", "message", "fields":
/// [{"field", "message"}]}}`; `message` joins them (`field: why; field: why`).
#[derive(Serialize, ToSchema)]
pub struct FieldErrorsBody {
    pub error: FieldErrorsDetail,
}

/// What went wrong, field by field.
#[derive(Serialize, ToSchema)]
pub struct FieldErrorsDetail {
    /// `invalid`.
    pub code: String,
    pub message: String,
    /// Paths such as `questions[2].choices[0].value` or `intro.sw`.
    #[schema(value_type = Vec<Object>)]
    pub fields: Vec<FieldError>,
}

/// The errors of these handlers: the API's, or every field at fault.
pub enum SurveyError {
    Api(ApiError),
    Fields(Vec<FieldError>),
}

impl From<ApiError> for SurveyError {
    fn from(e: ApiError) -> Self {
        SurveyError::Api(e)
    }
}

impl From<StoreError> for SurveyError {
    fn from(e: StoreError) -> Self {
        SurveyError::Api(e.into())
    }
}

impl From<SurveyEditError> for SurveyError {
    fn from(e: SurveyEditError) -> Self {
        match e {
            SurveyEditError::Invalid(fields) => SurveyError::Fields(fields),
            SurveyEditError::Store(e) => SurveyError::Api(e.into()),
        }
    }
}

impl IntoResponse for SurveyError {
    fn into_response(self) -> Response {
        match self {
            SurveyError::Api(e) => e.into_response(),
            SurveyError::Fields(fields) => {
                let message = fields
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                let body =
                    json!({"error": {"code": "invalid", "message": message, "fields": fields}});
                (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
            }
        }
    }
}

type SurveyResult<T> = Result<T, SurveyError>;

#[derive(Deserialize)]
pub struct SurveyPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

/// A body without the fields a survey answers but is not written with.
fn writable(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(obj) = body.as_object_mut() {
        for k in READ_ONLY {
            obj.remove(k);
        }
    }
    body
}

/// Reads a new survey's body.
pub fn parse_new(body: &Value) -> Result<Survey, Vec<FieldError>> {
    Survey::parse(&writable(body))
}

/// `old` with the fields of `patch` in place of its own (`null` clears an optional one), the
/// whole checked again.
pub fn merged(old: &Survey, patch: &Value) -> Result<Survey, Vec<FieldError>> {
    let Some(changes) = writable(patch).as_object().cloned() else {
        return Err(vec![FieldError::new("body", "send a JSON object")]);
    };
    let mut body: Map<String, Value> = match serde_json::to_value(old) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    body.extend(changes);
    Survey::parse(&Value::Object(body))
}

/// List the project's surveys, newest first, with their sessions by status.
#[utoipa::path(get, path = "/surveys", tag = "surveys", params(PageParams),
    responses((status = 200, body = SurveyList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_surveys(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiQuery(page): ApiQuery<PageParams>,
) -> SurveyResult<Json<SurveyList>> {
    let (limit, cursor) = page.checked()?;
    let page = state
        .db
        .survey_overviews(auth.project.id, limit, cursor)
        .await?;
    Ok(Json(SurveyList {
        surveys: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Create a survey.
///
/// 422 with every field at fault (`fields`: `[{field, message}]`, paths such as
/// `questions[2].choices[0].value`); 409 `name_taken` when another survey of the project has
/// the name (ignoring case). Bodies up to 8 MB.
#[utoipa::path(post, path = "/surveys", tag = "surveys", request_body = SurveyBody,
    responses((status = 201, body = SurveyJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = FieldErrorsBody)))]
async fn create_survey(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiJson(body): ApiJson<Value>,
) -> SurveyResult<(StatusCode, Json<SurveyJson>)> {
    let survey = parse_new(&body).map_err(SurveyError::Fields)?;
    let stored = state
        .db
        .create_survey(auth.project.id, &survey, Some(auth.user_id))
        .await?;
    tracing::info!(
        survey.id = stored.id,
        project.id = auth.project.id,
        "survey created"
    );
    let overview = state.db.survey_overview(auth.project.id, stored.id).await?;
    Ok((StatusCode::CREATED, Json(overview.into())))
}

/// Read a survey, with its sessions by status.
#[utoipa::path(get, path = "/surveys/{id}", tag = "surveys", params(("id" = i64, Path)),
    responses((status = 200, body = SurveyJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_survey(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<SurveyPath>,
) -> SurveyResult<Json<SurveyJson>> {
    Ok(Json(
        state
            .db
            .survey_overview(auth.project.id, p.id)
            .await?
            .into(),
    ))
}

/// Change a survey: the given fields replace the stored ones (`null` clears `intro`,
/// `end_text`, `invalid_text` or `reminders`), and the whole is checked again.
///
/// 409 `survey_in_use` for a change of `questions` while the survey has active sessions (the
/// message says how many); every other field may change, and running sessions use it from
/// their next message. 422 with every field at fault, as when creating.
#[utoipa::path(patch, path = "/surveys/{id}", tag = "surveys", params(("id" = i64, Path)), request_body = SurveyBody,
    responses((status = 200, body = SurveyJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = FieldErrorsBody)))]
async fn update_survey(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiPath(p): ApiPath<SurveyPath>,
    ApiJson(body): ApiJson<Value>,
) -> SurveyResult<Json<SurveyJson>> {
    state
        .db
        .update_survey(auth.project.id, p.id, |old| merged(old, &body))
        .await?;
    tracing::info!(
        survey.id = p.id,
        project.id = auth.project.id,
        "survey changed"
    );
    Ok(Json(
        state
            .db
            .survey_overview(auth.project.id, p.id)
            .await?
            .into(),
    ))
}

/// Delete a survey with its sessions (their messages stay in the log).
///
/// 409 `survey_in_use` while it has active sessions, or while a broadcast that is scheduled,
/// sending or paused sends it.
#[utoipa::path(delete, path = "/surveys/{id}", tag = "surveys", params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_survey(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiPath(p): ApiPath<SurveyPath>,
) -> SurveyResult<StatusCode> {
    state.db.delete_survey(auth.project.id, p.id).await?;
    tracing::info!(
        survey.id = p.id,
        project.id = auth.project.id,
        "survey deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}
