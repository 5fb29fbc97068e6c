//! Survey sessions end to end on the store: starting a survey for a case, replies through the
//! inbound router (valid, invalid, skipped, too many), answers saved to case properties,
//! reminders and expiry on a driven clock counted from when the dispatcher is done with a
//! message, stale timers, STOP mid-survey, one active session per case, a number two cases
//! share, messages stored but not handled, and a burst of replies from one number handled in
//! order by concurrent handlers.

use casecast_core::gateway::InboundSms;
use casecast_core::survey::session::SessionStatus;
use casecast_core::survey::Survey;
use casecast_engine::clock::ManualClock;
use casecast_store::gateways::Gateway;
use casecast_store::messages::{Message, MessageFilter, NewInbound};
use casecast_store::outbox::{Claim, ClaimRequest, Outcome, SendResult};
use casecast_store::projects::Project;
use casecast_store::survey_sessions::SurveySession;
use casecast_store::Db;
use casecast_testkit::Workflows;
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use serde_json::{json, Value};

use crate::gateways::log;
use crate::{case_with, project, raw_pool};

on_both_engines!(
    a_survey_runs_from_first_question_to_end_text_and_saves_answers,
    invalid_replies_re_ask_then_cancel_after_max_attempts,
    reminders_and_expiry_count_from_the_sent_message_and_never_fire_stale,
    stop_mid_survey_opts_out_and_cancels,
    one_active_session_per_case_and_a_shared_number_answers_the_latest,
    a_stored_message_left_unhandled_is_handled_by_the_sweep,
    a_burst_of_replies_is_handled_once_each_in_order,
    starting_refuses_cases_that_cannot_receive,
    a_case_closed_mid_survey_is_sent_nothing_more,
    a_reply_that_cannot_be_handled_stays_stored_for_the_sweep,
);

pub(crate) fn survey_body() -> Value {
    json!({
        "name": "ANC follow-up",
        "intro": {"*": "Hello, 3 questions.", "sw": "Habari, maswali 3."},
        "end_text": {"*": "Thank you.", "sw": "Asante."},
        "max_attempts": 3,
        "reminders": {"every_minutes": 60, "times": 2},
        "expire_after_minutes": 300,
        "questions": [
            {"key": "visits", "type": "number", "text": {"*": "How many visits?", "sw": "Mara ngapi?"},
             "min": 0, "max": 20, "case_property": "anc_visits"},
            {"key": "feeling", "type": "choice", "text": "How do you feel?",
             "choices": [
                {"value": "good", "text": {"*": "Good", "sw": "Vizuri"}, "synonyms": ["fine"]},
                {"value": "bad", "text": {"*": "Bad", "sw": "Vibaya"}}
             ]},
            {"key": "due", "type": "date", "text": "Due date?", "required": false,
             "case_property": "edd"}
        ]
    })
}

pub(crate) struct Setup {
    pub p: Project,
    pub g: Gateway,
    pub survey_id: i64,
}

pub(crate) async fn setup(db: &Db, body: Value) -> Setup {
    let p = project(db, "alpha", Some("UG")).await;
    let g = db.create_gateway(p.id, &log("L", &[])).await.unwrap();
    let survey = Survey::parse(&body).unwrap();
    let survey_id = db.create_survey(p.id, &survey, None).await.unwrap().id;
    Setup { p, g, survey_id }
}

pub(crate) fn mo(from: &str, text: &str) -> InboundSms {
    InboundSms {
        from: from.into(),
        to: "8080".into(),
        text: text.into(),
        gateway_message_id: None,
    }
}

/// Hands every queued message of the gateway to "the gateway" (recorded as sent now), as the
/// dispatcher does; returns their texts in order.
pub(crate) async fn send_all(db: &Db, gateway_id: i64) -> Vec<String> {
    let mut texts = Vec::new();
    loop {
        let claim = db
            .claim_outbound(&ClaimRequest {
                gateway_id,
                rate: None,
                max_messages: 100,
                window_ms: 250,
                worker: "test",
                lease_ms: 60_000,
            })
            .await
            .unwrap();
        let Claim::Messages(claimed) = claim else {
            return texts;
        };
        let results: Vec<SendResult> = claimed
            .iter()
            .map(|c| SendResult {
                id: c.id,
                attempts: c.attempts,
                max_attempts: 5,
                expires_at: c.expires_at,
                outcome: Outcome::Sent {
                    gateway_message_id: None,
                },
            })
            .collect();
        texts.extend(claimed.iter().map(|c| c.text.clone()));
        db.record_send_results(&results).await.unwrap();
    }
}

