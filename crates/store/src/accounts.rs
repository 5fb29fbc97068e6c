//! People and access: users, their roles per project, login sessions and login rate limits.

use casecast_core::{Email, Role};
use sqlx::Row;

use crate::error::{is_unique_violation, StoreError, StoreResult};
use crate::secrets;
use crate::Db;

/// How long a login session lasts.
pub const SESSION_MS: i64 = 12 * 60 * 60 * 1000;
/// Failed logins of one email from one client address before each attempt must wait.
pub const FREE_FAILURES: i64 = 5;
/// Failed logins from one client address, whatever the emails, before each attempt must wait.
pub const FREE_CLIENT_FAILURES: i64 = 20;
/// The longest wait between two attempts.
pub const MAX_DELAY_SECS: i64 = 60;
/// The window in which failed logins are counted.
pub const LOGIN_WINDOW_MS: i64 = 15 * 60 * 1000;

/// How long the next attempt waits after `failures` failures of which `free` cost nothing:
/// 4 s once they are used up, doubling with each further failure, at most [`MAX_DELAY_SECS`].
pub fn delay_secs(failures: i64, free: i64) -> i64 {
    if failures < free {
        0
    } else {
        let doublings = (failures - free + 2).min(10) as u32;
        (1_i64 << doublings).min(MAX_DELAY_SECS)
    }
}

/// The start of every failure key of an email: a space cannot be in an email, so one email's
/// keys never start with another's.
/// The start of every failure key of an email. Its length is part of it, so that a typed
/// "email" with a space (`victim@x.org junk`) cannot make keys that count as another email's.
fn pair_prefix(email: &str) -> String {
    format!("pair:{}:{email} ", email.len())
}

fn pair_key(email: &str, client: &str) -> String {
    format!("{}{client}", pair_prefix(email))
}

/// A logged-in person.
#[derive(Clone, Debug)]
pub struct User {
    pub id: i64,
    pub email: String,
}

/// A login found by email.
#[derive(Clone, Debug)]
pub struct Login {
    pub user: User,
    /// False once the login was removed (it has no password and no project).
    pub active: bool,
}

/// A member of a project, as its admins see it.
#[derive(Clone, Debug)]
pub struct Member {
    pub user: User,
    pub role: Role,
    pub last_login_at: Option<i64>,
}

fn member(r: &sqlx::any::AnyRow) -> StoreResult<Member> {
    let role: String = r.try_get("role")?;
    Ok(Member {
        user: User {
            id: r.try_get("id")?,
            email: r.try_get("email")?,
        },
        role: role
            .parse()
            .map_err(|_| StoreError::corrupt("membership", format!("unknown role '{role}'")))?,
        last_login_at: r.try_get("last_login_at")?,
    })
}

/// Refuses (`last_admin`) a change that would leave the project with no admin but `user_id`
/// gone or demoted. Locks the project's admin rows, so that two admins removing each other at
/// once cannot both succeed.
async fn check_other_admin(
    tx: &mut crate::Tx,
    dialect: crate::Dialect,
    project_id: i64,
    user_id: i64,
) -> StoreResult<()> {
    let admins: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT user_id FROM memberships WHERE project_id = $1 AND role = 'admin'{}",
        crate::dialect::for_update(dialect)
    ))
    .bind(project_id)
    .fetch_all(&mut **tx)
    .await?;
    if admins.contains(&user_id) && admins.len() == 1 {
        return Err(StoreError::Conflict {
            code: "last_admin",
            message: "this is the project's last admin: make another member admin first".into(),
        });
    }
    Ok(())
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
    /// Wrong email or password (never says which): how many more failures cost nothing, and
    /// how long the attempt after those must wait.
    Wrong {
        attempts_left: i64,
        next_wait_secs: i64,
    },
    /// Too many failures recently: the next attempt may come in this many seconds.
    Throttled { seconds: i64 },
}

impl Db {
    /// Creates a user, or sets the password of an existing one (ending its sessions); then
    /// gives the role in the project. For the demo and tests: people are managed with
    /// [`Db::create_login`], [`Db::set_password`] and [`Db::set_role`].
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
                // A new password ends the sessions opened with the old one.
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
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

