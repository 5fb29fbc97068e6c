//! Case groups: create, list, get, rename, delete, name rules, isolation between projects,
//! the member list (pages, search, deleted and closed cases), removals and history.

use casecast_core::identifier::GroupName;
use casecast_core::{Email, Role};
use casecast_store::case_groups::Actor;
use casecast_store::membership::Change;
use casecast_store::StoreError;
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use sqlx::Row;

use crate::{
    all_members, case_with, change, csv, group, ids, member_ids, named, project, raw_pool,
    upload_and_process, PAGE,
};

on_both_engines!(
    create_group_then_list_and_get_it,
    group_names_are_unique_ignoring_case_and_surrounding_spaces,
    group_names_keep_html_as_written_and_allow_255_characters,
    rename_group_changes_the_name_and_keeps_members,
    delete_group_removes_memberships_but_keeps_the_cases,
    groups_of_another_project_are_not_found,
    group_members_pages_list_every_member_once_in_order,
    group_members_hide_deleted_cases_and_list_closed_ones,
    group_members_q_matches_case_id_external_id_phone_and_name,
    remove_member_and_remove_all_members,
    group_history_records_every_action_newest_first,
);

/// `(action, via, added, removed, detail, user email)` of a history entry.
type HistoryRow<'a> = (&'a str, &'a str, i64, i64, &'a str, Option<&'a str>);

fn name(text: &str) -> GroupName {
    GroupName::parse(text).unwrap()
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::NotFound(_))),
        "{what}: expected NotFound, got {result:?}"
    );
}

async fn create_group_then_list_and_get_it(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    assert!(db.list_groups(p.id).await.unwrap().is_empty());
    let b = group(db, p.id, "  pregnant women ").await;
    let a = group(db, p.id, "Defaulters").await;
    assert_eq!(b.name, "pregnant women", "the name is trimmed");
    assert_eq!(b.case_count, 0);
    assert_eq!(b.project_id, p.id);
    assert_eq!(b.created_at, b.modified_at);
    let listed: Vec<(i64, String)> = db
        .list_groups(p.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect();
    assert_eq!(
        listed,
        vec![(a.id, "Defaulters".into()), (b.id, "pregnant women".into())],
        "listed by name ignoring case"
    );
    let got = db.get_group(p.id, a.id).await.unwrap();
    assert_eq!(
        (got.id, got.name.as_str(), got.case_count),
        (a.id, "Defaulters", 0)
    );
    assert_not_found(db.get_group(p.id, a.id + b.id + 100).await, "no such group");
}

async fn group_names_are_unique_ignoring_case_and_surrounding_spaces(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let other = project(db, "other", None).await;
    let study = group(db, p.id, "Study A").await;
    for taken in ["Study A", "study a", "  STUDY A  "] {
        match db.create_group(p.id, &name(taken), PAGE).await {
            Err(StoreError::Conflict { code, message }) => {
                assert_eq!(code, "name_taken");
                assert!(message.contains(taken.trim()), "{message}");
            }
            other => panic!("'{taken}': expected name_taken, got {other:?}"),
        }
    }
    assert_eq!(db.list_groups(p.id).await.unwrap().len(), 1);
    // Another project may use the name.
    group(db, other.id, "study a").await;
    // Renaming onto a taken name is refused; renaming to a new spelling of its own name is not.
    let b = group(db, p.id, "Study B").await;
    match db.rename_group(p.id, b.id, &name(" STUDY a"), PAGE).await {
        Err(StoreError::Conflict { code, .. }) => assert_eq!(code, "name_taken"),
        other => panic!("expected name_taken, got {other:?}"),
    }
    assert_eq!(db.get_group(p.id, b.id).await.unwrap().name, "Study B");
    let renamed = db
        .rename_group(p.id, study.id, &name("STUDY A"), PAGE)
        .await
        .unwrap();
    assert_eq!(renamed.name, "STUDY A");
}

async fn group_names_keep_html_as_written_and_allow_255_characters(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let html = "<script>alert('x')</script> & <b>Mothers</b> \"Gulu\"";
    let g = group(db, p.id, html).await;
    assert_eq!(g.name, html, "stored as written, not escaped");
    assert_eq!(db.get_group(p.id, g.id).await.unwrap().name, html);

    let longest = "é".repeat(254) + "x";
    assert_eq!(longest.chars().count(), 255);
    let g = group(db, p.id, &longest).await;
    assert_eq!(db.get_group(p.id, g.id).await.unwrap().name, longest);
    let too_long = longest + "y";
    let err = GroupName::parse(&too_long).unwrap_err();
    assert!(err.0.contains("255"), "{}", err.0);
    assert!(GroupName::parse("   ").is_err(), "a blank name is refused");
    assert!(
        GroupName::parse("a\tb").is_err(),
        "control characters are refused"
    );
}

async fn rename_group_changes_the_name_and_keeps_members(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "Old").await;
    let c = case_with(db, p.id, Some("C-1"), "Aber", None, None).await;
    change(db, p.id, g.id, Change::Add, &["C-1"]).await;
    let renamed = db
        .rename_group(p.id, g.id, &name("  New name "), PAGE)
        .await
        .unwrap();
    assert_eq!((renamed.id, renamed.name.as_str()), (g.id, "New name"));
    assert_eq!(renamed.case_count, 1);
    assert!(renamed.modified_at >= g.modified_at);
    assert_eq!(
        member_ids(db, p.id, g.id).await,
        vec![c.case_id.to_string()]
    );
    assert_not_found(
        db.rename_group(p.id, g.id + 100, &name("X"), PAGE).await,
        "renaming no group",
    );
}

