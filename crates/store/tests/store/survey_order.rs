//! Replies of one number stored by two processes at once are answered in the order of their
//! ids, on PostgreSQL (where several processes share the database): a reply that took its id
//! first but commits second must not be overtaken. Made deterministic by holding the first
//! reply's insert (another transaction holds its gateway message id, uncommitted) while the
//! second is recorded by another process (another handle). Before the inbound router stored
//! replies under the number's lock, the second reply was committed and answered the question
//! first.

use casecast_core::gateway::InboundSms;
use casecast_core::survey::Survey;
use casecast_store::messages::NewInbound;
use casecast_store::Db;
use casecast_testkit::{Dialect, TestDb, Workflows};
use serde_json::{json, Value};
use sqlx::Connection;
use std::time::Duration;

use crate::gateways::log;
use crate::{case_with, project};

mod replies_committed_out_of_order_are_answered_in_id_order {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::replies_committed_out_of_order_are_answered_in_id_order().await
    }
}

const PHONE: &str = "+256772000001";

fn mo(text: &str, id: &str) -> InboundSms {
    InboundSms {
        from: PHONE.into(),
        to: "8080".into(),
        text: text.into(),
        gateway_message_id: Some(id.into()),
    }
}

/// Backends of this database waiting for a lock.
async fn lock_waits(conn: &mut sqlx::AnyConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

/// Polls (every 20 ms, at most 30 s) until `done` holds for the number of lock waits.
async fn wait_until(conn: &mut sqlx::AnyConnection, what: &str, done: impl Fn(i64) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done(lock_waits(conn).await) {
        assert!(
            std::time::Instant::now() < deadline,
            "not within 30 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn replies_committed_out_of_order_are_answered_in_id_order() {
    let t = TestDb::new(Dialect::Postgres).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let g = db.create_gateway(p.id, &log("L", &[])).await.unwrap();
    let survey = Survey::parse(&json!({
        "name": "Two",
        "max_attempts": 3,
        "expire_after_minutes": 60,
        "questions": [
            {"key": "a", "type": "text", "text": "A?"},
            {"key": "b", "type": "text", "text": "B?"},
            {"key": "c", "type": "text", "text": "C?"}
        ]
    }))
    .unwrap();
    let survey_id = db.create_survey(p.id, &survey, None).await.unwrap().id;
    let c = case_with(db, p.id, None, "Amina", None, Some("0772000001")).await;
    let started = db
        .start_survey(&p, survey_id, c.case_id.as_str())
        .await
        .unwrap();

    // Another transaction holds the gateway message id "first" (inserted, not committed): the
    // first reply's insert takes its id, then waits for that transaction.
    let mut holder = db.begin_write().await.unwrap();
    db.insert_inbound(
        &mut holder,
        &NewInbound {
            project_id: p.id,
            case_pk: None,
            phone: "+256772000999",
            text: "placeholder",
            gateway_id: g.id,
            gateway_message_id: Some("first"),
            now: casecast_core::time::now_ms(),
        },
    )
    .await
    .unwrap();
    let mut watcher = sqlx::AnyConnection::connect(&casecast_store::db::normalise_url(&t.url).1)
        .await
        .unwrap();
    let first = {
        let (db, g) = (db.clone(), g.clone());
        tokio::spawn(async move { db.record_inbound(&g, &mo("one", "first")).await.unwrap() })
    };
    wait_until(&mut watcher, "the first reply waits", |waits| waits >= 1).await;
    // The second reply, from another process (a handle of its own: one process batches the
    // replies that arrive together, so they would not race there): recorded and handled at
    // once, or waiting for the number's lock.
    let other = Db::open(&casecast_store::db::normalise_url(&t.url).1)
        .await
        .unwrap();
    let second = {
        let (db, g) = (other.clone(), g.clone());
        tokio::spawn(async move { db.record_inbound(&g, &mo("two", "second")).await.unwrap() })
    };
    wait_until(
        &mut watcher,
        "the second reply handled or waiting",
        |waits| second.is_finished() || waits >= 2,
    )
    .await;
    holder.rollback().await.unwrap();
    let first = first.await.unwrap();
    let second = second.await.unwrap();
    assert!(first.message.id < second.message.id, "{first:?} {second:?}");
    let s = db.survey_session(p.id, started.id).await.unwrap();
    assert_eq!(
        Value::Object(s.answers),
        json!({"a": "one", "b": "two"}),
        "the replies answer in the order of their ids"
    );
    watcher.close().await.unwrap();
}
