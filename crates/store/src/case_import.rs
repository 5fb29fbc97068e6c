//! Case imports' statements: batches of parsed rows into created and updated cases, in sets,
//! each batch inside a transaction that the engine's import (`casecast_engine::import`) holds.
//! The engine checks the whole file before the first batch, so that a file-level error (too
//! many rows, a corrupt file) leaves nothing written.

use std::collections::{HashMap, HashSet};

use casecast_core::case::{Case, CaseChanges};
use casecast_core::case_sheet::{ImportRow, RowError};
use casecast_core::sheet::SheetError;
use serde::Serialize;
use sqlx::{Any, Row as _, Transaction};

use crate::cases::{case_from_row, insert_cases, update_case_row, CASE_COLUMNS};
use crate::dialect::{Placeholders, MAX_BIND_PARAMS};
use crate::error::StoreError;
use crate::{Db, Dialect};

/// What an import did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportReport {
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub blank: usize,
    pub errors: Vec<RowError>,
}

/// Why a whole import was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Sheet(#[from] SheetError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ImportError {
    fn from(e: sqlx::Error) -> Self {
        ImportError::Store(e.into())
    }
}

/// One row of an import sheet, parsed.
pub enum Parsed {
    /// A blank row, by its number.
    Blank(usize),
    Valid(ImportRow),
    Invalid(RowError),
}

/// What became of one row, in an import's per-row report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowOutcome {
    Created,
    Updated,
    Unchanged,
    Blank,
    Error,
}

impl RowOutcome {
    /// The stored text, also the report's.
    pub fn as_str(self) -> &'static str {
        match self {
            RowOutcome::Created => "created",
            RowOutcome::Updated => "updated",
            RowOutcome::Unchanged => "unchanged",
            RowOutcome::Blank => "blank",
            RowOutcome::Error => "error",
        }
    }

    /// The outcome stored as `text`, if it is one.
    pub fn parse(text: &str) -> Option<RowOutcome> {
        [
            RowOutcome::Created,
            RowOutcome::Updated,
            RowOutcome::Unchanged,
            RowOutcome::Blank,
            RowOutcome::Error,
        ]
        .into_iter()
        .find(|o| o.as_str() == text)
    }
}

/// One row's line in an import's report: its outcome, the case it made or changed, and for an
/// error the column and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowResult {
    pub row: usize,
    pub outcome: RowOutcome,
    pub case_id: Option<String>,
    pub column: String,
    pub message: String,
}

/// Writes an import's batches, each in a transaction of the caller's, remembering the case IDs
/// and external IDs already met so that a sheet naming one twice is refused on that row. With
/// [`ImportWriter::with_results`] it also keeps each row's [`RowResult`].
pub struct ImportWriter {
    engine: Dialect,
    project_id: i64,
    seen_case_ids: HashMap<String, usize>,
    seen_external_ids: HashMap<String, usize>,
    results: Option<Vec<RowResult>>,
}

impl ImportWriter {
    /// A writer for an import into the project.
    pub fn new(db: &Db, project_id: i64) -> ImportWriter {
        ImportWriter {
            engine: db.dialect(),
            project_id,
            seen_case_ids: HashMap::new(),
            seen_external_ids: HashMap::new(),
            results: None,
        }
    }

    /// This writer, keeping each row's result for [`ImportWriter::take_results`].
    pub fn with_results(mut self) -> ImportWriter {
        self.results = Some(Vec::new());
        self
    }

