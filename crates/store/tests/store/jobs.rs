//! The job queue: claims with a lease, renewals, retries, expired leases taken over, many
//! claimers at once, and the worker loop.

use casecast_testkit::Workflows;
use std::collections::BTreeSet;

use casecast_store::membership::Change;
use casecast_store::Db;
use casecast_testkit::{on_both_engines, Dialect, TestDb};

use crate::{all_results, case_with, csv, group, member_ids, project, raw_pool};

on_both_engines!(
    claim_job_takes_the_oldest_job_and_holds_it,
    renew_job_works_only_for_the_holder_of_a_live_job,
    retry_job_releases_the_job_after_its_delay,
    an_expired_lease_is_taken_over_and_the_old_holder_stops,
    concurrent_claimers_never_share_a_job,
    the_worker_loop_processes_queued_uploads,
    a_worker_that_lost_its_lease_leaves_the_job_to_the_new_holder,
);

/// Queues `n` uploads (hence `n` jobs) in a fresh project; returns the upload ids in order.
async fn queue_uploads(db: &Db, n: usize) -> Vec<i64> {
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "G").await;
    let mut ids = Vec::new();
    for i in 0..n {
        let upload = db
            .create_upload(
                p.id,
                g.id,
                Change::Add,
                &format!("{i}.csv"),
                csv("case_identifier", &["C-1"]),
                None,
            )
            .await
            .unwrap();
        ids.push(upload.id);
    }
    ids
}

/// Makes every lease look expired.
async fn expire_leases(url: &str) {
    let pool = raw_pool(url).await;
    sqlx::query("UPDATE jobs SET locked_until = 1 WHERE locked_until IS NOT NULL")
        .execute(&pool)
        .await
        .unwrap();
}

async fn claim_job_takes_the_oldest_job_and_holds_it(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    assert!(db.claim_job("a").await.unwrap().is_none(), "an empty queue");
    let uploads = queue_uploads(db, 2).await;
    let first = db.claim_job("a").await.unwrap().unwrap();
    assert_eq!(
        (first.kind.map(|k| k.as_str()), first.ref_id, first.attempts),
        (Some("upload"), uploads[0], 1)
    );
    let second = db.claim_job("b").await.unwrap().unwrap();
    assert_eq!(second.ref_id, uploads[1]);
    assert_ne!(second.id, first.id);
    assert!(
        db.claim_job("c").await.unwrap().is_none(),
        "both are leased"
    );
    assert!(
        db.claim_job("a").await.unwrap().is_none(),
        "even for their holder"
    );
    db.finish_job(first.id).await.unwrap();
    db.finish_job(second.id).await.unwrap();
    expire_leases(&t.url).await;
    assert!(
        db.claim_job("c").await.unwrap().is_none(),
        "finished jobs never return"
    );
}

async fn renew_job_works_only_for_the_holder_of_a_live_job(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    queue_uploads(db, 1).await;
    let job = db.claim_job("a").await.unwrap().unwrap();
    assert!(db.renew_job(job.id, "a").await.unwrap());
    assert!(!db.renew_job(job.id, "b").await.unwrap(), "not b's job");
    assert!(
        !db.renew_job(job.id + 100, "a").await.unwrap(),
        "no such job"
    );
    assert!(db.claim_job("b").await.unwrap().is_none(), "still leased");
    db.finish_job(job.id).await.unwrap();
    assert!(!db.renew_job(job.id, "a").await.unwrap(), "a finished job");
}

