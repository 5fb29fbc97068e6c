//! `reminders`: issue 15's figures, in three parts (`--part eval|fire|import`, or all three in
//! turn), each on a project of its own made as the survey and keyword benchmarks make one
//! (UUID case IDs, two groups with their upload reports, a default `log` gateway), in the
//! project's zone Africa/Kampala. Every case has a number `+25677…`, a `next_visit`
//! (`YYYY-MM-DD`), and one in ten the `time_zone` Europe/London. The timed parts run in child
//! processes, so that the peak memory printed is theirs alone; no worker runs, so the figures
//! are the reminder functions' alone (the ones a worker's tick calls).
//!
//! - **eval**: a project of N cases (1,000,000 by default) with dates spread over the next 30
//!   days. Timed (`run-reminders-eval`): creating a rule that takes every case (`query` empty,
//!   two days before `next_visit` at 09:00) and calling `reminders::evaluate_rules` until it
//!   returns false; checked: one schedule row a case.
//! - **fire**: a project of D cases (100,000 by default) with the same `next_visit` and no
//!   zone of their own, so that every occurrence falls in one minute; the rule is evaluated
//!   untimed. Timed (`run-reminders-fire`): `reminders::fire_all_due` (a worker tick's
//!   firing: two pages at once on PostgreSQL) with the clock at that minute; checked: nothing
//!   left due, D occurrences recorded `queued` and D messages carrying the rule's id. The project lives about 100 days in the past (its clock is a `ManualClock`), so
//!   that no row of the other parts, due in the next days, is due at its minute.
//! - **import**: a project of E cases (100,000 by default) with 10 active rules (queries,
//!   offsets, repeats, a group, an `immediately`), evaluated untimed. Timed
//!   (`run-reminders-import`): an import of I new cases (100,000 by default) through the path
//!   of the `import` benchmark, first into a project without rules (for comparison), then into
//!   this one (the triggers queue each case for the rules), then `reminders::evaluate_pending`
//!   draining that queue; checked: every imported case looked at once, the queue empty, and
//!   the rule taking every case has a row for each.
//!
//! Each part first refuses a database where reminder work is left over (a rule not evaluated,
//! cases waiting in `reminder_pending`): a worker or a run stopped half-way would mix its work
//! into the figures.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use casecast_core::reminder::ReminderRule;
use casecast_engine::clock::{Clock, ManualClock, SystemClock};
use casecast_engine::faults::Faults;
use casecast_engine::reminders;
use casecast_store::Db;
use clap::ValueEnum;
use jiff::civil::Date;
use jiff::ToSpan;
use serde_json::json;

use crate::common::{import_files, peak_rss_mib, Bench, Stopwatch};
use crate::surveys::{case_id, realistic_project_with};

/// Which part to run.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// The three in turn.
    All,
    /// A rule over every case of a project: creating it and computing each case's schedule.
    Eval,
    /// Occurrences due in one minute queued into the outbox.
    Fire,
    /// An import into a project with 10 active rules, then the re-evaluation it queued.
    Import,
}

/// The sizes of the parts.
pub struct Sizes {
    pub cases: usize,
    pub due: usize,
    pub import: usize,
    pub existing: usize,
}

/// The project's zone (`common::new_project` makes it so).
const ZONE: &str = "Africa/Kampala";
/// Sheets are written and imported in parts of this many rows (the import's size limit).
const SHEET_ROWS: usize = 200_000;
/// Most cases of a part (their numbers must differ).
const MAX_CASES: usize = 10_000_000;
/// How far in the past the firing part's project lives.
const FIRE_PAST_DAYS: i64 = 100;
/// The day, after the firing part's set-up, of every case's `next_visit`.
const FIRE_VISIT_IN_DAYS: i64 = 10;

/// The `next_visit` of the cases of a sheet.
#[derive(Clone, Copy)]
enum Visits {
    /// Case `i`'s is `i % 30 + 1` days after the date; one case in ten in Europe/London.
    Spread(Date),
    /// Every case's is the date; no case has a zone of its own.
    Same(Date),
}

/// Case `i`'s number, `+25677` and 7 digits (distinct below 10,000,000).
fn phone(i: usize) -> String {
    format!("+25677{:07}", i % 10_000_000)
}

