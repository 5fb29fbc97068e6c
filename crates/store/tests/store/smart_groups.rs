//! Smart groups on both engines (issue 16): members computed in SQL when saved, kept current
//! through every write path by the workers' pass, groups naming each other followed in one
//! pass, cycles refused, hand changes refused, and a smart group read by a broadcast and a
//! reminder.

use casecast_core::case::CaseChanges;
use casecast_core::identifier::GroupName;
use casecast_engine::clock::{Clock, ManualClock};
use casecast_engine::smart_groups::{self, SaveError};
use casecast_engine::{reminders, SharedClock};
use casecast_store::case_groups::{Actor, CaseGroup};
use casecast_store::membership::Change;
use casecast_store::projects::Project;
use casecast_store::{Db, StoreError};
use casecast_testkit::{on_both_engines, Dialect, TestDb, Workflows};
use serde_json::json;

use crate::broadcasts::draft;
use crate::surveys::{mo, setup, survey_body, Setup};
use crate::{case_with, group, import, project};

on_both_engines!(
    a_smart_group_holds_the_live_cases_matching_its_query,
    every_write_path_keeps_the_members_current,
    groups_naming_groups_follow_in_one_pass_and_cycles_are_refused,
    hand_changes_to_a_smart_group_are_refused,
    a_broadcast_and_a_reminder_read_a_smart_group_as_the_cases_are_now,
    saved_queries_index_the_properties_they_compare,
    a_pass_waits_while_a_smart_group_is_held,
);

const ACTOR: Actor = Actor {
    user_id: None,
    via: "api",
};

