//! Reminders from case data on both engines (issue 15): a rule's cases evaluated in the
//! background, each occurrence sent once at its local time, a moved date moving it, the stop
//! query stopping it, an occurrence too late recorded as missed, one message a number, racing
//! workers.

use casecast_core::case::CaseChanges;
use casecast_core::reminder::ReminderRule;
use casecast_engine::clock::ManualClock;
use casecast_engine::reminders;
use casecast_store::messages::{Message, MessageFilter};
use casecast_store::projects::Project;
use casecast_store::reminders::ScheduleState;
use casecast_store::Db;
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use jiff::civil::date;
use serde_json::json;

use crate::case_with;
use crate::surveys::{setup, survey_body, Setup};

on_both_engines!(
    a_rule_sends_each_case_its_occurrence_once_at_its_local_time,
    case_writes_move_and_stop_what_is_due,
    late_occurrences_are_missed_and_a_shared_number_gets_one_message,
    the_upcoming_list_shows_what_would_go_and_who_is_skipped,
);

/// Kampala (the test project's zone) is UTC+3 all year.
fn kampala(y: i16, m: i8, d: i8, h: i8, min: i8) -> i64 {
    date(y, m, d)
        .at(h, min, 0, 0)
        .in_tz("Africa/Kampala")
        .unwrap()
        .timestamp()
        .as_millisecond()
}

fn rule(extra: serde_json::Value) -> ReminderRule {
    let mut body = json!({
        "name": "Visit reminder", "case_type": "case", "query": "",
        "start": {"property": "next_visit", "offset_days": -2}, "time": "09:00",
        "content": {"sms": {"*": "{case.name}: your visit is on {case.next_visit}."}}
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    ReminderRule::parse_checked(&body).unwrap()
}

async fn set(db: &Db, p: &Project, case_id: &str, props: &[(&str, Option<&str>)]) {
    let changes = CaseChanges {
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect(),
        ..Default::default()
    };
    db.update_case(p.id, case_id, &changes).await.unwrap();
}

/// Runs what a worker's tick runs for reminders.
async fn tick(db: &Db, clock: &ManualClock) -> usize {
    reminders::evaluate_pending(db, clock).await.unwrap();
    while reminders::evaluate_rules(db, clock).await.unwrap() {}
    reminders::fire_due(db, clock).await.unwrap()
}

async fn reminder_messages(db: &Db, p: &Project) -> Vec<Message> {
    let mut m = db
        .list_messages(p.id, &MessageFilter::default(), 500, None)
        .await
        .unwrap()
        .0;
    m.retain(|m| m.direction.as_str() == "outbound");
    m.sort_by_key(|m| m.id);
    m
}

async fn a_rule_sends_each_case_its_occurrence_once_at_its_local_time(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, .. } = setup(db, survey_body()).await;
    let clock = ManualClock::new(kampala(2026, 3, 1, 8, 0));
    let a = case_with(db, p.id, None, "Amina", None, Some("0772000701")).await;
    let b = case_with(db, p.id, None, "Bea", None, Some("0772000702")).await;
    let c = case_with(db, p.id, None, "Cleo", None, Some("0772000703")).await;
    set(
        db,
        &p,
        a.case_id.as_str(),
        &[("next_visit", Some("2026-03-05"))],
    )
    .await;
    set(
        db,
        &p,
        b.case_id.as_str(),
        &[
            ("next_visit", Some("2026-03-07")),
            ("time_zone", Some("Europe/London")),
        ],
    )
    .await;
    set(
        db,
        &p,
        c.case_id.as_str(),
        &[("next_visit", Some("5 March"))],
    )
    .await;
    let r = reminders::create(db, p.id, &rule(json!({})), None)
        .await
        .unwrap();
    assert_eq!(tick(db, &clock).await, 0, "nothing due yet");
    let stored = db.reminder(p.id, r.id).await.unwrap();
    assert!(
        stored.evaluated_at.is_some(),
        "the rule's cases were evaluated"
    );
    let counts = db.reminder_counts(r.id).await.unwrap();
    assert_eq!(counts.states.get("scheduled"), Some(&2));
    assert_eq!(counts.skipped.get("date_unreadable"), Some(&1));
    let next = db.reminder_next_due(r.id, 10).await.unwrap();
    assert_eq!(
        next.iter().map(|n| n.next_at.unwrap()).collect::<Vec<_>>(),
        vec![
            kampala(2026, 3, 3, 9, 0),
            // 09:00 in London (UTC+0 in March before the 29th) is 12:00 in Kampala.
            kampala(2026, 3, 5, 12, 0),
        ]
    );
    // A minute early: nothing; on time: Amina's, once however often the workers look.
    clock.set(kampala(2026, 3, 3, 8, 59));
    assert_eq!(tick(db, &clock).await, 0);
    clock.set(kampala(2026, 3, 3, 9, 0));
    assert_eq!(tick(db, &clock).await, 1);
    assert_eq!(tick(db, &clock).await, 0);
    clock.advance(3_600_000);
    assert_eq!(tick(db, &clock).await, 0);
    let sent = reminder_messages(db, &p).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, "Amina: your visit is on 2026-03-05.");
    assert_eq!(sent[0].phone_number, "+256772000701");
    clock.set(kampala(2026, 3, 5, 12, 0));
    assert_eq!(tick(db, &clock).await, 1);
    let sent = reminder_messages(db, &p).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].text, "Bea: your visit is on 2026-03-07.");
    assert_eq!(db.count_reminder_messages(p.id, r.id).await.unwrap(), 2);
    assert_eq!(
        db.count_reminder_messages(p.id + 1000, r.id).await.unwrap(),
        0
    );
    let counts = db.reminder_counts(r.id).await.unwrap();
    assert_eq!(counts.outcomes.get("queued"), Some(&2));
    assert_eq!(counts.states.get("done"), Some(&2));
    // The rule's page: what was sent, newest first, with each case's id and name.
    let log = db.reminder_occurrences(r.id, 10).await.unwrap();
    assert_eq!(
        log.iter()
            .map(|o| (o.case_name.as_str(), o.occurrence, o.outcome.as_str()))
            .collect::<Vec<_>>(),
        vec![("Bea", 1, "queued"), ("Amina", 1, "queued")]
    );
    assert_eq!(log[1].case_id, a.case_id.as_str());
    assert_eq!(log[1].due_at, kampala(2026, 3, 3, 9, 0));
    assert_eq!(db.reminder_occurrences(r.id, 1).await.unwrap().len(), 1);
    // The list, and a delete that takes the rule's rows with it but leaves its messages.
    let second = reminders::create(db, p.id, &rule(json!({"name": "Second"})), None)
        .await
        .unwrap();
    let listed = db.list_reminders(p.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![r.id, second.id]
    );
    db.delete_reminder(p.id, r.id).await.unwrap();
    assert!(matches!(
        db.delete_reminder(p.id, r.id).await,
        Err(casecast_store::StoreError::NotFound(_))
    ));
    assert!(db.reminder(p.id, r.id).await.is_err());
    assert!(db.reminder_occurrences(r.id, 10).await.unwrap().is_empty());
    assert!(db.reminder_counts(r.id).await.unwrap().states.is_empty());
    assert_eq!(reminder_messages(db, &p).await.len(), 2);
    // Another project's rule is not this project's to read or delete.
    assert!(db.delete_reminder(p.id + 1000, second.id).await.is_err());
    assert_eq!(db.list_reminders(p.id).await.unwrap().len(), 1);
}

