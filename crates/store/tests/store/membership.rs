//! Adding and removing cases by identifier: every outcome, the ways a phone number may be
//! written, ambiguity, deleted and closed cases, and lookups that stay within the project.

use casecast_core::identifier::Outcome;
use casecast_store::membership::{count_outcomes, Change, ItemResult};
use casecast_testkit::{on_both_engines, Dialect, TestDb};

use crate::{case_with, change, group, member_ids, outcomes, project};

on_both_engines!(
    add_gives_every_outcome_in_input_order,
    remove_gives_every_outcome_in_input_order,
    a_closed_case_is_added_with_a_warning,
    every_way_of_writing_a_phone_number_finds_the_case,
    a_national_number_needs_the_projects_country,
    two_cases_with_one_phone_number_are_ambiguous,
    a_case_id_of_one_case_and_external_id_of_another_is_ambiguous,
    one_live_and_one_deleted_match_pick_the_live_case,
    cases_of_another_project_are_not_found_by_any_identifier,
    a_case_matched_twice_by_the_same_identifier_is_not_ambiguous,
    change_members_records_history_with_counts,
    an_external_id_matches_ignoring_case_when_one_case_has_it,
    external_ids_differing_only_by_case_are_ambiguous_unless_one_is_exact,
);

fn only(results: &[ItemResult]) -> &ItemResult {
    assert_eq!(results.len(), 1, "{results:?}");
    &results[0]
}

async fn add_gives_every_outcome_in_input_order(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let g = group(db, p.id, "G").await;
    case_with(
        db,
        p.id,
        Some("C-1"),
        "Aber",
        Some("P-001"),
        Some("+256772123456"),
    )
    .await;
    case_with(db, p.id, Some("C-2"), "Okello", Some("P-002"), None).await;
    case_with(db, p.id, Some("C-3"), "Member", None, None).await;
    case_with(db, p.id, Some("C-4"), "Gone", Some("P-004"), None).await;
    case_with(db, p.id, Some("C-5"), "Twin A", None, Some("+256701000005")).await;
    case_with(db, p.id, Some("C-6"), "Twin B", None, Some("+256701000005")).await;
    db.delete_case(p.id, "C-4").await.unwrap();
    change(db, p.id, g.id, Change::Add, &["C-3"]).await;

    let long = "x".repeat(256);
    let results = change(
        db,
        p.id,
        g.id,
        Change::Add,
        &[
            "  C-1 ",
            "P-002",
            "C-3",
            "0772 123456",
            "no-such-case",
            "+256701000005",
            "P-004",
            "bad\u{7}text",
            &long,
            "",
            "   ",
        ],
    )
    .await;
    assert_eq!(
        outcomes(&results),
        vec![
            Outcome::Added,
            Outcome::Added,
            Outcome::AlreadyInGroup,
            Outcome::DuplicateInFile,
            Outcome::NotFound,
            Outcome::Ambiguous,
            Outcome::Deleted,
            Outcome::Invalid,
            Outcome::Invalid,
            Outcome::Blank,
            Outcome::Blank,
        ]
    );
    let ident: Vec<&str> = results.iter().map(|r| r.identifier.as_str()).collect();
    assert_eq!(
        &ident[..3],
        &["C-1", "P-002", "C-3"],
        "identifiers are trimmed"
    );
    assert_eq!(ident[10], "", "a blank is reported as empty");
    let case_ids: Vec<Option<&str>> = results.iter().map(|r| r.case_id.as_deref()).collect();
    assert_eq!(
        case_ids,
        vec![
            Some("C-1"),
            Some("C-2"),
            Some("C-3"),
            Some("C-1"),
            None,
            None,
            Some("C-4"),
            None,
            None,
            None,
            None
        ]
    );
    assert!(results[0].message.is_empty(), "{:?}", results[0]);
    assert!(
        results[3].message.contains("earlier"),
        "{}",
        results[3].message
    );
    assert!(
        results[4].message.contains("no case"),
        "{}",
        results[4].message
    );
    assert!(results[5].message.contains("C-5") && results[5].message.contains("C-6"));
    assert!(
        results[6].message.contains("deleted"),
        "{}",
        results[6].message
    );
    assert!(
        results[7].message.contains("cannot be"),
        "{}",
        results[7].message
    );
    assert!(results[8].message.contains("255"), "{}", results[8].message);

    let counts = count_outcomes(&results);
    assert_eq!(counts["added"], 2);
    assert_eq!(counts["invalid"], 2);
    assert_eq!(counts["blank"], 2);
    assert_eq!(member_ids(db, p.id, g.id).await, vec!["C-1", "C-2", "C-3"]);
    assert_eq!(db.get_group(p.id, g.id).await.unwrap().case_count, 3);
}

