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

/// How often a keyword was used: inbound messages that matched it in the last 7 and 30 days.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KeywordUse {
    pub last_7_days: i64,
    pub last_30_days: i64,
}

/// A day, in milliseconds.
const DAY_MS: i64 = 24 * 3600 * 1000;

impl Db {
    /// The project's keywords, ordered by keyword (as compared: ignoring case).
    pub async fn list_keywords(&self, project_id: i64) -> StoreResult<Vec<StoredKeyword>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEYWORD_COLUMNS} FROM keywords WHERE project_id = $1 ORDER BY word_key, id"
        ))
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(keyword_from_row).collect()
    }

    /// Replaces a keyword's definition with a checked one. `keyword_taken` when another keyword
    /// of the project is the same word ignoring case; not found when the project has no such
    /// keyword. Messages that matched it keep pointing at it.
    pub async fn update_keyword(
        &self,
        project_id: i64,
        id: i64,
        keyword: &Keyword,
    ) -> StoreResult<StoredKeyword> {
        let mut tx = self.begin_write().await?;
        let old: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT updated_at FROM keywords WHERE project_id = $1 AND id = $2{}",
            crate::dialect::for_update(self.dialect())
        ))
        .bind(project_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let old = old.ok_or(StoreError::NotFound("keyword"))?;
        sqlx::query(
            "UPDATE keywords SET word_key = $1, definition = $2, updated_at = $3
             WHERE project_id = $4 AND id = $5",
        )
        .bind(fold(&keyword.keyword))
        .bind(keyword.to_json().to_string())
        .bind(casecast_core::time::now_ms().max(old))
        .bind(project_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                keyword_taken(keyword)
            } else {
                StoreError::from(e)
            }
        })?;
        tx.commit().await?;
        self.keyword(project_id, id).await
    }

    /// Deletes a keyword. The messages that matched it, and its replies, stay in the log with
    /// their `keyword_id` (there is no foreign key): the log can still be filtered by it.
    pub async fn delete_keyword(&self, project_id: i64, id: i64) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM keywords WHERE project_id = $1 AND id = $2")
            .bind(project_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("keyword"));
        }
        Ok(())
    }

    /// How often each keyword of the project was used up to `now` (epoch ms): inbound
    /// messages that matched it in the last 7 and 30 days, in one grouped query that reads
    /// each keyword's messages through the `messages_keyword` index (keyword, time), so its
    /// cost follows the keywords' use, not the size of the project's log. Keywords without
    /// use are absent.
    pub async fn keyword_uses(
        &self,
        project_id: i64,
        now: i64,
    ) -> StoreResult<std::collections::HashMap<i64, KeywordUse>> {
        let rows = sqlx::query(
            "SELECT k.id AS keyword_id, COUNT(*) AS d30,
                    CAST(SUM(CASE WHEN m.created_at >= $3 THEN 1 ELSE 0 END) AS BIGINT) AS d7
             FROM keywords k
             JOIN messages m ON m.keyword_id = k.id AND m.project_id = k.project_id
             WHERE k.project_id = $1 AND m.created_at >= $2 AND m.direction = 'inbound'
             GROUP BY k.id",
        )
        .bind(project_id)
        .bind(now - 30 * DAY_MS)
        .bind(now - 7 * DAY_MS)
        .fetch_all(self.pool())
        .await?;
        let mut uses = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            uses.insert(
                row.try_get::<i64, _>("keyword_id")?,
                KeywordUse {
                    last_7_days: row.try_get("d7")?,
                    last_30_days: row.try_get("d30")?,
                },
            );
        }
        Ok(uses)
    }

    /// How often one keyword of the project was used up to `now` (see [`Db::keyword_uses`]).
    pub async fn keyword_use(&self, project_id: i64, id: i64, now: i64) -> StoreResult<KeywordUse> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS d30,
                    CAST(COALESCE(SUM(CASE WHEN created_at >= $4 THEN 1 ELSE 0 END), 0) AS BIGINT) AS d7
             FROM messages
             WHERE keyword_id = $2 AND created_at >= $3 AND project_id = $1
               AND direction = 'inbound'",
        )
        .bind(project_id)
        .bind(id)
        .bind(now - 30 * DAY_MS)
        .bind(now - 7 * DAY_MS)
        .fetch_one(self.pool())
        .await?;
        Ok(KeywordUse {
            last_7_days: row.try_get("d7")?,
            last_30_days: row.try_get("d30")?,
        })
    }

    /// The last `limit` inbound messages that matched the keyword, newest first.
    pub async fn keyword_messages(
        &self,
        project_id: i64,
        id: i64,
        limit: i64,
    ) -> StoreResult<Vec<crate::messages::Message>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM messages m
             LEFT JOIN cases c ON c.id = m.case_pk AND c.project_id = m.project_id
             WHERE m.keyword_id = $1 AND m.project_id = $2 AND m.direction = 'inbound'
             ORDER BY m.created_at DESC, m.id DESC LIMIT $3",
            crate::messages::COLUMNS
        ))
        .bind(id)
        .bind(project_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(crate::messages::from_row)
            .collect::<Result<_, _>>()?)
    }
}
