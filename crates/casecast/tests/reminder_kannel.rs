//! Reminders from case data end to end through a real Kannel and its fake operator (issue 15,
//! acceptance), on both engines: a rule "2 days before `next_visit`, at 09:00 the case's time"
//! over five cases with different visit dates and zones (Africa/Kampala, Europe/London across
//! its spring change, America/Sao_Paulo, Pacific/Auckland across its autumn change, and none:
//! the project's Asia/Kolkata). A `casecast worker` on a fake clock that runs four hours a
//! second lives through ten days; mid-way, after the first reminder went, one case's visit is
//! moved a day later. Then:
//! - each case's occurrence is recorded once, due at the exact instant its local 09:00 falls
//!   on (the moved case's at its new date's, never at its old one), and queued no earlier;
//! - each case's number gets its own text from the operator once, and nothing else arrives.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use casecast_core::case::CaseChanges;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::reminder::ReminderRule;
use casecast_core::time::{now_ms, parse_rfc3339};
use casecast_core::{CountryCode, PhoneNumber, ProjectSlug, TimeZoneName};
use casecast_engine::clock::{Clock, ScaledClock};
use casecast_engine::reminders;
use casecast_store::gateways::NewGateway;
use casecast_store::messages::{Message, MessageFilter};
use casecast_store::projects::{NewProject, Project};
use casecast_store::Db;
use casecast_testkit::cli::Worker;
use casecast_testkit::kannel::{Kannel, LineKind};
use casecast_testkit::{eventually, on_both_engines, Dialect, TestDb};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_casecast");
const SENDER: &str = "1234";
const WITHIN: Duration = Duration::from_secs(300);
/// Fake milliseconds per real one: a real second is four fake hours, ten days a minute.
const SPEED: i64 = 4 * 3600;
/// Where the fake clock starts: two and a half days before the first reminder.
const START: &str = "2027-03-23T12:00:00Z";

on_both_engines!(each_case_gets_its_reminder_at_its_local_time_once);

/// A case of the test: its name, number, zone (`None`: the project's) and visit date.
struct Visit {
    name: &'static str,
    phone: &'static str,
    zone: Option<&'static str>,
    next_visit: &'static str,
    /// When its reminder is due: 09:00 two days before the visit, in its zone, as UTC.
    due: &'static str,
}

const VISITS: [Visit; 5] = [
    Visit {
        name: "Amina",
        phone: "+256772100001",
        zone: Some("Africa/Kampala"),
        next_visit: "2027-03-28",
        due: "2027-03-26T06:00:00Z",
    },
    Visit {
        name: "Beth",
        phone: "+256772100002",
        zone: Some("Europe/London"),
        // London moves to summer time on Sunday the 28th: 09:00 is 08:00 UTC on the 29th.
        next_visit: "2027-03-31",
        due: "2027-03-29T08:00:00Z",
    },
    Visit {
        name: "Carla",
        phone: "+256772100003",
        zone: Some("America/Sao_Paulo"),
        next_visit: "2027-03-29",
        due: "2027-03-27T12:00:00Z",
    },
    Visit {
        name: "Dara",
        phone: "+256772100004",
        zone: Some("Pacific/Auckland"),
        // Auckland leaves summer time at 03:00 on Sunday 4 April: 09:00 that day is UTC+12.
        next_visit: "2027-04-06",
        due: "2027-04-03T21:00:00Z",
    },
    Visit {
        name: "Esha",
        phone: "+256772100005",
        zone: None,
        // Moved mid-way to MOVED_VISIT, which is due at MOVED_DUE (Kolkata, UTC+5:30).
        next_visit: "2027-04-03",
        due: "2027-04-01T03:30:00Z",
    },
];
/// The visit moved (Esha's), its new date and when its reminder is then due.
const MOVED: usize = 4;
const MOVED_VISIT: &str = "2027-04-04";
const MOVED_DUE: &str = "2027-04-02T03:30:00Z";

fn utc(s: &str) -> i64 {
    parse_rfc3339(s).unwrap()
}

fn text(name: &str, visit: &str) -> String {
    format!("{name}: your visit is on {visit}.")
}

async fn project(db: &Db) -> Project {
    db.create_project(&NewProject {
        slug: ProjectSlug::parse("gulu").unwrap(),
        name: "Gulu".into(),
        time_zone: TimeZoneName::parse("Asia/Kolkata").unwrap(),
        country: Some(CountryCode::parse("UG").unwrap()),
    })
    .await
    .unwrap()
}

