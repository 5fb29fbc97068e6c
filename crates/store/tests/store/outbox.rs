//! The outbox as the dispatcher sees it: claims with leases, the shared rate limit, expiry and
//! opt-outs at claim time, recorded results, and the sweeper.

use casecast_testkit::Workflows;
use std::collections::BTreeSet;

use casecast_store::outbox::{Claim, ClaimRequest, Claimed, Outcome, SendResult};
use casecast_store::projects::Project;
use casecast_store::Db;
use casecast_testkit::{on_both_engines, Dialect, TestDb};

use crate::gateways::log;
use crate::{case_with, project, raw_pool};

on_both_engines!(
    concurrent_claimers_never_share_a_message,
    the_rate_limit_spaces_slots_by_segments_across_claims,
    claims_expire_late_messages_and_cancel_opted_out_ones,
    results_retry_fail_or_expire_as_attempts_and_validity_allow,
    a_sent_result_never_undoes_a_delivery_report,
    many_results_in_one_call_each_reach_their_message,
    the_sweeper_takes_back_dead_leases_and_expires_queued_messages,
    a_stale_answer_last_attempts_and_deleted_gateways,
);

/// A project with a log gateway (rate `rate`) and `n` queued messages to distinct cases.
async fn queued(db: &Db, n: usize, rate: Option<f64>) -> (Project, i64, Vec<i64>) {
    let p = project(db, "alpha", Some("UG")).await;
    let mut g = log("L", &[]);
    g.max_segments_per_second = rate;
    let g = db.create_gateway(p.id, &g).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let phone = format!("0772{:06}", i);
        let case = case_with(db, p.id, None, &format!("Case {i}"), None, Some(&phone)).await;
        let m = db
            .send_to_case(
                &p,
                case.case_id.as_str(),
                &format!("message {i}"),
                None,
                None,
            )
            .await
            .unwrap();
        ids.push(m.id);
    }
    (p, g.id, ids)
}

fn request(gateway_id: i64, rate: Option<f64>, max: usize, worker: &str) -> ClaimRequest<'_> {
    ClaimRequest {
        gateway_id,
        rate,
        max_messages: max,
        window_ms: 250,
        worker,
        lease_ms: 60_000,
    }
}

async fn claim(db: &Db, req: &ClaimRequest<'_>) -> Vec<Claimed> {
    match db.claim_outbound(req).await.unwrap() {
        Claim::Messages(m) => m,
        other => panic!("expected messages, got {other:?}"),
    }
}

async fn status(db: &Db, p: &Project, id: i64) -> (String, Option<String>) {
    let m = db.message(p.id, id).await.unwrap();
    (m.status.to_string(), m.error)
}