pub(crate) async fn session(db: &Db, p: &Project, id: i64) -> SurveySession {
    db.survey_session(p.id, id).await.unwrap()
}

async fn outbound_of(db: &Db, p: &Project, case_id: &str) -> Vec<Message> {
    let mut m = db
        .list_messages(
            p.id,
            &MessageFilter {
                case_id: Some(case_id.into()),
                ..MessageFilter::default()
            },
            100,
            None,
        )
        .await
        .unwrap()
        .0;
    m.retain(|m| m.direction.as_str() == "outbound");
    m.sort_by_key(|m| m.id);
    m
}

async fn a_survey_runs_from_first_question_to_end_text_and_saves_answers(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    let amina = case_with(db, s.p.id, None, "Amina", None, Some("0772000001")).await;
    let started = db
        .start_survey(&s.p, s.survey_id, amina.case_id.as_str())
        .await
        .unwrap();
    assert_eq!(started.status, SessionStatus::Active);
    assert_eq!(started.current_question, Some(0));
    assert_eq!(started.phone_number, "+256772000001");
    // The intro and the first question go as one message, linked to the session.
    assert_eq!(
        send_all(db, s.g.id).await,
        vec!["Hello, 3 questions.\nHow many visits?".to_string()]
    );
    let phone = "+256772000001";
    let r = db.record_inbound(&s.g, &mo(phone, " 4 ")).await.unwrap();
    assert_eq!(r.session_id, Some(started.id));
    assert_eq!(
        send_all(db, s.g.id).await,
        vec!["How do you feel?\n1. Good 2. Bad".to_string()]
    );
    // The answer is on the case already.
    let case = db.get_case(s.p.id, amina.case_id.as_str()).await.unwrap();
    assert_eq!(
        case.properties.get("anc_visits").map(String::as_str),
        Some("4")
    );
    db.record_inbound(&s.g, &mo(phone, "Fine!")).await.unwrap();
    assert_eq!(send_all(db, s.g.id).await, vec!["Due date?".to_string()]);
    db.record_inbound(&s.g, &mo(phone, "31/12/2026"))
        .await
        .unwrap();
    assert_eq!(send_all(db, s.g.id).await, vec!["Thank you.".to_string()]);
    let done = session(db, &s.p, started.id).await;
    assert_eq!(done.status, SessionStatus::Completed);
    assert_eq!(done.current_question, None);
    assert!(done.completed_at.is_some());
    assert_eq!(
        Value::Object(done.answers.clone()),
        json!({"visits": 4, "feeling": "good", "due": "2026-12-31"})
    );
    let case = db.get_case(s.p.id, amina.case_id.as_str()).await.unwrap();
    assert_eq!(
        case.properties.get("edd").map(String::as_str),
        Some("2026-12-31")
    );
    // A reply after the end is only logged.
    let late = db.record_inbound(&s.g, &mo(phone, "5")).await.unwrap();
    assert_eq!(late.session_id, None);
    assert!(send_all(db, s.g.id).await.is_empty());
    // Every message the session sent carries it, and so do the replies it took.
    let sent = outbound_of(db, &s.p, amina.case_id.as_str()).await;
    assert_eq!(sent.len(), 4);
    let linked = db.messages_of_session(s.p.id, started.id).await.unwrap();
    assert_eq!(
        linked.len(),
        4 + 3,
        "4 sent and 3 replies taken (the late one only logged)"
    );
    assert_eq!(linked.last().unwrap().text, "Thank you.");
}

