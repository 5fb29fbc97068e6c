//! People and access: users, their roles per project, login sessions and login rate limits.

use casecast_core::{Email, Role};
use sqlx::Row;

use crate::error::{is_unique_violation, StoreError, StoreResult};
use crate::secrets;
use crate::Db;

/// How long a login session lasts.
pub const SESSION_MS: i64 = 12 * 60 * 60 * 1000;
/// Failed logins allowed per email (and, times four, per client address) in the window.
pub const MAX_LOGIN_FAILURES: i64 = 5;
/// The window in which failed logins are counted.
pub const LOGIN_WINDOW_MS: i64 = 15 * 60 * 1000;

/// A logged-in person.
#[derive(Clone, Debug)]
pub struct User {
    pub id: i64,
    pub email: String,
}

/// A session found from its cookie.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
}

/// The result of a login attempt.
#[derive(Debug)]
pub enum LoginOutcome {
    /// The new session's cookie value (shown once) and its CSRF token.
    Ok { token: String, user: User },
    /// Wrong email or password (never says which).
    Wrong,
    /// Too many failures recently; try again in this many minutes.
    Throttled { minutes: i64 },
}

impl Db {
    /// Creates a user, or sets the password of an existing one; then gives the role in the project.
    pub async fn upsert_user(
        &self,
        email: &Email,
        password: &str,
        project_id: i64,
        role: Role,
    ) -> StoreResult<User> {
        let hash = secrets::hash_password(password);
        let now = casecast_core::time::now_ms();
        let mut tx = self.begin_write().await?;
        let existing: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let id = match existing {
            Some(id) => {
                sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(&hash)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                id
            }
            None => sqlx::query_scalar("INSERT INTO users (email, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id")
                .bind(email.as_str())
                .bind(&hash)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::Conflict { code: "user_taken", message: "that email is already used".into() }
                    } else {
                        e.into()
                    }
                })?,
        };
        sqlx::query(
            "INSERT INTO memberships (user_id, project_id, role, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, project_id) DO UPDATE SET role = excluded.role",
        )
        .bind(id)
        .bind(project_id)
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(User {
            id,
            email: email.as_str().to_string(),
        })
    }

    /// The user with this email.
    pub async fn user_by_email(&self, email: &str) -> StoreResult<User> {
        let row = sqlx::query("SELECT id, email FROM users WHERE email = $1")
            .bind(email.trim().to_lowercase())
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("user"))?;
        Ok(User {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
        })
    }

    /// The user's role in a project, or `None` when not a member.
    pub async fn role_in_project(
        &self,
        user_id: i64,
        project_id: i64,
    ) -> StoreResult<Option<Role>> {
        let role: Option<String> = sqlx::query_scalar(
            "SELECT role FROM memberships WHERE user_id = $1 AND project_id = $2",
        )
        .bind(user_id)
        .bind(project_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(role.and_then(|r| r.parse().ok()))
    }

    /// Checks a password, counting failures per email and per client address, and opens a
    /// session. `verify(password, stored hash)` checks the password: argon2 takes tens of
    /// milliseconds of CPU, which the caller runs off the async threads (`casecast_web::auth`).
    pub async fn login_with<F, Fut>(
        &self,
        email: &str,
        password: &str,
        client: &str,
        verify: F,
    ) -> StoreResult<LoginOutcome>
    where
        F: FnOnce(String, String) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let email = email.trim().to_lowercase();
        let now = casecast_core::time::now_ms();
        let since = now - LOGIN_WINDOW_MS;
        let email_key = format!("email:{email}");
        let client_key = format!("client:{client}");
        // Every attempt counts from the moment it starts, so that parallel guesses cannot slip
        // past the limit; a successful attempt takes its own row back.
        let mut tx = self.begin_write().await?;
        for key in [&email_key, &client_key] {
            sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
                .bind(key)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM login_failures WHERE at < $1")
            .bind(since)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let failures = |key: String| async move {
            sqlx::query("SELECT COUNT(*) AS n, MIN(at) AS oldest FROM login_failures WHERE key = $1 AND at > $2")
                .bind(key)
                .bind(since)
                .fetch_one(self.pool())
                .await
                .and_then(|r| Ok((r.try_get::<i64, _>("n")?, r.try_get::<Option<i64>, _>("oldest")?)))
        };
        let (by_email, oldest_e) = failures(email_key.clone()).await?;
        let (by_client, oldest_c) = failures(client_key.clone()).await?;
        if by_email > MAX_LOGIN_FAILURES || by_client > MAX_LOGIN_FAILURES * 4 {
            let oldest = oldest_e.into_iter().chain(oldest_c).min().unwrap_or(now);
            let minutes = ((oldest + LOGIN_WINDOW_MS - now) / 60_000).max(1);
            return Ok(LoginOutcome::Throttled { minutes });
        }
        let row = sqlx::query("SELECT id, email, password_hash FROM users WHERE email = $1")
            .bind(&email)
            .fetch_optional(self.pool())
            .await?;
        let (hash, password_owned) = match &row {
            Some(r) => (
                r.try_get::<String, _>("password_hash")?,
                password.to_string(),
            ),
            // Same work as a real check, so timing does not tell which emails exist.
            None => (dummy_hash().to_string(), password.to_string()),
        };
        let verified = verify(password_owned, hash).await;
        let user = match row {
            Some(r) if verified => Some(User {
                id: r.try_get("id")?,
                email: r.try_get("email")?,
            }),
            _ => None,
        };
        let Some(user) = user else {
            return Ok(LoginOutcome::Wrong);
        };
        sqlx::query("DELETE FROM login_failures WHERE (key = $1 OR key = $2) AND at = $3")
            .bind(&email_key)
            .bind(&client_key)
            .bind(now)
            .execute(self.pool())
            .await?;
        let token = secrets::random_hex(32);
        sqlx::query("INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(secrets::token_digest(&token))
            .bind(user.id)
            .bind(secrets::random_hex(32))
            .bind(now)
            .bind(now + SESSION_MS)
            .execute(self.pool())
            .await?;
        Ok(LoginOutcome::Ok { token, user })
    }

    /// The live session behind a cookie value.
    pub async fn session(&self, token: &str) -> StoreResult<Session> {
        let row = sqlx::query(
            "SELECT u.id, u.email, s.csrf_token FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(secrets::token_digest(token))
        .bind(casecast_core::time::now_ms())
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("session"))?;
        Ok(Session {
            user: User {
                id: row.try_get("id")?,
                email: row.try_get("email")?,
            },
            csrf_token: row.try_get("csrf_token")?,
        })
    }

    /// Ends a session (logout).
    pub async fn end_session(&self, token: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1 OR expires_at < $2")
            .bind(secrets::token_digest(token))
            .bind(casecast_core::time::now_ms())
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

/// A hash of a random password nobody knows, made once, so that checking an unknown email
/// costs the same as checking a known one.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| secrets::hash_password(&secrets::random_hex(16)))
}
