//! `/reminders`: reminder rules from case data (CONTRACT *Reminders*, issue 15). Anyone in the
//! project may read them and their upcoming lists; editors and admins create, change, delete
//! and preview them. A body that breaks rules is a 422 naming every field at fault
//! (`start.offset_days`, `repeat.times`, `content.sms.sw`, `content.survey`), not only the
//! first.
//!
//! Saving a rule only stores it: the workers evaluate its cases in the background, and
//! `evaluation.done` says when they have. What is due when, and what is sent, is the engine's
//! (`casecast_engine::reminders`).

use std::collections::BTreeMap;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::Json;
use casecast_core::case::FieldError;
use casecast_core::reminder::ReminderRule;
use casecast_core::time::rfc3339;
use casecast_engine::reminders::Upcoming;
use casecast_store::projects::Project;
use casecast_store::reminders::{ReminderCounts, StoredReminder};
use casecast_store::{Db, StoreError, StoreResult};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::case_groups::ApiPath;
use super::surveys::{FieldErrorsBody, SurveyError as FieldsError};
use super::{ErrorBody, PageParams};
use crate::auth::{ApiAuth, WriteAuth};
use crate::error::ApiError;
use crate::json::{ApiJson, ApiQuery};
use crate::AppState;

/// The largest reminder body, in bytes (the API's usual limit). A rule at the rules' limits
/// (two queries of 10,000 characters, texts in many translations) is well under it.
pub const REMINDER_BODY_LIMIT: usize = 2 * 1024 * 1024;
/// Days the upcoming list looks ahead when not told.
pub const DEFAULT_UPCOMING_DAYS: u32 = 30;
/// Most days the upcoming list looks ahead.
pub const MAX_UPCOMING_DAYS: u32 = 90;
/// Occurrences the upcoming list shows when not told.
pub const DEFAULT_UPCOMING_LIMIT: usize = 100;
/// Most occurrences the upcoming list shows.
pub const MAX_UPCOMING_LIMIT: usize = 1000;

/// Fields a reminder answers that are not part of what is written (ignored when sent back).
const READ_ONLY: [&str; 6] = [
    "id",
    "created_at",
    "updated_at",
    "version",
    "evaluation",
    "counts",
];

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_reminders, create_reminder))
        .routes(routes!(preview_reminder))
        .routes(routes!(get_reminder, update_reminder, delete_reminder))
        .routes(routes!(upcoming_reminder))
        .layer(DefaultBodyLimit::max(REMINDER_BODY_LIMIT))
}

/// How far the background evaluation of the rule's cases (after its last save) has come.
#[derive(Serialize, ToSchema)]
pub struct EvaluationJson {
    /// Every case of the rule's type was looked at since the last save.
    pub done: bool,
    /// When that finished (RFC 3339, UTC); null while it runs.
    pub evaluated_at: Option<String>,
}

/// A rule's cases and occurrences counted.
#[derive(Serialize, ToSchema)]
pub struct CountsJson {
    /// Cases by state: `scheduled`, `done`, `skipped`, `stopped`.
    #[schema(value_type = Object)]
    pub states: BTreeMap<String, i64>,
    /// Skipped cases by reason: `no_date`, `date_unreadable`, `time_zone_invalid`.
    #[schema(value_type = Object)]
    pub skipped: BTreeMap<String, i64>,
    /// Occurrences handled by outcome: `queued`, `missed`, `no_phone`, `opted_out`,
    /// `same_phone`, `survey_refused`.
    #[schema(value_type = Object)]
    pub outcomes: BTreeMap<String, i64>,
}

impl From<ReminderCounts> for CountsJson {
    fn from(c: ReminderCounts) -> Self {
        CountsJson {
            states: c.states,
            skipped: c.skipped,
            outcomes: c.outcomes,
        }
    }
}

