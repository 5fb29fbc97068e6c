//! Smart groups (issue 16): groups defined by a case query and kept current.
//!
//! - Saving one ([`create`], [`set_query`]): the query is parsed, each group it names is
//!   resolved to the project's group id (a renamed group keeps meaning the same group), a
//!   query that would make two smart groups depend on each other is refused, and the members
//!   are computed in SQL.
//! - Keeping them current ([`keep_current`]): every case written in a project with a smart
//!   group waits in `reminder_pending` (database triggers, so no write path forgets it); the
//!   workers' pass over those cases ([`crate::reminders::evaluate_pending`]) evaluates each
//!   smart group on them with the Rust evaluator, the groups a query names before the groups
//!   that name them, and then the reminder rules, which so see the memberships as they now are.
//! - Reading them now ([`settle`]): a broadcast's preview and fan-out first look at the
//!   project's waiting cases, so they read the members as the cases are at that moment.

use std::collections::{HashMap, HashSet};

use casecast_core::case::Case;
use casecast_core::case_query::{CaseQuery, Context, GroupRef};
use casecast_core::identifier::GroupName;
use casecast_store::case_groups::{Actor, CaseGroup};
use casecast_store::projects::Project;
use casecast_store::smart_groups::{QueryChange, SmartGroup};
use casecast_store::{Db, StoreError, StoreResult, Tx};

use crate::clock::Clock;

/// Why a smart group was not saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The query is wrong: what and where (`at 14: expected a value after '>='`, `no case
    /// group named 'X'`, a cycle).
    #[error("{0}")]
    Query(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Pages of waiting cases [`settle`] looks at before going on with what it has.
pub const SETTLE_PAGES: usize = 20;

/// Parses `text` and resolves the groups it names in the project to their ids; `group`: the
/// smart group the query is for (when it exists), checked for cycles.
pub async fn resolve(
    db: &Db,
    project_id: i64,
    text: &str,
    group: Option<i64>,
) -> Result<CaseQuery, SaveError> {
    // Trailing blanks are dropped (as the case list's box does), so a position points where
    // the text ends.
    let query = CaseQuery::parse(text.trim_end()).map_err(|e| SaveError::Query(e.to_string()))?;
    let mut ids = HashMap::new();
    for r in query.groups_referenced() {
        let id = match r {
            GroupRef::Id(id) => match db.get_group(project_id, *id).await {
                Ok(g) => g.id,
                Err(StoreError::NotFound(_)) => {
                    return Err(SaveError::Query(format!("no case group has the id {id}")))
                }
                Err(e) => return Err(e.into()),
            },
            GroupRef::Name(name) => match db.group_id_by_name(project_id, name).await? {
                Some(id) => id,
                None => {
                    return Err(SaveError::Query(format!(
                        "no case group is named '{}'",
                        name.chars().take(100).collect::<String>()
                    )))
                }
            },
        };
        ids.insert(r.clone(), id);
    }
    let query = query
        .try_map_groups(|r| Ok::<_, SaveError>(GroupRef::Id(ids[r])))
        .expect("every reference was resolved above");
    // The query is saved as written out again (`a=1 b=2` becomes `a = 1 AND b = 2`), which
    // must still be within the parser's limits to be read back.
    let saved = query.to_string();
    if let Err(e) = CaseQuery::parse(&saved) {
        return Err(SaveError::Query(format!(
            "as saved (written out in full, {} characters) the query is refused: {e}; shorten it",
            saved.chars().count()
        )));
    }
    if let Some(this) = group {
        check_cycle(db, project_id, this, &query).await?;
    }
    Ok(query)
}

/// Refuses a query for smart group `this` that names, directly or through other smart groups'
/// queries, `this` itself.
async fn check_cycle(
    db: &Db,
    project_id: i64,
    this: i64,
    query: &CaseQuery,
) -> Result<(), SaveError> {
    let smart = db.smart_groups(project_id).await?;
    let names: HashMap<i64, &str> = smart.iter().map(|g| (g.id, g.name.as_str())).collect();
    let mut edges: HashMap<i64, Vec<i64>> =
        smart.iter().map(|g| (g.id, references(&g.query))).collect();
    edges.insert(this, ids_of(query));
    // Depth-first from `this`, keeping the path for the message.
    let mut stack: Vec<(i64, Vec<i64>)> = vec![(this, vec![this])];
    let mut seen = HashSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in edges.get(&at).map(Vec::as_slice).unwrap_or_default() {
            if *next == this {
                let chain: Vec<String> = path
                    .iter()
                    .chain(std::iter::once(next))
                    .map(|id| format!("'{}'", names.get(id).copied().unwrap_or("this group")))
                    .collect();
                return Err(SaveError::Query(if path.len() == 1 {
                    "a smart group cannot name itself in its query".to_string()
                } else {
                    format!(
                        "this would make smart groups depend on each other in a cycle: {}",
                        chain.join(" → ")
                    )
                }));
            }
            if seen.insert(*next) {
                let mut p = path.clone();
                p.push(*next);
                stack.push((*next, p));
            }
        }
    }
    Ok(())
}

