//! The statements a keyword's actions run inside the inbound router's transaction (which holds
//! the sender's number lock): a case made or changed, plain groups joined or left. (What a
//! keyword reads of its senders, a batch's numbers at once, is in `inbound_batch.rs`.) What runs
//! when is the engine's (`casecast_engine::keywords`).

use casecast_core::case::{Case, CaseChanges, FieldError};
use casecast_core::CaseId;
use sqlx::{Any, Transaction};

use crate::case_groups::{lock_group, Actor};
use crate::cases::{case_from_row, insert_cases, update_case_row, CASE_COLUMNS};
use crate::error::{is_unique_violation, StoreError, StoreResult};
use crate::Db;

/// What a keyword's group actions are recorded as in a group's history.
pub const KEYWORD_ACTOR: Actor = Actor {
    user_id: None,
    via: "keyword",
};

impl Db {
    /// Creates cases inside the caller's transaction, in one statement (a few for thousands):
    /// for each changes, its row id and the case, or why the changes make no valid case
    /// (nothing is written for those).
    pub async fn create_cases_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        changes: &[CaseChanges],
        now: i64,
    ) -> StoreResult<Vec<Result<(i64, Case), FieldError>>> {
        let made: Vec<Result<Case, FieldError>> = changes
            .iter()
            .map(|c| {
                let case = c.create(CaseId::default(), now)?;
                CaseChanges::check_result(&case)?;
                Ok(case)
            })
            .collect();
        let valid: Vec<Case> = made
            .iter()
            .filter_map(|m| m.as_ref().ok())
            .cloned()
            .collect();
        let mut ids: std::collections::HashMap<String, i64> =
            insert_cases(tx, self.dialect(), project_id, &valid)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::internal("a new case's ID was taken")
                    } else {
                        e.into()
                    }
                })?
                .into_iter()
                .collect();
        made.into_iter()
            .map(|m| match m {
                Ok(case) => match ids.remove(case.case_id.as_str()) {
                    Some(pk) => Ok(Ok((pk, case))),
                    None => Err(StoreError::internal("a new case was not written")),
                },
                Err(e) => Ok(Err(e)),
            })
            .collect()
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

    /// Adds (`add`) or removes many cases of the project to or from one of its groups inside
    /// the caller's transaction, with the group's count kept and one history row a case changed
    /// (as a single add records it), one statement per table; returns how many memberships
    /// changed (already a member, or not one: unchanged). `NotFound` when the group is not the
    /// project's.
    pub async fn change_memberships_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        group_id: i64,
        cases: &[(i64, String)],
        add: bool,
        now: i64,
    ) -> StoreResult<u64> {
        let found: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT name, query FROM case_groups WHERE id = $1 AND project_id = $2")
                .bind(group_id)
                .bind(project_id)
                .fetch_optional(&mut **tx)
                .await?;
        match found {
            None => return Err(StoreError::NotFound("case group")),
            Some((name, Some(_))) => return Err(crate::smart_groups::smart_group_conflict(&name)),
            Some((_, None)) => {}
        }
        lock_group(tx, self.dialect(), group_id).await?;
        let mut changed: Vec<i64> = Vec::new();
        for chunk in cases.chunks(crate::inbound_batch::MAX_BATCH_ROWS) {
            let mut p = crate::dialect::Placeholders::new(self.dialect());
            let sql = if add {
                let rows: Vec<String> = chunk.iter().map(|_| format!("({})", p.list(3))).collect();
                format!(
                    "INSERT INTO case_group_members (group_id, case_pk, added_at) VALUES {}
                     ON CONFLICT DO NOTHING RETURNING case_pk",
                    rows.join(", ")
                )
            } else {
                let first = p.next();
                format!(
                    "DELETE FROM case_group_members WHERE group_id = {first} AND case_pk IN ({})
                     RETURNING case_pk",
                    p.list(chunk.len())
                )
            };
            let mut q = sqlx::query_scalar::<_, i64>(&sql);
            if add {
                for (pk, _) in chunk {
                    q = q.bind(group_id).bind(*pk).bind(now);
                }
            } else {
                q = q.bind(group_id);
                for (pk, _) in chunk {
                    q = q.bind(*pk);
                }
            }
            changed.extend(q.persistent(false).fetch_all(&mut **tx).await?);
        }
        if changed.is_empty() {
            return Ok(0);
        }
        let n = changed.len() as i64;
        sqlx::query(
            "UPDATE case_groups SET member_count = member_count + $1, modified_at = $2 WHERE id = $3",
        )
        .bind(if add { n } else { -n })
        .bind(now)
        .bind(group_id)
        .execute(&mut **tx)
        .await?;
        // One history row a case, as a single add records.
        let (action, added, removed) = if add { ("add", 1, 0) } else { ("remove", 0, 1) };
        let ids: std::collections::HashMap<i64, &str> =
            cases.iter().map(|(pk, id)| (*pk, id.as_str())).collect();
        for chunk in changed.chunks(crate::inbound_batch::MAX_BATCH_ROWS) {
            let mut p = crate::dialect::Placeholders::new(self.dialect());
            let rows: Vec<String> = chunk.iter().map(|_| format!("({})", p.list(9))).collect();
            let sql = format!(
                "INSERT INTO case_group_history (group_id, user_id, at, action, via, added, removed, detail, case_pk)
                 VALUES {}",
                rows.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for pk in chunk {
                q = q
                    .bind(group_id)
                    .bind(KEYWORD_ACTOR.user_id)
                    .bind(now)
                    .bind(action)
                    .bind(KEYWORD_ACTOR.via)
                    .bind(added)
                    .bind(removed)
                    .bind(ids.get(pk).copied().unwrap_or_default())
                    .bind(*pk);
            }
            q.persistent(false).execute(&mut **tx).await?;
        }
        Ok(changed.len() as u64)
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
}
