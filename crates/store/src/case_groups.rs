//! Case groups: named sets of a project's cases, their members (keyset-paged) and history.

use casecast_core::case::Case;
use casecast_core::identifier::GroupName;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::cases::{case_from_row, like_contains, like_escape, Page};
use crate::error::{is_unique_violation, StoreError, StoreResult};
use crate::Db;

/// A group with its number of live members.
#[derive(Clone, Debug, Serialize)]
pub struct CaseGroup {
    pub id: i64,
    #[serde(skip)]
    pub project_id: i64,
    pub name: String,
    pub case_count: i64,
    /// A smart group's saved query (group references by id); `None` for a plain group.
    pub query: Option<String>,
    /// A smart group's last upkeep.
    pub evaluated_at: Option<i64>,
    pub created_at: i64,
    pub modified_at: i64,
}

/// Who changed a group, and through what.
#[derive(Clone, Copy, Debug)]
pub struct Actor {
    pub user_id: Option<i64>,
    /// `page`, `api`, `cli` or `upload`.
    pub via: &'static str,
}

/// One recorded change of a group.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryEntry {
    pub at: i64,
    pub user_email: Option<String>,
    pub action: String,
    pub via: String,
    pub added: i64,
    pub removed: i64,
    pub detail: String,
    /// The case a single add or removal was about, while it exists: (case ID, name, external ID).
    pub case: Option<(String, String, Option<String>)>,
}

const GROUP_COLUMNS: &str =
    "g.id, g.project_id, g.name, g.created_at, g.modified_at, g.member_count AS case_count, g.query, g.evaluated_at";

fn group_from_row(row: &AnyRow) -> Result<CaseGroup, sqlx::Error> {
    Ok(CaseGroup {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        case_count: row.try_get("case_count")?,
        query: row.try_get("query")?,
        evaluated_at: row.try_get("evaluated_at")?,
        created_at: row.try_get("created_at")?,
        modified_at: row.try_get("modified_at")?,
    })
}

/// Live members of group `$1`, with the columns of a case.
const MEMBER_SELECT: &str =
    "SELECT c.id, c.case_id, c.case_type, c.name, c.external_id, c.phone_number, c.language_code,
        c.owner_id, c.closed, c.deleted, c.properties, c.created_at, c.modified_at
     FROM case_group_members m JOIN cases c ON c.id = m.case_pk
     WHERE m.group_id = $1 AND c.deleted = 0";

