//! Survey replies across real processes (issue 13), on both engines:
//! - two `casecast serve` processes on one database take a burst of 20 replies from each of
//!   4 numbers, all posted at once to both processes' Kannel MO webhook: each reply is handled
//!   exactly once, in the order the replies were stored (the answers equal the replies in the
//!   order of their ids), every question goes out once, and the session's step counts its
//!   transitions. (On PostgreSQL this failed now and then before the inbound router stored
//!   replies under the number's lock: one process's reply took the lower id, the other's
//!   committed first and was handled first);
//! - kill -9 of a `casecast worker` held inside a reply's transaction (the fault point
//!   `survey-reply=1`: the answer saved, the next question queued, the message marked handled,
//!   not committed): nothing of it is seen; the sweep of another worker (on PostgreSQL,
//!   running meanwhile and waiting for the number's lock) or of a restarted one (SQLite)
//!   handles the reply once: the answer saved once, the next question queued and sent once.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_testkit::Workflows;
use std::time::Duration;

use casecast_core::case::CaseChanges;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::survey::session::SessionStatus;
use casecast_core::survey::Survey;
use casecast_core::{CountryCode, PhoneNumber, ProjectSlug, TimeZoneName};
use casecast_store::gateways::{Gateway, NewGateway};
use casecast_store::messages::{Message, NewInbound};
use casecast_store::projects::{NewProject, Project};
use casecast_store::survey_sessions::SurveySession;
use casecast_store::Db;
use casecast_testkit::capture::Capture;
use casecast_testkit::cli::{Server, Worker};
use casecast_testkit::kannel::url_decode;
use casecast_testkit::{eventually, on_both_engines, Dialect, TestDb};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_casecast");
const PHONE: &str = "+256772000001";
const WITHIN: Duration = Duration::from_secs(120);
/// Replies in the burst from each number, and questions in its survey.
const BURST: usize = 20;
/// Numbers replying at once.
const NUMBERS: usize = 4;

fn burst_phone(n: usize) -> String {
    format!("+25677210000{n}")
}

on_both_engines!(
    two_servers_handle_a_burst_of_replies_once_each_in_order,
    a_worker_killed_inside_a_reply_leaves_the_session_consistent,
);

async fn project(db: &Db) -> Project {
    db.create_project(&NewProject {
        slug: ProjectSlug::parse("gulu").unwrap(),
        name: "Gulu".into(),
        time_zone: TimeZoneName::parse("Africa/Kampala").unwrap(),
        country: Some(CountryCode::parse("UG").unwrap()),
    })
    .await
    .unwrap()
}

async fn gateway(db: &Db, p: &Project, kind: GatewayKind, config: Value) -> Gateway {
    let new = NewGateway {
        name: "G".into(),
        kind,
        config,
        callback_base_url: "http://127.0.0.1:9".into(),
        max_segments_per_second: None,
        max_attempts: None,
        prefixes: vec![],
        is_default: true,
    };
    db.create_gateway(p.id, &new).await.unwrap()
}

async fn case(db: &Db, p: &Project, phone: &str) -> String {
    let changes = CaseChanges {
        name: Some("Amina".into()),
        phone_number: Some(Some(PhoneNumber::parse(phone, None).unwrap())),
        ..Default::default()
    };
    let case = db.create_case(p.id, None, &changes).await.unwrap();
    case.case_id.as_str().to_string()
}

async fn session(db: &Db, p: &Project, id: i64) -> SurveySession {
    db.survey_session(p.id, id).await.unwrap()
}

/// The session's messages as (direction, text), in order.
async fn session_texts(db: &Db, p: &Project, id: i64) -> Vec<(String, String)> {
    let all: Vec<Message> = db.messages_of_session(p.id, id).await.unwrap();
    all.into_iter()
        .map(|m| (m.direction.as_str().to_string(), m.text))
        .collect()
}

/// How many inbound messages of the number wait to be handled.
async fn unhandled(db: &Db, p: &Project, phone: &str) -> usize {
    let mut tx = db.begin_write().await.unwrap();
    let n = Db::unhandled_inbound(&mut tx, p.id, phone, 1000)
        .await
        .unwrap()
        .len();
    tx.rollback().await.unwrap();
    n
}

fn question(i: usize) -> String {
    format!("Question {i}?")
}

/// One query parameter of a raw query string, decoded.
fn param(query: &str, name: &str) -> String {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {query}"));
    String::from_utf8(url_decode(raw)).unwrap()
}