fn ids_of(query: &CaseQuery) -> Vec<i64> {
    query
        .groups_referenced()
        .filter_map(|r| match r {
            GroupRef::Id(id) => Some(*id),
            GroupRef::Name(_) => None,
        })
        .collect()
}

fn references(text: &str) -> Vec<i64> {
    CaseQuery::parse(text)
        .map(|q| ids_of(&q))
        .unwrap_or_default()
}

/// Indexes the properties `queries` compare in a way an index serves (saved queries only: a
/// smart group's, a reminder rule's). A failure is logged, not returned: the query works
/// without its index, only slower.
pub async fn index_properties(db: &Db, queries: &[&CaseQuery]) {
    let mut names: Vec<String> = Vec::new();
    for q in queries {
        for name in casecast_store::property_index::indexable_properties(q) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    if let Err(e) = db.ensure_property_indexes(&names).await {
        tracing::warn!(error = %e, "making a case property index failed");
    }
}

/// Whether anything else reads group `group_id`'s members through a query (an active rule
/// naming any group, another smart group naming this one), so that its changes must be
/// looked at again.
async fn named_elsewhere(db: &Db, project_id: i64, group_id: Option<i64>) -> StoreResult<bool> {
    for r in db.list_reminders(project_id).await? {
        if r.rule.active {
            let rule = crate::reminders::Compiled::new(r)?;
            if rule.uses_groups() {
                return Ok(true);
            }
        }
    }
    match group_id {
        Some(id) => Ok(!db.smart_groups_naming(project_id, id).await?.is_empty()),
        None => Ok(false),
    }
}

/// Creates a smart group and its members.
pub async fn create(
    db: &Db,
    clock: &dyn Clock,
    project: &Project,
    name: &GroupName,
    query: &str,
    actor: Actor,
) -> Result<CaseGroup, SaveError> {
    let query = resolve(db, project.id, query, None).await?;
    index_properties(db, &[&query]).await;
    let enqueue = named_elsewhere(db, project.id, None).await?;
    Ok(db
        .create_smart_group(
            project.id,
            name,
            &query,
            &project.zone(),
            actor,
            enqueue,
            clock.now_ms(),
        )
        .await?)
}

/// Changes a smart group's query and its members.
pub async fn set_query(
    db: &Db,
    clock: &dyn Clock,
    project: &Project,
    group_id: i64,
    query: &str,
    actor: Actor,
) -> Result<QueryChange, SaveError> {
    let group = db.get_group(project.id, group_id).await?;
    if group.query.is_none() {
        return Err(casecast_store::smart_groups::not_smart_conflict().into());
    }
    let query = resolve(db, project.id, query, Some(group_id)).await?;
    index_properties(db, &[&query]).await;
    let enqueue = named_elsewhere(db, project.id, Some(group_id)).await?;
    Ok(db
        .set_group_query(
            project.id,
            group_id,
            &query,
            &project.zone(),
            actor,
            enqueue,
            clock.now_ms(),
        )
        .await?)
}

/// A saved query for people: group ids written as the groups' names (as they are now).
pub async fn display_query(db: &Db, project_id: i64, saved: &str) -> StoreResult<String> {
    let Ok(query) = CaseQuery::parse(saved) else {
        return Ok(saved.to_string());
    };
    let mut names = HashMap::new();
    for r in query.groups_referenced() {
        if let GroupRef::Id(id) = r {
            if let Ok(g) = db.get_group(project_id, *id).await {
                names.insert(*id, g.name);
            }
        }
    }
    let shown = query
        .try_map_groups(|r| {
            Ok::<_, ()>(match r {
                GroupRef::Id(id) => match names.get(id) {
                    Some(name) => GroupRef::Name(name.clone()),
                    None => r.clone(),
                },
                other => other.clone(),
            })
        })
        .map_err(|()| StoreError::internal("mapping group names failed"))?;
    Ok(shown.to_string())
}

/// The project's smart groups, parsed, in an order where a group comes after every smart
/// group its query names.
fn in_order(groups: Vec<SmartGroup>) -> Vec<(SmartGroup, CaseQuery)> {
    // A query that cannot be read back (saved otherwise than through `resolve`) keeps its
    // group as it is, said in the log, rather than stopping every other group and rule.
    let mut parsed: Vec<(SmartGroup, CaseQuery)> = groups
        .into_iter()
        .filter_map(|g| match CaseQuery::parse(&g.query) {
            Ok(q) => Some((g, q)),
            Err(e) => {
                tracing::error!(case_group.id = g.id, error = %e, "a smart group's saved query cannot be read: its members are not kept");
                None
            }
        })
        .collect();
    let smart: HashSet<i64> = parsed.iter().map(|(g, _)| g.id).collect();
    let mut done: HashSet<i64> = HashSet::new();
    let mut out = Vec::with_capacity(parsed.len());
    while !parsed.is_empty() {
        let before = parsed.len();
        let mut rest = Vec::new();
        for (g, q) in parsed {
            let ready = ids_of(&q)
                .iter()
                .all(|id| !smart.contains(id) || done.contains(id) || *id == g.id);
            if ready {
                done.insert(g.id);
                out.push((g, q));
            } else {
                rest.push((g, q));
            }
        }
        if rest.len() == before {
            // A cycle (refused when saving, so only from data written otherwise): the rest in
            // id order.
            out.extend(rest);
            break;
        }
        parsed = rest;
    }
    out
}

/// A query context over a case's groups (id, name): `group =` by id, or by name as group names
/// compare (trimmed, ignoring ASCII case). The reminder rules judge with it too.
pub(crate) fn context<'a>(
    groups: &'a [(i64, String)],
    zone: &jiff::tz::TimeZone,
) -> Context<impl Fn(&GroupRef) -> bool + 'a> {
    Context {
        time_zone: zone.clone(),
        is_member: move |g: &GroupRef| match g {
            GroupRef::Id(id) => groups.iter().any(|(gid, _)| gid == id),
            GroupRef::Name(name) => groups
                .iter()
                .any(|(_, n)| n.trim().eq_ignore_ascii_case(name.trim())),
        },
    }
}