async fn case_writes_move_and_stop_what_is_due(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, .. } = setup(db, survey_body()).await;
    let clock = ManualClock::new(kampala(2026, 3, 1, 8, 0));
    let r = reminders::create(
        db,
        p.id,
        &rule(json!({"stop_query": "visit_done = yes", "repeat": {"every_days": 1, "times": 3}})),
        None,
    )
    .await
    .unwrap();
    tick(db, &clock).await;
    // Cases made and written after the rule: the triggers queue them for a new look.
    let a = case_with(db, p.id, None, "Amina", None, Some("0772000711")).await;
    let b = case_with(db, p.id, None, "Bea", None, Some("0772000712")).await;
    set(
        db,
        &p,
        a.case_id.as_str(),
        &[("next_visit", Some("2026-03-05"))],
    )
    .await;
    set(
        db,
        &p,
        b.case_id.as_str(),
        &[("next_visit", Some("2026-03-05"))],
    )
    .await;
    tick(db, &clock).await;
    let next = db.reminder_next_due(r.id, 10).await.unwrap();
    assert_eq!(next.len(), 2);
    assert!(next
        .iter()
        .all(|n| n.next_at == Some(kampala(2026, 3, 3, 9, 0))));
    // Amina's first reminder goes; then her visit moves a week later.
    clock.set(kampala(2026, 3, 3, 9, 0));
    assert_eq!(tick(db, &clock).await, 2);
    set(
        db,
        &p,
        a.case_id.as_str(),
        &[("next_visit", Some("2026-03-12"))],
    )
    .await;
    // Bea's visit is done: she gets nothing more.
    set(db, &p, b.case_id.as_str(), &[("visit_done", Some("yes"))]).await;
    tick(db, &clock).await;
    let next = db.reminder_next_due(r.id, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].next_at, Some(kampala(2026, 3, 10, 9, 0)));
    let counts = db.reminder_counts(r.id).await.unwrap();
    assert_eq!(counts.states.get("stopped"), Some(&1));
    clock.set(kampala(2026, 3, 4, 9, 0));
    assert_eq!(
        tick(db, &clock).await,
        0,
        "the old dates are gone, Bea stopped"
    );
    clock.set(kampala(2026, 3, 10, 9, 0));
    assert_eq!(tick(db, &clock).await, 1);
    let sent = reminder_messages(db, &p).await;
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2].text, "Amina: your visit is on 2026-03-12.");
    // A closed case stops too.
    db.close_case(p.id, a.case_id.as_str()).await.unwrap();
    tick(db, &clock).await;
    assert!(db.reminder_next_due(r.id, 10).await.unwrap().is_empty());
}

