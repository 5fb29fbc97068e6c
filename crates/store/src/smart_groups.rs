//! Smart groups (issue 16): groups whose members are the live cases matching a saved case
//! query. Their members are stored like a plain group's (`case_group_members`), so broadcasts,
//! reminders, exports and `group =` in other queries read them as any group; these are the
//! writes that keep them:
//! - creating one or changing its query computes its members in SQL, in one statement each way
//!   (the query compiled by [`crate::case_query_sql`]);
//! - a case written afterwards is queued in `reminder_pending` by the triggers of migration 13,
//!   and the engine's pass over those cases applies what the Rust evaluator decided through
//!   [`Db::apply_smart_changes_tx`];
//! - adding or removing members by hand is refused ([`smart_group_conflict`]).

use casecast_core::case_query::{CaseQuery, GroupRef};
use casecast_core::identifier::GroupName;
use jiff::tz::TimeZone;
use sqlx::{Any, Transaction};

use crate::case_groups::{lock_group, Actor, CaseGroup};
use crate::case_query_sql::matches;
use crate::dialect::Placeholders;
use crate::error::{is_unique_violation, StoreError, StoreResult};
use crate::{Db, Dialect};

/// A smart group as the engine keeps it.
#[derive(Clone, Debug)]
pub struct SmartGroup {
    pub id: i64,
    pub name: String,
    /// The saved query (group references by id).
    pub query: String,
}

/// History rows of a smart group's upkeep closer together than this are added into one.
pub const HISTORY_MERGE_MS: i64 = 60_000;

/// The answer to adding or removing members of a smart group by hand.
pub fn smart_group_conflict(name: &str) -> StoreError {
    StoreError::Conflict {
        code: "smart_group",
        message: format!(
            "'{name}' is a smart group: its members are the cases matching its query, so they cannot be added or removed by hand (change the query instead)"
        ),
    }
}

/// The answer to giving a plain group a query.
pub fn not_smart_conflict() -> StoreError {
    StoreError::Conflict {
        code: "not_smart",
        message: "this is a plain group: its members are kept by hand, so it cannot take a query (make a new smart group instead)".into(),
    }
}

/// What changing a smart group's query did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryChange {
    /// Cases that joined.
    pub matched: u64,
    /// Cases that left.
    pub no_longer_matched: u64,
}