async fn two_servers_handle_a_burst_of_replies_once_each_in_order(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db).await;
    // sendsms is a capture that takes every message: what "the operator" got, per request.
    let sendsms = Capture::start();
    let config = json!({
        "sendsms_url": format!("{}/cgi-bin/sendsms", sendsms.base),
        "username": "u", "password": "p", "from": "1234",
    });
    let g = gateway(db, &p, GatewayKind::Kannel, config).await;
    let questions: Vec<Value> = (1..=BURST)
        .map(|i| json!({"key": format!("q{i:02}"), "type": "text", "text": question(i)}))
        .collect();
    let survey = Survey::parse(&json!({
        "name": "Long",
        "end_text": "Done.",
        "max_attempts": 3,
        "expire_after_minutes": 600,
        "questions": questions,
    }))
    .unwrap();
    let survey_id = db.create_survey(p.id, &survey, None).await.unwrap().id;
    let mut sessions = Vec::new();
    for n in 0..NUMBERS {
        let case_id = case(db, &p, &burst_phone(n)).await;
        sessions.push(db.start_survey(&p, survey_id, &case_id).await.unwrap().id);
    }

    let servers = [
        Server::start(BIN, &t.url, &[]).await,
        Server::start(BIN, &t.url, &[]).await,
    ];
    let got = sendsms.wait_for("/cgi-bin/sendsms", NUMBERS).await;
    assert!(
        got.iter().all(|q| param(q, "text") == question(1)),
        "{got:?}"
    );

    // The MO webhook's path, on either server.
    let path = g
        .callbacks()
        .url("mo")
        .strip_prefix("http://127.0.0.1:9")
        .unwrap()
        .to_string();
    let http = reqwest::Client::new();
    let mut posts = Vec::new();
    for i in 1..=BURST {
        for n in 0..NUMBERS {
            let url = format!("{}{path}", servers[(i + n) % 2].base);
            let http = http.clone();
            posts.push(tokio::spawn(async move {
                let query = [
                    ("from", burst_phone(n)),
                    ("to", "1234".to_string()),
                    ("text", format!("r{i:02}")),
                    ("coding", "0".to_string()),
                    ("charset", "UTF-8".to_string()),
                    ("id", format!("mo-{n}-{i}")),
                ];
                let answer = http.get(url).query(&query).send().await.unwrap();
                assert!(answer.status().is_success(), "{answer:?}");
            }));
        }
    }
    for post in posts {
        post.await.unwrap();
    }
    let mut expected: Vec<String> = (1..=BURST).map(question).collect();
    expected.push("Done.".into());
    for (n, &id) in sessions.iter().enumerate() {
        let pid = p.id;
        let done = eventually("the session completed", WITHIN, || async move {
            let s = db.survey_session(pid, id).await.unwrap();
            (s.status != SessionStatus::Active).then_some(s)
        })
        .await;
        assert_eq!(done.status, SessionStatus::Completed, "{done:?}");
        assert_eq!(unhandled(db, &p, &burst_phone(n)).await, 0);

        // The replies in the order they were stored, each taken once by the session.
        let texts = session_texts(db, &p, id).await;
        let replies: Vec<String> = texts
            .iter()
            .filter(|(d, _)| d == "inbound")
            .map(|(_, t)| t.clone())
            .collect();
        let mut sorted = replies.clone();
        sorted.sort();
        let every: Vec<String> = (1..=BURST).map(|i| format!("r{i:02}")).collect();
        assert_eq!(sorted, every, "each reply once");
        let answers: Value = (1..=BURST)
            .map(|i| (format!("q{i:02}"), Value::String(replies[i - 1].clone())))
            .collect::<serde_json::Map<_, _>>()
            .into();
        assert_eq!(
            Value::Object(done.answers.clone()),
            answers,
            "the answers in the order the replies were stored"
        );
        // Each question once, then the end text.
        let asked: Vec<String> = texts
            .iter()
            .filter(|(d, _)| d == "outbound")
            .map(|(_, t)| t.clone())
            .collect();
        assert_eq!(asked, expected);
        // The start and one transition per reply.
        assert_eq!(done.state.step, 1 + BURST as u64);
    }

    // The operator got every message once (the two processes' dispatchers share the outbox).
    let got = sendsms
        .wait_for("/cgi-bin/sendsms", NUMBERS * (BURST + 1))
        .await;
    expected.sort();
    for n in 0..NUMBERS {
        let mut sent: Vec<String> = got
            .iter()
            .filter(|q| param(q, "to") == burst_phone(n))
            .map(|q| param(q, "text"))
            .collect();
        sent.sort();
        assert_eq!(sent, expected, "to {}", burst_phone(n));
    }
    assert_eq!(got.len(), NUMBERS * (BURST + 1));
    drop(servers);
}