async fn remove_gives_every_outcome_in_input_order(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let g = group(db, p.id, "G").await;
    case_with(
        db,
        p.id,
        Some("C-1"),
        "Aber",
        Some("P-001"),
        Some("+256772123456"),
    )
    .await;
    case_with(db, p.id, Some("C-2"), "Okello", None, None).await;
    case_with(db, p.id, Some("C-3"), "Outside", None, None).await;
    case_with(db, p.id, Some("C-4"), "Gone", None, None).await;
    case_with(db, p.id, Some("C-5"), "Twin A", None, Some("+256701000005")).await;
    case_with(db, p.id, Some("C-6"), "Twin B", None, Some("+256701000005")).await;
    case_with(db, p.id, Some("C-7"), "Closed", None, None).await;
    change(
        db,
        p.id,
        g.id,
        Change::Add,
        &["C-1", "C-2", "C-4", "C-5", "C-6", "C-7"],
    )
    .await;
    db.delete_case(p.id, "C-4").await.unwrap();
    db.close_case(p.id, "C-7").await.unwrap();

    let results = change(
        db,
        p.id,
        g.id,
        Change::Remove,
        &[
            " P-001",
            "C-3",
            "+256 772 123 456",
            "nobody",
            "256701000005",
            "C-4",
            "a\u{1}b",
            "",
            "C-7",
        ],
    )
    .await;
    assert_eq!(
        outcomes(&results),
        vec![
            Outcome::Removed,
            Outcome::NotInGroup,
            Outcome::DuplicateInFile,
            Outcome::NotFound,
            Outcome::Ambiguous,
            Outcome::Deleted,
            Outcome::Invalid,
            Outcome::Blank,
            Outcome::Removed,
        ]
    );
    assert_eq!(results[0].case_id.as_deref(), Some("C-1"));
    assert_eq!(results[0].identifier, "P-001");
    assert!(results[0].message.is_empty());
    assert_eq!(results[1].case_id.as_deref(), Some("C-3"));
    assert!(
        results[8].message.is_empty(),
        "no closed warning on removal"
    );
    assert_eq!(member_ids(db, p.id, g.id).await, vec!["C-2", "C-5", "C-6"]);
    // Removing again: now not in the group.
    let again = change(db, p.id, g.id, Change::Remove, &["C-1"]).await;
    assert_eq!(only(&again).outcome, Outcome::NotInGroup);
}

async fn a_closed_case_is_added_with_a_warning(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "G").await;
    case_with(db, p.id, Some("C-1"), "Closed one", None, None).await;
    db.close_case(p.id, "C-1").await.unwrap();
    let results = change(db, p.id, g.id, Change::Add, &["C-1"]).await;
    let r = only(&results);
    assert_eq!(r.outcome, Outcome::Added);
    assert!(r.message.contains("closed"), "{}", r.message);
    assert!(r.message.contains("no messages"), "{}", r.message);
    assert_eq!(member_ids(db, p.id, g.id).await, vec!["C-1"]);
    let again = change(db, p.id, g.id, Change::Add, &["C-1"]).await;
    assert_eq!(only(&again).outcome, Outcome::AlreadyInGroup);
}

