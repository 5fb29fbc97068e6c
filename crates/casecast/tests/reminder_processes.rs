//! Three `casecast worker` processes on one PostgreSQL database share a reminder rule (issue
//! 15, exactly once): "2 days before `next_visit` at 09:00, then every day, 3 times" over 300
//! cases whose visits fall on four days, so that up to three quarters of the cases are due at
//! the same instant. On one fake clock that runs four hours a second the workers live through
//! the eight days, each firing pages of the due rows the others have not taken. In the end every (case, occurrence) has exactly one record,
//! due at its instant, and exactly one message, and the operator got each message once.
//!
//! PostgreSQL only: several processes sharing one database is the PostgreSQL deployment (a
//! SQLite file is served by one process). The test's name ends in `::postgres`.
//!
//! And a crash between recording occurrences and queueing their messages, on both engines: a
//! worker held at the fault point `reminder-batch=2` (inside the transaction of the second page
//! of due occurrences it fires: the occurrences recorded and their messages queued, not
//! committed) is killed with SIGKILL. The first page (every case's first occurrence) stays, sent
//! once; nothing of the second shows, no record and no message; another worker (on PostgreSQL
//! running meanwhile, its page skipping the held rows; on SQLite started after the kill) sends
//! each second occurrence once.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use casecast_core::gateway::config::GatewayKind;
use casecast_core::reminder::ReminderRule;
use casecast_core::time::{now_ms, parse_rfc3339};
use casecast_core::{CountryCode, ProjectSlug, TimeZoneName};
use casecast_engine::clock::{Clock, ScaledClock};
use casecast_engine::reminders;
use casecast_store::gateways::NewGateway;
use casecast_store::messages::{Message, MessageFilter};
use casecast_store::projects::{NewProject, Project};
use casecast_store::Db;
use casecast_testkit::capture::Capture;
use casecast_testkit::cli::Worker;
use casecast_testkit::kannel::url_decode;
use casecast_testkit::{eventually, on_both_engines, seed, Dialect, TestDb};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_casecast");
const CASES: usize = 300;
/// Days the visits fall on, and occurrences a case gets.
const VISIT_DAYS: usize = 4;
const TIMES: usize = 3;
/// Fake milliseconds per real one: a real second is four fake hours.
const SPEED: i64 = 4 * 3600;
/// Where the fake clock starts: 54 fake hours before the first reminder.
const START: &str = "2027-03-01T00:00:00Z";
const SENDSMS: &str = "/cgi-bin/sendsms";
const WITHIN: Duration = Duration::from_secs(300);

mod three_workers_send_each_occurrence_of_a_repeating_rule_once {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::three_workers_send_each_occurrence_of_a_repeating_rule_once().await
    }
}

on_both_engines!(a_worker_killed_inside_a_page_of_reminders_leaves_it_to_be_sent_once);

fn case_id(i: usize) -> String {
    format!("r-{i:04}")
}

fn name(i: usize) -> String {
    format!("Person {i}")
}

fn phone(i: usize) -> String {
    format!("+2567722{i:05}")
}

/// Case `i`'s visit: 5 to 8 March.
fn visit_day(i: usize) -> usize {
    5 + i % VISIT_DAYS
}

fn visit(i: usize) -> String {
    format!("2027-03-{:02}", visit_day(i))
}

/// When case `i`'s occurrence `k` (from 1) is due: 09:00 in Kampala (UTC+3), two days before
/// the visit, then each day.
fn due(i: usize, k: usize) -> i64 {
    let day = visit_day(i) - 2 + (k - 1);
    parse_rfc3339(&format!("2027-03-{day:02}T06:00:00Z")).unwrap()
}

fn text(i: usize) -> String {
    text_on(i, &visit(i))
}

fn text_on(i: usize, visit: &str) -> String {
    format!("{}: your visit is on {visit}.", name(i))
}

/// The messages rule `reminder_id` queued, oldest first.
async fn reminder_messages(db: &Db, project_id: i64, reminder_id: i64) -> Vec<Message> {
    let filter = MessageFilter {
        reminder_id: Some(reminder_id),
        ..Default::default()
    };
    let (mut all, more) = db
        .list_messages(project_id, &filter, 10_000, None)
        .await
        .unwrap();
    assert!(more.is_none());
    all.sort_by_key(|m| m.id);
    all
}

