//! Cancelling a broadcast: before its fan-out, between two batches, while it runs; what was
//! handed to a gateway stays as it is, and a cancelled schedule fires no more.

use casecast_store::membership::Change;
use casecast_store::outbox::{Claim, ClaimRequest, Outcome, SendResult};
use casecast_store::projects::Project;
use casecast_store::Db;
use casecast_testkit::Workflows;
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use serde_json::json;

use crate::broadcast_reruns::interrupted;
use crate::broadcasts::{crowd, draft, fan_out, occurrences, outbox, project_in, send_now, CROWD};
use crate::{case_with, change, group};

on_both_engines!(
    cancelling_stops_a_fan_out_before_or_while_it_runs,
    cancelling_spares_what_was_handed_over_and_ends_the_schedule,
);

const WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether every message of the occurrence is cancelled; returns how many there are.
async fn all_cancelled(db: &Db, p: &Project, occurrence: i64) -> i64 {
    let messages = outbox(db, p.id, occurrence).await;
    assert!(messages.iter().all(|m| m.status == "cancelled"));
    messages.len() as i64
}

async fn cancelling_stops_a_fan_out_before_or_while_it_runs(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project_in(db, "alpha", "Africa/Kampala").await;
    let g = crowd(db, &p, CROWD).await;

    // Before its job runs: the job finds it cancelled and writes nothing.
    let (b, occurrence) = send_now(db, &p, g).await;
    assert_eq!(db.cancel_broadcast(p.id, b).await.unwrap(), 0);
    fan_out(db, occurrence).await;
    let o = db.occurrence(p.id, occurrence).await.unwrap();
    assert_eq!((o.status.as_str(), o.queued), ("cancelled", 0));
    assert!(outbox(db, p.id, occurrence).await.is_empty());
    assert_eq!(db.broadcast(p.id, b).await.unwrap().status, "cancelled");

    // Between two batches (its worker died): what was queued is cancelled, the retried job
    // writes nothing more.
    let (b, occurrence) = send_now(db, &p, g).await;
    let (job, written) = interrupted(db, &p, occurrence).await;
    assert_eq!(db.cancel_broadcast(p.id, b).await.unwrap() as i64, written);
    db.process_fanout(occurrence, job, "a").await.unwrap();
    assert_eq!(all_cancelled(db, &p, occurrence).await, written);
    let o = db.occurrence(p.id, occurrence).await.unwrap();
    assert_eq!((o.status.as_str(), o.queued), ("cancelled", written));

    // While a live worker fans out: nothing is written after the cancel returns.
    let (b, occurrence) = send_now(db, &p, g).await;
    let running = {
        let db = db.clone();
        tokio::spawn(async move { fan_out(&db, occurrence).await })
    };
    casecast_testkit::eventually("a first batch committed", WITHIN, || async {
        let o = db.occurrence(p.id, occurrence).await.unwrap();
        (o.queued > 0).then_some(())
    })
    .await;
    let cancelled = db.cancel_broadcast(p.id, b).await.unwrap() as i64;
    let at_cancel = outbox(db, p.id, occurrence).await.len() as i64;
    running.await.unwrap();
    assert_eq!(all_cancelled(db, &p, occurrence).await, at_cancel);
    assert_eq!(cancelled, at_cancel, "every queued message was cancelled");
    let o = db.occurrence(p.id, occurrence).await.unwrap();
    assert_eq!(o.queued, at_cancel);
    if o.queued < CROWD as i64 {
        assert_eq!(o.status, "cancelled", "{o:?}");
    }
}

async fn cancelling_spares_what_was_handed_over_and_ends_the_schedule(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project_in(db, "alpha", "Africa/Kampala").await;
    let gateway = db.list_gateways(p.id).await.unwrap().remove(0).id;
    let small = group(db, p.id, "Small").await;
    let mut ten = Vec::new();
    for i in 0..10 {
        let phone = format!("07720000{i:02}");
        ten.push(case_with(db, p.id, None, &format!("P{i}"), None, Some(&phone)).await);
    }
    let ten: Vec<&str> = ten.iter().map(|c| c.case_id.as_str()).collect();
    change(db, p.id, small.id, Change::Add, &ten).await;
    let (b, occurrence) = send_now(db, &p, small.id).await;
    fan_out(db, occurrence).await;
    let request = ClaimRequest {
        gateway_id: gateway,
        rate: None,
        max_messages: 3,
        window_ms: 250,
        worker: "w",
        lease_ms: 60_000,
    };
    let Claim::Messages(claimed) = db.claim_outbound(&request).await.unwrap() else {
        panic!("queued messages to claim")
    };
    assert_eq!(claimed.len(), 3);
    let sent: Vec<SendResult> = (claimed[..2].iter())
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
    db.record_send_results(&sent).await.unwrap();
    assert_eq!(db.cancel_broadcast(p.id, b).await.unwrap(), 7);
    assert_eq!(
        db.cancel_broadcast(p.id, b).await.unwrap(),
        0,
        "once is enough"
    );
    let o = db.occurrence(p.id, occurrence).await.unwrap();
    assert_eq!(o.status, "done", "the fan-out had finished");
    let counts: Vec<(&str, i64)> = (o.counts.iter())
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| (s.as_str(), *n))
        .collect();
    assert_eq!(counts, [("cancelled", 7), ("sending", 1), ("sent", 2)]);
    let b = db.broadcast(p.id, b).await.unwrap();
    assert_eq!((b.status.as_str(), b.next_run_at), ("cancelled", None));

    // A daily broadcast cancelled before its first day never fires.
    let schedule = json!({"kind": "daily", "start_date": "2027-01-01", "time": "09:00"});
    let d = draft(&[small.id], &[], json!({"*": "Daily"}), schedule);
    let daily = db.create_broadcast(&p, &d, None).await.unwrap();
    db.cancel_broadcast(p.id, daily.id).await.unwrap();
    let year_later = daily.next_run_at.unwrap() + 365 * 86_400_000;
    assert_eq!(db.fire_due_broadcasts(year_later).await.unwrap(), 0);
    assert!(occurrences(db, p.id, daily.id).await.is_empty());
}
