//! When broadcasts fire: `fire_due_broadcasts(now)` driven through weeks with a clock of our
//! own, in a time zone with daylight saving; each occurrence exactly once however many
//! schedulers look; pause and resume; and occurrences too late to send recorded as missed.

use casecast_store::broadcasts::Broadcast;
use casecast_store::projects::Project;
use casecast_store::{Db, StoreError};
use casecast_testkit::Workflows;
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use jiff::{Timestamp, ToSpan};
use serde_json::{json, Value};

use crate::broadcasts::{draft, fan_out, occurrences, outbox, project_in};
use crate::{case_with, change, group, raw_pool};
use casecast_store::membership::Change;

on_both_engines!(
    a_weekly_broadcast_keeps_its_local_time_across_both_dst_changes,
    daily_monthly_last_day_and_once_schedules_fire_at_their_local_times,
    concurrent_schedulers_fire_each_occurrence_once,
    a_paused_broadcast_fires_nothing_and_resumes_without_catching_up,
    occurrences_later_than_the_validity_are_missed_never_sent,
);

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Epoch ms of a UTC instant written `2027-03-01T08:00Z`.
fn utc(s: &str) -> i64 {
    s.parse::<Timestamp>().unwrap().as_millisecond()
}

/// A project in `zone` with a log gateway and a group of one case; returns the group id.
async fn setup(db: &Db, zone: &str) -> (Project, i64) {
    let p = project_in(db, "alpha", zone).await;
    case_with(db, p.id, Some("amina"), "Amina", None, Some("0772000001")).await;
    let g = group(db, p.id, "Everyone").await;
    change(db, p.id, g.id, Change::Add, &["amina"]).await;
    (p, g.id)
}

async fn scheduled(db: &Db, p: &Project, group_id: i64, schedule: Value) -> Broadcast {
    let d = draft(
        &[group_id],
        &[],
        json!({"*": "Hello {case.name}"}),
        schedule,
    );
    let b = db.create_broadcast(p, &d, None).await.unwrap();
    assert!(
        occurrences(db, p.id, b.id).await.is_empty(),
        "nothing fires early"
    );
    b
}

/// Calls the scheduler at every `step` from `from` to `to` (inclusive); returns the instants
/// at which it fired something, each as often as it fired.
async fn tick(db: &Db, from: i64, to: i64, step: i64) -> Vec<i64> {
    let mut fired = Vec::new();
    let mut t = from;
    while t <= to {
        let n = db.fire_due_broadcasts(t).await.unwrap();
        fired.extend(std::iter::repeat_n(t, n));
        t += step;
    }
    fired
}

/// (index, due_at) of every occurrence of a broadcast, first first.
async fn dues(db: &Db, p: &Project, id: i64) -> Vec<(i64, i64)> {
    let all = occurrences(db, p.id, id).await;
    all.iter().map(|o| (o.index, o.due_at)).collect()
}

/// (index, instant) pairs numbered from 1.
fn numbered(instants: &[&str]) -> Vec<(i64, i64)> {
    (1..).zip(instants.iter().map(|s| utc(s))).collect()
}

async fn a_weekly_broadcast_keeps_its_local_time_across_both_dst_changes(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, g) = setup(db, "Europe/Paris").await;
    let weekly = |start: &str| {
        json!({"kind": "weekly", "start_date": start, "time": "09:00", "every": 1,
               "weekdays": ["mon"]})
    };
    // Paris goes from UTC+1 to UTC+2 on Sunday 2027-03-28 and back on Sunday 2027-10-31.
    let spring = scheduled(db, &p, g, weekly("2027-03-01")).await;
    assert_eq!(spring.next_run_at, Some(utc("2027-03-01T08:00Z")));
    let fired = tick(db, utc("2027-03-01T00:00Z"), utc("2027-05-10T00:00Z"), HOUR).await;
    let expected = numbered(&[
        "2027-03-01T08:00Z",
        "2027-03-08T08:00Z",
        "2027-03-15T08:00Z",
        "2027-03-22T08:00Z",
        "2027-03-29T07:00Z",
        "2027-04-05T07:00Z",
        "2027-04-12T07:00Z",
        "2027-04-19T07:00Z",
        "2027-04-26T07:00Z",
        "2027-05-03T07:00Z",
    ]);
    assert_eq!(dues(db, &p, spring.id).await, expected);
    let at: Vec<i64> = expected.iter().map(|(_, due)| *due).collect();
    assert_eq!(
        fired, at,
        "each fired at the first tick at or after it was due, once"
    );
    // Cross-check with the zone: every one at 09:00 on a Monday, Paris time.
    for (_, due) in &expected {
        let local = Timestamp::from_millisecond(*due)
            .unwrap()
            .to_zoned(p.zone());
        assert_eq!((local.hour(), local.minute()), (9, 0), "{local}");
        assert_eq!(local.weekday(), jiff::civil::Weekday::Monday);
    }
    let b = db.broadcast(p.id, spring.id).await.unwrap();
    assert_eq!(b.next_run_at, Some(utc("2027-05-10T07:00Z")));
    assert_eq!(b.last_run_at, Some(utc("2027-05-03T07:00Z")));
    assert_eq!(b.occurrences, 10);
    db.cancel_broadcast(p.id, spring.id).await.unwrap();

    let autumn = scheduled(db, &p, g, weekly("2027-10-04")).await;
    let fired = tick(db, utc("2027-10-04T00:00Z"), utc("2027-12-13T00:00Z"), HOUR).await;
    let expected = numbered(&[
        "2027-10-04T07:00Z",
        "2027-10-11T07:00Z",
        "2027-10-18T07:00Z",
        "2027-10-25T07:00Z",
        "2027-11-01T08:00Z",
        "2027-11-08T08:00Z",
        "2027-11-15T08:00Z",
        "2027-11-22T08:00Z",
        "2027-11-29T08:00Z",
        "2027-12-06T08:00Z",
    ]);
    assert_eq!(dues(db, &p, autumn.id).await, expected);
    assert_eq!(fired, expected.iter().map(|(_, d)| *d).collect::<Vec<_>>());
    assert_eq!(
        dues(db, &p, spring.id).await.len(),
        10,
        "a cancelled one fires no more"
    );
}

