//! Cases: create, read, list with filters and cursors, update, close, soft delete, isolation.

use std::collections::HashSet;

use casecast_core::case::CaseChanges;
use casecast_core::{CaseId, PhoneNumber};
use casecast_store::cases::CaseFilter;
use casecast_store::StoreError;
use casecast_testkit::{on_both_engines, Dialect, TestDb};

use crate::{all_cases, change, named, project};

on_both_engines!(
    create_case_stores_every_field_and_get_case_reads_it_back,
    create_case_with_a_taken_case_id_is_a_conflict,
    list_cases_pages_cover_every_case_once_in_creation_order,
    list_cases_filters_by_external_id_phone_and_q,
    search_ignores_case_beyond_ascii_and_in_external_id_prefixes,
    update_case_merges_properties_and_clears_fields,
    update_case_without_a_change_keeps_modified_at,
    close_case_marks_it_closed,
    delete_case_is_soft_and_hides_the_case_from_lists,
    cases_of_another_project_are_not_found_and_not_listed,
);

fn phone(text: &str) -> PhoneNumber {
    PhoneNumber::parse(text, None).unwrap()
}

fn full_changes() -> CaseChanges {
    CaseChanges {
        name: Some("Aber Grace".into()),
        case_type: Some("mother".into()),
        external_id: Some(Some("P-001".into())),
        phone_number: Some(Some(phone("+256772123456"))),
        language_code: Some(Some("lg".into())),
        owner_id: Some(Some("chw-7".into())),
        closed: Some(false),
        properties: [
            ("district".to_string(), Some("Gulu".to_string())),
            ("village".to_string(), Some("Layibi".to_string())),
        ]
        .into(),
    }
}

async fn create_case_stores_every_field_and_get_case_reads_it_back(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let created = db.create_case(p.id, None, &full_changes()).await.unwrap();
    assert_eq!(created.case_id.as_str().len(), 36, "a UUID is made");
    assert_eq!(created.created_at, created.modified_at);
    let read = db.get_case(p.id, created.case_id.as_str()).await.unwrap();
    assert_eq!(read, created, "what is read back is what was created");
    assert_eq!(read.name, "Aber Grace");
    assert_eq!(read.case_type, "mother");
    assert_eq!(read.external_id.as_deref(), Some("P-001"));
    assert_eq!(
        read.phone_number.as_ref().unwrap().as_str(),
        "+256772123456"
    );
    assert_eq!(read.language_code.as_deref(), Some("lg"));
    assert_eq!(read.owner_id.as_deref(), Some("chw-7"));
    assert!(!read.closed && !read.deleted);
    assert_eq!(read.properties["district"], "Gulu");
    assert_eq!(read.properties.len(), 2);

    let bare = db.create_case(p.id, None, &named("Okello")).await.unwrap();
    let bare = db.get_case(p.id, bare.case_id.as_str()).await.unwrap();
    assert_eq!(bare.case_type, "case", "the default case type");
    assert_eq!(
        (
            bare.external_id,
            bare.phone_number,
            bare.language_code,
            bare.owner_id
        ),
        (None, None, None, None)
    );
    assert!(bare.properties.is_empty());

    let given = CaseId::parse("household-42").unwrap();
    let with_id = db
        .create_case(p.id, Some(given.clone()), &named("Given"))
        .await
        .unwrap();
    assert_eq!(with_id.case_id, given);
    assert_eq!(
        db.get_case(p.id, "household-42").await.unwrap().name,
        "Given"
    );

    assert!(matches!(
        db.get_case(p.id, "no-such-case").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.create_case(p.id, None, &CaseChanges::default()).await,
        Err(StoreError::Invalid(e)) if e.field == "name"
    ));
    assert_eq!(db.count_cases(p.id).await.unwrap(), 3);
}

