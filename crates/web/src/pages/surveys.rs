//! Survey pages: the list, the builder (new and edit; a plain form that a small script
//! enhances) and deletion. A survey's own page (`/surveys/{id}`: sessions, responses) is
//! another module's; the list links to it.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{DefaultBodyLimit, Path, RawForm, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use casecast_core::case::FieldError;
use casecast_core::survey::{Survey, MAX_QUESTIONS};
use casecast_core::template::{DEFAULT_KEY, MAX_CHARS};
use casecast_store::surveys::SurveyEditError;
use casecast_store::StoreError;
use serde::Deserialize;

use super::survey_form::{place_errors, QuestionForm, SurveyForm, TYPES};
use super::{html, to_list_page, Chrome, Flash};
use crate::api::surveys::SURVEY_BODY_LIMIT;
use crate::auth::ProjectPage;
use crate::error::PageResult;
use crate::AppState;

/// Surveys the list shows (the newest).
const LISTED: usize = 500;

/// The survey pages' routes.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/a/{project}/messaging/surveys", get(list))
        .route(
            "/a/{project}/messaging/surveys/new",
            get(new_form)
                .post(create)
                .layer(DefaultBodyLimit::max(SURVEY_BODY_LIMIT)),
        )
        .route(
            "/a/{project}/messaging/surveys/{id}/edit",
            get(edit_form)
                .post(update)
                .layer(DefaultBodyLimit::max(SURVEY_BODY_LIMIT)),
        )
        .route(
            "/a/{project}/messaging/surveys/{id}/delete",
            get(to_list_page).post(delete),
        )
}

#[derive(Deserialize)]
pub(super) struct SurveyPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

struct SurveyRow {
    id: i64,
    name: String,
    questions: usize,
    active: i64,
    completed: i64,
    created: String,
}

#[derive(Template)]
#[template(path = "surveys.html")]
struct SurveysPage {
    chrome: Chrome,
    slug: String,
    can_write: bool,
    surveys: Vec<SurveyRow>,
    more: bool,
    error: Option<String>,
    notice: Option<String>,
}

/// `GET …/messaging/surveys`.
async fn list(State(state): State<AppState>, page: ProjectPage, uri: Uri) -> PageResult<Response> {
    let flash = Flash::read(&page.me, &uri);
    let name = flash.get("name").unwrap_or_default();
    let notice = match flash.done() {
        Some("created") => Some(format!("The survey “{name}” was created.")),
        Some("saved") => Some(format!("The survey “{name}” was saved.")),
        Some("deleted") => Some(format!("The survey “{name}” was deleted.")),
        _ => None,
    };
    render_list(&state, &page, StatusCode::OK, None, notice).await
}

async fn render_list(
    state: &AppState,
    page: &ProjectPage,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> PageResult<Response> {
    let zone = page.project.zone();
    let found = state
        .db
        .survey_overviews(page.project.id, LISTED, None)
        .await?;
    let surveys = found
        .items
        .into_iter()
        .map(|o| SurveyRow {
            id: o.stored.id,
            questions: o.stored.survey.questions.len(),
            active: o.sessions.get("active").copied().unwrap_or(0),
            completed: o.sessions.get("completed").copied().unwrap_or(0),
            created: casecast_core::time::local_minute(o.stored.created_at, &zone),
            name: o.stored.survey.name,
        })
        .collect();
    let view = SurveysPage {
        chrome: Chrome::project(page, "surveys"),
        slug: page.project.slug.clone(),
        can_write: page.role.can_write(),
        surveys,
        more: found.next_cursor.is_some(),
        error,
        notice,
    };
    Ok((status, html(&view)?).into_response())
}

/// One input of the builder, with its errors.
struct Input {
    name: String,
    id: String,
    value: String,
    errors: Vec<String>,
}

/// A text and its translations.
struct TextInputs {
    default: Input,
    /// (language code, input).
    translations: Vec<(String, Input)>,
}

struct QuestionView {
    /// The index in the form's field names (`__Q__` in the script's template).
    index: String,
    /// 1-based, as shown.
    number: String,
    key: Input,
    kind: Input,
    text: TextInputs,
    required: bool,
    min: Input,
    max: Input,
    choices: Input,
    choice_translations: Vec<(String, Input)>,
    case_property: Input,
    invalid_text: TextInputs,
}

#[derive(Template)]
#[template(path = "survey_form.html")]
struct BuilderPage {
    chrome: Chrome,
    slug: String,
    /// Where the form posts.
    action: String,
    heading: String,
    /// The survey being edited.
    survey_id: Option<i64>,
    active_sessions: i64,
    name: Input,
    languages: Input,
    intro: TextInputs,
    end_text: TextInputs,
    invalid_text: TextInputs,
    max_attempts: Input,
    reminders_every: Input,
    reminders_times: Input,
    expire_after_minutes: Input,
    questions: Vec<QuestionView>,
    blank_question: QuestionView,
    types: Vec<(&'static str, &'static str)>,
    /// How many problems the last save found; those no field shows; a refusal.
    problem_count: i64,
    problems: Vec<String>,
    error: Option<String>,
    notice: Option<String>,
    max_chars: usize,
    max_questions: usize,
}

/// Builds inputs, taking each field's errors out of the map (what is left shows above).
struct Inputs<'a> {
    errors: &'a mut BTreeMap<String, Vec<String>>,
}

