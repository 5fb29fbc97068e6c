//! `/messages`: the project's message log (sent and received), and
//! `POST /cases/{case_id}/messages`, which sends one SMS to a case.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use casecast_core::states::{Direction, MessageStatus};
use casecast_core::{CaseId, PhoneNumber, Role};
use casecast_store::messages::{Message, MessageFilter};
use casecast_store::projects::Project;
use serde::{Deserialize, Serialize};
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
        .routes(routes!(list_messages))
        .routes(routes!(get_message))
        .routes(routes!(send_to_case))
}

/// A message, sent or received.
#[derive(Serialize, ToSchema)]
pub struct MessageJson {
    pub id: i64,
    /// `outbound` or `inbound`.
    pub direction: String,
    /// `normal`, or `confirmation` (the automatic reply to a stop or start keyword).
    pub kind: String,
    /// The case it was sent to or matched to; null when none.
    pub case_id: Option<String>,
    /// E.164.
    pub phone_number: String,
    pub text: String,
    /// queued, sending, sent, delivered, failed, expired, cancelled; inbound: received.
    pub status: String,
    /// `gsm7` or `ucs2`.
    pub encoding: String,
    pub segments: i64,
    pub gateway_id: Option<i64>,
    pub broadcast_id: Option<i64>,
    /// The keyword an inbound message matched, or whose automatic reply an outbound one is.
    pub keyword_id: Option<i64>,
    /// The reminder rule that sent it (outbound only); kept when the rule is deleted.
    pub reminder_id: Option<i64>,
    /// Attempts made to hand it to the gateway.
    pub attempts: i64,
    /// Why it failed, expired or was cancelled.
    pub error: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub sent_at: Option<String>,
    pub delivered_at: Option<String>,
    /// After this an unsent message expires instead of going out late (outbound only).
    pub expires_at: Option<String>,
}

/// A message's error as `role` may read it: admins see the gateway's own words (the detail),
/// the others only the category (`the gateway refused the message (HTTP 400)`), since a
/// gateway's answer may echo whatever answered at its address.
pub(crate) fn shown_error(error: Option<String>, role: Role) -> Option<String> {
    match role {
        Role::Admin => error,
        _ => error.map(|e| casecast_gateways::error_without_detail(&e)),
    }
}

impl MessageJson {
    /// The message as `role` may see it.
    pub fn new(m: Message, role: Role) -> Self {
        let time = casecast_core::time::rfc3339;
        MessageJson {
            expires_at: (m.direction == Direction::Outbound).then(|| time(m.expires_at)),
            id: m.id,
            direction: m.direction.to_string(),
            kind: m.kind.to_string(),
            case_id: m.case_id,
            phone_number: m.phone_number,
            text: m.text,
            status: m.status.to_string(),
            encoding: m.encoding,
            segments: m.segments,
            gateway_id: m.gateway_id,
            broadcast_id: m.broadcast_id,
            keyword_id: m.keyword_id,
            reminder_id: m.reminder_id,
            attempts: m.attempts,
            error: shown_error(m.error, role),
            created_at: time(m.created_at),
            sent_at: m.sent_at.map(time),
            delivered_at: m.delivered_at.map(time),
        }
    }
}

/// A page of the message log, newest first.
#[derive(Serialize, ToSchema)]
pub struct MessageList {
    pub messages: Vec<MessageJson>,
    pub next_cursor: Option<String>,
}

/// Filters of the message log; all optional, combined with AND.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// `outbound` or `inbound`.
    pub direction: Option<String>,
    /// One of queued, sending, sent, delivered, failed, expired, cancelled, received.
    pub status: Option<String>,
    /// Messages of this case.
    pub case_id: Option<String>,
    /// Messages of this broadcast.
    pub broadcast_id: Option<i64>,
    /// Messages that matched this keyword (inbound) or are its replies (outbound); a deleted
    /// keyword's messages too.
    pub keyword_id: Option<i64>,
    /// Messages this reminder rule sent; a deleted rule's messages too.
    pub reminder_id: Option<i64>,
    /// Any common way of writing the number; a national number takes the project's country.
    pub phone_number: Option<String>,
    /// Created at or after: RFC 3339 (`2026-03-01T08:00:00Z`) or a date (`2026-03-01`, the
    /// start of that day in the project's time zone).
    pub since: Option<String>,
    /// Created before: RFC 3339, or a date (up to the end of that day in the project's time
    /// zone, so `since` and `until` on the same date give that day).
    pub until: Option<String>,
}

/// Which end of a day a date stands for.
#[derive(Clone, Copy)]
enum DayEnd {
    Start,
    End,
}