    /// The row results kept since the last call (none without `with_results`).
    pub fn take_results(&mut self) -> Vec<RowResult> {
        self.results
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Remembers a row an earlier attempt already wrote, without writing it, so that a later
    /// row naming the same case is still refused as a repeat.
    pub fn remember(&mut self, parsed: &Parsed) {
        if let Parsed::Valid(r) = parsed {
            self.first_seen(r);
        }
    }

    fn result(
        &mut self,
        row: usize,
        outcome: RowOutcome,
        case_id: Option<&str>,
        error: Option<&RowError>,
    ) {
        if let Some(results) = &mut self.results {
            results.push(RowResult {
                row,
                outcome,
                case_id: case_id.map(str::to_string),
                column: error.map(|e| e.column.clone()).unwrap_or_default(),
                message: error.map(|e| e.message.clone()).unwrap_or_default(),
            });
        }
    }

    fn error(&mut self, report: &mut ImportReport, case_id: Option<&str>, e: RowError) {
        self.result(e.row, RowOutcome::Error, case_id, Some(&e));
        report.errors.push(e);
    }

    /// Writes one batch of parsed rows, counting what it did in `report`.
    pub async fn write_batch(
        &mut self,
        tx: &mut Transaction<'static, Any>,
        batch: Vec<Parsed>,
        report: &mut ImportReport,
    ) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(batch.len());
        for parsed in batch {
            match parsed {
                Parsed::Blank(row) => {
                    report.blank += 1;
                    self.result(row, RowOutcome::Blank, None, None);
                }
                Parsed::Invalid(e) => self.error(report, None, e),
                Parsed::Valid(r) => match self.first_seen(&r) {
                    Some(e) => self.error(report, r.case_id.as_ref().map(|c| c.as_str()), e),
                    None => rows.push(r),
                },
            }
        }
        let by_case_id = self
            .existing(
                tx,
                "case_id",
                rows.iter()
                    .filter_map(|r| r.case_id.as_ref().map(|c| c.as_str().to_string())),
            )
            .await?;
        let by_external_id = self
            .existing(
                tx,
                "external_id",
                rows.iter().filter_map(|r| r.external_id.clone()),
            )
            .await?;
        let now = casecast_core::time::now_ms();
        let mut new_cases = Vec::new();
        // Two rows may reach one case (one by case_id, one by external_id): the second row
        // must start from the first row's result, not from the snapshot read above.
        let mut updated: HashMap<i64, Case> = HashMap::new();
        for r in rows {
            let matched_by_id = r
                .case_id
                .as_ref()
                .and_then(|c| by_case_id.get(c.as_str()))
                .and_then(|v| v.first());
            let target = match matched_by_id {
                Some(found) => Some(found),
                None => {
                    let live: Vec<&(i64, Case)> = r
                        .external_id
                        .as_ref()
                        .and_then(|e| by_external_id.get(e))
                        .map(|v| v.iter().filter(|(_, c)| !c.deleted).collect())
                        .unwrap_or_default();
                    if live.len() > 1 {
                        let e = RowError {
                            row: r.number,
                            column: "external_id".into(),
                            message: format!(
                                "external_id '{}' matches {} cases ({}); add a case_id column to say which one",
                                r.external_id.as_deref().unwrap_or_default(),
                                live.len(),
                                live.iter().map(|(_, c)| c.case_id.as_str()).collect::<Vec<_>>().join(", ")
                            ),
                        };
                        self.error(report, None, e);
                        continue;
                    }
                    live.first().copied()
                }
            };
            match target {
                Some((_, existing)) if existing.deleted => {
                    let e = RowError {
                        row: r.number,
                        column: "case_id".into(),
                        message: format!("case '{}' has been deleted", existing.case_id),
                    };
                    self.error(report, Some(existing.case_id.as_str()), e);
                }
                Some((id, existing)) => {
                    let mut case = updated.get(id).unwrap_or(existing).clone();
                    if r.changes.apply(&mut case) {
                        if let Err(e) = CaseChanges::check_result(&case) {
                            let e = RowError {
                                row: r.number,
                                column: e.field,
                                message: e.message,
                            };
                            self.error(report, Some(case.case_id.as_str()), e);
                            continue;
                        }
                        case.modified_at = now;
                        update_case_row(tx, *id, &case).await?;
                        self.result(
                            r.number,
                            RowOutcome::Updated,
                            Some(case.case_id.as_str()),
                            None,
                        );
                        updated.insert(*id, case);
                        report.updated += 1;
                    } else {
                        self.result(
                            r.number,
                            RowOutcome::Unchanged,
                            Some(existing.case_id.as_str()),
                            None,
                        );
                        report.unchanged += 1;
                    }
                }
                None => match r.changes.create(r.case_id.clone().unwrap_or_default(), now) {
                    Ok(case) => match CaseChanges::check_result(&case) {
                        Ok(()) => {
                            self.result(
                                r.number,
                                RowOutcome::Created,
                                Some(case.case_id.as_str()),
                                None,
                            );
                            new_cases.push(case);
                            report.created += 1;
                        }
                        Err(e) => {
                            let e = RowError {
                                row: r.number,
                                column: e.field,
                                message: e.message,
                            };
                            self.error(report, r.case_id.as_ref().map(|c| c.as_str()), e);
                        }
                    },
                    Err(e) => {
                        let e = RowError {
                            row: r.number,
                            column: e.field,
                            message: "this row creates a new case, and a new case needs a name"
                                .into(),
                        };
                        self.error(report, r.case_id.as_ref().map(|c| c.as_str()), e);
                    }
                },
            }
        }
        insert_cases(tx, self.engine, self.project_id, &new_cases).await?;
        Ok(())
    }