async fn late_occurrences_are_missed_and_a_shared_number_gets_one_message(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, .. } = setup(db, survey_body()).await;
    let clock = ManualClock::new(kampala(2026, 3, 1, 8, 0));
    let r = reminders::create(
        db,
        p.id,
        &rule(json!({"repeat": {"every_days": 1, "times": 5}, "late_limit_hours": 24})),
        None,
    )
    .await
    .unwrap();
    tick(db, &clock).await;
    // Two cases share a number and a date: one message an occurrence.
    for name in ["Mother", "Child"] {
        let c = case_with(db, p.id, None, name, None, Some("0772000721")).await;
        set(
            db,
            &p,
            c.case_id.as_str(),
            &[("next_visit", Some("2026-03-05"))],
        )
        .await;
    }
    clock.set(kampala(2026, 3, 3, 9, 0));
    assert_eq!(tick(db, &clock).await, 2, "both occurrences recorded");
    assert_eq!(
        reminder_messages(db, &p).await.len(),
        1,
        "one message to the number"
    );
    let counts = db.reminder_counts(r.id).await.unwrap();
    assert_eq!(counts.outcomes.get("same_phone"), Some(&1));
    // The service is down for three days: what is more than 24 hours late is missed, what is
    // within the limit still goes.
    clock.set(kampala(2026, 3, 6, 10, 0));
    let mut recorded = 0;
    for _ in 0..5 {
        recorded += tick(db, &clock).await;
    }
    assert_eq!(recorded, 6, "occurrences 2, 3 and 4 of both cases");
    let counts = db.reminder_counts(r.id).await.unwrap();
    assert_eq!(counts.outcomes.get("missed"), Some(&4), "{counts:?}");
    assert_eq!(reminder_messages(db, &p).await.len(), 2);
    // Racing workers: occurrence 5 once.
    clock.set(kampala(2026, 3, 7, 9, 0));
    let (x, y) = tokio::join!(
        reminders::fire_due(db, &clock),
        reminders::fire_due(db, &clock)
    );
    assert_eq!(x.unwrap() + y.unwrap(), 2);
    assert_eq!(reminder_messages(db, &p).await.len(), 3);
    let rows = db.reminder_next_due(r.id, 10).await.unwrap();
    assert!(rows.is_empty());
    let counts = db.reminder_counts(r.id).await.unwrap();
    assert_eq!(counts.states.get(ScheduleState::Done.as_str()), Some(&2));
}

async fn the_upcoming_list_shows_what_would_go_and_who_is_skipped(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, .. } = setup(db, survey_body()).await;
    let now = kampala(2026, 3, 1, 8, 0);
    let visits = [
        ("Amina", Some("0772000731"), Some("2026-03-20")),
        ("Bea", Some("0772000732"), Some("2026-03-05")),
        ("Cleo", None, Some("2026-03-06")),
        ("Dora", Some("0772000734"), None),
        ("Eve", Some("0772000735"), Some("2026-06-01")),
    ];
    for (name, phone, visit) in visits {
        let c = case_with(db, p.id, None, name, None, phone).await;
        set(db, &p, c.case_id.as_str(), &[("next_visit", visit)]).await;
    }
    let r = rule(json!({"query": "name != Eve"}));
    let up = reminders::upcoming(db, &p, &r, now, 30, 10).await.unwrap();
    assert_eq!(up.cases, 4, "Eve does not match");
    assert_eq!(up.total, 2);
    let names: Vec<&str> = up.upcoming.iter().map(|u| u.case_name.as_str()).collect();
    assert_eq!(names, ["Bea", "Amina"], "soonest first");
    assert_eq!(up.upcoming[0].at, kampala(2026, 3, 3, 9, 0));
    assert_eq!(
        up.upcoming[0].text.as_deref(),
        Some("Bea: your visit is on 2026-03-05.")
    );
    assert_eq!(up.skipped.get("no_phone"), Some(&1));
    assert_eq!(up.skipped.get("no_date"), Some(&1));
    let one = reminders::upcoming(db, &p, &r, now, 30, 1).await.unwrap();
    assert_eq!(one.upcoming.len(), 1, "the limit");
    assert_eq!(one.total, 2);
}
