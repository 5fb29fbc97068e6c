//! Reminders from case data on both engines (issue 15): a rule's cases evaluated in the
//! background, each occurrence sent once at its local time, a moved date moving it, the stop
//! query stopping it, an occurrence too late recorded as missed, one message a number, racing
//! workers.

use casecast_core::case::CaseChanges;
use casecast_core::reminder::ReminderRule;
use casecast_engine::clock::{Clock, ManualClock};
use casecast_engine::reminders;
use casecast_store::messages::{Message, MessageFilter};
use casecast_store::projects::Project;
use casecast_store::reminders::ScheduleState;
use casecast_store::Db;
use casecast_testkit::{on_both_engines, Dialect, TestDb, Workflows};
use jiff::civil::date;
use serde_json::json;

use crate::surveys::{mo, setup, survey_body, Setup};
use crate::{case_with, change, group, import, project};

on_both_engines!(
    a_rule_sends_each_case_its_occurrence_once_at_its_local_time,
    case_writes_move_and_stop_what_is_due,
    late_occurrences_are_missed_and_a_shared_number_gets_one_message,
    the_upcoming_list_shows_what_would_go_and_who_is_skipped,
    due_rows_fire_a_page_at_a_time_each_once,
    every_write_path_puts_the_case_before_its_rules_again,
    a_rule_edit_looks_again_in_pages_and_sends_nothing_twice,
    the_projects_late_limit_holds_unless_the_rule_has_its_own,
    a_survey_reminder_starts_the_survey_once_and_names_the_rule,
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
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = db
            .list_messages(p.id, &MessageFilter::default(), 500, cursor)
            .await
            .unwrap();
        all.extend(page);
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    all.retain(|m| m.direction.as_str() == "outbound");
    all.sort_by_key(|m| m.id);
    all
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

async fn due_rows_fire_a_page_at_a_time_each_once(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, .. } = setup(db, survey_body()).await;
    // A second project with a rule and no gateway: its case's occurrence is recorded as
    // `no_gateway`, in the same pages as the first project's.
    let beta = project(db, "beta", Some("UG")).await;
    let clock = ManualClock::new(kampala(2026, 3, 1, 8, 0));
    let r = reminders::create(db, p.id, &rule(json!({})), None)
        .await
        .unwrap();
    let rb = reminders::create(db, beta.id, &rule(json!({})), None)
        .await
        .unwrap();
    let n = reminders::FIRE_PAGE * 2 + 34;
    many_cases(
        db,
        &p,
        n,
        1,
        &[("next_visit", "2026-03-05")],
        clock.now_ms(),
    )
    .await;
    let bc = case_with(db, beta.id, None, "Beta case", None, Some("0772000799")).await;
    set(
        db,
        &beta,
        bc.case_id.as_str(),
        &[("next_visit", Some("2026-03-05"))],
    )
    .await;
    tick(db, &clock).await;
    assert_eq!(db.reminder_next_due(r.id, 10).await.unwrap().len(), 10);
    clock.set(kampala(2026, 3, 3, 9, 0));
    // Soonest first, then by rule and case: two full pages, then the rest with beta's case.
    assert_eq!(
        reminders::fire_due(db, &clock).await.unwrap(),
        reminders::FIRE_PAGE
    );
    assert_eq!(
        reminders::fire_due(db, &clock).await.unwrap(),
        reminders::FIRE_PAGE
    );
    assert_eq!(reminders::fire_due(db, &clock).await.unwrap(), 35);
    assert_eq!(reminders::fire_due(db, &clock).await.unwrap(), 0);
    let sent = reminder_messages(db, &p).await;
    assert_eq!(sent.len(), n);
    let phones: std::collections::BTreeSet<&str> =
        sent.iter().map(|m| m.phone_number.as_str()).collect();
    assert_eq!(phones.len(), n, "one message to each case's number");
    assert!(sent.iter().all(|m| m.text
        == format!(
            "{}: your visit is on 2026-03-05.",
            m.case_name.as_deref().unwrap_or("?")
        )));
    let counts = db.reminder_counts(r.id).await.unwrap();
    assert_eq!(counts.outcomes.get("queued"), Some(&(n as i64)));
    assert_eq!(counts.states.get("done"), Some(&(n as i64)));
    let counts = db.reminder_counts(rb.id).await.unwrap();
    assert_eq!(counts.outcomes.get("no_gateway"), Some(&1), "{counts:?}");
    assert!(reminder_messages(db, &beta).await.is_empty());
}

