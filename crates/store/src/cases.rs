//! Cases: create, read, list with keyset pagination, change, close, soft delete.

use std::collections::BTreeMap;

use casecast_core::case::{Case, CaseChanges};
use casecast_core::{CaseId, CountryCode, PhoneNumber};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::dialect::{Placeholders, MAX_BIND_PARAMS};
use crate::error::{is_unique_violation, StoreError, StoreResult};
use crate::{Db, Engine};

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct CaseFilter {
    pub external_id: Option<String>,
    pub phone_number: Option<PhoneNumber>,
    /// Matches a case ID or phone number exactly, the start of an external ID, or part of the name.
    pub q: Option<String>,
    /// The project's default country, for reading a national number in `q`.
    pub country: Option<CountryCode>,
    pub include_deleted: bool,
}

/// One page of a list and where the next one starts.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub(crate) const CASE_COLUMNS: &str = "id, case_id, case_type, name, external_id, phone_number, language_code, owner_id, closed, deleted, properties, created_at, modified_at";

/// A case with its row id (for keyset pagination and joins).
pub(crate) fn case_from_row(row: &AnyRow) -> Result<(i64, Case), sqlx::Error> {
    let properties: String = row.try_get("properties")?;
    let properties: BTreeMap<String, String> =
        serde_json::from_str(&properties).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok((
        row.try_get("id")?,
        Case {
            case_id: CaseId::from_stored(row.try_get("case_id")?),
            case_type: row.try_get("case_type")?,
            name: row.try_get("name")?,
            external_id: row.try_get("external_id")?,
            phone_number: row
                .try_get::<Option<String>, _>("phone_number")?
                .map(PhoneNumber::from_stored),
            language_code: row.try_get("language_code")?,
            owner_id: row.try_get("owner_id")?,
            closed: row.try_get::<i64, _>("closed")? != 0,
            deleted: row.try_get::<i64, _>("deleted")? != 0,
            properties,
            created_at: row.try_get("created_at")?,
            modified_at: row.try_get("modified_at")?,
        },
    ))
}

fn properties_json(case: &Case) -> String {
    serde_json::to_string(&case.properties).expect("a map of strings serialises")
}

const INSERT_COLUMNS: &str = "project_id, case_id, case_type, name, external_id, phone_number, language_code, owner_id, closed, deleted, properties, created_at, modified_at";
const INSERT_WIDTH: usize = 13;

