//! `/cases`: create, list, read, change, close and delete cases.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use casecast_core::case::{self, Case, CaseChanges, FieldError};
use casecast_core::{CaseId, CountryCode, PhoneNumber};
use casecast_store::cases::CaseFilter;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ErrorBody, PageParams};
use crate::auth::{ApiAuth, WriteAuth};
use crate::case_query::{CaseQuery, QueryError};
use crate::downloads;
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiJson, ApiQuery};
use crate::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_cases, create_case))
        .routes(routes!(export_csv))
        .routes(routes!(export_xlsx))
        .routes(routes!(get_case, patch_case, delete_case))
        .routes(routes!(close_case))
}

/// A case.
#[derive(Serialize, ToSchema)]
pub struct CaseJson {
    pub case_id: String,
    pub case_type: String,
    pub name: String,
    pub external_id: Option<String>,
    /// E.164, such as `+256772123456`.
    pub phone_number: Option<String>,
    pub language_code: Option<String>,
    pub owner_id: Option<String>,
    pub closed: bool,
    pub deleted: bool,
    pub properties: BTreeMap<String, String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub modified_at: String,
}

impl From<Case> for CaseJson {
    fn from(c: Case) -> Self {
        CaseJson {
            case_id: c.case_id.as_str().to_string(),
            case_type: c.case_type,
            name: c.name,
            external_id: c.external_id,
            phone_number: c.phone_number.map(String::from),
            language_code: c.language_code,
            owner_id: c.owner_id,
            closed: c.closed,
            deleted: c.deleted,
            properties: c.properties,
            created_at: casecast_core::time::rfc3339(c.created_at),
            modified_at: casecast_core::time::rfc3339(c.modified_at),
        }
    }
}

/// A page of cases.
#[derive(Serialize, ToSchema)]
pub struct CaseList {
    pub cases: Vec<CaseJson>,
    pub next_cursor: Option<String>,
}

/// A new case.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    pub name: String,
    /// Given, or a new UUID.
    pub case_id: Option<String>,
    pub case_type: Option<String>,
    pub external_id: Option<String>,
    /// Any common way of writing a number; a national number takes the project's country.
    pub phone_number: Option<String>,
    pub language_code: Option<String>,
    pub owner_id: Option<String>,
    /// Text, number or boolean values (stored as text).
    #[schema(value_type = Object)]
    pub properties: Option<BTreeMap<String, serde_json::Value>>,
}

/// Changes to a case: absent fields stay, `null` clears, `properties` merge (`null` removes one).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CasePatch {
    pub name: Option<String>,
    pub case_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub language_code: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub owner_id: Option<Option<String>>,
    pub closed: Option<bool>,
    #[schema(value_type = Object)]
    pub properties: Option<BTreeMap<String, serde_json::Value>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn optional<T>(
    value: Option<Option<String>>,
    parse: impl Fn(&str) -> Result<T, FieldError>,
) -> Result<Option<Option<T>>, FieldError> {
    value.map(|v| v.map(|s| parse(&s)).transpose()).transpose()
}

fn properties(
    map: Option<BTreeMap<String, serde_json::Value>>,
) -> Result<BTreeMap<String, Option<String>>, FieldError> {
    let mut out = BTreeMap::new();
    for (k, v) in map.unwrap_or_default() {
        let key = case::parse_property_name(&k)
            .map_err(|e| FieldError::new(format!("properties.{k}"), e.message))?;
        let text = match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Number(n) => Some(case::number_text(&n)),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => {
                return Err(FieldError::new(
                    format!("properties.{k}"),
                    "must be text, a number or true/false",
                ))
            }
        };
        let text = text
            .map(|t| case::parse_property_value(&format!("properties.{k}"), &t))
            .transpose()?;
        out.insert(key, text);
    }
    Ok(out)
}

fn phone(country: Option<CountryCode>) -> impl Fn(&str) -> Result<PhoneNumber, FieldError> {
    move |s| {
        PhoneNumber::parse(s, country.as_ref())
            .map_err(|e| FieldError::new("phone_number", e.to_string()))
    }
}

impl CasePatch {
    fn changes(self, country: Option<CountryCode>) -> Result<CaseChanges, FieldError> {
        Ok(CaseChanges {
            name: self.name.as_deref().map(case::parse_name).transpose()?,
            case_type: self
                .case_type
                .as_deref()
                .map(case::parse_case_type)
                .transpose()?,
            external_id: optional(self.external_id, case::parse_external_id)?,
            phone_number: optional(self.phone_number, phone(country))?,
            language_code: optional(self.language_code, case::parse_language_code)?,
            owner_id: optional(self.owner_id, case::parse_owner_id)?,
            closed: self.closed,
            properties: properties(self.properties)?,
        })
    }
}

/// `/cases/{case_id}` under a project.
#[derive(Deserialize)]
pub struct CasePath {
    #[allow(dead_code)]
    project: String,
    case_id: String,
}