/// Writes cases `from..to`: UUID case IDs, a number each, one in five in Swahili, properties
/// for the rules' queries, the visit dates of `visits`, a refill date for every other case.
fn write_cases(path: &Path, from: usize, to: usize, visits: Visits) -> anyhow::Result<()> {
    let mut out = String::from(
        "case_id,external_id,name,phone_number,language_code,district,study_arm,hiv_status,next_visit,refill_date,time_zone\n",
    );
    for i in from..to {
        let (visit, zone) = match visits {
            Visits::Spread(base) => (
                base.checked_add(((i % 30 + 1) as i64).days())?,
                if i % 10 == 3 { "Europe/London" } else { "" },
            ),
            Visits::Same(day) => (day, ""),
        };
        let refill = if i % 2 == 0 {
            visit.checked_add(((i % 7) as i64).days())?.to_string()
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{},RM-{i:07},Participant {i},{},{},{},{},{},{visit},{refill},{zone}\n",
            case_id(i),
            phone(i),
            if i % 5 == 0 { "sw" } else { "en" },
            ["Gulu", "Kampala", "Lira", "Mbarara"][i % 4],
            ["A", "B"][i % 2],
            ["positive", "negative", "unknown"][i % 3],
        ));
    }
    std::fs::write(path, out)?;
    Ok(())
}

fn zone() -> anyhow::Result<jiff::tz::TimeZone> {
    Ok(jiff::tz::TimeZone::get(ZONE)?)
}

/// The project's date at `ms`.
fn local_date(ms: i64) -> anyhow::Result<Date> {
    Ok(jiff::Timestamp::from_millisecond(ms)?
        .to_zoned(zone()?)
        .date())
}