async fn retry_job_releases_the_job_after_its_delay(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    queue_uploads(db, 1).await;
    let job = db.claim_job("a").await.unwrap().unwrap();
    db.retry_job(job.id, 0).await.unwrap();
    assert!(
        !db.renew_job(job.id, "a").await.unwrap(),
        "the claim is gone"
    );
    let again = db.claim_job("b").await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (job.id, 2));
    db.retry_job(job.id, 3_600_000).await.unwrap();
    assert!(
        db.claim_job("c").await.unwrap().is_none(),
        "not due for an hour"
    );
    let pool = raw_pool(&t.url).await;
    sqlx::query("UPDATE jobs SET run_at = 0 WHERE id = $1")
        .bind(job.id)
        .execute(&pool)
        .await
        .unwrap();
    let third = db.claim_job("c").await.unwrap().unwrap();
    assert_eq!((third.id, third.attempts), (job.id, 3));
}

async fn an_expired_lease_is_taken_over_and_the_old_holder_stops(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "G").await;
    let mut cases = String::from("name,external_id\n");
    let mut lines = Vec::new();
    for i in 0..4500 {
        cases.push_str(&format!("Case {i},E-{i}\n"));
        lines.push(format!("E-{i}"));
    }
    crate::import(db, &p, cases.as_bytes(), "cases.csv")
        .await
        .unwrap();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let upload = db
        .create_upload(
            p.id,
            g.id,
            Change::Add,
            "big.csv",
            csv("case_identifier", &lines),
            None,
        )
        .await
        .unwrap();
    let old = db.claim_job("old").await.unwrap().unwrap();
    // "old" stalls past its lease; "new" takes the job over.
    expire_leases(&t.url).await;
    let new = db.claim_job("new").await.unwrap().unwrap();
    assert_eq!((new.id, new.attempts), (old.id, 2));
    // "old" wakes up: it writes at most the batch in hand, then sees it lost the lease.
    match db.process_upload(old.ref_id, old.id, "old").await {
        Err(casecast_engine::JobError::LeaseLost(_)) => {}
        other => panic!("expected lease_lost, got {other:?}"),
    }
    let stopped = db.get_upload(p.id, upload.id).await.unwrap();
    assert_eq!(stopped.status, "running");
    assert_eq!(stopped.processed_rows, 2000);
    // "new" carries on from there.
    db.process_upload(new.ref_id, new.id, "new").await.unwrap();
    db.finish_job(new.id).await.unwrap();
    let done = db.get_upload(p.id, upload.id).await.unwrap();
    assert_eq!(done.status, "done");
    assert_eq!((done.total_rows, done.processed_rows), (4500, 4500));
    assert_eq!(done.counts.get("added"), Some(&4500));
    assert_eq!(done.counts.len(), 1, "{:?}", done.counts);
    let rows: Vec<i64> = all_results(db, p.id, upload.id, 5000)
        .await
        .iter()
        .map(|r| r.row)
        .collect();
    assert_eq!(rows, (2..=4501).collect::<Vec<i64>>());
    assert_eq!(member_ids(db, p.id, g.id).await.len(), 4500);
}

async fn concurrent_claimers_never_share_a_job(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let uploads = queue_uploads(db, 12).await;
    let mut tasks = Vec::new();
    for w in 0..6 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(job) = db.claim_job(&format!("w{w}")).await.unwrap() {
                got.push((job.id, job.ref_id));
            }
            got
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    let ids: BTreeSet<i64> = claimed.iter().map(|c| c.0).collect();
    assert_eq!(
        ids.len(),
        claimed.len(),
        "a job was claimed twice: {claimed:?}"
    );
    let refs: BTreeSet<i64> = claimed.iter().map(|c| c.1).collect();
    assert_eq!(refs, uploads.into_iter().collect(), "every job was claimed");
}