async fn create_case_with_a_taken_case_id_is_a_conflict(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let a = project(db, "alpha", None).await;
    let b = project(db, "beta", None).await;
    let id = CaseId::parse("C-1").unwrap();
    db.create_case(a.id, Some(id.clone()), &named("First"))
        .await
        .unwrap();
    match db
        .create_case(a.id, Some(id.clone()), &named("Second"))
        .await
    {
        Err(StoreError::Conflict { code, message }) => {
            assert_eq!(code, "case_id_taken");
            assert!(message.contains("C-1"), "{message}");
        }
        other => panic!("expected case_id_taken, got {other:?}"),
    }
    assert_eq!(db.get_case(a.id, "C-1").await.unwrap().name, "First");
    assert_eq!(db.count_cases(a.id).await.unwrap(), 1);
    // Case IDs are unique per project, not across projects.
    let other = db
        .create_case(b.id, Some(id), &named("Other"))
        .await
        .unwrap();
    assert_eq!(other.case_id.as_str(), "C-1");
    assert_eq!(db.get_case(a.id, "C-1").await.unwrap().name, "First");
    assert_eq!(db.get_case(b.id, "C-1").await.unwrap().name, "Other");
}

async fn list_cases_pages_cover_every_case_once_in_creation_order(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let mut created = Vec::new();
    for i in 0..25 {
        let case = db
            .create_case(p.id, None, &named(&format!("Case {i:02}")))
            .await
            .unwrap();
        created.push(case.case_id.as_str().to_string());
    }
    let filter = CaseFilter::default();
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = db.list_cases(p.id, &filter, 7, cursor).await.unwrap();
        sizes.push(page.items.len());
        seen.extend(page.items.iter().map(|c| c.case_id.as_str().to_string()));
        match page.next_cursor {
            Some(next) => cursor = Some(next.parse::<i64>().unwrap()),
            None => break,
        }
    }
    assert_eq!(sizes, [7, 7, 7, 4]);
    assert_eq!(seen, created, "no duplicates, no gaps, creation order");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25);

    // A page that holds exactly what is left has no next cursor (no empty extra page).
    let whole = db.list_cases(p.id, &filter, 25, None).await.unwrap();
    assert_eq!(whole.items.len(), 25);
    assert!(whole.next_cursor.is_none());
    let tail = db.list_cases(p.id, &filter, 4, cursor).await.unwrap();
    assert_eq!(tail.items.len(), 4);
    assert!(tail.next_cursor.is_none());
    assert_eq!(all_cases(db, p.id, &filter, 5).await.len(), 25);
    assert_eq!(all_cases(db, p.id, &filter, 1).await.len(), 25);
}

