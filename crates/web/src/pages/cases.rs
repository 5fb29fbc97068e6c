//! The case list with search, and the case data page.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use casecast_core::case::Case;
use casecast_store::cases::CaseFilter;
use serde::Deserialize;

use super::{html, Chrome};
use crate::auth::{percent_encode, ProjectPage};
use crate::error::PageResult;
use crate::AppState;

const PAGE_SIZE: usize = 50;

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

#[derive(Template)]
#[template(path = "cases.html")]
struct CasesPage {
    chrome: Chrome,
    slug: String,
    q: String,
    q_encoded: String,
    total: i64,
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
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    q: Option<String>,
    cursor: Option<String>,
}

/// `GET /a/{project}/cases`.
pub(super) async fn list(
    State(state): State<AppState>,
    page: ProjectPage,
    Query(query): Query<ListQuery>,
) -> PageResult<Response> {
    let q: String = query
        .q
        .unwrap_or_default()
        .trim()
        .chars()
        .take(255)
        .collect();
    let cursor = query.cursor.as_deref().and_then(|c| c.parse::<i64>().ok());
    let filter = CaseFilter {
        q: Some(q.clone()),
        country: page.project.country_code(),
        ..Default::default()
    };
    let found = state
        .db
        .list_cases(page.project.id, &filter, PAGE_SIZE, cursor)
        .await?;
    let zone = page.project.zone();
    let view = CasesPage {
        chrome: Chrome::project(&page, "cases"),
        slug: page.project.slug.clone(),
        q_encoded: percent_encode(&q),
        q,
        total: state.db.count_cases(page.project.id).await?,
        cases: found
            .items
            .into_iter()
            .map(|c| CaseView::new(c, &zone))
            .collect(),
        cursor,
        next_cursor: found.next_cursor,
        error: None,
    };
    Ok(html(&view)?.into_response())
}

/// `GET /a/{project}/cases/{case_id}`: everything about one case.
pub(super) async fn show(
    State(state): State<AppState>,
    page: ProjectPage,
    Path((_, case_id)): Path<(String, String)>,
) -> PageResult<Response> {
    let case = state.db.get_case(page.project.id, &case_id).await?;
    let view = CasePage {
        chrome: Chrome::project(&page, "cases"),
        slug: page.project.slug.clone(),
        case: CaseView::new(case, &page.project.zone()),
    };
    Ok(html(&view)?.into_response())
}
