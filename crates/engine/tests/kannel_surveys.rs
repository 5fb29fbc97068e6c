//! A survey through a real Kannel (bearerbox + smsbox with the fake operator), on both engines
//! (issue 13, acceptance): a 3-question survey (a number with a range, a choice, a date) started
//! for 3 cases; the replies come as MO messages through Kannel. Case 1 answers everything
//! validly, case 2 answers one question invalidly and then validly, case 3 stays silent and gets
//! its two reminders and then expires (its timers driven by a `ManualClock`: the server runs in
//! this process, and its own worker's system clock is hours short of any timer). The operator
//! receives exactly the intro and first question, the invalid text with the question again, the
//! reminders and the end text; the answers land on the cases' properties, in the sessions and
//! in the responses export (`GET /surveys/{id}/responses.csv`) exactly.
//!
//! The sessions are started by a broadcast of the survey (content `{"survey": id}`) to the
//! three cases, fanned out by the server's worker.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_testkit::Workflows;
use std::future::Future;
use std::time::Duration;

use casecast_core::broadcast::Draft;
use casecast_core::case::CaseChanges;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::survey::session::SessionStatus;
use casecast_core::survey::Survey;
use casecast_core::PhoneNumber;
use casecast_engine::clock::ManualClock;
use casecast_store::gateways::{Gateway, GatewayPatch, NewGateway};
use casecast_store::survey_sessions::SurveySession;
use casecast_testkit::kannel::{Kannel, LineKind};
use casecast_testkit::{on_both_engines, Dialect, TestApp};
use serde_json::{json, Value};

const SENDER: &str = "1234";
const WITHIN: Duration = Duration::from_secs(60);
const PHONES: [&str; 3] = ["+256772000001", "+256772000002", "+256772000003"];

const FIRST: &str = "Hello from the clinic: 3 questions.\nHow many visits?";
const VISITS: &str = "How many visits?";
const FEELING: &str = "How do you feel?\n1. Good 2. Bad";
const DUE: &str = "When is the baby due?";
const INVALID: &str = "Please reply with a number from 0 to 20.\nHow many visits?";
const END: &str = "Thank you, see you soon.";

on_both_engines!(three_cases_answer_fail_and_stay_silent_through_kannel);

/// Polls `check` until it gives a value, within [`WITHIN`].
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    casecast_testkit::eventually(what, WITHIN, check).await
}

fn survey_body() -> Value {
    json!({
        "name": "ANC check",
        "intro": "Hello from the clinic: 3 questions.",
        "end_text": END,
        "max_attempts": 3,
        "reminders": {"every_minutes": 60, "times": 2},
        "expire_after_minutes": 300,
        "questions": [
            {"key": "visits", "type": "number", "text": VISITS, "min": 0, "max": 20,
             "case_property": "anc_visits"},
            {"key": "feeling", "type": "choice", "text": "How do you feel?",
             "choices": [
                {"value": "good", "text": "Good", "synonyms": ["fine"]},
                {"value": "bad", "text": "Bad"}
             ], "case_property": "feeling"},
            {"key": "due", "type": "date", "text": DUE, "case_property": "edd"}
        ]
    })
}

/// A server, a Kannel whose MO goes to the server's webhook, and a Kannel gateway for alpha.
async fn setup(engine: Dialect) -> (TestApp, Kannel, Gateway) {
    let app = TestApp::spawn(engine).await;
    let placeholder = json!({"sendsms_url": "http://127.0.0.1:9/cgi-bin/sendsms", "username": "u", "password": "p"});
    let new = NewGateway {
        name: "Kannel".into(),
        kind: GatewayKind::Kannel,
        config: placeholder,
        callback_base_url: app.base.clone(),
        max_segments_per_second: None,
        max_attempts: None,
        prefixes: vec![],
        is_default: true,
    };
    let g = app.db.create_gateway(app.alpha.id, &new).await.unwrap();
    let kannel = Kannel::start(&g.callbacks().url("mo")).await;
    let config = json!({
        "sendsms_url": kannel.sendsms_url,
        "username": kannel.username,
        "password": kannel.password,
        "from": SENDER,
    });
    let patch = GatewayPatch {
        config: Some(config),
        ..Default::default()
    };
    let g = app.db.update_gateway(app.alpha.id, g.id, &patch).await;
    (app, kannel, g.unwrap())
}

