//! Adding and removing cases by identifier: resolution in sets (three indexed lookups per
//! batch, not one per row), then one multi-row insert or delete. Shared by single adds, the
//! API and sheet uploads.

use std::collections::{HashMap, HashSet};

use casecast_core::identifier::{classify, Identifier, IdentifierError, IdentifierKind, Outcome};
use casecast_core::CountryCode;
use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use crate::case_groups::{record, Actor};
use crate::dialect::{Placeholders, MAX_BIND_PARAMS};
use crate::error::StoreResult;
use crate::{Db, Dialect};

/// Add to or remove from a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Add,
    Remove,
}

impl Change {
    /// `add` or `remove`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Add => "add",
            Change::Remove => "remove",
        }
    }
}

impl std::str::FromStr for Change {
    type Err = casecast_core::states::UnknownState;

    fn from_str(text: &str) -> Result<Change, Self::Err> {
        [Change::Add, Change::Remove]
            .into_iter()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| casecast_core::states::UnknownState {
                what: "Change",
                text: text.chars().take(64).collect(),
            })
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Change {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What happened to one identifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemResult {
    pub identifier: String,
    pub outcome: Outcome,
    pub case_id: Option<String>,
    #[serde(skip)]
    pub case_pk: Option<i64>,
    pub message: String,
    /// For `ambiguous`: each matching case's ID and a label (its name and how it matched), so
    /// a person can pick one.
    #[serde(skip)]
    pub matches: Vec<(String, String)>,
}

/// One identifier to resolve, with the kinds it may be looked up as.
#[derive(Clone, Debug)]
pub struct Entry {
    pub raw: String,
    pub kind: IdentifierKind,
}

#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub(crate) pk: i64,
    case_id: String,
    name: String,
    closed: bool,
    deleted: bool,
}

enum Resolution {
    Blank,
    Invalid(IdentifierError),
    One(Found),
    Ambiguous(Vec<(Found, Vec<&'static str>)>),
    Deleted(Found),
    NotFound,
}

/// Looks up `column IN values` in the project, in chunks: the cases found, by matched value.
/// `column` may be an expression over one column (as `dialect::ascii_lower` writes it).
pub(crate) async fn lookup(
    conn: &mut sqlx::AnyConnection,
    engine: Dialect,
    project_id: i64,
    column: &str,
    values: HashSet<String>,
) -> Result<HashMap<String, Vec<Found>>, sqlx::Error> {
    let values: Vec<String> = values.into_iter().collect();
    let mut out: HashMap<String, Vec<Found>> = HashMap::new();
    if values.is_empty() {
        return Ok(out);
    }
    for chunk in values.chunks(MAX_BIND_PARAMS - 1) {
        let mut params = Placeholders::new(engine);
        let project = params.next();
        let sql = format!(
            "SELECT id, case_id, name, closed, deleted, {column} AS matched FROM cases WHERE project_id = {project} AND {column} IN ({})",
            params.list(chunk.len())
        );
        // Not a cached prepared statement: see `case_import` on generic plans.
        let mut q = sqlx::query(&sql).persistent(false).bind(project_id);
        for v in chunk {
            q = q.bind(v.clone());
        }
        for row in q.fetch_all(&mut *conn).await? {
            let found = Found {
                pk: row.try_get("id")?,
                case_id: row.try_get("case_id")?,
                name: row.try_get("name")?,
                closed: row.try_get::<i64, _>("closed")? != 0,
                deleted: row.try_get::<i64, _>("deleted")? != 0,
            };
            out.entry(row.try_get("matched")?).or_default().push(found);
        }
    }
    // In row order, sorted here: an `ORDER BY id` lets SQLite walk the project's cases by the
    // (project_id, id) index instead of looking the values up by the column's own.
    for found in out.values_mut() {
        found.sort_by_key(|f| f.pk);
    }
    Ok(out)
}

async fn resolve(
    tx: &mut Transaction<'static, Any>,
    engine: Dialect,
    project_id: i64,
    ids: &[Option<Result<Identifier, IdentifierError>>],
) -> Result<Vec<Resolution>, sqlx::Error> {
    let mut case_ids = HashSet::new();
    let mut external_ids = HashSet::new();
    let mut phones = HashSet::new();
    for id in ids.iter().flatten().flatten() {
        if let Some(c) = &id.case_id {
            case_ids.insert(c.as_str().to_string());
        }
        if let Some(e) = &id.external_id {
            external_ids.insert(e.clone());
        }
        if let Some(p) = &id.phone {
            phones.insert(p.as_str().to_string());
        }
    }
    let by_case_id = lookup(tx, engine, project_id, "case_id", case_ids).await?;
    let by_external_id = lookup(tx, engine, project_id, "external_id", external_ids).await?;
    let by_phone = lookup(tx, engine, project_id, "phone_number", phones).await?;
    let exact = |id: &Identifier| {
        let mut matches: Vec<(Found, Vec<&'static str>)> = Vec::new();
        if let Some(c) = &id.case_id {
            add_matches(&mut matches, by_case_id.get(c.as_str()), "case ID");
        }
        if let Some(e) = &id.external_id {
            add_matches(&mut matches, by_external_id.get(e), "external ID");
        }
        if let Some(p) = &id.phone {
            add_matches(&mut matches, by_phone.get(p.as_str()), "phone number");
        }
        matches
    };
    // An external ID that matched nothing exactly is looked up again ignoring (ASCII) case:
    // one more set-join, over the few identifiers that found nothing and have letters.
    let exact_matches: Vec<Vec<(Found, Vec<&'static str>)>> = ids
        .iter()
        .map(|id| match id {
            Some(Ok(id)) => exact(id),
            _ => Vec::new(),
        })
        .collect();
    let mut folded = HashSet::new();
    for (id, matches) in ids.iter().zip(&exact_matches) {
        if let (Some(Ok(id)), true) = (id, matches.is_empty()) {
            if let Some(e) = id.external_id.as_ref().filter(|e| has_ascii_letter(e)) {
                folded.insert(e.to_ascii_lowercase());
            }
        }
    }
    let by_folded = lookup(
        tx,
        engine,
        project_id,
        &crate::dialect::ascii_lower(engine, "external_id"),
        folded,
    )
    .await?;
    Ok(ids
        .iter()
        .zip(exact_matches)
        .map(|(id, mut matches)| {
            let id = match id {
                None => return Resolution::Blank,
                Some(Err(why)) => return Resolution::Invalid(why.clone()),
                Some(Ok(id)) => id,
            };
            if matches.is_empty() {
                if let Some(e) = &id.external_id {
                    let found = by_folded.get(&e.to_ascii_lowercase());
                    add_matches(&mut matches, found, "external ID ignoring case");
                }
            }
            let live: Vec<_> = matches
                .iter()
                .filter(|(f, _)| !f.deleted)
                .cloned()
                .collect();
            match live.len() {
                1 => Resolution::One(live[0].0.clone()),
                0 if matches.is_empty() => Resolution::NotFound,
                0 => Resolution::Deleted(matches[0].0.clone()),
                _ => Resolution::Ambiguous(live),
            }
        })
        .collect())
}

/// Adds the cases `found` by one kind of lookup to `matches`, noting how each matched.
fn add_matches(
    matches: &mut Vec<(Found, Vec<&'static str>)>,
    found: Option<&Vec<Found>>,
    how: &'static str,
) {
    for f in found.into_iter().flatten() {
        match matches.iter_mut().find(|(m, _)| m.pk == f.pk) {
            Some((_, hows)) => hows.push(how),
            None => matches.push((f.clone(), vec![how])),
        }
    }
}

fn has_ascii_letter(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_alphabetic())
}

fn result(entry: &Entry, outcome: Outcome, found: Option<&Found>, message: String) -> ItemResult {
    ItemResult {
        identifier: entry.raw.trim().to_string(),
        outcome,
        case_id: found.map(|f| f.case_id.clone()),
        case_pk: found.map(|f| f.pk),
        message,
        matches: Vec::new(),
    }
}

/// Resolves a batch and applies it to the group inside `tx`. `seen` holds the cases met so
/// far in the same file (for `duplicate_in_file`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply_batch(
    tx: &mut Transaction<'static, Any>,
    engine: Dialect,
    project_id: i64,
    group_id: i64,
    change: Change,
    country: Option<&CountryCode>,
    entries: &[Entry],
    seen: &mut HashSet<i64>,
) -> Result<Vec<ItemResult>, sqlx::Error> {
    // `None`: a blank entry.
    let ids: Vec<Option<Result<Identifier, IdentifierError>>> = entries
        .iter()
        .map(|e| (!e.raw.trim().is_empty()).then(|| classify(&e.raw, e.kind, country)))
        .collect();
    let resolutions = resolve(tx, engine, project_id, &ids).await?;
    let mut results = Vec::with_capacity(entries.len());
    let mut targets: Vec<(usize, i64)> = Vec::new();
    for (i, (entry, res)) in entries.iter().zip(&resolutions).enumerate() {
        let r = match res {
            Resolution::Blank => result(entry, Outcome::Blank, None, String::new()),
            Resolution::Invalid(why) => result(entry, Outcome::Invalid, None, why.to_string()),
            Resolution::NotFound => result(
                entry,
                Outcome::NotFound,
                None,
                "no case of this project has this case ID, external ID or phone number".into(),
            ),
            Resolution::Deleted(f) => result(
                entry,
                Outcome::Deleted,
                Some(f),
                format!("case '{}' ({}) has been deleted", f.name, f.case_id),
            ),
            Resolution::Ambiguous(matches) => {
                let list: Vec<String> = matches
                    .iter()
                    .map(|(f, how)| {
                        format!(
                            "{} (case ID {}) by {}",
                            f.name,
                            f.case_id,
                            how.join(" and ")
                        )
                    })
                    .collect();
                let mut r = result(
                    entry,
                    Outcome::Ambiguous,
                    None,
                    format!(
                        "matches {} cases: {}; use the case ID",
                        matches.len(),
                        list.join("; ")
                    ),
                );
                r.matches = matches
                    .iter()
                    .map(|(f, how)| {
                        (
                            f.case_id.clone(),
                            format!("{}, by {}", f.name, how.join(" and ")),
                        )
                    })
                    .collect();
                r
            }
            Resolution::One(f) => {
                if !seen.insert(f.pk) {
                    result(
                        entry,
                        Outcome::DuplicateInFile,
                        Some(f),
                        "this case already appears in an earlier row".into(),
                    )
                } else {
                    targets.push((i, f.pk));
                    let closed = if f.closed && change == Change::Add {
                        "the case is closed: it is in the group but will receive no messages"
                            .to_string()
                    } else {
                        String::new()
                    };
                    result(entry, Outcome::Added, Some(f), closed)
                }
            }
        };
        results.push(r);
    }
    let changed = write_members(
        tx,
        engine,
        group_id,
        change,
        targets.iter().map(|t| t.1).collect(),
    )
    .await?;
    for (i, pk) in targets {
        let did = changed.contains(&pk);
        results[i].outcome = match (change, did) {
            (Change::Add, true) => Outcome::Added,
            (Change::Add, false) => Outcome::AlreadyInGroup,
            (Change::Remove, true) => Outcome::Removed,
            (Change::Remove, false) => Outcome::NotInGroup,
        };
        if change == Change::Remove || !did {
            results[i].message.clear();
        }
    }
    Ok(results)
}

/// Inserts or deletes memberships; returns the cases actually added or removed.
async fn write_members(
    tx: &mut Transaction<'static, Any>,
    engine: Dialect,
    group_id: i64,
    change: Change,
    mut pks: Vec<i64>,
) -> Result<HashSet<i64>, sqlx::Error> {
    // Always in the same order, so that two transactions writing overlapping members (two
    // uploads of one list in different orders) wait for each other instead of deadlocking.
    pks.sort_unstable();
    let mut changed = HashSet::new();
    let now = casecast_core::time::now_ms();
    for chunk in pks.chunks(MAX_BIND_PARAMS - 2) {
        let mut params = Placeholders::new(engine);
        let group = params.next();
        // Only cases still live when the statement runs: a case deleted since it was looked
        // up neither joins nor leaves the count.
        let sql = match change {
            Change::Add => {
                let added_at = params.next();
                format!(
                    "INSERT INTO case_group_members (group_id, case_pk, added_at)
                     SELECT {group}, id, {added_at} FROM cases WHERE deleted = 0 AND id IN ({})
                     ON CONFLICT DO NOTHING RETURNING case_pk",
                    params.list(chunk.len())
                )
            }
            Change::Remove => format!(
                "DELETE FROM case_group_members WHERE group_id = {group}
                 AND case_pk IN (SELECT id FROM cases WHERE deleted = 0 AND id IN ({})) RETURNING case_pk",
                params.list(chunk.len())
            ),
        };
        let mut q = sqlx::query(&sql).bind(group_id);
        if change == Change::Add {
            q = q.bind(now);
        }
        for pk in chunk {
            q = q.bind(*pk);
        }
        for row in q.fetch_all(&mut **tx).await? {
            changed.insert(row.try_get::<i64, _>("case_pk")?);
        }
    }
    // The targets are live cases, so the stored count moves by exactly what changed.
    let delta = changed.len() as i64 * if change == Change::Add { 1 } else { -1 };
    if delta != 0 {
        sqlx::query("UPDATE case_groups SET member_count = member_count + $1 WHERE id = $2")
            .bind(delta)
            .bind(group_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(changed)
}

/// Counts of outcomes, for reports.
pub fn count_outcomes(results: &[ItemResult]) -> std::collections::BTreeMap<&'static str, i64> {
    let mut counts = std::collections::BTreeMap::new();
    for r in results {
        *counts.entry(r.outcome.as_str()).or_insert(0) += 1;
    }
    counts
}

impl Db {
    /// Adds or removes the cases named by `identifiers` (a single add, the API, the CLI).
    pub async fn change_members(
        &self,
        project_id: i64,
        group_id: i64,
        change: Change,
        identifiers: &[String],
        actor: Actor,
    ) -> StoreResult<Vec<ItemResult>> {
        self.plain_group(project_id, group_id).await?;
        let project = self.project_by_id(project_id).await?;
        let entries: Vec<Entry> = identifiers
            .iter()
            .map(|raw| Entry {
                raw: raw.clone(),
                kind: IdentifierKind::Any,
            })
            .collect();
        let mut tx = self.begin_write().await?;
        crate::case_groups::lock_group(&mut tx, self.dialect(), group_id).await?;
        let mut seen = HashSet::new();
        let results = apply_batch(
            &mut tx,
            self.dialect(),
            project_id,
            group_id,
            change,
            project.country_code().as_ref(),
            &entries,
            &mut seen,
        )
        .await?;
        let added = results
            .iter()
            .filter(|r| r.outcome == Outcome::Added)
            .count() as i64;
        let removed = results
            .iter()
            .filter(|r| r.outcome == Outcome::Removed)
            .count() as i64;
        let detail = if identifiers.len() == 1 {
            // Control characters (NUL above all, which PostgreSQL refuses in text) stay out
            // of the history: such an identifier is `invalid` anyway.
            identifiers[0]
                .trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect()
        } else {
            format!("{} identifiers", identifiers.len())
        };
        record(
            &mut tx,
            group_id,
            actor,
            change.as_str(),
            added,
            removed,
            &detail,
            results
                .first()
                .filter(|_| identifiers.len() == 1)
                .and_then(|r| r.case_pk),
        )
        .await?;
        tx.commit().await?;
        Ok(results)
    }
}
