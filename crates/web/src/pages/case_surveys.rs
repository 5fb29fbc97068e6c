//! The case page's "Surveys" section: the case's survey sessions (survey, status, answers) with
//! the messages of each in order, and the form that starts one of the project's surveys for the
//! case (`POST /a/{project}/cases/{case_id}/surveys`, editors and admins).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use casecast_store::survey_responses::answer_cell;
use casecast_store::surveys::StoredSurvey;
use casecast_store::{Db, StoreError, StoreResult};
use serde::Deserialize;

use super::cases::{render_case, sentence, SendOutcome};
use super::messages::MessageRow;
use crate::auth::{percent_encode, ProjectPage};
use crate::error::PageResult;
use crate::AppState;

/// Sessions the case page shows (the newest).
const SESSIONS_SHOWN: i64 = 20;
/// Messages the case page shows per session (the first).
const MESSAGES_SHOWN: usize = 100;

/// One session of the case, as its page shows it.
pub(crate) struct SessionView {
    pub(crate) id: i64,
    pub(crate) survey_id: i64,
    pub(crate) survey_name: String,
    pub(crate) status: &'static str,
    pub(crate) reason: String,
    pub(crate) started: String,
    pub(crate) completed: String,
    /// Answers in the survey's question order: (key, answer).
    pub(crate) answers: Vec<(String, String)>,
    pub(crate) messages: Vec<MessageRow>,
    pub(crate) more_messages: bool,
}

/// The case page's "Surveys" section.
#[derive(Default)]
pub(crate) struct CaseSurveys {
    pub(crate) sessions: Vec<SessionView>,
    /// The project's surveys (id, name), to start one.
    pub(crate) surveys: Vec<(i64, String)>,
    /// The name of the survey the case is answering now, if any (starting another ends it).
    pub(crate) active: Option<String>,
}

/// The answers of a session in its survey's question order, then any key the survey no longer
/// has.
fn ordered_answers(
    answers: &serde_json::Map<String, serde_json::Value>,
    survey: Option<&StoredSurvey>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(answers.len());
    if let Some(s) = survey {
        for q in &s.survey.questions {
            if let Some(v) = answers.get(&q.key) {
                out.push((q.key.clone(), answer_cell(Some(v))));
            }
        }
    }
    for (k, v) in answers {
        if !out.iter().any(|(key, _)| key == k) {
            out.push((k.clone(), answer_cell(Some(v))));
        }
    }
    out
}

/// The case's sessions (newest first) with their messages, and the project's surveys.
pub(crate) async fn case_surveys(
    db: &Db,
    page: &ProjectPage,
    case_pk: i64,
    gateways: &HashMap<i64, String>,
) -> StoreResult<CaseSurveys> {
    let project = &page.project;
    let zone = project.zone();
    let surveys = db.list_surveys(project.id).await?;
    let sessions = db
        .sessions_of_case(project.id, case_pk, SESSIONS_SHOWN)
        .await?;
    let mut views = Vec::with_capacity(sessions.len());
    for s in sessions {
        let survey = surveys.iter().find(|v| v.id == s.survey_id);
        let mut messages = db.messages_of_session(project.id, s.id).await?;
        let more_messages = messages.len() > MESSAGES_SHOWN;
        messages.truncate(MESSAGES_SHOWN);
        let local = |t: i64| casecast_core::time::local_minute(t, &zone);
        views.push(SessionView {
            id: s.id,
            survey_id: s.survey_id,
            survey_name: survey.map(|v| v.survey.name.clone()).unwrap_or_default(),
            status: s.status.as_str(),
            reason: s.reason.clone().unwrap_or_default(),
            started: local(s.started_at),
            completed: s.completed_at.map(local).unwrap_or_default(),
            answers: ordered_answers(&s.answers, survey),
            messages: messages
                .into_iter()
                .map(|m| MessageRow::new(m, &zone, gateways, page.role))
                .collect(),
            more_messages,
        });
    }
    let active = views
        .first()
        .filter(|v| v.status == "active")
        .map(|v| v.survey_name.clone());
    Ok(CaseSurveys {
        active,
        sessions: views,
        surveys: surveys.into_iter().map(|s| (s.id, s.survey.name)).collect(),
    })
}

#[derive(Deserialize)]
pub(super) struct StartForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    survey_id: String,
    /// "1": the user agreed to end the case's open session.
    #[serde(default)]
    replace: String,
}

/// `POST /a/{project}/cases/{case_id}/surveys`: starts the chosen survey for the case now
/// (its active session ends as cancelled), then back to the case page with a notice; a refusal
/// (closed, no phone, opted out, no gateway, no such survey) shows the case page again with why.
pub(super) async fn start(
    State(state): State<AppState>,
    page: ProjectPage,
    Path((_, case_id)): Path<(String, String)>,
    Form(form): Form<StartForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_write()?;
    let refuse = |status: StatusCode, error: String| {
        let outcome = SendOutcome {
            survey_error: Some(error),
            ..Default::default()
        };
        (status, outcome)
    };
    let (status, outcome) = match form.survey_id.trim().parse::<i64>() {
        Err(_) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Survey: choose one of the list.".into(),
        ),
        Ok(_) if form.replace != "1" && answering(&state, &page, &case_id).await? => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The case is answering a survey now: tick \"End its open survey\" to start another."
                .into(),
        ),
        Ok(survey_id) => {
            let started = casecast_engine::surveys::start_for_case(
                &state.db,
                &*state.clock,
                &page.project,
                survey_id,
                &case_id,
                Some(page.me.user.id),
            )
            .await;
            match started {
                Ok(session) => {
                    tracing::info!(
                        session.id = session.id,
                        survey.id = survey_id,
                        project.id = page.project.id,
                        "survey started for a case from its page"
                    );
                    return Ok(Redirect::to(&format!(
                        "/a/{}/cases/{}?done=survey_started#surveys",
                        page.project.slug,
                        percent_encode(&case_id)
                    ))
                    .into_response());
                }
                Err(StoreError::Conflict { message, .. }) => {
                    refuse(StatusCode::CONFLICT, sentence(&message))
                }
                Err(StoreError::Invalid(_)) => refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Survey: choose one of the list.".into(),
                ),
                Err(e) => return Err(e.into()),
            }
        }
    };
    render_case(&state, &page, &case_id, status, outcome).await
}

/// Whether the case has an active survey session now.
async fn answering(state: &AppState, page: &ProjectPage, case_id: &str) -> StoreResult<bool> {
    let Some(case) = state.db.case_recipient(page.project.id, case_id).await? else {
        return Ok(false);
    };
    let newest = state
        .db
        .sessions_of_case(page.project.id, case.case_pk, 1)
        .await?;
    Ok(newest
        .first()
        .is_some_and(|s| s.status == casecast_core::survey::session::SessionStatus::Active))
}
