//! A survey's page (`/a/{project}/messaging/surveys/{id}`): its questions, its sessions by
//! status with counts that its script keeps current (`counts.json`), the completion rate, a
//! table of responses (one row per session, paged, filtered by status) and the downloads of
//! the responses. The list of surveys and the builder are `surveys.rs`'.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Json;
use casecast_core::survey::session::SessionStatus;
use casecast_core::survey::QuestionType;
use casecast_store::survey_responses::{answer_cell, SessionFilter, SurveyProgress};
use casecast_store::survey_sessions::SurveySession;
use serde::Deserialize;

use super::{html, Chrome};
use crate::auth::{percent_encode, ProjectPage};
use crate::error::{PageError, PageResult};
use crate::AppState;

/// Sessions per page of the responses table.
const PAGE_SIZE: i64 = 50;

#[derive(Deserialize)]
pub(super) struct SurveyPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

#[derive(Deserialize, Default)]
pub(super) struct ResponsesQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    cursor: String,
}

/// A question as the page lists it.
struct QuestionRow {
    key: String,
    kind: &'static str,
    text: String,
    required: bool,
}

/// One session as a row of the responses table.
struct ResponseRow {
    case_id_q: String,
    case_name: String,
    status: &'static str,
    started: String,
    completed: String,
    answers: Vec<String>,
}

impl ResponseRow {
    fn new(s: &SurveySession, keys: &[String], zone: &jiff::tz::TimeZone) -> Self {
        let local = |t: i64| casecast_core::time::local_minute(t, zone);
        ResponseRow {
            case_id_q: percent_encode(&s.case_id),
            case_name: s.case_name.clone(),
            status: s.status.as_str(),
            started: local(s.started_at),
            completed: s.completed_at.map(local).unwrap_or_default(),
            answers: keys.iter().map(|k| answer_cell(s.answers.get(k))).collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "survey_results.html")]
struct SurveyResultsPage {
    chrome: Chrome,
    slug: String,
    id: i64,
    name: String,
    questions: Vec<QuestionRow>,
    /// Every status with its count, in a session's order.
    counts: Vec<(&'static str, i64)>,
    total: i64,
    completion: String,
    /// The status the table shows; empty: all.
    status: String,
    keys: Vec<String>,
    rows: Vec<ResponseRow>,
    first_page: bool,
    next_cursor: Option<i64>,
}

impl SurveyResultsPage {
    /// Whether the table shows the sessions of this status only.
    fn is_shown(&self, status: &str) -> bool {
        self.status == status
    }
}

fn kind_name(kind: QuestionType) -> &'static str {
    match kind {
        QuestionType::Text => "text",
        QuestionType::Number => "number",
        QuestionType::Date => "date",
        QuestionType::Choice => "choice",
        QuestionType::YesNo => "yes/no",
    }
}

fn ordered_counts(progress: &SurveyProgress) -> Vec<(&'static str, i64)> {
    SessionStatus::ALL
        .iter()
        .map(|s| {
            (
                s.as_str(),
                progress.counts.get(s.as_str()).copied().unwrap_or(0),
            )
        })
        .collect()
}

/// `GET /a/{project}/messaging/surveys/{id}`.
pub(super) async fn show(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<SurveyPath>,
    Query(q): Query<ResponsesQuery>,
) -> PageResult<Response> {
    let survey = state.db.survey(page.project.id, p.id).await?;
    let status = match q.status.trim() {
        "" => None,
        s => Some(SessionStatus::parse(s).ok_or_else(|| {
            PageError::bad_request(
                "Status: choose active, completed, expired or cancelled (or all).",
            )
        })?),
    };
    let cursor = match q.cursor.trim() {
        "" => None,
        c => Some(
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| PageError::bad_request("This page of responses does not exist."))?,
        ),
    };
    let progress = state.db.survey_progress(page.project.id, survey.id).await?;
    let filter = SessionFilter {
        status,
        case_id: None,
    };
    let (sessions, next) = state
        .db
        .list_survey_sessions(page.project.id, survey.id, &filter, PAGE_SIZE, cursor)
        .await?;
    let zone = page.project.zone();
    let keys: Vec<String> = survey
        .survey
        .questions
        .iter()
        .map(|q| q.key.clone())
        .collect();
    let view = SurveyResultsPage {
        chrome: Chrome::project(&page, "surveys"),
        slug: page.project.slug.clone(),
        id: survey.id,
        name: survey.survey.name.clone(),
        questions: survey
            .survey
            .questions
            .iter()
            .map(|q| QuestionRow {
                key: q.key.clone(),
                kind: kind_name(q.kind),
                text: q.text.choose(None).to_string(),
                required: q.required,
            })
            .collect(),
        counts: ordered_counts(&progress),
        total: progress.total,
        completion: progress.completion_percent(),
        status: status.map(|s| s.as_str().to_string()).unwrap_or_default(),
        rows: sessions
            .iter()
            .map(|s| ResponseRow::new(s, &keys, &zone))
            .collect(),
        keys,
        first_page: cursor.is_none(),
        next_cursor: next,
    };
    Ok(axum::response::IntoResponse::into_response(html(&view)?))
}

/// `GET /a/{project}/messaging/surveys/{id}/counts.json`: the sessions by status, their total
/// and the completion rate, which the survey's page polls.
pub(super) async fn counts(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<SurveyPath>,
) -> PageResult<Json<serde_json::Value>> {
    let survey = state.db.survey(page.project.id, p.id).await?;
    let progress = state.db.survey_progress(page.project.id, survey.id).await?;
    Ok(Json(serde_json::json!({
        "counts": progress.counts,
        "total": progress.total,
        "completed": progress.completed(),
        "completion_rate": progress.completion_rate(),
        "completion": progress.completion_percent(),
    })))
}

async fn responses(
    state: &AppState,
    page: &ProjectPage,
    id: i64,
    xlsx: bool,
) -> PageResult<Response> {
    let survey = state.db.survey(page.project.id, id).await?;
    Ok(crate::downloads::responses_download(
        &state.db,
        &page.project,
        &survey,
        xlsx,
        &format!("survey-{id}-responses"),
    )
    .await?)
}

/// `GET /a/{project}/messaging/surveys/{id}/responses.csv`.
pub(super) async fn responses_csv(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<SurveyPath>,
) -> PageResult<Response> {
    responses(&state, &page, p.id, false).await
}

/// `GET /a/{project}/messaging/surveys/{id}/responses.xlsx`.
pub(super) async fn responses_xlsx(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<SurveyPath>,
) -> PageResult<Response> {
    responses(&state, &page, p.id, true).await
}
