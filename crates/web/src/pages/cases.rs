//! The case list with search, and the case data page with its SMS form and message history.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use axum::Json;
use casecast_core::case::Case;
use casecast_core::states::{Direction, JobStatus, MessageStatus};
use casecast_store::case_export::{Export, ExportFormat};
use casecast_store::cases::{CaseFilter, Page};
use casecast_store::messages::{MessageFilter, MAX_TEXT_CHARS};
use casecast_store::StoreError;
use serde::Deserialize;

use super::messages::MessageRow;
use super::{html, Chrome, DoneQuery};
use crate::auth::{percent_encode, ProjectPage};
use crate::case_query::{CaseQuery, QueryError};
use crate::downloads;
use crate::error::{PageError, PageResult};
use crate::AppState;

const PAGE_SIZE: usize = 50;
/// Messages shown on the case page; the message log has them all.
const HISTORY_SIZE: i64 = 50;

/// A case as the pages show it.
pub(crate) struct CaseView {
    pub(crate) case_id: String,
    pub(crate) name: String,
    pub(crate) case_type: String,
    pub(crate) external_id: String,
    pub(crate) phone_number: String,
    pub(crate) language_code: String,
    pub(crate) owner_id: String,
    pub(crate) closed: bool,
    pub(crate) deleted: bool,
    pub(crate) properties: BTreeMap<String, String>,
    pub(crate) created: String,
    pub(crate) modified: String,
}

impl CaseView {
    pub(crate) fn new(c: Case, zone: &jiff::tz::TimeZone) -> Self {
        CaseView {
            case_id: c.case_id.as_str().to_string(),
            name: c.name,
            case_type: c.case_type,
            external_id: c.external_id.unwrap_or_default(),
            phone_number: c.phone_number.map(String::from).unwrap_or_default(),
            language_code: c.language_code.unwrap_or_default(),
            owner_id: c.owner_id.unwrap_or_default(),
            closed: c.closed,
            deleted: c.deleted,
            properties: c.properties,
            created: casecast_core::time::local_minute(c.created_at, zone),
            modified: casecast_core::time::local_minute(c.modified_at, zone),
        }
    }
}

/// The filters as the form shows them (empty when not set).
pub(crate) struct FilterForm {
    q: String,
    case_type: String,
    closed: String,
    group_id: String,
    has_phone: String,
    modified_since: String,
    query: String,
}

impl FilterForm {
    fn new(query: &CaseQuery) -> Self {
        let text = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_string();
        FilterForm {
            q: text(&query.q),
            case_type: text(&query.case_type),
            closed: text(&query.closed),
            group_id: text(&query.group_id),
            has_phone: text(&query.has_phone),
            modified_since: text(&query.modified_since),
            query: text(&query.query),
        }
    }
}

#[derive(Template)]
#[template(path = "cases.html")]
struct CasesPage {
    chrome: Chrome,
    slug: String,
    f: FilterForm,
    /// The filters as a query string, for the pager and the CSV export.
    filters: String,
    filtered: bool,
    /// Deleted cases are listed: exports hold live cases only, so none is offered.
    include_deleted: bool,
    /// Editors and admins are offered the import.
    can_write: bool,
    total: i64,
    /// How many cases the filters select (when any is set).
    matching: Option<i64>,
    /// Cases with a value the query could not compare (a number or date was wanted).
    uncomparable: i64,
    /// The project's groups (id, name), for the group filter.
    groups: Vec<(i64, String)>,
    cases: Vec<CaseView>,
    cursor: Option<i64>,
    next_cursor: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "case.html")]
struct CasePage {
    chrome: Chrome,
    slug: String,
    case: CaseView,
    can_write: bool,
    is_admin: bool,
    /// The project's gateways (id, name), offered when there are several.
    gateways: Vec<(i64, String)>,
    max_chars: usize,
    /// The text typed, kept when sending failed.
    text: String,
    error: Option<String>,
    /// The refusal's code (`no_gateway` links admins to the gateways page).
    error_code: &'static str,
    notice: Option<&'static str>,
    history: Vec<MessageRow>,
    more_history: bool,
    /// Some message may still change status (the page then polls `messages.json`).
    history_moving: bool,
    /// The case ID for a query string.
    case_id_q: String,
    /// The "Surveys" section.
    surveys: super::case_surveys::CaseSurveys,
    survey_notice: Option<&'static str>,
    survey_error: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    cursor: Option<String>,
    #[serde(flatten)]
    filters: CaseQuery,
}

/// Groups offered in the group filter (a project with more is filtered by ID in the URL).
const MAX_GROUP_CHOICES: usize = 500;