/// A reminder rule.
#[derive(Serialize, ToSchema)]
pub struct ReminderJson {
    pub id: i64,
    /// 1 to 200 characters.
    pub name: String,
    /// An inactive rule sends nothing.
    pub active: bool,
    /// The rule takes live, open cases of this type.
    pub case_type: String,
    /// A case query (empty: every case of the type).
    pub query: String,
    /// `{"property": "next_visit", "offset_days": -2}` (occurrence 1 on the date in that case
    /// property, shifted by -365 to 365 days) or `{"immediately": true}` (when the case starts
    /// matching).
    #[schema(value_type = Object)]
    pub start: Value,
    /// Local time of day, `HH:MM`, in the case's `time_zone` property or else the project's
    /// zone; null for an immediate start without one.
    pub time: Option<String>,
    /// `{"every_days": 1..=365, "times": 1..=365}` (`times` counts occurrence 1), or null.
    #[schema(value_type = Option<Object>)]
    pub repeat: Value,
    /// `{"sms": {"*": "…", "sw": "…"}}` (placeholders as broadcasts) or `{"survey": id}`.
    #[schema(value_type = Object)]
    pub content: Value,
    /// A case query: a case that matches it gets nothing more; null for none.
    pub stop_query: Option<String>,
    /// Hours an occurrence may be late and still be sent (1 to 720); null: the project's
    /// `reminder_late_limit_hours`.
    pub late_limit_hours: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
    /// Goes up with every change.
    pub version: i64,
    pub evaluation: EvaluationJson,
    /// The rule's cases by state and occurrences by outcome (not in the list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<CountsJson>,
}

impl ReminderJson {
    fn new(stored: &StoredReminder, counts: Option<ReminderCounts>) -> Self {
        let json = stored.rule.to_json();
        let rule = &stored.rule;
        ReminderJson {
            id: stored.id,
            name: rule.name.clone(),
            active: rule.active,
            case_type: rule.case_type.clone(),
            query: rule.query.clone(),
            start: json["start"].clone(),
            time: json["time"].as_str().map(str::to_string),
            repeat: json["repeat"].clone(),
            content: json["content"].clone(),
            stop_query: rule.stop_query.clone(),
            late_limit_hours: rule.late_limit_hours,
            created_at: rfc3339(stored.created_at),
            updated_at: rfc3339(stored.updated_at),
            version: stored.version,
            evaluation: EvaluationJson {
                done: stored.evaluated_at.is_some(),
                evaluated_at: stored.evaluated_at.map(rfc3339),
            },
            counts: counts.map(Into::into),
        }
    }
}

/// A page of the project's reminders, oldest first (without `counts`).
#[derive(Serialize, ToSchema)]
pub struct ReminderList {
    pub reminders: Vec<ReminderJson>,
    pub next_cursor: Option<String>,
}

/// A reminder to create. Only the documentation reads this type: the body is checked by
/// `casecast_core::reminder::ReminderRule::parse_checked`, which names every field at fault.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ReminderBody {
    pub name: String,
    /// Default true.
    pub active: Option<bool>,
    pub case_type: String,
    /// A case query (`study_arm = B AND group = 12`); empty or absent: every case of the type.
    pub query: Option<String>,
    /// `{"property", "offset_days"}` or `{"immediately": true}`.
    #[schema(value_type = Object)]
    pub start: Value,
    /// `HH:MM`; required with a date start.
    pub time: Option<String>,
    /// `{"every_days", "times"}`; absent or null: one occurrence.
    #[schema(value_type = Option<Object>)]
    pub repeat: Option<Value>,
    /// `{"sms": {"*": "…"}}` or `{"survey": id}` (one of the project's surveys).
    #[schema(value_type = Object)]
    pub content: Value,
    pub stop_query: Option<String>,
    /// 1 to 720; absent or null: the project's late limit.
    pub late_limit_hours: Option<u32>,
}