/// Inserts cases with multi-row statements, chunked under the bind-parameter limit.
pub(crate) async fn insert_cases(
    tx: &mut Transaction<'static, Any>,
    engine: Engine,
    project_id: i64,
    cases: &[Case],
) -> Result<(), sqlx::Error> {
    for chunk in cases.chunks(MAX_BIND_PARAMS / INSERT_WIDTH) {
        let mut params = Placeholders::new(engine);
        let rows: Vec<String> = chunk
            .iter()
            .map(|_| format!("({})", params.list(INSERT_WIDTH)))
            .collect();
        let sql = format!(
            "INSERT INTO cases ({INSERT_COLUMNS}) VALUES {}",
            rows.join(",")
        );
        let mut q = sqlx::query(&sql);
        for c in chunk {
            q = q
                .bind(project_id)
                .bind(c.case_id.as_str().to_string())
                .bind(c.case_type.clone())
                .bind(c.name.clone())
                .bind(c.external_id.clone())
                .bind(c.phone_number.as_ref().map(|p| p.as_str().to_string()))
                .bind(c.language_code.clone())
                .bind(c.owner_id.clone())
                .bind(i64::from(c.closed))
                .bind(i64::from(c.deleted))
                .bind(properties_json(c))
                .bind(c.created_at)
                .bind(c.modified_at);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes a case's fields back to its row (never `deleted`: only `delete_case` changes that).
pub(crate) async fn update_case_row(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    c: &Case,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE cases SET case_type = $1, name = $2, external_id = $3, phone_number = $4, language_code = $5,
         owner_id = $6, closed = $7, properties = $8, modified_at = $9 WHERE id = $10",
    )
    .bind(c.case_type.clone())
    .bind(c.name.clone())
    .bind(c.external_id.clone())
    .bind(c.phone_number.as_ref().map(|p| p.as_str().to_string()))
    .bind(c.language_code.clone())
    .bind(c.owner_id.clone())
    .bind(i64::from(c.closed))
    .bind(properties_json(c))
    .bind(c.modified_at)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn case_id_taken(case_id: &CaseId) -> StoreError {
    StoreError::Conflict {
        code: "case_id_taken",
        message: format!("a case with ID '{case_id}' already exists in this project"),
    }
}

/// A LIKE pattern matching `text` anywhere, ignoring case (with `ESCAPE '\'`).
pub(crate) fn like_contains(text: &str) -> String {
    format!("%{}%", like_escape(text, true))
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
pub(crate) fn like_escape(text: &str, lowercase: bool) -> String {
    let text = if lowercase {
        text.to_lowercase()
    } else {
        text.to_string()
    };
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Db {
    /// Creates a case (with a new UUID unless one is given).
    pub async fn create_case(
        &self,
        project_id: i64,
        case_id: Option<CaseId>,
        changes: &CaseChanges,
    ) -> StoreResult<Case> {
        let now = casecast_core::time::now_ms();
        let case = changes.create(case_id.unwrap_or_default(), now)?;
        CaseChanges::check_result(&case)?;
        let mut tx = self.begin_write().await?;
        insert_cases(
            &mut tx,
            self.engine(),
            project_id,
            std::slice::from_ref(&case),
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                case_id_taken(&case.case_id)
            } else {
                e.into()
            }
        })?;
        tx.commit().await?;
        Ok(case)
    }

    /// The case with this ID in the project (deleted ones included, marked).
    pub async fn get_case(&self, project_id: i64, case_id: &str) -> StoreResult<Case> {
        let row = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE project_id = $1 AND case_id = $2"
        ))
        .bind(project_id)
        .bind(case_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("case"))?;
        Ok(case_from_row(&row)?.1)
    }

    /// A page of the project's cases in creation order; `cursor` is the previous page's `next_cursor`.
    pub async fn list_cases(
        &self,
        project_id: i64,
        filter: &CaseFilter,
        limit: usize,
        cursor: Option<i64>,
    ) -> StoreResult<Page<Case>> {
        let mut sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE project_id = $1 AND id > $2");
        let mut binds: Vec<String> = Vec::new();
        let mut next = |sql: &mut String, clause: &str, value: String| {
            binds.push(value);
            sql.push_str(&clause.replace("$?", &format!("${}", binds.len() + 2)));
        };
        if !filter.include_deleted {
            sql.push_str(" AND deleted = 0");
        }
        if let Some(e) = &filter.external_id {
            next(&mut sql, " AND external_id = $?", e.clone());
        }
        if let Some(p) = &filter.phone_number {
            next(&mut sql, " AND phone_number = $?", p.as_str().to_string());
        }
        if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let phone = PhoneNumber::parse(q, filter.country.as_ref())
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            next(&mut sql, " AND (case_id = $?", q.to_string());
            next(
                &mut sql,
                " OR external_id LIKE $? ESCAPE '\\'",
                like_escape(q, false) + "%",
            );
            next(&mut sql, " OR phone_number = $?", phone);
            next(
                &mut sql,
                " OR LOWER(name) LIKE $? ESCAPE '\\')",
                like_contains(q),
            );
        }
        sql.push_str(&format!(" ORDER BY id LIMIT {}", limit + 1));
        let mut query = sqlx::query(&sql).bind(project_id).bind(cursor.unwrap_or(0));
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(self.pool()).await?;
        let mut items = Vec::with_capacity(rows.len().min(limit));
        let mut last_id = None;
        for row in rows.iter().take(limit) {
            let (id, case) = case_from_row(row)?;
            last_id = Some(id);
            items.push(case);
        }
        let next_cursor = (rows.len() > limit)
            .then(|| last_id.map(|id| id.to_string()))
            .flatten();
        Ok(Page { items, next_cursor })
    }

    /// Applies changes to a live case; a deleted case is `NotFound`.
    pub async fn update_case(
        &self,
        project_id: i64,
        case_id: &str,
        changes: &CaseChanges,
    ) -> StoreResult<Case> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE project_id = $1 AND case_id = $2 AND deleted = 0{}",
            crate::dialect::for_update(self.engine())
        ))
            .bind(project_id)
            .bind(case_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("case"))?;
        let (id, mut case) = case_from_row(&row)?;
        if changes.apply(&mut case) {
            CaseChanges::check_result(&case)?;
            case.modified_at = casecast_core::time::now_ms();
            update_case_row(&mut tx, id, &case).await?;
        }
        tx.commit().await?;
        Ok(case)
    }

    /// Closes a case: it stays, but receives no messages.
    pub async fn close_case(&self, project_id: i64, case_id: &str) -> StoreResult<Case> {
        self.update_case(
            project_id,
            case_id,
            &CaseChanges {
                closed: Some(true),
                ..Default::default()
            },
        )
        .await
    }

    /// Soft-deletes a case: kept for history, hidden from lists and groups.
    pub async fn delete_case(&self, project_id: i64, case_id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let pk: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM cases WHERE project_id = $1 AND case_id = $2 AND deleted = 0",
        )
        .bind(project_id)
        .bind(case_id)
        .fetch_optional(&mut *tx)
        .await?;
        let pk = pk.ok_or(StoreError::NotFound("case"))?;
        // Guarded: of two concurrent deletes only one changes the row (and the counts).
        let done = sqlx::query(
            "UPDATE cases SET deleted = 1, modified_at = $1 WHERE id = $2 AND deleted = 0",
        )
        .bind(casecast_core::time::now_ms())
        .bind(pk)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("case"));
        }
        // A deleted case stops counting as a member of its groups (its memberships stay, hidden).
        sqlx::query(
            "UPDATE case_groups SET member_count = member_count - 1
             WHERE id IN (SELECT group_id FROM case_group_members WHERE case_pk = $1)",
        )
        .bind(pk)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many live cases the project has.
    pub async fn count_cases(&self, project_id: i64) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM cases WHERE project_id = $1 AND deleted = 0")
                .bind(project_id)
                .fetch_one(self.pool())
                .await?,
        )
    }
}