/// One query parameter of a raw query string, decoded.
fn param(query: &str, name: &str) -> String {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {query}"));
    String::from_utf8(url_decode(raw)).unwrap()
}

/// A Kampala project whose Kannel gateway's sendsms is `sendsms`, with `cases` cases, case
/// `i`'s visit on `visit(i)`.
async fn setup(t: &TestDb, sendsms: &Capture, cases: usize, visit: fn(usize) -> String) -> Project {
    let db = &t.db;
    let p = db
        .create_project(&NewProject {
            slug: ProjectSlug::parse("gulu").unwrap(),
            name: "Gulu".into(),
            time_zone: TimeZoneName::parse("Africa/Kampala").unwrap(),
            country: Some(CountryCode::parse("UG").unwrap()),
        })
        .await
        .unwrap();
    let gateway = NewGateway {
        name: "Kannel".into(),
        kind: GatewayKind::Kannel,
        config: json!({"sendsms_url": format!("{}{SENDSMS}", sendsms.base),
            "username": "u", "password": "p", "from": "1234"}),
        callback_base_url: "http://127.0.0.1:9".into(),
        max_segments_per_second: None,
        max_attempts: None,
        prefixes: vec![],
        is_default: true,
    };
    db.create_gateway(p.id, &gateway).await.unwrap();
    let mut csv = String::from("case_id,name,phone_number,next_visit\n");
    for i in 0..cases {
        csv.push_str(&format!(
            "{},{},{},{}\n",
            case_id(i),
            name(i),
            phone(i),
            visit(i)
        ));
    }
    assert_eq!(seed::import_cases(db, &p, csv).await, cases);
    p
}

/// The rule: two days before the visit at 09:00, then every day, `times` times.
fn rule(times: usize) -> ReminderRule {
    ReminderRule::parse_checked(&json!({
        "name": "Visit reminder", "case_type": "case", "query": "",
        "start": {"property": "next_visit", "offset_days": -2}, "time": "09:00",
        "repeat": {"every_days": 1, "times": times},
        "content": {"sms": {"*": "{case.name}: your visit is on {case.next_visit}."}}
    }))
    .unwrap()
}

/// A fake clock that reads `start` now and runs `speed` times faster, and its `--test-clock`.
fn clock(start: &str, speed: i64) -> (ScaledClock, String) {
    let clock = ScaledClock {
        anchor_ms: now_ms(),
        start_ms: parse_rfc3339(start).unwrap(),
        speed: speed as f64,
    };
    let spec = format!("{}:{}:{speed}", clock.anchor_ms, clock.start_ms);
    (clock, spec)
}

