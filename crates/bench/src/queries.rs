//! `queries`: issue 16's figures (case queries and smart groups). Two projects are made as the
//! survey, keyword and reminder benchmarks make one (UUID case IDs, two groups with their
//! upload reports, a default `log` gateway), each of N cases (1,000,000 by default) with 10
//! properties drawn from a hash of the row number: `district` (10 districts, Gulu one case in
//! four), `age` (0–90, one in a hundred not a number: "eighteen"), `sex`, `study_arm` (A/B),
//! `hiv_status`, `enrolled` (a date over 2023–2025), `next_visit` (a date over 90 days),
//! `village` (500), `parity` (0–8) and `phone_type`; names like "Amina Okello 123456". The
//! first project also gets a plain group "Everyone" holding every case (an upload of every case
//! ID, before any smart group exists); the second has no smart group, for comparison.
//!
//! The timed parts run in two child processes, so that the peak memory printed is theirs:
//! - **read** (`run-queries-read`): `Db::count_matching` of `district = Gulu AND age >= 18`,
//!   the first page of 50 matching cases through `Db::list_cases` (`CaseFilter.query`), and
//!   the member searches `okello 12` (about one name in 900) and `okello 0` (none) in
//!   "Everyone" (`Db::group_members`), each run R times (the first, cold, and the median
//!   printed); then the smart group `district = Gulu` created
//!   through `casecast_engine::smart_groups::create`. Checked against the Rust evaluator run
//!   over the generated cases: the counts, every case of the page matching, every member found
//!   holding the text, the smart group's member count.
//! - **write** (`run-queries-write`): 19 more smart groups over the properties (20 in all);
//!   then K single-case writes (`Db::update_case` setting `district`, `age` and a write
//!   number, each followed by `reminders::evaluate_pending` as a worker's tick would), first in
//!   the project without
//!   smart groups, then in the one with 20: the extra time per write; then an import of I new
//!   cases (100,000 by default, through the `import` benchmark's path) into each, and in the
//!   one with smart groups `evaluate_pending` draining the queue it filled: rows/s of the
//!   import alone and with the upkeep. Checked: each write looked at its case, every imported
//!   case looked at and the queue empty, and at the end every smart group's member count equal
//!   to `Db::count_matching` of its query.
//!
//! Both refuse a database where reminder or smart-group work is left over (a rule not
//! evaluated, cases waiting in `reminder_pending`): a worker or a run stopped half-way would mix
//! its work into the figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use casecast_core::case::{Case, CaseChanges};
use casecast_core::case_query::{CaseQuery, Context, GroupRef, QueryContext};
use casecast_core::identifier::GroupName;
use casecast_core::ids::CaseId;
use casecast_engine::clock::SystemClock;
use casecast_engine::{reminders, smart_groups};
use casecast_store::cases::CaseFilter;
use casecast_store::Db;

use crate::common::{import_files, peak_rss_mib, Bench, Stopwatch};
use crate::groups::{upload_in_process, ACTOR};
use crate::reminders::nothing_left_over;
use crate::surveys::{case_id, realistic_project_with};

/// The sizes and repeats.
pub struct Sizes {
    pub cases: usize,
    pub writes: usize,
    pub import: usize,
    pub repeats: usize,
}

