//! `/case-groups`: groups, their members, adding and removing by identifier, exports.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use casecast_core::identifier::GroupName;
use casecast_core::sheet_out;
use casecast_engine::smart_groups;
use casecast_store::case_groups::{Actor, CaseGroup};
use casecast_store::membership::{count_outcomes, Change, ItemResult};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::cases::{CaseJson, CaseList};
use super::{ErrorBody, PageParams};
use crate::auth::{ApiAuth, WriteAuth};
use crate::downloads::{download, Sheet, XLSX};
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiJson, ApiQuery};
use crate::AppState;

/// The most identifiers one JSON call may carry (use an upload for more).
pub const MAX_IDENTIFIERS: usize = 1000;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(example_sheet))
        .routes(routes!(get_group, rename_group, delete_group))
        .routes(routes!(list_members, add_members))
        .routes(routes!(remove_members))
        .routes(routes!(remove_member))
        .routes(routes!(export_csv))
        .routes(routes!(export_xlsx))
}

/// A case group.
#[derive(Serialize, ToSchema)]
pub struct GroupJson {
    pub id: i64,
    pub name: String,
    /// Live (not deleted) member cases.
    pub case_count: i64,
    /// A smart group's case query (the groups it names by their current names); null for a
    /// plain group.
    pub query: Option<String>,
    /// A smart group's members follow every case write up to this instant (null for a plain
    /// group).
    pub as_of: Option<String>,
    pub created_at: String,
    pub modified_at: String,
}

impl GroupJson {
    /// The group as the API shows it (a smart group's query with group names, its "as of").
    pub async fn of(state: &AppState, g: CaseGroup) -> ApiResult<GroupJson> {
        let (query, as_of) = match &g.query {
            Some(saved) => (
                Some(smart_groups::display_query(&state.db, g.project_id, saved).await?),
                smart_groups::as_of(&state.db, state.clock.as_ref(), &g)
                    .await?
                    .map(casecast_core::time::rfc3339),
            ),
            None => (None, None),
        };
        Ok(GroupJson {
            id: g.id,
            name: g.name,
            case_count: g.case_count,
            query,
            as_of,
            created_at: casecast_core::time::rfc3339(g.created_at),
            modified_at: casecast_core::time::rfc3339(g.modified_at),
        })
    }
}

/// A smart group's error as the API answers it: a query that is wrong is 422 `invalid_query`.
impl From<smart_groups::SaveError> for ApiError {
    fn from(e: smart_groups::SaveError) -> Self {
        match e {
            smart_groups::SaveError::Query(m) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_query",
                format!("query: {m}"),
            ),
            smart_groups::SaveError::Store(e) => e.into(),
        }
    }
}

/// A page of groups.
#[derive(Serialize, ToSchema)]
pub struct GroupList {
    pub case_groups: Vec<GroupJson>,
    pub next_cursor: Option<String>,
}

/// A new group: a name, and for a smart group its query.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    /// Trimmed; 1–255 characters; unique in the project ignoring case.
    pub name: String,
    /// A case query (`district = Gulu AND age >= 18`): makes a smart group, whose members are
    /// the live cases matching it, kept current.
    #[serde(default)]
    pub query: Option<String>,
}

/// Changes to a group: its name, and for a smart group its query.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    /// Trimmed; 1–255 characters; unique in the project ignoring case.
    #[serde(default)]
    pub name: Option<String>,
    /// A smart group's new query (a plain group takes none: 409 `not_smart`).
    #[serde(default)]
    pub query: Option<String>,
}

/// Identifiers to add or remove.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifiersBody {
    /// Case IDs, external IDs or phone numbers; at most 1,000.
    pub identifiers: Vec<String>,
}

/// One identifier's outcome.
#[derive(Serialize, ToSchema)]
pub struct ResultJson {
    pub identifier: String,
    /// added, already_in_group, removed, not_in_group, duplicate_in_file, not_found, ambiguous, deleted, invalid, blank
    pub outcome: String,
    pub case_id: Option<String>,
    pub message: String,
}

/// Outcomes of an add or remove.
#[derive(Serialize, ToSchema)]
pub struct ChangeResult {
    pub results: Vec<ResultJson>,
    pub counts: BTreeMap<String, i64>,
}

impl From<Vec<ItemResult>> for ChangeResult {
    fn from(items: Vec<ItemResult>) -> Self {
        let counts = count_outcomes(&items)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        ChangeResult {
            results: items
                .into_iter()
                .map(|r| ResultJson {
                    identifier: r.identifier,
                    outcome: r.outcome.as_str().into(),
                    case_id: r.case_id,
                    message: r.message,
                })
                .collect(),
            counts,
        }
    }
}

