//! A fan-out never writes a message twice: run again after it finished, resumed after its
//! worker died between batches, run by two workers at once, or with its cursor put back; and a
//! resumed fan-out still reaches every recipient.

use casecast_store::broadcasts::Excluded;
use casecast_store::membership::Change;
use casecast_store::projects::Project;
use casecast_store::Db;
use casecast_testkit::Workflows;
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use serde_json::json;

use crate::broadcasts::{
    crowd, distinct_phones, draft, fan_out, occurrences, outbox, project_in, send_now, CROWD,
};
use crate::{case_with, change, group, raw_pool};

on_both_engines!(
    a_fan_out_run_again_writes_nothing_twice,
    an_interrupted_fan_out_resumes_where_it_stopped,
    a_group_deleted_between_batches_leaves_the_other_groups_whole,
);

/// Starts an occurrence's fan-out job, claimed by worker `a`, under a worker that no longer
/// holds it: it writes one batch, finds its lease gone and stops, leaving the occurrence as a
/// worker killed between two batches does. Returns the job id and the messages written.
pub async fn interrupted(db: &Db, p: &Project, occurrence: i64) -> (i64, i64) {
    let job = db
        .claim_job_for(casecast_store::jobs::JobKind::Fanout, occurrence, "a")
        .await
        .unwrap();
    let job = job.expect("the occurrence's fan-out job").id;
    match db.process_fanout(occurrence, job, "gone").await {
        Err(casecast_engine::JobError::LeaseLost(_)) => {}
        other => panic!("a worker without the lease carried on: {other:?}"),
    }
    let stopped = db.occurrence(p.id, occurrence).await.unwrap();
    let written = outbox(db, p.id, occurrence).await.len() as i64;
    assert_eq!(
        stopped.queued, written,
        "the counts move with the rows they count"
    );
    assert!(
        written > 0 && written < CROWD as i64,
        "one batch: {written}"
    );
    (job, written)
}

/// The dead worker's lease on the job runs out and `worker` claims it.
async fn take_over(t: &TestDb, occurrence: i64, job: i64, worker: &str) {
    let pool = raw_pool(&t.url).await;
    sqlx::query("UPDATE jobs SET locked_until = 0 WHERE id = $1")
        .bind(job)
        .execute(&pool)
        .await
        .unwrap();
    let taken =
        t.db.claim_job_for(casecast_store::jobs::JobKind::Fanout, occurrence, worker)
            .await;
    assert_eq!(taken.unwrap().map(|j| j.id), Some(job));
}

/// The cursor names its recipient source by position in the broadcast's groups that still
/// exist: a group deleted while the fan-out is stopped between batches must not move it onto
/// another source, whose cases would then be skipped.
async fn a_group_deleted_between_batches_leaves_the_other_groups_whole(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project_in(db, "alpha", "Africa/Kampala").await;
    let small = group(db, p.id, "Small").await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let phone = format!("07720000{i:02}");
        ids.push(case_with(db, p.id, None, &format!("S{i}"), None, Some(&phone)).await);
    }
    let ids: Vec<&str> = ids.iter().map(|c| c.case_id.as_str()).collect();
    change(db, p.id, small.id, Change::Add, &ids).await;
    let big = crowd(db, &p, CROWD).await;
    let d = draft(
        &[small.id, big],
        &[],
        json!({"*": "Hi {case.name}"}),
        json!(null),
    );
    let b = db.create_broadcast(&p, &d, None).await.unwrap();
    let occurrence = occurrences(db, p.id, b.id).await.remove(0).id;
    // The first batch is the small group, whole; then the worker stops.
    let (job, written) = interrupted(db, &p, occurrence).await;
    assert_eq!(written, 10);
    db.delete_group(p.id, small.id).await.unwrap();
    take_over(&t, occurrence, job, "b").await;
    db.process_fanout(occurrence, job, "b").await.unwrap();
    let o = db.occurrence(p.id, occurrence).await.unwrap();
    let all = distinct_phones(&outbox(db, p.id, occurrence).await).len();
    assert_eq!(
        (o.status.as_str(), all),
        ("done", CROWD + 10),
        "the big group's cases were skipped: {o:?}"
    );
}