/// Kannel's count of MT messages handed to the operator and how many still wait, from the
/// `SMS: received … sent N (M queued)` line of bearerbox's status.
async fn kannel_sent(kannel: &Kannel) -> (usize, usize) {
    let status = kannel.status().await;
    let line = (status.lines())
        .find(|l| l.trim_start().starts_with("SMS: received"))
        .unwrap_or_else(|| panic!("no SMS line in {status}"));
    let sent = line.split("sent ").nth(1).unwrap();
    let (n, rest) = sent.split_once(" (").unwrap();
    let queued = rest.split_once(' ').unwrap().0;
    (n.trim().parse().unwrap(), queued.parse().unwrap())
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

/// The instants the rule's cases are due at next, soonest first.
async fn next_due(db: &Db, reminder_id: i64) -> Vec<i64> {
    (db.reminder_next_due(reminder_id, 100).await.unwrap().iter())
        .filter_map(|row| row.next_at)
        .collect()
}

async fn each_case_gets_its_reminder_at_its_local_time_once(engine: Dialect) {
    let test_db = TestDb::new(engine).await;
    let (t, db) = (&test_db, &test_db.db);
    let p = project(db).await;
    let kannel = Kannel::start("http://127.0.0.1:9/mo").await;
    let gateway = NewGateway {
        name: "Kannel".into(),
        kind: GatewayKind::Kannel,
        config: json!({"sendsms_url": kannel.sendsms_url, "username": kannel.username,
            "password": kannel.password, "from": SENDER}),
        callback_base_url: "http://127.0.0.1:9".into(),
        max_segments_per_second: None,
        max_attempts: None,
        prefixes: vec![],
        is_default: true,
    };
    db.create_gateway(p.id, &gateway).await.unwrap();
    let mut case_ids = Vec::new();
    for v in &VISITS {
        let mut properties =
            BTreeMap::from([("next_visit".to_string(), Some(v.next_visit.into()))]);
        if let Some(zone) = v.zone {
            properties.insert("time_zone".into(), Some(zone.into()));
        }
        let changes = CaseChanges {
            name: Some(v.name.into()),
            phone_number: Some(Some(PhoneNumber::parse(v.phone, None).unwrap())),
            properties,
            ..Default::default()
        };
        let case = db.create_case(p.id, None, &changes).await.unwrap();
        case_ids.push(case.case_id.as_str().to_string());
    }
    let rule = ReminderRule::parse_checked(&json!({
        "name": "Visit reminder", "case_type": "case", "query": "",
        "start": {"property": "next_visit", "offset_days": -2}, "time": "09:00",
        "content": {"sms": {"*": "{case.name}: your visit is on {case.next_visit}."}}
    }))
    .unwrap();
    let r = reminders::create(db, p.id, &rule, None).await.unwrap();

    // One fake clock for the worker and the test. The test evaluates the new rule's cases on it
    // (as any worker would), so that the cases match from the clock's start however long the
    // worker takes to start; the worker then does the rest: cases written, reminders due.
    let start = utc(START);
    let clock = ScaledClock {
        anchor_ms: now_ms(),
        start_ms: start,
        speed: SPEED as f64,
    };
    while reminders::evaluate_rules(db, &clock).await.unwrap() {}
    let stored = db.reminder(p.id, r.id).await.unwrap();
    assert!(stored.evaluated_at.is_some(), "{stored:?}");
    let first_due = VISITS.iter().map(|v| utc(v.due)).min().unwrap();
    assert!(
        clock.now_ms() < first_due,
        "the machine took more than {} fake hours to evaluate five cases",
        (first_due - start) / 3_600_000
    );
    let mut expected: Vec<i64> = VISITS.iter().map(|v| utc(v.due)).collect();
    expected.sort();
    assert_eq!(next_due(db, r.id).await, expected);

    let spec = format!("{}:{}:{SPEED}", clock.anchor_ms, clock.start_ms);
    let args = ["--test-clock", spec.as_str()];
    let mut worker = Worker::start_with(BIN, &t.url, &args, &[]);
    let (pid, rid) = (p.id, r.id);

    // Once the first reminder is recorded, Esha's visit moves a day later; the worker
    // moves her reminder (its old instant is still days ahead on the fake clock).
    let first = eventually("the first reminder recorded", WITHIN, || {
        worker.check_alive();
        async move { db.reminder_occurrences(rid, 10).await.unwrap().pop() }
    })
    .await;
    assert_eq!(first.case_name, VISITS[0].name, "{first:?}");
    let moved = &VISITS[MOVED];
    let changes = CaseChanges {
        properties: BTreeMap::from([("next_visit".to_string(), Some(MOVED_VISIT.into()))]),
        ..Default::default()
    };
    db.update_case(p.id, &case_ids[MOVED], &changes)
        .await
        .unwrap();
    assert!(
        clock.now_ms() < utc(moved.due),
        "the machine was too slow: the fake clock passed the old visit's reminder before the move"
    );
    eventually("the moved reminder rescheduled", WITHIN, || {
        worker.check_alive();
        async move {
            let due = next_due(db, rid).await;
            (due.contains(&utc(MOVED_DUE)) && !due.contains(&utc(moved.due))).then_some(())
        }
    })
    .await;

    // Past the last reminder by more than a tick: every case's occurrence recorded, its message
    // handed to Kannel, and Kannel's queue drained to the operator.
    let last = utc(MOVED_DUE).max(expected[VISITS.len() - 1]);
    let records = eventually("every reminder recorded and sent", WITHIN, || {
        worker.check_alive();
        let past = clock.now_ms() > last + 12 * 3_600_000;
        async move {
            let records = db.reminder_occurrences(rid, 100).await.unwrap();
            let messages = reminder_messages(db, pid, rid).await;
            let sent = messages.iter().all(|m| m.status.as_str() == "sent");
            (past && records.len() >= VISITS.len() && messages.len() >= VISITS.len() && sent)
                .then_some(records)
        }
    })
    .await;
    eventually("Kannel's queue drained to the operator", WITHIN, || async {
        (kannel_sent(&kannel).await == (kannel.received().len(), 0)).then_some(())
    })
    .await;
    worker.check_alive();

    // Each case's occurrence once, due at its exact instant, queued.
    let mut by_case: BTreeMap<&str, Vec<(i64, i64, &str)>> = BTreeMap::new();
    for o in &records {
        (by_case.entry(o.case_name.as_str()).or_default()).push((
            o.occurrence,
            o.due_at,
            o.outcome.as_str(),
        ));
        assert!(
            o.recorded_at >= o.due_at,
            "recorded before it was due: {o:?}"
        );
        eprintln!(
            "{}: recorded {:.1} fake hours after its instant",
            o.case_name,
            (o.recorded_at - o.due_at) as f64 / 3_600_000.0
        );
    }
    for (i, v) in VISITS.iter().enumerate() {
        let due = if i == MOVED { MOVED_DUE } else { v.due };
        assert_eq!(
            by_case.remove(v.name).unwrap_or_default(),
            [(1, utc(due), "queued")],
            "{}",
            v.name
        );
    }
    assert!(by_case.is_empty(), "{by_case:?}");

    // Each case's message once, with its text, queued no earlier than its instant.
    let messages = reminder_messages(db, pid, rid).await;
    assert_eq!(messages.len(), VISITS.len(), "{messages:#?}");
    for (i, v) in VISITS.iter().enumerate() {
        let (visit, due) = if i == MOVED {
            (MOVED_VISIT, MOVED_DUE)
        } else {
            (v.next_visit, v.due)
        };
        let mine: Vec<_> = (messages.iter())
            .filter(|m| m.case_id.as_deref() == Some(case_ids[i].as_str()))
            .collect();
        assert_eq!(mine.len(), 1, "{}: {messages:#?}", v.name);
        assert_eq!(
            (mine[0].phone_number.as_str(), mine[0].text.clone()),
            (v.phone, text(v.name, visit))
        );
        assert!(
            clock.at(mine[0].created_at) >= utc(due),
            "{}'s message was queued before its instant: {:?}",
            v.name,
            mine[0]
        );
    }

    // The operator got each number's text once, and nothing else.
    let got = kannel.received();
    let mut arrivals: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for mt in &got {
        assert_eq!(
            (mt.kind, mt.sender.as_str()),
            (LineKind::Text, SENDER),
            "{mt:?}"
        );
        (arrivals.entry(mt.receiver.as_str()).or_default()).push(mt.text.as_str());
    }
    for (i, v) in VISITS.iter().enumerate() {
        let visit = if i == MOVED {
            MOVED_VISIT
        } else {
            v.next_visit
        };
        let texts = arrivals.remove(v.phone).unwrap_or_default();
        assert_eq!(texts, [text(v.name, visit).as_str()], "{}", v.name);
    }
    assert!(arrivals.is_empty(), "{arrivals:?}");
    assert_eq!(got.len(), VISITS.len());
    worker.check_alive();
}
