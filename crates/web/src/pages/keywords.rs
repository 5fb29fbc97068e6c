//! Keyword pages: the list (each keyword with its use), a keyword's page (its definition, use
//! and the last messages that matched it), the form (new and edit; plain HTML, no script) and
//! deletion. Everyone in the project sees them; editors and admins change them.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{DefaultBodyLimit, Path, RawForm, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use casecast_core::case::FieldError;
use casecast_core::keyword::{Action, Keyword, UnknownSender, MAX_ACTIONS};
use casecast_core::template::MAX_CHARS;
use casecast_store::keywords::{KeywordUse, StoredKeyword};
use casecast_store::StoreError;
use serde::Deserialize;

use super::keyword_form::{message_of, ActionForm, KeywordForm, ACTION_TYPES};
use super::messages::{gateway_names, MessageRow};
use super::{html, to_list_page, Chrome, Flash};
use crate::api::keywords::{check_references, reserved, KEYWORD_BODY_LIMIT};
use crate::auth::ProjectPage;
use crate::error::PageResult;
use crate::AppState;

/// The messages a keyword's page shows (the newest that matched it).
const RECENT: i64 = 20;
/// The longest form: a keyword at its limits, URL-encoded (up to three times longer).
const FORM_LIMIT: usize = 3 * KEYWORD_BODY_LIMIT;

/// The keyword pages' routes.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/a/{project}/messaging/keywords", get(list))
        .route(
            "/a/{project}/messaging/keywords/new",
            get(new_form)
                .post(create)
                .layer(DefaultBodyLimit::max(FORM_LIMIT)),
        )
        .route("/a/{project}/messaging/keywords/{id}", get(show))
        .route(
            "/a/{project}/messaging/keywords/{id}/edit",
            get(edit_form)
                .post(update)
                .layer(DefaultBodyLimit::max(FORM_LIMIT)),
        )
        .route(
            "/a/{project}/messaging/keywords/{id}/delete",
            get(to_list_page).post(delete),
        )
}

#[derive(Deserialize)]
struct KeywordPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The names of the project's surveys and case groups by id, for summaries and selects.
struct Names {
    surveys: Vec<(i64, String)>,
    groups: Vec<(i64, String)>,
}

impl Names {
    async fn of(state: &AppState, project_id: i64) -> PageResult<Names> {
        let mut surveys: Vec<(i64, String)> = state
            .db
            .list_surveys(project_id)
            .await?
            .into_iter()
            .map(|s| (s.id, s.survey.name))
            .collect();
        surveys.sort_by_key(|(_, n)| n.to_lowercase());
        let groups = state
            .db
            .list_groups(project_id)
            .await?
            .into_iter()
            .map(|g| (g.id, g.name))
            .collect();
        Ok(Names { surveys, groups })
    }

    fn survey(&self, id: i64) -> String {
        name_in(&self.surveys, id).unwrap_or_else(|| format!("deleted survey #{id}"))
    }

    fn group(&self, id: i64) -> String {
        name_in(&self.groups, id).unwrap_or_else(|| format!("deleted case group #{id}"))
    }
}

fn name_in(list: &[(i64, String)], id: i64) -> Option<String> {
    list.iter().find(|(i, _)| *i == id).map(|(_, n)| n.clone())
}

/// Characters of a reply shown in a summary.
const SUMMARY_CHARS: usize = 60;

fn shorten(text: &str) -> String {
    if text.chars().count() > SUMMARY_CHARS {
        let mut t: String = text.chars().take(SUMMARY_CHARS - 1).collect();
        t.push('…');
        t
    } else {
        text.to_string()
    }
}