impl Inputs<'_> {
    fn one(&mut self, name: &str, value: &str) -> Input {
        Input {
            name: name.to_string(),
            id: name.replace('.', "-"),
            value: value.to_string(),
            errors: self.errors.remove(name).unwrap_or_default(),
        }
    }

    fn texts(
        &mut self,
        name: &str,
        map: &BTreeMap<String, String>,
        languages: &[String],
    ) -> TextInputs {
        let get = |l: &str| map.get(l).cloned().unwrap_or_default();
        TextInputs {
            default: self.one(name, &get(DEFAULT_KEY)),
            translations: languages
                .iter()
                .map(|l| (l.clone(), self.one(&format!("{name}.{l}"), &get(l))))
                .collect(),
        }
    }

    fn question(&mut self, index: &str, q: &QuestionForm, languages: &[String]) -> QuestionView {
        let at = |f: &str| format!("q{index}.{f}");
        QuestionView {
            number: index
                .parse::<usize>()
                .map(|i| (i + 1).to_string())
                .unwrap_or_default(),
            key: self.one(&at("key"), &q.key),
            kind: self.one(&at("type"), &q.kind),
            text: self.texts(&at("text"), &q.text, languages),
            required: q.required,
            min: self.one(&at("min"), &q.min),
            max: self.one(&at("max"), &q.max),
            choices: self.one(&at("choices"), &q.choices),
            choice_translations: languages
                .iter()
                .map(|l| {
                    let name = format!("{}.{l}", at("choices"));
                    let value = q.choice_texts.get(l).cloned().unwrap_or_default();
                    (l.clone(), self.one(&name, &value))
                })
                .collect(),
            case_property: self.one(&at("case_property"), &q.case_property),
            invalid_text: self.texts(&at("invalid_text"), &q.invalid_text, languages),
            index: index.to_string(),
        }
    }
}

/// What the builder shows besides the form.
#[derive(Default)]
struct Shown {
    errors: Vec<FieldError>,
    error: Option<String>,
    notice: Option<String>,
    active_sessions: i64,
}