/// `GET /a/{project}/cases`.
pub(super) async fn list(
    State(state): State<AppState>,
    page: ProjectPage,
    Query(query): Query<ListQuery>,
) -> PageResult<Response> {
    let cursor = query.cursor.as_deref().and_then(|c| c.parse::<i64>().ok());
    let filters = query.filters;
    let mut uncomparable = 0;
    let (found, matching, include_deleted, error) =
        match filters.filter(&state.db, &page.project).await {
            Ok(filter) => {
                // How many cases met a value the query could not compare (`age > 18` where age
                // is `eighteen`): shown, so that such cases can be found and fixed.
                if let Some(text) = filter.query.as_deref() {
                    if let Ok(q) = casecast_core::case_query::CaseQuery::parse(text) {
                        uncomparable = state
                            .db
                            .count_matching(page.project.id, &q, &page.project.zone())
                            .await?
                            .uncomparable;
                    }
                }
                let found = state
                    .db
                    .list_cases(page.project.id, &filter, PAGE_SIZE, cursor)
                    .await?;
                let matching = if filters.is_filtered() {
                    Some(
                        state
                            .db
                            .count_filtered_cases(page.project.id, &filter)
                            .await?,
                    )
                } else {
                    None
                };
                (found, matching, filter.include_deleted, None)
            }
            Err(QueryError::Invalid(m) | QueryError::BadQuery(m)) => {
                (Page::empty(), None, false, Some(m))
            }
            Err(QueryError::GroupNotFound) => (
                Page::empty(),
                None,
                false,
                Some("That case group does not exist in this project.".to_string()),
            ),
            Err(QueryError::Store(e)) => return Err(e.into()),
        };
    let zone = page.project.zone();
    let groups = state
        .db
        .list_groups(page.project.id)
        .await?
        .into_iter()
        .take(MAX_GROUP_CHOICES)
        .map(|g| (g.id, g.name))
        .collect();
    let view = CasesPage {
        chrome: Chrome::project(&page, "cases"),
        slug: page.project.slug.clone(),
        f: FilterForm::new(&filters),
        filters: filters.query_string(),
        filtered: filters.is_filtered(),
        include_deleted,
        can_write: page.role.can_write(),
        total: state.db.count_cases(page.project.id).await?,
        matching,
        uncomparable,
        groups,
        cases: found
            .items
            .into_iter()
            .map(|c| CaseView::new(c, &zone))
            .collect(),
        cursor,
        next_cursor: found.next_cursor,
        error,
    };
    Ok(html(&view)?.into_response())
}

/// The filters of an export request, or the page's answer to bad ones.
async fn export_filter(
    state: &AppState,
    page: &ProjectPage,
    query: &CaseQuery,
) -> PageResult<CaseFilter> {
    let filter = query
        .filter(&state.db, &page.project)
        .await
        .map_err(|e| match e {
            QueryError::Invalid(m) | QueryError::BadQuery(m) => PageError::bad_request(m),
            QueryError::GroupNotFound => PageError::not_found(),
            QueryError::Store(e) => e.into(),
        })?;
    if filter.include_deleted {
        return Err(PageError::bad_request(
            "Exports hold live cases only: remove include_deleted.",
        ));
    }
    Ok(filter)
}

/// `GET /a/{project}/cases/export.csv`: what the list shows, streamed.
pub(super) async fn export_csv(
    State(state): State<AppState>,
    page: ProjectPage,
    Query(query): Query<CaseQuery>,
) -> PageResult<Response> {
    let filter = export_filter(&state, &page, &query).await?;
    Ok(downloads::cases_download(
        &state.db,
        page.project.id,
        filter,
        false,
        &format!("cases-{}", page.project.slug),
    )
    .await?)
}

#[derive(Deserialize)]
pub(super) struct ExportForm {
    csrf: String,
}

/// `POST /a/{project}/cases/exports?{filters}`: an `.xlsx` of what the list shows (the
/// filters ride in the query string, exactly as the list's), made in the background; the
/// export's page follows it. Any member may export, as any member may read the cases.
pub(super) async fn start_export(
    State(state): State<AppState>,
    page: ProjectPage,
    Query(filters): Query<CaseQuery>,
    Form(form): Form<ExportForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    let filter = export_filter(&state, &page, &filters).await?;
    let export = state
        .db
        .create_export(
            &page.project,
            Some(page.me.user.id),
            &filter,
            ExportFormat::Xlsx,
        )
        .await?;
    Ok(Redirect::to(&format!(
        "/a/{}/cases/exports/{}",
        page.project.slug, export.id
    ))
    .into_response())
}

#[derive(Template)]
#[template(path = "export.html")]
struct ExportPage {
    chrome: Chrome,
    slug: String,
    export: Export,
    created: String,
}

#[derive(Deserialize)]
pub(super) struct ExportPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

