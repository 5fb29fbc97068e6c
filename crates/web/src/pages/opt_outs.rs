//! The opt-out list page: numbers sent nothing until they text a start keyword; editors add a
//! number (no SMS is sent) or take one off.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use casecast_core::PhoneNumber;
use casecast_store::StoreError;
use serde::Deserialize;

use super::{html, Chrome};
use crate::auth::{percent_encode, ProjectPage};
use crate::error::PageResult;
use crate::AppState;

const PAGE_SIZE: i64 = 100;

struct OptOutRow {
    phone: String,
    /// The project's live cases with this number.
    cases: Vec<casecast_store::opt_outs::CaseName>,
    source: String,
    at: String,
}

#[derive(Template)]
#[template(path = "opt_outs.html")]
struct OptOutsPage {
    chrome: Chrome,
    slug: String,
    can_write: bool,
    rows: Vec<OptOutRow>,
    first_page: bool,
    next_cursor: Option<String>,
    phone: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ListQuery {
    cursor: String,
    done: String,
}

fn notice(done: &str) -> Option<&'static str> {
    match done {
        "added" => Some("The number was added: it is sent nothing until it texts a start keyword or is removed here."),
        "already" => Some("That number was already on the list."),
        "removed" => Some("The number was removed from the list: it can be sent messages again."),
        _ => None,
    }
}

fn list_url(page: &ProjectPage) -> String {
    format!("/a/{}/messaging/opt-outs", page.project.slug)
}

async fn render(
    state: &AppState,
    page: &ProjectPage,
    status: StatusCode,
    cursor: Option<&str>,
    phone: String,
    error: Option<String>,
    notice: Option<&'static str>,
) -> PageResult<Response> {
    let (items, next_cursor) = state
        .db
        .list_opt_outs(page.project.id, PAGE_SIZE, cursor)
        .await?;
    let phones: Vec<String> = items.iter().map(|o| o.phone_number.clone()).collect();
    let mut cases = state.db.cases_by_phone(page.project.id, &phones).await?;
    let zone = page.project.zone();
    let view = OptOutsPage {
        chrome: Chrome::project(page, "opt-outs"),
        slug: page.project.slug.clone(),
        can_write: page.role.can_write(),
        rows: items
            .into_iter()
            .map(|o| OptOutRow {
                cases: cases.remove(&o.phone_number).unwrap_or_default(),
                phone: o.phone_number,
                source: o.source,
                at: casecast_core::time::local_minute(o.created_at, &zone),
            })
            .collect(),
        first_page: cursor.is_none(),
        next_cursor: next_cursor.map(|c| percent_encode(&c)),
        phone,
        error,
        notice,
    };
    Ok((status, html(&view)?).into_response())
}

/// `GET …/messaging/opt-outs`.
pub(super) async fn list(
    State(state): State<AppState>,
    page: ProjectPage,
    Query(q): Query<ListQuery>,
) -> PageResult<Response> {
    let cursor: String = q.cursor.trim().chars().take(40).collect();
    let cursor = (!cursor.is_empty()).then_some(cursor);
    render(
        &state,
        &page,
        StatusCode::OK,
        cursor.as_deref(),
        String::new(),
        None,
        notice(&q.done),
    )
    .await
}

#[derive(Deserialize)]
pub(super) struct PhoneForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    phone: String,
}

/// `POST …/messaging/opt-outs`: adds a number (editors).
pub(super) async fn add(
    State(state): State<AppState>,
    page: ProjectPage,
    Form(form): Form<PhoneForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_write()?;
    let typed: String = form.phone.chars().take(100).collect();
    let phone = match PhoneNumber::parse(&typed, page.project.country_code().as_ref()) {
        Ok(p) => p,
        Err(e) => {
            return render(
                &state,
                &page,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                typed,
                Some(format!("Phone number: {e}")),
                None,
            )
            .await
        }
    };
    let added = state
        .db
        .add_opt_out(page.project.id, phone.as_str(), "page")
        .await?;
    let done = if added { "added" } else { "already" };
    Ok(Redirect::to(&format!("{}?done={done}", list_url(&page))).into_response())
}

/// `POST …/messaging/opt-outs/remove`: takes a number off (editors).
pub(super) async fn remove(
    State(state): State<AppState>,
    page: ProjectPage,
    Form(form): Form<PhoneForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_write()?;
    let phone: String = form.phone.trim().chars().take(40).collect();
    match state.db.remove_opt_out(page.project.id, &phone).await {
        // Already gone (removed in another tab): the list shows the truth.
        Ok(()) | Err(StoreError::NotFound(_)) => {
            Ok(Redirect::to(&format!("{}?done=removed", list_url(&page))).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