/// The rule's rows due next as (case name, due instant), soonest first.
async fn due_next(db: &Db, reminder_id: i64) -> Vec<(String, i64)> {
    let rows = db.reminder_next_due(reminder_id, 50).await.unwrap();
    let pks: Vec<i64> = rows.iter().map(|r| r.case_pk).collect();
    let mut tx = db.begin_read().await.unwrap();
    let cases: std::collections::HashMap<i64, String> = db
        .cases_by_pks_tx(&mut tx, &pks)
        .await
        .unwrap()
        .into_iter()
        .map(|(pk, c)| (pk, c.name))
        .collect();
    tx.rollback().await.unwrap();
    rows.iter()
        .map(|r| (cases[&r.case_pk].clone(), r.next_at.unwrap()))
        .collect()
}

/// A write, then: the case waits for its rules' new look (the trigger put it there, not the
/// rule's own evaluation, which is finished), and a tick gives it.
async fn written_then_ticked(db: &Db, clock: &ManualClock, what: &str) {
    assert!(
        db.has_pending_cases().await.unwrap(),
        "{what}: the written case waits for its rules"
    );
    tick(db, clock).await;
    assert!(!db.has_pending_cases().await.unwrap(), "{what}");
}

async fn every_write_path_puts_the_case_before_its_rules_again(engine: Dialect) {
    use casecast_core::keyword::Keyword;
    use casecast_store::membership::Change;

    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, g, survey_id } = setup(db, survey_body()).await;
    let clock = ManualClock::new(kampala(2026, 3, 1, 8, 0));
    let anc = group(db, p.id, "ANC").await;
    // A: members of ANC, two days before next_visit. B: two days before the due date a survey
    // answer saves. C: new participants, at once.
    let a = reminders::create(
        db,
        p.id,
        &rule(json!({"name": "A", "query": format!("group = {}", anc.id)})),
        None,
    )
    .await
    .unwrap();
    let b = reminders::create(
        db,
        p.id,
        &rule(json!({"name": "B", "start": {"property": "edd", "offset_days": -2}})),
        None,
    )
    .await
    .unwrap();
    let c = reminders::create(
        db,
        p.id,
        &rule(
            json!({"name": "C", "case_type": "participant", "start": {"immediately": true},
                     "time": null, "content": {"sms": {"*": "Welcome {case.name}."}}}),
        ),
        None,
    )
    .await
    .unwrap();
    tick(db, &clock).await;
    assert!(!db.has_pending_cases().await.unwrap());

    // An import makes a case: B looks at it (no due date: skipped), A does not take it.
    let csv = "external_id,name,phone_number,next_visit\nP-1,Imani,0772000741,2026-03-10\n";
    import(db, &p, csv.as_bytes(), "cases.csv").await.unwrap();
    written_then_ticked(db, &clock, "import (new case)").await;
    assert!(due_next(db, a.id).await.is_empty());
    assert_eq!(
        db.reminder_counts(b.id)
            .await
            .unwrap()
            .skipped
            .get("no_date"),
        Some(&1)
    );

    // Added to ANC (the one-case form, the API and the sheet upload share this path): A takes it.
    change(db, p.id, anc.id, Change::Add, &["P-1"]).await;
    written_then_ticked(db, &clock, "group add").await;
    assert_eq!(
        due_next(db, a.id).await,
        vec![("Imani".to_string(), kampala(2026, 3, 8, 9, 0))]
    );

    // An import that changes the date moves it.
    let csv = "external_id,name,next_visit\nP-1,Imani,2026-03-12\n";
    import(db, &p, csv.as_bytes(), "cases.csv").await.unwrap();
    written_then_ticked(db, &clock, "import (changed case)").await;
    assert_eq!(
        due_next(db, a.id).await,
        vec![("Imani".to_string(), kampala(2026, 3, 10, 9, 0))]
    );

    // Removed from ANC: A stops.
    change(db, p.id, anc.id, Change::Remove, &["P-1"]).await;
    written_then_ticked(db, &clock, "group remove").await;
    assert!(due_next(db, a.id).await.is_empty());
    assert_eq!(
        db.reminder_counts(a.id)
            .await
            .unwrap()
            .states
            .get("stopped"),
        Some(&1)
    );

    // A survey answer saves the due date: B schedules from it.
    let amina = case_with(db, p.id, None, "Amina", None, Some("0772000742")).await;
    tick(db, &clock).await;
    db.start_survey(&p, survey_id, amina.case_id.as_str())
        .await
        .unwrap();
    tick(db, &clock).await;
    for answer in ["4", "Fine", "31/12/2026"] {
        db.record_inbound(&g, &mo("+256772000742", answer))
            .await
            .unwrap();
    }
    written_then_ticked(db, &clock, "survey answer").await;
    assert_eq!(
        due_next(db, b.id).await,
        vec![("Amina".to_string(), kampala(2026, 12, 29, 9, 0))]
    );

    // A keyword makes a participant: C has its welcome due at once, and sends it.
    let reg = Keyword::parse(
        &json!({"keyword": "REG", "fields": ["name"], "unknown_sender": "create_case",
                "case_type": "participant", "actions": [{"type": "set_properties"}]}),
        &["STOP", "START"],
    )
    .unwrap();
    db.create_keyword(p.id, &reg, None).await.unwrap();
    db.record_inbound(&g, &mo("+256772000743", "REG Fay"))
        .await
        .unwrap();
    assert!(db.has_pending_cases().await.unwrap(), "keyword");
    assert_eq!(tick(db, &clock).await, 1, "the welcome fired");
    let sent = reminder_messages(db, &p).await;
    assert_eq!(sent.last().unwrap().text, "Welcome Fay.");
    assert_eq!(sent.last().unwrap().phone_number, "+256772000743");
    assert_eq!(
        db.reminder_counts(c.id)
            .await
            .unwrap()
            .outcomes
            .get("queued"),
        Some(&1)
    );
}