async fn list_cases_filters_by_external_id_phone_and_q(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let grace = db.create_case(p.id, None, &full_changes()).await.unwrap();
    db.create_case(
        p.id,
        Some(CaseId::parse("okello-1").unwrap()),
        &CaseChanges {
            name: Some("Okello 100% Peter".into()),
            external_id: Some(Some("P-002".into())),
            phone_number: Some(Some(phone("+256772000111"))),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    db.create_case(p.id, None, &named("Akello_Mary"))
        .await
        .unwrap();
    let by = |f: CaseFilter| names_listed(db, p.id, f);

    assert_eq!(
        by(CaseFilter {
            external_id: Some("P-002".into()),
            ..Default::default()
        })
        .await,
        ["Okello 100% Peter"]
    );
    assert!(
        by(CaseFilter {
            external_id: Some("p-002".into()),
            ..Default::default()
        })
        .await
        .is_empty(),
        "external IDs match exactly"
    );
    assert_eq!(
        by(CaseFilter {
            phone_number: Some(phone("+256 772 123 456")),
            ..Default::default()
        })
        .await,
        ["Aber Grace"]
    );
    let q = |text: &str| CaseFilter {
        q: Some(text.to_string()),
        ..Default::default()
    };
    assert_eq!(by(q("okello-1")).await, ["Okello 100% Peter"], "by case ID");
    assert_eq!(by(q(grace.case_id.as_str())).await, ["Aber Grace"]);
    assert_eq!(by(q("P-001")).await, ["Aber Grace"], "by external ID");
    assert_eq!(
        by(q("+256772000111")).await,
        ["Okello 100% Peter"],
        "by phone"
    );
    assert_eq!(by(q("256 772 000 111")).await, ["Okello 100% Peter"]);
    assert_eq!(
        by(q("GRACE")).await,
        ["Aber Grace"],
        "part of the name, any case"
    );
    assert_eq!(by(q("kello")).await, ["Okello 100% Peter", "Akello_Mary"]);
    // LIKE wildcards in the search text are taken literally.
    assert_eq!(by(q("100%")).await, ["Okello 100% Peter"]);
    assert_eq!(by(q("%")).await, ["Okello 100% Peter"]);
    assert_eq!(by(q("_")).await, ["Akello_Mary"]);
    assert!(by(q("nobody")).await.is_empty());
    assert_eq!(by(q("   ")).await.len(), 3, "a blank q does not filter");
}

async fn search_ignores_case_beyond_ascii_and_in_external_id_prefixes(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let mut elodie = named("ÉLODIE Ödegaard");
    elodie.external_id = Some(Some("Pé-001".into()));
    let elodie = db.create_case(p.id, None, &elodie).await.unwrap();
    db.create_case(p.id, None, &named("Zoë Nakato"))
        .await
        .unwrap();
    let group = db
        .create_group(
            p.id,
            &casecast_core::identifier::GroupName::parse("All").unwrap(),
            casecast_store::case_groups::Actor {
                user_id: None,
                via: "cli",
            },
        )
        .await
        .unwrap();
    change(
        db,
        p.id,
        group.id,
        casecast_store::membership::Change::Add,
        &[elodie.case_id.as_str()],
    )
    .await;
    let q = |text: &str| CaseFilter {
        q: Some(text.to_string()),
        ..Default::default()
    };
    // Names ignore case beyond ASCII; external ID prefixes ignore ASCII case (SQLite's LIKE
    // compares other letters exactly).
    for text in [
        "élodie",
        "ÉLODIE",
        "Élodie",
        "ödegaard",
        "ÖDEGAARD",
        "pé-0",
        "Pé-0",
        "p",
    ] {
        assert_eq!(
            names_listed(db, p.id, q(text)).await,
            ["ÉLODIE Ödegaard"],
            "{text}"
        );
        let members = db
            .group_members(p.id, group.id, Some(text), 10, None)
            .await
            .unwrap();
        assert_eq!(members.items.len(), 1, "group member search {text}");
    }
    assert_eq!(names_listed(db, p.id, q("ZOË")).await, ["Zoë Nakato"]);
    // A renamed case is found by its new name only.
    db.update_case(
        p.id,
        elodie.case_id.as_str(),
        &CaseChanges {
            name: Some("Ève Akello".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(names_listed(db, p.id, q("élodie")).await.is_empty());
    assert_eq!(names_listed(db, p.id, q("ÈVE")).await, ["Ève Akello"]);
}

async fn names_listed(db: &casecast_store::Db, project_id: i64, filter: CaseFilter) -> Vec<String> {
    all_cases(db, project_id, &filter, 10)
        .await
        .into_iter()
        .map(|c| c.name)
        .collect()
}

async fn update_case_merges_properties_and_clears_fields(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let created = db.create_case(p.id, None, &full_changes()).await.unwrap();
    let id = created.case_id.as_str();
    let updated = db
        .update_case(
            p.id,
            id,
            &CaseChanges {
                name: Some("Aber Grace N.".into()),
                phone_number: Some(None),
                owner_id: Some(None),
                properties: [
                    ("village".to_string(), None),
                    ("parity".to_string(), Some("2".to_string())),
                ]
                .into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let read = db.get_case(p.id, id).await.unwrap();
    assert_eq!(read, updated);
    assert_eq!(read.name, "Aber Grace N.");
    assert_eq!(read.phone_number, None, "Some(None) clears");
    assert_eq!(read.owner_id, None);
    assert_eq!(
        read.external_id.as_deref(),
        Some("P-001"),
        "None leaves as is"
    );
    assert_eq!(read.language_code.as_deref(), Some("lg"));
    assert_eq!(read.case_type, "mother");
    let props: Vec<(&str, &str)> = read
        .properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(props, [("district", "Gulu"), ("parity", "2")], "merged");
    assert_eq!(read.created_at, created.created_at);
    assert!(read.modified_at >= created.modified_at);

    assert!(matches!(
        db.update_case(p.id, "missing", &named("X")).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn update_case_without_a_change_keeps_modified_at(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let created = db.create_case(p.id, None, &full_changes()).await.unwrap();
    let same = db
        .update_case(p.id, created.case_id.as_str(), &full_changes())
        .await
        .unwrap();
    assert_eq!(same, created);
    assert_eq!(
        db.get_case(p.id, created.case_id.as_str())
            .await
            .unwrap()
            .modified_at,
        created.modified_at
    );
}

async fn close_case_marks_it_closed(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let created = db.create_case(p.id, None, &named("Okello")).await.unwrap();
    let closed = db.close_case(p.id, created.case_id.as_str()).await.unwrap();
    assert!(closed.closed);
    let read = db.get_case(p.id, created.case_id.as_str()).await.unwrap();
    assert!(read.closed && !read.deleted);
    assert_eq!(read.name, "Okello");
    assert_eq!(
        all_cases(db, p.id, &CaseFilter::default(), 10).await.len(),
        1,
        "a closed case is still listed"
    );
    assert_eq!(db.count_cases(p.id).await.unwrap(), 1);
    assert!(matches!(
        db.close_case(p.id, "missing").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn delete_case_is_soft_and_hides_the_case_from_lists(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let gone = db.create_case(p.id, None, &full_changes()).await.unwrap();
    let kept = db.create_case(p.id, None, &named("Kept")).await.unwrap();
    let id = gone.case_id.as_str();
    db.delete_case(p.id, id).await.unwrap();

    let read = db.get_case(p.id, id).await.unwrap();
    assert!(read.deleted, "get_case still returns it, marked");
    assert_eq!(read.name, "Aber Grace");
    let live = all_cases(db, p.id, &CaseFilter::default(), 10).await;
    assert_eq!(
        live.iter().map(|c| &c.case_id).collect::<Vec<_>>(),
        [&kept.case_id]
    );
    let with_deleted = all_cases(
        db,
        p.id,
        &CaseFilter {
            include_deleted: true,
            ..Default::default()
        },
        10,
    )
    .await;
    assert_eq!(with_deleted.len(), 2);
    assert!(with_deleted
        .iter()
        .any(|c| c.case_id == gone.case_id && c.deleted));
    assert!(all_cases(
        db,
        p.id,
        &CaseFilter {
            external_id: Some("P-001".into()),
            ..Default::default()
        },
        10
    )
    .await
    .is_empty());
    assert_eq!(db.count_cases(p.id).await.unwrap(), 1);

    assert!(matches!(
        db.update_case(p.id, id, &named("Back")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.close_case(p.id, id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.delete_case(p.id, id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(db.get_case(p.id, id).await.unwrap().name, "Aber Grace");
}

async fn cases_of_another_project_are_not_found_and_not_listed(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let a = project(db, "alpha", None).await;
    let b = project(db, "beta", None).await;
    let mine = db.create_case(a.id, None, &full_changes()).await.unwrap();
    let id = mine.case_id.as_str();
    assert!(matches!(
        db.get_case(b.id, id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.update_case(b.id, id, &named("Hijacked")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.close_case(b.id, id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.delete_case(b.id, id).await,
        Err(StoreError::NotFound(_))
    ));
    let everything = CaseFilter {
        include_deleted: true,
        ..Default::default()
    };
    assert!(all_cases(db, b.id, &everything, 10).await.is_empty());
    for q in [id, "P-001", "+256772123456", "Aber"] {
        let f = CaseFilter {
            q: Some(q.into()),
            ..Default::default()
        };
        assert!(all_cases(db, b.id, &f, 10).await.is_empty(), "q={q}");
    }
    assert_eq!(db.count_cases(b.id).await.unwrap(), 0);
    let untouched = db.get_case(a.id, id).await.unwrap();
    assert_eq!(
        untouched, mine,
        "nothing done through beta reached alpha's case"
    );
}
