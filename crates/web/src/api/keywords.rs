//! `/keywords`: what an inbound message's first word selects (CONTRACT *Keywords*). Anyone in
//! the project may read them; editors and admins create, change and delete them. A body that
//! breaks rules is a 422 naming every field at fault (`keyword`, `fields[1]`,
//! `actions[0].text.sw`, `actions[1].survey_id`), not only the first.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::Json;
use casecast_core::case::FieldError;
use casecast_core::keyword::{keyword_json, Action, Keyword};
use casecast_store::keywords::{KeywordUse, StoredKeyword};
use casecast_store::projects::Project;
use casecast_store::{Db, StoreError, StoreResult};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::case_groups::ApiPath;
use super::surveys::{FieldErrorsBody, SurveyError as FieldsError};
use super::ErrorBody;
use crate::auth::{ApiAuth, WriteAuth};
use crate::json::ApiJson;
use crate::AppState;

/// The largest keyword body, in bytes (the API's usual limit). A keyword at the rules' limits
/// (10 replies in 20 translations of 1,530 characters of a three-byte script) is about 1 MB.
pub const KEYWORD_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Fields a keyword answers that are not part of what is written (ignored when sent back).
const READ_ONLY: [&str; 4] = ["id", "created_at", "updated_at", "use"];

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keywords, create_keyword))
        .routes(routes!(get_keyword, update_keyword, delete_keyword))
        .layer(DefaultBodyLimit::max(KEYWORD_BODY_LIMIT))
}

/// A keyword, with its use.
#[derive(Serialize, ToSchema)]
pub struct KeywordJson {
    pub id: i64,
    /// One word of letters and digits (at most 20 characters), unique in the project
    /// ignoring case; not a stop or start word.
    pub keyword: String,
    /// Names of the words after the keyword (case property names, or `name`), in order; the
    /// last takes the rest of the text. At most 20.
    pub fields: Vec<String>,
    /// 1 to 10, run in order: `{"type": "reply", "text": {"*": "…", "sw": "…"}}`,
    /// `{"type": "start_survey", "survey_id"}`, `{"type": "add_to_group" |
    /// "remove_from_group", "case_group_id"}`, `{"type": "set_properties", "dates": [field]}`.
    #[schema(value_type = Vec<Object>)]
    pub actions: Value,
    /// Acted on even while the sender has an active survey session (which is cancelled).
    pub override_open_survey: bool,
    /// `ignore`, `reply` (with `unknown_reply`) or `create_case` (a case of `case_type`).
    pub unknown_sender: String,
    /// Texts by language (`*` the default) sent to a number with no case under `reply`.
    #[schema(value_type = Option<Object>)]
    pub unknown_reply: Value,
    /// The type of a case made under `create_case`.
    pub case_type: String,
    pub created_at: String,
    pub updated_at: String,
    /// Inbound messages that matched it: `{last_7_days, last_30_days}`.
    #[serde(rename = "use")]
    #[schema(value_type = Object)]
    pub usage: KeywordUse,
}

impl KeywordJson {
    fn new(stored: &StoredKeyword, usage: KeywordUse) -> Self {
        let json = keyword_json(stored.id, &stored.keyword);
        let k = &stored.keyword;
        KeywordJson {
            id: stored.id,
            keyword: k.keyword.clone(),
            fields: k.fields.clone(),
            actions: json["actions"].clone(),
            override_open_survey: k.override_open_survey,
            unknown_sender: k.unknown_sender.as_str().to_string(),
            unknown_reply: json["unknown_reply"].clone(),
            case_type: k.case_type.clone(),
            created_at: casecast_core::time::rfc3339(stored.created_at),
            updated_at: casecast_core::time::rfc3339(stored.updated_at),
            usage,
        }
    }
}

/// The project's keywords, ordered by keyword.
#[derive(Serialize, ToSchema)]
pub struct KeywordList {
    pub keywords: Vec<KeywordJson>,
}

