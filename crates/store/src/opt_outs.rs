//! The opt-out list of a project: numbers that are sent nothing but the confirmation of their
//! own STOP, until they text a start keyword or an admin removes them.

use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use std::collections::HashMap;

use crate::dialect::{Placeholders, MAX_BIND_PARAMS};
use crate::error::{StoreError, StoreResult};
use crate::Db;

/// A case as lists name it: its case ID (for the link), name and external ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseName {
    pub case_id: String,
    pub name: String,
    pub external_id: Option<String>,
}

/// One opted-out number.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct OptOut {
    pub phone_number: String,
    /// `keyword` (the number texted STOP), `api` or `page` (a user added it).
    pub source: String,
    pub created_at: i64,
}

impl Db {
    pub async fn is_opted_out_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phone: &str,
    ) -> StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM opt_outs WHERE project_id = $1 AND phone = $2")
                .bind(project_id)
                .bind(phone)
                .fetch_optional(&mut **tx)
                .await?;
        Ok(found.is_some())
    }

    /// Puts a number on the list and cancels what is queued for it; false when it was already there.
    pub async fn opt_out_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phone: &str,
        source: &str,
    ) -> StoreResult<bool> {
        let now = casecast_core::time::now_ms();
        let added = sqlx::query(
            "INSERT INTO opt_outs (project_id, phone, source, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (project_id, phone) DO NOTHING",
        )
        .bind(project_id)
        .bind(phone)
        .bind(source)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if added {
            sqlx::query(
                "UPDATE messages SET status = 'cancelled', error = 'the number opted out', updated_at = $1
                 WHERE project_id = $2 AND phone = $3 AND status = 'queued' AND kind = 'normal'",
            )
            .bind(now)
            .bind(project_id)
            .bind(phone)
            .execute(&mut **tx)
            .await?;
        }
        Ok(added)
    }

    /// Takes a number off the list; false when it was not on it.
    pub async fn opt_in_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        phone: &str,
    ) -> StoreResult<bool> {
        let removed = sqlx::query("DELETE FROM opt_outs WHERE project_id = $1 AND phone = $2")
            .bind(project_id)
            .bind(phone)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        Ok(removed > 0)
    }

    /// Whether a number is on the project's list.
    pub async fn is_opted_out(&self, project_id: i64, phone: &str) -> StoreResult<bool> {
        let mut tx = self.pool().begin().await?;
        let out = self.is_opted_out_tx(&mut tx, project_id, phone).await?;
        tx.rollback().await?;
        Ok(out)
    }

    /// A user puts a number on the list (no confirmation SMS is sent); false if already there.
    pub async fn add_opt_out(
        &self,
        project_id: i64,
        phone: &str,
        source: &str,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let added = self.opt_out_tx(&mut tx, project_id, phone, source).await?;
        tx.commit().await?;
        Ok(added)
    }

    /// A user takes a number off the list.
    pub async fn remove_opt_out(&self, project_id: i64, phone: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let removed = self.opt_in_tx(&mut tx, project_id, phone).await?;
        tx.commit().await?;
        if removed {
            Ok(())
        } else {
            Err(StoreError::NotFound("opt-out"))
        }
    }

    /// One number's entry on the list, if it is there.
    pub async fn opt_out(&self, project_id: i64, phone: &str) -> StoreResult<Option<OptOut>> {
        let row = sqlx::query(
            "SELECT phone, source, created_at FROM opt_outs WHERE project_id = $1 AND phone = $2",
        )
        .bind(project_id)
        .bind(phone)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(OptOut {
                phone_number: r.try_get("phone")?,
                source: r.try_get("source")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    /// A page of the list by number; `cursor` is the previous page's last number.
    pub async fn list_opt_outs(
        &self,
        project_id: i64,
        limit: i64,
        cursor: Option<&str>,
    ) -> StoreResult<(Vec<OptOut>, Option<String>)> {
        let rows = sqlx::query(
            "SELECT phone, source, created_at FROM opt_outs WHERE project_id = $1 AND phone > $2
             ORDER BY phone LIMIT $3",
        )
        .bind(project_id)
        .bind(cursor.unwrap_or(""))
        .bind(limit + 1)
        .fetch_all(self.pool())
        .await?;
        let mut items = rows
            .iter()
            .map(|r| {
                Ok(OptOut {
                    phone_number: r.try_get("phone")?,
                    source: r.try_get("source")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|o| o.phone_number.clone())
        } else {
            None
        };
        Ok((items, next))
    }

    /// The project's live cases with these phone numbers, by number: (case ID, name, external
    /// ID), so that the opt-out list names who opted out.
    pub async fn cases_by_phone(
        &self,
        project_id: i64,
        phones: &[String],
    ) -> StoreResult<HashMap<String, Vec<CaseName>>> {
        let mut out: HashMap<String, Vec<CaseName>> = HashMap::new();
        for chunk in phones.chunks(MAX_BIND_PARAMS - 1) {
            let mut params = Placeholders::new(self.dialect());
            let project = params.next();
            let sql = format!(
                "SELECT phone_number, case_id, name, external_id FROM cases
                 WHERE project_id = {project} AND deleted = 0 AND phone_number IN ({}) ORDER BY id",
                params.list(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(project_id);
            for phone in chunk {
                q = q.bind(phone.clone());
            }
            for r in q.fetch_all(self.pool()).await? {
                out.entry(r.try_get("phone_number")?)
                    .or_default()
                    .push(CaseName {
                        case_id: r.try_get("case_id")?,
                        name: r.try_get("name")?,
                        external_id: r.try_get("external_id")?,
                    });
            }
        }
        Ok(out)
    }
}
