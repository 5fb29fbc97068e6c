//! The inbound router's batches: replies that arrive together are stored in one transaction
//! and handled in another, with one statement per table (`casecast_engine::inbound`). Each
//! message is still stored once (a gateway's second delivery included), handled once, in its
//! number's order, with the same outcome as alone: the answer saved to the session and the
//! case, the next question (or the question again) queued, a STOP opting out and cancelling.
//! A batch that cannot be handled is handled number by number, so that one number's failure
//! does not hold up the others'.

use casecast_core::survey::session::SessionStatus;
use casecast_engine::clock::ManualClock;
use casecast_store::messages::NewInbound;
use casecast_store::Db;
use casecast_testkit::Workflows;
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use serde_json::{json, Value};

use crate::surveys::{mo, send_all, session, setup, survey_body};
use crate::{case_with, raw_pool};

on_both_engines!(
    replies_arriving_together_are_each_stored_and_handled_once,
    many_numbers_are_handled_in_one_go_and_each_number_in_order,
    a_number_that_fails_a_batch_does_not_hold_up_the_others,
    messages_written_together_are_each_stored_once_in_order,
);

fn phone(i: usize) -> String {
    format!("+2567720{i:05}")
}

async fn replies_arriving_together_are_each_stored_and_handled_once(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    const N: usize = 40;
    let mut sessions = Vec::new();
    for i in 0..N {
        let c = case_with(db, s.p.id, None, &format!("P{i}"), None, Some(&phone(i))).await;
        sessions.push(
            db.start_survey(&s.p, s.survey_id, c.case_id.as_str())
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        send_all(db, s.g.id).await.len(),
        N,
        "the intro with the first question"
    );
    // Every number answers at once (number 1 with an invalid answer, number 2 with STOP), and
    // the gateway delivers the first five replies twice.
    let mut tasks = Vec::new();
    for i in (0..N).chain(0..5) {
        let text = match i {
            1 => "twelve".to_string(),
            2 => "STOP".to_string(),
            _ => format!("{}", i % 20),
        };
        let mut sms = mo(&phone(i), &text);
        sms.gateway_message_id = Some(format!("mo-{i}"));
        let (db, g) = (db.clone(), s.g.clone());
        tasks.push(tokio::spawn(async move {
            (i, db.record_inbound(&g, &sms).await.unwrap())
        }));
    }
    let mut first: std::collections::HashMap<usize, i64> = Default::default();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    for (i, o) in &outcomes {
        if o.recorded {
            assert!(
                first.insert(*i, o.message.id).is_none(),
                "number {i} stored twice"
            );
        }
    }
    assert_eq!(first.len(), N, "each reply stored once");
    for (i, o) in &outcomes {
        assert_eq!(
            o.message.id, first[i],
            "a second delivery is the first message"
        );
        assert_eq!(o.message.phone_number, phone(*i));
    }
    for (i, started) in sessions.iter().enumerate() {
        let done = session(db, &s.p, started.id).await;
        match i {
            1 => {
                assert_eq!(done.status, SessionStatus::Active);
                assert_eq!(done.current_question, Some(0));
                assert_eq!(done.state.attempts, 1, "the invalid answer counted");
            }
            2 => assert_eq!(done.status, SessionStatus::Cancelled),
            _ => {
                assert_eq!(done.status, SessionStatus::Active, "session {i}");
                assert_eq!(done.current_question, Some(1), "session {i}");
                assert_eq!(Value::Object(done.answers), json!({"visits": i % 20}));
                let case = db.get_case(s.p.id, &done.case_id).await.unwrap();
                assert_eq!(
                    case.properties.get("anc_visits").map(String::as_str),
                    Some((i % 20).to_string().as_str())
                );
            }
        }
        // Each reply's outcome names the session it answered (a STOP answers none).
        let reply = outcomes
            .iter()
            .find(|(n, o)| *n == i && o.recorded)
            .unwrap();
        let expected = if i == 2 { None } else { Some(started.id) };
        assert_eq!(reply.1.session_id, expected, "reply of number {i}");
    }
    assert!(db.is_opted_out(s.p.id, &phone(2)).await.unwrap());
    let mut sent = send_all(db, s.g.id).await;
    sent.sort();
    let next = "How do you feel?\n1. Good 2. Bad".to_string();
    assert_eq!(
        sent.iter().filter(|t| **t == next).count(),
        N - 2,
        "one next question for each valid answer: {sent:?}"
    );
    assert_eq!(
        sent.len(),
        N,
        "and the question again, and the STOP confirmation"
    );
    // Nothing is left for the sweep.
    let later = ManualClock::new(casecast_core::time::now_ms() + 60_000);
    assert_eq!(
        casecast_engine::inbound::handle_unhandled(db, &later)
            .await
            .unwrap(),
        0
    );
}

/// Stores an inbound message without handling it (as a process that died after storing it).
async fn store(db: &Db, project_id: i64, gateway_id: i64, phone: &str, text: &str) -> i64 {
    let mut tx = db.begin_write().await.unwrap();
    let id = db
        .insert_inbound(
            &mut tx,
            &NewInbound {
                project_id,
                case_pk: None,
                phone,
                text,
                gateway_id,
                gateway_message_id: None,
                now: casecast_core::time::now_ms(),
            },
        )
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn many_numbers_are_handled_in_one_go_and_each_number_in_order(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    let mut sessions = Vec::new();
    for i in 0..6 {
        let c = case_with(db, s.p.id, None, &format!("P{i}"), None, Some(&phone(i))).await;
        sessions.push(
            db.start_survey(&s.p, s.survey_id, c.case_id.as_str())
                .await
                .unwrap(),
        );
    }
    // A case without a session, and a number of no case.
    case_with(db, s.p.id, None, "Quiet", None, Some(&phone(10))).await;
    send_all(db, s.g.id).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(store(db, s.p.id, s.g.id, &phone(i), &format!("{i}")).await);
    }
    // Number 0 answers twice (the second answers the second question), number 3 says STOP
    // after its answer.
    ids.push(store(db, s.p.id, s.g.id, &phone(0), "bad").await);
    ids.push(store(db, s.p.id, s.g.id, &phone(3), "stop").await);
    ids.push(store(db, s.p.id, s.g.id, &phone(10), "hello").await);
    ids.push(store(db, s.p.id, s.g.id, &phone(11), "who is this").await);
    let phones: Vec<String> = [0, 1, 2, 3, 4, 5, 10, 11]
        .iter()
        .map(|i| phone(*i))
        .collect();
    let phones: Vec<&str> = phones.iter().map(String::as_str).collect();
    let handled =
        casecast_engine::inbound::handle_numbers(db, &s.p, &phones, casecast_core::time::now_ms())
            .await;
    let mut got: Vec<i64> = handled.iter().map(|h| h.message_id).collect();
    got.sort();
    assert_eq!(got, ids, "each waiting message handled once");
    let zero = session(db, &s.p, sessions[0].id).await;
    assert_eq!(
        Value::Object(zero.answers),
        json!({"visits": 0, "feeling": "bad"}),
        "a number's messages answer in their order"
    );
    let three = session(db, &s.p, sessions[3].id).await;
    assert_eq!(three.status, SessionStatus::Cancelled);
    assert_eq!(Value::Object(three.answers), json!({"visits": 3}));
    for i in [1, 2, 4, 5] {
        let s1 = session(db, &s.p, sessions[i].id).await;
        assert_eq!(Value::Object(s1.answers), json!({"visits": i}));
    }
    let no_session: Vec<_> = handled
        .iter()
        .filter(|h| h.message_id == ids[8] || h.message_id == ids[9])
        .collect();
    assert_eq!(no_session.len(), 2);
    assert!(no_session.iter().all(|h| h.session_id.is_none()));
    // A second call finds nothing waiting.
    assert!(casecast_engine::inbound::handle_numbers(
        db,
        &s.p,
        &phones,
        casecast_core::time::now_ms()
    )
    .await
    .is_empty());
}

async fn a_number_that_fails_a_batch_does_not_hold_up_the_others(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    let other = casecast_core::survey::Survey::parse(&json!({
        "name": "Other", "questions": [{"key": "ok", "type": "yes_no", "text": "OK?"}]
    }))
    .unwrap();
    let other = db.create_survey(s.p.id, &other, None).await.unwrap();
    let mut sessions = Vec::new();
    for i in 0..3 {
        let c = case_with(db, s.p.id, None, &format!("P{i}"), None, Some(&phone(i))).await;
        let survey = if i == 1 { other.id } else { s.survey_id };
        sessions.push(
            db.start_survey(&s.p, survey, c.case_id.as_str())
                .await
                .unwrap(),
        );
    }
    send_all(db, s.g.id).await;
    // Number 1's survey cannot be read back (as if its row were damaged).
    let pool = raw_pool(&t.url).await;
    sqlx::query("UPDATE surveys SET definition = '{' WHERE id = $1")
        .bind(other.id)
        .execute(&pool)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(store(db, s.p.id, s.g.id, &phone(i), "yes 4").await);
    }
    let phones: Vec<String> = (0..3).map(phone).collect();
    let phones: Vec<&str> = phones.iter().map(String::as_str).collect();
    let handled =
        casecast_engine::inbound::handle_numbers(db, &s.p, &phones, casecast_core::time::now_ms())
            .await;
    let mut got: Vec<i64> = handled.iter().map(|h| h.message_id).collect();
    got.sort();
    assert_eq!(
        got,
        vec![ids[0], ids[2]],
        "the two other numbers are handled"
    );
    for i in [0, 2] {
        let done = session(db, &s.p, sessions[i].id).await;
        assert_eq!(
            done.state.attempts, 1,
            "'yes 4' is not a number: asked again"
        );
    }
    // Number 1's reply stays stored, unhandled, for the sweep.
    let later = ManualClock::new(casecast_core::time::now_ms() + 60_000);
    assert_eq!(
        casecast_engine::inbound::handle_unhandled(db, &later)
            .await
            .unwrap(),
        0,
        "still failing"
    );
    let (answered,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM messages WHERE direction = 'inbound' AND handled_at IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(answered, 1);
}

async fn messages_written_together_are_each_stored_once_in_order(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let s = setup(db, survey_body()).await;
    let now = casecast_core::time::now_ms();
    let new = |phone: &'static str, text: &'static str, gid: Option<&'static str>| NewInbound {
        project_id: s.p.id,
        case_pk: None,
        phone,
        text,
        gateway_id: s.g.id,
        gateway_message_id: gid,
        now,
    };
    let mut tx = db.begin_write().await.unwrap();
    let first = db
        .insert_inbound(&mut tx, &new("+256772000500", "before", Some("mo-0")))
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    // A delivery stored before, one delivered twice in the list, two without an id with the
    // same text, each written once.
    let news = vec![
        new("+256772000501", "one", Some("mo-1")),
        new("+256772000500", "before", Some("mo-0")),
        new("+256772000502", "same", None),
        new("+256772000501", "one", Some("mo-1")),
        new("+256772000502", "same", None),
        new("+256772000503", "three", Some("mo-3")),
    ];
    let mut tx = db.begin_write().await.unwrap();
    let ids = db.insert_inbound_many(&mut tx, &news).await.unwrap();
    tx.commit().await.unwrap();
    let written: Vec<i64> = ids.iter().flatten().copied().collect();
    assert_eq!(
        ids.iter().map(Option::is_some).collect::<Vec<_>>(),
        [true, false, true, false, true, true]
    );
    assert!(
        written.windows(2).all(|w| w[0] < w[1]),
        "ids in order: {ids:?}"
    );
    assert!(written[0] > first);
    let pool = raw_pool(&t.url).await;
    for (new, id) in news.iter().zip(&ids) {
        let Some(id) = id else { continue };
        let (phone, text, gid): (String, String, Option<String>) =
            sqlx::query_as("SELECT phone, text, gateway_message_id FROM messages WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(
            (phone.as_str(), text.as_str(), gid.as_deref()),
            (new.phone, new.text, new.gateway_message_id)
        );
    }
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE direction = 'inbound'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(count, 5);
}