/// The upcoming list's window and length.
#[derive(Deserialize, Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpcomingQuery {
    /// Days ahead from now: 1 to 90; 30 when absent.
    pub days: Option<i64>,
    /// Most occurrences listed: 1 to 1000; 100 when absent.
    pub limit: Option<i64>,
}

impl UpcomingQuery {
    /// The checked window (days) and length.
    fn checked(&self) -> Result<(u32, usize), ApiError> {
        let days = match self.days {
            None => DEFAULT_UPCOMING_DAYS,
            Some(d) if (1..=i64::from(MAX_UPCOMING_DAYS)).contains(&d) => d as u32,
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "days: must be a whole number of days from 1 to {MAX_UPCOMING_DAYS}"
                )))
            }
        };
        let limit = match self.limit {
            None => DEFAULT_UPCOMING_LIMIT,
            Some(n) if (1..=MAX_UPCOMING_LIMIT as i64).contains(&n) => n as usize,
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "limit: must be between 1 and {MAX_UPCOMING_LIMIT}"
                )))
            }
        };
        Ok((days, limit))
    }
}

/// One occurrence the rule would send.
#[derive(Serialize, ToSchema)]
pub struct UpcomingItemJson {
    pub case_id: String,
    pub case_name: String,
    /// When it is due (RFC 3339, UTC).
    pub at: String,
    /// The same instant as the case's local date and time (its `time_zone` property, else the
    /// project's zone).
    pub local: String,
    /// 1 for the first occurrence, 2 for the first repeat…
    pub occurrence: u32,
    /// The SMS as it would be sent, for the first 20 (null after them, and for a survey).
    pub text: Option<String>,
}

/// What a rule would send in the coming days, soonest first.
#[derive(Serialize, ToSchema)]
pub struct UpcomingJson {
    /// At most `limit`, soonest first.
    pub upcoming: Vec<UpcomingItemJson>,
    /// Occurrences in the window in all (`upcoming` may show fewer).
    pub total: usize,
    /// Cases the rule takes but cannot schedule or send to, by reason: `no_phone`,
    /// `opted_out`, `no_date`, `date_unreadable`, `time_zone_invalid`.
    #[schema(value_type = Object)]
    pub skipped: BTreeMap<String, usize>,
    /// Cases the rule takes now.
    pub cases: usize,
    /// The window, in days from now.
    pub days: u32,
}

impl UpcomingJson {
    fn new(u: Upcoming, days: u32) -> Self {
        UpcomingJson {
            upcoming: u
                .upcoming
                .into_iter()
                .map(|i| UpcomingItemJson {
                    case_id: i.case_id,
                    case_name: i.case_name,
                    at: rfc3339(i.at),
                    local: i.local,
                    occurrence: i.occurrence,
                    text: i.text,
                })
                .collect(),
            total: u.total,
            skipped: u.skipped,
            cases: u.cases,
            days,
        }
    }
}

type ReminderResult<T> = Result<T, FieldsError>;

#[derive(Deserialize)]
pub struct ReminderPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

/// A body without the fields a reminder answers but is not written with.
fn writable(body: &Value) -> Result<Map<String, Value>, Vec<FieldError>> {
    super::writable_fields(body, &READ_ONLY)
}

/// Reads a new rule's body.
pub fn parse_new(body: &Value) -> Result<ReminderRule, Vec<FieldError>> {
    ReminderRule::parse_checked(&Value::Object(writable(body)?))
}

/// `old` with the fields of `patch` in place of its own (`null` clears an optional one), the
/// whole checked again.
pub fn merged(old: &ReminderRule, patch: &Value) -> Result<ReminderRule, Vec<FieldError>> {
    let changes = writable(patch)?;
    let mut body: Map<String, Value> = match old.to_json() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    body.extend(changes);
    ReminderRule::parse_checked(&Value::Object(body))
}