async fn invalid_replies_re_ask_then_cancel_after_max_attempts(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    let c = case_with(db, s.p.id, None, "Bo", None, Some("0772000002")).await;
    let started = db
        .start_survey(&s.p, s.survey_id, c.case_id.as_str())
        .await
        .unwrap();
    send_all(db, s.g.id).await;
    let phone = "+256772000002";
    db.record_inbound(&s.g, &mo(phone, "twelve")).await.unwrap();
    assert_eq!(
        send_all(db, s.g.id).await,
        vec!["Please reply with a number from 0 to 20.\nHow many visits?".to_string()]
    );
    db.record_inbound(&s.g, &mo(phone, "25")).await.unwrap();
    assert_eq!(send_all(db, s.g.id).await.len(), 1);
    let mid = session(db, &s.p, started.id).await;
    assert_eq!((mid.status, mid.state.attempts), (SessionStatus::Active, 2));
    db.record_inbound(&s.g, &mo(phone, "many")).await.unwrap();
    // The third invalid reply ends it; nothing more is sent.
    assert!(send_all(db, s.g.id).await.is_empty());
    let over = session(db, &s.p, started.id).await;
    assert_eq!(over.status, SessionStatus::Cancelled);
    assert_eq!(
        over.reason.as_deref(),
        Some("3 invalid replies to question 1 (visits)")
    );
    let case = db.get_case(s.p.id, c.case_id.as_str()).await.unwrap();
    assert!(!case.properties.contains_key("anc_visits"));
}

async fn reminders_and_expiry_count_from_the_sent_message_and_never_fire_stale(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    let c = case_with(db, s.p.id, None, "Cy", None, Some("0772000003")).await;
    let started = db
        .start_survey(&s.p, s.survey_id, c.case_id.as_str())
        .await
        .unwrap();
    let clock = ManualClock::new(casecast_core::time::now_ms());
    let hour = 60 * 60 * 1000;
    // Not sent yet: no timer runs, however late it is.
    clock.advance(10 * hour);
    assert_eq!(fire(db, &clock).await, 0);
    assert_eq!(
        session(db, &s.p, started.id).await.status,
        SessionStatus::Active
    );
    let sent_at = casecast_core::time::now_ms();
    send_all(db, s.g.id).await;
    let fresh = session(db, &s.p, started.id).await;
    let reminder = fresh.reminder_due.unwrap();
    let expiry = fresh.expiry_due.unwrap();
    assert!(
        (reminder - sent_at - hour).abs() < 5_000,
        "{reminder} vs {sent_at}"
    );
    assert!((expiry - sent_at - 5 * hour).abs() < 5_000);
    // Just before the reminder: nothing.
    clock.set(reminder - 1);
    assert_eq!(fire(db, &clock).await, 0);
    clock.set(reminder);
    assert_eq!(fire(db, &clock).await, 1);
    // Firing again at the same instant changes nothing (exactly once).
    assert_eq!(fire(db, &clock).await, 0);
    assert_eq!(
        send_all(db, s.g.id).await,
        vec!["How many visits?".to_string()]
    );
    // A reply as the second reminder falls due: the reply wins, the timer is gone.
    let r2 = session(db, &s.p, started.id).await;
    assert_eq!(r2.state.reminders_sent, 1);
    clock.set(r2.reminder_due.unwrap());
    db.record_inbound(&s.g, &mo("+256772000003", "2"))
        .await
        .unwrap();
    assert_eq!(fire(db, &clock).await, 0);
    assert_eq!(
        send_all(db, s.g.id).await,
        vec!["How do you feel?\n1. Good 2. Bad".to_string()]
    );
    // Two reminders for the second question, then no third; expiry keeps the answers.
    for n in 1..=2 {
        let due = session(db, &s.p, started.id).await.reminder_due.unwrap();
        clock.set(due);
        assert_eq!(fire(db, &clock).await, 1, "reminder {n}");
        send_all(db, s.g.id).await;
    }
    let last = session(db, &s.p, started.id).await;
    assert_eq!(last.state.reminders_sent, 2);
    assert_eq!(last.reminder_due, None);
    let expiry = last.expiry_due.unwrap();
    clock.set(expiry - 1);
    assert_eq!(fire(db, &clock).await, 0);
    clock.set(expiry);
    assert_eq!(fire(db, &clock).await, 1);
    assert!(send_all(db, s.g.id).await.is_empty());
    let expired = session(db, &s.p, started.id).await;
    assert_eq!(expired.status, SessionStatus::Expired);
    assert_eq!(Value::Object(expired.answers.clone()), json!({"visits": 2}));
    assert_eq!(expired.reason.as_deref(), Some("no reply for 300 minutes"));
}