async fn daily_monthly_last_day_and_once_schedules_fire_at_their_local_times(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, g) = setup(db, "Europe/Paris").await;
    // 02:30 does not exist in Paris on 2027-03-28: that day's occurrence comes at 03:00 CEST.
    let daily = scheduled(
        db,
        &p,
        g,
        json!({"kind": "daily", "start_date": "2027-03-26",
        "time": "02:30", "every": 1, "stop": {"after_occurrences": 5}}),
    )
    .await;
    let monthly = scheduled(
        db,
        &p,
        g,
        json!({"kind": "monthly", "start_date": "2027-01-01",
        "time": "18:00", "every": 1, "days_of_month": ["last"], "stop": {"on_date": "2027-04-30"}}),
    )
    .await;
    let once = scheduled(db, &p, g, json!({"kind": "once", "at": "2027-06-15T10:00"})).await;
    let fired = tick(db, utc("2027-01-01T00:00Z"), utc("2027-07-01T00:00Z"), HOUR).await;
    assert_eq!(
        dues(db, &p, daily.id).await,
        numbered(&[
            "2027-03-26T01:30Z",
            "2027-03-27T01:30Z",
            "2027-03-28T01:00Z",
            "2027-03-29T00:30Z",
            "2027-03-30T00:30Z",
        ])
    );
    assert_eq!(
        dues(db, &p, monthly.id).await,
        numbered(&[
            "2027-01-31T17:00Z",
            "2027-02-28T17:00Z",
            "2027-03-31T16:00Z",
            "2027-04-30T16:00Z",
        ])
    );
    assert_eq!(
        dues(db, &p, once.id).await,
        numbered(&["2027-06-15T08:00Z"])
    );
    assert_eq!(fired.len(), 10, "{fired:?}");
    for id in [daily.id, monthly.id, once.id] {
        let b = db.broadcast(p.id, id).await.unwrap();
        assert_eq!((b.next_run_at, b.state.as_str()), (None, "finished"));
    }
    // Its one occurrence fans out; then the broadcast is completed.
    let o = occurrences(db, p.id, once.id).await.remove(0);
    fan_out(db, o.id).await;
    let m = outbox(db, p.id, o.id).await.remove(0);
    assert_eq!(
        m.expires_at,
        utc("2027-06-16T08:00Z"),
        "due + validity (24 h)"
    );
    assert_eq!(db.broadcast(p.id, once.id).await.unwrap().status, "sending");
}

async fn concurrent_schedulers_fire_each_occurrence_once(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, g) = setup(db, "Africa/Kampala").await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        let schedule = json!({"kind": "daily", "start_date": "2027-02-01", "time": "09:00"});
        ids.push(scheduled(db, &p, g, schedule).await.id);
    }
    for day in 0..3 {
        let now = utc("2027-02-01T06:00Z") + day * DAY;
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move { db.fire_due_broadcasts(now).await.unwrap() })
            })
            .collect();
        let mut fired = 0;
        for task in tasks {
            fired += task.await.unwrap();
        }
        assert_eq!(fired, 10, "day {day}: one occurrence per broadcast in all");
    }
    for id in &ids {
        let expected: Vec<(i64, i64)> = (0..3)
            .map(|d| (d + 1, utc("2027-02-01T06:00Z") + d * DAY))
            .collect();
        assert_eq!(dues(db, &p, *id).await, expected);
    }
    let pool = raw_pool(&t.url).await;
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'fanout'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 30, "one fan-out job per occurrence");
}