/// Checks that a survey the content names is the project's: `content.survey` otherwise.
pub async fn check_references(
    db: &Db,
    project_id: i64,
    rule: &ReminderRule,
) -> StoreResult<Vec<FieldError>> {
    let mut problems = Vec::new();
    if let Some(survey_id) = rule.content.survey() {
        match db.survey(project_id, survey_id).await {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => problems.push(FieldError::new(
                "content.survey",
                "no such survey in this project",
            )),
            Err(e) => return Err(e),
        }
    }
    Ok(problems)
}

/// A checked rule whose references are the project's, or every problem.
async fn checked(
    db: &Db,
    project_id: i64,
    parsed: Result<ReminderRule, Vec<FieldError>>,
) -> ReminderResult<ReminderRule> {
    let rule = parsed.map_err(FieldsError::Fields)?;
    let problems = check_references(db, project_id, &rule).await?;
    if problems.is_empty() {
        Ok(rule)
    } else {
        Err(FieldsError::Fields(problems))
    }
}

/// A rule with its counts.
async fn answer(db: &Db, stored: &StoredReminder) -> StoreResult<ReminderJson> {
    let counts = db.reminder_counts(stored.id).await?;
    Ok(ReminderJson::new(stored, Some(counts)))
}

/// What `rule` (unsaved) or the saved rule `stored` would send from now, in the checked window:
/// a saved rule's cases are judged from their schedules (what was sent is not listed again).
async fn upcoming_of(
    state: &AppState,
    project: &Project,
    rule: Result<&ReminderRule, &StoredReminder>,
    query: &UpcomingQuery,
) -> ReminderResult<UpcomingJson> {
    let (days, limit) = query.checked()?;
    let now = state.clock.now_ms();
    let db = &state.db;
    let upcoming = match rule {
        Ok(rule) => {
            casecast_engine::reminders::upcoming(db, project, rule, now, days, limit).await?
        }
        Err(stored) => {
            casecast_engine::reminders::upcoming_saved(db, project, stored, now, days, limit)
                .await?
        }
    };
    Ok(UpcomingJson::new(upcoming, days))
}

/// List the project's reminders, oldest first (without their counts: read one for them).
#[utoipa::path(get, path = "/reminders", tag = "reminders", params(PageParams),
    responses((status = 200, body = ReminderList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_reminders(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ReminderResult<Json<ReminderList>> {
    let (limit, cursor) = page.checked()?;
    let (items, next) = state
        .db
        .reminders_page(auth.project.id, cursor, limit)
        .await?;
    Ok(Json(ReminderList {
        reminders: items.iter().map(|r| ReminderJson::new(r, None)).collect(),
        next_cursor: next.map(|id| id.to_string()),
    }))
}

/// Create a reminder. Its cases are evaluated in the background (`evaluation.done`).
///
/// 422 with every field at fault (`fields`: `[{field, message}]`, paths such as
/// `start.offset_days`, `repeat.times`, `content.sms.sw`, `query` with the query's error, or
/// `content.survey` for a survey the project does not have). Bodies up to 2 MB.
#[utoipa::path(post, path = "/reminders", tag = "reminders", request_body = ReminderBody,
    responses((status = 201, body = ReminderJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = FieldErrorsBody)))]
async fn create_reminder(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiJson(body): ApiJson<Value>,
) -> ReminderResult<(StatusCode, Json<ReminderJson>)> {
    let project_id = auth.project.id;
    let rule = checked(&state.db, project_id, parse_new(&body)).await?;
    let stored =
        casecast_engine::reminders::create(&state.db, project_id, &rule, Some(auth.user_id))
            .await?;
    tracing::info!(
        reminder.id = stored.id,
        project.id = project_id,
        "reminder created"
    );
    Ok((StatusCode::CREATED, Json(answer(&state.db, &stored).await?)))
}

/// Preview an unsaved reminder: what it would send in the next `days` (as `GET
/// /reminders/{id}/upcoming`), every case judged as if it started matching now. Nothing is
/// written.
///
/// 422 with every field at fault, as when creating; 422 `days: …` or `limit: …` out of range.
#[utoipa::path(post, path = "/reminders/preview", tag = "reminders", params(UpcomingQuery), request_body = ReminderBody,
    responses((status = 200, body = UpcomingJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = FieldErrorsBody)))]