async fn three_workers_send_each_occurrence_of_a_repeating_rule_once() {
    let test_db = TestDb::new(Dialect::Postgres).await;
    let (t, db) = (&test_db, &test_db.db);
    let sendsms = Capture::start();
    let p = setup(t, &sendsms, CASES, visit).await;
    let r = reminders::create(db, p.id, &rule(TIMES), None)
        .await
        .unwrap();

    // One fake clock for every process. The test evaluates the rule's cases on it first (as a
    // worker would), so that they match from the clock's start however long the workers take
    // to start.
    let (clock, spec) = clock(START, SPEED);
    while reminders::evaluate_rules(db, &clock).await.unwrap() {}
    let first_due = (0..CASES).map(|i| due(i, 1)).min().unwrap();
    assert!(
        clock.now_ms() < first_due,
        "the machine took more than 54 fake hours to evaluate {CASES} cases"
    );
    let scheduled = db.reminder_counts(r.id).await.unwrap().states;
    assert_eq!(
        scheduled.get("scheduled"),
        Some(&(CASES as i64)),
        "{scheduled:?}"
    );

    let args = ["--test-clock", spec.as_str()];
    let mut workers: Vec<Worker> = (0..3)
        .map(|_| Worker::start_with(BIN, &t.url, &args, &[]))
        .collect();

    // Past the last occurrence by more than a tick: everything recorded and sent.
    let last = (0..CASES).map(|i| due(i, TIMES)).max().unwrap();
    let all = CASES * TIMES;
    let (pid, rid) = (p.id, r.id);
    let records = eventually("every occurrence recorded and sent", WITHIN, || {
        workers.iter_mut().for_each(Worker::check_alive);
        let past = clock.now_ms() > last + 12 * 3_600_000;
        async move {
            let records = db.reminder_occurrences(rid, 10 * all).await.unwrap();
            let messages = reminder_messages(db, pid, rid).await;
            let sent = messages.iter().all(|m| m.status.as_str() == "sent");
            (past && records.len() >= all && messages.len() >= all && sent).then_some(records)
        }
    })
    .await;
    let got = sendsms.wait_for(SENDSMS, all).await;
    workers.iter_mut().for_each(Worker::check_alive);

    // Exactly one record per (case, occurrence), due at its instant, queued.
    assert_eq!(records.len(), all);
    let mut recorded: BTreeMap<(String, i64), Vec<(i64, &str)>> = BTreeMap::new();
    for o in &records {
        (recorded
            .entry((o.case_id.clone(), o.occurrence))
            .or_default())
        .push((o.due_at, o.outcome.as_str()));
    }
    let mut late = 0;
    for i in 0..CASES {
        for k in 1..=TIMES {
            let key = (case_id(i), k as i64);
            let found = recorded.remove(&key).unwrap_or_default();
            assert_eq!(found, [(due(i, k), "queued")], "{key:?}");
        }
    }
    assert!(recorded.is_empty(), "{recorded:?}");
    for o in &records {
        assert!(o.recorded_at >= o.due_at, "{o:?}");
        late = late.max(o.recorded_at - o.due_at);
    }
    eprintln!(
        "the latest occurrence was recorded {:.1} fake hours after its instant",
        late as f64 / 3_600_000.0
    );

    // Exactly one message per (case, occurrence): three per case, each queued once.
    let messages = reminder_messages(db, pid, rid).await;
    assert_eq!(messages.len(), all);
    let mut per_case: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for m in &messages {
        (per_case.entry(m.case_id.clone().unwrap()).or_default())
            .push((m.phone_number.clone(), m.text.clone()));
    }
    for i in 0..CASES {
        let expected = vec![(phone(i), text(i)); TIMES];
        assert_eq!(per_case.remove(&case_id(i)), Some(expected), "case {i}");
    }
    assert!(per_case.is_empty(), "{per_case:?}");

    // And the operator got each once.
    assert_eq!(got.len(), all);
    let mut per_number: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for q in &got {
        per_number
            .entry(param(q, "to"))
            .or_default()
            .push(param(q, "text"));
    }
    for i in 0..CASES {
        let texts = per_number.remove(&phone(i)).unwrap_or_default();
        assert_eq!(texts, vec![text(i); TIMES], "case {i}");
    }
    assert!(per_number.is_empty(), "{per_number:?}");
}

/// Cases of the crash test, all with their visit on one day.
const KILL_CASES: usize = 12;
const KILL_VISIT: &str = "2027-03-05";
/// The crash test's clock: an hour a second, from six fake hours before the first occurrence;
/// the second comes a day (24 real seconds) after the first.
const KILL_START: &str = "2027-03-03T00:00:00Z";
const KILL_SPEED: i64 = 3600;
const HELD: &str = "held at fault point reminder-batch=2";