async fn fire(db: &Db, clock: &ManualClock) -> usize {
    casecast_engine::surveys::fire_due_timers(db, clock)
        .await
        .unwrap()
}

async fn stop_mid_survey_opts_out_and_cancels(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    let c = case_with(db, s.p.id, None, "Di", None, Some("0772000004")).await;
    let started = db
        .start_survey(&s.p, s.survey_id, c.case_id.as_str())
        .await
        .unwrap();
    send_all(db, s.g.id).await;
    let stop = db
        .record_inbound(&s.g, &mo("+256772000004", "STOP"))
        .await
        .unwrap();
    assert!(stop.intent.is_some());
    assert_eq!(stop.session_id, None);
    let over = session(db, &s.p, started.id).await;
    assert_eq!(over.status, SessionStatus::Cancelled);
    assert_eq!(
        over.reason.as_deref(),
        Some("the number opted out (stop keyword)")
    );
    assert_eq!((over.reminder_due, over.expiry_due), (None, None));
    // Only the opt-out confirmation goes out.
    let sent = send_all(db, s.g.id).await;
    assert_eq!(sent.len(), 1);
    assert!(db.is_opted_out(s.p.id, "+256772000004").await.unwrap());
    // And a survey cannot be started for the number now.
    let again = db.start_survey(&s.p, s.survey_id, c.case_id.as_str()).await;
    assert!(
        matches!(
            &again,
            Err(casecast_store::StoreError::Conflict {
                code: "opted_out",
                ..
            })
        ),
        "{again:?}"
    );
}

async fn one_active_session_per_case_and_a_shared_number_answers_the_latest(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    let mother = case_with(db, s.p.id, None, "Mother", None, Some("0772000005")).await;
    let child = case_with(db, s.p.id, None, "Child", None, Some("0772000005")).await;
    let first = db
        .start_survey(&s.p, s.survey_id, mother.case_id.as_str())
        .await
        .unwrap();
    let second = db
        .start_survey(&s.p, s.survey_id, mother.case_id.as_str())
        .await
        .unwrap();
    let old = session(db, &s.p, first.id).await;
    assert_eq!(old.status, SessionStatus::Cancelled);
    assert_eq!(
        old.reason.as_deref(),
        Some("a new survey was started for the case (ANC follow-up)")
    );
    assert_eq!(
        session(db, &s.p, second.id).await.status,
        SessionStatus::Active
    );
    // The child's session is asked after the mother's: the number's reply is the child's.
    let child_s = db
        .start_survey(&s.p, s.survey_id, child.case_id.as_str())
        .await
        .unwrap();
    send_all(db, s.g.id).await;
    let r = db
        .record_inbound(&s.g, &mo("+256772000005", "3"))
        .await
        .unwrap();
    assert_eq!(r.session_id, Some(child_s.id));
    assert_eq!(r.message.case_id.as_deref(), Some(child.case_id.as_str()));
    assert_eq!(
        Value::Object(session(db, &s.p, child_s.id).await.answers),
        json!({"visits": 3})
    );
    let mother_s = session(db, &s.p, second.id).await;
    assert!(mother_s.answers.is_empty());
    assert_eq!(mother_s.current_question, Some(0));
    // The child's next question went out after the mother's: the next reply is the child's too.
    let r = db
        .record_inbound(&s.g, &mo("+256772000005", "2"))
        .await
        .unwrap();
    assert_eq!(r.session_id, Some(child_s.id));
}