/// A keyword to create. Only the documentation reads this type: the body is checked by
/// `casecast_core::keyword::Keyword::parse`, which names every field at fault.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct KeywordBody {
    pub keyword: String,
    /// A list of names, or one string of names separated by spaces or commas.
    #[schema(value_type = Option<Vec<String>>)]
    pub fields: Option<Value>,
    #[schema(value_type = Vec<Object>)]
    pub actions: Value,
    /// Default false.
    pub override_open_survey: Option<bool>,
    /// Default `ignore`.
    pub unknown_sender: Option<String>,
    /// Required when `unknown_sender` is `reply`; only `{field.…}` placeholders.
    #[schema(value_type = Option<Object>)]
    pub unknown_reply: Option<Value>,
    /// Default `contact`.
    pub case_type: Option<String>,
}

type KeywordResult<T> = Result<T, FieldsError>;

#[derive(Deserialize)]
pub struct KeywordPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

/// A body without the fields a keyword answers but is not written with.
fn writable(body: &Value) -> Result<Map<String, Value>, Vec<FieldError>> {
    super::writable_fields(body, &READ_ONLY)
}

/// The words a keyword may not be: the project's stop and start words.
pub fn reserved(project: &Project) -> Vec<String> {
    let settings = project.inbound_settings();
    settings
        .stop_keywords
        .iter()
        .chain(&settings.start_keywords)
        .cloned()
        .collect()
}

/// Reads a new keyword's body.
pub fn parse_new(project: &Project, body: &Value) -> Result<Keyword, Vec<FieldError>> {
    Keyword::parse(&Value::Object(writable(body)?), &reserved(project))
}

/// `old` with the fields of `patch` in place of its own, the whole checked again.
pub fn merged(project: &Project, old: &Keyword, patch: &Value) -> Result<Keyword, Vec<FieldError>> {
    let changes = writable(patch)?;
    let mut body: Map<String, Value> = match old.to_json() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    body.extend(changes);
    Keyword::parse(&Value::Object(body), &reserved(project))
}

/// Checks that the surveys and case groups the actions name are the project's: a problem for
/// each that is not (`actions[1].survey_id`: no such survey in this project).
pub async fn check_references(
    db: &Db,
    project_id: i64,
    keyword: &Keyword,
) -> StoreResult<Vec<FieldError>> {
    let mut problems = Vec::new();
    for (i, action) in keyword.actions.iter().enumerate() {
        match action {
            Action::StartSurvey { survey_id } => match db.survey(project_id, *survey_id).await {
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => problems.push(FieldError::new(
                    format!("actions[{i}].survey_id"),
                    "no such survey in this project",
                )),
                Err(e) => return Err(e),
            },
            Action::AddToGroup { case_group_id } | Action::RemoveFromGroup { case_group_id } => {
                match db.get_group(project_id, *case_group_id).await {
                    Ok(g) if g.query.is_some() => problems.push(FieldError::new(
                        format!("actions[{i}].case_group_id"),
                        "is a smart group: its members follow its query, so a keyword cannot add or remove them",
                    )),
                    Ok(_) => {}
                    Err(StoreError::NotFound(_)) => problems.push(FieldError::new(
                        format!("actions[{i}].case_group_id"),
                        "no such case group in this project",
                    )),
                    Err(e) => return Err(e),
                }
            }
            Action::Reply { .. } | Action::SetProperties { .. } => {}
        }
    }
    Ok(problems)
}

/// A checked keyword whose references are the project's, or every problem.
async fn checked(
    db: &Db,
    project_id: i64,
    parsed: Result<Keyword, Vec<FieldError>>,
) -> KeywordResult<Keyword> {
    let keyword = parsed.map_err(FieldsError::Fields)?;
    let problems = check_references(db, project_id, &keyword).await?;
    if problems.is_empty() {
        Ok(keyword)
    } else {
        Err(FieldsError::Fields(problems))
    }
}

async fn answer(db: &Db, project_id: i64, stored: &StoredKeyword) -> StoreResult<KeywordJson> {
    let usage = db
        .keyword_use(project_id, stored.id, casecast_core::time::now_ms())
        .await?;
    Ok(KeywordJson::new(stored, usage))
}

