//! Who is asking: API tokens for `/api/v1`, session cookies for pages, CSRF tokens for forms.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use casecast_core::Role;
use casecast_store::accounts::User;
use casecast_store::projects::Project;
use casecast_store::{secrets, StoreError};

use crate::error::{ApiError, PageError};
use crate::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "casecast_session";
/// The cookie that carries the login form's CSRF token before there is a session.
pub const LOGIN_CSRF_COOKIE: &str = "casecast_login_csrf";

/// An API caller: a valid token whose project is the one in the path.
#[derive(Clone, Debug)]
pub struct ApiAuth {
    pub project: Project,
    pub user_id: i64,
    pub role: Role,
}

impl ApiAuth {
    /// Refuses viewers (403).
    pub fn require_write(&self) -> Result<(), ApiError> {
        if self.role.can_write() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// Refuses everyone but admins (403): gateways and messaging settings.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

async fn project_slug(parts: &mut Parts, state: &AppState) -> Option<String> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .ok()?;
    params.get("project").cloned()
}

impl FromRequestParts<AppState> for ApiAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(ApiError::unauthorized)?;
        let grant = state.db.check_token(token).await.map_err(|e| match e {
            StoreError::NotFound(_) => ApiError::unauthorized(),
            other => other.into(),
        })?;
        let slug = project_slug(parts, state)
            .await
            .ok_or_else(|| ApiError::not_found("project"))?;
        let project = state.db.project_by_slug(&slug).await?;
        if project.id != grant.project_id {
            // Never tell a token holder that another project exists.
            return Err(ApiError::not_found("project"));
        }
        // Recorded at most once a minute and off the request's path: on SQLite a write waits
        // for any running write transaction (an upload batch), and a read must not.
        let now = casecast_core::time::now_ms();
        if grant.last_used_at.is_none_or(|t| t < now - 60_000) {
            let db = state.db.clone();
            let token_id = grant.token_id;
            tokio::spawn(async move {
                if let Err(e) = db.touch_token(token_id).await {
                    tracing::warn!(error = %e, "recording a token's use failed");
                }
            });
        }
        Ok(ApiAuth {
            project,
            user_id: grant.user_id,
            role: grant.role,
        })
    }
}

/// An API caller allowed to change data (editor or admin); checked before the body is read,
/// so a viewer gets 403 whatever it sent.
#[derive(Clone, Debug)]
pub struct WriteAuth(pub ApiAuth);

impl FromRequestParts<AppState> for WriteAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = ApiAuth::from_request_parts(parts, state).await?;
        auth.require_write()?;
        Ok(WriteAuth(auth))
    }
}

/// Reads one cookie from the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, path `/`, Secure when configured.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A logged-in person on a page.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub user: User,
    pub csrf_token: String,
    pub session_token: String,
}

impl CurrentUser {
    /// Checks a form's CSRF token against the session's.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), PageError> {
        if secrets::constant_time_eq(&self.csrf_token, submitted) {
            Ok(())
        } else {
            Err(PageError::forbidden("This form has expired or did not come from Casecast. Go back, reload the page and try again."))
        }
    }
}

/// Sends people without a session to the login page, then back to `next`. `expired`: the
/// browser sent a session that has ended (the login page says so, and the stale cookie goes).
pub struct LoginRedirect {
    pub next: String,
    pub expired: bool,
    pub secure: bool,
}

impl IntoResponse for LoginRedirect {
    fn into_response(self) -> Response {
        let next = percent_encode(&self.next);
        if self.expired {
            let clear = set_cookie(SESSION_COOKIE, "", 0, self.secure);
            (
                [(header::SET_COOKIE, clear)],
                Redirect::to(&format!("/login?next={next}&expired=1")),
            )
                .into_response()
        } else {
            Redirect::to(&format!("/login?next={next}")).into_response()
        }
    }
}