async fn every_way_of_writing_a_phone_number_finds_the_case(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let g = group(db, p.id, "G").await;
    case_with(db, p.id, Some("C-1"), "Aber", None, Some("+256772123456")).await;
    case_with(db, p.id, Some("C-2"), "Other", None, Some("+256701999999")).await;
    let forms = [
        "+256772123456",
        " +256 772 123 456 ",
        "+256-772-123-456",
        "+256.772.123.456",
        "+256 (772) 123456",
        "00256772123456",
        "00 256 772 123 456",
        "256772123456",
        "0772 123456",
        "0772123456",
        "(0772) 123-456",
        "772123456",
    ];
    for form in forms {
        let added = change(db, p.id, g.id, Change::Add, &[form]).await;
        let r = only(&added);
        assert_eq!(
            (r.outcome, r.case_id.as_deref()),
            (Outcome::Added, Some("C-1")),
            "adding '{form}': {r:?}"
        );
        assert_eq!(r.identifier, form.trim());
        let removed = change(db, p.id, g.id, Change::Remove, &[form]).await;
        assert_eq!(
            only(&removed).outcome,
            Outcome::Removed,
            "removing '{form}'"
        );
    }
    // All of them in one call: one case, the rest duplicates.
    let results = change(db, p.id, g.id, Change::Add, &forms).await;
    assert_eq!(results[0].outcome, Outcome::Added);
    assert!(results[1..]
        .iter()
        .all(|r| r.outcome == Outcome::DuplicateInFile && r.case_id.as_deref() == Some("C-1")));
    assert_eq!(member_ids(db, p.id, g.id).await, vec!["C-1"]);
}

async fn a_national_number_needs_the_projects_country(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let ug = project(db, "uganda", Some("UG")).await;
    let none = project(db, "nowhere", None).await;
    let ke = project(db, "kenya", Some("KE")).await;
    for p in [&ug, &none, &ke] {
        case_with(db, p.id, Some("C-1"), "Aber", None, Some("+256772123456")).await;
    }
    let results = |p: i64| async move {
        let g = group(db, p, "G").await;
        change(db, p, g.id, Change::Add, &["0772 123456", "+256772123456"]).await
    };
    assert_eq!(
        outcomes(&results(ug.id).await),
        vec![Outcome::Added, Outcome::DuplicateInFile]
    );
    // Without a country the national form can only be an external ID, which nobody has.
    assert_eq!(
        outcomes(&results(none.id).await),
        vec![Outcome::NotFound, Outcome::Added]
    );
    // In Kenya the national digits name a Kenyan number (or none), not the Ugandan one.
    assert_eq!(
        outcomes(&results(ke.id).await),
        vec![Outcome::NotFound, Outcome::Added]
    );
}

async fn two_cases_with_one_phone_number_are_ambiguous(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let g = group(db, p.id, "G").await;
    case_with(
        db,
        p.id,
        Some("mother-1"),
        "Aber Grace",
        None,
        Some("+256772123456"),
    )
    .await;
    case_with(
        db,
        p.id,
        Some("child-1"),
        "Baby Aber",
        None,
        Some("+256772123456"),
    )
    .await;
    for form in ["+256772123456", "0772 123456", "256772123456"] {
        let results = change(db, p.id, g.id, Change::Add, &[form]).await;
        let r = only(&results);
        assert_eq!(r.outcome, Outcome::Ambiguous, "{form}");
        assert_eq!(r.case_id, None);
        for named in [
            "mother-1",
            "child-1",
            "Aber Grace",
            "Baby Aber",
            "phone number",
        ] {
            assert!(
                r.message.contains(named),
                "'{named}' missing: {}",
                r.message
            );
        }
        assert!(r.message.contains("2 cases"), "{}", r.message);
    }
    assert!(member_ids(db, p.id, g.id).await.is_empty());
    // The case ID still reaches each one.
    let results = change(db, p.id, g.id, Change::Add, &["mother-1", "child-1"]).await;
    assert_eq!(outcomes(&results), vec![Outcome::Added, Outcome::Added]);
}