/// A fan-out dropped between batches finishes with exact counts when run again, even with the
/// dead worker's successor and a not-quite-dead worker running it at once.
async fn an_interrupted_fan_out_resumes_where_it_stopped(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project_in(db, "alpha", "Africa/Kampala").await;
    let g = crowd(db, &p, CROWD).await;
    let (_, occurrence) = send_now(db, &p, g).await;
    let (job, _) = interrupted(db, &p, occurrence).await;

    // Its lease runs out and worker b takes the job over while worker a carries on: both run
    // the fan-out at once; a stops once it sees its lease gone.
    take_over(&t, occurrence, job, "b").await;
    let (a, b) = tokio::join!(
        db.process_fanout(occurrence, job, "a"),
        db.process_fanout(occurrence, job, "b")
    );
    b.unwrap();
    match a {
        Ok(()) | Err(casecast_engine::JobError::LeaseLost(_)) => {}
        Err(e) => panic!("the old worker failed otherwise: {e}"),
    }
    let o = db.occurrence(p.id, occurrence).await.unwrap();
    assert_eq!((o.status.as_str(), o.queued), ("done", CROWD as i64));
    assert_eq!(o.excluded, Excluded::default(), "{o:?}");
    assert_eq!(
        distinct_phones(&outbox(db, p.id, occurrence).await).len(),
        CROWD
    );
}

async fn a_fan_out_run_again_writes_nothing_twice(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project_in(db, "alpha", "Africa/Kampala").await;
    let g = crowd(db, &p, CROWD).await;
    let (_, occurrence) = send_now(db, &p, g).await;
    fan_out(db, occurrence).await;
    let done = db.occurrence(p.id, occurrence).await.unwrap();
    assert_eq!((done.status.as_str(), done.queued), ("done", CROWD as i64));
    assert_eq!(
        distinct_phones(&outbox(db, p.id, occurrence).await).len(),
        CROWD
    );

    // The job runs again (a worker that lost its lease, a retried job): nothing changes.
    db.process_fanout(occurrence, 0, "late").await.unwrap();
    let again = db.occurrence(p.id, occurrence).await.unwrap();
    assert_eq!((again.queued, again.excluded), (done.queued, done.excluded));
    assert_eq!(outbox(db, p.id, occurrence).await.len(), CROWD);

    // Worse than a crash: the cursor put back to the start of the second batch, the occurrence
    // reopened and its job queued again. The rows already written are skipped by the unique
    // number index.
    let pool = raw_pool(&t.url).await;
    sqlx::query(
        "UPDATE jobs SET done_at = NULL, locked_until = NULL WHERE kind = 'fanout' AND ref_id = $1",
    )
    .bind(occurrence)
    .execute(&pool)
    .await
    .unwrap();
    let fifth: i64 = sqlx::query_scalar(
        "SELECT MAX(case_pk) FROM (SELECT case_pk FROM case_group_members WHERE group_id = $1
         ORDER BY case_pk LIMIT 5000) t",
    )
    .bind(g)
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE broadcast_occurrences SET status = 'fanning_out', source_pos = 0, cursor_pk = $1
         WHERE id = $2",
    )
    .bind(fifth)
    .bind(occurrence)
    .execute(&pool)
    .await
    .unwrap();
    fan_out(db, occurrence).await;
    let rerun = db.occurrence(p.id, occurrence).await.unwrap();
    assert_eq!(rerun.status, "done");
    // (The occurrence's own tallies may count the rewritten batch twice: a real crash never
    // moves the cursor back, since it moves in the transaction that writes the rows.)
    assert_eq!(rerun.counts["queued"], CROWD as i64);
    assert_eq!(
        distinct_phones(&outbox(db, p.id, occurrence).await).len(),
        CROWD
    );
    let per_phone: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT phone FROM messages WHERE occurrence_id = $1
         GROUP BY phone HAVING COUNT(*) > 1) d",
    )
    .bind(occurrence)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(per_phone, 0);
}