async fn preview_reminder(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiQuery(query): ApiQuery<UpcomingQuery>,
    ApiJson(body): ApiJson<Value>,
) -> ReminderResult<Json<UpcomingJson>> {
    query.checked()?;
    let rule = checked(&state.db, auth.project.id, parse_new(&body)).await?;
    Ok(Json(
        upcoming_of(&state, &auth.project, Ok(&rule), &query).await?,
    ))
}

/// Read a reminder, with its cases by state and occurrences by outcome.
#[utoipa::path(get, path = "/reminders/{id}", tag = "reminders", params(("id" = i64, Path)),
    responses((status = 200, body = ReminderJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_reminder(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<ReminderPath>,
) -> ReminderResult<Json<ReminderJson>> {
    let stored = state.db.reminder(auth.project.id, p.id).await?;
    Ok(Json(answer(&state.db, &stored).await?))
}

/// Change a reminder: the given fields replace the stored ones (`null` clears `repeat`,
/// `stop_query` or `late_limit_hours`), and the whole is checked again. A reminder read from
/// the API can be sent back whole. Its cases are evaluated again in the background: a moved
/// date moves what has not been sent; nothing sent is sent again.
///
/// 422 with every field at fault, as when creating.
#[utoipa::path(patch, path = "/reminders/{id}", tag = "reminders", params(("id" = i64, Path)), request_body = ReminderBody,
    responses((status = 200, body = ReminderJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = FieldErrorsBody)))]
async fn update_reminder(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiPath(p): ApiPath<ReminderPath>,
    ApiJson(body): ApiJson<Value>,
) -> ReminderResult<Json<ReminderJson>> {
    let project_id = auth.project.id;
    let old = state.db.reminder(project_id, p.id).await?;
    let rule = checked(&state.db, project_id, merged(&old.rule, &body)).await?;
    let stored = casecast_engine::reminders::update(&state.db, project_id, p.id, &rule).await?;
    tracing::info!(
        reminder.id = p.id,
        project.id = project_id,
        version = stored.version,
        "reminder changed"
    );
    Ok(Json(answer(&state.db, &stored).await?))
}

/// Delete a reminder with its schedules and its record of occurrences. The messages it sent
/// stay in the log, and `GET /messages?reminder_id=` still finds them.
#[utoipa::path(delete, path = "/reminders/{id}", tag = "reminders", params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_reminder(
    State(state): State<AppState>,
    WriteAuth(auth): WriteAuth,
    ApiPath(p): ApiPath<ReminderPath>,
) -> ReminderResult<StatusCode> {
    state.db.delete_reminder(auth.project.id, p.id).await?;
    tracing::info!(
        reminder.id = p.id,
        project.id = auth.project.id,
        "reminder deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// What a reminder would send in the next `days`, soonest first: each case it takes now, at
/// its local time, the first texts rendered, and the cases skipped by reason. An inactive
/// rule's list is what it would send once activated.
///
/// 422 `days: …` or `limit: …` out of range.
#[utoipa::path(get, path = "/reminders/{id}/upcoming", tag = "reminders", params(("id" = i64, Path), UpcomingQuery),
    responses((status = 200, body = UpcomingJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn upcoming_reminder(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<ReminderPath>,
    ApiQuery(query): ApiQuery<UpcomingQuery>,
) -> ReminderResult<Json<UpcomingJson>> {
    query.checked()?;
    let stored = state.db.reminder(auth.project.id, p.id).await?;
    Ok(Json(
        upcoming_of(&state, &auth.project, Err(&stored), &query).await?,
    ))
}