/// An action as a person reads it: `reply “Welcome…”`, `start survey “Follow-up”`.
fn summary(action: &Action, names: &Names) -> String {
    match action {
        Action::Reply { text } => {
            let default = text
                .templates()
                .next()
                .map(|(_, t)| t.as_str().to_string())
                .unwrap_or_default();
            let languages = text.templates().count();
            let more = if languages > 1 {
                format!(" (+{} translations)", languages - 1)
            } else {
                String::new()
            };
            format!("reply “{}”{more}", shorten(&default))
        }
        Action::StartSurvey { survey_id } => {
            format!("start survey “{}”", names.survey(*survey_id))
        }
        Action::AddToGroup { case_group_id } => {
            format!("add to group “{}”", names.group(*case_group_id))
        }
        Action::RemoveFromGroup { case_group_id } => {
            format!("remove from group “{}”", names.group(*case_group_id))
        }
        Action::SetProperties { dates } => {
            if dates.is_empty() {
                "save the fields to the case".to_string()
            } else {
                format!("save the fields to the case (dates: {})", dates.join(", "))
            }
        }
    }
}

fn unknown_summary(k: &Keyword) -> String {
    match k.unknown_sender {
        UnknownSender::Ignore => "ignored (logged only)".to_string(),
        UnknownSender::Reply => "gets the reply below; no action runs".to_string(),
        UnknownSender::CreateCase => format!(
            "a new case of type “{}” is made with the number, then the actions run",
            k.case_type
        ),
    }
}

struct KeywordRow {
    id: i64,
    keyword: String,
    usage: String,
    actions: Vec<String>,
    last_7_days: i64,
    last_30_days: i64,
}

#[derive(Template)]
#[template(path = "keywords.html")]
struct KeywordsPage {
    chrome: Chrome,
    slug: String,
    can_write: bool,
    keywords: Vec<KeywordRow>,
    notice: Option<String>,
}

/// `GET …/messaging/keywords`.
async fn list(State(state): State<AppState>, page: ProjectPage, uri: Uri) -> PageResult<Response> {
    let flash = Flash::read(&page.me, &uri);
    let word = flash.get("keyword").unwrap_or_default();
    let notice = match flash.done() {
        Some("created") => Some(format!("The keyword {word} was created.")),
        Some("deleted") => Some(format!("The keyword {word} was deleted.")),
        _ => None,
    };
    let project_id = page.project.id;
    let names = Names::of(&state, project_id).await?;
    let uses = state
        .db
        .keyword_uses(project_id, casecast_core::time::now_ms())
        .await?;
    let keywords = state
        .db
        .list_keywords(project_id)
        .await?
        .into_iter()
        .map(|s| {
            let u = uses.get(&s.id).copied().unwrap_or_default();
            KeywordRow {
                id: s.id,
                usage: s.keyword.usage(),
                actions: s
                    .keyword
                    .actions
                    .iter()
                    .map(|a| summary(a, &names))
                    .collect(),
                keyword: s.keyword.keyword,
                last_7_days: u.last_7_days,
                last_30_days: u.last_30_days,
            }
        })
        .collect();
    let view = KeywordsPage {
        chrome: Chrome::project(&page, "keywords"),
        slug: page.project.slug.clone(),
        can_write: page.role.can_write(),
        keywords,
        notice,
    };
    Ok(html(&view)?.into_response())
}

#[derive(Template)]
#[template(path = "keyword.html")]
struct KeywordPage {
    chrome: Chrome,
    slug: String,
    can_write: bool,
    id: i64,
    keyword: String,
    usage: String,
    fields: Vec<String>,
    actions: Vec<String>,
    override_open_survey: bool,
    unknown: String,
    /// The reply to a number with no case, by language (`*` first), when it is sent.
    unknown_reply: Vec<(String, String)>,
    /// Every reply's texts, for the definition (action position, language, text).
    replies: Vec<(usize, String, String)>,
    usage_counts: KeywordUse,
    messages: Vec<MessageRow>,
    notice: Option<String>,
}

fn texts(content: &casecast_core::template::Content) -> Vec<(String, String)> {
    content
        .templates()
        .map(|(l, t)| (l.to_string(), t.as_str().to_string()))
        .collect()
}