/// `n` cases of the default type, with these properties; case i has the number
/// +25677000000k for k = i / `per_number` (so `per_number` cases in a row share one).
async fn many_cases(
    db: &Db,
    p: &Project,
    n: usize,
    per_number: usize,
    props: &[(&str, &str)],
    now: i64,
) {
    let changes: Vec<CaseChanges> = (0..n)
        .map(|i| CaseChanges {
            name: Some(format!("Case {i}")),
            phone_number: Some(Some(
                casecast_core::PhoneNumber::parse(&format!("+25677{:07}", i / per_number), None)
                    .unwrap(),
            )),
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
            ..Default::default()
        })
        .collect();
    let mut tx = db.begin_write().await.unwrap();
    let made = db
        .create_cases_tx(&mut tx, p.id, &changes, now)
        .await
        .unwrap();
    assert!(made.iter().all(Result::is_ok));
    tx.commit().await.unwrap();
}

async fn fire_all(db: &Db, clock: &ManualClock) -> usize {
    let mut total = 0;
    loop {
        let n = reminders::fire_due(db, clock).await.unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

async fn a_rule_edit_looks_again_in_pages_and_sends_nothing_twice(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, .. } = setup(db, survey_body()).await;
    let clock = ManualClock::new(kampala(2026, 3, 1, 8, 0));
    let n = reminders::PAGE + 100;
    many_cases(
        db,
        &p,
        n,
        1,
        &[("next_visit", "2026-03-05")],
        clock.now_ms(),
    )
    .await;
    let body = json!({"repeat": {"every_days": 1, "times": 2}});
    let r = reminders::create(db, p.id, &rule(body.clone()), None)
        .await
        .unwrap();
    tick(db, &clock).await;
    clock.set(kampala(2026, 3, 3, 9, 0));
    assert_eq!(fire_all(db, &clock).await, n, "occurrence 1 of every case");

    // One case's visit is done; another case moves to London (3 hours behind Kampala).
    let listed = db
        .list_cases(p.id, &Default::default(), 2, None)
        .await
        .unwrap()
        .items;
    let (done, london) = (listed[0].case_id.to_string(), listed[1].case_id.to_string());
    set(db, &p, &done, &[("visit_done", Some("yes"))]).await;
    set(db, &p, &london, &[("time_zone", Some("Europe/London"))]).await;
    tick(db, &clock).await;

    // The edit: 10:00 instead of 09:00, and a stop query.
    let mut edited = rule(body);
    edited.timing = rule(json!({"time": "10:00", "repeat": {"every_days": 1, "times": 2}})).timing;
    edited.stop_query = Some("visit_done = yes".into());
    let v = reminders::update(db, p.id, r.id, &edited).await.unwrap();
    assert_eq!(v.version, r.version + 1);
    assert!(v.evaluated_at.is_none(), "its evaluation starts again");
    // In pages, with progress, in the background.
    assert!(reminders::evaluate_rules(db, &clock).await.unwrap());
    let half = db.reminder(p.id, r.id).await.unwrap();
    assert!(half.evaluated_at.is_none());
    assert!(half.evaluated_through.is_some());
    assert!(reminders::evaluate_rules(db, &clock).await.unwrap());
    assert!(db
        .reminder(p.id, r.id)
        .await
        .unwrap()
        .evaluated_at
        .is_some());
    assert!(!reminders::evaluate_rules(db, &clock).await.unwrap());
    let counts = db.reminder_counts(r.id).await.unwrap();
    assert_eq!(counts.states.get("stopped"), Some(&1), "{counts:?}");
    assert_eq!(counts.states.get("scheduled"), Some(&(n as i64 - 1)));
    // The upcoming list of the saved rule leaves out what was sent; the same rule unsaved (a
    // form's preview) would send occurrence 1 again, as to cases new to it.
    let now = clock.now_ms();
    let stored = db.reminder(p.id, r.id).await.unwrap();
    let saved = reminders::upcoming_saved(db, &p, &stored, now, 30, 5_000)
        .await
        .unwrap();
    assert_eq!(saved.total, n - 1);
    assert!(saved.upcoming.iter().all(|u| u.occurrence == 2));
    let fresh = reminders::upcoming(db, &p, &stored.rule, now, 30, 5_000)
        .await
        .unwrap();
    assert_eq!(fresh.total, 2 * (n - 1));

    // Deactivated, nothing of the rule is due; activated again, its cases are judged again
    // from their rows.
    let mut off = edited.clone();
    off.active = false;
    reminders::update(db, p.id, r.id, &off).await.unwrap();
    assert!(db.reminder_next_due(r.id, 10).await.unwrap().is_empty());
    assert!(!db.has_due_schedules(i64::MAX).await.unwrap());
    while reminders::evaluate_rules(db, &clock).await.unwrap() {}
    reminders::update(db, p.id, r.id, &edited).await.unwrap();
    while reminders::evaluate_rules(db, &clock).await.unwrap() {}
    assert_eq!(db.reminder_next_due(r.id, 10).await.unwrap().len(), 10);
    // Occurrence 1 went at 09:00: it does not go again at 10:00, nor at 10:00 in London.
    clock.set(kampala(2026, 3, 3, 10, 0));
    assert_eq!(tick(db, &clock).await, 0);
    clock.set(kampala(2026, 3, 3, 13, 0));
    assert_eq!(tick(db, &clock).await, 0);
    // Occurrence 2 at the new time: every case but the stopped one, London's three hours later.
    clock.set(kampala(2026, 3, 4, 10, 0));
    assert_eq!(fire_all(db, &clock).await, n - 2);
    clock.set(kampala(2026, 3, 4, 13, 0));
    assert_eq!(fire_all(db, &clock).await, 1);
    let sent = reminder_messages(db, &p).await;
    assert_eq!(sent.len(), 2 * n - 1);
    let mut per_phone = std::collections::HashMap::new();
    for m in &sent {
        *per_phone.entry(m.phone_number.clone()).or_insert(0) += 1;
    }
    assert!(per_phone.values().all(|k| *k <= 2));
    let counts = db.reminder_counts(r.id).await.unwrap();
    assert_eq!(counts.outcomes.get("queued"), Some(&(2 * n as i64 - 1)));
}

on_both_engines!(the_page_reads_name_who_is_due_next_and_how_far_the_evaluation_went);

async fn the_page_reads_name_who_is_due_next_and_how_far_the_evaluation_went(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, .. } = setup(db, survey_body()).await;
    let clock = ManualClock::new(kampala(2026, 3, 1, 8, 0));
    let visits = [
        ("Amina", "2026-03-20"),
        ("Bea", "2026-03-05"),
        ("Cleo", "not a date"),
    ];
    for (name, visit) in visits {
        let c = case_with(db, p.id, None, name, None, Some("0772000741")).await;
        set(db, &p, c.case_id.as_str(), &[("next_visit", Some(visit))]).await;
    }
    let r = reminders::create(db, p.id, &rule(json!({})), None)
        .await
        .unwrap();
    let before = db
        .reminder_evaluation_progress(p.id, "case", r.evaluated_through)
        .await
        .unwrap();
    assert_eq!(before, (0, 3), "nothing looked at yet");
    tick(db, &clock).await;
    let stored = db.reminder(p.id, r.id).await.unwrap();
    let after = db
        .reminder_evaluation_progress(p.id, "case", stored.evaluated_through)
        .await
        .unwrap();
    assert_eq!(after, (3, 3));
    let other = db
        .reminder_evaluation_progress(p.id, "mother", stored.evaluated_through)
        .await
        .unwrap();
    assert_eq!(other, (0, 0), "counted by case type");
    let next = db.reminder_next_due_cases(r.id, 10).await.unwrap();
    let named: Vec<(&str, i64, i64)> = next
        .iter()
        .map(|n| (n.case_name.as_str(), n.occurrence, n.at))
        .collect();
    assert_eq!(
        named,
        [
            ("Bea", 1, kampala(2026, 3, 3, 9, 0)),
            ("Amina", 1, kampala(2026, 3, 18, 9, 0)),
        ],
        "soonest first; the unreadable date is not due"
    );
    assert!(next.iter().all(|n| !n.case_id.is_empty()));
    assert_eq!(db.reminder_next_due_cases(r.id, 1).await.unwrap().len(), 1);
    // Another rule's id reads nothing of this one.
    assert!(db
        .reminder_next_due_cases(r.id + 1, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn the_projects_late_limit_holds_unless_the_rule_has_its_own(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, .. } = setup(db, survey_body()).await;
    let settings = casecast_core::settings::MessagingSettings {
        reminder_late_limit_hours: 1,
        ..Default::default()
    };
    db.set_messaging_settings(p.id, &settings).await.unwrap();
    let clock = ManualClock::new(kampala(2026, 3, 1, 8, 0));
    let project_limit = reminders::create(db, p.id, &rule(json!({"name": "Project's"})), None)
        .await
        .unwrap();
    let own_limit = reminders::create(
        db,
        p.id,
        &rule(json!({"name": "Own", "late_limit_hours": 24})),
        None,
    )
    .await
    .unwrap();
    let c = case_with(db, p.id, None, "Amina", None, Some("0772000751")).await;
    set(
        db,
        &p,
        c.case_id.as_str(),
        &[("next_visit", Some("2026-03-05"))],
    )
    .await;
    tick(db, &clock).await;
    // The workers were down from 08:30 to 11:00 on the day: two hours late.
    clock.set(kampala(2026, 3, 3, 11, 0));
    assert_eq!(tick(db, &clock).await, 2);
    let counts = db.reminder_counts(project_limit.id).await.unwrap();
    assert_eq!(
        counts.outcomes.get("missed"),
        Some(&1),
        "over the project's hour"
    );
    let counts = db.reminder_counts(own_limit.id).await.unwrap();
    assert_eq!(
        counts.outcomes.get("queued"),
        Some(&1),
        "within the rule's 24 hours"
    );
    assert_eq!(reminder_messages(db, &p).await.len(), 1);
}

async fn a_survey_reminder_starts_the_survey_once_and_names_the_rule(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, survey_id, .. } = setup(db, survey_body()).await;
    let clock = ManualClock::new(kampala(2026, 3, 1, 8, 0));
    let r = reminders::create(
        db,
        p.id,
        &rule(json!({"content": {"survey": survey_id}})),
        None,
    )
    .await
    .unwrap();
    let c = case_with(db, p.id, None, "Amina", None, Some("0772000761")).await;
    set(
        db,
        &p,
        c.case_id.as_str(),
        &[("next_visit", Some("2026-03-05"))],
    )
    .await;
    tick(db, &clock).await;
    clock.set(kampala(2026, 3, 3, 9, 0));
    assert_eq!(tick(db, &clock).await, 1);
    assert_eq!(tick(db, &clock).await, 0);
    let filter = MessageFilter {
        reminder_id: Some(r.id),
        ..Default::default()
    };
    let sent = db.list_messages(p.id, &filter, 10, None).await.unwrap().0;
    assert_eq!(sent.len(), 1, "the survey's first message, once");
    assert_eq!(sent[0].text, "Hello, 3 questions.\nHow many visits?");
    let counts = db.reminder_counts(r.id).await.unwrap();
    assert_eq!(counts.outcomes.get("queued"), Some(&1));
}

on_both_engines!(two_workers_queue_one_message_to_a_shared_number);

/// The one-message-a-number rule held by the database: two cases sharing a number, recorded
/// 'queued' for the same occurrence by two transactions (on PostgreSQL at the same time, the
/// second waiting on the first's uncommitted row; on SQLite one after the other, as its
/// writers go): the second is recorded 'same_phone' and not reported as recorded, so its
/// worker queues nothing.
async fn two_workers_queue_one_message_to_a_shared_number(engine: Dialect) {
    use casecast_store::reminders::NewOccurrence;
    use sqlx::Connection;

    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let a = case_with(db, p.id, None, "Amina", None, Some("0772000801")).await;
    let b = case_with(db, p.id, None, "Bea", None, Some("0772000801")).await;
    let rule = reminders::create(db, p.id, &rule(json!({})), None)
        .await
        .unwrap();
    let mut conn = sqlx::AnyConnection::connect(&casecast_store::db::normalise_url(&t.url).1)
        .await
        .unwrap();
    let mut pks = Vec::new();
    for case_id in [a.case_id.to_string(), b.case_id.to_string()] {
        pks.push(
            sqlx::query_scalar::<_, i64>("SELECT id FROM cases WHERE case_id = $1")
                .bind(case_id)
                .fetch_one(&mut conn)
                .await
                .unwrap(),
        );
    }
    let (a_pk, b_pk) = (pks[0], pks[1]);
    let due_at = kampala(2026, 3, 3, 9, 0);
    let occurrence = |case_pk: i64| NewOccurrence {
        reminder_id: rule.id,
        case_pk,
        due_at,
        occurrence: 1,
        outcome: "queued",
        phone: Some("+256772000801".into()),
    };

    let mut first = db.begin_write().await.unwrap();
    let (recorded, same_phone) = db
        .record_occurrences_tx(&mut first, &[occurrence(a_pk)], due_at)
        .await
        .unwrap();
    assert!(recorded.contains(&(rule.id, a_pk, due_at)));
    assert_eq!(same_phone, 0);
    let second = {
        let db = db.clone();
        let row = occurrence(b_pk);
        async move {
            let mut tx = db.begin_write().await.unwrap();
            let recorded = db
                .record_occurrences_tx(&mut tx, &[row], due_at)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            recorded
        }
    };
    let second_recorded = match engine {
        Dialect::Postgres => {
            let racing = tokio::spawn(second);
            // The second insert waits on the first's row (a lock, not a guess): give it time
            // to reach that wait, then commit the first.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert!(!racing.is_finished(), "the second waits for the first");
            first.commit().await.unwrap();
            racing.await.unwrap()
        }
        Dialect::Sqlite => {
            first.commit().await.unwrap();
            second.await
        }
    };
    assert!(
        second_recorded.0.is_empty(),
        "the second is not reported as recorded: {second_recorded:?}"
    );
    assert_eq!(second_recorded.1, 1, "the second is counted as same_phone");
    let outcomes: Vec<(i64, String)> = sqlx::query_as(
        "SELECT case_pk, outcome FROM reminder_occurrences WHERE reminder_id = $1 ORDER BY case_pk",
    )
    .bind(rule.id)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        outcomes,
        [
            (a_pk, "queued".to_string()),
            (b_pk, "same_phone".to_string())
        ]
    );
    conn.close().await.unwrap();
}

