//! `/broadcasts`: SMS to case groups and cases, now or on a schedule. Anyone in the project may
//! look; editors and admins preview, create, cancel, pause and resume.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use casecast_core::broadcast::Draft;
use casecast_store::messages::MessageFilter;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::broadcast_json::{
    BroadcastJson, BroadcastList, OccurrenceList, PreviewJson, RecipientsJson,
};
use super::case_groups::ApiPath;
use super::messages::{MessageJson, MessageList};
use super::{ErrorBody, PageParams};
use crate::auth::{ApiAuth, WriteAuth};
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiJson, ApiQuery};
use crate::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_broadcasts, create_broadcast))
        .routes(routes!(preview_broadcast))
        .routes(routes!(get_broadcast))
        .routes(routes!(cancel_broadcast))
        .routes(routes!(pause_broadcast))
        .routes(routes!(resume_broadcast))
        .routes(routes!(broadcast_messages))
        .routes(routes!(broadcast_occurrences))
}

/// A broadcast to send or preview. Only the documentation reads this type: the body is checked
/// by `casecast_core::broadcast::Draft::parse`, which names the field at fault.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BroadcastBody {
    /// 1–200 characters.
    pub name: String,
    /// At least one case group or case: at most 50 groups and 1,000 cases.
    pub recipients: RecipientsJson,
    /// `{"sms": {"*": "default text", "<language_code>": "text"}}` (placeholders:
    /// `{case.name}`, `{case.external_id}`, `{case.phone_number}`, `{case.<property>}`), or
    /// `{"survey": id}`: one of the project's surveys, started for each recipient.
    #[schema(value_type = Object)]
    pub content: Value,
    /// `{"kind": "immediate"}` (the default), `{"kind": "once", "at": "2026-12-01T09:00"}`, or
    /// `{"kind": "daily"|"weekly"|"monthly", "start_date": "2026-12-01", "time": "09:00",
    /// "every": 1, "weekdays": ["mon"], "days_of_month": [1, "last"], "stop":
    /// {"after_occurrences": n} | {"on_date": "2027-06-30"} | null}`, in the project's time zone.
    #[schema(value_type = Option<Object>)]
    pub schedule: Option<Value>,
    /// Send every message through this gateway; absent: each number's routing.
    pub gateway_id: Option<i64>,
}

#[derive(Deserialize)]
pub struct BroadcastPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

/// Filters of a broadcast's messages.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BroadcastMessageQuery {
    /// One of queued, sending, sent, delivered, failed, expired, cancelled.
    pub status: Option<String>,
    /// Messages of this occurrence only.
    pub occurrence_id: Option<i64>,
}

/// How many occurrences to read.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OccurrenceQuery {
    /// 1 to 500; 50 when absent.
    pub limit: Option<usize>,
}

