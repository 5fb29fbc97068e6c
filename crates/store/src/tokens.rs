//! API tokens: shown once, stored as a SHA-256 digest, bound to one project, revocable.

use casecast_core::Role;
use serde::Serialize;
use sqlx::Row;

use crate::error::{StoreError, StoreResult};
use crate::secrets;
use crate::Db;

/// What a valid token grants.
#[derive(Clone, Debug)]
pub struct TokenGrant {
    pub token_id: i64,
    /// When the token was last recorded as used.
    pub last_used_at: Option<i64>,
    pub project_id: i64,
    pub user_id: i64,
    pub role: Role,
}

/// A token as listed (never its secret).
#[derive(Clone, Debug, Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub user_email: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// The prefix of every token, so that leaked tokens are easy to search for.
pub const TOKEN_PREFIX: &str = "cc_";

impl Db {
    /// Creates a token for a member of the project; returns the secret, which is not stored.
    pub async fn create_token(
        &self,
        project_id: i64,
        user_id: i64,
        name: &str,
    ) -> StoreResult<(i64, String)> {
        if self.role_in_project(user_id, project_id).await?.is_none() {
            return Err(StoreError::NotFound("membership"));
        }
        let secret = format!("{TOKEN_PREFIX}{}", secrets::random_hex(24));
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (project_id, user_id, token_hash, name, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(secrets::token_digest(&secret))
        .bind(name)
        .bind(casecast_core::time::now_ms())
        .fetch_one(self.pool())
        .await?;
        Ok((id, secret))
    }

    /// What a presented token grants: the token's user's current role in the token's project.
    pub async fn check_token(&self, secret: &str) -> StoreResult<TokenGrant> {
        let row = sqlx::query(
            "SELECT t.id, t.project_id, t.user_id, t.last_used_at, m.role FROM api_tokens t
             JOIN memberships m ON m.user_id = t.user_id AND m.project_id = t.project_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        )
        .bind(secrets::token_digest(secret.trim()))
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("token"))?;
        let role: String = row.try_get("role")?;
        Ok(TokenGrant {
            token_id: row.try_get("id")?,
            last_used_at: row.try_get("last_used_at")?,
            project_id: row.try_get("project_id")?,
            user_id: row.try_get("user_id")?,
            role: role.parse().map_err(|_| StoreError::NotFound("token"))?,
        })
    }

    /// Records when a token was last used (at most once a minute, to spare writes).
    pub async fn touch_token(&self, token_id: i64) -> StoreResult<()> {
        let now = casecast_core::time::now_ms();
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)")
            .bind(now)
            .bind(token_id)
            .bind(now - 60_000)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Revokes a token of the project.
    pub async fn revoke_token(&self, project_id: i64, token_id: i64) -> StoreResult<()> {
        let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND project_id = $3 AND revoked_at IS NULL")
            .bind(casecast_core::time::now_ms())
            .bind(token_id)
            .bind(project_id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("token"));
        }
        Ok(())
    }

    /// The project's tokens, newest first.
    pub async fn list_tokens(&self, project_id: i64) -> StoreResult<Vec<TokenInfo>> {
        let rows = sqlx::query(
            "SELECT t.id, t.name, u.email, t.created_at, t.last_used_at, t.revoked_at FROM api_tokens t
             JOIN users u ON u.id = t.user_id WHERE t.project_id = $1 ORDER BY t.id DESC",
        )
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TokenInfo {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    user_email: r.try_get("email")?,
                    created_at: r.try_get("created_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