/// Sheets are written and imported in parts of this many rows (the import's size limit).
const SHEET_ROWS: usize = 200_000;
/// Most cases (their phone numbers must differ).
const MAX_CASES: usize = 10_000_000;
/// The query of the count and the first page.
const COUNT_QUERY: &str = "district = Gulu AND age >= 18";
/// The query of the timed smart group (about one case in four).
const GULU_QUERY: &str = "district = Gulu";
/// The member search (about one name in 900 holds it, so a page fills early in a scan).
const SEARCH: &str = "okello 12";
/// A member search no name holds (numbers start at 100000): the whole group is looked at.
const SEARCH_NONE: &str = "okello 0";
/// The first page's size.
const PAGE: usize = 50;
/// The other 19 smart groups' names and queries (the write part's).
const OTHER_GROUPS: [(&str, &str); 19] = [
    ("Gulu adults", "district = Gulu AND age >= 18"),
    (
        "Arm B enrolled 2025",
        "study_arm = B AND enrolled >= 2025-01-01",
    ),
    ("Positive", "hiv_status = positive"),
    ("Women 15-49", "sex = F AND age >= 15 AND age <= 49"),
    ("Parity 3+", "parity >= 3"),
    ("Visit this year", "next_visit <= 2026-12-31"),
    ("Lira or Kitgum", "district = Lira OR district = Kitgum"),
    ("Smartphone men", "phone_type = smartphone AND sex = M"),
    ("Village 17", "village = \"Village 017\""),
    ("Under five", "age < 5"),
    ("Arm A positive", "study_arm = A AND hiv_status = positive"),
    (
        "Enrolled 2023",
        "enrolled >= 2023-01-01 AND enrolled < 2024-01-01",
    ),
    ("Okello", "name ~ okello"),
    (
        "Kitgum follow-up, arm B",
        "group = \"Kitgum follow-up\" AND study_arm = B",
    ),
    (
        "Unknown status, adults",
        "hiv_status = unknown AND age >= 18",
    ),
    (
        "Mbarara or Masaka, women",
        "(district = Mbarara OR district = Masaka) AND sex = F",
    ),
    (
        "Feature phones, parity 0",
        "phone_type = feature AND parity = 0",
    ),
    ("Teenagers", "age >= 13 AND age <= 19"),
    (
        "Late visits, Gulu",
        "district = Gulu AND next_visit >= 2027-02-01",
    ),
];

const DISTRICTS: [&str; 10] = [
    "Gulu", "Kampala", "Lira", "Mbarara", "Kitgum", "Arua", "Jinja", "Masaka", "Mbale", "Hoima",
];
const FIRST: [&str; 10] = [
    "Amina", "Grace", "Sarah", "Esther", "Joseph", "Peter", "Ruth", "Agnes", "Moses", "Brenda",
];
const LAST: [&str; 10] = [
    "Okello", "Achieng", "Nakato", "Mugisha", "Atim", "Odongo", "Namubiru", "Ochieng", "Apio",
    "Kato",
];

/// splitmix64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Case `i` as generated: its name and 10 properties.
struct Generated {
    name: String,
    properties: BTreeMap<String, String>,
}

fn date(base: jiff::civil::Date, days: u64) -> String {
    base.checked_add(jiff::Span::new().days(days as i64))
        .map(|d| d.to_string())
        .unwrap_or_default()
}