/// List the project's broadcasts, newest first.
#[utoipa::path(get, path = "/broadcasts", tag = "broadcasts", params(PageParams),
    responses((status = 200, body = BroadcastList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_broadcasts(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<BroadcastList>> {
    let (limit, cursor) = page.checked()?;
    let (items, next) = state
        .db
        .list_broadcasts(auth.project.id, limit as i64, cursor)
        .await?;
    Ok(Json(BroadcastList {
        broadcasts: items.into_iter().map(Into::into).collect(),
        next_cursor: next.map(|id| id.to_string()),
    }))
}

/// Preview a broadcast: who would get what if it were sent now. Nothing is written.
///
/// Recipients after exclusions, the excluded by reason, segments, encoding, the estimated time
/// at the gateways' rate limits, placeholders some recipients lack, and rendered samples for up
/// to three recipients of each text. 422 `<field>: <why>` for a body that cannot be sent.
#[utoipa::path(post, path = "/broadcasts/preview", tag = "broadcasts", request_body = BroadcastBody,
    responses((status = 200, body = PreviewJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn preview_broadcast(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<PreviewJson>> {
    let draft = Draft::parse(&body)?;
    let preview =
        casecast_engine::preview_broadcast(&state.db, &*state.clock, &auth.project, &draft).await?;
    Ok(Json(preview.into()))
}

/// Create a broadcast.
///
/// One with schedule `immediate` (or none) starts sending at once; the others wait for their
/// first occurrence. 422 `<field>: <why>` naming the field (`content.sms.sw`,
/// `schedule.weekdays`, `recipients.case_groups[0]`); a schedule with nothing after now is
/// refused.
#[utoipa::path(post, path = "/broadcasts", tag = "broadcasts", request_body = BroadcastBody,
    responses((status = 201, body = BroadcastJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_broadcast(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<BroadcastJson>)> {
    let draft = Draft::parse(&body)?;
    let broadcast = casecast_engine::broadcasts::create_broadcast(
        &state.db,
        &*state.clock,
        &auth.project,
        &draft,
        Some(auth.user_id),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(broadcast.into())))
}

/// Read a broadcast, with its status and per-status message counts.
#[utoipa::path(get, path = "/broadcasts/{id}", tag = "broadcasts", params(("id" = i64, Path)),
    responses((status = 200, body = BroadcastJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_broadcast(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<BroadcastPath>,
) -> ApiResult<Json<BroadcastJson>> {
    Ok(Json(
        state.db.broadcast(auth.project.id, p.id).await?.into(),
    ))
}

/// Cancel a broadcast.
///
/// No further occurrence fires, a running fan-out stops, and every message not yet handed to
/// a gateway is cancelled; what a gateway already has still arrives. Cancelling a cancelled
/// broadcast changes nothing. Answers the broadcast.
#[utoipa::path(post, path = "/broadcasts/{id}/cancel", tag = "broadcasts", params(("id" = i64, Path)),
    responses((status = 200, body = BroadcastJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn cancel_broadcast(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiPath(p): ApiPath<BroadcastPath>,
) -> ApiResult<Json<BroadcastJson>> {
    state.db.cancel_broadcast(auth.project.id, p.id).await?;
    Ok(Json(
        state.db.broadcast(auth.project.id, p.id).await?.into(),
    ))
}

/// Pause a broadcast with occurrences to come.
///
/// None fires until it is resumed; what an occurrence already queued still goes out. 409
/// `not_active` when it has nothing to come (finished, cancelled or already paused).
#[utoipa::path(post, path = "/broadcasts/{id}/pause", tag = "broadcasts", params(("id" = i64, Path)),
    responses((status = 200, body = BroadcastJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn pause_broadcast(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiPath(p): ApiPath<BroadcastPath>,
) -> ApiResult<Json<BroadcastJson>> {
    state.db.pause_broadcast(auth.project.id, p.id).await?;
    tracing::info!(
        broadcast.id = p.id,
        project.id = auth.project.id,
        "broadcast paused"
    );
    Ok(Json(
        state.db.broadcast(auth.project.id, p.id).await?.into(),
    ))
}

/// Resume a paused broadcast from its next occurrence after now.
///
/// Occurrences that fell while it was paused are skipped, not sent late. 409 `not_paused`
/// when it is not paused.
#[utoipa::path(post, path = "/broadcasts/{id}/resume", tag = "broadcasts", params(("id" = i64, Path)),
    responses((status = 200, body = BroadcastJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn resume_broadcast(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiPath(p): ApiPath<BroadcastPath>,
) -> ApiResult<Json<BroadcastJson>> {
    state.db.resume_broadcast(&auth.project, p.id).await?;
    tracing::info!(
        broadcast.id = p.id,
        project.id = auth.project.id,
        "broadcast resumed"
    );
    Ok(Json(
        state.db.broadcast(auth.project.id, p.id).await?.into(),
    ))
}

/// List a broadcast's messages, newest first.
#[utoipa::path(get, path = "/broadcasts/{id}/messages", tag = "broadcasts", params(("id" = i64, Path), BroadcastMessageQuery, PageParams),
    responses((status = 200, body = MessageList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn broadcast_messages(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<BroadcastPath>,
    ApiQuery(query): ApiQuery<BroadcastMessageQuery>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<MessageList>> {
    let (limit, cursor) = page.checked()?;
    let status = super::messages::status_param(query.status)?;
    // 404 for a broadcast that is not the project's, rather than an empty list.
    state.db.broadcast_row(auth.project.id, p.id).await?;
    let filter = MessageFilter {
        broadcast_id: Some(p.id),
        occurrence_id: query.occurrence_id,
        status,
        ..Default::default()
    };
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

/// List a broadcast's occurrences, newest first, each with its own counts and exclusions.
#[utoipa::path(get, path = "/broadcasts/{id}/occurrences", tag = "broadcasts", params(("id" = i64, Path), OccurrenceQuery),
    responses((status = 200, body = OccurrenceList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn broadcast_occurrences(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<BroadcastPath>,
    ApiQuery(query): ApiQuery<OccurrenceQuery>,
) -> ApiResult<Json<OccurrenceList>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit: must be between 1 and 500"));
    }
    let items = state
        .db
        .broadcast_occurrences(auth.project.id, p.id, limit as i64)
        .await?;
    Ok(Json(OccurrenceList {
        occurrences: items.into_iter().map(Into::into).collect(),
        next_cursor: None,
    }))
}
