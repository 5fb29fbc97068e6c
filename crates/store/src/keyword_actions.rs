//! The statements a keyword's actions run inside the inbound router's transaction (which holds
//! the sender's number lock): the sender's cases, a case made or changed, a plain group joined
//! or left, and the automatic replies already sent to a number (the reply limit). What runs
//! when is the engine's (`casecast_engine::keywords`).

use casecast_core::case::{Case, CaseChanges};
use casecast_core::CaseId;
use sqlx::{Any, Row, Transaction};

use crate::case_groups::{lock_group, record, Actor};
use crate::cases::{case_from_row, insert_cases, update_case_row, CASE_COLUMNS};
use crate::error::{is_unique_violation, StoreError, StoreResult};
use crate::Db;

/// What a keyword's group actions are recorded as in a group's history.
pub const KEYWORD_ACTOR: Actor = Actor {
    user_id: None,
    via: "keyword",
};

impl Db {
    /// The live (not deleted) cases with this number, open ones first, then the one changed
    /// last (the order `Db::case_for_phone` picks by); at most `limit`.
    pub async fn cases_of_phone_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phone: &str,
        limit: i64,
    ) -> StoreResult<Vec<(i64, Case)>> {
        let rows = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE project_id = $1 AND phone_number = $2 AND deleted = 0
             ORDER BY closed, modified_at DESC, id DESC LIMIT $3"
        ))
        .bind(project_id)
        .bind(phone)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
        rows.iter().map(case_from_row).collect()
    }

    /// Creates a case inside the caller's transaction; returns its row id and the case.
    pub async fn create_case_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        changes: &CaseChanges,
        now: i64,
    ) -> StoreResult<(i64, Case)> {
        let case = changes.create(CaseId::default(), now)?;
        CaseChanges::check_result(&case)?;
        insert_cases(tx, self.dialect(), project_id, std::slice::from_ref(&case))
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::internal("a new case's ID was taken")
                } else {
                    e.into()
                }
            })?;
        let pk: i64 =
            sqlx::query_scalar("SELECT id FROM cases WHERE project_id = $1 AND case_id = $2")
                .bind(project_id)
                .bind(case.case_id.as_str())
                .fetch_one(&mut **tx)
                .await?;
        Ok((pk, case))
    }

    /// Applies changes to a live case inside the caller's transaction; `NotFound` for a deleted
    /// one. Returns the case as it is now.
    pub async fn update_case_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        case_pk: i64,
        changes: &CaseChanges,
        now: i64,
    ) -> StoreResult<Case> {
        let row = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE id = $1 AND deleted = 0{}",
            crate::dialect::for_update(self.dialect())
        ))
        .bind(case_pk)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("case"))?;
        let (id, mut case) = case_from_row(&row)?;
        if changes.apply(&mut case) {
            CaseChanges::check_result(&case)?;
            case.modified_at = now;
            update_case_row(tx, id, &case).await?;
        }
        Ok(case)
    }

    /// Adds (`add`) or removes a case of the project to or from one of its groups inside the
    /// caller's transaction, with the group's count and history kept as a single add keeps
    /// them; returns whether membership changed (already a member, or not one: false).
    /// `NotFound` when the group is not the project's.
    pub async fn change_membership_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        group_id: i64,
        case: (i64, &str),
        add: bool,
        now: i64,
    ) -> StoreResult<bool> {
        let (case_pk, case_id) = case;
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM case_groups WHERE id = $1 AND project_id = $2")
                .bind(group_id)
                .bind(project_id)
                .fetch_optional(&mut **tx)
                .await?;
        if found.is_none() {
            return Err(StoreError::NotFound("case group"));
        }
        lock_group(tx, self.dialect(), group_id).await?;
        let changed = if add {
            sqlx::query(
                "INSERT INTO case_group_members (group_id, case_pk, added_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(group_id)
            .bind(case_pk)
            .bind(now)
            .execute(&mut **tx)
            .await?
            .rows_affected()
        } else {
            sqlx::query("DELETE FROM case_group_members WHERE group_id = $1 AND case_pk = $2")
                .bind(group_id)
                .bind(case_pk)
                .execute(&mut **tx)
                .await?
                .rows_affected()
        };
        if changed == 0 {
            return Ok(false);
        }
        let delta: i64 = if add { 1 } else { -1 };
        sqlx::query("UPDATE case_groups SET member_count = member_count + $1 WHERE id = $2")
            .bind(delta)
            .bind(group_id)
            .execute(&mut **tx)
            .await?;
        let (action, added, removed) = if add { ("add", 1, 0) } else { ("remove", 0, 1) };
        record(
            tx,
            group_id,
            KEYWORD_ACTOR,
            action,
            added,
            removed,
            case_id,
            Some(case_pk),
        )
        .await?;
        Ok(true)
    }

    /// When the automatic replies (to keywords, the default reply) queued for a number since
    /// `since` were queued.
    pub async fn auto_replies_since_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phone: &str,
        since: i64,
    ) -> StoreResult<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT created_at FROM messages
             WHERE project_id = $1 AND phone = $2 AND reply_to IS NOT NULL AND created_at >= $3",
        )
        .bind(project_id)
        .bind(phone)
        .bind(since)
        .fetch_all(&mut **tx)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<i64, _>("created_at")?))
            .collect()
    }

    /// How many automatic replies (to keywords, the default reply) the project has queued or
    /// sent.
    pub async fn count_auto_replies(&self, project_id: i64) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE project_id = $1 AND reply_to IS NOT NULL",
        )
        .bind(project_id)
        .fetch_one(self.pool())
        .await?)
    }

    /// Marks an inbound message handled as one that matched keyword `keyword_id`, with the
    /// case it was for.
    pub async fn mark_keyword_handled(
        tx: &mut Transaction<'static, Any>,
        id: i64,
        case_pk: Option<i64>,
        keyword_id: i64,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE messages SET handled_at = $1, case_pk = COALESCE($2, case_pk), keyword_id = $3,
                updated_at = $1
             WHERE id = $4 AND handled_at IS NULL",
        )
        .bind(now)
        .bind(case_pk)
        .bind(keyword_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
