//! `/settings/messaging`: quiet hours, opt-out and opt-in keywords and replies, how long a
//! message may wait, and how late a reminder may still go. Anyone in the project may read
//! them; admins change them.

use axum::extract::State;
use axum::Json;
use casecast_store::settings::{MessagingSettings, SettingsError};
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
    /// The reply to an inbound message that matches no keyword and answers no survey (1–480
    /// characters); null (the default): no reply. Never sent to an opted-out number.
    pub default_reply: Option<String>,
    /// Most automatic replies (keywords', the default reply) to one number in a window:
    /// `"5/10m"` (the default) is five in ten minutes; units `s`, `m`, `h`.
    pub keyword_reply_limit: String,
    /// Hours a reminder occurrence may be late (after an outage) and still be sent: 1 to 720
    /// (30 days), 48 by default; later ones are recorded as missed. A rule's own
    /// `late_limit_hours` replaces it.
    pub reminder_late_limit_hours: i64,
}

/// The messaging settings as read: the settings, and why the stored ones cannot be used when
/// they cannot.
#[derive(Serialize, ToSchema)]
pub struct MessagingSettingsRead {
    #[serde(flatten)]
    pub settings: MessagingSettingsJson,
    /// Present when the stored settings cannot be used (changed outside Casecast, or damaged):
    /// nothing of the project is sent until an admin saves settings again. The fields above
    /// are then the stored values, or the defaults when the stored text cannot be read at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_error: Option<StoredSettingsError>,
}

/// Why the stored settings cannot be used.
#[derive(Serialize, ToSchema)]
pub struct StoredSettingsError {
    /// The field at fault; null when the stored text cannot be read at all.
    pub field: Option<String>,
    pub message: String,
}

impl From<Result<MessagingSettings, SettingsError>> for MessagingSettingsRead {
    fn from(stored: Result<MessagingSettings, SettingsError>) -> Self {
        match stored {
            Ok(settings) => MessagingSettingsRead {
                settings: settings.into(),
                stored_error: None,
            },
            Err(e) => MessagingSettingsRead {
                settings: e.stored().cloned().unwrap_or_default().into(),
                stored_error: Some(StoredSettingsError {
                    field: e.field_error().map(|f| f.field.as_str().to_string()),
                    message: e.to_string(),
                }),
            },
        }
    }
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
            default_reply: s.default_reply,
            keyword_reply_limit: s.keyword_reply_limit,
            reminder_late_limit_hours: s.reminder_late_limit_hours,
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
            default_reply: s.default_reply,
            keyword_reply_limit: s.keyword_reply_limit,
            reminder_late_limit_hours: s.reminder_late_limit_hours,
        }
    }
}

/// Read the messaging settings.
///
/// `stored_error` appears when the stored settings cannot be used: the project's messages are
/// then held until an admin saves settings again.
#[utoipa::path(get, path = "/settings/messaging", tag = "settings",
    responses((status = 200, body = MessagingSettingsRead), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_settings(auth: ApiAuth) -> ApiResult<Json<MessagingSettingsRead>> {
    Ok(Json(auth.project.messaging.into()))
}

/// Replace the messaging settings. Admins only.
///
/// A field left out takes its default. 422 names the field at fault.
#[utoipa::path(put, path = "/settings/messaging", tag = "settings", request_body = MessagingSettingsJson,
    responses((status = 200, body = MessagingSettingsRead), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_settings(
    State(state): State<AppState>,
    AdminAuth(auth): AdminAuth,
    ApiJson(body): ApiJson<MessagingSettingsJson>,
) -> ApiResult<Json<MessagingSettingsRead>> {
    let settings = MessagingSettings::from(body);
    state
        .db
        .set_messaging_settings(auth.project.id, &settings)
        .await?;
    tracing::info!(project.id = auth.project.id, "messaging settings changed");
    let project = state.db.project_by_id(auth.project.id).await?;
    Ok(Json(project.messaging.into()))
}