async fn a_stored_message_left_unhandled_is_handled_by_the_sweep(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    let c = case_with(db, s.p.id, None, "Ed", None, Some("0772000006")).await;
    let started = db
        .start_survey(&s.p, s.survey_id, c.case_id.as_str())
        .await
        .unwrap();
    send_all(db, s.g.id).await;
    // A process stored the reply and died before handling it.
    let stored_at = casecast_core::time::now_ms();
    let mut tx = db.begin_write().await.unwrap();
    db.insert_inbound(
        &mut tx,
        &NewInbound {
            project_id: s.p.id,
            case_pk: None,
            phone: "+256772000006",
            text: "7",
            gateway_id: s.g.id,
            gateway_message_id: None,
            now: stored_at,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let clock = ManualClock::new(stored_at + 1_000);
    // Too recent: its own process may still be handling it.
    assert_eq!(
        casecast_engine::inbound::handle_unhandled(db, &clock)
            .await
            .unwrap(),
        0
    );
    clock.set(stored_at + casecast_engine::inbound::UNHANDLED_AFTER_MS + 1);
    assert_eq!(
        casecast_engine::inbound::handle_unhandled(db, &clock)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        Value::Object(session(db, &s.p, started.id).await.answers),
        json!({"visits": 7})
    );
    assert_eq!(send_all(db, s.g.id).await.len(), 1);
    // Handled once: a second sweep finds nothing.
    clock.advance(60_000);
    assert_eq!(
        casecast_engine::inbound::handle_unhandled(db, &clock)
            .await
            .unwrap(),
        0
    );
}

async fn a_burst_of_replies_is_handled_once_each_in_order(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    let c = case_with(db, s.p.id, None, "Fa", None, Some("0772000007")).await;
    let started = db
        .start_survey(&s.p, s.survey_id, c.case_id.as_str())
        .await
        .unwrap();
    send_all(db, s.g.id).await;
    // Stored in order, then handled by eight concurrent handlers at once.
    let replies = ["5", "bad", "01-02-2027", "extra"];
    let mut ids = Vec::new();
    for text in replies {
        let mut tx = db.begin_write().await.unwrap();
        let id = db
            .insert_inbound(
                &mut tx,
                &NewInbound {
                    project_id: s.p.id,
                    case_pk: None,
                    phone: "+256772000007",
                    text,
                    gateway_id: s.g.id,
                    gateway_message_id: None,
                    now: casecast_core::time::now_ms(),
                },
            )
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
        ids.push(id);
    }
    let clock = ManualClock::new(casecast_core::time::now_ms());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (db, p, clock) = (db.clone(), s.p.clone(), clock.clone());
        tasks.push(tokio::spawn(async move {
            casecast_engine::inbound::handle_number(&db, &clock, &p, "+256772000007")
                .await
                .unwrap()
        }));
    }
    let mut handled = Vec::new();
    for task in tasks {
        handled.extend(task.await.unwrap().into_iter().map(|h| h.message_id));
    }
    handled.sort();
    assert_eq!(handled, ids, "each message handled exactly once");
    let done = session(db, &s.p, started.id).await;
    assert_eq!(done.status, SessionStatus::Completed);
    assert_eq!(
        Value::Object(done.answers),
        json!({"visits": 5, "feeling": "bad", "due": "2027-02-01"})
    );
    // Three answers → two next questions and the end text; "extra" was only logged.
    assert_eq!(
        send_all(db, s.g.id).await,
        vec![
            "How do you feel?\n1. Good 2. Bad".to_string(),
            "Due date?".to_string(),
            "Thank you.".to_string()
        ]
    );
}

async fn starting_refuses_cases_that_cannot_receive(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    let no_phone = case_with(db, s.p.id, None, "Ga", None, None).await;
    let err = db
        .start_survey(&s.p, s.survey_id, no_phone.case_id.as_str())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            casecast_store::StoreError::Conflict {
                code: "no_phone_number",
                ..
            }
        ),
        "{err:?}"
    );
    let c = case_with(db, s.p.id, None, "Ha", None, Some("0772000008")).await;
    let err = db
        .start_survey(&s.p, s.survey_id + 100, c.case_id.as_str())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, casecast_store::StoreError::Invalid(f) if f.field == "survey_id"),
        "{err:?}"
    );
    // Another project's survey is not this project's.
    let other = project(db, "beta", Some("UG")).await;
    let theirs = db
        .create_survey(other.id, &Survey::parse(&survey_body()).unwrap(), None)
        .await
        .unwrap();
    let err = db
        .start_survey(&s.p, theirs.id, c.case_id.as_str())
        .await
        .unwrap_err();
    assert!(matches!(err, casecast_store::StoreError::Invalid(_)));
    // A case in Swahili is asked in Swahili.
    let mut sw = case_with(db, s.p.id, None, "Ima", None, Some("0772000009")).await;
    sw = db
        .update_case(
            s.p.id,
            sw.case_id.as_str(),
            &casecast_core::case::CaseChanges {
                language_code: Some(Some("sw".into())),
                ..casecast_core::case::CaseChanges::default()
            },
        )
        .await
        .unwrap();
    db.start_survey(&s.p, s.survey_id, sw.case_id.as_str())
        .await
        .unwrap();
    assert_eq!(
        send_all(db, s.g.id).await,
        vec!["Habari, maswali 3.\nMara ngapi?".to_string()]
    );
}