/// Path parameters; an id that is not a number names nothing, so it is a 404 in the API's
/// error shape (axum's own rejection is a plain-text 400).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S>
    for ApiPath<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| ApiPath(t))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("not found ({})", e.body_text()),
                )
            })
    }
}

#[derive(Deserialize)]
pub struct GroupPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

#[derive(Deserialize)]
pub struct MemberPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
    case_id: String,
}

/// Search of the members list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemberQuery {
    /// A case ID, external ID or phone number, or part of the name.
    pub q: Option<String>,
}

fn api_actor(auth: &ApiAuth) -> Actor {
    Actor {
        user_id: Some(auth.user_id),
        via: "api",
    }
}

fn group_name(name: &str) -> ApiResult<GroupName> {
    GroupName::parse(name).map_err(|e| ApiError::invalid(e.0))
}

/// List the project's case groups.
#[utoipa::path(get, path = "/case-groups", tag = "case groups", params(PageParams),
    responses((status = 200, body = GroupList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_groups(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<GroupList>> {
    let (limit, cursor) = page.checked()?;
    let page = state
        .db
        .list_groups_page(auth.project.id, limit, cursor)
        .await?;
    let mut case_groups = Vec::with_capacity(page.items.len());
    for g in page.items {
        case_groups.push(GroupJson::of(&state, g).await?);
    }
    Ok(Json(GroupList {
        case_groups,
        next_cursor: page.next_cursor,
    }))
}

/// Create a case group.
#[utoipa::path(post, path = "/case-groups", tag = "case groups", request_body = GroupBody,
    responses((status = 201, body = GroupJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_group(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiJson(body): ApiJson<GroupBody>,
) -> ApiResult<(StatusCode, Json<GroupJson>)> {
    let name = group_name(&body.name)?;
    let group = match body.query.as_deref() {
        Some(query) => {
            smart_groups::create(
                &state.db,
                state.clock.as_ref(),
                &auth.project,
                &name,
                query,
                api_actor(&auth),
            )
            .await?
        }
        None => {
            state
                .db
                .create_group(auth.project.id, &name, api_actor(&auth))
                .await?
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(GroupJson::of(&state, group).await?),
    ))
}

/// Read a case group.
#[utoipa::path(get, path = "/case-groups/{id}", tag = "case groups", params(("id" = i64, Path)),
    responses((status = 200, body = GroupJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_group(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<GroupPath>,
) -> ApiResult<Json<GroupJson>> {
    let group = state.db.get_group(auth.project.id, p.id).await?;
    Ok(Json(GroupJson::of(&state, group).await?))
}

/// Rename a case group, or change a smart group's query.
#[utoipa::path(patch, path = "/case-groups/{id}", tag = "case groups", params(("id" = i64, Path)), request_body = GroupPatch,
    responses((status = 200, body = GroupJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn rename_group(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiPath(p): ApiPath<GroupPath>,
    ApiJson(body): ApiJson<GroupPatch>,
) -> ApiResult<Json<GroupJson>> {
    let name = body.name.as_deref().map(group_name).transpose()?;
    let group = state.db.get_group(auth.project.id, p.id).await?;
    if name.is_none() && body.query.is_none() {
        return Err(ApiError::invalid(
            "give a new name, a new query (a smart group's), or both",
        ));
    }
    // A name in use is refused before the query changes, so that a refused rename leaves the
    // group as it was.
    if let Some(name) = &name {
        let other = state
            .db
            .group_id_by_name(auth.project.id, name.as_str())
            .await?;
        if other.is_some_and(|id| id != group.id) {
            return Err(casecast_store::case_groups::name_taken(name).into());
        }
    }
    if let Some(query) = body.query.as_deref() {
        smart_groups::set_query(
            &state.db,
            state.clock.as_ref(),
            &auth.project,
            group.id,
            query,
            api_actor(&auth),
        )
        .await?;
    }
    if let Some(name) = name {
        state
            .db
            .rename_group(auth.project.id, p.id, &name, api_actor(&auth))
            .await?;
    }
    let group = state.db.get_group(auth.project.id, p.id).await?;
    Ok(Json(GroupJson::of(&state, group).await?))
}

/// Delete a case group: its memberships go, its cases stay.
#[utoipa::path(delete, path = "/case-groups/{id}", tag = "case groups", params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_group(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiPath(p): ApiPath<GroupPath>,
) -> ApiResult<StatusCode> {
    state.db.delete_group(auth.project.id, p.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a group's cases (deleted cases are not members; closed ones are, marked `closed`).
#[utoipa::path(get, path = "/case-groups/{id}/cases", tag = "case groups", params(("id" = i64, Path), MemberQuery, PageParams),
    responses((status = 200, body = CaseList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_members(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<GroupPath>,
    ApiQuery(query): ApiQuery<MemberQuery>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<CaseList>> {
    let (limit, cursor) = page.checked()?;
    let page = state
        .db
        .group_members(auth.project.id, p.id, query.q.as_deref(), limit, cursor)
        .await?;
    Ok(Json(CaseList {
        cases: page.items.into_iter().map(CaseJson::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn change(
    state: &AppState,
    auth: &ApiAuth,
    group_id: i64,
    change: Change,
    body: IdentifiersBody,
) -> ApiResult<Json<ChangeResult>> {
    if body.identifiers.is_empty() {
        return Err(ApiError::invalid(
            "identifiers: give at least one identifier",
        ));
    }
    if body.identifiers.len() > MAX_IDENTIFIERS {
        return Err(ApiError::invalid(format!(
            "identifiers: at most {MAX_IDENTIFIERS} per request ({} given); upload a sheet for more",
            body.identifiers.len()
        )));
    }
    let results = state
        .db
        .change_members(
            auth.project.id,
            group_id,
            change,
            &body.identifiers,
            api_actor(auth),
        )
        .await?;
    Ok(Json(results.into()))
}

/// Add cases by case ID, external ID or phone number.
#[utoipa::path(post, path = "/case-groups/{id}/cases", tag = "case groups", params(("id" = i64, Path)), request_body = IdentifiersBody,
    responses((status = 200, body = ChangeResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_members(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiPath(p): ApiPath<GroupPath>,
    ApiJson(body): ApiJson<IdentifiersBody>,
) -> ApiResult<Json<ChangeResult>> {
    change(&state, &auth, p.id, Change::Add, body).await
}

/// Remove cases by case ID, external ID or phone number.
#[utoipa::path(post, path = "/case-groups/{id}/cases/remove", tag = "case groups", params(("id" = i64, Path)), request_body = IdentifiersBody,
    responses((status = 200, body = ChangeResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove_members(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiPath(p): ApiPath<GroupPath>,
    ApiJson(body): ApiJson<IdentifiersBody>,
) -> ApiResult<Json<ChangeResult>> {
    change(&state, &auth, p.id, Change::Remove, body).await
}

/// Remove one case from the group.
#[utoipa::path(delete, path = "/case-groups/{id}/cases/{case_id}", tag = "case groups", params(("id" = i64, Path), ("case_id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_member(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiPath(p): ApiPath<MemberPath>,
) -> ApiResult<StatusCode> {
    state
        .db
        .remove_member(auth.project.id, p.id, &p.case_id, api_actor(&auth))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn export(
    state: &AppState,
    auth: &ApiAuth,
    group_id: i64,
    xlsx: bool,
) -> ApiResult<Response> {
    // The download's first page checks that the group is this project's.
    let sheet = Sheet::Members {
        project_id: auth.project.id,
        group_id,
    };
    Ok(sheet
        .download(&state.db, xlsx, &format!("case-group-{group_id}"))
        .await?)
}

/// The group's members as CSV.
#[utoipa::path(get, path = "/case-groups/{id}/export.csv", tag = "case groups", params(("id" = i64, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn export_csv(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<GroupPath>,
) -> ApiResult<Response> {
    export(&state, &auth, p.id, false).await
}

/// The group's members as `.xlsx`.
#[utoipa::path(get, path = "/case-groups/{id}/export.xlsx", tag = "case groups", params(("id" = i64, Path)),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn export_xlsx(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<GroupPath>,
) -> ApiResult<Response> {
    export(&state, &auth, p.id, true).await
}

/// The example upload sheet, `cases_bulk_example.xlsx`.
#[utoipa::path(get, path = "/case-groups/example.xlsx", tag = "case groups",
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>), (status = 401, body = ErrorBody)))]
async fn example_sheet(_auth: ApiAuth) -> ApiResult<Response> {
    Ok(download(
        sheet_out::example_sheet()?,
        XLSX,
        "cases_bulk_example.xlsx",
    ))
}
