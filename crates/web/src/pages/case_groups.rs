//! Case group pages: the list, a group (members, single add, uploads, rename, remove, history),
//! an upload's progress and results, and the downloads behind a session.

use askama::Template;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use casecast_core::identifier::{GroupName, Outcome};
use casecast_core::sheet_out;
use casecast_core::states::JobStatus;
use casecast_engine::smart_groups::{self, SaveError};
use casecast_store::case_groups::{Actor, CaseGroup};
use casecast_store::membership::{Change, ItemResult};
use casecast_store::uploads::{ResultRow, Upload};
use casecast_store::StoreError;
use serde::Deserialize;

use super::cases::CaseView;
use super::{html, Chrome, Flash};
use crate::api::uploads::UploadJson;
use crate::auth::{percent_encode, ProjectPage};
use crate::downloads::{download, Sheet, XLSX};
use crate::error::{PageError, PageResult};
use crate::AppState;

const PAGE_SIZE: usize = 50;
const RESULTS_SHOWN: usize = 500;

struct GroupRow {
    id: i64,
    name: String,
    case_count: i64,
    /// Whether it is a smart group (its members follow its query).
    smart: bool,
    created: String,
    modified: String,
}

fn group_row(g: CaseGroup, zone: &jiff::tz::TimeZone) -> GroupRow {
    GroupRow {
        id: g.id,
        name: g.name,
        case_count: g.case_count,
        smart: g.query.is_some(),
        created: casecast_core::time::local_minute(g.created_at, zone),
        modified: casecast_core::time::local_minute(g.modified_at, zone),
    }
}

/// A smart group's query and freshness, as its page shows them.
struct SmartView {
    /// The query with group names (what the edit box holds unless a refused edit is shown).
    query: String,
    /// Up to when the members follow every case write, in the project's zone.
    as_of: Option<String>,
    /// Cases waiting to be looked at: the members may be a few seconds behind.
    behind: bool,
}

#[derive(Template)]
#[template(path = "case_groups.html")]
struct GroupsPage {
    chrome: Chrome,
    slug: String,
    can_write: bool,
    groups: Vec<GroupRow>,
    name: String,
    /// The create form's query (a smart group), kept when it was refused.
    query: String,
    error: Option<String>,
    notice: Option<String>,
}

/// The outcome of a single add, as the page shows it.
struct AddResult {
    outcome: String,
    /// How it is shown: `success`, `warning` (added, but the case is closed) or `error`.
    level: &'static str,
    headline: String,
    message: String,
    /// (case ID, label) of each case an ambiguous identifier matched.
    choices: Vec<(String, String)>,
}

impl AddResult {
    fn new(r: ItemResult, name: Option<String>) -> Self {
        let who = match (name, &r.case_id) {
            (Some(n), Some(id)) => format!("{n} (case ID {id})"),
            (_, id) => format!("case {}", id.clone().unwrap_or_default()),
        };
        let headline = match r.outcome {
            Outcome::Added => format!("Added {who}."),
            Outcome::AlreadyInGroup => format!("{who} is already in this group."),
            Outcome::NotFound => format!("No case found for “{}”.", r.identifier),
            Outcome::Ambiguous => format!(
                "“{}” matches several cases; nothing was added. Pick one:",
                r.identifier
            ),
            Outcome::Deleted => format!(
                "“{}” names a deleted case; nothing was added.",
                r.identifier
            ),
            Outcome::Invalid => {
                "That is not a case ID, an external ID or a phone number.".to_string()
            }
            Outcome::Blank => "Type a case ID, an external ID or a phone number.".to_string(),
            other => other.as_str().to_string(),
        };
        let message = if r.outcome == Outcome::Ambiguous {
            String::new()
        } else {
            r.message
        };
        let level = match r.outcome {
            Outcome::Added | Outcome::AlreadyInGroup if !message.is_empty() => "warning",
            Outcome::Added | Outcome::AlreadyInGroup => "success",
            _ => "error",
        };
        AddResult {
            outcome: r.outcome.as_str().to_string(),
            level,
            headline,
            message,
            choices: r.matches,
        }
    }

    /// The result as the add form's redirect carries it; `typed` is kept in the form when
    /// nothing was added.
    fn flash(&self, typed: &str) -> Flash {
        let mut f = Flash::new("add")
            .with("outcome", &self.outcome)
            .with("level", self.level)
            .with("headline", &self.headline)
            .with("message", &self.message);
        if self.level == "error" {
            f = f.with("identifier", typed);
        }
        for (case_id, label) in self.choices.iter().take(MAX_CHOICES) {
            f = f.with("choice", case_id).with("label", label);
        }
        f
    }