/// `GET /a/{project}/cases/exports/{id}`: progress, then the download link.
pub(super) async fn export_page(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<ExportPath>,
) -> PageResult<Response> {
    let export = state.db.get_export(page.project.id, p.id).await?;
    let view = ExportPage {
        chrome: Chrome::project(&page, "cases"),
        slug: page.project.slug.clone(),
        created: casecast_core::time::local_minute(export.created_at, &page.project.zone()),
        export,
    };
    Ok(html(&view)?.into_response())
}

/// `GET /a/{project}/cases/exports/{id}/status.json`: what the page polls.
pub(super) async fn export_status(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<ExportPath>,
) -> PageResult<Json<Export>> {
    Ok(Json(state.db.get_export(page.project.id, p.id).await?))
}

/// `GET /a/{project}/cases/exports/{id}/file`: the finished file.
pub(super) async fn export_file(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<ExportPath>,
) -> PageResult<Response> {
    let export = state.db.get_export(page.project.id, p.id).await?;
    if export.status != JobStatus::Done {
        return Err(PageError {
            status: StatusCode::CONFLICT,
            message: format!("This export is {}: its file is not ready.", export.status),
        });
    }
    Ok(downloads::export_download(&state.db, &export))
}

/// Whether a message of the list may still change status: queued or on its way, or sent and
/// waiting for its delivery report.
fn history_moving(history: &[casecast_store::messages::Message]) -> bool {
    history.iter().any(|m| {
        matches!(
            m.status,
            MessageStatus::Queued | MessageStatus::Sending | MessageStatus::Sent
        )
    })
}

/// One message's status, as the case page polls it.
#[derive(serde::Serialize)]
pub(super) struct MessageStatusJson {
    id: i64,
    status: &'static str,
    error: String,
}

/// `GET /a/{project}/cases/{case_id}/messages.json`: the statuses of the messages the case
/// page lists, which it polls while some may still change.
pub(super) async fn message_statuses(
    State(state): State<AppState>,
    page: ProjectPage,
    Path((_, case_id)): Path<(String, String)>,
) -> PageResult<Json<serde_json::Value>> {
    // A case of another project (or none) is not found, as its page is.
    state.db.get_case(page.project.id, &case_id).await?;
    let filter = MessageFilter {
        case_id: Some(case_id),
        ..Default::default()
    };
    let (history, _) = state
        .db
        .list_messages(page.project.id, &filter, HISTORY_SIZE, None)
        .await?;
    let moving = history_moving(&history);
    let messages: Vec<MessageStatusJson> = history
        .into_iter()
        .map(|m| MessageStatusJson {
            id: m.id,
            status: m.status.as_str(),
            // As the page shows it: the gateway's own answer is for admins only.
            error: crate::api::messages::shown_error(m.error, page.role).unwrap_or_default(),
        })
        .collect();
    Ok(Json(
        serde_json::json!({ "messages": messages, "moving": moving }),
    ))
}

/// What the send form (or the survey form) leaves on the case page.
#[derive(Default)]
pub(super) struct SendOutcome {
    pub(super) text: String,
    pub(super) error: Option<String>,
    pub(super) error_code: &'static str,
    pub(super) notice: Option<&'static str>,
    pub(super) survey_notice: Option<&'static str>,
    pub(super) survey_error: Option<String>,
}

pub(super) async fn render_case(
    state: &AppState,
    page: &ProjectPage,
    case_id: &str,
    status: StatusCode,
    outcome: SendOutcome,
) -> PageResult<Response> {
    let case = state.db.get_case(page.project.id, case_id).await?;
    let zone = page.project.zone();
    // By name; a choice only when there is one to make.
    let all = state.db.list_gateways(page.project.id).await?;
    let names: HashMap<i64, String> = all.iter().map(|g| (g.id, g.name.clone())).collect();
    let gateways: Vec<(i64, String)> = if all.len() > 1 {
        all.into_iter().map(|g| (g.id, g.name)).collect()
    } else {
        Vec::new()
    };
    let filter = MessageFilter {
        case_id: Some(case_id.to_string()),
        ..Default::default()
    };
    let (history, next) = state
        .db
        .list_messages(page.project.id, &filter, HISTORY_SIZE, None)
        .await?;
    let moving = history_moving(&history);
    let pk = state
        .db
        .case_recipient(page.project.id, case_id)
        .await?
        .ok_or(StoreError::NotFound("case"))?
        .case_pk;
    let surveys = super::case_surveys::case_surveys(&state.db, page, pk, &names).await?;
    let view = CasePage {
        chrome: Chrome::project(page, "cases"),
        slug: page.project.slug.clone(),
        case: CaseView::new(case, &zone),
        can_write: page.role.can_write(),
        is_admin: page.require_admin().is_ok(),
        gateways,
        max_chars: MAX_TEXT_CHARS,
        text: outcome.text,
        error: outcome.error,
        error_code: outcome.error_code,
        notice: outcome.notice,
        history: history
            .into_iter()
            .map(|m| MessageRow::new(m, &zone, &names, page.role))
            .collect(),
        more_history: next.is_some(),
        history_moving: moving,
        case_id_q: percent_encode(case_id),
        surveys,
        survey_notice: outcome.survey_notice,
        survey_error: outcome.survey_error,
    };
    Ok((status, html(&view)?).into_response())
}