async fn a_paused_broadcast_fires_nothing_and_resumes_without_catching_up(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, g) = setup(db, "Africa/Kampala").await;
    // Daily since ten days ago (by the real clock, which pause and resume read).
    let today = Timestamp::now().to_zoned(p.zone()).date();
    let start = today.checked_sub(10.days()).unwrap();
    let schedule = json!({"kind": "daily", "start_date": start.to_string(), "time": "09:00"});
    let b = scheduled(db, &p, g, schedule).await;
    let (next, index) = (b.next_run_at.unwrap(), b.next_index.unwrap());
    assert!(next > casecast_core::time::now_ms() && next - DAY <= casecast_core::time::now_ms());
    assert!(
        (11..=12).contains(&index),
        "counted from the start date: {index}"
    );

    db.pause_broadcast(p.id, b.id).await.unwrap();
    assert_eq!(
        tick(db, next - DAY, next + 5 * DAY, HOUR).await,
        Vec::<i64>::new()
    );
    assert!(occurrences(db, p.id, b.id).await.is_empty());
    assert_eq!(db.broadcast(p.id, b.id).await.unwrap().status, "paused");
    match db.pause_broadcast(p.id, b.id).await {
        Err(StoreError::Conflict { code, .. }) => assert_eq!(code, "not_active"),
        other => panic!("paused twice: {other:?}"),
    }

    // As if it had been paused three days ago: three occurrences fell while it was paused.
    let pool = raw_pool(&t.url).await;
    sqlx::query("UPDATE broadcasts SET next_run_at = $1, next_index = $2 WHERE id = $3")
        .bind(next - 3 * DAY)
        .bind(index - 3)
        .bind(b.id)
        .execute(&pool)
        .await
        .unwrap();
    db.resume_broadcast(&p, b.id).await.unwrap();
    let resumed = db.broadcast(p.id, b.id).await.unwrap();
    assert_eq!(
        (resumed.next_run_at, resumed.next_index),
        (Some(next), Some(index))
    );
    assert_eq!(resumed.status, "scheduled");
    let now = casecast_core::time::now_ms();
    assert_eq!(
        db.fire_due_broadcasts(now).await.unwrap(),
        0,
        "none sent late"
    );
    assert_eq!(db.fire_due_broadcasts(next).await.unwrap(), 1);
    assert_eq!(dues(db, &p, b.id).await, [(index, next)]);
    match db.resume_broadcast(&p, b.id).await {
        Err(StoreError::Conflict { code, .. }) => assert_eq!(code, "not_paused"),
        other => panic!("resumed an active broadcast: {other:?}"),
    }
}

async fn occurrences_later_than_the_validity_are_missed_never_sent(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, g) = setup(db, "Africa/Kampala").await;
    assert_eq!(p.messaging.as_ref().unwrap().validity_seconds * 1000, DAY);
    let late = scheduled(db, &p, g, json!({"kind": "once", "at": "2027-01-10T09:00"})).await;
    let on_time = scheduled(db, &p, g, json!({"kind": "once", "at": "2027-01-11T09:00"})).await;
    let edge = scheduled(db, &p, g, json!({"kind": "once", "at": "2027-01-20T09:00"})).await;
    let daily = scheduled(
        db,
        &p,
        g,
        json!({"kind": "daily", "start_date": "2027-01-12",
        "time": "09:00", "stop": {"after_occurrences": 4}}),
    )
    .await;

    // The server comes back one ms more than a day after `late` was due.
    let back = utc("2027-01-11T06:00:00.001Z");
    assert_eq!(db.fire_due_broadcasts(back).await.unwrap(), 2);
    // Three and a half days down: the daily one's first three are more than a day late.
    assert_eq!(
        db.fire_due_broadcasts(utc("2027-01-15T07:00Z"))
            .await
            .unwrap(),
        4
    );
    // Exactly the validity late is still in time.
    assert_eq!(
        db.fire_due_broadcasts(utc("2027-01-21T06:00Z"))
            .await
            .unwrap(),
        1
    );

    let status = |id: i64| async move {
        let all = occurrences(db, p.id, id).await;
        all.into_iter().map(|o| o.status).collect::<Vec<_>>()
    };
    assert_eq!(status(late.id).await, ["missed"]);
    assert_eq!(status(on_time.id).await, ["fanning_out"]);
    assert_eq!(status(edge.id).await, ["fanning_out"]);
    assert_eq!(
        status(daily.id).await,
        ["missed", "missed", "missed", "fanning_out"]
    );
    for o in occurrences(db, p.id, late.id).await {
        assert!(o.error.as_deref().unwrap().contains("validity"), "{o:?}");
        assert!(o.finished_at.is_some());
        // Nothing to fan out: no job, and running the fan-out anyway writes nothing.
        assert!(db
            .claim_job_for(casecast_store::jobs::JobKind::Fanout, o.id, "t")
            .await
            .unwrap()
            .is_none());
        db.process_fanout(o.id, 0, "t").await.unwrap();
        assert!(outbox(db, p.id, o.id).await.is_empty());
    }
    let b = db.broadcast(p.id, late.id).await.unwrap();
    assert_eq!((b.last_run_at, b.next_run_at), (None, None), "it never ran");
    for id in [on_time.id, edge.id, daily.id] {
        let last = occurrences(db, p.id, id).await.pop().unwrap();
        fan_out(db, last.id).await;
        let o = db.occurrence(p.id, last.id).await.unwrap();
        assert_eq!((o.status.as_str(), o.queued), ("done", 1));
    }
}