async fn a_worker_killed_inside_a_reply_leaves_the_session_consistent(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db).await;
    let g = gateway(db, &p, GatewayKind::Log, json!({})).await;
    let case_id = case(db, &p, PHONE).await;
    let survey = Survey::parse(&json!({
        "name": "Visits",
        "max_attempts": 3,
        "expire_after_minutes": 600,
        "questions": [
            {"key": "visits", "type": "number", "text": "How many visits?",
             "case_property": "anc_visits"},
            {"key": "feeling", "type": "text", "text": "How do you feel?"}
        ]
    }))
    .unwrap();
    let survey_id = db.create_survey(p.id, &survey, None).await.unwrap().id;
    let started = db.start_survey(&p, survey_id, &case_id).await.unwrap();
    // The reply was stored by a process that died before handling it: a worker's sweep takes it.
    let mut tx = db.begin_write().await.unwrap();
    db.insert_inbound(
        &mut tx,
        &NewInbound {
            project_id: p.id,
            case_pk: None,
            phone: PHONE,
            text: "5",
            gateway_id: g.id,
            gateway_message_id: None,
            now: casecast_core::time::now_ms() - 60_000,
        },
    )
    .await
    .unwrap()
    .unwrap();
    tx.commit().await.unwrap();

    let mut held = Worker::start_with(BIN, &t.url, &["--test-fault", "survey-reply=1"], &[]);
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !held.stderr().contains("held at fault point survey-reply=1") {
        held.check_alive();
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never reached its fault point"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Held with everything written and nothing committed: nothing of it shows.
    let s = session(db, &p, started.id).await;
    assert_eq!((s.state.step, s.current_question), (1, Some(0)), "{s:?}");
    assert!(s.answers.is_empty());
    let first = "How many visits?".to_string();
    assert_eq!(
        session_texts(db, &p, started.id).await,
        [("outbound".to_string(), first.clone())]
    );
    // On PostgreSQL another worker runs meanwhile: its sweep waits for the number's lock and
    // takes the reply over. On SQLite the held write transaction would keep a new process from
    // starting: the worker is restarted after the kill.
    let other = (engine == Dialect::Postgres).then(|| Worker::start(BIN, &t.url, &[]));
    held.kill();
    let mut worker = match other {
        Some(w) => w,
        None => {
            assert_eq!(unhandled(db, &p, PHONE).await, 1, "the reply still waits");
            Worker::start(BIN, &t.url, &[])
        }
    };
    let pid = p.id;
    let sid = started.id;
    let s = eventually("a new worker handled the reply", WITHIN, || {
        worker.check_alive();
        async move {
            let s = db.survey_session(pid, sid).await.unwrap();
            (s.state.step > 1).then_some(s)
        }
    })
    .await;
    assert_eq!((s.state.step, s.current_question), (2, Some(1)), "{s:?}");
    assert_eq!(Value::Object(s.answers.clone()), json!({"visits": 5}));
    let case = db.get_case(p.id, &case_id).await.unwrap();
    assert_eq!(
        case.properties.get("anc_visits").map(String::as_str),
        Some("5")
    );
    assert_eq!(unhandled(db, &p, PHONE).await, 0);
    let texts = session_texts(db, &p, started.id).await;
    let expected: Vec<(String, String)> = vec![
        ("outbound".into(), first),
        ("inbound".into(), "5".into()),
        ("outbound".into(), "How do you feel?".into()),
    ];
    assert_eq!(texts, expected);
    // The next question goes out (once: it is one row).
    let next = db
        .messages_of_session(p.id, started.id)
        .await
        .unwrap()
        .pop()
        .unwrap();
    eventually("the next question sent", WITHIN, || async {
        let m = db.message(pid, next.id).await.unwrap();
        (m.status.as_str() == "sent").then_some(())
    })
    .await;
    // The restarted worker's sweeps find nothing more to do for the number.
    worker.check_alive();
    assert_eq!(session(db, &p, started.id).await.state.step, 2);
}
