//! The project's API tokens (admins only): create one for a member (its secret is shown once),
//! list them with when they were made and last used, revoke one.
//!
//! The new secret crosses the redirect after the form in a cookie that only the tokens page of
//! this project receives, lives five minutes and is cleared by the page that shows it.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{html, Chrome, DoneQuery};
use crate::auth::{cookie, ProjectPage};
use crate::error::{PageError, PageResult};
use crate::AppState;

/// The cookie that carries a new token's secret to the page that shows it once.
const NEW_TOKEN_COOKIE: &str = "casecast_new_token";
/// The longest token name.
const MAX_NAME_CHARS: usize = 100;

struct TokenRow {
    id: i64,
    name: String,
    user_email: String,
    created: String,
    last_used: String,
    revoked: Option<String>,
}

struct MemberOption {
    id: i64,
    email: String,
}

#[derive(Template)]
#[template(path = "settings_tokens.html")]
struct TokensPage {
    chrome: Chrome,
    slug: String,
    rows: Vec<TokenRow>,
    members: Vec<MemberOption>,
    me: i64,
    name: String,
    new_secret: Option<String>,
    error: Option<String>,
    notice: Option<&'static str>,
}

fn notice(done: &str) -> Option<&'static str> {
    match done {
        "revoked" => Some("The token was revoked: requests that bear it are refused from now on."),
        _ => None,
    }
}

fn tokens_path(slug: &str) -> String {
    format!("/a/{slug}/settings/tokens")
}

/// The `Set-Cookie` value of the new-token cookie (`max_age` 0 clears it).
fn secret_cookie(state: &AppState, slug: &str, value: &str, max_age: i64) -> String {
    format!(
        "{NEW_TOKEN_COOKIE}={value}; Path={}; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        tokens_path(slug),
        if state.config.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    )
}

async fn render(
    state: &AppState,
    page: &ProjectPage,
    status: StatusCode,
    name: String,
    new_secret: Option<String>,
    error: Option<String>,
    notice: Option<&'static str>,
) -> PageResult<Response> {
    let zone = page.project.zone();
    let when = |t: i64| casecast_core::time::local_minute(t, &zone);
    let rows = state
        .db
        .list_tokens(page.project.id)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            user_email: t.user_email,
            created: when(t.created_at),
            last_used: t.last_used_at.map_or_else(|| "never".to_string(), when),
            revoked: t.revoked_at.map(when),
        })
        .collect();
    let members = state
        .db
        .members(page.project.id)
        .await?
        .into_iter()
        .map(|m| MemberOption {
            id: m.user.id,
            email: m.user.email,
        })
        .collect();
    let view = TokensPage {
        chrome: Chrome::project(page, "tokens"),
        slug: page.project.slug.clone(),
        rows,
        members,
        me: page.me.user.id,
        name,
        new_secret,
        error,
        notice,
    };
    Ok((status, html(&view)?).into_response())
}

/// `GET /a/{project}/settings/tokens`: shows a token just made, once.
pub(super) async fn list(
    State(state): State<AppState>,
    page: ProjectPage,
    headers: HeaderMap,
    Query(q): Query<DoneQuery>,
) -> PageResult<Response> {
    page.require_admin()?;
    let mut new_secret = None;
    if let Some(secret) = cookie(&headers, NEW_TOKEN_COOKIE).filter(|s| !s.is_empty()) {
        // Only a live token of this project is shown.
        if let Ok(grant) = state.db.check_token(&secret).await {
            if grant.project_id == page.project.id {
                new_secret = Some(secret);
            }
        }
    }
    let done = q.done.unwrap_or_default();
    let mut response = render(
        &state,
        &page,
        StatusCode::OK,
        String::new(),
        new_secret.clone(),
        None,
        notice(&done),
    )
    .await?;
    if cookie(&headers, NEW_TOKEN_COOKIE).is_some() {
        let clear = secret_cookie(&state, &page.project.slug, "", 0);
        if let Ok(v) = header::HeaderValue::from_str(&clear) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct CreateForm {
    csrf: String,
    name: String,
    user_id: String,
}

/// `POST /a/{project}/settings/tokens`: makes a token for a member of the project.
pub(super) async fn create(
    State(state): State<AppState>,
    page: ProjectPage,
    Form(form): Form<CreateForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_admin()?;
    let name = form.name.trim().to_string();
    let refuse = |message: &str| {
        let shown: String = name.chars().take(MAX_NAME_CHARS).collect();
        let message = message.to_string();
        let (state, page) = (state.clone(), page.clone());
        async move {
            render(
                &state,
                &page,
                StatusCode::UNPROCESSABLE_ENTITY,
                shown,
                None,
                Some(message),
                None,
            )
            .await
        }
    };
    if name.is_empty() {
        return refuse("Name: give the token a name that says who or what uses it.").await;
    }
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return refuse("Name: at most 100 characters, on one line.").await;
    }
    let user_id = if form.user_id.trim().is_empty() {
        page.me.user.id
    } else {
        form.user_id
            .trim()
            .parse::<i64>()
            .map_err(|_| PageError::bad_request("The user of the token was not understood."))?
    };
    // `create_token` refuses anyone who is not a member of this project.
    let (_, secret) = state
        .db
        .create_token(page.project.id, user_id, &name)
        .await?;
    tracing::info!(
        user.id = page.me.user.id,
        project = page.project.slug,
        "created an API token"
    );
    let flash = secret_cookie(&state, &page.project.slug, &secret, 300);
    Ok((
        [(header::SET_COOKIE, flash)],
        Redirect::to(&tokens_path(&page.project.slug)),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct CsrfForm {
    csrf: String,
}

/// `POST /a/{project}/settings/tokens/{id}/revoke`.
pub(super) async fn revoke(
    State(state): State<AppState>,
    page: ProjectPage,
    Path((_, id)): Path<(String, i64)>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_admin()?;
    state.db.revoke_token(page.project.id, id).await?;
    Ok(Redirect::to(&format!("{}?done=revoked", tokens_path(&page.project.slug))).into_response())
}