async fn the_worker_loop_processes_queued_uploads(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "G").await;
    case_with(db, p.id, Some("C-1"), "Aber", None, None).await;
    case_with(db, p.id, Some("C-2"), "Okello", None, None).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(casecast_engine::worker::run_worker(
        db.clone(),
        casecast_engine::worker::WorkerContext::new("loop"),
        stop_rx,
    ));
    let good = db
        .create_upload(
            p.id,
            g.id,
            Change::Add,
            "a.csv",
            csv("case_identifier", &["C-1", "C-2"]),
            None,
        )
        .await
        .unwrap();
    // A workbook that cannot be read fails in its job (a sheet without an identifier column
    // is refused before it gets one).
    let broken = {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file("xl/workbook.xml", options).unwrap();
        zip.write_all(b"this is not xml <<<").unwrap();
        zip.start_file("[Content_Types].xml", options).unwrap();
        zip.write_all(b"nor this").unwrap();
        zip.finish().unwrap().into_inner()
    };
    let bad = db
        .create_upload(p.id, g.id, Change::Add, "b.xlsx", broken, None)
        .await
        .unwrap();
    // Wait (with a generous bound, only so that a hang fails) for both to end.
    let mut ended = false;
    for _ in 0..1200 {
        let a = db.get_upload(p.id, good.id).await.unwrap();
        let b = db.get_upload(p.id, bad.id).await.unwrap();
        if a.status == "done" && b.status == "failed" {
            ended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop_tx.send(true).unwrap();
    worker.await.unwrap();
    assert!(ended, "the worker did not finish the uploads");
    assert_eq!(member_ids(db, p.id, g.id).await, vec!["C-1", "C-2"]);
    let pool = raw_pool(&t.url).await;
    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE done_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(open, 0, "both jobs are finished");
}

async fn a_worker_that_lost_its_lease_leaves_the_job_to_the_new_holder(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "G").await;
    let mut cases = String::from("name,external_id\n");
    let mut lines = Vec::new();
    for i in 0..2500 {
        cases.push_str(&format!("Case {i},E-{i}\n"));
        lines.push(format!("E-{i}"));
    }
    crate::import(db, &p, cases.as_bytes(), "cases.csv")
        .await
        .unwrap();
    // As soon as the first batch is written, another worker ("thief") holds the job: the
    // worker loop's renewal after that batch fails.
    let pool = raw_pool(&t.url).await;
    let steal = "UPDATE jobs SET locked_by = 'thief', locked_until = 9000000000000";
    match engine {
        Dialect::Sqlite => {
            sqlx::query(&format!(
                "CREATE TRIGGER steal AFTER UPDATE OF processed_rows ON uploads BEGIN {steal}; END"
            ))
            .execute(&pool)
            .await
            .unwrap();
        }
        Dialect::Postgres => {
            sqlx::query(&format!(
                "CREATE FUNCTION steal() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {steal}; RETURN NULL; END $$"
            ))
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(
                "CREATE TRIGGER steal AFTER UPDATE OF processed_rows ON uploads FOR EACH ROW EXECUTE FUNCTION steal()",
            )
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let upload = db
        .create_upload(
            p.id,
            g.id,
            Change::Add,
            "big.csv",
            csv("case_identifier", &lines),
            None,
        )
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(casecast_engine::worker::run_worker(
        db.clone(),
        casecast_engine::worker::WorkerContext::new("loop"),
        stop_rx,
    ));
    let mut stolen = false;
    for _ in 0..1200 {
        if db.get_upload(p.id, upload.id).await.unwrap().processed_rows > 0 {
            stolen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The loop finishes the job in hand before it looks at `stop`.
    stop_tx.send(true).unwrap();
    worker.await.unwrap();
    assert!(stolen, "the worker never wrote the first batch");
    let row = sqlx::query("SELECT locked_by, done_at FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    use sqlx::Row;
    let locked_by: Option<String> = row.get("locked_by");
    let done_at: Option<i64> = row.get("done_at");
    assert_eq!(
        locked_by.as_deref(),
        Some("thief"),
        "the new holder keeps its lease"
    );
    assert_eq!(
        done_at, None,
        "the job is not finished under the new holder"
    );
    let left = db.get_upload(p.id, upload.id).await.unwrap();
    assert_eq!(
        (left.status.as_str(), left.processed_rows),
        ("running", 2000)
    );
    assert!(left.error.is_none(), "{:?}", left.error);
}