async fn a_worker_killed_inside_a_page_of_reminders_leaves_it_to_be_sent_once(engine: Dialect) {
    let test_db = TestDb::new(engine).await;
    let (t, db) = (&test_db, &test_db.db);
    let sendsms = Capture::start();
    let p = setup(t, &sendsms, KILL_CASES, |_| KILL_VISIT.to_string()).await;
    let r = reminders::create(db, p.id, &rule(2), None).await.unwrap();
    // Occurrence k at 09:00 in Kampala on 3 and 4 March.
    let due_at = |k: i64| parse_rfc3339(&format!("2027-03-0{}T06:00:00Z", 2 + k)).unwrap();
    let (clock, spec) = clock(KILL_START, KILL_SPEED);
    while reminders::evaluate_rules(db, &clock).await.unwrap() {}
    assert!(
        clock.now_ms() < due_at(1),
        "the machine took more than 6 fake hours to evaluate {KILL_CASES} cases"
    );
    let (pid, rid) = (p.id, r.id);

    // The worker fires the first occurrences in its first page and holds inside its second.
    let held_args = [
        "--test-clock",
        spec.as_str(),
        "--test-fault",
        "reminder-batch=2",
    ];
    let mut held = Worker::start_with(BIN, &t.url, &held_args, &[]);
    eventually("the worker held at its fault point", WITHIN, || {
        held.check_alive();
        let stderr = held.stderr();
        async move { stderr.contains(HELD).then_some(()) }
    })
    .await;
    // The first page committed, its messages sent once; nothing of the second shows.
    let first_page = || async {
        let records = db.reminder_occurrences(rid, 100).await.unwrap();
        let mut found: Vec<(String, i64, i64, String)> = (records.iter())
            .map(|o| (o.case_id.clone(), o.occurrence, o.due_at, o.outcome.clone()))
            .collect();
        found.sort();
        let expected: Vec<(String, i64, i64, String)> = (0..KILL_CASES)
            .map(|i| (case_id(i), 1, due_at(1), "queued".to_string()))
            .collect();
        assert_eq!(found, expected, "only the first page's records");
        let messages = reminder_messages(db, pid, rid).await;
        let mut texts: Vec<(Option<String>, String, String)> = (messages.iter())
            .map(|m| (m.case_id.clone(), m.phone_number.clone(), m.text.clone()))
            .collect();
        texts.sort();
        let expected: Vec<(Option<String>, String, String)> = (0..KILL_CASES)
            .map(|i| (Some(case_id(i)), phone(i), text_on(i, KILL_VISIT)))
            .collect();
        assert_eq!(texts, expected, "only the first page's messages");
        messages
    };
    first_page().await;
    eventually("the first page's messages sent", WITHIN, || async {
        let messages = reminder_messages(db, pid, rid).await;
        messages
            .iter()
            .all(|m| m.status.as_str() == "sent")
            .then_some(())
    })
    .await;
    sendsms.wait_for(SENDSMS, KILL_CASES).await;

    // On PostgreSQL another worker runs meanwhile: its pages skip the held rows until the kill,
    // then take them. On SQLite the held write transaction would keep every other writer
    // waiting: a new worker starts after the kill.
    let args = ["--test-clock", spec.as_str()];
    let other = (engine == Dialect::Postgres).then(|| Worker::start_with(BIN, &t.url, &args, &[]));
    first_page().await;
    held.kill();
    let mut worker = match other {
        Some(w) => w,
        None => {
            first_page().await;
            Worker::start_with(BIN, &t.url, &args, &[])
        }
    };
    let all = 2 * KILL_CASES;
    let records = eventually("the second page fired again and sent", WITHIN, || {
        worker.check_alive();
        async move {
            let records = db.reminder_occurrences(rid, 100).await.unwrap();
            let messages = reminder_messages(db, pid, rid).await;
            let sent = messages.iter().all(|m| m.status.as_str() == "sent");
            (records.len() >= all && messages.len() >= all && sent).then_some(records)
        }
    })
    .await;

    // Each (case, occurrence) recorded once, each message queued once and sent once.
    let mut found: Vec<(String, i64, i64, String)> = (records.iter())
        .map(|o| (o.case_id.clone(), o.occurrence, o.due_at, o.outcome.clone()))
        .collect();
    found.sort();
    let expected: Vec<(String, i64, i64, String)> = (0..KILL_CASES)
        .flat_map(|i| [1, 2].map(|k| (case_id(i), k, due_at(k), "queued".to_string())))
        .collect();
    assert_eq!(found, expected);
    let messages = reminder_messages(db, pid, rid).await;
    let mut per_case: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for m in &messages {
        (per_case.entry(m.case_id.clone().unwrap()).or_default())
            .push((m.phone_number.clone(), m.text.clone()));
    }
    for i in 0..KILL_CASES {
        let expected = vec![(phone(i), text_on(i, KILL_VISIT)); 2];
        assert_eq!(per_case.remove(&case_id(i)), Some(expected), "case {i}");
    }
    assert!(per_case.is_empty(), "{per_case:?}");
    let got = sendsms.wait_for(SENDSMS, all).await;
    let mut per_number: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for q in &got {
        per_number
            .entry(param(q, "to"))
            .or_default()
            .push(param(q, "text"));
    }
    for i in 0..KILL_CASES {
        let texts = per_number.remove(&phone(i)).unwrap_or_default();
        assert_eq!(texts, vec![text_on(i, KILL_VISIT); 2], "case {i}");
    }
    assert!(per_number.is_empty(), "{per_number:?}");
    assert_eq!(got.len(), all);
    worker.check_alive();
}