/// List the project's keywords, ordered by keyword, each with its use.
#[utoipa::path(get, path = "/keywords", tag = "keywords",
    responses((status = 200, body = KeywordList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_keywords(
    State(state): State<AppState>,
    auth: ApiAuth,
) -> KeywordResult<Json<KeywordList>> {
    let keywords = state.db.list_keywords(auth.project.id).await?;
    let uses = state
        .db
        .keyword_uses(auth.project.id, casecast_core::time::now_ms())
        .await?;
    Ok(Json(KeywordList {
        keywords: keywords
            .iter()
            .map(|k| KeywordJson::new(k, uses.get(&k.id).copied().unwrap_or_default()))
            .collect(),
    }))
}

/// Create a keyword.
///
/// 422 with every field at fault (`fields`: `[{field, message}]`, paths such as `fields[1]`
/// or `actions[0].survey_id`), a stop or start word included; 409 `keyword_taken` when the
/// project has the keyword already (ignoring case). Bodies up to 2 MB.
#[utoipa::path(post, path = "/keywords", tag = "keywords", request_body = KeywordBody,
    responses((status = 201, body = KeywordJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = FieldErrorsBody)))]
async fn create_keyword(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiJson(body): ApiJson<Value>,
) -> KeywordResult<(StatusCode, Json<KeywordJson>)> {
    let project_id = auth.project.id;
    let keyword = checked(&state.db, project_id, parse_new(&auth.project, &body)).await?;
    let stored = state
        .db
        .create_keyword(project_id, &keyword, Some(auth.user_id))
        .await?;
    tracing::info!(
        keyword.id = stored.id,
        project.id = project_id,
        "keyword created"
    );
    Ok((
        StatusCode::CREATED,
        Json(answer(&state.db, project_id, &stored).await?),
    ))
}

/// Read a keyword, with its use in the last 7 and 30 days.
#[utoipa::path(get, path = "/keywords/{id}", tag = "keywords", params(("id" = i64, Path)),
    responses((status = 200, body = KeywordJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_keyword(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<KeywordPath>,
) -> KeywordResult<Json<KeywordJson>> {
    let stored = state.db.keyword(auth.project.id, p.id).await?;
    Ok(Json(answer(&state.db, auth.project.id, &stored).await?))
}

/// Change a keyword: the given fields replace the stored ones, and the whole is checked
/// again. A keyword read from the API can be sent back whole.
///
/// 422 with every field at fault, 409 `keyword_taken`, as when creating.
#[utoipa::path(patch, path = "/keywords/{id}", tag = "keywords", params(("id" = i64, Path)), request_body = KeywordBody,
    responses((status = 200, body = KeywordJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = FieldErrorsBody)))]
async fn update_keyword(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiPath(p): ApiPath<KeywordPath>,
    ApiJson(body): ApiJson<Value>,
) -> KeywordResult<Json<KeywordJson>> {
    let project_id = auth.project.id;
    let old = state.db.keyword(project_id, p.id).await?;
    let keyword = checked(
        &state.db,
        project_id,
        merged(&auth.project, &old.keyword, &body),
    )
    .await?;
    let stored = state.db.update_keyword(project_id, p.id, &keyword).await?;
    tracing::info!(
        keyword.id = p.id,
        project.id = project_id,
        "keyword changed"
    );
    Ok(Json(answer(&state.db, project_id, &stored).await?))
}

/// Delete a keyword. The messages that matched it stay in the log, and `GET
/// /messages?keyword_id=` still finds them.
#[utoipa::path(delete, path = "/keywords/{id}", tag = "keywords", params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_keyword(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiPath(p): ApiPath<KeywordPath>,
) -> KeywordResult<StatusCode> {
    state.db.delete_keyword(auth.project.id, p.id).await?;
    tracing::info!(
        keyword.id = p.id,
        project.id = auth.project.id,
        "keyword deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}