async fn case(app: &TestApp, name: &str, phone: &str) -> String {
    let changes = CaseChanges {
        name: Some(name.into()),
        phone_number: Some(Some(PhoneNumber::parse(phone, None).unwrap())),
        ..Default::default()
    };
    let case = app.db.create_case(app.alpha.id, None, &changes).await;
    case.unwrap().case_id.as_str().to_string()
}

/// The texts the operator received for `phone` so far, in order (each a single `text` line).
fn texts_to(kannel: &Kannel, phone: &str) -> Vec<String> {
    let got: Vec<_> = kannel
        .received()
        .into_iter()
        .filter(|m| m.receiver == phone)
        .collect();
    for m in &got {
        assert_eq!(
            (m.kind, m.sender.as_str()),
            (LineKind::Text, SENDER),
            "{m:?}"
        );
    }
    got.into_iter().map(|m| m.text).collect()
}

/// Waits until the operator received `n` messages for `phone`; returns their texts.
async fn wait_texts(kannel: &Kannel, phone: &str, n: usize) -> Vec<String> {
    eventually(&format!("{n} messages to {phone}"), || async {
        let got = texts_to(kannel, phone);
        (got.len() >= n).then_some(got)
    })
    .await
}

/// A reply from `phone` through Kannel, then the operator's next message to it, which must be
/// `expected` (the `n`th message it receives).
async fn reply(kannel: &Kannel, phone: &str, text: &str, n: usize, expected: &str) {
    kannel.send_mo(phone, SENDER, text).await;
    let got = wait_texts(kannel, phone, n).await;
    assert_eq!(got.len(), n, "{got:#?}");
    assert_eq!(
        got[n - 1],
        expected,
        "after {text:?} from {phone}: {got:#?}"
    );
}

async fn session(app: &TestApp, id: i64) -> SurveySession {
    app.db.survey_session(app.alpha.id, id).await.unwrap()
}

/// Waits until the session's latest message was sent and its timers run from then.
async fn timers_started(app: &TestApp, id: i64, reminders_sent: u32) -> SurveySession {
    eventually("the session's timers started", || async {
        let s = session(app, id).await;
        (s.state.reminders_sent == reminders_sent && s.expiry_due.is_some()).then_some(s)
    })
    .await
}

async fn fire(app: &TestApp, clock: &ManualClock) -> usize {
    casecast_engine::surveys::fire_due_timers(&app.db, clock)
        .await
        .unwrap()
}