async fn render_show(
    state: &AppState,
    page: &ProjectPage,
    stored: StoredKeyword,
    notice: Option<String>,
) -> PageResult<Response> {
    let project_id = page.project.id;
    let names = Names::of(state, project_id).await?;
    let usage_counts = state
        .db
        .keyword_use(project_id, stored.id, casecast_core::time::now_ms())
        .await?;
    let zone = page.project.zone();
    let gateways = gateway_names(state, project_id).await?;
    let messages = state
        .db
        .keyword_messages(project_id, stored.id, RECENT)
        .await?
        .into_iter()
        .map(|m| MessageRow::new(m, &zone, &gateways, page.role))
        .collect();
    let k = &stored.keyword;
    let replies = k
        .actions
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a {
            Action::Reply { text } => Some(
                texts(text)
                    .into_iter()
                    .map(move |(l, t)| (i + 1, l, t))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    let view = KeywordPage {
        chrome: Chrome::project(page, "keywords"),
        slug: page.project.slug.clone(),
        can_write: page.role.can_write(),
        id: stored.id,
        keyword: k.keyword.clone(),
        usage: k.usage(),
        fields: k.fields.clone(),
        actions: k.actions.iter().map(|a| summary(a, &names)).collect(),
        override_open_survey: k.override_open_survey,
        unknown: unknown_summary(k),
        unknown_reply: match (&k.unknown_sender, &k.unknown_reply) {
            (UnknownSender::Reply, Some(c)) => texts(c),
            _ => Vec::new(),
        },
        replies,
        usage_counts,
        messages,
        notice,
    };
    Ok(html(&view)?.into_response())
}

/// `GET …/messaging/keywords/{id}`.
async fn show(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<KeywordPath>,
    uri: Uri,
) -> PageResult<Response> {
    let stored = state.db.keyword(page.project.id, p.id).await?;
    let notice = match Flash::read(&page.me, &uri).done() {
        Some("saved") => Some("The keyword was saved.".to_string()),
        _ => None,
    };
    render_show(&state, &page, stored, notice).await
}

/// One input of the form, with its errors.
struct Input {
    name: String,
    id: String,
    value: String,
    errors: Vec<String>,
}

struct ActionRow {
    /// 1-based, as shown.
    number: usize,
    kind: Input,
    text: Input,
    translations: Input,
    survey_id: Input,
    case_group_id: Input,
    dates: Input,
}

#[derive(Template)]
#[template(path = "keyword_form.html")]
struct FormPage {
    chrome: Chrome,
    slug: String,
    action: String,
    heading: String,
    keyword_id: Option<i64>,
    keyword: Input,
    fields: Input,
    override_open_survey: bool,
    unknown_sender: Input,
    unknown_reply: Input,
    unknown_reply_translations: Input,
    case_type: Input,
    actions_errors: Vec<String>,
    rows: Vec<ActionRow>,
    types: Vec<(&'static str, &'static str)>,
    /// (value, name); a stored id that is not the project's any more has its own option.
    surveys: Vec<(String, String)>,
    groups: Vec<(String, String)>,
    problem_count: i64,
    problems: Vec<String>,
    max_chars: usize,
    max_actions: usize,
}

struct Inputs {
    errors: BTreeMap<String, Vec<String>>,
}

impl Inputs {
    fn one(&mut self, name: &str, value: &str) -> Input {
        Input {
            name: name.to_string(),
            id: name.replace('.', "-"),
            value: value.to_string(),
            errors: self.errors.remove(name).unwrap_or_default(),
        }
    }

    fn row(&mut self, i: usize, a: &ActionForm) -> ActionRow {
        let at = |f: &str| format!("a{i}.{f}");
        ActionRow {
            number: i + 1,
            kind: self.one(&at("type"), &a.kind),
            text: self.one(&at("text"), &a.text),
            translations: self.one(&at("translations"), &a.translations),
            survey_id: self.one(&at("survey_id"), &a.survey_id),
            case_group_id: self.one(&at("case_group_id"), &a.case_group_id),
            dates: self.one(&at("dates"), &a.dates),
        }
    }
}

/// Options of a select: the list, and the chosen values that are not in it.
fn options(list: &[(i64, String)], chosen: &[&str], missing: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = list
        .iter()
        .map(|(id, name)| (id.to_string(), name.clone()))
        .collect();
    for c in chosen {
        let c = c.trim();
        if !c.is_empty() && !out.iter().any(|(v, _)| v == c) {
            out.push((c.to_string(), format!("{missing} #{c}")));
        }
    }
    out
}

fn form_page(
    page: &ProjectPage,
    keyword_id: Option<i64>,
    f: &KeywordForm,
    errors: &[FieldError],
    names: &Names,
) -> FormPage {
    let mut by_input: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for e in errors {
        match f.input_of(e) {
            Some(input) => by_input.entry(input).or_default().push(message_of(e)),
            None => problems.push(e.to_string()),
        }
    }
    let mut inputs = Inputs { errors: by_input };
    let rows: Vec<ActionRow> = f
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| inputs.row(i, a))
        .collect();
    let slug = page.project.slug.clone();
    let surveys: Vec<&str> = f.actions.iter().map(|a| a.survey_id.as_str()).collect();
    let groups: Vec<&str> = f.actions.iter().map(|a| a.case_group_id.as_str()).collect();
    let mut view = FormPage {
        chrome: Chrome::project(page, "keywords"),
        action: match keyword_id {
            Some(id) => format!("/a/{slug}/messaging/keywords/{id}/edit"),
            None => format!("/a/{slug}/messaging/keywords/new"),
        },
        heading: match keyword_id {
            Some(_) => format!("Edit keyword {}", f.keyword.trim()),
            None => "New keyword".to_string(),
        },
        slug,
        keyword_id,
        keyword: inputs.one("keyword", &f.keyword),
        fields: inputs.one("fields", &f.fields),
        override_open_survey: f.override_open_survey,
        unknown_sender: inputs.one("unknown_sender", &f.unknown_sender),
        unknown_reply: inputs.one("unknown_reply", &f.unknown_reply),
        unknown_reply_translations: inputs
            .one("unknown_reply.translations", &f.unknown_reply_translations),
        case_type: inputs.one("case_type", &f.case_type),
        actions_errors: inputs
            .errors
            .remove("actions")
            .unwrap_or_default()
            .into_iter()
            .chain(
                inputs
                    .errors
                    .remove("override_open_survey")
                    .unwrap_or_default(),
            )
            .collect(),
        rows,
        types: ACTION_TYPES.to_vec(),
        surveys: options(&names.surveys, &surveys, "deleted survey"),
        groups: options(&names.groups, &groups, "deleted case group"),
        problem_count: errors.len() as i64,
        problems,
        max_chars: MAX_CHARS,
        max_actions: MAX_ACTIONS,
    };
    // Errors of inputs the form did not show go above it.
    for (input, messages) in std::mem::take(&mut inputs.errors) {
        for m in messages {
            view.problems.push(format!("{input}: {m}"));
        }
    }
    view
}

fn render_form(status: StatusCode, view: &FormPage) -> PageResult<Response> {
    Ok((status, html(view)?).into_response())
}

/// `GET …/keywords/new`.
async fn new_form(State(state): State<AppState>, page: ProjectPage) -> PageResult<Response> {
    page.require_write()?;
    let names = Names::of(&state, page.project.id).await?;
    let view = form_page(&page, None, &KeywordForm::blank(), &[], &names);
    render_form(StatusCode::OK, &view)
}

/// `GET …/keywords/{id}/edit`.
async fn edit_form(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<KeywordPath>,
) -> PageResult<Response> {
    page.require_write()?;
    let stored = state.db.keyword(page.project.id, p.id).await?;
    let names = Names::of(&state, page.project.id).await?;
    let view = form_page(
        &page,
        Some(p.id),
        &KeywordForm::of(&stored.keyword),
        &[],
        &names,
    );
    render_form(StatusCode::OK, &view)
}

/// The checked keyword of a posted form, or every problem (the form's, the rules', and the
/// references' to surveys and groups that are not the project's).
async fn checked(
    state: &AppState,
    page: &ProjectPage,
    f: &KeywordForm,
) -> PageResult<Result<Keyword, Vec<FieldError>>> {
    let (json, mut errors) = f.to_json();
    match Keyword::parse(&json, &reserved(&page.project)) {
        Ok(k) => {
            errors.extend(check_references(&state.db, page.project.id, &k).await?);
            Ok(if errors.is_empty() {
                Ok(k)
            } else {
                Err(errors)
            })
        }
        Err(found) => {
            errors.extend(found);
            Ok(Err(errors))
        }
    }
}

/// A refusal of storage shown on the form: `keyword_taken` next to the keyword.
fn refused(e: StoreError) -> PageResult<Vec<FieldError>> {
    match e {
        StoreError::Conflict {
            code: "keyword_taken",
            message,
        } => Ok(vec![FieldError::new("keyword", message)]),
        e => Err(e.into()),
    }
}

/// `POST …/keywords/new`.
async fn create(
    State(state): State<AppState>,
    page: ProjectPage,
    RawForm(body): RawForm,
) -> PageResult<Response> {
    let f = KeywordForm::parse(&body);
    page.me.check_csrf(&f.csrf)?;
    page.require_write()?;
    let (status, errors) = match checked(&state, &page, &f).await? {
        Ok(k) => match state
            .db
            .create_keyword(page.project.id, &k, Some(page.me.user.id))
            .await
        {
            Ok(s) => {
                tracing::info!(
                    keyword.id = s.id,
                    project.id = page.project.id,
                    "keyword created"
                );
                return Ok(Flash::new("created")
                    .with("keyword", &s.keyword.keyword)
                    .redirect(&page.me, &list_url(&page)));
            }
            Err(e) => (StatusCode::CONFLICT, refused(e)?),
        },
        Err(errors) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
    };
    let names = Names::of(&state, page.project.id).await?;
    render_form(status, &form_page(&page, None, &f, &errors, &names))
}

/// `POST …/keywords/{id}/edit`.
async fn update(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<KeywordPath>,
    RawForm(body): RawForm,
) -> PageResult<Response> {
    let f = KeywordForm::parse(&body);
    page.me.check_csrf(&f.csrf)?;
    page.require_write()?;
    // 404 before anything else for a keyword that is not the project's.
    state.db.keyword(page.project.id, p.id).await?;
    let (status, errors) = match checked(&state, &page, &f).await? {
        Ok(k) => match state.db.update_keyword(page.project.id, p.id, &k).await {
            Ok(s) => {
                tracing::info!(
                    keyword.id = s.id,
                    project.id = page.project.id,
                    "keyword changed"
                );
                return Ok(Flash::new("saved")
                    .redirect(&page.me, &format!("{}/{}", list_url(&page), s.id)));
            }
            Err(e) => (StatusCode::CONFLICT, refused(e)?),
        },
        Err(errors) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
    };
    let names = Names::of(&state, page.project.id).await?;
    render_form(status, &form_page(&page, Some(p.id), &f, &errors, &names))
}

/// `POST …/keywords/{id}/delete`.
async fn delete(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<KeywordPath>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_write()?;
    let stored = state.db.keyword(page.project.id, p.id).await?;
    state.db.delete_keyword(page.project.id, p.id).await?;
    tracing::info!(
        keyword.id = p.id,
        project.id = page.project.id,
        "keyword deleted"
    );
    Ok(Flash::new("deleted")
        .with("keyword", &stored.keyword.keyword)
        .redirect(&page.me, &list_url(&page)))
}

fn list_url(page: &ProjectPage) -> String {
    format!("/a/{}/messaging/keywords", page.project.slug)
}

/// The project's keywords by id (for the message log: its filter and the keyword of each
/// message).
pub(super) async fn keyword_words(
    state: &AppState,
    project_id: i64,
) -> PageResult<HashMap<i64, String>> {
    Ok(state
        .db
        .list_keywords(project_id)
        .await?
        .into_iter()
        .map(|k| (k.id, k.keyword.keyword))
        .collect())
}