/// Brings the project's smart groups up to date with `cases` (written since they were last
/// looked at), inside `tx`; returns how many memberships changed.
pub async fn keep_current(
    db: &Db,
    tx: &mut Tx,
    project: &Project,
    cases: &[(i64, Case)],
    now: i64,
) -> StoreResult<usize> {
    let smart = db.lock_smart_groups_tx(tx, project.id).await?;
    if smart.is_empty() || cases.is_empty() {
        return Ok(0);
    }
    let pks: Vec<i64> = cases.iter().map(|(pk, _)| *pk).collect();
    let mut groups = db.groups_of_cases_tx(tx, &pks).await?;
    let zone = project.zone();
    let mut changed = 0;
    for (group, query) in in_order(smart) {
        let mut join = Vec::new();
        let mut leave = Vec::new();
        for (pk, case) in cases {
            let of_case = groups.entry(*pk).or_default();
            let member = of_case.iter().any(|(id, _)| *id == group.id);
            let matches = query.matches(case, &context(of_case, &zone));
            if matches && !member {
                join.push(*pk);
                of_case.push((group.id, group.name.clone()));
            } else if !matches && member {
                leave.push((*pk, !case.deleted));
                of_case.retain(|(id, _)| *id != group.id);
            }
        }
        changed += join.len() + leave.len();
        db.apply_smart_changes_tx(tx, group.id, &join, &leave, now)
            .await?;
    }
    db.touch_smart_groups_tx(tx, project.id, now).await?;
    Ok(changed)
}

/// Looks at the project's waiting cases (up to [`SETTLE_PAGES`] pages of them) so that its
/// smart groups' members are as the cases are now; what a broadcast does before reading them.
pub async fn settle(db: &Db, clock: &dyn Clock, project_id: i64) -> StoreResult<()> {
    if db.project_has_pending_cases(project_id).await? {
        crate::reminders::evaluate_pending_in(db, clock, Some(project_id), SETTLE_PAGES).await?;
    }
    Ok(())
}

/// When a smart group's members were last known to follow every case write: now when no case
/// of the project waits to be looked at, else the group's last upkeep.
pub async fn as_of(db: &Db, clock: &dyn Clock, group: &CaseGroup) -> StoreResult<Option<i64>> {
    if group.query.is_none() {
        return Ok(None);
    }
    if db.project_has_pending_cases(group.project_id).await? {
        Ok(group.evaluated_at)
    } else {
        Ok(Some(clock.now_ms()))
    }
}