async fn concurrent_claimers_never_share_a_message(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let (p, gid, ids) = queued(&t.db, 40, None).await;
    let tasks: Vec<_> = (0..4)
        .map(|w| {
            let db = t.db.clone();
            tokio::spawn(async move {
                let name = format!("w{w}");
                let mut got = Vec::new();
                loop {
                    match db
                        .claim_outbound(&request(gid, None, 3, &name))
                        .await
                        .unwrap()
                    {
                        Claim::Messages(m) => got.extend(m.into_iter().map(|m| m.id)),
                        Claim::Empty => return got,
                        Claim::Throttled { .. } => panic!("no limit was set"),
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "a message was claimed twice");
    assert_eq!(distinct, ids.iter().copied().collect());
    for id in ids {
        let m = t.db.message(p.id, id).await.unwrap();
        assert_eq!((m.status.as_str(), m.attempts), ("sending", 1));
    }
}

async fn the_rate_limit_spaces_slots_by_segments_across_claims(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let (p, gid, _) = queued(&t.db, 6, Some(10.0)).await;
    // One 3-segment message among them.
    let case = case_with(&t.db, p.id, None, "Long", None, Some("0772999999")).await;
    t.db.send_to_case(&p, case.case_id.as_str(), &"x".repeat(400), None, None)
        .await
        .unwrap();
    // Two dispatchers claim by turns until everything is claimed.
    let mut slots: Vec<(i64, i64)> = Vec::new();
    let mut throttled = 0;
    while slots.len() < 7 {
        let worker = if slots.len().is_multiple_of(2) {
            "a"
        } else {
            "b"
        };
        match t
            .db
            .claim_outbound(&request(gid, Some(10.0), 100, worker))
            .await
            .unwrap()
        {
            Claim::Messages(m) => {
                assert!(!m.is_empty());
                slots.extend(m.iter().map(|c| (c.not_before_us, c.segments)));
            }
            Claim::Throttled { until_ms } => {
                throttled += 1;
                let wait = (until_ms - casecast_core::time::now_ms()).clamp(0, 1000);
                tokio::time::sleep(std::time::Duration::from_millis(wait as u64 + 1)).await;
            }
            Claim::Empty => panic!("messages are left"),
        }
    }
    assert!(
        throttled > 0,
        "7 messages (9 segments) at 10/s exceed one window"
    );
    slots.sort();
    for pair in slots.windows(2) {
        let ((first, segments), (next, _)) = (pair[0], pair[1]);
        assert!(
            next - first >= segments * 100_000 - 1,
            "slots {first} and {next} closer than {segments} segment(s) at 10/s"
        );
    }
}

async fn claims_expire_late_messages_and_cancel_opted_out_ones(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let (p, gid, ids) = queued(&t.db, 3, None).await;
    let pool = raw_pool(&t.url).await;
    sqlx::query("UPDATE messages SET expires_at = 1 WHERE id = $1")
        .bind(ids[0])
        .execute(&pool)
        .await
        .unwrap();
    // Put the second number on the list behind the store's back, as a race would.
    let phone = t.db.message(p.id, ids[1]).await.unwrap().phone_number;
    sqlx::query(
        "INSERT INTO opt_outs (project_id, phone, source, created_at) VALUES ($1, $2, 'api', 0)",
    )
    .bind(p.id)
    .bind(&phone)
    .execute(&pool)
    .await
    .unwrap();
    let got = claim(&t.db, &request(gid, None, 10, "w")).await;
    assert_eq!(got.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ids[2]]);
    let (s, e) = status(&t.db, &p, ids[0]).await;
    assert_eq!(s, "expired");
    assert!(e.unwrap().contains("validity"));
    assert_eq!(
        status(&t.db, &p, ids[1]).await,
        ("cancelled".into(), Some("the number opted out".into()))
    );
}

fn result(c: &Claimed, max_attempts: i64, outcome: Outcome) -> SendResult {
    SendResult {
        id: c.id,
        attempts: c.attempts,
        max_attempts,
        expires_at: c.expires_at,
        outcome,
    }
}

async fn results_retry_fail_or_expire_as_attempts_and_validity_allow(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let (p, gid, ids) = queued(&t.db, 4, None).await;
    let c = claim(&t.db, &request(gid, None, 10, "w")).await;
    let now = casecast_core::time::now_ms();
    let retry = |at: i64| Outcome::Retry {
        error: "temporary failure: 503".into(),
        next_attempt_at: at,
    };
    t.db.record_send_results(&[
        result(&c[0], 5, retry(now + 60_000)),
        result(&c[1], 1, retry(now + 60_000)),
        result(&c[2], 5, retry(c[2].expires_at + 1)),
        result(
            &c[3],
            5,
            Outcome::Failed {
                error: "permanent failure: 400".into(),
            },
        ),
    ])
    .await
    .unwrap();
    let m = t.db.message(p.id, ids[0]).await.unwrap();
    assert_eq!((m.status.as_str(), m.attempts), ("queued", 1));
    assert_eq!(m.error.as_deref(), Some("temporary failure: 503"));
    // Not due yet: nothing to claim.
    assert!(matches!(
        t.db.claim_outbound(&request(gid, None, 10, "w"))
            .await
            .unwrap(),
        Claim::Empty
    ));
    let (s, e) = status(&t.db, &p, ids[1]).await;
    assert_eq!(s, "failed");
    assert_eq!(
        e.unwrap(),
        "gave up after 1 attempts: temporary failure: 503"
    );
    let (s, e) = status(&t.db, &p, ids[2]).await;
    assert_eq!(s, "expired");
    assert!(e.unwrap().starts_with("temporary failure: 503; "));
    assert_eq!(
        status(&t.db, &p, ids[3]).await,
        ("failed".into(), Some("permanent failure: 400".into()))
    );
    // Due again: claimed with its second attempt.
    let pool = raw_pool(&t.url).await;
    sqlx::query("UPDATE messages SET next_attempt_at = 0 WHERE id = $1")
        .bind(ids[0])
        .execute(&pool)
        .await
        .unwrap();
    let again = claim(&t.db, &request(gid, None, 10, "w")).await;
    assert_eq!(
        (again.len(), again[0].id, again[0].attempts),
        (1, ids[0], 2)
    );
}

async fn a_sent_result_never_undoes_a_delivery_report(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let (p, gid, ids) = queued(&t.db, 1, None).await;
    let c = claim(&t.db, &request(gid, None, 10, "w")).await;
    let g = t.db.gateway(p.id, gid).await.unwrap();
    // The report overtakes the gateway's answer.
    let found =
        t.db.apply_delivery_report(
            &g,
            &casecast_core::gateway::MessageRef::Ours(ids[0]),
            casecast_core::gateway::DeliveryStatus::Delivered,
            "1",
        )
        .await
        .unwrap();
    assert!(found);
    t.db.record_send_results(&[result(
        &c[0],
        5,
        Outcome::Sent {
            gateway_message_id: Some("gw-1".into()),
        },
    )])
    .await
    .unwrap();
    let m = t.db.message(p.id, ids[0]).await.unwrap();
    assert_eq!(m.status, "delivered");
    assert!(m.sent_at.is_some() && m.delivered_at.is_some());
}

/// Sent results are written many per statement: each message still gets its own gateway id,
/// and the retries and failures among them their own outcome.
async fn many_results_in_one_call_each_reach_their_message(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let (_, gid, ids) = queued(&t.db, 21, None).await;
    let c = claim(&t.db, &request(gid, None, 50, "w")).await;
    assert_eq!(c.len(), 21);
    let now = casecast_core::time::now_ms();
    let results: Vec<SendResult> = c
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let outcome = match i % 7 {
                3 => Outcome::Retry {
                    error: format!("busy {i}"),
                    next_attempt_at: now + 60_000,
                },
                5 => Outcome::Failed {
                    error: format!("refused {i}"),
                },
                6 => Outcome::Sent {
                    gateway_message_id: None,
                },
                _ => Outcome::Sent {
                    gateway_message_id: Some(format!("gw-{}", m.id)),
                },
            };
            result(m, 5, outcome)
        })
        .collect();
    t.db.record_send_results(&results).await.unwrap();
    let pool = raw_pool(&t.url).await;
    for (i, m) in c.iter().enumerate() {
        let row: (String, Option<String>, Option<String>, Option<String>, Option<i64>) =
            sqlx::query_as(
                "SELECT status, gateway_message_id, error, leased_by, sent_at FROM messages WHERE id = $1",
            )
            .bind(m.id)
            .fetch_one(&pool)
            .await
            .unwrap();
        let (status, gateway_id, error, leased_by, sent_at) = row;
        assert_eq!(leased_by, None, "{i}: the lease is released");
        match i % 7 {
            3 => assert_eq!(
                (status.as_str(), error, sent_at),
                ("queued", Some(format!("busy {i}")), None)
            ),
            5 => assert_eq!(
                (status.as_str(), error, sent_at),
                ("failed", Some(format!("refused {i}")), None)
            ),
            6 => assert_eq!((status.as_str(), gateway_id, error), ("sent", None, None)),
            _ => {
                assert_eq!(
                    (status.as_str(), gateway_id, error),
                    ("sent", Some(format!("gw-{}", m.id)), None)
                );
                assert!(sent_at.is_some());
            }
        }
    }
    assert_eq!(
        c.iter().map(|m| m.id).collect::<BTreeSet<_>>(),
        ids.into_iter().collect::<BTreeSet<_>>()
    );
}

async fn the_sweeper_takes_back_dead_leases_and_expires_queued_messages(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let (p, gid, ids) = queued(&t.db, 2, None).await;
    let mut req = request(gid, None, 1, "dead");
    req.lease_ms = 1;
    let c = claim(&t.db, &req).await;
    assert_eq!(c[0].id, ids[0]);
    let pool = raw_pool(&t.url).await;
    sqlx::query("UPDATE messages SET expires_at = 1 WHERE id = $1")
        .bind(ids[1])
        .execute(&pool)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(t.db.sweep_outbox().await.unwrap(), (1, 1));
    let (s, e) = status(&t.db, &p, ids[0]).await;
    assert_eq!(s, "queued");
    assert!(e.unwrap().contains("may arrive twice"));
    assert_eq!(status(&t.db, &p, ids[1]).await.0, "expired");
    // The next claim takes it again, as its second attempt.
    let again = claim(&t.db, &request(gid, None, 10, "alive")).await;
    assert_eq!((again[0].id, again[0].attempts), (ids[0], 2));
    assert_eq!(t.db.sweep_outbox().await.unwrap(), (0, 0));
}

async fn a_stale_answer_last_attempts_and_deleted_gateways(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let (p, gid, ids) = queued(&t.db, 2, None).await;
    let pool = raw_pool(&t.url).await;
    let due = |id: i64, at: i64| {
        sqlx::query("UPDATE messages SET next_attempt_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&pool)
    };
    // The second message waits for the last part of the test.
    due(ids[1], i64::MAX / 2).await.unwrap();
    // A dispatcher's lease runs out; another claims the message again.
    let mut req = request(gid, None, 1, "slow");
    req.lease_ms = 1;
    let first = claim(&t.db, &req).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    t.db.sweep_outbox().await.unwrap();
    let second = claim(&t.db, &request(gid, None, 1, "fast")).await;
    assert_eq!((second[0].id, second[0].attempts), (first[0].id, 2));
    // The first dispatcher's late failure does not touch the second claim.
    let late = Outcome::Failed {
        error: "permanent failure: 400".into(),
    };
    t.db.record_send_results(&[result(&first[0], 5, late)])
        .await
        .unwrap();
    assert_eq!(status(&t.db, &p, ids[0]).await.0, "sending");
    // On its last attempt, a message whose dispatcher died is failed, not sent a third time.
    sqlx::query("UPDATE gateways SET max_attempts = 2 WHERE id = $1")
        .bind(gid)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE messages SET lease_until = 1 WHERE id = $1")
        .bind(ids[0])
        .execute(&pool)
        .await
        .unwrap();
    t.db.sweep_outbox().await.unwrap();
    let (s, e) = status(&t.db, &p, ids[0]).await;
    assert_eq!(s, "failed");
    assert!(e.unwrap().contains("may or may not have been sent"));
    // A retry that comes back to a gateway deleted meanwhile is cancelled by the sweeper.
    due(ids[1], 0).await.unwrap();
    let c = claim(&t.db, &request(gid, None, 1, "w")).await;
    assert_eq!(c[0].id, ids[1]);
    t.db.delete_gateway(p.id, gid).await.unwrap();
    let retry = Outcome::Retry {
        error: "temporary failure: 503".into(),
        next_attempt_at: casecast_core::time::now_ms(),
    };
    t.db.record_send_results(&[result(&c[0], 5, retry)])
        .await
        .unwrap();
    assert_eq!(status(&t.db, &p, ids[1]).await.0, "queued");
    t.db.sweep_outbox().await.unwrap();
    let (s, e) = status(&t.db, &p, ids[1]).await;
    assert_eq!(s, "cancelled");
    assert!(e.unwrap().contains("gateway was deleted"));
}