fn generated(i: usize) -> Generated {
    // Independent draws from one hash each, so that no property follows another (nor the
    // `i % 5` of the "Kitgum follow-up" group).
    let r = |k: u64| mix(mix(i as u64) ^ k.wrapping_mul(0x9e37_79b9));
    let district = if r(1) % 100 < 25 {
        DISTRICTS[0]
    } else {
        DISTRICTS[1 + (r(2) % 9) as usize]
    };
    let age = if r(3) % 100 == 0 {
        "eighteen".to_string()
    } else {
        (r(4) % 91).to_string()
    };
    let props = [
        ("district", district.to_string()),
        ("age", age),
        ("sex", ["F", "M"][(r(5) % 2) as usize].to_string()),
        ("study_arm", ["A", "B"][(r(6) % 2) as usize].to_string()),
        (
            "hiv_status",
            ["positive", "negative", "unknown"][(r(7) % 3) as usize].to_string(),
        ),
        (
            "enrolled",
            date(jiff::civil::date(2023, 1, 1), r(8) % (3 * 365)),
        ),
        (
            "next_visit",
            date(jiff::civil::date(2026, 11, 15), r(9) % 90),
        ),
        ("village", format!("Village {:03}", r(10) % 500)),
        ("parity", (r(11) % 9).to_string()),
        (
            "phone_type",
            ["smartphone", "feature", "none"][(r(12) % 3) as usize].to_string(),
        ),
    ];
    Generated {
        name: format!(
            "{} {} {}",
            FIRST[(r(13) % 10) as usize],
            LAST[(r(14) % 10) as usize],
            100_000 + r(15) % 900_000
        ),
        properties: props.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
}

/// Case `i`'s number, `+25677` and 7 digits (distinct below 10,000,000).
fn phone(i: usize) -> String {
    format!("+25677{:07}", i % 10_000_000)
}

/// Writes cases `from..to` as a CSV sheet.
fn write_cases(path: &Path, from: usize, to: usize) -> anyhow::Result<()> {
    let mut out = String::from(
        "case_id,external_id,name,phone_number,district,age,sex,study_arm,hiv_status,enrolled,next_visit,village,parity,phone_type\n",
    );
    for i in from..to {
        let g = generated(i);
        let p = |k: &str| g.properties[k].as_str();
        out.push_str(&format!(
            "{},QB-{i:07},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            case_id(i),
            g.name,
            phone(i),
            p("district"),
            p("age"),
            p("sex"),
            p("study_arm"),
            p("hiv_status"),
            p("enrolled"),
            p("next_visit"),
            p("village"),
            p("parity"),
            p("phone_type"),
        ));
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// Case `i` as the Rust evaluator sees it (what matters to the queries: the name and the
/// properties).
fn case_of(i: usize) -> anyhow::Result<Case> {
    let g = generated(i);
    Ok(Case {
        case_id: CaseId::parse(&case_id(i))?,
        case_type: "case".into(),
        name: g.name,
        external_id: Some(format!("QB-{i:07}")),
        phone_number: None,
        language_code: None,
        owner_id: None,
        closed: false,
        deleted: false,
        properties: g.properties,
        created_at: 0,
        modified_at: 0,
    })
}

/// The Rust evaluator's context for generated case `i`: the project's zone, and the
/// "Kitgum follow-up" group (every fifth case) of `realistic_project_with`.
fn context_of(i: usize) -> Context<impl Fn(&GroupRef) -> bool> {
    Context {
        time_zone: jiff::tz::TimeZone::UTC,
        is_member: move |g: &GroupRef| match g {
            GroupRef::Name(n) => {
                n.trim().eq_ignore_ascii_case("Kitgum follow-up") && i.is_multiple_of(5)
            }
            GroupRef::Id(_) => false,
        },
    }
}

/// What the Rust evaluator says of cases `0..n`: matched and uncomparable counts of each query.
fn expected(n: usize, queries: &[&str]) -> anyhow::Result<Vec<(i64, i64)>> {
    let parsed = queries
        .iter()
        .map(|q| CaseQuery::parse(q).map_err(|e| anyhow::anyhow!("{q}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut counts = vec![(0, 0); queries.len()];
    for i in 0..n {
        let case = case_of(i)?;
        let ctx = context_of(i);
        for (q, c) in parsed.iter().zip(counts.iter_mut()) {
            let e = q.evaluate(&case, &ctx);
            c.0 += i64::from(e.matched);
            c.1 += i64::from(e.uncomparable);
        }
    }
    Ok(counts)
}

/// Median and first of timings, in ms.
fn summary(ms: &[f64]) -> String {
    let mut sorted = ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    format!(
        "median {:.1} ms, first (cold) {:.1} ms, over {} runs",
        sorted[sorted.len() / 2],
        ms[0],
        ms.len()
    )
}

/// Runs the set-up, then the two timed children.
pub async fn run(bench: &Bench, sizes: Sizes) -> anyhow::Result<()> {
    for (flag, n) in [
        ("--cases", sizes.cases),
        ("--writes", sizes.writes),
        ("--import", sizes.import),
        ("--repeats", sizes.repeats),
    ] {
        if !(1..=MAX_CASES).contains(&n) {
            bail!("{flag} must be from 1 to {MAX_CASES}, not {n}");
        }
    }
    if sizes.cases + sizes.import > MAX_CASES {
        bail!("--cases and --import together must be at most {MAX_CASES}");
    }
    let db = bench.open().await?;
    let engine = db.dialect().name();
    nothing_left_over(&db).await?;
    let started = Instant::now();
    let (project, created) = realistic_project_with(&db, sizes.cases, write_cases).await?;
    let (plain, _) = realistic_project_with(&db, sizes.cases, write_cases).await?;
    let everyone = db
        .create_group(project.id, &GroupName::parse("Everyone")?, ACTOR)
        .await?;
    let mut csv = String::from("case_id\n");
    for i in 0..sizes.cases {
        csv.push_str(&case_id(i));
        csv.push('\n');
    }
    upload_in_process(
        &db,
        project.id,
        everyone.id,
        "everyone.csv",
        csv.into_bytes(),
    )
    .await?;
    let members = db.get_group(project.id, everyone.id).await?.case_count;
    if members != created as i64 {
        bail!("the group of every case holds {members} of {created} cases");
    }
    nothing_left_over(&db).await?;
    // The new cases' sheets, written before the clock starts.
    let dir = tempfile::tempdir()?;
    let mut files = Vec::new();
    let (from, to) = (sizes.cases, sizes.cases + sizes.import);
    for (part, start) in (from..to).step_by(SHEET_ROWS).enumerate() {
        let file = dir.path().join(format!("new-{part}.csv"));
        write_cases(&file, start, (start + SHEET_ROWS).min(to))?;
        files.push(
            file.to_str()
                .context("the temporary folder's path is not UTF-8")?
                .to_string(),
        );
    }
    println!(
        "[{engine}] queries setup: two projects of {created} cases (UUID case IDs, 10 properties), two groups with their upload reports each, a plain group of every case in the first, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    db.close().await;
    let figures = bench.measure(&[
        "run-queries-read",
        "--project-id",
        &project.id.to_string(),
        "--group-id",
        &everyone.id.to_string(),
        "--cases",
        &sizes.cases.to_string(),
        "--repeats",
        &sizes.repeats.to_string(),
    ])?;
    for line in figures.lines() {
        println!("[{engine}] {line}");
    }
    let mut args = vec![
        "run-queries-write".to_string(),
        "--project".into(),
        project.slug.to_string(),
        "--plain-project".into(),
        plain.slug.to_string(),
        "--cases".into(),
        sizes.cases.to_string(),
        "--writes".into(),
        sizes.writes.to_string(),
        "--rows".into(),
        sizes.import.to_string(),
    ];
    args.extend(files);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let figures = bench.measure(&args)?;
    for line in figures.lines() {
        println!("[{engine}] {line}");
    }
    Ok(())
}

/// What the read child is told.
pub struct Read {
    pub project_id: i64,
    /// The plain group of every case.
    pub group_id: i64,
    pub cases: usize,
    pub repeats: usize,
}

/// The timed reads (count, first page, member search) and the smart group of Gulu.
pub async fn run_read(bench: &Bench, r: Read) -> anyhow::Result<()> {
    let db = bench.open().await?;
    nothing_left_over(&db).await?;
    let project = db.project_by_id(r.project_id).await?;
    let zone = project.zone();
    let live = db.count_cases(project.id).await?;
    if live != r.cases as i64 {
        bail!("the project has {live} cases, not {}", r.cases);
    }
    let want = expected(r.cases, &[COUNT_QUERY, GULU_QUERY])?;
    let (want_count, want_gulu) = (want[0], want[1].0);
    let want_hits = (0..r.cases)
        .filter(|i| generated(*i).name.to_ascii_lowercase().contains(SEARCH))
        .count();
    let query = CaseQuery::parse(COUNT_QUERY)?;

    // 1. The count.
    let times = time_count(&db, project.id, &query, &zone, r.repeats, want_count, "").await?;
    println!(
        "query count `{COUNT_QUERY}` over {} cases: {} matched ({:.1}%), {} uncomparable (as the Rust evaluator counts); {}",
        r.cases,
        want_count.0,
        100.0 * want_count.0 as f64 / r.cases as f64,
        want_count.1,
        summary(&times)
    );

    // 1b. The first page of matching cases.
    let filter = CaseFilter {
        query: Some(COUNT_QUERY.into()),
        time_zone: Some(zone.clone()),
        ..Default::default()
    };
    let ctx = Context {
        time_zone: zone.clone(),
        is_member: |_: &GroupRef| false,
    };
    let (times, next) = time_first_page(
        &db,
        project.id,
        &filter,
        &query,
        &ctx,
        r.repeats,
        want_count.0,
        "",
    )
    .await?;
    println!(
        "query first page of {PAGE} through list_cases (every case matching, next cursor {}): {}",
        next.as_deref().unwrap_or("none"),
        summary(&times)
    );

    // 5. The member search.
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..r.repeats {
        let watch = Stopwatch::start();
        let page = db
            .group_members(project.id, r.group_id, Some(SEARCH), PAGE, None)
            .await?;
        times.push(watch.secs() * 1000.0);
        found = page.items.len();
        if found != want_hits.min(PAGE) {
            bail!(
                "the member search {SEARCH:?} found {found}, not {} ({want_hits} names hold it)",
                want_hits.min(PAGE)
            );
        }
        if let Some(bad) = page
            .items
            .iter()
            .find(|c| !c.name.to_ascii_lowercase().contains(SEARCH))
        {
            bail!("the member search {SEARCH:?} found {:?}", bad.name);
        }
    }
    println!(
        "member search {SEARCH:?} in a group of {} members: {found} found on the first page ({want_hits} names hold it); {}",
        r.cases,
        summary(&times)
    );

    let mut times = Vec::new();
    for _ in 0..r.repeats {
        let watch = Stopwatch::start();
        let page = db
            .group_members(project.id, r.group_id, Some(SEARCH_NONE), PAGE, None)
            .await?;
        times.push(watch.secs() * 1000.0);
        if !page.items.is_empty() {
            bail!(
                "the member search {SEARCH_NONE:?} found {:?}",
                page.items[0].name
            );
        }
    }
    println!(
        "member search {SEARCH_NONE:?} (no name holds it) in the same group: nothing found; {}",
        summary(&times)
    );

    // 2. A smart group of about a quarter of the cases.
    let watch = Stopwatch::start();
    let group = smart_groups::create(
        &db,
        &SystemClock,
        &project,
        &GroupName::parse("Gulu")?,
        GULU_QUERY,
        ACTOR,
    )
    .await?;
    let (secs, cpu) = (watch.secs(), watch.cpu_secs());
    let members = db.get_group(project.id, group.id).await?.case_count;
    if members != want_gulu {
        bail!("the smart group `{GULU_QUERY}` has {members} members; the Rust evaluator matches {want_gulu}");
    }
    nothing_left_over(&db).await?;
    println!(
        "smart group `{GULU_QUERY}` created with {members} members (as the Rust evaluator counts) in {secs:.2} s (CPU {cpu:.2} s)",
    );

    // 3. The count and the first page again: saving the smart group indexed `district`.
    let when = " after the index";
    let times = time_count(&db, project.id, &query, &zone, r.repeats, want_count, when).await?;
    println!(
        "query count `{COUNT_QUERY}` with the `district` index the smart group made: {}",
        summary(&times)
    );
    let plan = db.count_plan(project.id, &query, &zone, false).await?;
    println!("  its plan: {}", plan.join(" / "));
    let (times, _) = time_first_page(
        &db,
        project.id,
        &filter,
        &query,
        &ctx,
        r.repeats,
        want_count.0,
        when,
    )
    .await?;
    println!(
        "query first page of {PAGE} with the `district` index: {}; read part peak RSS {:.0} MiB",
        summary(&times),
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// What the write child is told.
pub struct Write {
    pub project: String,
    /// A project without smart groups, for comparison.
    pub plain_project: String,
    pub cases: usize,
    pub writes: usize,
    pub rows: usize,
    pub files: Vec<PathBuf>,
}

/// The changes of write `k`: a district and age drawn afresh (often the case's own), and a
/// `write` property that differs every time (a write that changes nothing writes nothing).
fn change(k: usize) -> CaseChanges {
    let g = generated(k.wrapping_mul(7919) + 1);
    CaseChanges {
        properties: [
            (
                "district".to_string(),
                Some(g.properties["district"].clone()),
            ),
            ("age".to_string(), Some(g.properties["age"].clone())),
            ("write".to_string(), Some(format!("w{k}"))),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}

/// K single-case writes in the project, each followed by `evaluate_pending`; returns the
/// seconds each took and the cases `evaluate_pending` looked at in all.
async fn writes(
    db: &Db,
    project_id: i64,
    cases: usize,
    k: usize,
) -> anyhow::Result<(Vec<f64>, usize)> {
    let mut times = Vec::with_capacity(k);
    let mut looked_at = 0;
    for n in 0..k {
        // Spread over the project.
        let i = (n.wrapping_mul(104_729)) % cases;
        let id = case_id(i);
        let watch = Stopwatch::start();
        db.update_case(project_id, &id, &change(n)).await?;
        looked_at += reminders::evaluate_pending(db, &SystemClock).await?;
        times.push(watch.secs());
    }
    Ok((times, looked_at))
}

/// Times `count_matching` of `query` (`COUNT_QUERY`) `repeats` times, in milliseconds, each
/// count checked against `want` (matched, uncomparable) as the Rust evaluator counts.
async fn time_count(
    db: &Db,
    project_id: i64,
    query: &CaseQuery,
    zone: &jiff::tz::TimeZone,
    repeats: usize,
    want: (i64, i64),
    when: &str,
) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::new();
    for _ in 0..repeats {
        let watch = Stopwatch::start();
        let counts = db.count_matching(project_id, query, zone).await?;
        times.push(watch.secs() * 1000.0);
        if (counts.matched, counts.uncomparable) != want {
            bail!(
                "count_matching of {COUNT_QUERY}{when}: {} matched, {} uncomparable; the Rust evaluator says {} and {}",
                counts.matched,
                counts.uncomparable,
                want.0,
                want.1
            );
        }
    }
    Ok(times)
}

/// Times the first page of `filter`'s cases (`COUNT_QUERY`) `repeats` times, in milliseconds,
/// each page checked to hold `min(matched, PAGE)` cases that all match `query`; returns the
/// times and the page's next cursor.
#[allow(clippy::too_many_arguments)]
async fn time_first_page(
    db: &Db,
    project_id: i64,
    filter: &CaseFilter,
    query: &CaseQuery,
    ctx: &impl QueryContext,
    repeats: usize,
    matched: i64,
    when: &str,
) -> anyhow::Result<(Vec<f64>, Option<String>)> {
    let mut times = Vec::new();
    let mut next = None;
    let full = (matched as usize).min(PAGE);
    for _ in 0..repeats {
        let watch = Stopwatch::start();
        let page = db.list_cases(project_id, filter, PAGE, None).await?;
        times.push(watch.secs() * 1000.0);
        if page.items.len() != full {
            bail!(
                "the first page of {COUNT_QUERY}{when} holds {} cases, not {full}",
                page.items.len()
            );
        }
        if let Some(bad) = page.items.iter().find(|c| !query.matches(c, ctx)) {
            bail!(
                "the first page of {COUNT_QUERY}{when} holds {} ({:?}), which does not match",
                bad.case_id,
                bad.properties
            );
        }
        next = page.next_cursor;
    }
    Ok((times, next))
}

fn ms_per(times: &[f64]) -> (f64, f64) {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        1000.0 * times.iter().sum::<f64>() / times.len() as f64,
        1000.0 * sorted[sorted.len() / 2],
    )
}

/// The timed writes and imports, with 20 smart groups and without.
pub async fn run_write(bench: &Bench, w: Write) -> anyhow::Result<()> {
    let db = bench.open().await?;
    nothing_left_over(&db).await?;
    let project = db
        .project_by_slug(&w.project)
        .await
        .with_context(|| format!("project '{}'", w.project))?;
    let plain = db
        .project_by_slug(&w.plain_project)
        .await
        .with_context(|| format!("project '{}'", w.plain_project))?;
    if !db.smart_groups(plain.id).await?.is_empty() {
        bail!("the comparison project has smart groups");
    }
    let queries: Vec<&str> = OTHER_GROUPS.iter().map(|(_, q)| *q).collect();
    let want = expected(w.cases, &queries)?;

    // The 19 other smart groups.
    let watch = Stopwatch::start();
    let mut sizes = Vec::new();
    for ((name, query), (want, _)) in OTHER_GROUPS.iter().zip(&want) {
        let group = smart_groups::create(
            &db,
            &SystemClock,
            &project,
            &GroupName::parse(name)?,
            query,
            ACTOR,
        )
        .await?;
        let members = db.get_group(project.id, group.id).await?.case_count;
        if members != *want {
            bail!("the smart group `{query}` has {members} members; the Rust evaluator matches {want}");
        }
        sizes.push(members);
    }
    let secs = watch.secs();
    let smart = db.smart_groups(project.id).await?;
    if smart.len() != 20 {
        bail!("the project has {} smart groups, not 20", smart.len());
    }
    nothing_left_over(&db).await?;
    println!(
        "19 more smart groups created in {secs:.2} s ({:.2} s each; {} to {} members, as the Rust evaluator counts)",
        secs / 19.0,
        sizes.iter().min().unwrap_or(&0),
        sizes.iter().max().unwrap_or(&0)
    );

    // 3. Single-case writes, without smart groups and with 20.
    let (plain_times, plain_looked) = writes(&db, plain.id, w.cases, w.writes).await?;
    if plain_looked != 0 {
        bail!("writes in a project without smart groups or rules queued {plain_looked} cases");
    }
    let (times, looked) = writes(&db, project.id, w.cases, w.writes).await?;
    if looked != w.writes || db.has_pending_cases().await? {
        bail!(
            "{} writes: evaluate_pending looked at {looked} cases (cases still waiting: {})",
            w.writes,
            db.has_pending_cases().await?
        );
    }
    let (plain_mean, plain_median) = ms_per(&plain_times);
    let (mean, median) = ms_per(&times);
    println!(
        "single-case writes (update_case setting district, age and a write number, then evaluate_pending), {} each: with 20 smart groups {mean:.2} ms a write (median {median:.2}), without {plain_mean:.2} ms (median {plain_median:.2}): {:.2} ms extra per case",
        w.writes,
        mean - plain_mean
    );

    // 4. An import, without smart groups and with 20, then the upkeep.
    let (plain_secs, _) = import_files(&db, &plain.slug, &w.files, w.rows).await?;
    if db.has_pending_cases().await? {
        bail!("an import into a project without smart groups queued cases");
    }
    let (import_secs, _) = import_files(&db, &project.slug, &w.files, w.rows).await?;
    if !db.has_pending_cases().await? {
        bail!("the import queued no case for the smart groups");
    }
    let watch = Stopwatch::start();
    let looked_at = reminders::evaluate_pending(&db, &SystemClock).await?;
    let (upkeep, upkeep_cpu) = (watch.secs(), watch.cpu_secs());
    if looked_at != w.rows || db.has_pending_cases().await? {
        bail!(
            "evaluate_pending looked at {looked_at} cases after an import of {} (cases still waiting: {})",
            w.rows,
            db.has_pending_cases().await?
        );
    }
    println!(
        "import of {} cases into a project with 20 smart groups: {import_secs:.2} s ({:.0} rows/s; without smart groups {plain_secs:.2} s, {:.0} rows/s); evaluate_pending over them {upkeep:.2} s (CPU {upkeep_cpu:.2} s; every case looked at, the queue empty): import + upkeep {:.0} rows/s",
        w.rows,
        w.rows as f64 / import_secs,
        w.rows as f64 / plain_secs,
        w.rows as f64 / (import_secs + upkeep)
    );

    // Every smart group's members as its query says, after the writes and the import.
    let zone = project.zone();
    let watch = Stopwatch::start();
    for g in &smart {
        let query = CaseQuery::parse(&g.query)?;
        let counts = db.count_matching(project.id, &query, &zone).await?;
        let members = db.get_group(project.id, g.id).await?.case_count;
        if members != counts.matched {
            bail!(
                "the smart group {} (`{}`) has {members} members after the writes and the import; count_matching says {}",
                g.name,
                g.query,
                counts.matched
            );
        }
    }
    println!(
        "checked: the 20 smart groups' member counts equal count_matching of their queries after the writes and the import ({:.1} s); write part peak RSS {:.0} MiB",
        watch.secs(),
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}