async fn delete_group_removes_memberships_but_keeps_the_cases(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "Gone").await;
    let kept = group(db, p.id, "Kept").await;
    for id in ["C-1", "C-2"] {
        case_with(db, p.id, Some(id), id, None, None).await;
    }
    change(db, p.id, g.id, Change::Add, &["C-1", "C-2"]).await;
    change(db, p.id, kept.id, Change::Add, &["C-1"]).await;
    upload_and_process(
        db,
        p.id,
        g.id,
        Change::Add,
        "g.csv",
        csv("case_identifier", &["C-1"]),
        None,
    )
    .await;

    db.delete_group(p.id, g.id).await.unwrap();
    assert_not_found(db.get_group(p.id, g.id).await, "the deleted group");
    assert_not_found(
        db.group_members(p.id, g.id, None, 10, None).await,
        "members of the deleted group",
    );
    assert_not_found(db.delete_group(p.id, g.id).await, "deleting it again");
    let names: Vec<String> = db
        .list_groups(p.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(names, vec!["Kept"]);
    for id in ["C-1", "C-2"] {
        let case = db.get_case(p.id, id).await.unwrap();
        assert!(!case.deleted, "the case stays");
    }
    assert_eq!(db.get_group(p.id, kept.id).await.unwrap().case_count, 1);
    let pool = raw_pool(&t.url).await;
    let left: i64 = sqlx::query("SELECT COUNT(*) AS n FROM case_group_members WHERE group_id = $1")
        .bind(g.id)
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(left, 0, "no membership rows remain");
    // The name is free again.
    let again = group(db, p.id, "gone").await;
    assert_eq!(again.case_count, 0);
    assert!(member_ids(db, p.id, again.id).await.is_empty());
}

