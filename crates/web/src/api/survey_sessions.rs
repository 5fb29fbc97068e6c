//! Following a survey: `GET /surveys/{id}/sessions` (filtered by status and case) and its
//! responses as `GET /surveys/{id}/responses.csv` and `.xlsx`, which every member of the
//! project, viewers too, may read; and `POST /cases/{case_id}/surveys`, which starts a survey
//! for one case (editors and admins).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use casecast_core::survey::session::SessionStatus;
use casecast_core::CaseId;
use casecast_store::survey_responses::SessionFilter;
use casecast_store::survey_sessions::SurveySession;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::case_groups::ApiPath;
use super::{ErrorBody, PageParams};
use crate::auth::{ApiAuth, WriteAuth};
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiJson, ApiQuery};
use crate::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions))
        .routes(routes!(responses_csv))
        .routes(routes!(responses_xlsx))
        .routes(routes!(start_for_case))
}

/// A survey session: one start of a survey for one case.
#[derive(Serialize, ToSchema)]
pub struct SessionJson {
    pub id: i64,
    pub survey_id: i64,
    pub case_id: String,
    /// The number it was started for (E.164); replies from it are its answers.
    pub phone_number: String,
    /// `active`, `completed`, `expired` or `cancelled`.
    pub status: String,
    /// 0-based index of the question waiting for a reply; null once finished.
    pub current_question: Option<usize>,
    /// Accepted answers by question key, normalised (a number as a number, a date as
    /// `YYYY-MM-DD`, a choice as its value, yes/no as `yes`/`no`).
    #[schema(value_type = Object)]
    pub answers: Map<String, Value>,
    /// Why it was cancelled or expired.
    pub reason: Option<String>,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// When it ended (completed, expired or cancelled).
    pub completed_at: Option<String>,
}

impl From<SurveySession> for SessionJson {
    fn from(s: SurveySession) -> Self {
        let time = casecast_core::time::rfc3339;
        SessionJson {
            id: s.id,
            survey_id: s.survey_id,
            case_id: s.case_id,
            phone_number: s.phone_number,
            status: s.status.as_str().to_string(),
            current_question: s.current_question,
            answers: s.answers,
            reason: s.reason,
            started_at: time(s.started_at),
            completed_at: s.completed_at.map(time),
        }
    }
}

/// A page of sessions, newest first.
#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionJson>,
    pub next_cursor: Option<String>,
}

/// Filters of a survey's sessions; both optional, combined with AND.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    /// `active`, `completed`, `expired` or `cancelled`.
    pub status: Option<String>,
    /// Sessions of this case.
    pub case_id: Option<String>,
}

impl SessionQuery {
    /// The checked filter.
    pub fn filter(self) -> ApiResult<SessionFilter> {
        let status = match self.status.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(SessionStatus::parse(s).ok_or_else(|| {
                ApiError::invalid(format!(
                    "status: '{s}' is not a session status; use active, completed, expired or cancelled"
                ))
            })?),
        };
        let case_id = match self.case_id.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(c) => Some(
                CaseId::parse(c)
                    .map_err(|e| ApiError::invalid(format!("case_id: {e}")))?
                    .as_str()
                    .to_string(),
            ),
        };
        Ok(SessionFilter { status, case_id })
    }
}

#[derive(Deserialize)]
pub struct SurveyPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

/// List a survey's sessions, newest first.
#[utoipa::path(get, path = "/surveys/{id}/sessions", tag = "surveys", params(("id" = i64, Path), SessionQuery, PageParams),
    responses((status = 200, body = SessionList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_sessions(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<SurveyPath>,
    ApiQuery(query): ApiQuery<SessionQuery>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<SessionList>> {
    let (limit, cursor) = page.checked()?;
    let filter = query.filter()?;
    // Another project's survey is not found.
    let survey = state.db.survey(auth.project.id, p.id).await?;
    let (sessions, next) = state
        .db
        .list_survey_sessions(auth.project.id, survey.id, &filter, limit as i64, cursor)
        .await?;
    Ok(Json(SessionList {
        sessions: sessions.into_iter().map(SessionJson::from).collect(),
        next_cursor: next.map(|id| id.to_string()),
    }))
}

async fn responses(state: &AppState, auth: &ApiAuth, id: i64, xlsx: bool) -> ApiResult<Response> {
    let survey = state.db.survey(auth.project.id, id).await?;
    Ok(crate::downloads::responses_download(
        &state.db,
        &auth.project,
        &survey,
        xlsx,
        &format!("survey-{id}-responses"),
    )
    .await?)
}

/// A survey's responses as CSV: one row per session (`case_id, external_id, name,
/// phone_number, status, started_at, completed_at`, times in the project's time zone), then one
/// column per question key.
#[utoipa::path(get, path = "/surveys/{id}/responses.csv", tag = "surveys", params(("id" = i64, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn responses_csv(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<SurveyPath>,
) -> ApiResult<Response> {
    responses(&state, &auth, p.id, false).await
}

/// A survey's responses as `.xlsx` (the columns of the CSV; number answers as numbers).
#[utoipa::path(get, path = "/surveys/{id}/responses.xlsx", tag = "surveys", params(("id" = i64, Path)),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn responses_xlsx(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<SurveyPath>,
) -> ApiResult<Response> {
    responses(&state, &auth, p.id, true).await
}

/// Which survey to start.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// A survey of the project (its `id`, as a number or as text).
    #[schema(value_type = i64)]
    pub survey_id: Value,
}

#[derive(Deserialize)]
pub struct CasePath {
    #[allow(dead_code)]
    project: String,
    case_id: String,
}

/// Start a survey for one case now.
///
/// 201 with the new session: the case's active session (of any survey) ends as `cancelled`,
/// and the intro and first question are queued. 422 `survey_id: …` for a survey the project
/// does not have; 404 for an unknown case; 409 `case_closed`, `no_phone_number`, `opted_out` or
/// `no_gateway` when the case cannot be sent it.
#[utoipa::path(post, path = "/cases/{case_id}/surveys", tag = "surveys", params(("case_id" = String, Path)), request_body = StartBody,
    responses((status = 201, body = SessionJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn start_for_case(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    Path(path): Path<CasePath>,
    ApiJson(body): ApiJson<StartBody>,
) -> ApiResult<(StatusCode, Json<SessionJson>)> {
    let survey_id = survey_id_of(&body.survey_id)?;
    let session = casecast_engine::surveys::start_for_case(
        &state.db,
        &*state.clock,
        &auth.project,
        survey_id,
        &path.case_id,
        Some(auth.user_id),
    )
    .await?;
    tracing::info!(
        session.id = session.id,
        survey.id = survey_id,
        project.id = auth.project.id,
        "survey started for a case"
    );
    Ok((StatusCode::CREATED, Json(session.into())))
}

/// A survey's id written as a number or as text (broadcast content names it as text).
fn survey_id_of(value: &Value) -> ApiResult<i64> {
    let id = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    id.filter(|id| *id > 0).ok_or_else(|| {
        ApiError::invalid("survey_id: must be the id of one of the project's surveys")
    })
}