/// On PostgreSQL, waits for the case writes in flight and holds new ones until the transaction
/// ends (and the membership writes too when the query names a group), so that the members
/// computed from a snapshot miss no write made meanwhile (such a write's trigger may not have
/// seen the new smart group or query). Waits at most 10 s for a lock, then fails. SQLite's
/// write transaction already excludes every other writer.
async fn hold_case_writes(
    tx: &mut Transaction<'static, Any>,
    engine: Dialect,
    query: &CaseQuery,
) -> StoreResult<()> {
    if engine == Dialect::Postgres {
        sqlx::query("SET LOCAL lock_timeout = '10s'")
            .execute(&mut **tx)
            .await?;
        sqlx::query("LOCK TABLE cases IN SHARE MODE")
            .execute(&mut **tx)
            .await?;
        if query.groups_referenced().next().is_some() {
            sqlx::query("LOCK TABLE case_group_members IN SHARE MODE")
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

impl Db {
    /// The project's smart groups, by id, locked for the rest of the transaction on
    /// PostgreSQL (all of them, in id order, so two passes never wait for each other in a
    /// circle, and a query saved meanwhile is read as saved). `NOWAIT`: while another
    /// transaction holds one (a query being saved, another pass), this fails at once with
    /// [`crate::error::is_lock_unavailable`], and the caller rolls back and tries later.
    pub async fn lock_smart_groups_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
    ) -> StoreResult<Vec<SmartGroup>> {
        let lock = match self.dialect() {
            Dialect::Postgres => " FOR UPDATE NOWAIT",
            Dialect::Sqlite => "",
        };
        let rows: Vec<(i64, String, String)> = sqlx::query_as(&format!(
            "SELECT id, name, query FROM case_groups
             WHERE project_id = $1 AND query IS NOT NULL ORDER BY id{lock}"
        ))
        .bind(project_id)
        .fetch_all(&mut **tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, query)| SmartGroup { id, name, query })
            .collect())
    }

    /// The project's smart groups, by id (outside a transaction).
    pub async fn smart_groups(&self, project_id: i64) -> StoreResult<Vec<SmartGroup>> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT id, name, query FROM case_groups
             WHERE project_id = $1 AND query IS NOT NULL ORDER BY id",
        )
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, query)| SmartGroup { id, name, query })
            .collect())
    }

    /// The id of the project's group with this name (compared as group names are), if any.
    pub async fn group_id_by_name(&self, project_id: i64, name: &str) -> StoreResult<Option<i64>> {
        let Ok(name) = GroupName::parse(name) else {
            return Ok(None);
        };
        Ok(
            sqlx::query_scalar(
                "SELECT id FROM case_groups WHERE project_id = $1 AND name_key = $2",
            )
            .bind(project_id)
            .bind(name.key())
            .fetch_optional(self.pool())
            .await?,
        )
    }

    /// Whether any case of the project waits to be looked at again (so its smart groups may
    /// be behind).
    pub async fn project_has_pending_cases(&self, project_id: i64) -> StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM reminder_pending WHERE project_id = $1 LIMIT 1")
                .bind(project_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(found.is_some())
    }

    /// Creates a smart group whose members are the project's live cases matching `query` now
    /// (`query`'s group references are ids of the project's groups). `enqueue`: also queue
    /// the members to be looked at again (a rule or another query may name the group).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_smart_group(
        &self,
        project_id: i64,
        name: &GroupName,
        query: &CaseQuery,
        zone: &TimeZone,
        actor: Actor,
        enqueue: bool,
        now: i64,
    ) -> StoreResult<CaseGroup> {
        let mut tx = self.begin_write().await?;
        hold_case_writes(&mut tx, self.dialect(), query).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO case_groups (project_id, name, name_key, query, evaluated_at, created_at, modified_at)
             VALUES ($1, $2, $3, $4, $5, $5, $5) RETURNING id",
        )
        .bind(project_id)
        .bind(name.as_str())
        .bind(name.key())
        .bind(query.to_string())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                crate::case_groups::name_taken(name)
            } else {
                e.into()
            }
        })?;
        let added = self
            .add_matching_tx(&mut tx, project_id, id, query, zone, now)
            .await?;
        self.finish_query_change(&mut tx, project_id, id, enqueue)
            .await?;
        crate::case_groups::record(
            &mut tx,
            id,
            actor,
            "create",
            added as i64,
            0,
            name.as_str(),
            None,
        )
        .await?;
        tx.commit().await?;
        self.get_group(project_id, id).await
    }

    /// Changes a smart group's query and its members to match (`NotFound` when the group is
    /// not the project's; `not_smart` when it is a plain group). `enqueue` as for
    /// [`Db::create_smart_group`], for the cases that joined or left.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_group_query(
        &self,
        project_id: i64,
        group_id: i64,
        query: &CaseQuery,
        zone: &TimeZone,
        actor: Actor,
        enqueue: bool,
        now: i64,
    ) -> StoreResult<QueryChange> {
        let mut tx = self.begin_write().await?;
        hold_case_writes(&mut tx, self.dialect(), query).await?;
        lock_group(&mut tx, self.dialect(), group_id).await?;
        let old: Option<Option<String>> =
            sqlx::query_scalar("SELECT query FROM case_groups WHERE id = $1 AND project_id = $2")
                .bind(group_id)
                .bind(project_id)
                .fetch_optional(&mut *tx)
                .await?;
        match old {
            None => return Err(StoreError::NotFound("case group")),
            Some(None) => return Err(not_smart_conflict()),
            Some(Some(_)) => {}
        }
        // Who leaves: members that are not live cases matching the new query.
        let mut p = Placeholders::new(self.dialect());
        let g = p.next();
        let cond = matches(query, self.dialect(), &mut p, zone);
        let leaving = format!(
            "FROM case_group_members WHERE group_id = {g} AND NOT EXISTS
               (SELECT 1 FROM cases c WHERE c.id = case_group_members.case_pk AND {})",
            cond.sql
        );
        if enqueue {
            let mut p = Placeholders::new(self.dialect());
            let project = p.next();
            let g2 = p.next();
            let cond = matches(query, self.dialect(), &mut p, zone);
            let sql = format!(
                "INSERT INTO reminder_pending (case_pk, project_id)
                 SELECT case_pk, {project} FROM case_group_members WHERE group_id = {g2} AND NOT EXISTS
                   (SELECT 1 FROM cases c WHERE c.id = case_group_members.case_pk AND {})
                 ON CONFLICT DO NOTHING",
                cond.sql
            );
            let q = sqlx::query(&sql).bind(project_id).bind(group_id);
            let q = bind_expr(q, &cond);
            q.persistent(false).execute(&mut *tx).await?;
        }
        let delete = format!("DELETE {leaving}");
        let q = bind_expr(sqlx::query(&delete).bind(group_id), &cond);
        let removed = q.persistent(false).execute(&mut *tx).await?.rows_affected();
        let added = self
            .add_matching_tx(&mut tx, project_id, group_id, query, zone, now)
            .await?;
        sqlx::query("UPDATE case_groups SET query = $1, evaluated_at = $2 WHERE id = $3")
            .bind(query.to_string())
            .bind(now)
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        self.finish_query_change(&mut tx, project_id, group_id, enqueue)
            .await?;
        let detail: String = query.to_string().chars().take(500).collect();
        crate::case_groups::record(
            &mut tx,
            group_id,
            actor,
            "query",
            added as i64,
            removed as i64,
            &detail,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(QueryChange {
            matched: added,
            no_longer_matched: removed,
        })
    }

    /// Adds the live cases matching `query` that are not members yet; returns how many.
    async fn add_matching_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        group_id: i64,
        query: &CaseQuery,
        zone: &TimeZone,
        now: i64,
    ) -> StoreResult<u64> {
        let mut p = Placeholders::new(self.dialect());
        let g = p.next();
        let at = p.next();
        let project = p.next();
        let cond = matches(query, self.dialect(), &mut p, zone);
        // Members already there are skipped by the primary key (one probe a row), not by a
        // `NOT EXISTS` on the members: PostgreSQL, estimating a JSON condition to match one
        // case, planned that as a nested-loop anti join over the members the same statement
        // had added so far, quadratic (a 170,000-member group ran for minutes).
        let sql = format!(
            "INSERT INTO case_group_members (group_id, case_pk, added_at)
             SELECT {g}, c.id, {at} FROM cases c WHERE c.project_id = {project} AND {}
             ON CONFLICT DO NOTHING",
            cond.sql
        );
        let q = sqlx::query(&sql).bind(group_id).bind(now).bind(project_id);
        let q = bind_expr(q, &cond);
        Ok(q.persistent(false)
            .execute(&mut **tx)
            .await?
            .rows_affected())
    }

    /// After a query change: the stored count from the members, and (`enqueue`) the changes
    /// queued for whatever names the group. Joining cases are queued here; leaving ones before
    /// they leave.
    async fn finish_query_change(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        group_id: i64,
        enqueue: bool,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE case_groups SET member_count =
               (SELECT COUNT(*) FROM case_group_members m JOIN cases c ON c.id = m.case_pk
                WHERE m.group_id = $1 AND c.deleted = 0)
             WHERE id = $1",
        )
        .bind(group_id)
        .execute(&mut **tx)
        .await?;
        if enqueue {
            sqlx::query(
                "INSERT INTO reminder_pending (case_pk, project_id)
                 SELECT case_pk, $1 FROM case_group_members WHERE group_id = $2
                 ON CONFLICT DO NOTHING",
            )
            .bind(project_id)
            .bind(group_id)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Applies what the engine decided for a smart group over a few cases: `join` become
    /// members, `leave` (row id, whether the case is live) stop being members. The count is
    /// kept (a deleted case stopped counting when it was deleted), and the history gets one
    /// "matched" row with both counts, added into the group's last one when that is an upkeep
    /// row less than [`HISTORY_MERGE_MS`] old.
    pub async fn apply_smart_changes_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        group_id: i64,
        join: &[i64],
        leave: &[(i64, bool)],
        now: i64,
    ) -> StoreResult<()> {
        if join.is_empty() && leave.is_empty() {
            return Ok(());
        }
        lock_group(tx, self.dialect(), group_id).await?;
        let mut added = 0i64;
        for chunk in join.chunks(crate::inbound_batch::MAX_BATCH_ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let rows: Vec<String> = chunk.iter().map(|_| format!("({})", p.list(3))).collect();
            let sql = format!(
                "INSERT INTO case_group_members (group_id, case_pk, added_at) VALUES {}
                 ON CONFLICT DO NOTHING",
                rows.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for pk in chunk {
                q = q.bind(group_id).bind(*pk).bind(now);
            }
            added += q
                .persistent(false)
                .execute(&mut **tx)
                .await?
                .rows_affected() as i64;
        }
        let mut removed = 0i64;
        let mut removed_live = 0i64;
        for chunk in leave.chunks(crate::inbound_batch::MAX_BATCH_ROWS) {
            let mut p = Placeholders::new(self.dialect());
            let g = p.next();
            let sql = format!(
                "DELETE FROM case_group_members WHERE group_id = {g} AND case_pk IN ({})
                 RETURNING case_pk",
                p.list(chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(group_id);
            for (pk, _) in chunk {
                q = q.bind(*pk);
            }
            let gone = q.persistent(false).fetch_all(&mut **tx).await?;
            removed += gone.len() as i64;
            removed_live += chunk
                .iter()
                .filter(|(pk, live)| *live && gone.contains(pk))
                .count() as i64;
        }
        sqlx::query(
            "UPDATE case_groups SET member_count = member_count + $1, evaluated_at = $2,
               modified_at = $2 WHERE id = $3",
        )
        .bind(added - removed_live)
        .bind(now)
        .bind(group_id)
        .execute(&mut **tx)
        .await?;
        if added == 0 && removed == 0 {
            return Ok(());
        }
        let merged = sqlx::query(
            "UPDATE case_group_history SET added = added + $1, removed = removed + $2, at = $3
             WHERE id = (SELECT MAX(id) FROM case_group_history WHERE group_id = $4)
               AND action = 'matched' AND via = 'upkeep' AND at >= $5",
        )
        .bind(added)
        .bind(removed)
        .bind(now)
        .bind(group_id)
        .bind(now - HISTORY_MERGE_MS)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if merged == 0 {
            sqlx::query(
                "INSERT INTO case_group_history (group_id, at, action, via, added, removed)
                 VALUES ($1, $2, 'matched', 'upkeep', $3, $4)",
            )
            .bind(group_id)
            .bind(now)
            .bind(added)
            .bind(removed)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Records that the project's smart groups are up to date with its cases as of `now` (at
    /// most once a second: a pass per case written would otherwise rewrite every smart group's
    /// row each time).
    pub async fn touch_smart_groups_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE case_groups SET evaluated_at = $1 WHERE project_id = $2 AND query IS NOT NULL
               AND (evaluated_at IS NULL OR evaluated_at < $3)",
        )
        .bind(now)
        .bind(project_id)
        .bind(now - 1000)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The names of the project's smart groups whose query names group `group_id` (by id).
    pub async fn smart_groups_naming(
        &self,
        project_id: i64,
        group_id: i64,
    ) -> StoreResult<Vec<String>> {
        let mut names = Vec::new();
        for g in self.smart_groups(project_id).await? {
            if g.id == group_id {
                continue;
            }
            if let Ok(q) = CaseQuery::parse(&g.query) {
                if q.groups_referenced().any(|r| *r == GroupRef::Id(group_id)) {
                    names.push(g.name);
                }
            }
        }
        Ok(names)
    }
}

fn bind_expr<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    cond: &'q crate::case_query_sql::SqlExpr,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    cond.bind_query(q)
}