on_both_engines!(a_group_a_rule_names_is_not_deleted_until_the_rule_is_changed);

/// Deleting a group that a rule's query names (by id or by name) would leave the rule meaning
/// something else and its cases not looked at again: refused, naming the rule, until the rule
/// no longer names it.
async fn a_group_a_rule_names_is_not_deleted_until_the_rule_is_changed(engine: Dialect) {
    use casecast_store::StoreError;

    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let by_id = group(db, p.id, "Cohort A").await;
    let by_name = group(db, p.id, "Cohort B").await;
    let first = reminders::create(
        db,
        p.id,
        &rule(json!({"name": "Arm A", "query": format!("group = {}", by_id.id)})),
        None,
    )
    .await
    .unwrap();
    reminders::create(
        db,
        p.id,
        &rule(json!({"name": "Arm B", "query": "district = Gulu", "stop_query": "group = \"cohort b\""})),
        None,
    )
    .await
    .unwrap();
    for (g, rule_name) in [(&by_id, "Arm A"), (&by_name, "Arm B")] {
        match db.delete_group(p.id, g.id).await {
            Err(StoreError::Conflict { code, message }) => {
                assert_eq!(code, "group_in_use");
                assert!(
                    message.contains(&format!("the reminder rule '{rule_name}'")),
                    "{message}"
                );
            }
            other => panic!("expected group_in_use, got {other:?}"),
        }
    }
    reminders::update(
        db,
        p.id,
        first.id,
        &rule(json!({"name": "Arm A", "query": "district = Gulu"})),
    )
    .await
    .unwrap();
    db.delete_group(p.id, by_id.id).await.unwrap();
    assert!(db.delete_group(p.id, by_name.id).await.is_err());
}