async fn smart(
    db: &Db,
    clock: &dyn Clock,
    p: &Project,
    name: &str,
    query: &str,
) -> Result<CaseGroup, SaveError> {
    smart_groups::create(db, clock, p, &GroupName::parse(name).unwrap(), query, ACTOR).await
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

/// A case with these properties; returns its case ID.
async fn person(db: &Db, p: &Project, name: &str, phone: &str, props: &[(&str, &str)]) -> String {
    let c = case_with(db, p.id, None, name, None, Some(phone)).await;
    let props: Vec<(&str, Option<&str>)> = props.iter().map(|(k, v)| (*k, Some(*v))).collect();
    set(db, p, c.case_id.as_str(), &props).await;
    c.case_id.as_str().to_string()
}

/// The names of a group's live members, sorted, and the stored count (which must agree).
async fn members(db: &Db, p: &Project, group_id: i64) -> Vec<String> {
    let page = db
        .group_members(p.id, group_id, None, 1000, None)
        .await
        .unwrap();
    let mut names: Vec<String> = page.items.into_iter().map(|c| c.name).collect();
    names.sort();
    let count = db.get_group(p.id, group_id).await.unwrap().case_count;
    assert_eq!(
        count,
        names.len() as i64,
        "the stored count follows the members"
    );
    names
}

/// What a worker's tick runs for cases written.
async fn tick(db: &Db, clock: &dyn Clock) {
    reminders::evaluate_pending(db, clock).await.unwrap();
    assert!(!db.has_pending_cases().await.unwrap());
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

async fn a_smart_group_holds_the_live_cases_matching_its_query(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let clock = ManualClock::new(1_800_000_000_000);
    let p = project(db, "alpha", Some("UG")).await;
    person(
        db,
        &p,
        "Amina",
        "0772000801",
        &[("district", "Gulu"), ("age", "34")],
    )
    .await;
    person(
        db,
        &p,
        "Bea",
        "0772000802",
        &[("district", "gulu"), ("age", "17")],
    )
    .await;
    person(
        db,
        &p,
        "Cleo",
        "0772000803",
        &[("district", "Gulu"), ("age", "eighteen")],
    )
    .await;
    let dan = person(
        db,
        &p,
        "Dan",
        "0772000804",
        &[("district", "Gulu"), ("age", "40")],
    )
    .await;
    person(
        db,
        &p,
        "Eve",
        "0772000805",
        &[("district", "Lira"), ("age", "50")],
    )
    .await;
    let fay = person(
        db,
        &p,
        "Fay",
        "0772000806",
        &[("district", "Gulu"), ("age", "22")],
    )
    .await;
    db.delete_case(p.id, &dan).await.unwrap();
    db.close_case(p.id, &fay).await.unwrap();

    let g = smart(
        db,
        &clock,
        &p,
        "Gulu adults",
        "district = Gulu AND age >= 18",
    )
    .await
    .unwrap();
    assert_eq!(
        g.query.as_deref(),
        Some("district = Gulu AND age >= 18"),
        "the query as saved"
    );
    // Deleted Dan is not a member; closed Fay is (the query does not ask); "eighteen" is not
    // a number.
    assert_eq!(members(db, &p, g.id).await, names(&["Amina", "Fay"]));
    let history = db.group_history(p.id, g.id, 10).await.unwrap();
    let actions: Vec<(&str, i64, i64)> = history
        .iter()
        .map(|h| (h.action.as_str(), h.added, h.removed))
        .collect();
    assert_eq!(actions, vec![("create", 2, 0)]);

    // A new query: who joins and who leaves, counted once in the history.
    let change = smart_groups::set_query(
        db,
        &clock,
        &p,
        g.id,
        "district = Gulu AND closed = false",
        ACTOR,
    )
    .await
    .unwrap();
    assert_eq!((change.matched, change.no_longer_matched), (2, 1));
    assert_eq!(
        members(db, &p, g.id).await,
        names(&["Amina", "Bea", "Cleo"])
    );
    let last = &db.group_history(p.id, g.id, 1).await.unwrap()[0];
    assert_eq!(
        (last.action.as_str(), last.added, last.removed),
        ("query", 2, 1)
    );
    assert_eq!(last.detail, "district = Gulu AND closed = false");

    // A plain group takes no query; a wrong query says where.
    let plain = group(db, p.id, "Plain").await;
    match smart_groups::set_query(db, &clock, &p, plain.id, "age > 1", ACTOR).await {
        Err(SaveError::Store(StoreError::Conflict { code, .. })) => assert_eq!(code, "not_smart"),
        other => panic!("expected not_smart, got {other:?}"),
    }
    match smart(db, &clock, &p, "Broken", "district = Gulu AND age >=").await {
        Err(SaveError::Query(m)) => assert!(m.contains("at 27"), "{m}"),
        other => panic!("expected a query error, got {other:?}"),
    }
    match smart(db, &clock, &p, "Ghost", "group = Nowhere").await {
        Err(SaveError::Query(m)) => assert!(m.contains("no case group is named 'Nowhere'"), "{m}"),
        other => panic!("expected a query error, got {other:?}"),
    }
    // A query within the limits as typed but not as saved (written out in full) is refused.
    let terse: Vec<String> = (0..100)
        .map(|i| format!("p{i}={}", "x".repeat(94)))
        .collect();
    let terse = terse.join(" ");
    assert!(terse.chars().count() <= 10_000);
    match smart(db, &clock, &p, "Terse", &terse).await {
        Err(SaveError::Query(m)) => assert!(m.contains("as saved"), "{m}"),
        other => panic!("expected a query error, got {other:?}"),
    }
    // A name in use is refused as for a plain group.
    match smart(db, &clock, &p, "gulu ADULTS", "age > 1").await {
        Err(SaveError::Store(StoreError::Conflict { code, .. })) => assert_eq!(code, "name_taken"),
        other => panic!("expected name_taken, got {other:?}"),
    }
    assert!(
        db.group_id_by_name(p.id, "Broken").await.unwrap().is_none(),
        "nothing half-made"
    );
}

async fn every_write_path_keeps_the_members_current(engine: Dialect) {
    use casecast_core::keyword::Keyword;

    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, g, survey_id } = setup(db, survey_body()).await;
    let clock = ManualClock::new(1_800_000_000_000);
    let anc = group(db, p.id, "ANC").await;
    // Members of ANC with two visits or more, open.
    let s = smart(
        db,
        &clock,
        &p,
        "Engaged",
        "group = ANC AND anc_visits >= 2 AND closed = false",
    )
    .await
    .unwrap();
    // Registered by keyword.
    let r = smart(db, &clock, &p, "Registered", "registered = yes")
        .await
        .unwrap();
    assert!(members(db, &p, s.id).await.is_empty());
    assert!(!db.has_pending_cases().await.unwrap());

    // An import makes a case and a plain group add puts it in ANC: not yet two visits.
    let csv = "external_id,name,phone_number,anc_visits\nP-1,Imani,0772000811,1\n";
    import(db, &p, csv.as_bytes(), "cases.csv").await.unwrap();
    assert!(
        db.has_pending_cases().await.unwrap(),
        "the import's case waits"
    );
    tick(db, &clock).await;
    crate::change(db, p.id, anc.id, Change::Add, &["P-1"]).await;
    assert!(
        db.has_pending_cases().await.unwrap(),
        "the plain group's member waits"
    );
    tick(db, &clock).await;
    assert!(members(db, &p, s.id).await.is_empty());

    // An import that changes the case: it joins.
    let csv = "external_id,name,anc_visits\nP-1,Imani,3\n";
    import(db, &p, csv.as_bytes(), "cases.csv").await.unwrap();
    tick(db, &clock).await;
    assert_eq!(members(db, &p, s.id).await, names(&["Imani"]));

    // Closed: it leaves; the API's update (reopen is not a thing: a property) and removal from
    // ANC likewise.
    let imani = db
        .list_cases(
            p.id,
            &casecast_store::cases::CaseFilter {
                external_id: Some("P-1".into()),
                ..Default::default()
            },
            1,
            None,
        )
        .await
        .unwrap()
        .items
        .remove(0)
        .case_id
        .as_str()
        .to_string();
    db.close_case(p.id, &imani).await.unwrap();
    tick(db, &clock).await;
    assert!(members(db, &p, s.id).await.is_empty());

    // A case made by the API, in ANC, answering a survey: the answer saves anc_visits = 4.
    let amina = person(db, &p, "Amina", "0772000812", &[]).await;
    crate::change(db, p.id, anc.id, Change::Add, &[amina.as_str()]).await;
    tick(db, &clock).await;
    assert!(members(db, &p, s.id).await.is_empty());
    db.start_survey(&p, survey_id, &amina).await.unwrap();
    db.record_inbound(&g, &mo("+256772000812", "4"))
        .await
        .unwrap();
    tick(db, &clock).await;
    assert_eq!(members(db, &p, s.id).await, names(&["Amina"]));

    // The API's update: fewer visits, it leaves.
    set(db, &p, &amina, &[("anc_visits", Some("1"))]).await;
    tick(db, &clock).await;
    assert!(members(db, &p, s.id).await.is_empty());
    set(db, &p, &amina, &[("anc_visits", Some("2"))]).await;
    tick(db, &clock).await;
    assert_eq!(members(db, &p, s.id).await, names(&["Amina"]));

    // Deleted: it leaves, and the count does not go down twice.
    db.delete_case(p.id, &amina).await.unwrap();
    assert_eq!(db.get_group(p.id, s.id).await.unwrap().case_count, 0);
    tick(db, &clock).await;
    assert!(members(db, &p, s.id).await.is_empty());

    // A keyword that sets a property on a new case: it joins "Registered".
    let reg = Keyword::parse(
        &json!({"keyword": "REG", "fields": ["name", "registered"], "unknown_sender": "create_case",
                "actions": [{"type": "set_properties"}]}),
        &["STOP", "START"],
    )
    .unwrap();
    db.create_keyword(p.id, &reg, None).await.unwrap();
    db.record_inbound(&g, &mo("+256772000813", "REG Fay yes"))
        .await
        .unwrap();
    tick(db, &clock).await;
    assert_eq!(members(db, &p, r.id).await, names(&["Fay"]));

    // The history counts, one upkeep row per minute (not a row per case per change).
    let history = db.group_history(p.id, s.id, 20).await.unwrap();
    let upkeep: Vec<(i64, i64)> = history
        .iter()
        .filter(|h| h.action == "matched" && h.via == "upkeep")
        .map(|h| (h.added, h.removed))
        .collect();
    assert_eq!(upkeep, vec![(3, 3)], "{history:?}");
    clock.advance(smart_groups_merge() + 1);
    set(db, &p, &imani, &[("anc_visits", Some("5"))]).await;
    tick(db, &clock).await;
    let history = db.group_history(p.id, s.id, 20).await.unwrap();
    let upkeep = history
        .iter()
        .filter(|h| h.action == "matched" && h.via == "upkeep")
        .count();
    assert_eq!(
        upkeep, 1,
        "closed Imani still does not match: nothing to record"
    );
}

fn smart_groups_merge() -> i64 {
    casecast_store::smart_groups::HISTORY_MERGE_MS
}

async fn groups_naming_groups_follow_in_one_pass_and_cycles_are_refused(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let clock = ManualClock::new(1_800_000_000_000);
    let p = project(db, "alpha", Some("UG")).await;
    let gulu = smart(db, &clock, &p, "Gulu", "district = Gulu")
        .await
        .unwrap();
    // Named by name; saved by id, so a rename changes nothing.
    let adults = smart(db, &clock, &p, "Gulu adults", "group = Gulu AND age >= 18")
        .await
        .unwrap();
    assert_eq!(
        adults.query.as_deref(),
        Some(format!("group = {} AND age >= 18", gulu.id).as_str())
    );
    db.rename_group(
        p.id,
        gulu.id,
        &GroupName::parse("Gulu district").unwrap(),
        ACTOR,
    )
    .await
    .unwrap();
    assert_eq!(
        smart_groups::display_query(db, p.id, adults.query.as_deref().unwrap())
            .await
            .unwrap(),
        "group = \"Gulu district\" AND age >= 18"
    );

    let a = person(
        db,
        &p,
        "Amina",
        "0772000821",
        &[("district", "Gulu"), ("age", "30")],
    )
    .await;
    tick(db, &clock).await;
    assert_eq!(members(db, &p, gulu.id).await, names(&["Amina"]));
    assert_eq!(
        members(db, &p, adults.id).await,
        names(&["Amina"]),
        "in the same pass"
    );
    set(db, &p, &a, &[("district", Some("Lira"))]).await;
    tick(db, &clock).await;
    assert!(members(db, &p, gulu.id).await.is_empty());
    assert!(members(db, &p, adults.id).await.is_empty());

    // Cycles: itself, or through another.
    match smart_groups::set_query(db, &clock, &p, gulu.id, "group = \"Gulu adults\"", ACTOR).await {
        Err(SaveError::Query(m)) => assert!(m.contains("cycle"), "{m}"),
        other => panic!("expected a cycle, got {other:?}"),
    }
    match smart_groups::set_query(
        db,
        &clock,
        &p,
        gulu.id,
        &format!("group = {}", gulu.id),
        ACTOR,
    )
    .await
    {
        Err(SaveError::Query(m)) => assert!(m.contains("itself"), "{m}"),
        other => panic!("expected a self reference, got {other:?}"),
    }
    // A group a query names cannot be deleted.
    match db.delete_group(p.id, gulu.id).await {
        Err(StoreError::Conflict { code, message }) => {
            assert_eq!(code, "group_in_use");
            assert!(message.contains("Gulu adults"), "{message}");
        }
        other => panic!("expected group_in_use, got {other:?}"),
    }
    db.delete_group(p.id, adults.id).await.unwrap();
    db.delete_group(p.id, gulu.id).await.unwrap();
}

async fn hand_changes_to_a_smart_group_are_refused(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let clock = ManualClock::new(1_800_000_000_000);
    let p = project(db, "alpha", Some("UG")).await;
    let a = person(db, &p, "Amina", "0772000831", &[("district", "Gulu")]).await;
    person(db, &p, "Bea", "0772000832", &[("district", "Lira")]).await;
    let s = smart(db, &clock, &p, "Gulu", "district = Gulu")
        .await
        .unwrap();
    let is_smart_group = |r: Result<(), StoreError>| match r {
        Err(StoreError::Conflict { code, message }) => {
            assert_eq!(code, "smart_group");
            assert!(message.contains("'Gulu' is a smart group"), "{message}");
        }
        other => panic!("expected smart_group, got {other:?}"),
    };
    is_smart_group(
        db.change_members(p.id, s.id, Change::Add, &["0772000832".into()], ACTOR)
            .await
            .map(drop),
    );
    is_smart_group(db.remove_member(p.id, s.id, &a, ACTOR).await);
    is_smart_group(db.remove_all_members(p.id, s.id, ACTOR).await.map(drop));
    match db
        .create_upload(
            p.id,
            s.id,
            Change::Add,
            "ids.csv",
            b"case_identifier\n0772000832\n".to_vec(),
            None,
        )
        .await
    {
        Err(casecast_store::case_import::ImportError::Store(e)) => is_smart_group(Err(e)),
        other => panic!("expected smart_group, got {:?}", other.map(|u| u.id)),
    }
    let mut tx = db.begin_write().await.unwrap();
    is_smart_group(
        db.change_memberships_tx(&mut tx, p.id, s.id, &[(1, a.clone())], true, 0)
            .await
            .map(drop),
    );
    tx.rollback().await.unwrap();
    assert_eq!(members(db, &p, s.id).await, names(&["Amina"]));
}

async fn a_broadcast_and_a_reminder_read_a_smart_group_as_the_cases_are_now(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let Setup { p, .. } = setup(db, survey_body()).await;
    let clock: SharedClock = std::sync::Arc::new(ManualClock::new(casecast_core::time::now_ms()));
    let clock = clock.as_ref();
    person(db, &p, "Amina", "0772000841", &[("district", "Gulu")]).await;
    let bea = person(db, &p, "Bea", "0772000842", &[("district", "Lira")]).await;
    let s = smart(db, clock, &p, "Gulu", "district = Gulu")
        .await
        .unwrap();
    // Bea moves to Gulu; no worker has looked yet, but the preview reads the group as it is.
    set(db, &p, &bea, &[("district", Some("Gulu"))]).await;
    assert!(db.has_pending_cases().await.unwrap());
    let d = draft(&[s.id], &[], json!({"*": "Hello {case.name}"}), json!(null));
    let preview = db.preview_broadcast(&p, &d).await.unwrap();
    assert_eq!(preview.recipients, 2);
    assert_eq!(members(db, &p, s.id).await, names(&["Amina", "Bea"]));

    // A rule for the group's members, at once: both get it; a case that joins later gets it
    // after the pass that makes it a member.
    let rule = casecast_core::reminder::ReminderRule::parse_checked(&json!({
        "name": "Welcome", "case_type": "case", "query": "group = Gulu",
        "start": {"immediately": true}, "time": null,
        "content": {"sms": {"*": "Welcome {case.name}"}}
    }))
    .unwrap();
    reminders::create(db, p.id, &rule, None).await.unwrap();
    while reminders::evaluate_rules(db, clock).await.unwrap() {}
    assert_eq!(reminders::fire_due(db, clock).await.unwrap(), 2);
    person(db, &p, "Cleo", "0772000843", &[("district", "Gulu")]).await;
    reminders::evaluate_pending(db, clock).await.unwrap();
    assert_eq!(reminders::fire_due(db, clock).await.unwrap(), 1);
    assert_eq!(
        members(db, &p, s.id).await,
        names(&["Amina", "Bea", "Cleo"])
    );
}

async fn saved_queries_index_the_properties_they_compare(engine: Dialect) {
    use casecast_core::case_query::CaseQuery;
    use casecast_store::property_index::MAX_PROPERTY_INDEXES;

    let t = TestDb::new(engine).await;
    let db = &t.db;
    let clock = ManualClock::new(1_800_000_000_000);
    let p = project(db, "alpha", Some("UG")).await;
    let zone = p.zone();
    for (i, (district, enrolled, age)) in [
        ("Gulu", "2026-02-01", "30"),
        ("gulu", "2025-12-31", "40"),
        ("Lira", "2026-03-01", "50"),
        ("Gulu", "not a date", "60"),
        ("Gulu", "2026-01-01", "eighteen"),
    ]
    .into_iter()
    .enumerate()
    {
        person(
            db,
            &p,
            &format!("P{i}"),
            &format!("077200085{i}"),
            &[("district", district), ("enrolled", enrolled), ("age", age)],
        )
        .await;
    }
    let plan = |text: &str| {
        let query = CaseQuery::parse(text).unwrap();
        let zone = zone.clone();
        async move {
            db.count_plan(p.id, &query, &zone, true)
                .await
                .unwrap()
                .join("\n")
        }
    };
    assert!(!plan("district = Gulu")
        .await
        .contains("cases_prop_district_"));
    let g = smart(
        db,
        &clock,
        &p,
        "Gulu since 2026",
        "district = Gulu AND enrolled >= 2026-01-01 AND age >= 18",
    )
    .await
    .unwrap();
    assert_eq!(members(db, &p, g.id).await, names(&["P0"]));
    // Equality and a date range are served by the new indexes; a number comparison is not.
    let by_district = plan("district = GULU").await;
    assert!(
        by_district.contains("cases_prop_district_"),
        "{by_district}"
    );
    let by_date = plan("enrolled >= 2026-01-01").await;
    assert!(by_date.contains("cases_prop_enrolled_"), "{by_date}");
    assert!(!plan("age >= 18").await.contains("cases_prop_age"));
    // The answers are the evaluator's (the date range's coarse test drops nothing).
    for (text, want) in [
        ("district = Gulu", 4),
        ("enrolled >= 2026-01-01", 3),
        ("enrolled < 2026-01-01", 1),
        ("enrolled > 2026-01-01 AND district = gulu", 1),
    ] {
        let counts = db
            .count_matching(p.id, &CaseQuery::parse(text).unwrap(), &zone)
            .await
            .unwrap();
        assert_eq!(counts.matched, want, "{text}");
    }

    // A reminder rule's queries are indexed when it is saved.
    let rule = casecast_core::reminder::ReminderRule::parse_checked(&json!({
        "name": "Arm B", "case_type": "case", "query": "study_arm = B",
        "start": {"immediately": true}, "time": null,
        "content": {"sms": {"*": "Hello"}}
    }))
    .unwrap();
    reminders::create(db, p.id, &rule, None).await.unwrap();
    let by_arm = plan("study_arm = b").await;
    assert!(by_arm.contains("cases_prop_study_arm_"), "{by_arm}");

    // At most MAX_PROPERTY_INDEXES, whatever is saved.
    for i in 0..MAX_PROPERTY_INDEXES {
        smart(db, &clock, &p, &format!("G{i}"), &format!("p{i} = x"))
            .await
            .unwrap();
    }
    let indexed = {
        let mut n = 0;
        for name in ["district", "enrolled", "study_arm"]
            .into_iter()
            .map(String::from)
            .chain((0..MAX_PROPERTY_INDEXES).map(|i| format!("p{i}")))
        {
            if plan(&format!("{name} = x"))
                .await
                .contains(&format!("cases_prop_{name}_"))
            {
                n += 1;
            }
        }
        n
    };
    assert_eq!(indexed, MAX_PROPERTY_INDEXES);
}

/// PostgreSQL: while another transaction holds one of the project's smart groups (a query
/// being saved), the workers' pass leaves the project's written cases waiting, whole, rather
/// than apply what the old query decided; it takes them once the group is free. (SQLite runs
/// one write transaction at a time: nothing to wait for.)
async fn a_pass_waits_while_a_smart_group_is_held(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let clock = ManualClock::new(1_800_000_000_000);
    let p = project(db, "alpha", Some("UG")).await;
    let g = smart(db, &clock, &p, "Gulu", "district = Gulu")
        .await
        .unwrap();
    person(db, &p, "Amina", "0772000861", &[("district", "Gulu")]).await;
    assert!(db.has_pending_cases().await.unwrap());
    if engine == Dialect::Postgres {
        let mut holder = db.begin_write().await.unwrap();
        sqlx::query("SELECT id FROM case_groups WHERE id = $1 FOR UPDATE")
            .bind(g.id)
            .fetch_one(&mut *holder)
            .await
            .unwrap();
        assert_eq!(reminders::evaluate_pending(db, &clock).await.unwrap(), 0);
        assert!(
            db.has_pending_cases().await.unwrap(),
            "the case still waits"
        );
        assert!(members(db, &p, g.id).await.is_empty());
        holder.rollback().await.unwrap();
    }
    tick(db, &clock).await;
    assert_eq!(members(db, &p, g.id).await, names(&["Amina"]));
}