/// The filters of the query, or the API's answer to bad ones.
pub(crate) async fn case_filter(
    state: &AppState,
    auth: &ApiAuth,
    query: &CaseQuery,
) -> ApiResult<CaseFilter> {
    query
        .filter(&state.db, &auth.project)
        .await
        .map_err(|e| match e {
            QueryError::Invalid(m) => ApiError::invalid(m),
            QueryError::BadQuery(m) => ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_query",
                m,
            ),
            QueryError::GroupNotFound => ApiError::not_found("case group"),
            QueryError::Store(e) => e.into(),
        })
}

/// List the project's cases.
#[utoipa::path(get, path = "/cases", tag = "cases", params(CaseQuery, PageParams),
    responses((status = 200, body = CaseList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_cases(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiQuery(query): ApiQuery<CaseQuery>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<CaseList>> {
    let (limit, cursor) = page.checked()?;
    let filter = case_filter(&state, &auth, &query).await?;
    let page = state
        .db
        .list_cases(auth.project.id, &filter, limit, cursor)
        .await?;
    Ok(Json(CaseList {
        cases: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn export(
    state: &AppState,
    auth: &ApiAuth,
    query: &CaseQuery,
    xlsx: bool,
) -> ApiResult<Response> {
    let filter = case_filter(state, auth, query).await?;
    if filter.include_deleted {
        return Err(ApiError::invalid(
            "include_deleted: exports hold live cases only",
        ));
    }
    Ok(downloads::cases_download(
        &state.db,
        auth.project.id,
        filter,
        xlsx,
        &format!("cases-{}", auth.project.slug),
    )
    .await?)
}

/// Export the cases the filters select as CSV (UTF-8 with a BOM), streamed: `case_id`,
/// `external_id`, `name`, `phone_number`, `case_type`, `language_code`, `owner_id`, `closed`,
/// `modified_at`, then one column per property, sorted. A cell that starts with `=`, `+`, `-`,
/// `@`, tab or carriage return (after any apostrophes) is written after one more apostrophe,
/// which every sheet read drops again.
#[utoipa::path(get, path = "/cases/export.csv", tag = "cases", params(CaseQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn export_csv(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiQuery(query): ApiQuery<CaseQuery>,
) -> ApiResult<Response> {
    export(&state, &auth, &query, false).await
}

/// Export the cases the filters select as `.xlsx` (the columns of the CSV export, all
/// formatted as text); at most 1,048,575 cases.
#[utoipa::path(get, path = "/cases/export.xlsx", tag = "cases", params(CaseQuery),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn export_xlsx(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiQuery(query): ApiQuery<CaseQuery>,
) -> ApiResult<Response> {
    export(&state, &auth, &query, true).await
}

/// Create a case.
#[utoipa::path(post, path = "/cases", tag = "cases", request_body = NewCase,
    responses((status = 201, body = CaseJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_case(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiJson(body): ApiJson<NewCase>,
) -> ApiResult<(StatusCode, Json<CaseJson>)> {
    let case_id = body
        .case_id
        .as_deref()
        .map(CaseId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(format!("case_id: {e}")))?;
    let patch = CasePatch {
        name: Some(body.name),
        case_type: body.case_type,
        external_id: Some(body.external_id),
        phone_number: Some(body.phone_number),
        language_code: Some(body.language_code),
        owner_id: Some(body.owner_id),
        closed: None,
        properties: body.properties,
    };
    let changes = patch.changes(auth.project.country_code())?;
    let case = state
        .db
        .create_case(auth.project.id, case_id, &changes)
        .await?;
    Ok((StatusCode::CREATED, Json(case.into())))
}

/// Read a case.
#[utoipa::path(get, path = "/cases/{case_id}", tag = "cases", params(("case_id" = String, Path)),
    responses((status = 200, body = CaseJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_case(
    State(state): State<AppState>,
    auth: ApiAuth,
    Path(path): Path<CasePath>,
) -> ApiResult<Json<CaseJson>> {
    Ok(Json(
        state
            .db
            .get_case(auth.project.id, &path.case_id)
            .await?
            .into(),
    ))
}

/// Change a case.
#[utoipa::path(patch, path = "/cases/{case_id}", tag = "cases", params(("case_id" = String, Path)), request_body = CasePatch,
    responses((status = 200, body = CaseJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn patch_case(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    Path(path): Path<CasePath>,
    ApiJson(body): ApiJson<CasePatch>,
) -> ApiResult<Json<CaseJson>> {
    let changes = body.changes(auth.project.country_code())?;
    Ok(Json(
        state
            .db
            .update_case(auth.project.id, &path.case_id, &changes)
            .await?
            .into(),
    ))
}

/// Close a case: it stays, but receives no messages.
#[utoipa::path(post, path = "/cases/{case_id}/close", tag = "cases", params(("case_id" = String, Path)),
    responses((status = 200, body = CaseJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn close_case(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    Path(path): Path<CasePath>,
) -> ApiResult<Json<CaseJson>> {
    Ok(Json(
        state
            .db
            .close_case(auth.project.id, &path.case_id)
            .await?
            .into(),
    ))
}

/// Soft-delete a case.
#[utoipa::path(delete, path = "/cases/{case_id}", tag = "cases", params(("case_id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_case(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    Path(path): Path<CasePath>,
) -> ApiResult<StatusCode> {
    state.db.delete_case(auth.project.id, &path.case_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