/// Where to return after logging in: this page for a GET; for a form's POST, the page the
/// form was on (its `Referer`, when it is this site's), else the form's action URL (a GET on
/// which leads to the form's page).
fn return_to(parts: &Parts) -> String {
    let here = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    if parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD {
        return here;
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let referer = parts
        .headers
        .get(header::REFERER)
        .and_then(|h| h.to_str().ok());
    if let (Some(host), Some(referer)) = (host, referer) {
        let rest = referer
            .strip_prefix("https://")
            .or_else(|| referer.strip_prefix("http://"));
        if let Some(rest) = rest {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            if authority == host && path.starts_with('/') {
                return path.to_string();
            }
        }
    }
    parts.uri.path().to_string()
}

/// What [`percent_encode`] escapes: every byte but ASCII letters, digits and `-_./`.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'/');

/// Encodes a path for a query string (letters, digits and `-_./` stay; every other byte of the
/// UTF-8 becomes `%XX`, in capitals).
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let login = |expired: bool| {
            LoginRedirect {
                next: return_to(parts),
                expired,
                secure: state.config.secure_cookies,
            }
            .into_response()
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
            return Err(login(false));
        };
        match state.db.session(&token).await {
            Ok(s) => Ok(CurrentUser {
                user: s.user,
                csrf_token: s.csrf_token,
                session_token: token,
            }),
            Err(StoreError::NotFound(_)) => Err(login(true)),
            Err(e) => Err(PageError::from(e).into_response()),
        }
    }
}

/// A logged-in member of the project named in the path.
#[derive(Clone, Debug)]
pub struct ProjectPage {
    pub me: CurrentUser,
    pub project: Project,
    pub role: Role,
}

impl ProjectPage {
    /// Refuses viewers.
    pub fn require_write(&self) -> Result<(), PageError> {
        if self.role.can_write() {
            Ok(())
        } else {
            Err(PageError::forbidden(
                "Your role in this project is viewer: you can look, but not change anything.",
            ))
        }
    }

    /// Refuses everyone but admins.
    pub fn require_admin(&self) -> Result<(), PageError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(PageError::forbidden(
                "Only an admin of this project can do this.",
            ))
        }
    }
}

impl FromRequestParts<AppState> for ProjectPage {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let me = CurrentUser::from_request_parts(parts, state).await?;
        let not_found = || PageError::not_found().into_response();
        let slug = project_slug(parts, state).await.ok_or_else(not_found)?;
        let project = state
            .db
            .project_by_slug(&slug)
            .await
            .map_err(|e| PageError::from(e).into_response())?;
        let role = state
            .db
            .role_in_project(me.user.id, project.id)
            .await
            .map_err(|e| PageError::from(e).into_response())?
            .ok_or_else(not_found)?;
        Ok(ProjectPage { me, project, role })
    }
}

/// Logs a user in (see `Db::login_with`), checking the password with argon2 on a blocking
/// thread so that the async threads keep serving while it works. The blocking thread holds
/// `checking` (one of the process's password-check permits) until the check ends, even when
/// the request is dropped half-way (its client went away), so that the bound on checks
/// running at once holds.
pub async fn log_in(
    db: &casecast_store::Db,
    email: &str,
    password: &str,
    client: &str,
    checking: casecast_engine::permits::Permit,
) -> Result<casecast_store::accounts::LoginOutcome, StoreError> {
    db.login_with(email, password, client, |password, hash| async move {
        tokio::task::spawn_blocking(move || {
            let _checking = checking;
            secrets::verify_password(&password, &hash)
        })
        .await
        .unwrap_or(false)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn percent_encode_keeps_letters_digits_and_path_marks() {
        assert_eq!(percent_encode("/p/demo/cases-1_a.b"), "/p/demo/cases-1_a.b");
        assert_eq!(
            percent_encode("/p/x?q=a b&c=%+~"),
            "/p/x%3Fq%3Da%20b%26c%3D%25%2B%7E"
        );
        assert_eq!(percent_encode("café"), "caf%C3%A9");
        assert_eq!(percent_encode(""), "");
    }
}
