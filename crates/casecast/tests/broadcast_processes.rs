//! Three processes on PostgreSQL (`casecast serve` and two `casecast worker`) share a daily
//! broadcast (issue 5, acceptance): on one fake clock that runs four hours a second, through
//! five days across the spring daylight-saving change in Paris, with one worker killed with
//! SIGKILL and restarted on the way, every day fires exactly one occurrence, at 09:00 Paris
//! time, fanned out once.
//!
//! PostgreSQL only: several processes sharing one database is the PostgreSQL deployment (a
//! SQLite file is served by one process). The test's name ends in `::postgres`.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_testkit::Workflows;
use std::collections::HashSet;
use std::time::Duration;

use casecast_core::broadcast::Draft;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::time::{local_minute, now_ms, parse_rfc3339};
use casecast_core::{CountryCode, ProjectSlug, TimeZoneName};
use casecast_store::broadcasts::Occurrence;
use casecast_store::gateways::NewGateway;
use casecast_store::messages::MessageFilter;
use casecast_store::projects::{NewProject, Project};
use casecast_store::Db;
use casecast_testkit::cli::{Server, Worker};
use casecast_testkit::{eventually, seed, Dialect, TestDb};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_casecast");
/// Cases in the group: messages per occurrence.
const CASES: usize = 200;
/// Fake milliseconds per real one: a real second is four fake hours.
const SPEED: i64 = 4 * 3600;
const DAYS: usize = 5;
const WITHIN: Duration = Duration::from_secs(180);

mod three_processes_fire_each_day_of_a_daily_broadcast_once {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::three_processes_fire_each_day_of_a_daily_broadcast_once().await
    }
}

/// A Paris project with a log gateway and a group of [`CASES`] cases; returns the group id.
async fn setup(db: &Db) -> (Project, i64) {
    let project = db
        .create_project(&NewProject {
            slug: ProjectSlug::parse("paris").unwrap(),
            name: "Paris".into(),
            time_zone: TimeZoneName::parse("Europe/Paris").unwrap(),
            country: Some(CountryCode::parse("FR").unwrap()),
        })
        .await
        .unwrap();
    let mut csv = String::from("case_id,name,phone_number\n");
    let ids: Vec<String> = (0..CASES).map(|i| format!("p-{i:04}")).collect();
    for (i, id) in ids.iter().enumerate() {
        csv.push_str(&format!("{id},Personne {i},+3361234{i:04}\n"));
    }
    assert_eq!(seed::import_cases(db, &project, csv).await, CASES);
    let group = seed::group_of(db, project.id, "Cohorte", &ids).await;
    let gateway = NewGateway {
        name: "Log".into(),
        kind: GatewayKind::Log,
        config: json!({}),
        callback_base_url: "http://127.0.0.1:9".into(),
        max_segments_per_second: None,
        max_attempts: None,
        prefixes: vec![],
        is_default: true,
    };
    db.create_gateway(project.id, &gateway).await.unwrap();
    (db.project_by_id(project.id).await.unwrap(), group)
}

fn utc(s: &str) -> i64 {
    parse_rfc3339(s).unwrap()
}

/// The occurrences, first first.
async fn occurrences(db: &Db, project_id: i64, broadcast_id: i64) -> Vec<Occurrence> {
    let mut all = db
        .broadcast_occurrences(project_id, broadcast_id, 1000)
        .await
        .unwrap();
    all.reverse();
    all
}

async fn three_processes_fire_each_day_of_a_daily_broadcast_once() {
    let t = TestDb::new(Dialect::Postgres).await;
    let db = &t.db;
    let (project, group) = setup(db).await;
    // Daily at 09:00 from Friday 2027-03-26; Paris moves its clocks forward on Sunday the 28th.
    let draft = Draft::parse(&json!({
        "name": "Daily reminder",
        "recipients": {"case_groups": [group]},
        "content": {"sms": {"*": "Bonjour {case.name}, pensez au traitement"}},
        "schedule": {"kind": "daily", "start_date": "2027-03-26", "time": "09:00"},
    }))
    .unwrap();
    let broadcast = db.create_broadcast(&project, &draft, None).await.unwrap();
    let due: Vec<i64> = [
        "2027-03-26T08:00:00Z",
        "2027-03-27T08:00:00Z",
        "2027-03-28T07:00:00Z",
        "2027-03-29T07:00:00Z",
        "2027-03-30T07:00:00Z",
    ]
    .map(utc)
    .to_vec();
    assert_eq!(broadcast.next_run_at, Some(due[0]));

    // One fake clock for every process: it reads 01:00 in Paris on the 26th now.
    let anchor = now_ms();
    let start = utc("2027-03-26T00:00:00Z");
    let fake_now = move || start + (now_ms() - anchor) * SPEED;
    let clock = format!("{anchor}:{start}:{SPEED}");
    // A test-only flag, which `--help` does not show.
    let args = ["--test-clock", clock.as_str()];
    let _serve = Server::start(BIN, &t.url, &args).await;
    let mut first = Worker::start_with(BIN, &t.url, &args, &[]);
    let mut second = Worker::start_with(BIN, &t.url, &args, &[]);

    let (pid, bid) = (project.id, broadcast.id);
    eventually("the second day fired", WITHIN, || {
        first.check_alive();
        second.check_alive();
        async move { (occurrences(db, pid, bid).await.len() >= 2).then_some(()) }
    })
    .await;
    second.kill();
    let mut second = Worker::start_with(BIN, &t.url, &args, &[]);

    // Past the fifth day by more than a scheduler tick (one real second, four fake hours).
    let last = due[DAYS - 1];
    eventually("five days fired and fanned out", WITHIN, || {
        first.check_alive();
        second.check_alive();
        let past = fake_now() > last + 6 * 3_600_000;
        async move {
            let all = occurrences(db, pid, bid).await;
            let done = all.iter().take(DAYS).filter(|o| o.status == "done").count();
            (past && done == DAYS).then_some(())
        }
    })
    .await;

    let all = occurrences(db, pid, bid).await;
    let first_five: Vec<(i64, i64)> = (all.iter().take(DAYS))
        .map(|o| (o.index, o.due_at))
        .collect();
    let expected: Vec<(i64, i64)> = (1..).zip(due.iter().copied()).collect();
    assert_eq!(first_five, expected, "one occurrence per day, each once");
    for o in &all[DAYS..] {
        assert!(o.index > DAYS as i64 && o.due_at > last, "{o:?}");
    }
    let zone = project.zone();
    for o in all.iter().take(DAYS) {
        assert!(local_minute(o.due_at, &zone).ends_with(" 09:00"), "{o:?}");
        assert_eq!(
            (o.queued, o.status.as_str()),
            (CASES as i64, "done"),
            "{o:?}"
        );
        let filter = MessageFilter {
            occurrence_id: Some(o.id),
            ..Default::default()
        };
        let (messages, more) = db.list_messages(pid, &filter, 1000, None).await.unwrap();
        assert!(more.is_none());
        let phones: HashSet<&str> = messages.iter().map(|m| m.phone_number.as_str()).collect();
        assert_eq!((messages.len(), phones.len()), (CASES, CASES), "{o:?}");
    }
}