/// A rule of the benchmark: the CONTRACT's body, checked.
fn rule(body: serde_json::Value) -> anyhow::Result<ReminderRule> {
    ReminderRule::parse_checked(&body).map_err(|problems| {
        anyhow::anyhow!(
            "the benchmark's reminder: {}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

/// The rule of the evaluation and firing parts: every case, two days before `next_visit` at
/// 09:00, in two languages.
fn visit_rule() -> anyhow::Result<ReminderRule> {
    rule(json!({
        "name": "Visit in two days", "case_type": "case", "query": "",
        "start": {"property": "next_visit", "offset_days": -2}, "time": "09:00",
        "content": {"sms": {
            "*": "Dear {case.name}, your clinic visit is on {case.next_visit}. Reply STOP to opt out.",
            "sw": "Mpendwa {case.name}, ziara yako ya kliniki ni {case.next_visit}.",
        }},
    }))
}

/// The import part's 10 active rules; the first takes every case.
fn ten_rules() -> anyhow::Result<Vec<ReminderRule>> {
    let text = json!({"sms": {"*": "{case.name}: visit on {case.next_visit}.",
                              "sw": "{case.name}: ziara {case.next_visit}."}});
    let visit = |offset: i64, time: &str| json!({"property": "next_visit", "offset_days": offset, "time": time});
    let bodies = [
        json!({"name": "Visit in two days", "query": "", "start": visit(-2, "09:00")}),
        json!({"name": "Visit day", "query": "", "start": visit(0, "07:30")}),
        json!({"name": "Missed visit", "query": "", "stop_query": "visit_done = yes",
               "start": visit(3, "10:00")}),
        json!({"name": "Arm B, the evening before", "query": "study_arm = B",
               "start": visit(-1, "18:00")}),
        json!({"name": "Positive, three days before", "query": "hiv_status = positive",
               "start": visit(-3, "08:00"), "repeat": {"every_days": 1, "times": 3}}),
        json!({"name": "Refill", "query": "refill_date != \"\"",
               "start": {"property": "refill_date", "offset_days": -1}, "time": "09:00"}),
        json!({"name": "Welcome in Gulu", "query": "district = Gulu",
               "start": {"immediately": true}}),
        json!({"name": "Kitgum follow-up", "query": "group = \"Kitgum follow-up\"",
               "start": visit(-7, "09:00")}),
        json!({"name": "Swahili, not Lira", "query": "language_code = sw AND district != Lira",
               "start": visit(-2, "16:00")}),
        json!({"name": "Lira or Mbarara, weekly", "query": "district = Lira OR district = Mbarara",
               "start": visit(-14, "12:00"), "repeat": {"every_days": 7, "times": 2}}),
    ];
    bodies
        .into_iter()
        .map(|mut body| {
            // `time` sits beside `start` in a rule's body.
            if let Some(time) = body["start"].as_object_mut().and_then(|s| s.remove("time")) {
                body["time"] = time;
            }
            body["case_type"] = json!("case");
            body["content"] = text.clone();
            rule(body)
        })
        .collect()
}

/// Refuses a database where reminder work is left over (it would be done inside the timed
/// parts and counted with them).
pub(crate) async fn nothing_left_over(db: &Db) -> anyhow::Result<()> {
    if let Some((id, project)) = db.next_unevaluated_reminder().await? {
        bail!(
            "the database holds a reminder rule whose evaluation has not finished (rule {id} of project {project}): use a database of its own, without workers"
        );
    }
    if db.has_pending_cases().await? {
        bail!("the database holds cases waiting for the reminder rules: use a database of its own, without workers");
    }
    Ok(())
}

/// Evaluates every rule waiting, as the workers do.
async fn evaluate_all(db: &Db, clock: &dyn Clock) -> anyhow::Result<()> {
    while reminders::evaluate_rules(db, clock).await? {}
    Ok(())
}

/// Schedule rows of a rule, all states.
async fn schedule_rows(db: &Db, reminder_id: i64) -> anyhow::Result<i64> {
    Ok(db.reminder_counts(reminder_id).await?.states.values().sum())
}

/// Runs the parts asked.
pub async fn run(bench: &Bench, part: Part, sizes: Sizes) -> anyhow::Result<()> {
    for (flag, n) in [
        ("--cases", sizes.cases),
        ("--due", sizes.due),
        ("--import", sizes.import),
        ("--existing", sizes.existing),
    ] {
        // Case numbers `+25677` and 7 digits are distinct below 10,000,000.
        if !(1..=MAX_CASES).contains(&n) {
            bail!("{flag} must be from 1 to {MAX_CASES}, not {n}");
        }
    }
    if sizes.existing + sizes.import > MAX_CASES {
        bail!("--existing and --import together must be at most {MAX_CASES}");
    }
    if matches!(part, Part::All | Part::Eval) {
        eval(bench, sizes.cases).await?;
    }
    if matches!(part, Part::All | Part::Fire) {
        fire(bench, sizes.due).await?;
    }
    if matches!(part, Part::All | Part::Import) {
        import(bench, sizes.existing, sizes.import).await?;
    }
    Ok(())
}

/// The evaluation part's set-up; the timed part runs in a child.
async fn eval(bench: &Bench, cases: usize) -> anyhow::Result<()> {
    let db = bench.open().await?;
    let engine = db.dialect().name();
    nothing_left_over(&db).await?;
    let started = Instant::now();
    let now = casecast_core::time::now_ms();
    let today = local_date(now)?;
    let (project, created) = realistic_project_with(&db, cases, |path, from, to| {
        write_cases(path, from, to, Visits::Spread(today))
    })
    .await?;
    println!(
        "[{engine}] reminders eval setup: {created} cases (UUID case IDs, next_visit over the 30 days after {today}, one in ten in Europe/London), two groups with their upload reports, a log gateway, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    db.close().await;
    let figures = bench.measure(&[
        "run-reminders-eval",
        "--project-id",
        &project.id.to_string(),
        "--now-ms",
        &now.to_string(),
    ])?;
    println!("[{engine}] {figures}");
    Ok(())
}

/// The timed evaluation: creates the rule and evaluates it over every case of the project.
pub async fn run_eval(bench: &Bench, project_id: i64, now_ms: i64) -> anyhow::Result<()> {
    let db = bench.open().await?;
    nothing_left_over(&db).await?;
    let cases = db.count_cases(project_id).await?;
    let rule = visit_rule()?;
    let clock = ManualClock::new(now_ms);
    let watch = Stopwatch::start();
    let stored = reminders::create(&db, project_id, &rule, None).await?;
    let mut pages = 0;
    while reminders::evaluate_rules(&db, &clock).await? {
        pages += 1;
    }
    let (secs, cpu) = (watch.secs(), watch.cpu_secs());
    let evaluated = db.reminder(project_id, stored.id).await?;
    if evaluated.evaluated_at.is_none() {
        bail!("evaluate_rules stopped before the rule's evaluation finished");
    }
    let counts = db.reminder_counts(stored.id).await?;
    let rows: i64 = counts.states.values().sum();
    if rows != cases {
        bail!("a rule taking every case wrote {rows} schedule rows for {cases} cases");
    }
    let states = counts
        .states
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "reminder evaluation: a rule over {cases} cases created and evaluated in {secs:.2} s ({:.0} cases/s; CPU {cpu:.2} s; {pages} pages); {rows} schedule rows written ({states}); peak RSS {:.0} MiB",
        cases as f64 / secs,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// The firing part's set-up (the project, its rule evaluated); the timed part runs in a child.
async fn fire(bench: &Bench, due: usize) -> anyhow::Result<()> {
    let db = bench.open().await?;
    let engine = db.dialect().name();
    nothing_left_over(&db).await?;
    let started = Instant::now();
    let then = casecast_core::time::now_ms() - FIRE_PAST_DAYS * 86_400_000;
    let visit = local_date(then)?.checked_add(FIRE_VISIT_IN_DAYS.days())?;
    let at = visit
        .checked_sub(2.days())?
        .at(9, 0, 0, 0)
        .to_zoned(zone()?)?
        .timestamp()
        .as_millisecond();
    let (project, created) = realistic_project_with(&db, due, |path, from, to| {
        write_cases(path, from, to, Visits::Same(visit))
    })
    .await?;
    let clock = ManualClock::new(then);
    let stored = reminders::create(&db, project.id, &visit_rule()?, None).await?;
    evaluate_all(&db, &clock).await?;
    let counts = db.reminder_counts(stored.id).await?;
    let scheduled = counts.states.get("scheduled").copied().unwrap_or(0);
    let next = db.reminder_next_due(stored.id, 1).await?;
    if scheduled != due as i64 || next.first().and_then(|n| n.next_at) != Some(at) {
        bail!(
            "the set-up went wrong: {scheduled} of {due} cases scheduled ({:?}), the first at {:?}, not {at}",
            counts.states,
            next.first().and_then(|n| n.next_at)
        );
    }
    println!(
        "[{engine}] reminders fire setup: {created} cases with next_visit {visit} (UUID case IDs), two groups with their upload reports, a log gateway, the rule evaluated ({due} occurrences due at {} {ZONE}), in {:.1} s",
        casecast_core::time::local_minute(at, &zone()?),
        started.elapsed().as_secs_f64()
    );
    db.close().await;
    let figures = bench.measure(&[
        "run-reminders-fire",
        "--project-id",
        &project.id.to_string(),
        "--reminder-id",
        &stored.id.to_string(),
        "--at-ms",
        &at.to_string(),
        "--due",
        &due.to_string(),
    ])?;
    println!("[{engine}] {figures}");
    Ok(())
}

/// What the firing child is told.
pub struct Fire {
    pub project_id: i64,
    pub reminder_id: i64,
    pub at_ms: i64,
    pub due: usize,
}

/// The timed firing: `fire_all_due` (what a worker's tick calls) at the minute every
/// occurrence is due; then checks nothing is left due, and counts the occurrences recorded and
/// the messages queued.
pub async fn run_fire(bench: &Bench, f: Fire) -> anyhow::Result<()> {
    let db = bench.open().await?;
    let clock = ManualClock::new(f.at_ms);
    let messages_before = db
        .count_reminder_messages(f.project_id, f.reminder_id)
        .await?;
    if messages_before != 0 {
        bail!("the rule has {messages_before} messages before firing");
    }
    let lanes = reminders::fire_lanes(db.dialect());
    let watch = Stopwatch::start();
    let recorded = reminders::fire_all_due(&db, &clock, &Faults::none()).await?;
    let (secs, cpu) = (watch.secs(), watch.cpu_secs());
    // Nothing may be left due (a lane that stopped early would leave rows for a later tick).
    let left = reminders::fire_due(&db, &clock).await?;
    if left != 0 {
        bail!("fire_all_due left {left} occurrences due");
    }
    let queued = db
        .reminder_counts(f.reminder_id)
        .await?
        .outcomes
        .get("queued")
        .copied()
        .unwrap_or(0);
    let messages = db
        .count_reminder_messages(f.project_id, f.reminder_id)
        .await?;
    let due = f.due as i64;
    if recorded != f.due || queued != due || messages != due {
        bail!(
            "{} occurrences were due; fire_due recorded {recorded} ({queued} of the rule's queued), and the rule's messages are {messages}",
            f.due
        );
    }
    println!(
        "reminder firing: {recorded} occurrences due in one minute queued into the outbox in {secs:.2} s ({:.0} occurrences/s; CPU {cpu:.2} s; fire_all_due, {} lanes on this engine); {messages} messages with the rule's id; peak RSS {:.0} MiB",
        recorded as f64 / secs,
        lanes,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// The import part's set-up (the project, its 10 rules evaluated, the sheets to import); the
/// timed part runs in a child.
async fn import(bench: &Bench, existing: usize, rows: usize) -> anyhow::Result<()> {
    let db = bench.open().await?;
    let engine = db.dialect().name();
    nothing_left_over(&db).await?;
    let started = Instant::now();
    let today = local_date(casecast_core::time::now_ms())?;
    let write =
        |path: &Path, from: usize, to: usize| write_cases(path, from, to, Visits::Spread(today));
    let (project, created) = realistic_project_with(&db, existing, write).await?;
    // The same import into a project without rules, for comparison: one made alike (as many
    // cases, groups and reports), so that the two imports differ only by the rules.
    let (plain, _) = realistic_project_with(&db, existing, write).await?;
    let rules = ten_rules()?;
    let mut ids = Vec::new();
    for rule in &rules {
        ids.push(reminders::create(&db, project.id, rule, None).await?.id);
    }
    evaluate_all(&db, &SystemClock).await?;
    let mut rows_before = 0;
    for id in &ids {
        rows_before += schedule_rows(&db, *id).await?;
    }
    nothing_left_over(&db).await?;
    // The new cases' sheets, written before the clock starts.
    let dir = tempfile::tempdir()?;
    let mut files = Vec::new();
    for (part, start) in (existing..existing + rows).step_by(SHEET_ROWS).enumerate() {
        let file = dir.path().join(format!("new-{part}.csv"));
        write(&file, start, (start + SHEET_ROWS).min(existing + rows))?;
        files.push(
            file.to_str()
                .context("the temporary folder's path is not UTF-8")?
                .to_string(),
        );
    }
    println!(
        "[{engine}] reminders import setup: {created} cases (as in eval), two groups with their upload reports, a log gateway, 10 active rules evaluated ({rows_before} schedule rows), in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    db.close().await;
    let mut args = vec![
        "run-reminders-import".to_string(),
        "--project".into(),
        project.slug.to_string(),
        "--plain-project".into(),
        plain.slug.to_string(),
        "--rows".into(),
        rows.to_string(),
        "--reminder-ids".into(),
        ids.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    ];
    args.extend(files);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let figures = bench.measure(&args)?;
    println!("[{engine}] {figures}");
    Ok(())
}

/// What the import child is told.
pub struct Import {
    pub project: String,
    /// A project without rules: the same sheets are imported into it first, for comparison.
    pub plain_project: String,
    pub rows: usize,
    /// The project's rules, the one taking every case first.
    pub reminder_ids: Vec<i64>,
    pub files: Vec<PathBuf>,
}

/// The timed import and re-evaluation: imports the sheets into a project without rules (for
/// comparison), then into the one with rules (the triggers queue each new case), then drains
/// the queue with `evaluate_pending`.
pub async fn run_import(bench: &Bench, i: Import) -> anyhow::Result<()> {
    let db = bench.open().await?;
    nothing_left_over(&db).await?;
    let mut before = Vec::new();
    for id in &i.reminder_ids {
        before.push(schedule_rows(&db, *id).await?);
    }
    let (plain_secs, _) = import_files(&db, &i.plain_project, &i.files, i.rows).await?;
    if db.has_pending_cases().await? {
        bail!("an import into a project without rules queued cases for the rules");
    }
    let (import_secs, import_cpu) = import_files(&db, &i.project, &i.files, i.rows).await?;
    if !db.has_pending_cases().await? {
        bail!("the import queued no case for the rules");
    }
    let watch = Stopwatch::start();
    let looked_at = reminders::evaluate_pending(&db, &SystemClock).await?;
    let (secs, cpu) = (watch.secs(), watch.cpu_secs());
    if looked_at != i.rows || db.has_pending_cases().await? {
        bail!(
            "evaluate_pending looked at {looked_at} cases after an import of {} (cases still waiting: {})",
            i.rows,
            db.has_pending_cases().await?
        );
    }
    let mut written = 0;
    for (n, id) in i.reminder_ids.iter().enumerate() {
        let added = schedule_rows(&db, *id).await? - before[n];
        if n == 0 && added != i.rows as i64 {
            bail!(
                "the rule taking every case has {added} new schedule rows after {} new cases",
                i.rows
            );
        }
        written += added;
    }
    println!(
        "reminder re-evaluation: import of {} cases into a project with {} active rules in {import_secs:.2} s ({:.0} rows/s; CPU {import_cpu:.2} s; into a project without rules {plain_secs:.2} s, {:.0} rows/s); evaluate_pending over them in {secs:.2} s ({:.0} cases/s; CPU {cpu:.2} s; {written} schedule rows written); peak RSS {:.0} MiB",
        i.rows,
        i.reminder_ids.len(),
        i.rows as f64 / import_secs,
        i.rows as f64 / plain_secs,
        looked_at as f64 / secs,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}