async fn a_case_closed_mid_survey_is_sent_nothing_more(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    let c = case_with(db, s.p.id, None, "Jo", None, Some("0772000010")).await;
    let started = db
        .start_survey(&s.p, s.survey_id, c.case_id.as_str())
        .await
        .unwrap();
    send_all(db, s.g.id).await;
    db.close_case(s.p.id, c.case_id.as_str()).await.unwrap();
    let r = db
        .record_inbound(&s.g, &mo("+256772000010", "3"))
        .await
        .unwrap();
    assert_eq!(r.session_id, Some(started.id));
    let over = session(db, &s.p, started.id).await;
    assert_eq!(over.status, SessionStatus::Cancelled);
    assert_eq!(over.reason.as_deref(), Some("the case was closed"));
    assert!(over.answers.is_empty());
    assert!(send_all(db, s.g.id).await.is_empty());
    let case = db.get_case(s.p.id, c.case_id.as_str()).await.unwrap();
    assert!(!case.properties.contains_key("anc_visits"));
}

async fn a_reply_that_cannot_be_handled_stays_stored_for_the_sweep(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    let c = case_with(db, s.p.id, None, "Ka", None, Some("0772000011")).await;
    let other = case_with(db, s.p.id, None, "Lu", None, Some("0772000012")).await;
    let broken = db
        .start_survey(&s.p, s.survey_id, c.case_id.as_str())
        .await
        .unwrap();
    send_all(db, s.g.id).await;
    // The survey cannot be read back (as if its row were damaged).
    let pool = raw_pool(&t.url).await;
    sqlx::query("UPDATE surveys SET definition = '{' WHERE id = $1")
        .bind(s.survey_id)
        .execute(&pool)
        .await
        .unwrap();
    // The gateway is answered: the reply is stored, though it could not be handled.
    let r = db
        .record_inbound(&s.g, &mo("+256772000011", "4"))
        .await
        .unwrap();
    assert!(r.recorded);
    assert_eq!(r.session_id, None);
    // Another number's reply waiting behind it is not held up by it in the sweep.
    let second = Survey::parse(&json!({
        "name": "Other", "questions": [{"key": "ok", "type": "yes_no", "text": "OK?"}]
    }))
    .unwrap();
    let second = db.create_survey(s.p.id, &second, None).await.unwrap();
    let fine = db
        .start_survey(&s.p, second.id, other.case_id.as_str())
        .await
        .unwrap();
    let stored_at = casecast_core::time::now_ms();
    let mut tx = db.begin_write().await.unwrap();
    db.insert_inbound(
        &mut tx,
        &NewInbound {
            project_id: s.p.id,
            case_pk: None,
            phone: "+256772000012",
            text: "yes",
            gateway_id: s.g.id,
            gateway_message_id: None,
            now: stored_at,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let clock = ManualClock::new(stored_at + casecast_engine::inbound::UNHANDLED_AFTER_MS + 1);
    assert_eq!(
        casecast_engine::inbound::handle_unhandled(db, &clock)
            .await
            .unwrap(),
        1,
        "the other number's reply is handled"
    );
    assert_eq!(
        session(db, &s.p, fine.id).await.status,
        SessionStatus::Completed
    );
    // Once the survey reads again, the sweep handles the stored reply, once.
    let definition = serde_json::to_string(&Survey::parse(&survey_body()).unwrap()).unwrap();
    sqlx::query("UPDATE surveys SET definition = $1 WHERE id = $2")
        .bind(definition)
        .bind(s.survey_id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        casecast_engine::inbound::handle_unhandled(db, &clock)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        Value::Object(session(db, &s.p, broken.id).await.answers),
        json!({"visits": 4})
    );
}