async fn groups_of_another_project_are_not_found(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let a = project(db, "alpha", None).await;
    let b = project(db, "beta", None).await;
    let ga = group(db, a.id, "Alpha group").await;
    case_with(db, a.id, Some("A-1"), "Alpha case", None, None).await;
    case_with(db, b.id, Some("A-1"), "Beta case", None, None).await;
    change(db, a.id, ga.id, Change::Add, &["A-1"]).await;

    assert!(db.list_groups(b.id).await.unwrap().is_empty());
    assert_not_found(db.get_group(b.id, ga.id).await, "get");
    assert_not_found(
        db.rename_group(b.id, ga.id, &name("Stolen"), PAGE).await,
        "rename",
    );
    assert_not_found(db.delete_group(b.id, ga.id).await, "delete");
    assert_not_found(
        db.group_members(b.id, ga.id, None, 10, None).await,
        "members",
    );
    assert_not_found(
        db.group_members(b.id, ga.id, Some("A-1"), 10, None).await,
        "members with q",
    );
    assert_not_found(
        db.change_members(b.id, ga.id, Change::Add, &ids(&["A-1"]), PAGE)
            .await,
        "add",
    );
    assert_not_found(
        db.change_members(b.id, ga.id, Change::Remove, &ids(&["A-1"]), PAGE)
            .await,
        "remove",
    );
    assert_not_found(
        db.remove_member(b.id, ga.id, "A-1", PAGE).await,
        "remove one",
    );
    assert_not_found(db.remove_all_members(b.id, ga.id, PAGE).await, "remove all");
    assert_not_found(db.group_history(b.id, ga.id, 10).await, "history");
    assert!(db.group_uploads(b.id, ga.id, 10).await.unwrap().is_empty());
    assert!(matches!(
        db.create_upload(
            b.id,
            ga.id,
            Change::Add,
            "x.csv",
            csv("case_identifier", &["A-1"]),
            None
        )
        .await,
        Err(casecast_store::case_import::ImportError::Store(
            StoreError::NotFound(_)
        ))
    ));

    let still = db.get_group(a.id, ga.id).await.unwrap();
    assert_eq!((still.name.as_str(), still.case_count), ("Alpha group", 1));
    let members = all_members(db, a.id, ga.id, 10).await;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].name, "Alpha case", "project alpha's own case");
    assert_eq!(
        db.group_history(a.id, ga.id, 10).await.unwrap().len(),
        2,
        "create and add only"
    );
}

async fn group_members_pages_list_every_member_once_in_order(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "Many").await;
    let mut members = Vec::new();
    for i in 0..30 {
        let c = db
            .create_case(p.id, None, &named(&format!("Case {i}")))
            .await
            .unwrap();
        // Five cases stay outside the group.
        if i % 6 != 5 {
            members.push(c.case_id.to_string());
        }
    }
    assert_eq!(members.len(), 25);
    // Added in reverse, in two calls: the list is still in the cases' creation order.
    let mut reversed: Vec<String> = members.iter().rev().cloned().collect();
    let rest = reversed.split_off(10);
    for part in [reversed, rest] {
        db.change_members(p.id, g.id, Change::Add, &part, PAGE)
            .await
            .unwrap();
    }
    assert_eq!(db.get_group(p.id, g.id).await.unwrap().case_count, 25);

    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = db.group_members(p.id, g.id, None, 7, cursor).await.unwrap();
        pages.push(
            page.items
                .iter()
                .map(|c| c.case_id.to_string())
                .collect::<Vec<_>>(),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next.parse::<i64>().unwrap()),
            None => break,
        }
    }
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![7, 7, 7, 4]);
    assert_eq!(pages.concat(), members, "every member once, in order");

    // An exact multiple of the limit ends without an empty extra page.
    let page = db.group_members(p.id, g.id, None, 25, None).await.unwrap();
    assert_eq!(page.items.len(), 25);
    assert!(page.next_cursor.is_none());
}

