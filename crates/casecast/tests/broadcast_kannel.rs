//! A broadcast end to end through a real Kannel and its fake operator (issue 5, acceptance), on
//! both engines: a group of 1,000 cases in two languages, some opted out, some without a phone,
//! some closed, some sharing a number; every eligible case's number receives its own rendered
//! text in its own language exactly once, nothing reaches the excluded, both delivery reports
//! end every message `delivered`, and the excluded are counted by reason.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_testkit::Workflows;
use std::collections::HashMap;
use std::time::Duration;

use casecast_core::broadcast::Draft;
use casecast_core::gateway::config::GatewayKind;
use casecast_store::broadcasts::Excluded;
use casecast_store::gateways::NewGateway;
use casecast_testkit::kannel::{Kannel, LineKind};
use casecast_testkit::{eventually, on_both_engines, seed, Dialect, TestApp};
use serde_json::json;

const CASES: usize = 1000;
const SENDER: &str = "1234";
const WITHIN: Duration = Duration::from_secs(180);

on_both_engines!(every_eligible_case_gets_its_own_text_once);

/// Why case `i` gets no message of its own, if it gets none.
fn excluded(i: usize) -> Option<&'static str> {
    match i % 10 {
        3 => Some("no_phone"),
        7 => Some("opted_out"),
        9 if i % 50 == 9 => Some("duplicate_phone"),
        5 if i % 100 == 5 => Some("closed"),
        _ => None,
    }
}

/// Case `i`'s number: a case marked as a duplicate shares the number of the case before it.
fn phone(i: usize) -> String {
    let n = if excluded(i) == Some("duplicate_phone") {
        i - 1
    } else {
        i
    };
    format!("+2567720{n:05}")
}

/// What case `i` should receive: even cases speak Swahili (`sw`, or `sw-TZ` for every fourth),
/// the others get the default text.
fn text(i: usize) -> String {
    let clinic = format!("Clinic {}", i % 7);
    if i.is_multiple_of(2) {
        format!("Habari Person {i}, dawa zako ziko tayari {clinic}")
    } else {
        format!("Hello Person {i}, your medicine is ready at {clinic}")
    }
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

async fn every_eligible_case_gets_its_own_text_once(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (db, project) = (&app.db, &app.alpha);
    let kannel = Kannel::start("http://127.0.0.1:9/mo").await;
    let gateway = NewGateway {
        name: "Kannel".into(),
        kind: GatewayKind::Kannel,
        config: json!({"sendsms_url": kannel.sendsms_url, "username": kannel.username,
            "password": kannel.password, "from": SENDER}),
        callback_base_url: app.base.clone(),
        max_segments_per_second: None,
        max_attempts: None,
        prefixes: vec![],
        is_default: true,
    };
    db.create_gateway(project.id, &gateway).await.unwrap();

    let mut csv = String::from("case_id,name,phone_number,language_code,clinic,closed\n");
    let ids: Vec<String> = (0..CASES).map(|i| format!("b-{i:04}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let number = if excluded(i) == Some("no_phone") {
            String::new()
        } else {
            phone(i)
        };
        let language = match i % 4 {
            0 => "sw",
            2 => "sw-TZ",
            1 => "en",
            _ => "",
        };
        let closed = excluded(i) == Some("closed");
        let clinic = i % 7;
        csv.push_str(&format!(
            "{id},Person {i},{number},{language},Clinic {clinic},{closed}\n"
        ));
    }
    assert_eq!(seed::import_cases(db, project, csv).await, CASES);
    let group = seed::group_of(db, project.id, "Patients", &ids).await;
    for i in (0..CASES).filter(|i| excluded(*i) == Some("opted_out")) {
        db.add_opt_out(project.id, &phone(i), "api").await.unwrap();
    }

    let draft = Draft::parse(&json!({
        "name": "Medicine ready",
        "recipients": {"case_groups": [group]},
        "content": {"sms": {
            "*": "Hello {case.name}, your medicine is ready at {case.clinic}",
            "sw": "Habari {case.name}, dawa zako ziko tayari {case.clinic}",
        }},
    }))
    .unwrap();
    let project = db.project_by_id(project.id).await.unwrap();
    let preview = db.preview_broadcast(&project, &draft).await.unwrap();
    let broadcast = db.create_broadcast(&project, &draft, None).await.unwrap();

    let eligible: Vec<usize> = (0..CASES).filter(|i| excluded(*i).is_none()).collect();
    let (pid, bid, n) = (project.id, broadcast.id, eligible.len() as i64);
    let done = eventually("every message delivered", WITHIN, || async move {
        let b = db.broadcast(pid, bid).await.unwrap();
        (b.counts["delivered"] == n).then_some(b)
    })
    .await;
    // Everything Kannel took has reached the operator (a duplicate would show here too).
    eventually("Kannel's queue drained to the operator", WITHIN, || async {
        (kannel_sent(&kannel).await == (kannel.received().len(), 0)).then_some(())
    })
    .await;

    let got = kannel.received();
    let mut arrivals: HashMap<&str, Vec<&str>> = HashMap::new();
    for mt in &got {
        assert_eq!(
            (mt.kind, mt.sender.as_str()),
            (LineKind::Text, SENDER),
            "{mt:?}"
        );
        (arrivals.entry(mt.receiver.as_str()).or_default()).push(mt.text.as_str());
    }
    for &i in &eligible {
        let number = phone(i);
        let texts = arrivals.remove(number.as_str()).unwrap_or_default();
        assert_eq!(texts, [text(i).as_str()], "case {i} at {number}");
    }
    assert!(arrivals.is_empty(), "sent to the excluded: {arrivals:?}");
    assert_eq!(got.len(), eligible.len());

    let count = |reason: &str| (0..CASES).filter(|i| excluded(*i) == Some(reason)).count() as i64;
    let expected = Excluded {
        no_phone: count("no_phone"),
        opted_out: count("opted_out"),
        closed: count("closed"),
        deleted: 0,
        duplicate_phone: count("duplicate_phone"),
        no_gateway: 0,
    };
    assert_eq!((expected.no_phone, expected.opted_out), (100, 100));
    assert_eq!((expected.closed, expected.duplicate_phone), (10, 20));
    let occurrence = db
        .broadcast_occurrences(pid, bid, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(occurrence.excluded, expected, "{occurrence:?}");
    assert_eq!(preview.excluded, expected);
    assert_eq!(occurrence.queued, eligible.len() as i64);
    assert_eq!(preview.recipients, eligible.len() as i64);
    assert_eq!(done.status, "completed", "{done:?}");
    let counts: Vec<(&str, i64)> = (done.counts.iter())
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| (s.as_str(), *n))
        .collect();
    assert_eq!(counts, [("delivered", eligible.len() as i64)]);
}
