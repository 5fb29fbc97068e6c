//! kill -9 of `casecast worker` while it fans out a broadcast to 100,000 cases, then a restart
//! (issue 5, acceptance), on both engines: the new worker takes the job over once the dead
//! one's lease runs out (30 s) and the occurrence ends with exactly 100,000 messages in the
//! outbox, one per number, each with its case's own text.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_testkit::Workflows;
use std::collections::HashSet;
use std::time::Duration;

use casecast_core::broadcast::Draft;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::{CountryCode, ProjectSlug, TimeZoneName};
use casecast_store::gateways::NewGateway;
use casecast_store::messages::{Message, MessageFilter};
use casecast_store::projects::{NewProject, Project};
use casecast_store::Db;
use casecast_testkit::cli::Worker;
use casecast_testkit::{eventually, on_both_engines, seed, Dialect, TestDb};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_casecast");
const CASES: usize = 100_000;
/// The fan-out batch after which the first worker is held, then killed.
const HELD_AFTER: i64 = 3;
/// How long the restarted worker may take: the dead one's lease (30 s), then the rest.
const RESUME_WITHIN: Duration = Duration::from_secs(300);

on_both_engines!(a_fan_out_killed_half_way_ends_with_each_message_once);

fn phone(i: usize) -> String {
    format!("+25677{i:07}")
}

/// The text case `i` gets: Swahili for every third case, else the default.
fn text(i: usize) -> String {
    if i.is_multiple_of(3) {
        format!("Habari Person {i}, kliniki ya D{} iko wazi", i % 40)
    } else {
        format!("Dear Person {i}, the D{} clinic is open", i % 40)
    }
}

/// A project with a log gateway and a group of [`CASES`] cases; returns it and the group id.
async fn setup(db: &Db) -> (Project, i64) {
    let project = db
        .create_project(&NewProject {
            slug: ProjectSlug::parse("gulu").unwrap(),
            name: "Gulu".into(),
            time_zone: TimeZoneName::parse("Africa/Kampala").unwrap(),
            country: Some(CountryCode::parse("UG").unwrap()),
        })
        .await
        .unwrap();
    let mut csv = String::from("case_id,name,phone_number,language_code,district\n");
    let mut ids = Vec::with_capacity(CASES);
    for i in 0..CASES {
        let language = if i.is_multiple_of(3) { "sw" } else { "" };
        let id = format!("k-{i:06}");
        let (p, d) = (phone(i), i % 40);
        csv.push_str(&format!("{id},Person {i},{p},{language},D{d}\n"));
        ids.push(id);
    }
    assert_eq!(seed::import_cases(db, &project, csv).await, CASES);
    let group = seed::group_of(db, project.id, "Everyone", &ids).await;
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

/// Every message of the occurrence.
async fn messages(db: &Db, project_id: i64, occurrence_id: i64) -> Vec<Message> {
    let filter = MessageFilter {
        occurrence_id: Some(occurrence_id),
        ..Default::default()
    };
    let (mut all, mut cursor) = (Vec::new(), None);
    loop {
        let (page, next) = db
            .list_messages(project_id, &filter, 5000, cursor)
            .await
            .unwrap();
        all.extend(page);
        match next {
            Some(n) => cursor = Some(n),
            None => return all,
        }
    }
}

async fn a_fan_out_killed_half_way_ends_with_each_message_once(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (project, group) = setup(db).await;
    let draft = Draft::parse(&json!({
        "name": "Clinic open",
        "recipients": {"case_groups": [group]},
        "content": {"sms": {
            "*": "Dear {case.name}, the {case.district} clinic is open",
            "sw": "Habari {case.name}, kliniki ya {case.district} iko wazi",
        }},
    }))
    .unwrap();
    // No worker runs yet: the occurrence fires here and its fan-out job waits.
    let broadcast = db.create_broadcast(&project, &draft, None).await.unwrap();
    let occurrence = db
        .broadcast_occurrences(project.id, broadcast.id, 1)
        .await
        .unwrap()
        .remove(0)
        .id;

    // The worker holds right after its third batch (5,000 recipients each) is committed, and
    // is killed there: the same point on a fast machine and a slow one.
    let mut worker = Worker::start_with(
        BIN,
        &t.url,
        &["--test-fault", &format!("fanout-batch={HELD_AFTER}")],
        &[],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !worker
        .stderr()
        .contains("held at fault point fanout-batch=")
    {
        worker.check_alive();
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never reached its fault point"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.kill();
    let left = db.occurrence(project.id, occurrence).await.unwrap();
    assert_eq!(left.status, "fanning_out", "{left:?}");
    assert_eq!(left.queued, HELD_AFTER * 5000, "{left:?}");
    let written: i64 = left.counts.values().sum();
    assert_eq!(written, left.queued, "the tallies match the rows written");
    eprintln!("{engine:?}: worker killed with {written} of {CASES} messages written");

    let mut restarted = Worker::start(BIN, &t.url, &[]);
    let project_id = project.id;
    let done = eventually("the new worker finished the fan-out", RESUME_WITHIN, || {
        restarted.check_alive();
        async move {
            let o = db.occurrence(project_id, occurrence).await.unwrap();
            (o.status != "fanning_out").then_some(o)
        }
    })
    .await;
    assert_eq!(
        (done.status.as_str(), done.queued),
        ("done", CASES as i64),
        "{done:?}"
    );
    assert_eq!(done.excluded, Default::default(), "{done:?}");
    assert_eq!(done.counts.values().sum::<i64>(), CASES as i64, "{done:?}");

    let all = messages(db, project.id, occurrence).await;
    assert_eq!(
        all.len(),
        CASES,
        "exactly one message per case in the outbox"
    );
    let phones: HashSet<&str> = all.iter().map(|m| m.phone_number.as_str()).collect();
    assert_eq!(phones.len(), CASES, "a number got two messages");
    let cases: HashSet<&str> = all.iter().filter_map(|m| m.case_id.as_deref()).collect();
    assert_eq!(cases.len(), CASES, "a case got two messages");
    for m in &all {
        let i: usize = m.case_id.as_deref().unwrap()[2..].parse().unwrap();
        assert_eq!(
            (m.phone_number.as_str(), m.text.as_str()),
            (phone(i).as_str(), text(i).as_str())
        );
        assert_eq!(m.broadcast_id, Some(broadcast.id));
    }
}
