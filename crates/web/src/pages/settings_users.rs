//! The project's people (admins only): members with their role, last login and failed logins;
//! add a login (new, or existing without touching its password), change a role, remove from
//! the project (its tokens here are revoked, its sessions end), forget failed logins.
//!
//! An admin cannot change their own role or remove themselves here (another admin, or the
//! CLI, does), and no change may leave the project without an admin.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use casecast_core::{Email, Role};
use casecast_store::accounts::{delay_secs, FREE_FAILURES};
use casecast_store::StoreError;
use serde::Deserialize;

use super::{html, Chrome, DoneQuery};
use crate::auth::ProjectPage;
use crate::error::{PageError, PageResult};
use crate::AppState;

/// The roles, as offered in the forms.
pub(super) const ROLES: [&str; 3] = ["viewer", "editor", "admin"];

struct MemberRow {
    user_id: i64,
    email: String,
    role: &'static str,
    last_login: String,
    failed_logins: i64,
    delayed: bool,
    is_me: bool,
}

#[derive(Template)]
#[template(path = "settings_users.html")]
struct UsersPage {
    chrome: Chrome,
    slug: String,
    rows: Vec<MemberRow>,
    roles: [&'static str; 3],
    email: String,
    role: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

fn notice(done: &str) -> Option<&'static str> {
    match done {
        "created" => Some("The login was created with that password and added to the project."),
        "added" => Some("The login was added to the project; its password is unchanged."),
        "role" => Some("The role was changed."),
        "removed" => Some("The login was removed from the project: its API tokens here are revoked and its sessions ended."),
        "unlocked" => Some("The failed logins were forgotten: no address has to wait before trying again."),
        _ => None,
    }
}

fn users_url(page: &ProjectPage, done: &str) -> String {
    format!("/a/{}/settings/users?done={done}", page.project.slug)
}

async fn render(
    state: &AppState,
    page: &ProjectPage,
    status: StatusCode,
    form: Option<&AddForm>,
    error: Option<String>,
    notice: Option<&'static str>,
) -> PageResult<Response> {
    let zone = page.project.zone();
    let mut rows = Vec::new();
    for m in state.db.members(page.project.id).await? {
        let failed_logins = state.db.failed_logins(&m.user.email).await?;
        rows.push(MemberRow {
            user_id: m.user.id,
            is_me: m.user.id == page.me.user.id,
            email: m.user.email,
            role: m.role.as_str(),
            last_login: m.last_login_at.map_or_else(
                || "never".to_string(),
                |t| casecast_core::time::local_minute(t, &zone),
            ),
            failed_logins,
            delayed: delay_secs(failed_logins, FREE_FAILURES) > 0,
        });
    }
    let view = UsersPage {
        chrome: Chrome::project(page, "users"),
        slug: page.project.slug.clone(),
        rows,
        roles: ROLES,
        email: form.map(|f| f.email.clone()).unwrap_or_default(),
        role: form.map_or_else(|| "viewer".to_string(), |f| f.role.clone()),
        error,
        notice,
    };
    Ok((status, html(&view)?).into_response())
}

/// `GET /a/{project}/settings/users`.
pub(super) async fn list(
    State(state): State<AppState>,
    page: ProjectPage,
    Query(q): Query<DoneQuery>,
) -> PageResult<Response> {
    page.require_admin()?;
    let done = q.done.unwrap_or_default();
    render(&state, &page, StatusCode::OK, None, None, notice(&done)).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct AddForm {
    csrf: String,
    email: String,
    role: String,
    password: String,
}

/// `POST /a/{project}/settings/users`: adds a login to the project, creating it when the
/// email has none (the password is used only then).
pub(super) async fn add(
    State(state): State<AppState>,
    page: ProjectPage,
    Form(mut form): Form<AddForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_admin()?;
    form.email = form.email.chars().take(300).collect();
    let password = std::mem::take(&mut form.password);
    let refuse = |form: &AddForm, message: String| {
        let form = AddForm {
            email: form.email.clone(),
            role: form.role.clone(),
            ..AddForm::default()
        };
        let (state, page) = (state.clone(), page.clone());
        async move {
            render(
                &state,
                &page,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&form),
                Some(message),
                None,
            )
            .await
        }
    };
    let email = match Email::parse(&form.email) {
        Ok(e) => e,
        Err(e) => return refuse(&form, format!("Email: {e}.")).await,
    };
    let role: Role = match form.role.parse() {
        Ok(r) => r,
        Err(e) => return refuse(&form, format!("Role: {e}.")).await,
    };
    let existing = state.db.find_login(&email).await?.filter(|l| l.active);
    let done = match existing {
        Some(login) => {
            if state
                .db
                .role_in_project(login.user.id, page.project.id)
                .await?
                .is_some()
            {
                return refuse(
                    &form,
                    format!(
                        "{} is already a member of this project: change the role in the list.",
                        email.as_str()
                    ),
                )
                .await;
            }
            state
                .db
                .set_role(page.project.id, login.user.id, role)
                .await?;
            "added"
        }
        None => {
            if let Err(e) = casecast_core::password::check_new(&password) {
                return refuse(&form, format!("Password for the new login: {e}.")).await;
            }
            let user = match state.db.create_login(&email, &password).await {
                Ok(u) => u,
                Err(StoreError::Conflict { message, .. }) => {
                    return refuse(&form, format!("{message}.")).await
                }
                Err(e) => return Err(e.into()),
            };
            state.db.set_role(page.project.id, user.id, role).await?;
            "created"
        }
    };
    tracing::info!(
        user.id = page.me.user.id,
        project = page.project.slug,
        "added a login"
    );
    Ok(Redirect::to(&users_url(&page, done)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RoleForm {
    csrf: String,
    role: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct CsrfForm {
    csrf: String,
}

/// The email of the member `user_id` of this project; 404 for anyone else.
async fn member_email(state: &AppState, page: &ProjectPage, user_id: i64) -> PageResult<String> {
    let member = state
        .db
        .members(page.project.id)
        .await?
        .into_iter()
        .find(|m| m.user.id == user_id)
        .ok_or_else(PageError::not_found)?;
    Ok(member.user.email)
}

fn not_yourself(page: &ProjectPage, user_id: i64, what: &str) -> PageResult<()> {
    if page.me.user.id == user_id {
        return Err(PageError {
            status: StatusCode::CONFLICT,
            message: format!("You cannot {what} yourself here: ask another admin of this project."),
        });
    }
    Ok(())
}

/// `POST /a/{project}/settings/users/{user_id}/role`.
pub(super) async fn set_role(
    State(state): State<AppState>,
    page: ProjectPage,
    Path((_, user_id)): Path<(String, i64)>,
    Form(form): Form<RoleForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_admin()?;
    member_email(&state, &page, user_id).await?;
    not_yourself(&page, user_id, "change the role of")?;
    let role: Role = form
        .role
        .parse()
        .map_err(|e| PageError::bad_request(format!("Role: {e}.")))?;
    state.db.set_role(page.project.id, user_id, role).await?;
    Ok(Redirect::to(&users_url(&page, "role")).into_response())
}

/// `POST /a/{project}/settings/users/{user_id}/remove`.
pub(super) async fn remove(
    State(state): State<AppState>,
    page: ProjectPage,
    Path((_, user_id)): Path<(String, i64)>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_admin()?;
    member_email(&state, &page, user_id).await?;
    not_yourself(&page, user_id, "remove")?;
    state
        .db
        .remove_from_project(page.project.id, user_id)
        .await?;
    tracing::info!(
        user.id = page.me.user.id,
        removed = user_id,
        project = page.project.slug,
        "removed a member"
    );
    Ok(Redirect::to(&users_url(&page, "removed")).into_response())
}

/// `POST /a/{project}/settings/users/{user_id}/unlock`: forgets the member's failed logins.
pub(super) async fn unlock(
    State(state): State<AppState>,
    page: ProjectPage,
    Path((_, user_id)): Path<(String, i64)>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_admin()?;
    let email = member_email(&state, &page, user_id).await?;
    state.db.unlock_login(&email).await?;
    Ok(Redirect::to(&users_url(&page, "unlocked")).into_response())
}