fn instant(field: &str, text: &str, project: &Project, end: DayEnd) -> ApiResult<i64> {
    if let Some(ms) = casecast_core::time::parse_rfc3339(text) {
        return Ok(ms);
    }
    let bad = || {
        ApiError::invalid(format!(
            "{field}: '{text}' is neither an RFC 3339 time (2026-03-01T08:00:00Z) nor a date (2026-03-01)"
        ))
    };
    let date: jiff::civil::Date = text.trim().parse().map_err(|_| bad())?;
    let date = match end {
        DayEnd::Start => date,
        DayEnd::End => date.tomorrow().map_err(|_| bad())?,
    };
    date.to_zoned(project.zone())
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|_| bad())
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// A `status` query parameter: none when blank, else one of the message statuses.
pub(super) fn status_param(value: Option<String>) -> ApiResult<Option<MessageStatus>> {
    non_empty(value)
        .map(|s| {
            MessageStatus::parse(&s).ok_or_else(|| {
                ApiError::invalid(format!(
                    "status: must be one of {}",
                    MessageStatus::choices()
                ))
            })
        })
        .transpose()
}

impl MessageQuery {
    fn filter(self, project: &Project) -> ApiResult<MessageFilter> {
        let direction = non_empty(self.direction)
            .map(|d| {
                Direction::parse(&d)
                    .ok_or_else(|| ApiError::invalid("direction: must be outbound or inbound"))
            })
            .transpose()?;
        let status = status_param(self.status)?;
        let case_id = non_empty(self.case_id)
            .map(|c| {
                CaseId::parse(c.trim())
                    .map(|c| c.as_str().to_string())
                    .map_err(|e| ApiError::invalid(format!("case_id: {e}")))
            })
            .transpose()?;
        let phone_number = non_empty(self.phone_number)
            .map(|p| {
                PhoneNumber::parse(&p, project.country_code().as_ref())
                    .map(|p| p.as_str().to_string())
                    .map_err(|e| ApiError::invalid(format!("phone_number: {e}")))
            })
            .transpose()?;
        let since = non_empty(self.since)
            .map(|s| instant("since", &s, project, DayEnd::Start))
            .transpose()?;
        let until = non_empty(self.until)
            .map(|s| instant("until", &s, project, DayEnd::End))
            .transpose()?;
        Ok(MessageFilter {
            direction,
            status,
            case_id,
            phone_number,
            broadcast_id: self.broadcast_id,
            occurrence_id: None,
            keyword_id: self.keyword_id,
            reminder_id: self.reminder_id,
            since,
            until,
        })
    }
}

#[derive(Deserialize)]
pub struct MessagePath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

#[derive(Deserialize)]
pub struct CasePath {
    #[allow(dead_code)]
    project: String,
    case_id: String,
}

/// An SMS to send to a case.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// At most 1,530 characters (ten GSM-7 segments).
    pub text: String,
    /// Send through this gateway; absent: the gateway routing the case's number.
    pub gateway_id: Option<i64>,
}

/// List the message log, newest first.
#[utoipa::path(get, path = "/messages", tag = "messages", params(MessageQuery, PageParams),
    responses((status = 200, body = MessageList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_messages(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiQuery(query): ApiQuery<MessageQuery>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<MessageList>> {
    let (limit, cursor) = page.checked()?;
    let filter = query.filter(&auth.project)?;
    let (messages, next) = state
        .db
        .list_messages(auth.project.id, &filter, limit as i64, cursor)
        .await?;
    Ok(Json(MessageList {
        messages: messages
            .into_iter()
            .map(|m| MessageJson::new(m, auth.role))
            .collect(),
        next_cursor: next.map(|id| id.to_string()),
    }))
}

/// Read a message.
#[utoipa::path(get, path = "/messages/{id}", tag = "messages", params(("id" = i64, Path)),
    responses((status = 200, body = MessageJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_message(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<MessagePath>,
) -> ApiResult<Json<MessageJson>> {
    let message = state.db.message(auth.project.id, p.id).await?;
    Ok(Json(MessageJson::new(message, auth.role)))
}

/// Send one SMS to a case.
///
/// 201 with the queued message. 409 `case_closed`, `no_phone_number`, `opted_out` or
/// `no_gateway` when it cannot be sent; 422 `text: …` for a text that cannot go.
#[utoipa::path(post, path = "/cases/{case_id}/messages", tag = "messages", params(("case_id" = String, Path)), request_body = SendBody,
    responses((status = 201, body = MessageJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn send_to_case(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    Path(path): Path<CasePath>,
    ApiJson(body): ApiJson<SendBody>,
) -> ApiResult<(StatusCode, Json<MessageJson>)> {
    let message = casecast_engine::send::send_to_case(
        &state.db,
        &auth.project,
        &path.case_id,
        &body.text,
        Some(auth.user_id),
        body.gateway_id,
    )
    .await?;
    tracing::info!(
        message.id = message.id,
        project.id = auth.project.id,
        gateway.id = message.gateway_id,
        "message queued for a case"
    );
    Ok((
        StatusCode::CREATED,
        Json(MessageJson::new(message, auth.role)),
    ))
}
