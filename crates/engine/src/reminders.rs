//! Reminders from case data (issue 15): which cases a rule takes, what is due for each and when,
//! and sending it once.
//!
//! How it runs:
//! - Saving a rule ([`create`], [`update`]) stores it; the workers then look at the rule's cases
//!   in pages of [`PAGE`] in the background ([`evaluate_rules`]), recording the progress on the
//!   rule, and write one schedule row per case the rule takes.
//! - Any write of a case (API, import, group upload, survey answer, keyword) or of a plain
//!   group's membership in a project with an active rule or a smart group puts the case in
//!   `reminder_pending` (database triggers, so no write path can forget it); the workers bring
//!   the project's smart groups up to date with those cases and then re-evaluate them against
//!   every active rule of their project within a tick ([`evaluate_pending`]).
//! - [`fire_due`] takes a page of due rows, evaluates their cases again (a case written since is
//!   judged as it is now), records the occurrences under their unique keys and only then queues
//!   the messages of those it recorded, all in one transaction: a crash before the commit leaves
//!   the rows due again, and two workers never both record one occurrence.
//!
//! Rules of what is due ([`evaluate`]):
//! - A case is taken while it is live, open, of the rule's type, matches `query` and does not
//!   match `stop_query`; otherwise its row (if any) is `stopped` and nothing more is sent.
//! - Occurrences due before the case started matching (`matched_since`) were never due for it;
//!   after it, every occurrence is handled once, in order. Occurrences are numbered within a
//!   series (the case's start date; for an `immediately` rule, when it started matching): a
//!   number handled is not due again in its series, even if the rule's time or the case's zone
//!   changed since. A date moved starts a new series from the last instant handled, which moves
//!   what has not been handled; a case that stops and starts matching again starts anew
//!   from then, without repeating an occurrence already handled.
//! - An occurrence found more than the late limit late is recorded `missed`, not sent.
//! - At firing: no number → `no_phone`; an opted-out number → `opted_out`; another case with
//!   the number already sent this occurrence (same rule, same instant; a unique index holds
//!   this across workers) → `same_phone`; no
//!   gateway routes the number → `no_gateway`; the text renders empty → `empty_text`; else the
//!   message (the case's language, its placeholders) or the survey is queued (`queued`), and a
//!   survey that cannot start for the case (it is in another session) is `survey_refused`.

use std::collections::HashMap;

use casecast_core::broadcast::BroadcastContent;
use casecast_core::case::Case;
use casecast_core::case_query::CaseQuery;
use casecast_core::reminder::{CaseTiming, Firing, ReminderRule};
use casecast_core::states::MessageKind;
use casecast_core::PhoneNumber;
use casecast_store::messages::NewOutbound;
use casecast_store::projects::Project;
use casecast_store::reminders::{NewOccurrence, ScheduleRow, ScheduleState, StoredReminder};
use casecast_store::{Db, StoreError, StoreResult, Tx};
use jiff::Timestamp;

use crate::clock::Clock;
use crate::faults::Faults;

/// Cases looked at in one transaction of a rule's evaluation.
pub const PAGE: usize = 2_000;
/// Waiting cases re-evaluated in one transaction.
pub const PENDING_PAGE: usize = 1_000;
/// Due rows claimed at once.
pub const FIRE_PAGE: usize = 500;

/// Rows this process wrote to a table since its planner statistics were last refreshed.
static SCHEDULES_WRITTEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static OCCURRENCES_RECORDED: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);
/// Rows after which a table's planner statistics are refreshed (PostgreSQL plans these reads
/// from them: stale, a lookup of 500 keys became a scan of the table).
const STATISTICS_EVERY: usize = 50_000;

/// Counts `rows` written to `table`; every [`STATISTICS_EVERY`], refreshes its statistics in
/// the background (PostgreSQL; nothing on SQLite).
fn statistics(db: &Db, counter: &std::sync::atomic::AtomicUsize, table: &'static str, rows: usize) {
    use std::sync::atomic::Ordering;
    let before = counter.fetch_add(rows, Ordering::Relaxed);
    if before / STATISTICS_EVERY != (before + rows) / STATISTICS_EVERY {
        let db = db.clone();
        tokio::spawn(async move { db.refresh_statistics(table, STATISTICS_EVERY).await });
    }
}

/// Stores a new rule; the workers evaluate its cases in the background.
pub async fn create(
    db: &Db,
    project_id: i64,
    rule: &ReminderRule,
    user_id: Option<i64>,
) -> StoreResult<StoredReminder> {
    index_properties(db, rule).await;
    let stored = db.create_reminder(project_id, rule, user_id).await?;
    db.wake_workers();
    Ok(stored)
}