async fn a_case_id_of_one_case_and_external_id_of_another_is_ambiguous(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "G").await;
    case_with(db, p.id, Some("HH-42"), "By case ID", None, None).await;
    case_with(db, p.id, Some("C-2"), "By external ID", Some("HH-42"), None).await;
    for change_kind in [Change::Add, Change::Remove] {
        let results = change(db, p.id, g.id, change_kind, &["HH-42"]).await;
        let r = only(&results);
        assert_eq!(r.outcome, Outcome::Ambiguous);
        let m = &r.message;
        assert!(m.contains("HH-42") && m.contains("C-2"), "{m}");
        assert!(
            m.contains("by case ID") && m.contains("by external ID"),
            "{m}"
        );
    }
    assert!(member_ids(db, p.id, g.id).await.is_empty());
}

async fn one_live_and_one_deleted_match_pick_the_live_case(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let g = group(db, p.id, "G").await;
    case_with(
        db,
        p.id,
        Some("old"),
        "Old record",
        None,
        Some("+256772123456"),
    )
    .await;
    case_with(
        db,
        p.id,
        Some("new"),
        "New record",
        None,
        Some("+256772123456"),
    )
    .await;
    db.delete_case(p.id, "old").await.unwrap();
    let results = change(db, p.id, g.id, Change::Add, &["0772123456"]).await;
    let r = only(&results);
    assert_eq!(
        (r.outcome, r.case_id.as_deref()),
        (Outcome::Added, Some("new"))
    );
    let results = change(db, p.id, g.id, Change::Add, &["old"]).await;
    let r = only(&results);
    assert_eq!(
        (r.outcome, r.case_id.as_deref()),
        (Outcome::Deleted, Some("old"))
    );
    assert!(r.message.contains("Old record"), "{}", r.message);
    assert_eq!(member_ids(db, p.id, g.id).await, vec!["new"]);
}

async fn cases_of_another_project_are_not_found_by_any_identifier(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let a = project(db, "alpha", Some("UG")).await;
    let b = project(db, "beta", Some("UG")).await;
    let g = group(db, a.id, "Alpha group").await;
    case_with(
        db,
        b.id,
        Some("B-1"),
        "Beta case",
        Some("EXT-B"),
        Some("+256772123456"),
    )
    .await;
    // Alpha has a case too, with none of those identifiers.
    case_with(
        db,
        a.id,
        Some("A-1"),
        "Alpha case",
        Some("EXT-A"),
        Some("+256701000001"),
    )
    .await;
    let identifiers = [
        "B-1",
        "EXT-B",
        "+256772123456",
        "0772 123456",
        "256772123456",
    ];
    for change_kind in [Change::Add, Change::Remove] {
        let results = change(db, a.id, g.id, change_kind, &identifiers).await;
        assert_eq!(
            outcomes(&results),
            vec![Outcome::NotFound; identifiers.len()],
            "{change_kind:?}: {results:?}"
        );
        assert!(results.iter().all(|r| r.case_id.is_none()));
        assert!(
            member_ids(db, a.id, g.id).await.is_empty(),
            "the group stays empty"
        );
    }
    assert_eq!(db.get_group(a.id, g.id).await.unwrap().case_count, 0);
    // The same case ID in both projects reaches the group's own project's case.
    case_with(db, a.id, Some("B-1"), "Alpha's B-1", None, None).await;
    let results = change(db, a.id, g.id, Change::Add, &["B-1"]).await;
    assert_eq!(only(&results).outcome, Outcome::Added);
    let members = crate::all_members(db, a.id, g.id, 10).await;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].name, "Alpha's B-1");
}