on_both_engines!(a_tick_fires_every_due_page_even_when_pages_share_numbers);

/// What a worker's tick calls (`fire_all_due`) sends everything due in one call, one message a
/// number: cases sharing a number within a page are `same_phone` before recording, and those
/// whose number an earlier page sent meet the one-queued-a-number index and are recorded
/// `same_phone` by the store, and counted.
async fn a_tick_fires_every_due_page_even_when_pages_share_numbers(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, .. } = setup(db, survey_body()).await;
    let clock = ManualClock::new(kampala(2026, 3, 1, 8, 0));
    let r = reminders::create(db, p.id, &rule(json!({})), None)
        .await
        .unwrap();
    // Three pages' worth; every seven cases share a number, so some numbers span two pages.
    let n = reminders::FIRE_PAGE * 2 + 34;
    many_cases(
        db,
        &p,
        n,
        7,
        &[("next_visit", "2026-03-05")],
        clock.now_ms(),
    )
    .await;
    tick(db, &clock).await;
    clock.set(kampala(2026, 3, 3, 9, 0));
    let recorded = reminders::fire_all_due(db, &clock, &casecast_engine::faults::Faults::none())
        .await
        .unwrap();
    assert_eq!(recorded, n, "every due occurrence recorded in one call");
    assert_eq!(reminders::fire_due(db, &clock).await.unwrap(), 0);
    assert_ne!(
        reminders::FIRE_PAGE % 7,
        0,
        "a number spans the first two pages"
    );
    let numbers = n.div_ceil(7);
    assert_eq!(reminder_messages(db, &p).await.len(), numbers);
    let counts = db.reminder_counts(r.id).await.unwrap();
    assert_eq!(counts.outcomes.get("queued"), Some(&(numbers as i64)));
    assert_eq!(
        counts.outcomes.get("same_phone"),
        Some(&((n - numbers) as i64))
    );
}