    /// The result a redirect carried.
    fn from_flash(f: &Flash) -> Option<Self> {
        if f.done() != Some("add") {
            return None;
        }
        let level = match f.get("level") {
            Some("success") => "success",
            Some("warning") => "warning",
            _ => "error",
        };
        Some(AddResult {
            outcome: f.get("outcome").unwrap_or_default().to_string(),
            level,
            headline: f.get("headline").unwrap_or_default().to_string(),
            message: f.get("message").unwrap_or_default().to_string(),
            choices: f
                .all("choice")
                .zip(f.all("label"))
                .map(|(c, l)| (c.to_string(), l.to_string()))
                .collect(),
        })
    }
}

/// Cases offered when an identifier matches several.
const MAX_CHOICES: usize = 20;

/// What the group page shows after one of its forms.
#[derive(Default)]
struct GroupOutcome {
    result: Option<AddResult>,
    notice: Option<String>,
    error: Option<String>,
    /// The identifier typed in the add form, kept when nothing was added.
    identifier: String,
    /// The name typed in the rename form, kept when it was refused.
    name: Option<String>,
    /// The query typed in a smart group's query form, kept when it was refused.
    query: Option<String>,
}

impl GroupOutcome {
    fn from_flash(f: &Flash) -> Self {
        let mut o = GroupOutcome {
            result: AddResult::from_flash(f),
            ..Default::default()
        };
        match f.done() {
            Some("add") => o.identifier = f.get("identifier").unwrap_or_default().into(),
            Some("removed") => {
                o.notice = Some(format!(
                    "Removed case {} from this group.",
                    f.get("case").unwrap_or_default()
                ))
            }
            Some("removed-all") => o.notice = Some("Removed every case from this group.".into()),
            Some("renamed") => o.notice = Some("The group was renamed.".into()),
            Some("rename-refused") => {
                o.error = f.get("error").map(str::to_string);
                o.name = f.get("name").map(str::to_string);
            }
            Some("upload-refused") | Some("refused") => {
                o.error = f.get("error").map(str::to_string)
            }
            Some("query-changed") => {
                o.notice = Some(format!(
                    "The query was changed: {} matched, {} no longer matched.",
                    f.get("matched").unwrap_or("0"),
                    f.get("left").unwrap_or("0")
                ))
            }
            Some("query-refused") => {
                o.error = f.get("error").map(str::to_string);
                o.query = f.get("query").map(str::to_string);
            }
            _ => {}
        }
        o
    }
}

struct UploadRow {
    id: i64,
    file_name: String,
    mode: &'static str,
    status: JobStatus,
    processed_rows: i64,
    total_rows: i64,
    created: String,
}

struct HistoryRow {
    at: String,
    who: String,
    action: String,
    via: String,
    added: i64,
    removed: i64,
    detail: String,
    /// (case ID, name, external ID) of the case a single add or removal was about.
    case: Option<(String, String, Option<String>)>,
}

