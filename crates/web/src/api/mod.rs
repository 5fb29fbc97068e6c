//! The JSON API under `/api/v1/projects/{project}`, with its OpenAPI document.

pub mod broadcast_json;
pub mod broadcasts;
pub mod case_groups;
pub mod case_import;
pub mod cases;
pub mod gateways;
pub mod keywords;
pub mod messages;
pub mod messaging_settings;
pub mod opt_outs;
pub mod reminders;
pub mod survey_sessions;
pub mod surveys;
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

/// How to get a token, as the docs' "Authorize" dialog shows it.
const TOKEN_HELP: &str = "An API token of one project, sent as `Authorization: Bearer <token>`. \
Create one on the server with `casecast token create --project SLUG --user EMAIL`: it prints \
the token alone, once. The token reaches the project it was made for, with its user's role there.";

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(TOKEN_HELP))
                    .build(),
            ),
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
#[into_params(parameter_in = Query)]
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

/// A JSON object body without the read-only fields a resource answers but is not written
/// with (`id`, `created_at`, …), for a create or a patch; anything but an object is a field
/// error on `body`.
pub(super) fn writable_fields(
    body: &serde_json::Value,
    read_only: &[&str],
) -> Result<serde_json::Map<String, serde_json::Value>, Vec<casecast_core::case::FieldError>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![casecast_core::case::FieldError::new(
            "body",
            "send a JSON object",
        )]);
    };
    let mut obj = obj.clone();
    for k in read_only {
        obj.remove(*k);
    }
    Ok(obj)
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
        .merge(messaging_settings::router())
        .merge(surveys::router())
        .merge(survey_sessions::router())
        .merge(keywords::router())
        .merge(reminders::router());
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1/projects/{project}", project)
        .split_for_parts();
    declare_path_parameters(&mut openapi);
    (router, openapi)
}

/// Declares every `{name}` of every path that its operations leave undeclared (the
/// `{project}` of the prefix, which the handlers' annotations do not name), so that the
/// docs' "Try it out" can fill it in.
fn declare_path_parameters(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Required, Type};
    for (path, item) in openapi.paths.paths.iter_mut() {
        let names: Vec<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect();
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in operations.into_iter().flatten() {
            let params = op.parameters.get_or_insert_with(Vec::new);
            for (at, name) in names.iter().enumerate() {
                let declared = params
                    .iter()
                    .any(|p| p.name == *name && p.parameter_in == ParameterIn::Path);
                if declared {
                    continue;
                }
                let description = if *name == "project" {
                    "The project's slug, as in its pages' addresses (`/a/{project}/cases`)."
                        .to_string()
                } else {
                    format!("The `{name}` of the path.")
                };
                let param = ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .description(Some(description))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build();
                params.insert(at.min(params.len()), param);
            }
        }
    }
}
