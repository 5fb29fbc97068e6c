//! `/opt-outs`: the numbers the project sends nothing to. Numbers join by texting a stop
//! keyword or through an editor; they leave by texting a start keyword or through an editor.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use casecast_core::PhoneNumber;
use casecast_store::opt_outs::OptOut;
use casecast_store::projects::Project;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ErrorBody, PageParams};
use crate::auth::{ApiAuth, WriteAuth};
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiJson, ApiQuery};
use crate::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_opt_outs, add_opt_out))
        .routes(routes!(remove_opt_out))
}

/// A number on the opt-out list.
#[derive(Serialize, ToSchema)]
pub struct OptOutJson {
    /// E.164.
    pub phone_number: String,
    /// `keyword` (the number texted a stop keyword), `api` or `page` (a user added it).
    pub source: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

impl From<OptOut> for OptOutJson {
    fn from(o: OptOut) -> Self {
        OptOutJson {
            phone_number: o.phone_number,
            source: o.source,
            created_at: casecast_core::time::rfc3339(o.created_at),
        }
    }
}

/// A page of the list, by number.
#[derive(Serialize, ToSchema)]
pub struct OptOutList {
    pub opt_outs: Vec<OptOutJson>,
    pub next_cursor: Option<String>,
}

/// A number to put on the list.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptOutBody {
    /// Any common way of writing the number; a national number takes the project's country.
    pub phone_number: String,
}

#[derive(Deserialize)]
pub struct OptOutPath {
    #[allow(dead_code)]
    project: String,
    phone_number: String,
}

fn phone(text: &str, project: &Project) -> ApiResult<PhoneNumber> {
    PhoneNumber::parse(text, project.country_code().as_ref())
        .map_err(|e| ApiError::invalid(format!("phone_number: {e}")))
}

/// List the opt-out list, by number.
#[utoipa::path(get, path = "/opt-outs", tag = "opt-outs", params(PageParams),
    responses((status = 200, body = OptOutList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_opt_outs(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<OptOutList>> {
    // The cursor is the last number's digits (E.164 without its `+`): a positive integer,
    // like every other list's cursor.
    let (limit, cursor) = page.checked()?;
    let after = cursor.map(|digits| format!("+{digits}"));
    let (items, next) = state
        .db
        .list_opt_outs(auth.project.id, limit as i64, after.as_deref())
        .await?;
    Ok(Json(OptOutList {
        opt_outs: items.into_iter().map(Into::into).collect(),
        next_cursor: next.map(|p| p.trim_start_matches('+').to_string()),
    }))
}

/// Put a number on the opt-out list.
///
/// Nothing more is sent to it, and what is queued for it is cancelled. 201 when added, 200
/// when it already was on the list. No SMS is sent.
#[utoipa::path(post, path = "/opt-outs", tag = "opt-outs", request_body = OptOutBody,
    responses((status = 201, body = OptOutJson), (status = 200, body = OptOutJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_opt_out(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiJson(body): ApiJson<OptOutBody>,
) -> ApiResult<(StatusCode, Json<OptOutJson>)> {
    let number = phone(&body.phone_number, &auth.project)?;
    let added = state
        .db
        .add_opt_out(auth.project.id, number.as_str(), "api")
        .await?;
    let entry = state
        .db
        .opt_out(auth.project.id, number.as_str())
        .await?
        .ok_or(ApiError::not_found("opt-out"))?;
    if added {
        tracing::info!(project.id = auth.project.id, phone = %number.masked(), "number opted out through the API");
    }
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(entry.into())))
}

/// Take a number off the opt-out list.
///
/// Write `+` as `%2B`, or give the national number. 404 when it is not on the list. No SMS
/// is sent.
#[utoipa::path(delete, path = "/opt-outs/{phone_number}", tag = "opt-outs", params(("phone_number" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove_opt_out(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    Path(path): Path<OptOutPath>,
) -> ApiResult<StatusCode> {
    let number = phone(&path.phone_number, &auth.project)?;
    state
        .db
        .remove_opt_out(auth.project.id, number.as_str())
        .await?;
    tracing::info!(project.id = auth.project.id, phone = %number.masked(), "number taken off the opt-out list through the API");
    Ok(StatusCode::NO_CONTENT)
}
