//! Indexes on case properties, made when a smart group or a reminder rule is saved (issue 16).
//!
//! Properties stay where they are, in each case's JSON (`properties`): a row per property (an
//! EAV table) would index every property of every case, ten rows and index entries more per
//! case written, for conditions most projects never ask; and JSON is what both engines can
//! index by expression. So a property that a saved query compares for equality (`district =
//! Gulu`) or with a date (`enrolled >= 2026-01-01`) gets an expression index on
//! `(project_id, <the property's text, ASCII lower case>)`, written exactly as
//! [`crate::case_query_sql`] writes the condition, so the planner of either engine uses it: an
//! equality becomes an index lookup, a date range an index range (the compiler adds a test on
//! the same expression beside the exact date comparison). Every index costs each case write a
//! little, so there are at most [`MAX_PROPERTY_INDEXES`], made in the order properties are
//! first saved; the case list's own queries make none (any viewer can type one).
//!
//! On SQLite the index is built in a write transaction (other writers wait: about a second per
//! million cases); on PostgreSQL with `CREATE INDEX CONCURRENTLY` (writes go on), and an index
//! left invalid by a failed build is dropped and made again.

use casecast_core::case_query::{CaseQuery, Condition, Op, TextField, ValueKind};

use crate::dialect::ascii_lower;
use crate::error::StoreResult;
use crate::{Db, Dialect};

/// The most property indexes a database gets.
pub const MAX_PROPERTY_INDEXES: usize = 4;

const PREFIX: &str = "cases_prop_";
/// The PostgreSQL advisory lock held while property indexes are made ("CCPI").
const ADVISORY_KEY: i64 = 0x4343_5049;

/// A property's stored text, `''` when missing, over the cases table as `alias` (`c.` or
/// empty): the expression [`crate::case_query_sql`] compares.
pub(crate) fn property_text(engine: Dialect, alias: &str, name: &str) -> String {
    // Inlined, not bound: the expression is repeated in a condition's SQL (SQLite's `?`
    // placeholders cannot be), and an index must name it literally. A property name is
    // letters, digits, `_`, `-` and `.` (the core checks it); quotes are removed anyway.
    let quoted = name.replace('\'', "''").replace('"', "");
    match engine {
        Dialect::Sqlite => {
            format!("COALESCE(json_extract({alias}properties, '$.\"{quoted}\"'), '')")
        }
        Dialect::Postgres => format!("COALESCE({alias}properties::jsonb ->> '{quoted}', '')"),
    }
}

/// The indexed expression of a property.
fn indexed(engine: Dialect, name: &str) -> String {
    ascii_lower(engine, &property_text(engine, "", name))
}

/// The index's name: the property's letters and digits and a hash of the whole name (two
/// names that differ only in other characters get two indexes).
fn index_name(property: &str) -> String {
    let readable: String = property
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    // FNV-1a: stable across builds and machines (std's hasher is not).
    let mut hash: u32 = 0x811c_9dc5;
    for b in property.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{PREFIX}{readable}_{hash:08x}")
}