/// `GET /a/{project}/cases/{case_id}`: everything about one case, and its messages.
pub(super) async fn show(
    State(state): State<AppState>,
    page: ProjectPage,
    Path((_, case_id)): Path<(String, String)>,
    Query(q): Query<DoneQuery>,
) -> PageResult<Response> {
    let outcome = SendOutcome {
        notice: (q.done.as_deref() == Some("sent"))
            .then_some("The message was queued: its status below follows it to the phone."),
        survey_notice: (q.done.as_deref() == Some("survey_started"))
            .then_some("The survey was started: its first question is queued."),
        ..Default::default()
    };
    render_case(&state, &page, &case_id, StatusCode::OK, outcome).await
}

#[derive(Deserialize)]
pub(super) struct SendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
    /// Empty: the gateway routing picks.
    #[serde(default)]
    gateway_id: String,
}

/// `POST /a/{project}/cases/{case_id}/messages`: sends one SMS to the case (editors).
pub(super) async fn send(
    State(state): State<AppState>,
    page: ProjectPage,
    Path((_, case_id)): Path<(String, String)>,
    Form(form): Form<SendForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_write()?;
    // Browsers send line breaks as CR LF; the phone gets LF (one character, as counted).
    let text = form.text.replace("\r\n", "\n");
    let refuse = |error: String, code: &'static str| SendOutcome {
        text: text.clone(),
        error: Some(error),
        error_code: code,
        ..Default::default()
    };
    let gateway_id = match form.gateway_id.trim() {
        "" => None,
        id => match id.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => {
                let o = refuse("Gateway: choose one of the list.".into(), "");
                return render_case(&state, &page, &case_id, StatusCode::UNPROCESSABLE_ENTITY, o)
                    .await;
            }
        },
    };
    let sent = casecast_engine::send::send_to_case(
        &state.db,
        &page.project,
        &case_id,
        &text,
        Some(page.me.user.id),
        gateway_id,
    )
    .await;
    let (status, outcome) = match sent {
        Ok(_) => {
            return Ok(Redirect::to(&format!(
                "/a/{}/cases/{}?done=sent",
                page.project.slug,
                percent_encode(&case_id)
            ))
            .into_response())
        }
        Err(StoreError::Conflict { code, message }) => {
            (StatusCode::CONFLICT, refuse(sentence(&message), code))
        }
        Err(StoreError::Invalid(f)) => {
            let what = if f.field == "gateway_id" {
                "Gateway"
            } else {
                "Message"
            };
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                refuse(format!("{what}: {}.", f.message), ""),
            )
        }
        Err(e) => return Err(e.into()),
    };
    render_case(&state, &page, &case_id, status, outcome).await
}

/// A store message as a sentence: capital first letter, full stop.
pub(super) fn sentence(message: &str) -> String {
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

#[cfg(test)]
mod tests {
    use casecast_core::sms::{analyse, Encoding};

    /// A JSON string literal of the counter script: `var {name} = "…";`.
    fn table(name: &str) -> Vec<char> {
        let js = include_str!("../../static/sms_counter.js");
        let marker = format!("var {name} = ");
        let start = js.find(&marker).expect("table in the script") + marker.len();
        let end = start + js[start..].find(";\n").unwrap();
        serde_json::from_str::<String>(&js[start..end])
            .unwrap()
            .chars()
            .collect()
    }

    /// The counter's GSM-7 tables are exactly the ones `analyse` uses: every character of the
    /// basic table takes one septet, every one of the extension table two, and every other
    /// character of the Basic Multilingual Plane makes a text UCS-2.
    #[test]
    fn the_counter_script_has_the_gsm7_tables_of_analyse() {
        let basic = table("BASIC");
        let extension = table("EXTENSION");
        assert_eq!((basic.len(), extension.len()), (127, 10));
        for c in '\0'..='\u{ffff}' {
            let info = analyse(&c.to_string());
            let expected = if basic.contains(&c) {
                (Encoding::Gsm7, 1)
            } else if extension.contains(&c) {
                (Encoding::Gsm7, 2)
            } else {
                (Encoding::Ucs2, c.len_utf16())
            };
            assert_eq!((info.encoding, info.units), expected, "{c:?}");
        }
    }
}