async fn group_members_hide_deleted_cases_and_list_closed_ones(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "G").await;
    for id in ["C-1", "C-2", "C-3"] {
        case_with(db, p.id, Some(id), id, None, None).await;
    }
    change(db, p.id, g.id, Change::Add, &["C-1", "C-2", "C-3"]).await;
    let other = group(db, p.id, "Other").await;
    change(db, p.id, other.id, Change::Add, &["C-2", "C-3"]).await;
    db.delete_case(p.id, "C-2").await.unwrap();
    db.close_case(p.id, "C-3").await.unwrap();
    assert_eq!(
        db.get_group(p.id, other.id).await.unwrap().case_count,
        1,
        "every group of the deleted case counts it no more"
    );
    assert_eq!(member_ids(db, p.id, other.id).await, vec!["C-3"]);
    let members = all_members(db, p.id, g.id, 10).await;
    let listed: Vec<(&str, bool)> = members
        .iter()
        .map(|c| (c.case_id.as_str(), c.closed))
        .collect();
    assert_eq!(listed, vec![("C-1", false), ("C-3", true)]);
    assert!(members.iter().all(|c| !c.deleted));
    assert_eq!(db.get_group(p.id, g.id).await.unwrap().case_count, 2);
    let listed: Vec<(String, i64)> = db
        .list_groups(p.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.name, g.case_count))
        .collect();
    assert_eq!(listed, vec![("G".into(), 2), ("Other".into(), 1)]);
    // Removing everything empties the count, deleted member or not.
    db.remove_all_members(p.id, g.id, PAGE).await.unwrap();
    assert_eq!(db.get_group(p.id, g.id).await.unwrap().case_count, 0);
    assert!(db
        .group_members(p.id, g.id, Some("C-2"), 10, None)
        .await
        .unwrap()
        .items
        .is_empty());
}

async fn group_members_q_matches_case_id_external_id_phone_and_name(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let g = group(db, p.id, "G").await;
    case_with(
        db,
        p.id,
        Some("C-1"),
        "Aber Grace",
        Some("P-001"),
        Some("+256772123456"),
    )
    .await;
    case_with(
        db,
        p.id,
        Some("C-2"),
        "Okello John",
        Some("P-002"),
        Some("+256701000002"),
    )
    .await;
    case_with(db, p.id, Some("C-3"), "Grace 100%_done", None, None).await;
    // Not a member: never listed, however well it matches.
    case_with(
        db,
        p.id,
        Some("C-4"),
        "Grace Outsider",
        Some("P-004"),
        Some("+256701000004"),
    )
    .await;
    change(db, p.id, g.id, Change::Add, &["C-1", "C-2", "C-3"]).await;

    let search = |q: &'static str| async move {
        db.group_members(p.id, g.id, Some(q), 10, None)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|c| c.case_id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(search("C-2").await, vec!["C-2"], "case ID");
    assert_eq!(search(" P-001 ").await, vec!["C-1"], "external ID, trimmed");
    assert_eq!(
        search("+256 772 123 456").await,
        vec!["C-1"],
        "phone, written with spaces"
    );
    assert_eq!(search("0772123456").await, vec!["C-1"], "national phone");
    assert_eq!(
        search("256701000002").await,
        vec!["C-2"],
        "international without +"
    );
    assert_eq!(
        search("grace").await,
        vec!["C-1", "C-3"],
        "part of the name, any case"
    );
    assert_eq!(search("OKELLO").await, vec!["C-2"]);
    assert_eq!(
        search("100%").await,
        vec!["C-3"],
        "% is a character, not a wildcard"
    );
    assert_eq!(search("%").await, vec!["C-3"]);
    assert_eq!(search("_").await, vec!["C-3"]);
    assert!(
        search("P-004").await.is_empty(),
        "a non-member is not found"
    );
    assert!(search("nobody").await.is_empty());
    assert_eq!(search("  ").await.len(), 3, "a blank q lists everything");

    // Searching pages too.
    let first = db
        .group_members(p.id, g.id, Some("grace"), 1, None)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 1);
    let cursor = first.next_cursor.expect("a second page").parse().unwrap();
    let second = db
        .group_members(p.id, g.id, Some("grace"), 1, Some(cursor))
        .await
        .unwrap();
    assert_eq!(second.items[0].case_id.as_str(), "C-3");
    assert!(second.next_cursor.is_none());
}