fn builder(
    page: &ProjectPage,
    survey_id: Option<i64>,
    f: &SurveyForm,
    shown: Shown,
) -> BuilderPage {
    let (mut by_field, mut problems) = place_errors(&shown.errors);
    let mut inputs = Inputs {
        errors: &mut by_field,
    };
    let langs = &f.languages;
    let questions: Vec<QuestionView> = f
        .questions
        .iter()
        .enumerate()
        .map(|(i, q)| inputs.question(&i.to_string(), q, langs))
        .collect();
    let blank_question = inputs.question("__Q__", &QuestionForm::blank(), langs);
    let view_slug = page.project.slug.clone();
    let page_view = BuilderPage {
        chrome: Chrome::project(page, "surveys"),
        action: match survey_id {
            Some(id) => format!("/a/{view_slug}/messaging/surveys/{id}/edit"),
            None => format!("/a/{view_slug}/messaging/surveys/new"),
        },
        heading: match survey_id {
            Some(_) => format!("Edit survey “{}”", f.name.trim()),
            None => "New survey".to_string(),
        },
        slug: view_slug,
        survey_id,
        active_sessions: shown.active_sessions,
        name: inputs.one("name", &f.name),
        languages: inputs.one("languages", &f.languages_text),
        intro: inputs.texts("intro", &f.intro, langs),
        end_text: inputs.texts("end_text", &f.end_text, langs),
        invalid_text: inputs.texts("invalid_text", &f.invalid_text, langs),
        max_attempts: inputs.one("max_attempts", &f.max_attempts),
        reminders_every: inputs.one("reminders_every", &f.reminders_every),
        reminders_times: inputs.one("reminders_times", &f.reminders_times),
        expire_after_minutes: inputs.one("expire_after_minutes", &f.expire_after_minutes),
        questions,
        blank_question,
        types: TYPES.to_vec(),
        problem_count: shown.errors.len() as i64,
        problems: Vec::new(),
        error: shown.error,
        notice: shown.notice,
        max_chars: MAX_CHARS,
        max_questions: MAX_QUESTIONS,
    };
    // Errors of fields the form did not show (a removed question's, say) go above it.
    for (field, messages) in by_field {
        for m in messages {
            problems.push(format!("{field}: {m}"));
        }
    }
    BuilderPage {
        problems,
        ..page_view
    }
}

fn render(status: StatusCode, view: &BuilderPage) -> PageResult<Response> {
    Ok((status, html(view)?).into_response())
}

/// `GET …/surveys/new`.
async fn new_form(page: ProjectPage) -> PageResult<Response> {
    page.require_write()?;
    let view = builder(&page, None, &SurveyForm::blank(), Shown::default());
    render(StatusCode::OK, &view)
}

/// `GET …/surveys/{id}/edit`.
async fn edit_form(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<SurveyPath>,
) -> PageResult<Response> {
    page.require_write()?;
    let o = state.db.survey_overview(page.project.id, p.id).await?;
    let active = o.sessions.get("active").copied().unwrap_or(0);
    let shown = Shown {
        active_sessions: active,
        ..Default::default()
    };
    let view = builder(&page, Some(p.id), &SurveyForm::of(&o.stored.survey), shown);
    render(StatusCode::OK, &view)
}

/// What a posted builder form asks for.
enum Outcome {
    /// Show the form again (changed), status and what to show.
    Again(StatusCode, Shown),
    /// Save this survey.
    Save(Survey),
}

/// Reads the form's action: the buttons that change the form show it again; saving checks it.
fn outcome(f: &mut SurveyForm, mut errors: Vec<FieldError>) -> Outcome {
    let action = f.action.clone();
    if action == "add_question" {
        if f.questions.len() >= MAX_QUESTIONS {
            errors.push(FieldError::new(
                "questions",
                format!("a survey may have at most {MAX_QUESTIONS} questions"),
            ));
        } else {
            f.questions.push(QuestionForm::blank());
        }
        return Outcome::Again(
            StatusCode::OK,
            Shown {
                errors,
                ..Default::default()
            },
        );
    }
    if let Some(i) = action.strip_prefix("remove_") {
        if let Ok(i) = i.parse::<usize>() {
            if i < f.questions.len() {
                f.questions.remove(i);
            }
        }
        return Outcome::Again(
            StatusCode::OK,
            Shown {
                errors,
                ..Default::default()
            },
        );
    }
    if action == "languages" {
        return Outcome::Again(
            StatusCode::OK,
            Shown {
                errors,
                ..Default::default()
            },
        );
    }
    let (json, more) = f.to_json();
    errors.extend(more);
    match Survey::parse(&json) {
        Ok(s) if errors.is_empty() => Outcome::Save(s),
        Ok(_) => Outcome::Again(
            StatusCode::UNPROCESSABLE_ENTITY,
            Shown {
                errors,
                ..Default::default()
            },
        ),
        Err(found) => {
            // A field the form already faulted (a number that was not one) is not faulted twice.
            for e in found {
                if !errors.iter().any(|x| x.field == e.field) {
                    errors.push(e);
                }
            }
            Outcome::Again(
                StatusCode::UNPROCESSABLE_ENTITY,
                Shown {
                    errors,
                    ..Default::default()
                },
            )
        }
    }
}