/// The properties a query compares in a way an index serves: equality with a value that is
/// not a number (a number also matches `18.0`, which an index on the text cannot find), and
/// orderings against a date.
pub fn indexable_properties(query: &CaseQuery) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for c in query.conditions() {
        if let Condition::Text {
            field: TextField::Property(name),
            op,
            value,
        } = c
        {
            let serves = match op {
                Op::Eq => !matches!(value.kind(), ValueKind::Number(_)),
                Op::Gt | Op::Ge | Op::Lt | Op::Le => value.kind() == ValueKind::Date,
                Op::Ne | Op::Contains => false,
            };
            if serves && !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
}

impl Db {
    /// The property indexes that exist (valid ones), by index name.
    async fn property_indexes(&self) -> StoreResult<Vec<String>> {
        let like = format!("{}%", PREFIX.replace('_', "\\_"));
        let names: Vec<String> = match self.dialect() {
            Dialect::Sqlite => sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE $1 ESCAPE '\\'",
            )
            .bind(like)
            .fetch_all(self.pool())
            .await?,
            Dialect::Postgres => {
                // An index a failed concurrent build left invalid is dropped, to be made again.
                let invalid: Vec<String> = sqlx::query_scalar(
                    "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                     WHERE NOT i.indisvalid AND c.relname LIKE $1 ESCAPE '\\'",
                )
                .bind(like.clone())
                .fetch_all(self.pool())
                .await?;
                for name in invalid {
                    sqlx::raw_sql(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"))
                        .execute(self.pool())
                        .await?;
                }
                sqlx::query_scalar(
                    "SELECT indexname::text FROM pg_indexes WHERE tablename = 'cases' AND indexname LIKE $1 ESCAPE '\\'",
                )
                .bind(like)
                .fetch_all(self.pool())
                .await?
            }
        };
        Ok(names)
    }

    /// Makes the indexes that `properties` lack, while fewer than [`MAX_PROPERTY_INDEXES`]
    /// exist; returns the properties it indexed now. On PostgreSQL one process at a time does
    /// this (an advisory lock), so an index another is still building (invalid until it is
    /// done) is never taken for one a failed build left.
    pub async fn ensure_property_indexes(&self, properties: &[String]) -> StoreResult<Vec<String>> {
        if properties.is_empty() {
            return Ok(Vec::new());
        }
        if self.dialect() == Dialect::Postgres {
            let mut conn = self.pool().acquire().await?;
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(ADVISORY_KEY)
                .execute(&mut *conn)
                .await?;
            let made = self.ensure_property_indexes_locked(properties).await;
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(ADVISORY_KEY)
                .execute(&mut *conn)
                .await?;
            return made;
        }
        self.ensure_property_indexes_locked(properties).await
    }

    async fn ensure_property_indexes_locked(
        &self,
        properties: &[String],
    ) -> StoreResult<Vec<String>> {
        let mut existing = self.property_indexes().await?;
        let mut made = Vec::new();
        for property in properties {
            let name = index_name(property);
            if existing.contains(&name) {
                continue;
            }
            if existing.len() >= MAX_PROPERTY_INDEXES {
                tracing::info!(
                    limit = MAX_PROPERTY_INDEXES,
                    "case property indexes are at their limit: a property saved in a query is not indexed"
                );
                break;
            }
            let expr = indexed(self.dialect(), property);
            match self.dialect() {
                Dialect::Sqlite => {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(&format!(
                        "CREATE INDEX IF NOT EXISTS {name} ON cases(project_id, {expr})"
                    ))
                    .execute(&mut *tx)
                    .await?;
                    // Statistics for the new index: without them the planner may prefer an
                    // index the statistics do describe (`PRAGMA optimize` keeps them later).
                    sqlx::query(&format!("ANALYZE {name}"))
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                }
                Dialect::Postgres => {
                    // Outside a transaction (CONCURRENTLY must be): case writes go on.
                    sqlx::raw_sql(&format!(
                        "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON cases (project_id, ({expr}))"
                    ))
                    .execute(self.pool())
                    .await?;
                    // PostgreSQL keeps statistics of an index's expression only from the next
                    // ANALYZE (a sample of the table).
                    sqlx::raw_sql("ANALYZE cases").execute(self.pool()).await?;
                }
            }
            existing.push(name);
            made.push(property.clone());
        }
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_are_stable_short_and_distinct() {
        assert_eq!(index_name("district"), index_name("district"));
        assert_ne!(index_name("a-b"), index_name("a.b"));
        assert!(index_name(&"x".repeat(200)).len() <= PREFIX.len() + 24 + 9);
        assert!(index_name("Enrolled.Date")
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    }

    #[test]
    fn equalities_with_text_and_date_orderings_are_indexable() {
        let q = CaseQuery::parse(
            "district = Gulu AND age >= 18 AND parity = 2 AND enrolled >= 2026-01-01 \
             AND (village != V1 OR name = Amina OR note ~ x) AND district = Lira",
        )
        .unwrap();
        assert_eq!(indexable_properties(&q), vec!["district", "enrolled"]);
    }
}