async fn a_case_matched_twice_by_the_same_identifier_is_not_ambiguous(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "G").await;
    // Its case ID is also its external ID, and they are digits that also read as a phone number.
    case_with(
        db,
        p.id,
        Some("256772123456"),
        "Same",
        Some("256772123456"),
        Some("+256772123456"),
    )
    .await;
    let results = change(db, p.id, g.id, Change::Add, &["256772123456"]).await;
    let r = only(&results);
    assert_eq!(
        (r.outcome, r.case_id.as_deref()),
        (Outcome::Added, Some("256772123456"))
    );
}

async fn change_members_records_history_with_counts(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "G").await;
    for id in ["C-1", "C-2", "C-3"] {
        case_with(db, p.id, Some(id), id, None, None).await;
    }
    change(
        db,
        p.id,
        g.id,
        Change::Add,
        &["C-1", "C-2", "C-2", "zzz", "C-3"],
    )
    .await;
    change(db, p.id, g.id, Change::Remove, &["C-1", "C-1", "nobody"]).await;
    change(db, p.id, g.id, Change::Add, &["  C-3  "]).await;
    let history = db.group_history(p.id, g.id, 10).await.unwrap();
    let seen: Vec<(&str, i64, i64, &str)> = history
        .iter()
        .map(|h| (h.action.as_str(), h.added, h.removed, h.detail.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("add", 0, 0, "C-3"),
            ("remove", 0, 1, "3 identifiers"),
            ("add", 3, 0, "5 identifiers"),
            ("create", 0, 0, "G"),
        ]
    );
}

async fn an_external_id_matches_ignoring_case_when_one_case_has_it(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let other = project(db, "other", Some("UG")).await;
    let g = group(db, p.id, "G").await;
    case_with(db, p.id, Some("C-20"), "Aber", Some("GUL-0020"), None).await;
    case_with(db, p.id, Some("C-21"), "Gone", Some("GUL-0021"), None).await;
    db.delete_case(p.id, "C-21").await.unwrap();
    // Another project's case with the same letters is never found.
    case_with(
        db,
        other.id,
        Some("C-22"),
        "Elsewhere",
        Some("GUL-0022"),
        None,
    )
    .await;
    let results = change(
        db,
        p.id,
        g.id,
        Change::Add,
        &["gul-0020", "Gul-0021", "gul-0022"],
    )
    .await;
    assert_eq!(
        outcomes(&results),
        vec![Outcome::Added, Outcome::Deleted, Outcome::NotFound],
        "{results:?}"
    );
    assert_eq!(results[0].case_id.as_deref(), Some("C-20"));
    assert_eq!(member_ids(db, p.id, g.id).await, vec!["C-20"]);
}

async fn external_ids_differing_only_by_case_are_ambiguous_unless_one_is_exact(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let g = group(db, p.id, "G").await;
    case_with(db, p.id, Some("C-1"), "Upper", Some("AB-1"), None).await;
    case_with(db, p.id, Some("C-2"), "Mixed", Some("Ab-1"), None).await;
    let r = change(db, p.id, g.id, Change::Add, &["ab-1"]).await;
    let r = only(&r);
    assert_eq!(r.outcome, Outcome::Ambiguous, "{r:?}");
    assert!(r.message.contains("Upper (case ID C-1)"), "{}", r.message);
    assert!(r.message.contains("Mixed (case ID C-2)"), "{}", r.message);
    assert!(r.message.contains("ignoring case"), "{}", r.message);
    // An exact match wins over one that ignores case.
    let r = change(db, p.id, g.id, Change::Add, &["Ab-1"]).await;
    let r = only(&r);
    assert_eq!(r.outcome, Outcome::Added, "{r:?}");
    assert_eq!(r.case_id.as_deref(), Some("C-2"));
}