    /// Refuses a second row for the same case ID or external ID in one file.
    fn first_seen(&mut self, r: &ImportRow) -> Option<RowError> {
        if let Some(c) = &r.case_id {
            if let Some(first) = self.seen_case_ids.get(c.as_str()) {
                return Some(duplicate(r.number, "case_id", c.as_str(), *first));
            }
        }
        if let Some(e) = &r.external_id {
            if let Some(first) = self.seen_external_ids.get(e) {
                return Some(duplicate(r.number, "external_id", e, *first));
            }
        }
        if let Some(c) = &r.case_id {
            self.seen_case_ids.insert(c.as_str().to_string(), r.number);
        }
        if let Some(e) = &r.external_id {
            self.seen_external_ids.insert(e.clone(), r.number);
        }
        None
    }

    /// The project's cases whose `column` is one of `values`, grouped by that value.
    async fn existing(
        &self,
        tx: &mut Transaction<'static, Any>,
        column: &'static str,
        values: impl Iterator<Item = String>,
    ) -> Result<HashMap<String, Vec<(i64, Case)>>, StoreError> {
        let values: Vec<String> = values.collect::<HashSet<_>>().into_iter().collect();
        let mut found: HashMap<String, Vec<(i64, Case)>> = HashMap::new();
        for chunk in values.chunks(MAX_BIND_PARAMS - 1) {
            let mut params = Placeholders::new(self.engine);
            let project = params.next();
            let sql = format!(
                "SELECT {CASE_COLUMNS} FROM cases WHERE project_id = {project} AND {column} IN ({}){}",
                params.list(chunk.len()),
                // PostgreSQL: rows this import may rewrite stay locked until it commits, taken
                // in id order. SQLite (no row locks) is not asked to order: it would walk the
                // project's cases by the (project_id, id) index instead of using the column's.
                match self.engine {
                    Dialect::Postgres => " ORDER BY id FOR UPDATE",
                    Dialect::Sqlite => "",
                }
            );
            // Not cached as a prepared statement: PostgreSQL would switch to a generic plan after
            // five runs, and one planned while the project was still small scans the whole table,
            // which the import itself keeps growing (100,000 rows took 112 s instead of 4 s).
            let mut q = sqlx::query(&sql).persistent(false).bind(self.project_id);
            for v in chunk {
                q = q.bind(v.clone());
            }
            for row in q.fetch_all(&mut **tx).await? {
                let key: String = row.try_get(column)?;
                found.entry(key).or_default().push(case_from_row(&row)?);
            }
        }
        for cases in found.values_mut() {
            cases.sort_by_key(|(id, _)| *id);
        }
        Ok(found)
    }
}

fn duplicate(row: usize, column: &str, value: &str, first: usize) -> RowError {
    RowError {
        row,
        column: column.into(),
        message: format!(
            "{column} '{value}' already appears in row {first} of this file; the row was skipped"
        ),
    }
}
