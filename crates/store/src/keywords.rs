//! Keywords as written (the definition is the CONTRACT's keyword body, checked by
//! `casecast_core::keyword::Keyword::parse` before it is stored, with the project's stop and
//! start words reserved). What a message that matches one does is the engine's
//! (`casecast_engine::keywords`).
//!
//! Rules kept here: a keyword is unique per project ignoring case (`keyword_taken`), compared as
//! messages are ([`casecast_core::keyword::fold`]).

use casecast_core::keyword::{fold, Keyword};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::error::{is_unique_violation, StoreError, StoreResult};
use crate::Db;

/// A stored keyword.
#[derive(Clone, Debug, Serialize)]
pub struct StoredKeyword {
    pub id: i64,
    #[serde(skip)]
    pub project_id: i64,
    #[serde(skip)]
    pub keyword: Keyword,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) fn keyword_taken(keyword: &Keyword) -> StoreError {
    StoreError::Conflict {
        code: "keyword_taken",
        message: format!(
            "this project already has the keyword '{}' (keywords ignore case)",
            keyword.keyword
        ),
    }
}

pub(crate) const KEYWORD_COLUMNS: &str = "id, project_id, definition, created_at, updated_at";

pub(crate) fn keyword_from_row(row: &AnyRow) -> StoreResult<StoredKeyword> {
    let text: String = row.try_get("definition")?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| StoreError::corrupt_json("keyword", &e))?;
    let keyword = Keyword::from_stored(&value).map_err(|problems| {
        StoreError::corrupt(
            "keyword",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    Ok(StoredKeyword {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        keyword,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Db {
    /// Stores a checked keyword.
    pub async fn create_keyword(
        &self,
        project_id: i64,
        keyword: &Keyword,
        user_id: Option<i64>,
    ) -> StoreResult<StoredKeyword> {
        let now = casecast_core::time::now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO keywords (project_id, word_key, definition, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        )
        .bind(project_id)
        .bind(fold(&keyword.keyword))
        .bind(keyword.to_json().to_string())
        .bind(user_id)
        .bind(now)
        .fetch_one(self.pool())
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                keyword_taken(keyword)
            } else {
                e.into()
            }
        })?;
        self.keyword(project_id, id).await
    }

    /// One keyword of the project.
    pub async fn keyword(&self, project_id: i64, id: i64) -> StoreResult<StoredKeyword> {
        let row = sqlx::query(&format!(
            "SELECT {KEYWORD_COLUMNS} FROM keywords WHERE project_id = $1 AND id = $2"
        ))
        .bind(project_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("keyword"))?;
        keyword_from_row(&row)
    }

    /// The project's keyword whose folded word is `word_key`, read inside the caller's
    /// transaction (the inbound router's).
    pub async fn keyword_by_word_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        word_key: &str,
    ) -> StoreResult<Option<StoredKeyword>> {
        let row = sqlx::query(&format!(
            "SELECT {KEYWORD_COLUMNS} FROM keywords WHERE project_id = $1 AND word_key = $2"
        ))
        .bind(project_id)
        .bind(word_key)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(keyword_from_row).transpose()
    }

    /// Whether the project has any keyword (the router skips looking one up when not).
    pub async fn has_keywords_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
    ) -> StoreResult<bool> {
        let n: Option<i64> =
            sqlx::query_scalar("SELECT id FROM keywords WHERE project_id = $1 LIMIT 1")
                .bind(project_id)
                .fetch_optional(&mut **tx)
                .await?;
        Ok(n.is_some())
    }
}