/// A page of at most `limit` members from rows fetched with one extra (which says there is more).
fn member_page(rows: &[AnyRow], limit: usize) -> StoreResult<Page<Case>> {
    let mut items = Vec::with_capacity(rows.len().min(limit));
    let mut last = None;
    for row in rows.iter().take(limit) {
        let (id, case) = case_from_row(row)?;
        last = Some(id);
        items.push(case);
    }
    let next_cursor = if rows.len() > limit {
        last.map(|id| id.to_string())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// The answer to a group name already in use in the project.
pub fn name_taken(name: &GroupName) -> StoreError {
    StoreError::Conflict {
        code: "name_taken",
        message: format!("a case group named '{}' already exists in this project (names are compared ignoring case)", name.as_str()),
    }
}

/// Locks a group's row for the rest of the transaction, so that changes to one group's
/// members (and its stored count) happen one at a time on PostgreSQL as they do on SQLite.
pub(crate) async fn lock_group(
    tx: &mut Transaction<'static, Any>,
    engine: crate::Dialect,
    group_id: i64,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "SELECT id FROM case_groups WHERE id = $1{}",
        crate::dialect::for_update(engine)
    );
    sqlx::query(&sql)
        .bind(group_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(())
}

/// Records a change in the group's history.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record(
    tx: &mut Transaction<'static, Any>,
    group_id: i64,
    actor: Actor,
    action: &str,
    added: i64,
    removed: i64,
    detail: &str,
    case_pk: Option<i64>,
) -> Result<(), sqlx::Error> {
    let now = casecast_core::time::now_ms();
    sqlx::query(
        "INSERT INTO case_group_history (group_id, user_id, at, action, via, added, removed, detail, case_pk) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(group_id)
    .bind(actor.user_id)
    .bind(now)
    .bind(action)
    .bind(actor.via)
    .bind(added)
    .bind(removed)
    .bind(detail)
    .bind(case_pk)
    .execute(&mut **tx)
    .await?;
    if added > 0 || removed > 0 || action == "rename" {
        sqlx::query("UPDATE case_groups SET modified_at = $1 WHERE id = $2")
            .bind(now)
            .bind(group_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl Db {
    /// Creates a group; `name_taken` when another group of the project has the name (any case).
    pub async fn create_group(
        &self,
        project_id: i64,
        name: &GroupName,
        actor: Actor,
    ) -> StoreResult<CaseGroup> {
        let now = casecast_core::time::now_ms();
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO case_groups (project_id, name, name_key, created_at, modified_at) VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(project_id)
        .bind(name.as_str())
        .bind(name.key())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { name_taken(name) } else { e.into() })?;
        record(&mut tx, id, actor, "create", 0, 0, name.as_str(), None).await?;
        tx.commit().await?;
        self.get_group(project_id, id).await
    }

    /// A page of the project's groups, by name.
    pub async fn list_groups(&self, project_id: i64) -> StoreResult<Vec<CaseGroup>> {
        let rows = sqlx::query(&format!("SELECT {GROUP_COLUMNS} FROM case_groups g WHERE g.project_id = $1 ORDER BY g.name_key, g.id"))
            .bind(project_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(group_from_row)
            .collect::<Result<_, _>>()
            .map_err(Into::into)
    }

    /// A page of the project's groups in creation order (the API's list).
    pub async fn list_groups_page(
        &self,
        project_id: i64,
        limit: usize,
        cursor: Option<i64>,
    ) -> StoreResult<Page<CaseGroup>> {
        let rows = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM case_groups g WHERE g.project_id = $1 AND g.id > $2 ORDER BY g.id LIMIT {}",
            limit + 1
        ))
        .bind(project_id)
        .bind(cursor.unwrap_or(0))
        .fetch_all(self.pool())
        .await?;
        let mut items: Vec<CaseGroup> = rows
            .iter()
            .take(limit)
            .map(group_from_row)
            .collect::<Result<_, _>>()?;
        let next_cursor = (rows.len() > limit)
            .then(|| items.last().map(|g| g.id.to_string()))
            .flatten();
        items.truncate(limit);
        Ok(Page { items, next_cursor })
    }

    /// One group of the project.
    pub async fn get_group(&self, project_id: i64, group_id: i64) -> StoreResult<CaseGroup> {
        let row = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM case_groups g WHERE g.project_id = $1 AND g.id = $2"
        ))
        .bind(project_id)
        .bind(group_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("case group"))?;
        Ok(group_from_row(&row)?)
    }

    /// One group of the project that is a plain group (its members kept by hand): a smart
    /// group is `Conflict` `smart_group`.
    pub async fn plain_group(&self, project_id: i64, group_id: i64) -> StoreResult<CaseGroup> {
        let group = self.get_group(project_id, group_id).await?;
        if group.query.is_some() {
            return Err(crate::smart_groups::smart_group_conflict(&group.name));
        }
        Ok(group)
    }

    /// Renames a group.
    pub async fn rename_group(
        &self,
        project_id: i64,
        group_id: i64,
        name: &GroupName,
        actor: Actor,
    ) -> StoreResult<CaseGroup> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE case_groups SET name = $1, name_key = $2 WHERE project_id = $3 AND id = $4",
        )
        .bind(name.as_str())
        .bind(name.key())
        .bind(project_id)
        .bind(group_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                name_taken(name)
            } else {
                StoreError::from(e)
            }
        })?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("case group"));
        }
        record(
            &mut tx,
            group_id,
            actor,
            "rename",
            0,
            0,
            name.as_str(),
            None,
        )
        .await?;
        tx.commit().await?;
        self.get_group(project_id, group_id).await
    }

    /// Deletes a group and its memberships; its cases stay.
    /// `Conflict` `group_in_use` while a smart group's query names it.
    pub async fn delete_group(&self, project_id: i64, group_id: i64) -> StoreResult<()> {
        // A query that names the group would lose its meaning (and a rule's cases would not be
        // looked at again): the user changes it first.
        let mut naming: Vec<String> = self
            .smart_groups_naming(project_id, group_id)
            .await?
            .into_iter()
            .map(|n| format!("the smart group '{n}'"))
            .collect();
        naming.extend(
            self.reminders_naming(project_id, group_id)
                .await?
                .into_iter()
                .map(|n| format!("the reminder rule '{n}'")),
        );
        if !naming.is_empty() {
            return Err(StoreError::Conflict {
                code: "group_in_use",
                message: format!(
                    "this group is named in the query of {}: change {} first",
                    naming.join(", "),
                    if naming.len() == 1 {
                        "that query"
                    } else {
                        "those queries"
                    },
                ),
            });
        }
        let mut tx = self.begin_write().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT id FROM case_groups WHERE project_id = $1 AND id = $2")
                .bind(project_id)
                .bind(group_id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound("case group"));
        }
        // Explicit deletes, so that nothing depends on the engine's cascade settings.
        sqlx::query("DELETE FROM case_group_members WHERE group_id = $1")
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM case_group_history WHERE group_id = $1")
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE uploads SET group_id = NULL WHERE group_id = $1")
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM case_groups WHERE id = $1")
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A page of a group's live members in the order they were created as cases; `q` as in
    /// the case list.
    pub async fn group_members(
        &self,
        project_id: i64,
        group_id: i64,
        q: Option<&str>,
        limit: usize,
        cursor: Option<i64>,
    ) -> StoreResult<Page<Case>> {
        self.get_group(project_id, group_id).await?;
        let q = q.map(str::trim).filter(|q| !q.is_empty());
        let Some(q) = q else {
            let sql = format!(
                "{MEMBER_SELECT} AND m.case_pk > $2 AND c.id > $2 ORDER BY m.case_pk LIMIT {}",
                limit + 1
            );
            let rows = sqlx::query(&sql)
                .bind(group_id)
                .bind(cursor.unwrap_or(0))
                .fetch_all(self.pool())
                .await?;
            return member_page(&rows, limit);
        };
        let project = self.project_by_id(project_id).await?;
        let phone = casecast_core::PhoneNumber::parse(q, project.country_code().as_ref())
            .map(String::from)
            .unwrap_or_default();
        // An exact case ID, external ID or phone number is found through the indexes on cases;
        // only when nothing matches exactly is the group scanned for names and ID prefixes. The
        // choice does not depend on the cursor, so every page of a search is the same search.
        let exact_sql = |take: usize| {
            // One indexed lookup per kind, then the members table by its key. CROSS JOIN keeps
            // SQLite in this order (its planner otherwise walks the whole group); PostgreSQL
            // plans it the same way on its own.
            format!(
                "SELECT c.id, c.case_id, c.case_type, c.name, c.external_id, c.phone_number, c.language_code,
                        c.owner_id, c.closed, c.deleted, c.properties, c.created_at, c.modified_at
                 FROM (SELECT id FROM cases WHERE project_id = $3 AND case_id = $4
                       UNION SELECT id FROM cases WHERE project_id = $3 AND external_id = $4
                       UNION SELECT id FROM cases WHERE project_id = $3 AND phone_number = $5) hit
                 CROSS JOIN cases c CROSS JOIN case_group_members m
                 WHERE c.id = hit.id AND m.group_id = $1 AND m.case_pk = c.id AND c.deleted = 0 AND c.id > $2
                 ORDER BY c.id LIMIT {take}"
            )
        };
        let run = |sql: String, after: i64| {
            let (q, phone, pool) = (q.to_string(), phone.clone(), self.pool().clone());
            async move {
                sqlx::query(&sql)
                    .bind(group_id)
                    .bind(after)
                    .bind(project_id)
                    .bind(q)
                    .bind(phone)
                    .fetch_all(&pool)
                    .await
            }
        };
        let rows = run(exact_sql(limit + 1), cursor.unwrap_or(0)).await?;
        if !rows.is_empty() || (cursor.is_some() && !run(exact_sql(1), 0).await?.is_empty()) {
            return member_page(&rows, limit);
        }
        let scan = format!(
            "{MEMBER_SELECT} AND m.case_pk > $2 AND c.id > $2
               AND (c.external_id {} $3 ESCAPE '\\' OR c.name_lower LIKE $4 ESCAPE '\\')
             ORDER BY m.case_pk LIMIT {}",
            crate::dialect::ilike(self.dialect()),
            limit + 1
        );
        let rows = sqlx::query(&scan)
            .bind(group_id)
            .bind(cursor.unwrap_or(0))
            .bind(like_escape(q, false) + "%")
            .bind(like_contains(q))
            .fetch_all(self.pool())
            .await?;
        member_page(&rows, limit)
    }

    /// Removes one case from a group; `NotFound` when it is not a member (or not of this project).
    pub async fn remove_member(
        &self,
        project_id: i64,
        group_id: i64,
        case_id: &str,
        actor: Actor,
    ) -> StoreResult<()> {
        self.plain_group(project_id, group_id).await?;
        let mut tx = self.begin_write().await?;
        lock_group(&mut tx, self.dialect(), group_id).await?;
        let case_pk: i64 = sqlx::query_scalar(
            "DELETE FROM case_group_members WHERE group_id = $1
             AND case_pk = (SELECT id FROM cases WHERE project_id = $2 AND case_id = $3 AND deleted = 0)
             RETURNING case_pk",
        )
        .bind(group_id)
        .bind(project_id)
        .bind(case_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("member"))?;
        sqlx::query("UPDATE case_groups SET member_count = member_count - 1 WHERE id = $1")
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        record(
            &mut tx,
            group_id,
            actor,
            "remove",
            0,
            1,
            case_id,
            Some(case_pk),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Empties a group; returns how many memberships went.
    pub async fn remove_all_members(
        &self,
        project_id: i64,
        group_id: i64,
        actor: Actor,
    ) -> StoreResult<u64> {
        self.plain_group(project_id, group_id).await?;
        let mut tx = self.begin_write().await?;
        lock_group(&mut tx, self.dialect(), group_id).await?;
        let live: i64 = sqlx::query_scalar("SELECT member_count FROM case_groups WHERE id = $1")
            .bind(group_id)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM case_group_members WHERE group_id = $1")
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE case_groups SET member_count = 0 WHERE id = $1")
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        record(&mut tx, group_id, actor, "remove_all", 0, live, "", None).await?;
        tx.commit().await?;
        Ok(live as u64)
    }

    /// The group's history, newest first.
    pub async fn group_history(
        &self,
        project_id: i64,
        group_id: i64,
        limit: usize,
    ) -> StoreResult<Vec<HistoryEntry>> {
        self.get_group(project_id, group_id).await?;
        let rows = sqlx::query(&format!(
            "SELECT h.at, u.email, h.action, h.via, h.added, h.removed, h.detail,
                    c.case_id, c.name, c.external_id FROM case_group_history h
             LEFT JOIN users u ON u.id = h.user_id
             LEFT JOIN cases c ON c.id = h.case_pk AND c.project_id = $2
             WHERE h.group_id = $1 ORDER BY h.id DESC LIMIT {limit}"
        ))
        .bind(group_id)
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryEntry {
                    at: r.try_get("at")?,
                    user_email: r.try_get("email")?,
                    action: r.try_get("action")?,
                    via: r.try_get("via")?,
                    added: r.try_get("added")?,
                    removed: r.try_get("removed")?,
                    detail: r.try_get("detail")?,
                    case: match r.try_get::<Option<String>, _>("case_id")? {
                        Some(id) => Some((id, r.try_get("name")?, r.try_get("external_id")?)),
                        None => None,
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