#[derive(Template)]
#[template(path = "case_group.html")]
struct GroupPage {
    chrome: Chrome,
    slug: String,
    can_write: bool,
    group: GroupRow,
    smart: Option<SmartView>,
    /// The query form's text.
    query_text: String,
    error: Option<String>,
    notice: Option<String>,
    result: Option<AddResult>,
    /// The add form's text, kept when nothing was added.
    identifier: String,
    /// The rename form's text: the group's name, or what was typed when it was refused.
    rename_to: String,
    rename_open: bool,
    q: String,
    q_encoded: String,
    members: Vec<CaseView>,
    cursor: Option<i64>,
    next_cursor: Option<String>,
    uploads: Vec<UploadRow>,
    history: Vec<HistoryRow>,
}

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage {
    chrome: Chrome,
    slug: String,
    upload: Upload,
    /// (outcome, in words, count, whether it is a problem)
    counts: Vec<(String, &'static str, i64, bool)>,
    results: Vec<ResultRow>,
    more_results: bool,
    problems_only: bool,
    problems: i64,
}

fn actor(page: &ProjectPage) -> Actor {
    Actor {
        user_id: Some(page.me.user.id),
        via: "page",
    }
}

fn group_url(page: &ProjectPage, id: i64) -> String {
    format!("/a/{}/messaging/case-groups/{id}", page.project.slug)
}

async fn render_list(
    state: &AppState,
    page: &ProjectPage,
    status: StatusCode,
    (name, query): (String, String),
    error: Option<String>,
    notice: Option<String>,
) -> PageResult<Response> {
    let zone = page.project.zone();
    let groups = state
        .db
        .list_groups(page.project.id)
        .await?
        .into_iter()
        .map(|g| group_row(g, &zone))
        .collect();
    let view = GroupsPage {
        chrome: Chrome::project(page, "case-groups"),
        slug: page.project.slug.clone(),
        can_write: page.role.can_write(),
        groups,
        name,
        query,
        error,
        notice,
    };
    Ok((status, html(&view)?).into_response())
}

/// `GET …/messaging/case-groups`.
pub(super) async fn list(
    State(state): State<AppState>,
    page: ProjectPage,
    uri: Uri,
) -> PageResult<Response> {
    let flash = Flash::read(&page.me, &uri);
    let notice = match flash.done() {
        Some("deleted") => Some(format!(
            "The group “{}” was deleted.",
            flash.get("name").unwrap_or_default()
        )),
        _ => None,
    };
    render_list(
        &state,
        &page,
        StatusCode::OK,
        Default::default(),
        None,
        notice,
    )
    .await
}

#[derive(Deserialize)]
pub(super) struct NameForm {
    // Missing means empty (on every form here): a form without its token is refused by the
    // CSRF check (403), not as malformed (422).
    #[serde(default)]
    csrf: String,
    name: String,
    /// A case query: makes a smart group (from the groups page or the case list's "Save as a
    /// smart group").
    #[serde(default)]
    query: String,
}

/// `POST …/messaging/case-groups`: create a plain group, or with a query a smart group.
pub(super) async fn create(
    State(state): State<AppState>,
    page: ProjectPage,
    Form(form): Form<NameForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_write()?;
    let name = match GroupName::parse(&form.name) {
        Ok(n) => n,
        Err(e) => {
            return render_list(
                &state,
                &page,
                StatusCode::UNPROCESSABLE_ENTITY,
                (form.name, form.query),
                Some(e.0.trim_start_matches("name: ").to_string()),
                None,
            )
            .await
        }
    };
    let created = if form.query.trim().is_empty() {
        state
            .db
            .create_group(page.project.id, &name, actor(&page))
            .await
            .map_err(SaveError::Store)
    } else {
        smart_groups::create(
            &state.db,
            state.clock.as_ref(),
            &page.project,
            &name,
            &form.query,
            actor(&page),
        )
        .await
    };
    let (status, message) = match created {
        Ok(g) => return Ok(Redirect::to(&group_url(&page, g.id)).into_response()),
        Err(SaveError::Query(m)) => (StatusCode::UNPROCESSABLE_ENTITY, format!("Query: {m}")),
        Err(SaveError::Store(StoreError::Conflict { message, .. })) => {
            (StatusCode::CONFLICT, message)
        }
        Err(SaveError::Store(e)) => return Err(e.into()),
    };
    render_list(
        &state,
        &page,
        status,
        (form.name, form.query),
        Some(message),
        None,
    )
    .await
}

#[derive(Deserialize)]
pub(super) struct GroupPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

#[derive(Deserialize)]
pub(super) struct ShowQuery {
    q: Option<String>,
    cursor: Option<String>,
}

async fn render_group(
    state: &AppState,
    page: &ProjectPage,
    group_id: i64,
    query: ShowQuery,
    status: StatusCode,
    outcome: GroupOutcome,
) -> PageResult<Response> {
    let zone = page.project.zone();
    let group = state.db.get_group(page.project.id, group_id).await?;
    let smart = match &group.query {
        Some(saved) => {
            let behind = state.db.project_has_pending_cases(page.project.id).await?;
            let as_of = smart_groups::as_of(&state.db, state.clock.as_ref(), &group).await?;
            Some(SmartView {
                query: smart_groups::display_query(&state.db, page.project.id, saved).await?,
                as_of: as_of.map(|at| casecast_core::time::local_minute(at, &zone)),
                behind,
            })
        }
        None => None,
    };
    let q: String = query
        .q
        .unwrap_or_default()
        .trim()
        .chars()
        .take(255)
        .collect();
    let cursor = query.cursor.as_deref().and_then(|c| c.parse::<i64>().ok());
    let members = state
        .db
        .group_members(page.project.id, group_id, Some(&q), PAGE_SIZE, cursor)
        .await?;
    let uploads = state
        .db
        .group_uploads(page.project.id, group_id, 10)
        .await?
        .into_iter()
        .map(|u| UploadRow {
            id: u.id,
            file_name: u.file_name,
            mode: u.mode.as_str(),
            status: u.status,
            processed_rows: u.processed_rows,
            total_rows: u.total_rows,
            created: casecast_core::time::local_minute(u.created_at, &zone),
        })
        .collect();
    let history = state
        .db
        .group_history(page.project.id, group_id, 20)
        .await?
        .into_iter()
        .map(|h| HistoryRow {
            at: casecast_core::time::local_minute(h.at, &zone),
            who: match (h.user_email, h.via.as_str()) {
                (Some(email), _) => email,
                (None, "upkeep") => "kept current".into(),
                (None, _) => "command line".into(),
            },
            action: match h.action.as_str() {
                "matched" => "members kept current".into(),
                "query" => "query changed".into(),
                other => other.replace('_', " "),
            },
            via: h.via,
            added: h.added,
            removed: h.removed,
            detail: h.detail,
            case: h.case,
        })
        .collect();
    let view = GroupPage {
        chrome: Chrome::project(page, "case-groups"),
        slug: page.project.slug.clone(),
        can_write: page.role.can_write(),
        rename_open: outcome.name.is_some(),
        rename_to: outcome.name.unwrap_or_else(|| group.name.clone()),
        query_text: outcome
            .query
            .or_else(|| smart.as_ref().map(|s| s.query.clone()))
            .unwrap_or_default(),
        smart,
        group: group_row(group, &zone),
        error: outcome.error,
        notice: outcome.notice,
        result: outcome.result,
        identifier: outcome.identifier,
        q_encoded: percent_encode(&q),
        q,
        members: members
            .items
            .into_iter()
            .map(|c| CaseView::new(c, &zone))
            .collect(),
        cursor,
        next_cursor: members.next_cursor,
        uploads,
        history,
    };
    Ok((status, html(&view)?).into_response())
}

/// `GET …/case-groups/{id}`.
pub(super) async fn show(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<GroupPath>,
    Query(query): Query<ShowQuery>,
    uri: Uri,
) -> PageResult<Response> {
    let outcome = GroupOutcome::from_flash(&Flash::read(&page.me, &uri));
    render_group(&state, &page, p.id, query, StatusCode::OK, outcome).await
}

#[derive(Deserialize)]
pub(super) struct AddForm {
    #[serde(default)]
    csrf: String,
    identifier: String,
}

/// `POST …/case-groups/{id}/add`: one case; the group page shows the result.
pub(super) async fn add(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<GroupPath>,
    Form(form): Form<AddForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_write()?;
    let identifier: String = form.identifier.chars().take(1000).collect();
    let mut results = state
        .db
        .change_members(
            page.project.id,
            p.id,
            Change::Add,
            std::slice::from_ref(&identifier),
            actor(&page),
        )
        .await?;
    let url = group_url(&page, p.id);
    let Some(r) = results.pop() else {
        return Ok(Redirect::to(&url).into_response());
    };
    let name = match &r.case_id {
        Some(id) => state
            .db
            .get_case(page.project.id, id)
            .await
            .ok()
            .map(|c| c.name),
        None => None,
    };
    Ok(AddResult::new(r, name)
        .flash(&identifier)
        .redirect(&page.me, &url))
}

#[derive(Deserialize)]
pub(super) struct RemoveForm {
    #[serde(default)]
    csrf: String,
    case_id: String,
}

/// `POST …/case-groups/{id}/remove`: one member.
pub(super) async fn remove(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<GroupPath>,
    Form(form): Form<RemoveForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_write()?;
    match state
        .db
        .remove_member(page.project.id, p.id, &form.case_id, actor(&page))
        .await
    {
        Ok(()) | Err(StoreError::NotFound("member")) => Ok(Flash::new("removed")
            .with("case", &form.case_id)
            .redirect(&page.me, &group_url(&page, p.id))),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST …/case-groups/{id}/remove-all`.
pub(super) async fn remove_all(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<GroupPath>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_write()?;
    state
        .db
        .remove_all_members(page.project.id, p.id, actor(&page))
        .await?;
    Ok(Flash::new("removed-all").redirect(&page.me, &group_url(&page, p.id)))
}

/// `POST …/case-groups/{id}/rename`.
pub(super) async fn rename(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<GroupPath>,
    Form(form): Form<NameForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_write()?;
    let outcome = match GroupName::parse(&form.name) {
        Ok(name) => state
            .db
            .rename_group(page.project.id, p.id, &name, actor(&page))
            .await
            .map(|_| ()),
        Err(e) => Err(StoreError::Invalid(casecast_core::case::FieldError::new(
            "name",
            e.0.trim_start_matches("name: "),
        ))),
    };
    let url = group_url(&page, p.id);
    let refused = |error: String| {
        Ok(Flash::new("rename-refused")
            .with("name", &form.name)
            .with("error", &error)
            .redirect(&page.me, &url))
    };
    match outcome {
        Ok(()) => Ok(Flash::new("renamed").redirect(&page.me, &url)),
        Err(StoreError::Conflict { message, .. }) => refused(sentence(&message)),
        Err(StoreError::Invalid(f)) => refused(format!("The name {}.", f.message)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct QueryForm {
    #[serde(default)]
    csrf: String,
    query: String,
}

/// `POST …/case-groups/{id}/query`: a smart group's new query.
pub(super) async fn change_query(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<GroupPath>,
    Form(form): Form<QueryForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_write()?;
    let url = group_url(&page, p.id);
    let refused = |error: String| {
        Ok(Flash::new("query-refused")
            .with(
                "query",
                &form.query.chars().take(10_000).collect::<String>(),
            )
            .with("error", &error)
            .redirect(&page.me, &url))
    };
    match smart_groups::set_query(
        &state.db,
        state.clock.as_ref(),
        &page.project,
        p.id,
        &form.query,
        actor(&page),
    )
    .await
    {
        Ok(change) => Ok(Flash::new("query-changed")
            .with("matched", &change.matched.to_string())
            .with("left", &change.no_longer_matched.to_string())
            .redirect(&page.me, &url)),
        Err(SaveError::Query(m)) => refused(format!("Query: {m}")),
        Err(SaveError::Store(StoreError::Conflict { message, .. })) => refused(sentence(&message)),
        Err(SaveError::Store(e)) => Err(e.into()),
    }
}

/// A store message as a sentence: capital first letter, full stop.
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut out: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// `POST …/case-groups/{id}/delete`.
pub(super) async fn delete(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<GroupPath>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_write()?;
    let group = state.db.get_group(page.project.id, p.id).await?;
    match state.db.delete_group(page.project.id, p.id).await {
        Ok(()) => {}
        Err(StoreError::Conflict { message, .. }) => {
            return Ok(Flash::new("refused")
                .with("error", &sentence(&message))
                .redirect(&page.me, &group_url(&page, p.id)))
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Flash::new("deleted").with("name", &group.name).redirect(
        &page.me,
        &format!("/a/{}/messaging/case-groups", page.project.slug),
    ))
}

/// `POST …/case-groups/{id}/upload` (multipart: csrf, file, mode): queues the upload and shows its progress.
pub(super) async fn upload(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<GroupPath>,
    multipart: Result<Multipart, MultipartRejection>,
) -> PageResult<Response> {
    page.require_write()?;
    let mut multipart = multipart.map_err(|_| {
        PageError::bad_request("The upload form was incomplete. Go back and try again.")
    })?;
    let mut csrf = String::new();
    let mut mode = Change::Add;
    let mut file = None;
    let too_big = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            PageError { status: StatusCode::PAYLOAD_TOO_LARGE, message: "The file is larger than the limit of 50 MB. Split it and upload the parts one by one.".into() }
        } else {
            PageError::bad_request("The upload could not be read. Go back and try again.")
        }
    };
    while let Some(field) = multipart.next_field().await.map_err(too_big)? {
        match field.name() {
            Some("csrf") => csrf = field.text().await.map_err(too_big)?,
            Some("mode") => {
                mode = if field.text().await.map_err(too_big)? == "remove" {
                    Change::Remove
                } else {
                    Change::Add
                }
            }
            Some("file") => {
                // The token comes first in the form: check it before reading the file.
                page.me.check_csrf(&csrf)?;
                let name = field.file_name().unwrap_or("upload").to_string();
                file = Some((name, field.bytes().await.map_err(too_big)?.to_vec()));
            }
            _ => {}
        }
    }
    page.me.check_csrf(&csrf)?;
    let Some((name, bytes)) = file else {
        return Err(PageError::bad_request("Choose a file to upload."));
    };
    match state
        .db
        .create_upload(
            page.project.id,
            p.id,
            mode,
            &name,
            bytes,
            Some(page.me.user.id),
        )
        .await
    {
        Ok(u) => Ok(Redirect::to(&format!(
            "/a/{}/messaging/uploads/{}",
            page.project.slug, u.id
        ))
        .into_response()),
        Err(casecast_store::case_import::ImportError::Sheet(e)) => Ok(Flash::new("upload-refused")
            .with("error", &e.to_string())
            .redirect(&page.me, &group_url(&page, p.id))),
        Err(casecast_store::case_import::ImportError::Store(e)) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct UploadPath {
    #[allow(dead_code)]
    project: String,
    upload_id: i64,
}

#[derive(Deserialize)]
pub(super) struct ReportQuery {
    /// `?problems=1`: only the rows a person should look at.
    problems: Option<String>,
}

/// `GET …/messaging/uploads/{upload_id}[?problems=1]`: progress, then counts and the per-row
/// report (each matched case by name, linked), or only its problems.
pub(super) async fn upload_page(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<UploadPath>,
    Query(query): Query<ReportQuery>,
) -> PageResult<Response> {
    let problems_only = query
        .problems
        .as_deref()
        .is_some_and(|v| !v.is_empty() && v != "0");
    let upload = state.db.get_upload(page.project.id, p.upload_id).await?;
    let mut results = if upload.status == JobStatus::Done {
        state
            .db
            .upload_report(
                page.project.id,
                p.upload_id,
                0,
                RESULTS_SHOWN + 1,
                problems_only,
            )
            .await?
    } else {
        Vec::new()
    };
    let more_results = results.len() > RESULTS_SHOWN;
    results.truncate(RESULTS_SHOWN);
    let counts: Vec<(String, &'static str, i64, bool)> = upload
        .counts
        .iter()
        .map(|(k, v)| match Outcome::parse(k) {
            Some(o) => (k.clone(), o.label(), *v, o.is_problem()),
            None => (k.clone(), "other", *v, false),
        })
        .collect();
    let problems = counts.iter().filter(|c| c.3).map(|c| c.2).sum();
    let view = UploadPage {
        chrome: Chrome::project(&page, "case-groups"),
        slug: page.project.slug.clone(),
        upload,
        counts,
        results,
        more_results,
        problems_only,
        problems,
    };
    Ok(html(&view)?.into_response())
}

/// `GET …/messaging/uploads/{upload_id}/status.json`: what the progress bar polls.
pub(super) async fn upload_status(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<UploadPath>,
) -> PageResult<Json<UploadJson>> {
    Ok(Json(
        state
            .db
            .get_upload(page.project.id, p.upload_id)
            .await?
            .into(),
    ))
}

async fn results_file(
    state: &AppState,
    page: &ProjectPage,
    id: i64,
    xlsx: bool,
) -> PageResult<Response> {
    // The download's first page checks that the upload is this project's.
    let sheet = Sheet::Results {
        project_id: page.project.id,
        upload_id: id,
    };
    Ok(sheet
        .download(&state.db, xlsx, &format!("upload-{id}-results"))
        .await?)
}

/// `GET …/uploads/{upload_id}/results.csv`.
pub(super) async fn results_csv(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<UploadPath>,
) -> PageResult<Response> {
    results_file(&state, &page, p.upload_id, false).await
}

/// `GET …/uploads/{upload_id}/results.xlsx`.
pub(super) async fn results_xlsx(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<UploadPath>,
) -> PageResult<Response> {
    results_file(&state, &page, p.upload_id, true).await
}

async fn export_file(
    state: &AppState,
    page: &ProjectPage,
    id: i64,
    xlsx: bool,
) -> PageResult<Response> {
    // The download's first page checks that the group is this project's.
    let sheet = Sheet::Members {
        project_id: page.project.id,
        group_id: id,
    };
    Ok(sheet
        .download(&state.db, xlsx, &format!("case-group-{id}"))
        .await?)
}

/// `GET …/case-groups/{id}/export.csv`.
pub(super) async fn export_csv(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<GroupPath>,
) -> PageResult<Response> {
    export_file(&state, &page, p.id, false).await
}

/// `GET …/case-groups/{id}/export.xlsx`.
pub(super) async fn export_xlsx(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<GroupPath>,
) -> PageResult<Response> {
    export_file(&state, &page, p.id, true).await
}

/// `GET …/case-groups/example.xlsx`.
pub(super) async fn example(_page: ProjectPage) -> PageResult<Response> {
    Ok(download(
        sheet_out::example_sheet()?,
        XLSX,
        "cases_bulk_example.xlsx",
    ))
}