/// Indexes the properties the rule's queries compare (see `store::property_index`).
async fn index_properties(db: &Db, rule: &ReminderRule) {
    let queries: Vec<CaseQuery> = [Some(rule.query.as_str()), rule.stop_query.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(|t| CaseQuery::parse_optional(t).ok().flatten())
        .collect();
    let refs: Vec<&CaseQuery> = queries.iter().collect();
    crate::smart_groups::index_properties(db, &refs).await;
}

/// Replaces a rule; the workers evaluate its cases again in the background.
pub async fn update(
    db: &Db,
    project_id: i64,
    id: i64,
    rule: &ReminderRule,
) -> StoreResult<StoredReminder> {
    index_properties(db, rule).await;
    let stored = db.update_reminder(project_id, id, rule).await?;
    db.wake_workers();
    Ok(stored)
}

/// A rule ready to judge cases: its queries parsed.
pub struct Compiled {
    pub stored: StoredReminder,
    query: Option<CaseQuery>,
    stop: Option<CaseQuery>,
}

impl Compiled {
    pub fn new(stored: StoredReminder) -> StoreResult<Compiled> {
        let parse = |text: Option<&str>| -> StoreResult<Option<CaseQuery>> {
            match text.map(str::trim).filter(|t| !t.is_empty()) {
                None => Ok(None),
                Some(t) => CaseQuery::parse(t)
                    .map(Some)
                    .map_err(|e| StoreError::corrupt("reminder", e.to_string())),
            }
        };
        Ok(Compiled {
            query: parse(Some(&stored.rule.query))?,
            stop: parse(stored.rule.stop_query.as_deref())?,
            stored,
        })
    }

    /// Whether the rule's queries ask about group membership (otherwise the cases' groups
    /// need not be read).
    pub fn uses_groups(&self) -> bool {
        [&self.query, &self.stop]
            .into_iter()
            .flatten()
            .any(|q| q.groups_referenced().next().is_some())
    }

    /// Whether the rule takes the case now (`groups`: the case's groups, id and name).
    pub fn takes(&self, case: &Case, groups: &[(i64, String)], zone: &jiff::tz::TimeZone) -> bool {
        if case.deleted || case.closed || case.case_type != self.stored.rule.case_type {
            return false;
        }
        let ctx = crate::smart_groups::context(groups, zone);
        self.query.as_ref().is_none_or(|q| q.matches(case, &ctx))
            && !self.stop.as_ref().is_some_and(|q| q.matches(case, &ctx))
    }
}

/// The series an occurrence belongs to: the case's start date for a date rule (a moved date
/// starts a new one), when the case started matching for an `immediately` rule.
fn series_of(rule: &Compiled, timing: &CaseTiming, matched_since: i64) -> String {
    match &rule.stored.rule.timing.start {
        casecast_core::reminder::Start::Date { .. } => {
            timing.date.map(str::trim).unwrap_or_default().to_string()
        }
        casecast_core::reminder::Start::Immediately { .. } => format!("since:{matched_since}"),
    }
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The case's row under the rule at `now`, from the row it had (`None`: the rule does not take
/// the case and never did, so no row).
pub fn evaluate(
    rule: &Compiled,
    case_pk: i64,
    case: &Case,
    groups: &[(i64, String)],
    existing: Option<&ScheduleRow>,
    zone: &jiff::tz::TimeZone,
    now: i64,
) -> Option<ScheduleRow> {
    let reminder_id = rule.stored.id;
    let handled_through = existing.and_then(|r| r.handled_through);
    if !rule.takes(case, groups, zone) {
        return existing.map(|r| ScheduleRow {
            state: ScheduleState::Stopped,
            skip_reason: None,
            next_occurrence: None,
            next_at: None,
            ..r.clone()
        });
    }
    let matched_since = existing
        .filter(|r| r.state != ScheduleState::Stopped)
        .map_or(now, |r| r.matched_since);
    let mut row = ScheduleRow {
        reminder_id,
        case_pk,
        state: ScheduleState::Done,
        skip_reason: None,
        matched_since,
        handled_through,
        handled_series: existing.and_then(|r| r.handled_series.clone()),
        handled_occurrence: existing.and_then(|r| r.handled_occurrence),
        next_occurrence: None,
        next_at: None,
    };
    let timing = &rule.stored.rule.timing;
    let case_timing = CaseTiming::of(case, timing, ts(matched_since));
    match timing.for_case(&case_timing, zone) {
        Err(skip) => {
            row.state = ScheduleState::Skipped;
            row.skip_reason = Some(skip.code().to_string());
        }
        Ok(schedule) => {
            // In the series handled last, what comes after the number handled (whatever time it
            // fell at then: the rule's time or the case's zone may have changed); in a new
            // series (a moved date), what falls after the last occurrence handled.
            let series = series_of(rule, &case_timing, matched_since);
            let handled = existing
                .filter(|r| r.handled_series.as_deref() == Some(series.as_str()))
                .and_then(|r| r.handled_occurrence);
            let next = match handled {
                Some(k) => {
                    schedule.next_after(ts(matched_since - 1), u32::try_from(k).unwrap_or(u32::MAX))
                }
                None => schedule.next_due(ts(handled_through
                    .unwrap_or(i64::MIN)
                    .max(matched_since - 1))),
            };
            if let Some(next) = next {
                row.state = ScheduleState::Scheduled;
                row.next_occurrence = Some(i64::from(next.index));
                row.next_at = Some(next.at.as_millisecond());
            }
        }
    }
    Some(row)
}

/// Judges `cases` against `rules` and writes the rows that changed, inside `tx`. `page`: the
/// cases are every case of the rule's type in a range of row ids, in order (one rule's
/// evaluation), so its rows are read as that range.
async fn judge(
    db: &Db,
    tx: &mut Tx,
    project: &Project,
    rules: &[Compiled],
    cases: &[(i64, Case)],
    page: bool,
    now: i64,
) -> StoreResult<usize> {
    if rules.is_empty() || cases.is_empty() {
        return Ok(0);
    }
    let pks: Vec<i64> = cases.iter().map(|(pk, _)| *pk).collect();
    let ids: Vec<i64> = rules.iter().map(|r| r.stored.id).collect();
    let groups = if rules.iter().any(Compiled::uses_groups) {
        db.groups_of_cases_tx(tx, &pks).await?
    } else {
        HashMap::new()
    };
    let existing: HashMap<(i64, i64), ScheduleRow> = match (&ids[..], pks.first(), pks.last()) {
        // One rule over a page of consecutive cases (a rule's evaluation): a range.
        ([id], Some(first), Some(last)) if page => {
            db.schedules_in_range_tx(tx, *id, *first, *last).await?
        }
        _ => db.schedules_of_cases_tx(tx, &ids, &pks).await?,
    }
    .into_iter()
    .map(|r| ((r.reminder_id, r.case_pk), r))
    .collect();
    let zone = project.zone();
    let mut writes = Vec::new();
    for (pk, case) in cases {
        let groups = groups.get(pk).map(Vec::as_slice).unwrap_or_default();
        for rule in rules {
            let old = existing.get(&(rule.stored.id, *pk));
            if let Some(row) = evaluate(rule, *pk, case, groups, old, &zone, now) {
                if old != Some(&row) {
                    writes.push(row);
                }
            }
        }
    }
    db.write_schedules_tx(tx, &writes, now).await?;
    statistics(db, &SCHEDULES_WRITTEN, "reminder_schedules", writes.len());
    Ok(writes.len())
}

/// Re-evaluates cases written since the rules last looked at them (up to [`PENDING_PAGE`] a
/// transaction, until none wait); returns how many cases it looked at.
pub async fn evaluate_pending(db: &Db, clock: &dyn Clock) -> StoreResult<usize> {
    if !db.has_pending_cases().await? {
        return Ok(0);
    }
    evaluate_pending_in(db, clock, None, usize::MAX).await
}

/// [`evaluate_pending`] over one project's waiting cases (`project_id`) or every project's,
/// for at most `pages` transactions. Each page brings the smart groups up to date first
/// ([`crate::smart_groups::keep_current`]), then judges the rules, which so read the groups'
/// members as they now are.
pub async fn evaluate_pending_in(
    db: &Db,
    clock: &dyn Clock,
    project_id: Option<i64>,
    pages: usize,
) -> StoreResult<usize> {
    let mut total = 0;
    for _ in 0..pages {
        let now = clock.now_ms();
        let mut tx = db.begin_write().await?;
        let taken = db
            .take_pending_cases_tx(&mut tx, PENDING_PAGE, project_id)
            .await?;
        if taken.is_empty() {
            tx.rollback().await?;
            return Ok(total);
        }
        let mut by_project: HashMap<i64, Vec<i64>> = HashMap::new();
        for (pk, project_id) in &taken {
            by_project.entry(*project_id).or_default().push(*pk);
        }
        for (project_id, pks) in by_project {
            let project = match db.project_by_id(project_id).await {
                Ok(p) => p,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let rules = db
                .active_reminders_tx(&mut tx, project_id)
                .await?
                .into_iter()
                .map(Compiled::new)
                .collect::<StoreResult<Vec<_>>>()?;
            let cases = db.cases_by_pks_tx(&mut tx, &pks).await?;
            match crate::smart_groups::keep_current(db, &mut tx, &project, &cases, now).await {
                Ok(_) => {}
                // Another transaction holds one of the project's smart groups (a query being
                // saved, another pass): this page waits for a later tick, whole.
                Err(e) if casecast_store::error::is_lock_unavailable(&e) => {
                    tx.rollback().await?;
                    return Ok(total);
                }
                Err(e) => return Err(e),
            }
            judge(db, &mut tx, &project, &rules, &cases, false, now).await?;
        }
        tx.commit().await?;
        total += taken.len();
        if taken.len() < PENDING_PAGE {
            return Ok(total);
        }
    }
    Ok(total)
}

/// Evaluates one page of one rule whose evaluation has not finished (the rule is locked for
/// the page on PostgreSQL); returns whether it did any (call again until it returns false).
pub async fn evaluate_rules(db: &Db, clock: &dyn Clock) -> StoreResult<bool> {
    let Some((reminder_id, project_id)) = db.next_unevaluated_reminder().await? else {
        return Ok(false);
    };
    let now = clock.now_ms();
    let project = db.project_by_id(project_id).await?;
    let mut tx = db.begin_write().await?;
    let Some(stored) = db
        .lock_unevaluated_reminder_tx(&mut tx, reminder_id)
        .await?
    else {
        // Another worker has it, or it finished meanwhile.
        tx.rollback().await?;
        return Ok(false);
    };
    let after = stored.evaluated_through.unwrap_or(0);
    let version = stored.version;
    let active = stored.rule.active;
    let case_type = stored.rule.case_type.clone();
    let cases = db
        .cases_of_type_after_tx(&mut tx, project_id, &case_type, after, PAGE)
        .await?;
    if active {
        let rule = Compiled::new(stored)?;
        judge(
            db,
            &mut tx,
            &project,
            std::slice::from_ref(&rule),
            &cases,
            true,
            now,
        )
        .await?;
    }
    let done = cases.len() < PAGE || !active;
    let through = cases.last().map_or(after, |(pk, _)| *pk);
    db.set_reminder_progress_tx(
        &mut tx,
        reminder_id,
        version,
        Some(through),
        done.then_some(now),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Sends what is due (up to [`FIRE_PAGE`] rows a call); returns how many occurrences it
/// recorded.
///
/// A page is one transaction: the due rows are taken (locked on PostgreSQL, so another worker
/// takes other rows), their cases read and judged again as they are now, every occurrence
/// recorded under its unique key in one statement, the messages of those recorded now queued
/// in one statement, and the rows moved on to their next occurrence. A crash before the commit
/// leaves it all as it was, due again; an occurrence another worker recorded first is not sent.
pub async fn fire_due(db: &Db, clock: &dyn Clock) -> StoreResult<usize> {
    Ok(fire_page_of_due(db, clock.now_ms(), &Faults::none(), None)
        .await?
        .1)
}

/// Pages of due rows one process fires at once on PostgreSQL, each in its own transaction on
/// its own connection: a page's rows are locked by the claim, so two pages never take one row
/// (as with two workers), and while one page's statements run in the database the other's
/// cases are judged and rendered here. SQLite writes one transaction at a time: one lane.
pub const FIRE_LANES: usize = 2;

/// The lanes [`fire_all_due`] runs on this engine.
pub fn fire_lanes(engine: casecast_store::Dialect) -> usize {
    match engine {
        casecast_store::Dialect::Postgres => FIRE_LANES,
        casecast_store::Dialect::Sqlite => 1,
    }
}

/// Sends everything due at the clock's now (read once: rows falling due meanwhile wait for the
/// next tick), page after page in [`FIRE_LANES`] lanes, each claim starting after the last row
/// any lane claimed (a page that claims fewer rows than [`FIRE_PAGE`] ends its lane), then
/// once more from the first due row for any left behind; returns the occurrences recorded.
/// Rows another worker holds are its own. What a worker's tick calls.
pub async fn fire_all_due(db: &Db, clock: &dyn Clock, faults: &Faults) -> StoreResult<usize> {
    let now = clock.now_ms();
    // The last row claimed by any lane: each claim starts after it.
    let cursor = Cursor::default();
    let lanes = (0..fire_lanes(db.dialect())).map(|_| fire_pages(db, now, faults, &cursor));
    let mut recorded = 0;
    for lane in futures_util::future::join_all(lanes).await {
        recorded += lane?;
    }
    // Rows behind the cursor that are due and were not taken (a page rolled back, or a row
    // another transaction held while a claim passed it): one more pass from the first due row,
    // with a cursor of its own, so that it ends even if rows stay due (they are passed once).
    Ok(recorded + fire_pages(db, now, faults, &Cursor::default()).await?)
}

/// Pages after `cursor` until a claim comes back short; returns the occurrences recorded.
async fn fire_pages(db: &Db, now: i64, faults: &Faults, cursor: &Cursor) -> StoreResult<usize> {
    let mut recorded = 0;
    loop {
        let (claimed, n) = fire_page_of_due(db, now, faults, Some(cursor)).await?;
        recorded += n;
        if claimed < FIRE_PAGE {
            return Ok(recorded);
        }
    }
}

/// The (due instant, rule, case) of the last row claimed by a run of pages.
type Cursor = std::sync::Mutex<Option<(i64, i64, i64)>>;

/// One page of [`fire_due`] at `now`, holding at the fault points a test names (see
/// `crate::faults`): (due rows claimed, occurrences recorded). `cursor`:
/// claims only rows after it, and moves it to the last row claimed.
async fn fire_page_of_due(
    db: &Db,
    now: i64,
    faults: &Faults,
    cursor: Option<&Cursor>,
) -> StoreResult<(usize, usize)> {
    let after = cursor.and_then(|c| *c.lock().unwrap_or_else(|e| e.into_inner()));
    // A read first, so that an idle tick takes no write lock; a page after a full one (a
    // cursor) knows there was work.
    if after.is_none() && !db.has_due_schedules(now).await? {
        return Ok((0, 0));
    }
    let mut tx = db.begin_write().await?;
    let due = db
        .claim_due_schedules_tx(&mut tx, now, FIRE_PAGE, after)
        .await?;
    // The page's greatest key, not its last row's: PostgreSQL may return a locked row out of
    // order (one another transaction moved while the claim waited).
    let greatest = due
        .iter()
        .map(|(r, _)| (r.next_at.unwrap_or(i64::MIN), r.reminder_id, r.case_pk))
        .max();
    if let (Some(cursor), Some(key)) = (cursor, greatest) {
        let mut c = cursor.lock().unwrap_or_else(|e| e.into_inner());
        if c.is_none_or(|c| c < key) {
            *c = Some(key);
        }
    }
    // Projects in one order (as the rows within each): two pages, of two lanes or workers, that
    // wait on each other's rows of the one-queued-a-number index never wait in a cycle.
    let mut by_project: std::collections::BTreeMap<i64, Vec<ScheduleRow>> = Default::default();
    for (row, project_id) in &due {
        by_project.entry(*project_id).or_default().push(row.clone());
    }
    let mut recorded = 0;
    let mut queued = false;
    for (project_id, rows) in by_project {
        let (n, q) = fire_page(db, &mut tx, project_id, &rows, now).await?;
        recorded += n;
        queued |= q;
    }
    if !due.is_empty() {
        faults.reminder_batch().await;
    }
    tx.commit().await?;
    if queued {
        db.wake_dispatchers();
    }
    Ok((due.len(), recorded))
}

/// What became of one due row.
struct Decision {
    row: ScheduleRow,
    /// The occurrence to record (none: nothing due any more).
    record: Option<NewOccurrence>,
    /// For an occurrence to send: the gateway that routes the number, and the SMS text as
    /// rendered for the case (`None` for a survey), worked out once while judging.
    send: Option<(i64, Option<String>)>,
}

/// Fires one project's due rows inside `tx`: (occurrences recorded, whether a message was
/// queued).
async fn fire_page(
    db: &Db,
    tx: &mut Tx,
    project_id: i64,
    due: &[ScheduleRow],
    now: i64,
) -> StoreResult<(usize, bool)> {
    let project = match db.project_by_id(project_id).await {
        Ok(p) => p,
        Err(StoreError::NotFound(_)) => return Ok((0, false)),
        Err(e) => return Err(e),
    };
    let router = db.router_for(project_id, None).await?;
    let mut rules: HashMap<i64, Compiled> = HashMap::new();
    for stored in db.active_reminders_tx(tx, project_id).await? {
        rules.insert(stored.id, Compiled::new(stored)?);
    }
    let mut pks: Vec<i64> = due.iter().map(|r| r.case_pk).collect();
    pks.sort_unstable();
    pks.dedup();
    let cases: HashMap<i64, Case> = db.cases_by_pks_tx(tx, &pks).await?.into_iter().collect();
    let groups = if rules.values().any(Compiled::uses_groups) {
        db.groups_of_cases_tx(tx, &pks).await?
    } else {
        HashMap::new()
    };
    let phones: Vec<&str> = cases
        .values()
        .filter_map(|c| c.phone_number.as_ref().map(|p| p.as_str()))
        .collect();
    let opted_out = db.opted_out_of_tx(tx, project_id, &phones).await?;
    let zone = project.zone();
    let project_limit = project.reminder_late_limit();

    // Judge each row as its case is now.
    let mut decisions: Vec<Decision> = Vec::with_capacity(due.len());
    for old in due {
        let (reminder_id, case_pk) = (&old.reminder_id, &old.case_pk);
        let (Some(rule), Some(case)) = (rules.get(reminder_id), cases.get(case_pk)) else {
            continue;
        };
        let case_groups = groups.get(case_pk).map(Vec::as_slice).unwrap_or_default();
        let Some(row) = evaluate(rule, *case_pk, case, case_groups, Some(old), &zone, now) else {
            continue;
        };
        let late_limit = rule.stored.rule.late_limit(project_limit);
        let phone = case.phone_number.as_ref().map(|p| p.as_str().to_string());
        let mut send = None;
        let record = match row.next_occurrence.zip(row.next_at) {
            None => None,
            Some((k, at)) => {
                let outcome = match Firing::of(ts(at), ts(now), late_limit) {
                    Firing::NotDue => None,
                    Firing::Missed => Some("missed"),
                    Firing::Send => Some(match &phone {
                        None => "no_phone",
                        Some(p) if opted_out.contains(p.as_str()) => "opted_out",
                        Some(p) => match router.as_ref().and_then(|r| r.route(p)) {
                            None => "no_gateway",
                            Some(gateway_id) => {
                                let text = rendered(rule, case);
                                if text.as_deref().is_some_and(|t| t.trim().is_empty()) {
                                    "empty_text"
                                } else {
                                    send = Some((gateway_id, text));
                                    "queued"
                                }
                            }
                        },
                    }),
                };
                outcome.map(|outcome| NewOccurrence {
                    reminder_id: *reminder_id,
                    case_pk: *case_pk,
                    due_at: at,
                    occurrence: k,
                    outcome,
                    phone: phone.clone(),
                })
            }
        };
        decisions.push(Decision { row, record, send });
    }

    // One message a number an occurrence. Within the page: the first case with the number is
    // sent, the others are `same_phone`. Numbers sent for the occurrence before (earlier pages,
    // ticks, other workers) meet the one-queued-a-number index when recorded, and the store
    // records those `same_phone` too.
    let mut seen: std::collections::HashSet<(i64, i64, String)> = Default::default();
    for d in &mut decisions {
        if let Some(o) = d.record.as_mut().filter(|o| o.outcome == "queued") {
            let phone = o.phone.clone().unwrap_or_default();
            if !seen.insert((o.reminder_id, o.due_at, phone)) {
                o.outcome = "same_phone";
            }
        }
    }

    // Record, then queue what was recorded now.
    let mut to_record: Vec<NewOccurrence> =
        decisions.iter().filter_map(|d| d.record.clone()).collect();
    // In one order for every worker: two pages that share numbers wait on each other's rows of
    // the one-queued-a-number index in the same order, never in a cycle (a deadlock).
    to_record.sort_by(|a, b| {
        (a.reminder_id, a.due_at, &a.phone, a.case_pk).cmp(&(
            b.reminder_id,
            b.due_at,
            &b.phone,
            b.case_pk,
        ))
    });
    let (first, same_phone) = db.record_occurrences_tx(tx, &to_record, now).await?;
    let mut messages = Vec::new();
    let mut surveys = Vec::new();
    for d in &decisions {
        let (Some(o), Some((gateway_id, text))) = (&d.record, &d.send) else {
            continue;
        };
        // Still to send after the one-message-a-number check, and recorded by this worker.
        if o.outcome != "queued" || !first.contains(&(o.reminder_id, o.case_pk, o.due_at)) {
            continue;
        }
        let (Some(rule), Some(phone)) = (rules.get(&o.reminder_id), o.phone.as_deref()) else {
            continue;
        };
        match &rule.stored.rule.content {
            BroadcastContent::Sms(_) => messages.push(NewOutbound {
                case_pk: Some(o.case_pk),
                phone: PhoneNumber::from_stored(phone.to_string()),
                text: text.clone().unwrap_or_default(),
                gateway_id: *gateway_id,
                user_id: None,
                kind: MessageKind::Normal,
                survey: None,
                reply_to: None,
                reminder_id: Some(o.reminder_id),
            }),
            BroadcastContent::Survey(survey_id) => surveys.push((o, *survey_id, *gateway_id)),
        }
    }
    let mut queued = !messages.is_empty();
    db.queue_outbound_many(tx, &project, &messages).await?;
    for (o, survey_id, gateway_id) in surveys {
        let case = &cases[&o.case_pk];
        let started = start_survey(db, tx, &project, survey_id, o, case, gateway_id, now).await?;
        if started {
            queued = true;
        } else {
            db.set_occurrence_outcome_tx(tx, o.reminder_id, o.case_pk, o.due_at, "survey_refused")
                .await?;
        }
    }
    tracing::debug!(
        project.id = project_id,
        due = due.len(),
        recorded = first.len() + same_phone,
        "reminder occurrences handled"
    );

    // Each row moves on to the occurrence after the one handled.
    let mut rows = Vec::with_capacity(decisions.len());
    for d in decisions {
        let mut row = d.row;
        if let Some(o) = &d.record {
            let rule = &rules[&o.reminder_id];
            let case = &cases[&o.case_pk];
            let timing = CaseTiming::of(case, &rule.stored.rule.timing, ts(row.matched_since));
            row.handled_through = Some(o.due_at);
            row.handled_series = Some(series_of(rule, &timing, row.matched_since));
            row.handled_occurrence = Some(o.occurrence);
            let case_groups = groups
                .get(&o.case_pk)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if let Some(next) = evaluate(rule, o.case_pk, case, case_groups, Some(&row), &zone, now)
            {
                row = next;
            }
        }
        rows.push(row);
    }
    db.write_schedules_tx(tx, &rows, now).await?;
    statistics(
        db,
        &OCCURRENCES_RECORDED,
        "reminder_occurrences",
        first.len() + same_phone,
    );
    Ok((first.len() + same_phone, queued))
}

/// The rule's SMS text for the case (its language, its placeholders); `None` for a survey.
fn rendered(rule: &Compiled, case: &Case) -> Option<String> {
    rule.stored.rule.content.sms().map(|c| {
        c.for_language(case.language_code.as_deref())
            .render(case)
            .text
    })
}

/// Starts the rule's survey for the case; `false` when it could not start (the survey is gone,
/// or the case cannot take it now).
#[allow(clippy::too_many_arguments)]
async fn start_survey(
    db: &Db,
    tx: &mut Tx,
    project: &Project,
    survey_id: i64,
    o: &NewOccurrence,
    case: &Case,
    gateway_id: i64,
    now: i64,
) -> StoreResult<bool> {
    let survey = match db.survey_tx(tx, project.id, survey_id).await {
        Ok(s) => s,
        Err(StoreError::NotFound(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    let to = crate::send::Reachable {
        case_pk: o.case_pk,
        phone: o.phone.clone().unwrap_or_default(),
        gateway_id,
    };
    match crate::surveys::start_in_tx(
        db,
        tx,
        project,
        &survey,
        &to,
        case.language_code.as_deref(),
        None,
        now,
    )
    .await
    {
        Ok(session_id) => {
            // The survey's first message names the rule, as an SMS reminder's does.
            db.set_session_messages_reminder_tx(tx, session_id, o.reminder_id)
                .await?;
            Ok(true)
        }
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// One line of the upcoming list.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UpcomingItem {
    pub case_id: String,
    pub case_name: String,
    /// When it is due (ms since the epoch).
    pub at: i64,
    /// The local date and time in the case's zone, as scheduled.
    pub local: String,
    pub occurrence: u32,
    /// The message as it would be sent (SMS content), for the first few.
    pub text: Option<String>,
}

/// What a rule would send in the next days.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Upcoming {
    /// Soonest first, at most the limit asked.
    pub upcoming: Vec<UpcomingItem>,
    /// How many occurrences in all fall in the window.
    pub total: usize,
    /// Cases the rule takes but cannot schedule or send to, by reason (`no_phone`, `opted_out`,
    /// `no_date`, `date_unreadable`, `time_zone_invalid`).
    pub skipped: std::collections::BTreeMap<String, usize>,
    /// Cases the rule takes.
    pub cases: usize,
}

/// Texts rendered in the upcoming list.
const RENDERED: usize = 20;

/// What `rule`, not saved yet, would send in the `days` from `now`: every live case of its type
/// is judged (in pages), as a case would be when it first matched now.
pub async fn upcoming(
    db: &Db,
    project: &Project,
    rule: &ReminderRule,
    now: i64,
    days: u32,
    limit: usize,
) -> StoreResult<Upcoming> {
    let stored = StoredReminder {
        id: 0,
        project_id: project.id,
        rule: rule.clone(),
        version: 0,
        evaluated_through: None,
        evaluated_at: None,
        created_at: now,
        updated_at: now,
    };
    upcoming_of(db, project, stored, false, now, days, limit).await
}

/// What a saved rule will send in the `days` from `now`: as [`upcoming`], each case judged from
/// its schedule row (what was handled is not listed again; a stopped or finished case shows
/// nothing; a case without a row as if it matched now).
pub async fn upcoming_saved(
    db: &Db,
    project: &Project,
    stored: &StoredReminder,
    now: i64,
    days: u32,
    limit: usize,
) -> StoreResult<Upcoming> {
    upcoming_of(db, project, stored.clone(), true, now, days, limit).await
}

/// Upcoming lists computed at once by this process: each reads every case of the rule's type,
/// so more requests wait their turn rather than add reads.
static UPCOMING_AT_ONCE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn upcoming_of(
    db: &Db,
    project: &Project,
    stored: StoredReminder,
    saved: bool,
    now: i64,
    days: u32,
    limit: usize,
) -> StoreResult<Upcoming> {
    let _turn = UPCOMING_AT_ONCE
        .acquire()
        .await
        .map_err(|_| StoreError::Internal("the upcoming lists' semaphore is closed".into()))?;
    let rule = stored.rule.clone();
    let rule = &rule;
    let compiled = Compiled::new(stored)?;
    let zone = project.zone();
    let to = now + i64::from(days) * 86_400_000;
    let mut out = Upcoming::default();
    let mut after = 0;
    let mut found: Vec<(i64, u32, String, String, Option<String>, String)> = Vec::new();
    loop {
        let mut tx = db.begin_read().await?;
        let cases = db
            .cases_of_type_after_tx(&mut tx, project.id, &rule.case_type, after, PAGE)
            .await?;
        let pks: Vec<i64> = cases.iter().map(|(pk, _)| *pk).collect();
        let groups = db.groups_of_cases_tx(&mut tx, &pks).await?;
        let phones: Vec<&str> = cases
            .iter()
            .filter_map(|(_, c)| c.phone_number.as_ref().map(|p| p.as_str()))
            .collect();
        let opted_out = db.opted_out_of_tx(&mut tx, project.id, &phones).await?;
        let rows: HashMap<i64, ScheduleRow> = if saved {
            db.schedules_of_cases_tx(&mut tx, &[compiled.stored.id], &pks)
                .await?
                .into_iter()
                .map(|r| (r.case_pk, r))
                .collect()
        } else {
            HashMap::new()
        };
        tx.rollback().await?;
        for (pk, case) in &cases {
            let groups = groups.get(pk).map(Vec::as_slice).unwrap_or_default();
            if !compiled.takes(case, groups, &zone) {
                continue;
            }
            out.cases += 1;
            let timing = &rule.timing;
            let since = rows
                .get(pk)
                .filter(|r| r.state != ScheduleState::Stopped)
                .map_or(now, |r| r.matched_since);
            let schedule = match timing.for_case(&CaseTiming::of(case, timing, ts(since)), &zone) {
                Ok(s) => s,
                Err(skip) => {
                    *out.skipped.entry(skip.code().to_string()).or_default() += 1;
                    continue;
                }
            };
            let Some(phone) = case.phone_number.as_ref() else {
                *out.skipped.entry("no_phone".into()).or_default() += 1;
                continue;
            };
            if opted_out.contains(phone.as_str()) {
                *out.skipped.entry("opted_out".into()).or_default() += 1;
                continue;
            }
            // From the occurrence the case's row has next (none: nothing more for it).
            let from_occurrence = match rows.get(pk) {
                None => 1,
                Some(_) => {
                    match evaluate(&compiled, *pk, case, groups, rows.get(pk), &zone, now)
                        .and_then(|r| r.next_occurrence)
                    {
                        Some(k) => u32::try_from(k).unwrap_or(u32::MAX),
                        None => continue,
                    }
                }
            };
            for o in schedule
                .upcoming(ts(now), ts(to))
                .filter(|o| o.index >= from_occurrence)
            {
                out.total += 1;
                let text = rule.content.sms().map(|c| {
                    c.for_language(case.language_code.as_deref())
                        .render(case)
                        .text
                });
                found.push((
                    o.at.as_millisecond(),
                    o.index,
                    case.case_id.to_string(),
                    case.name.clone(),
                    text,
                    o.local.to_string(),
                ));
            }
        }
        // Keep the soonest `limit`.
        found.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
        found.truncate(limit);
        if cases.len() < PAGE {
            break;
        }
        after = pks.last().copied().unwrap_or(after);
    }
    out.upcoming = found
        .into_iter()
        .enumerate()
        .map(
            |(i, (at, occurrence, case_id, case_name, text, local))| UpcomingItem {
                case_id,
                case_name,
                at,
                local,
                occurrence,
                text: text.filter(|_| i < RENDERED),
            },
        )
        .collect();
    Ok(out)
}
