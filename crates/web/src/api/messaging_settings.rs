//! `/settings/messaging`: quiet hours, opt-out and opt-in keywords and replies, and how long a
//! message may wait. Anyone in the project may read them; admins change them.

use axum::extract::State;
use axum::Json;
use casecast_store::settings::MessagingSettings;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminAuth, ErrorBody};
use crate::auth::ApiAuth;
use crate::error::ApiResult;
use crate::json::ApiJson;
use crate::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, put_settings))
}

/// A project's messaging settings. In a `PUT`, a field left out takes its default.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MessagingSettingsJson {
    /// Local time (`21:00`, the project's time zone) from which nothing is handed to a
    /// gateway; null: no quiet hours. Give both ends or neither.
    pub quiet_hours_start: Option<String>,
    /// Local time (`07:00`) at which sending resumes.
    pub quiet_hours_end: Option<String>,
    /// A message that is only one of these words opts its number out (ignoring case).
    pub stop_keywords: Vec<String>,
    /// A message that is only one of these words opts its number back in.
    pub start_keywords: Vec<String>,
    /// The SMS that confirms an opt-out (1–480 characters).
    pub opt_out_reply: String,
    /// The SMS that confirms an opt-in (1–480 characters).
    pub opt_in_reply: String,
    /// Seconds a message may wait (retries, quiet hours, a gateway down) before it expires
    /// instead of going out late: 10 to 604,800.
    pub validity_seconds: i64,
}

impl Default for MessagingSettingsJson {
    fn default() -> Self {
        MessagingSettings::default().into()
    }
}

impl From<MessagingSettings> for MessagingSettingsJson {
    fn from(s: MessagingSettings) -> Self {
        MessagingSettingsJson {
            quiet_hours_start: s.quiet_hours_start,
            quiet_hours_end: s.quiet_hours_end,
            stop_keywords: s.stop_keywords,
            start_keywords: s.start_keywords,
            opt_out_reply: s.opt_out_reply,
            opt_in_reply: s.opt_in_reply,
            validity_seconds: s.validity_seconds,
        }
    }
}

impl From<MessagingSettingsJson> for MessagingSettings {
    fn from(s: MessagingSettingsJson) -> Self {
        MessagingSettings {
            quiet_hours_start: s.quiet_hours_start,
            quiet_hours_end: s.quiet_hours_end,
            stop_keywords: s.stop_keywords,
            start_keywords: s.start_keywords,
            opt_out_reply: s.opt_out_reply,
            opt_in_reply: s.opt_in_reply,
            validity_seconds: s.validity_seconds,
        }
    }
}

/// Read the messaging settings.
#[utoipa::path(get, path = "/settings/messaging", tag = "settings",
    responses((status = 200, body = MessagingSettingsJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_settings(auth: ApiAuth) -> ApiResult<Json<MessagingSettingsJson>> {
    Ok(Json(auth.project.messaging.into()))
}

/// Replace the messaging settings. Admins only.
///
/// A field left out takes its default. 422 names the field at fault.
#[utoipa::path(put, path = "/settings/messaging", tag = "settings", request_body = MessagingSettingsJson,
    responses((status = 200, body = MessagingSettingsJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_settings(
    State(state): State<AppState>,
    AdminAuth(auth): AdminAuth,
    ApiJson(body): ApiJson<MessagingSettingsJson>,
) -> ApiResult<Json<MessagingSettingsJson>> {
    let settings = MessagingSettings::from(body);
    state
        .db
        .set_messaging_settings(auth.project.id, &settings)
        .await?;
    tracing::info!(project.id = auth.project.id, "messaging settings changed");
    let project = state.db.project_by_id(auth.project.id).await?;
    Ok(Json(project.messaging.into()))
}
