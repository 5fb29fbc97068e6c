//! The JSON API under `/api/v1/projects/{project}`, with its OpenAPI document.

pub mod broadcast_json;
pub mod broadcasts;
pub mod case_groups;
pub mod case_import;
pub mod cases;
pub mod gateways;
pub mod messages;
pub mod messaging_settings;
pub mod opt_outs;
pub mod uploads;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use casecast_core::Role;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::ApiAuth;
use crate::error::ApiError;
use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Casecast API", description = "Cases, case groups and SMS broadcasts. Every path is under /api/v1/projects/{project}; authenticate with 'Authorization: Bearer <token>' (casecast token create)."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody, ErrorDetail))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The error shape of every API error.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `unauthorized`, `forbidden`, `not_found`, `invalid`, `invalid_json`, `too_large`, a conflict code…
    pub code: String,
    pub message: String,
}

/// `limit` and `cursor` of every list.
#[derive(Deserialize, Debug, utoipa::IntoParams)]
pub struct PageParams {
    /// 1 to 500; 50 when absent.
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    /// The checked limit and decoded cursor.
    pub fn checked(&self) -> Result<(usize, Option<i64>), ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::invalid("limit: must be between 1 and 500"));
        }
        let cursor =
            match self.cursor.as_deref().filter(|c| !c.is_empty()) {
                None => None,
                Some(c) => Some(c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ApiError::invalid("cursor: not a cursor from a previous page")
                })?),
            };
        Ok((limit, cursor))
    }
}

/// An API caller who is an admin of the project (gateways, messaging settings); checked
/// before the body is read, so editors and viewers get 403 whatever they sent.
#[derive(Clone, Debug)]
pub struct AdminAuth(pub ApiAuth);

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = ApiAuth::from_request_parts(parts, state).await?;
        if auth.role != Role::Admin {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only an admin of this project may change gateways and messaging settings",
            ));
        }
        Ok(AdminAuth(auth))
    }
}

/// The API router and its OpenAPI document.
pub fn router() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let project = OpenApiRouter::new()
        .merge(cases::router())
        .merge(case_import::router())
        .merge(case_groups::router())
        .merge(uploads::router())
        .merge(gateways::router())
        .merge(broadcasts::router())
        .merge(messages::router())
        .merge(opt_outs::router())
        .merge(messaging_settings::router());
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1/projects/{project}", project)
        .split_for_parts();
    (router, openapi)
}