    /// The login with this email, removed ones included (`active` false).
    pub async fn find_login(&self, email: &Email) -> StoreResult<Option<Login>> {
        let row = sqlx::query("SELECT id, email, password_hash FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(Login {
                user: User {
                    id: r.try_get("id")?,
                    email: r.try_get("email")?,
                },
                active: !r.try_get::<String, _>("password_hash")?.is_empty(),
            })
        })
        .transpose()
    }

    /// Creates a login with this password (checked by the caller). An email whose login was
    /// removed gets it back, with no project; any other existing email is a conflict
    /// (`user_taken`): its password is changed only by [`Db::set_password`].
    pub async fn create_login(&self, email: &Email, password: &str) -> StoreResult<User> {
        let hash = secrets::hash_password(password);
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query("SELECT id, password_hash FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let taken = || StoreError::Conflict {
            code: "user_taken",
            message: format!("{} already has a login", email.as_str()),
        };
        let id: i64 = match existing {
            Some(r) if !r.try_get::<String, _>("password_hash")?.is_empty() => return Err(taken()),
            Some(r) => {
                let id: i64 = r.try_get("id")?;
                sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(&hash)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                id
            }
            None => sqlx::query_scalar(
                "INSERT INTO users (email, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(email.as_str())
            .bind(&hash)
            .bind(casecast_core::time::now_ms())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| if is_unique_violation(&e) { taken() } else { e.into() })?,
        };
        tx.commit().await?;
        Ok(User {
            id,
            email: email.as_str().to_string(),
        })
    }

    /// Replaces a login's password (checked by the caller) and ends all its sessions.
    pub async fn set_password(&self, user_id: i64, password: &str) -> StoreResult<()> {
        let hash = secrets::hash_password(password);
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(&hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("user"));
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives a login a role in a project, or changes the role it has. Refuses (`last_admin`)
    /// to leave the project without an admin.
    pub async fn set_role(&self, project_id: i64, user_id: i64, role: Role) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        if role != Role::Admin {
            check_other_admin(&mut tx, self.dialect(), project_id, user_id).await?;
        }
        sqlx::query(
            "INSERT INTO memberships (user_id, project_id, role, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, project_id) DO UPDATE SET role = excluded.role",
        )
        .bind(user_id)
        .bind(project_id)
        .bind(role.as_str())
        .bind(casecast_core::time::now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes a login out of a project: its membership goes and its tokens for the project are
    /// revoked. Its sessions stay: they may serve other projects, which are not this project's
    /// admin's to end, and every page checks the role in its project on every request, so the
    /// sessions reach this project no more. Refuses (`last_admin`) to remove the project's last
    /// admin; `NotFound("membership")` when it was not a member.
    pub async fn remove_from_project(&self, project_id: i64, user_id: i64) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        check_other_admin(&mut tx, self.dialect(), project_id, user_id).await?;
        let done = sqlx::query("DELETE FROM memberships WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("membership"));
        }
        let now = casecast_core::time::now_ms();
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE project_id = $2 AND user_id = $3 AND revoked_at IS NULL")
            .bind(now)
            .bind(project_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a login everywhere: every membership, token and session, and its password (the
    /// row stays, for the history that names it; `create_login` can bring the email back).
    /// Refuses (`last_admin`) when it is the last admin of a project.
    pub async fn remove_login(&self, user_id: i64) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let projects: Vec<i64> =
            sqlx::query_scalar("SELECT project_id FROM memberships WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
        for project_id in projects {
            check_other_admin(&mut tx, self.dialect(), project_id, user_id).await?;
        }
        let now = casecast_core::time::now_ms();
        for statement in [
            "DELETE FROM memberships WHERE user_id = $1",
            "DELETE FROM sessions WHERE user_id = $1",
            "UPDATE users SET password_hash = '' WHERE id = $1",
        ] {
            sqlx::query(statement)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The members of a project, by email.
    pub async fn members(&self, project_id: i64) -> StoreResult<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, m.role, u.last_login_at FROM memberships m
             JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 ORDER BY u.email",
        )
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(member).collect()
    }

    /// Every membership of every login (or of one project's), by email then project: what
    /// `casecast user list` prints.
    pub async fn list_memberships(
        &self,
        project_id: Option<i64>,
    ) -> StoreResult<Vec<(String, Member)>> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, m.role, u.last_login_at, p.slug FROM memberships m
             JOIN users u ON u.id = m.user_id JOIN projects p ON p.id = m.project_id
             WHERE $1 = 0 OR m.project_id = $1 ORDER BY u.email, p.slug",
        )
        .bind(project_id.unwrap_or(0))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("slug")?, member(r)?)))
            .collect()
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

    /// Checks a password and opens a session, slowing repeated failures down.
    ///
    /// Failures are counted per (email, client address) and per client address, over
    /// [`LOGIN_WINDOW_MS`]. The first [`FREE_FAILURES`] of a pair (and [`FREE_CLIENT_FAILURES`]
    /// of an address, across emails) cost nothing; after them each attempt must wait a delay
    /// ([`delay_secs`]) that doubles with every failure, up to [`MAX_DELAY_SECS`], counted from
    /// the answer to the last failure.
    /// An attempt made too soon is answered [`LoginOutcome::Throttled`] without looking at the
    /// password. So nobody can lock another person out: the right password from another
    /// address gets in at once, and from the same address after at most a minute.
    ///
    /// `verify(password, stored hash)` checks the password: argon2 takes tens of milliseconds
    /// of CPU, which the caller runs off the async threads (`casecast_web::auth`).
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
        let pair_key = pair_key(&email, client);
        let client_key = format!("client:{client}");
        // Checked and counted in one write transaction (serialised on both engines), and every
        // attempt counts from the moment it starts, so that parallel guesses cannot slip past
        // the delay; a successful attempt takes its rows back.
        let mut tx = self.begin_write().await?;
        if self.dialect() == crate::Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7261002)")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM login_failures WHERE at < $1")
            .bind(since)
            .execute(&mut *tx)
            .await?;
        let mut counts = [(0_i64, None::<i64>); 2];
        for (i, key) in [&pair_key, &client_key].into_iter().enumerate() {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n, MAX(at) AS last FROM login_failures WHERE key = $1",
            )
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
            counts[i] = (row.try_get("n")?, row.try_get("last")?);
        }
        let [(by_pair, last_pair), (by_client, last_client)] = counts;
        let wait_ms = |failures: i64, free: i64, last: Option<i64>| {
            last.map_or(0, |last| delay_secs(failures, free) * 1000 - (now - last))
        };
        let wait = wait_ms(by_pair, FREE_FAILURES, last_pair).max(wait_ms(
            by_client,
            FREE_CLIENT_FAILURES,
            last_client,
        ));
        if wait > 0 {
            tx.commit().await?;
            return Ok(LoginOutcome::Throttled {
                seconds: (wait + 999) / 1000,
            });
        }
        for key in [&pair_key, &client_key] {
            sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
                .bind(key)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let row = sqlx::query("SELECT id, email, password_hash FROM users WHERE email = $1")
            .bind(&email)
            .fetch_optional(self.pool())
            .await?;
        let hash = match &row {
            Some(r) => r.try_get::<String, _>("password_hash")?,
            None => String::new(),
        };
        // A removed login has no hash; an unknown email neither. Both cost the same work as a
        // real check, so timing does not tell which emails exist.
        let hash = if hash.is_empty() {
            dummy_hash().to_string()
        } else {
            hash
        };
        let verified = verify(password.to_string(), hash).await;
        let user = match row {
            Some(r) if verified => Some(User {
                id: r.try_get("id")?,
                email: r.try_get("email")?,
            }),
            _ => None,
        };
        let Some(user) = user else {
            // The delay counts from the answer, not from the start of a slow check.
            sqlx::query(
                "UPDATE login_failures SET at = $1 WHERE (key = $2 OR key = $3) AND at = $4",
            )
            .bind(casecast_core::time::now_ms().max(now))
            .bind(&pair_key)
            .bind(&client_key)
            .bind(now)
            .execute(self.pool())
            .await?;
            let (pair, client) = (by_pair + 1, by_client + 1);
            return Ok(LoginOutcome::Wrong {
                attempts_left: (FREE_FAILURES - pair)
                    .min(FREE_CLIENT_FAILURES - client)
                    .max(0),
                next_wait_secs: delay_secs(pair, FREE_FAILURES)
                    .max(delay_secs(client, FREE_CLIENT_FAILURES)),
            });
        };
        // The pair's failures are forgotten; the address's stay, so that logging in to one's
        // own account does not reset a count of guesses at other people's.
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM login_failures WHERE key = $1 OR (key = $2 AND at = $3)")
            .bind(&pair_key)
            .bind(&client_key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
            .bind(now)
            .bind(user.id)
            .execute(&mut *tx)
            .await?;
        let token = secrets::random_hex(32);
        sqlx::query("INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(secrets::token_digest(&token))
            .bind(user.id)
            .bind(secrets::random_hex(32))
            .bind(now)
            .bind(now + SESSION_MS)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(LoginOutcome::Ok { token, user })
    }

    /// Forgets the failed logins of an email from every address (an admin's unlock); returns
    /// how many were forgotten.
    pub async fn unlock_login(&self, email: &str) -> StoreResult<u64> {
        let prefix = pair_prefix(&email.trim().to_lowercase());
        let done = sqlx::query(
            "DELETE FROM login_failures WHERE substr(key, 1, CAST($1 AS INTEGER)) = $2",
        )
        .bind(prefix.chars().count() as i64)
        .bind(&prefix)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// The most failed logins of an email from one address in the window (what an admin sees:
    /// at [`FREE_FAILURES`] or more, that address must wait before each attempt).
    pub async fn failed_logins(&self, email: &str) -> StoreResult<i64> {
        let prefix = pair_prefix(&email.trim().to_lowercase());
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM login_failures
             WHERE substr(key, 1, CAST($1 AS INTEGER)) = $2 AND at >= $3 GROUP BY key) t",
        )
        .bind(prefix.chars().count() as i64)
        .bind(&prefix)
        .bind(casecast_core::time::now_ms() - LOGIN_WINDOW_MS)
        .fetch_one(self.pool())
        .await?;
        Ok(n.unwrap_or(0))
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