async fn remove_member_and_remove_all_members(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let other = project(db, "other", None).await;
    let g = group(db, p.id, "G").await;
    for id in ["C-1", "C-2", "C-3"] {
        case_with(db, p.id, Some(id), id, None, None).await;
    }
    case_with(db, other.id, Some("C-9"), "Elsewhere", None, None).await;
    change(db, p.id, g.id, Change::Add, &["C-1", "C-2", "C-3"]).await;

    db.remove_member(p.id, g.id, "C-2", PAGE).await.unwrap();
    assert_eq!(member_ids(db, p.id, g.id).await, vec!["C-1", "C-3"]);
    assert_not_found(
        db.remove_member(p.id, g.id, "C-2", PAGE).await,
        "not a member any more",
    );
    assert_not_found(
        db.remove_member(p.id, g.id, "nobody", PAGE).await,
        "no such case",
    );
    assert_not_found(
        db.remove_member(p.id, g.id, "C-9", PAGE).await,
        "another project's case",
    );
    assert_not_found(
        db.remove_member(p.id, g.id + 100, "C-1", PAGE).await,
        "no such group",
    );
    assert!(db.get_case(p.id, "C-2").await.is_ok(), "the case stays");

    assert_eq!(db.remove_all_members(p.id, g.id, PAGE).await.unwrap(), 2);
    assert!(member_ids(db, p.id, g.id).await.is_empty());
    assert_eq!(db.get_group(p.id, g.id).await.unwrap().case_count, 0);
    assert_eq!(db.remove_all_members(p.id, g.id, PAGE).await.unwrap(), 0);
    assert_eq!(db.count_cases(p.id).await.unwrap(), 3);
}

async fn group_history_records_every_action_newest_first(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let nurse = db
        .upsert_user(
            &Email::parse("nurse@example.org").unwrap(),
            "pw-123456",
            p.id,
            Role::Editor,
        )
        .await
        .unwrap();
    let by_nurse = |via: &'static str| Actor {
        user_id: Some(nurse.id),
        via,
    };
    for id in ["C-1", "C-2", "C-3"] {
        case_with(db, p.id, Some(id), id, None, None).await;
    }
    let g = db
        .create_group(p.id, &name("First"), by_nurse("page"))
        .await
        .unwrap();
    db.rename_group(p.id, g.id, &name("Second"), by_nurse("api"))
        .await
        .unwrap();
    db.change_members(
        p.id,
        g.id,
        Change::Add,
        &ids(&["C-1", "C-2", "nobody"]),
        by_nurse("api"),
    )
    .await
    .unwrap();
    db.change_members(
        p.id,
        g.id,
        Change::Remove,
        &ids(&[" C-1 "]),
        by_nurse("cli"),
    )
    .await
    .unwrap();
    db.remove_member(p.id, g.id, "C-2", PAGE).await.unwrap();
    upload_and_process(
        db,
        p.id,
        g.id,
        Change::Add,
        "in.csv",
        csv("case_identifier", &["C-1", "C-2", "C-3", "C-3"]),
        Some(nurse.id),
    )
    .await;
    upload_and_process(
        db,
        p.id,
        g.id,
        Change::Remove,
        "out.csv",
        csv("case_identifier", &["C-3"]),
        Some(nurse.id),
    )
    .await;
    db.remove_all_members(p.id, g.id, by_nurse("page"))
        .await
        .unwrap();

    let history = db.group_history(p.id, g.id, 100).await.unwrap();
    let seen: Vec<HistoryRow> = history
        .iter()
        .map(|h| {
            (
                h.action.as_str(),
                h.via.as_str(),
                h.added,
                h.removed,
                h.detail.as_str(),
                h.user_email.as_deref(),
            )
        })
        .collect();
    let nurse_email = Some("nurse@example.org");
    assert_eq!(
        seen,
        vec![
            ("remove_all", "page", 0, 2, "", nurse_email),
            ("upload_remove", "upload", 0, 1, "out.csv", nurse_email),
            ("upload_add", "upload", 3, 0, "in.csv", nurse_email),
            ("remove", "page", 0, 1, "C-2", None),
            ("remove", "cli", 0, 1, "C-1", nurse_email),
            ("add", "api", 2, 0, "3 identifiers", nurse_email),
            ("rename", "api", 0, 0, "Second", nurse_email),
            ("create", "page", 0, 0, "First", nurse_email),
        ]
    );
    assert!(
        history.windows(2).all(|w| w[0].at >= w[1].at),
        "newest first"
    );
    let limited = db.group_history(p.id, g.id, 2).await.unwrap();
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0].action, "remove_all");
}
