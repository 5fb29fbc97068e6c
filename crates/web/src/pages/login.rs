//! Logging in and out, and the list of the user's projects.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use axum::Form;
use casecast_store::accounts::{LoginOutcome, SESSION_MS};
use casecast_store::projects::Project;
use casecast_store::secrets;
use serde::Deserialize;

use super::{html, Chrome};
use crate::auth::{cookie, set_cookie, CurrentUser, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::error::{PageError, PageResult};
use crate::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
    /// Why the user is asked to log in again.
    notice: Option<&'static str>,
}

/// What the login page says when the browser's session has ended.
pub const SESSION_EXPIRED: &str = "Your session has expired, please sign in again.";

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    chrome: Chrome,
    projects: Vec<(Project, String)>,
}

#[derive(Deserialize)]
pub(super) struct NextParam {
    next: Option<String>,
    /// Set by the redirect of a request whose session had ended.
    expired: Option<String>,
}

/// Only local paths, so that a link cannot send a user elsewhere after login.
fn safe_next(next: Option<&str>) -> String {
    // Browsers drop tabs and newlines from URLs, so `/\t/evil.example` would become
    // `//evil.example`: only plain path characters are accepted.
    let plain = |c: char| c.is_ascii_alphanumeric() || "/-_.~%?=&+".contains(c);
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.len() < 2048
                && n.chars().all(plain) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    next: String,
    email: String,
    error: Option<String>,
) -> PageResult<Response> {
    let csrf = secrets::random_hex(32);
    let page = LoginPage {
        chrome: Chrome::anonymous(),
        csrf: csrf.clone(),
        next,
        email,
        error,
        notice: None,
    };
    let cookie = set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600, state.config.secure_cookies);
    Ok((status, [(header::SET_COOKIE, cookie)], html(&page)?).into_response())
}

/// The login page with a notice above the form.
fn login_page_saying(state: &AppState, next: String, notice: &'static str) -> PageResult<Response> {
    let csrf = secrets::random_hex(32);
    let page = LoginPage {
        chrome: Chrome::anonymous(),
        csrf: csrf.clone(),
        next,
        email: String::new(),
        error: None,
        notice: Some(notice),
    };
    let cookie = set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600, state.config.secure_cookies);
    Ok(([(header::SET_COOKIE, cookie)], html(&page)?).into_response())
}

/// `GET /login`.
pub(super) async fn form(
    State(state): State<AppState>,
    Query(q): Query<NextParam>,
) -> PageResult<Response> {
    if q.expired.is_some() {
        return login_page_saying(&state, safe_next(q.next.as_deref()), SESSION_EXPIRED);
    }
    login_page(
        &state,
        StatusCode::OK,
        safe_next(q.next.as_deref()),
        String::new(),
        None,
    )
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    csrf: String,
    email: String,
    password: String,
    next: Option<String>,
}

/// `POST /login`.
pub(super) async fn submit(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> PageResult<Response> {
    let Form(form) = form.map_err(|_| {
        PageError::bad_request("The login form was incomplete. Go back and try again.")
    })?;
    let next = safe_next(form.next.as_deref());
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !secrets::constant_time_eq(&expected, &form.csrf) {
        let msg = "This login form had expired. Please try again.".to_string();
        return login_page(&state, StatusCode::FORBIDDEN, next, form.email, Some(msg));
    }
    if form.email.len() > 254 || form.password.len() > 1024 || form.email.contains('\0') {
        return login_page(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            next,
            String::new(),
            Some("That email or password cannot be right: check it and try again.".into()),
        );
    }
    // An argon2 check takes 19 MiB: a burst of logins (known emails or not) waits briefly for
    // one of the server's password-check permits, then is turned away instead of exhausting
    // memory.
    let Ok(checking) = state.password_checks.try_acquire().await else {
        let message = "Too many sign-ins at once; try again in a few seconds.";
        let mut page = login_page(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            next,
            form.email,
            Some(message.into()),
        )?;
        let retry = HeaderValue::from(crate::error::RETRY_AFTER_SECONDS);
        page.headers_mut().insert(header::RETRY_AFTER, retry);
        return Ok(page);
    };
    match crate::auth::log_in(
        &state.db,
        &form.email,
        &form.password,
        &client_address(addr.ip()),
        checking,
    )
    .await?
    {
        LoginOutcome::Ok { token, user } => {
            tracing::info!(user.id = user.id, "logged in");
            let secure = state.config.secure_cookies;
            let session = set_cookie(SESSION_COOKIE, &token, SESSION_MS / 1000, secure);
            let clear = set_cookie(LOGIN_CSRF_COOKIE, "", 0, secure);
            Ok((
                AppendHeaders([(header::SET_COOKIE, session), (header::SET_COOKIE, clear)]),
                Redirect::to(&next),
            )
                .into_response())
        }
        LoginOutcome::Wrong {
            attempts_left,
            next_wait_secs,
        } => {
            let then = if attempts_left > 0 {
                format!(
                    "{attempts_left} attempt{} left before a delay.",
                    plural(attempts_left)
                )
            } else {
                format!(
                    "Wait {next_wait_secs} second{} before the next attempt.",
                    plural(next_wait_secs)
                )
            };
            login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                next,
                form.email,
                Some(format!("Wrong email or password. {then}")),
            )
        }
        LoginOutcome::Throttled { seconds } => {
            let mut page = login_page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                next,
                form.email,
                Some(format!(
                    "Too many failed attempts: wait {seconds} second{} and try again.",
                    plural(seconds)
                )),
            )?;
            page.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
            Ok(page)
        }
    }
}

fn plural(n: i64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    csrf: String,
}

/// `POST /logout`.
pub(super) async fn logout(
    State(state): State<AppState>,
    me: CurrentUser,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    me.check_csrf(&form.csrf)?;
    state.db.end_session(&me.session_token).await?;
    let clear = set_cookie(SESSION_COOKIE, "", 0, state.config.secure_cookies);
    Ok(([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response())
}

/// `GET /`: the projects the user belongs to.
pub(super) async fn projects(
    State(state): State<AppState>,
    me: CurrentUser,
) -> PageResult<Response> {
    let projects = state.db.projects_of_user(me.user.id).await?;
    Ok(html(&ProjectsPage {
        chrome: Chrome::user(&me),
        projects,
    })?
    .into_response())
}

/// The client a login's failures are counted against: its IPv4 address, or the /64 network of
/// its IPv6 address (one subscriber's line or host has a whole /64 to pick addresses from).
fn client_address(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        other => other.to_canonical().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_plain_paths_are_followed() {
        assert_eq!(
            safe_next(Some("/a/demo/cases?q=x&cursor=5")),
            "/a/demo/cases?q=x&cursor=5"
        );
        for bad in [
            "//evil.example",
            "/\t/evil.example/",
            "/\t/evil",
            "/\n/x",
            "https://evil.example",
            "/\\evil",
            "/a b",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}

#[cfg(test)]
mod client_tests {
    use super::client_address;

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a = client_address("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = client_address("2001:db8:1:2:bbbb:cccc:dddd:eeee".parse().unwrap());
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(a, b);
        assert_ne!(a, client_address("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(client_address("127.0.0.2".parse().unwrap()), "127.0.0.2");
        assert_eq!(
            client_address("::ffff:10.1.2.3".parse().unwrap()),
            "10.1.2.3"
        );
    }
}