async fn properties(app: &TestApp, case_id: &str) -> Vec<(String, String)> {
    let case = app.db.get_case(app.alpha.id, case_id).await.unwrap();
    ["anc_visits", "feeling", "edd"]
        .iter()
        .filter_map(|k| case.properties.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The texts of the session's messages in order, each with its direction.
async fn session_texts(app: &TestApp, id: i64) -> Vec<(String, String)> {
    let messages = app.db.messages_of_session(app.alpha.id, id).await.unwrap();
    messages
        .into_iter()
        .map(|m| (m.direction.as_str().to_string(), m.text))
        .collect()
}

fn out(text: &str) -> (String, String) {
    ("outbound".into(), text.into())
}

fn inb(text: &str) -> (String, String) {
    ("inbound".into(), text.into())
}

async fn three_cases_answer_fail_and_stay_silent_through_kannel(engine: Dialect) {
    let (app, kannel, _g) = setup(engine).await;
    let survey = Survey::parse(&survey_body()).unwrap();
    let survey_id = app
        .db
        .create_survey(app.alpha.id, &survey, None)
        .await
        .unwrap()
        .id;
    let mut cases = Vec::new();
    for (name, phone) in ["Amina", "Bea", "Cleo"].iter().zip(PHONES) {
        cases.push(case(&app, name, phone).await);
    }
    // A broadcast of the survey to the three cases, now: the worker fans it out into sessions.
    let draft = Draft::parse(&json!({
        "name": "ANC round",
        "recipients": {"case_groups": [], "cases": cases},
        "content": {"survey": survey_id},
    }))
    .unwrap();
    app.db
        .create_broadcast(&app.alpha, &draft, None)
        .await
        .unwrap();
    let mut sessions = Vec::new();
    for case_id in &cases {
        let case_pk = app
            .db
            .case_recipient(app.alpha.id, case_id)
            .await
            .unwrap()
            .unwrap()
            .case_pk;
        let s = eventually("the case's session started", || async {
            app.db
                .sessions_of_case(app.alpha.id, case_pk, 10)
                .await
                .unwrap()
                .pop()
        })
        .await;
        assert_eq!(
            (s.survey_id, s.status, s.current_question),
            (survey_id, SessionStatus::Active, Some(0))
        );
        sessions.push(s.id);
    }
    for phone in PHONES {
        assert_eq!(wait_texts(&kannel, phone, 1).await, [FIRST]);
    }

    // Case 1: every answer valid (" 12 " trimmed, a choice by its synonym, a local date).
    let p1 = PHONES[0];
    reply(&kannel, p1, " 12 ", 2, FEELING).await;
    reply(&kannel, p1, "Fine!", 3, DUE).await;
    reply(&kannel, p1, "25/12/2026", 4, END).await;

    // Case 2: a word where a number is asked, then valid answers.
    let p2 = PHONES[1];
    reply(&kannel, p2, "seven", 2, INVALID).await;
    reply(&kannel, p2, "7", 3, FEELING).await;
    reply(&kannel, p2, "2", 4, DUE).await;
    reply(&kannel, p2, "2027-01-15", 5, END).await;

    for (i, expected) in [
        json!({"visits": 12, "feeling": "good", "due": "2026-12-25"}),
        json!({"visits": 7, "feeling": "bad", "due": "2027-01-15"}),
    ]
    .into_iter()
    .enumerate()
    {
        let s = session(&app, sessions[i]).await;
        assert_eq!(s.status, SessionStatus::Completed, "{s:?}");
        assert_eq!((s.current_question, s.reason.as_deref()), (None, None));
        assert!(s.completed_at.is_some());
        assert_eq!(Value::Object(s.answers), expected);
    }
    assert_eq!(
        properties(&app, &cases[0]).await,
        pairs(&[
            ("anc_visits", "12"),
            ("feeling", "good"),
            ("edd", "2026-12-25")
        ])
    );
    assert_eq!(
        properties(&app, &cases[1]).await,
        pairs(&[
            ("anc_visits", "7"),
            ("feeling", "bad"),
            ("edd", "2027-01-15")
        ])
    );
    assert_eq!(
        session_texts(&app, sessions[0]).await,
        [
            out(FIRST),
            inb(" 12 "),
            out(FEELING),
            inb("Fine!"),
            out(DUE),
            inb("25/12/2026"),
            out(END)
        ]
    );
    assert_eq!(
        session_texts(&app, sessions[1]).await,
        [
            out(FIRST),
            inb("seven"),
            out(INVALID),
            inb("7"),
            out(FEELING),
            inb("2"),
            out(DUE),
            inb("2027-01-15"),
            out(END)
        ]
    );

    // Case 3 stays silent: two reminders an hour apart, each counted from when the one before
    // it went out, then the expiry five hours after the last one; nothing is sent at expiry.
    let p3 = PHONES[2];
    let silent = timers_started(&app, sessions[2], 0).await;
    let clock = ManualClock::new(silent.reminder_due.unwrap() - 1);
    assert_eq!(fire(&app, &clock).await, 0, "not due yet");
    for n in 1..=2u32 {
        let s = session(&app, sessions[2]).await;
        clock.set(s.reminder_due.unwrap());
        assert_eq!(fire(&app, &clock).await, 1, "reminder {n}");
        assert_eq!(fire(&app, &clock).await, 0, "reminder {n} fired twice");
        let got = wait_texts(&kannel, p3, 1 + n as usize).await;
        assert_eq!(got.last().map(String::as_str), Some(VISITS), "{got:#?}");
        let s = timers_started(&app, sessions[2], n).await;
        let sent = app
            .db
            .messages_of_session(app.alpha.id, sessions[2])
            .await
            .unwrap()
            .pop()
            .unwrap();
        // Counted from when the dispatcher recorded the send, which is when Kannel took it or
        // just after (a delivery report may record `sent_at` first).
        let from = s.expiry_due.unwrap() - 300 * 60_000;
        assert!(from >= sent.sent_at.unwrap(), "{s:?} {sent:?}");
        let next_reminder = (n < 2).then_some(from + 60 * 60_000);
        assert_eq!(s.reminder_due, next_reminder, "{s:?}");
    }
    let s = session(&app, sessions[2]).await;
    let expiry = s.expiry_due.unwrap();
    clock.set(expiry - 1);
    assert_eq!(fire(&app, &clock).await, 0, "expired early");
    clock.set(expiry);
    assert_eq!(fire(&app, &clock).await, 1);
    let s = session(&app, sessions[2]).await;
    assert_eq!(s.status, SessionStatus::Expired, "{s:?}");
    assert_eq!(s.reason.as_deref(), Some("no reply for 300 minutes"));
    assert!(s.answers.is_empty());
    assert_eq!((s.reminder_due, s.expiry_due), (None, None));
    assert!(properties(&app, &cases[2]).await.is_empty());
    assert_eq!(
        session_texts(&app, sessions[2]).await,
        [out(FIRST), out(VISITS), out(VISITS)]
    );
    // A late reply is only logged on the case: nothing is sent to it.
    kannel.send_mo(p3, SENDER, "3").await;
    let late = eventually("the late reply stored and handled", || async {
        let filter = casecast_store::messages::MessageFilter {
            case_id: Some(cases[2].clone()),
            direction: casecast_core::states::Direction::parse("inbound"),
            ..Default::default()
        };
        let page = app.db.list_messages(app.alpha.id, &filter, 10, None).await;
        let stored = page.unwrap().0.into_iter().next()?;
        let mut tx = app.db.begin_write().await.unwrap();
        let waiting = casecast_store::Db::unhandled_inbound(&mut tx, app.alpha.id, p3, 1)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        waiting.is_empty().then_some(stored)
    })
    .await;
    assert_eq!(late.text, "3");
    let s = session(&app, sessions[2]).await;
    assert_eq!((s.status, s.state.step), (SessionStatus::Expired, 4));
    assert_eq!(session_texts(&app, sessions[2]).await.len(), 3);

    // Everything the operator got, per number: nothing more, nothing twice.
    assert_eq!(texts_to(&kannel, p1), [FIRST, FEELING, DUE, END]);
    assert_eq!(texts_to(&kannel, p2), [FIRST, INVALID, FEELING, DUE, END]);
    assert_eq!(texts_to(&kannel, p3), [FIRST, VISITS, VISITS]);
    assert_eq!(kannel.received().len(), 4 + 5 + 3);

    // The responses export: one row per session in session order, times in Kampala.
    let resp = app
        .http
        .get(app.api("alpha", &format!("/surveys/{survey_id}/responses.csv")))
        .bearer_auth(&app.alpha_viewer.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csv = resp.text().await.unwrap();
    let local = |ms: Option<i64>| {
        ms.map(|ms| {
            jiff::Timestamp::from_millisecond(ms)
                .unwrap()
                .to_zoned(app.alpha.zone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .unwrap_or_default()
    };
    let answers = [",12,good,2026-12-25", ",7,bad,2027-01-15", ",,,"];
    let names = ["Amina", "Bea", "Cleo"];
    let mut rows: Vec<(i64, String)> = Vec::new();
    for i in 0..3 {
        let s = session(&app, sessions[i]).await;
        rows.push((
            s.id,
            format!(
                "{},,{},'{},{},{},{}{}\n",
                cases[i],
                names[i],
                PHONES[i],
                s.status,
                local(Some(s.started_at)),
                local(s.completed_at),
                answers[i]
            ),
        ));
    }
    rows.sort();
    let mut expected = String::from(
        "\u{feff}case_id,external_id,name,phone_number,status,started_at,completed_at,visits,feeling,due\n",
    );
    for (_, row) in rows {
        expected.push_str(&row);
    }
    assert_eq!(csv, expected);
}