/// A conflict refused by storage, shown on the form: the name's (next to it) or another.
fn refused(status: StatusCode, code: &str, message: String) -> Outcome {
    let shown = if code == "name_taken" {
        Shown {
            errors: vec![FieldError::new("name", message)],
            ..Default::default()
        }
    } else {
        Shown {
            error: Some(message),
            ..Default::default()
        }
    };
    Outcome::Again(status, shown)
}

/// `POST …/surveys/new`.
async fn create(
    State(state): State<AppState>,
    page: ProjectPage,
    RawForm(body): RawForm,
) -> PageResult<Response> {
    let (mut f, errors) = SurveyForm::parse(&body);
    page.me.check_csrf(&f.csrf)?;
    page.require_write()?;
    let shown = match outcome(&mut f, errors) {
        Outcome::Save(survey) => {
            match state
                .db
                .create_survey(page.project.id, &survey, Some(page.me.user.id))
                .await
            {
                Ok(s) => {
                    tracing::info!(
                        survey.id = s.id,
                        project.id = page.project.id,
                        "survey created"
                    );
                    return Ok(Flash::new("created")
                        .with("name", &s.survey.name)
                        .redirect(&page.me, &list_url(&page)));
                }
                Err(StoreError::Conflict { code, message }) => {
                    refused(StatusCode::CONFLICT, code, message)
                }
                Err(e) => return Err(e.into()),
            }
        }
        again => again,
    };
    let Outcome::Again(status, shown) = shown else {
        return Err(StoreError::internal("a saved survey was shown again").into());
    };
    render(status, &builder(&page, None, &f, shown))
}

/// `POST …/surveys/{id}/edit`.
async fn update(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<SurveyPath>,
    RawForm(body): RawForm,
) -> PageResult<Response> {
    let (mut f, errors) = SurveyForm::parse(&body);
    page.me.check_csrf(&f.csrf)?;
    page.require_write()?;
    // 404 before anything else for a survey that is not the project's.
    let current = state.db.survey_overview(page.project.id, p.id).await?;
    let active = current.sessions.get("active").copied().unwrap_or(0);
    let result = match outcome(&mut f, errors) {
        Outcome::Save(survey) => {
            match state
                .db
                .update_survey(page.project.id, p.id, |_| Ok(survey))
                .await
            {
                Ok(s) => {
                    tracing::info!(
                        survey.id = s.id,
                        project.id = page.project.id,
                        "survey changed"
                    );
                    return Ok(Flash::new("saved")
                        .with("name", &s.survey.name)
                        .redirect(&page.me, &list_url(&page)));
                }
                Err(SurveyEditError::Store(StoreError::Conflict { code, message })) => {
                    refused(StatusCode::CONFLICT, code, message)
                }
                Err(SurveyEditError::Invalid(errors)) => Outcome::Again(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Shown {
                        errors,
                        ..Default::default()
                    },
                ),
                Err(SurveyEditError::Store(e)) => return Err(e.into()),
            }
        }
        again => again,
    };
    let Outcome::Again(status, mut shown) = result else {
        return Err(StoreError::internal("a saved survey was shown again").into());
    };
    shown.active_sessions = active;
    render(status, &builder(&page, Some(p.id), &f, shown))
}

/// `POST …/surveys/{id}/delete`.
async fn delete(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<SurveyPath>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_write()?;
    let survey = state.db.survey(page.project.id, p.id).await?;
    match state.db.delete_survey(page.project.id, p.id).await {
        Ok(()) => {
            tracing::info!(
                survey.id = p.id,
                project.id = page.project.id,
                "survey deleted"
            );
            Ok(Flash::new("deleted")
                .with("name", &survey.survey.name)
                .redirect(&page.me, &list_url(&page)))
        }
        Err(StoreError::Conflict { message, .. }) => {
            let error = format!("“{}” was not deleted: {message}.", survey.survey.name);
            render_list(&state, &page, StatusCode::CONFLICT, Some(error), None).await
        }
        Err(e) => Err(e.into()),
    }
}

fn list_url(page: &ProjectPage) -> String {
    format!("/a/{}/messaging/surveys", page.project.slug)
}
