//! Case imports: rows that cannot be imported are reported with their row and column, and
//! the other rows are imported.

use casecast_core::case::CaseChanges;
use casecast_core::CaseId;
use casecast_testkit::{on_both_engines, Dialect, TestDb};

use crate::{by_external_id, import, named, project};

on_both_engines!(
    import_reports_a_row_without_case_id_or_external_id,
    import_reports_a_new_case_without_a_name,
    import_reports_a_duplicate_external_id_and_keeps_the_first_row,
    import_reports_an_invalid_phone_and_imports_the_other_rows,
    import_reports_an_external_id_shared_by_two_cases,
    import_reports_a_row_for_a_deleted_case,
);

async fn import_reports_a_row_without_case_id_or_external_id(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    // Row 3 is an empty line: Excel numbering counts it.
    let csv = "name,external_id\nAber,E-1\n\nNobody,\nOkello,E-2\n";
    let report = import(db, &p, csv.as_bytes(), "ids.csv").await.unwrap();
    assert_eq!((report.rows, report.created, report.blank), (4, 2, 1));
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let e = &report.errors[0];
    assert_eq!((e.row, e.column.as_str()), (4, "case_id"));
    assert!(e.message.contains("external_id"), "{}", e.message);
    let names: Vec<String> = by_external_id(db, p.id)
        .await
        .into_values()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["Aber", "Okello"]);
}

async fn import_reports_a_new_case_without_a_name(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    db.create_case(
        p.id,
        None,
        &CaseChanges {
            name: Some("Known".into()),
            external_id: Some(Some("E-1".into())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // A blank name is fine for an update, not for a new case.
    let csv = "external_id,name,district\nE-1,,Gulu\nE-2,,Lira\n";
    let report = import(db, &p, csv.as_bytes(), "names.csv").await.unwrap();
    assert_eq!((report.created, report.updated), (0, 1));
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(
        (report.errors[0].row, report.errors[0].column.as_str()),
        (3, "name")
    );
    let cases = by_external_id(db, p.id).await;
    assert_eq!(cases.len(), 1);
    assert_eq!(cases["E-1"].properties["district"], "Gulu");
}

async fn import_reports_a_duplicate_external_id_and_keeps_the_first_row(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let csv = "external_id,name\nE-1,First\nE-2,Other\nE-1,Second\n";
    let report = import(db, &p, csv.as_bytes(), "dups.csv").await.unwrap();
    assert_eq!(report.created, 2);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let e = &report.errors[0];
    assert_eq!((e.row, e.column.as_str()), (4, "external_id"));
    assert!(e.message.contains("row 2"), "{}", e.message);
    let cases = by_external_id(db, p.id).await;
    assert_eq!(cases.len(), 2);
    assert_eq!(cases["E-1"].name, "First");
}

async fn import_reports_an_invalid_phone_and_imports_the_other_rows(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let csv = "external_id,name,phone_number\nE-1,Aber,0772 123456\nE-2,Okello,+256 77\nE-3,Akello,07x2\nE-4,Opio,0782345678\n";
    let report = import(db, &p, csv.as_bytes(), "phones.csv").await.unwrap();
    assert_eq!(report.created, 2);
    let errors: Vec<(usize, &str)> = report
        .errors
        .iter()
        .map(|e| (e.row, e.column.as_str()))
        .collect();
    assert_eq!(errors, [(3, "phone_number"), (4, "phone_number")]);
    assert!(
        report.errors[0].message.contains("+256 77"),
        "{}",
        report.errors[0].message
    );
    assert!(
        report.errors[1].message.contains("07x2"),
        "{}",
        report.errors[1].message
    );
    let cases = by_external_id(db, p.id).await;
    assert_eq!(cases.keys().collect::<Vec<_>>(), ["E-1", "E-4"]);
    assert_eq!(
        cases["E-4"].phone_number.as_ref().unwrap().as_str(),
        "+256782345678"
    );
}

async fn import_reports_an_external_id_shared_by_two_cases(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let twin = CaseChanges {
        name: Some("Twin".into()),
        external_id: Some(Some("E-1".into())),
        ..Default::default()
    };
    let a = db.create_case(p.id, None, &twin).await.unwrap();
    let b = db.create_case(p.id, None, &twin).await.unwrap();
    let report = import(db, &p, b"external_id,name\nE-1,Renamed\n", "twins.csv")
        .await
        .unwrap();
    assert_eq!((report.created, report.updated), (0, 0));
    assert_eq!(report.errors.len(), 1);
    let e = &report.errors[0];
    assert_eq!((e.row, e.column.as_str()), (2, "external_id"));
    assert!(
        e.message.contains(a.case_id.as_str()) && e.message.contains(b.case_id.as_str()),
        "{}",
        e.message
    );
    assert_eq!(
        db.get_case(p.id, a.case_id.as_str()).await.unwrap().name,
        "Twin"
    );
    assert_eq!(
        db.get_case(p.id, b.case_id.as_str()).await.unwrap().name,
        "Twin"
    );
}

async fn import_reports_a_row_for_a_deleted_case(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    db.create_case(p.id, Some(CaseId::parse("GONE-1").unwrap()), &named("Gone"))
        .await
        .unwrap();
    db.delete_case(p.id, "GONE-1").await.unwrap();
    let report = import(db, &p, b"case_id,name\nGONE-1,Back\n", "deleted.csv")
        .await
        .unwrap();
    assert_eq!((report.created, report.updated), (0, 0));
    assert_eq!(report.errors.len(), 1);
    assert_eq!(
        (report.errors[0].row, report.errors[0].column.as_str()),
        (2, "case_id")
    );
    assert!(
        report.errors[0].message.contains("deleted"),
        "{}",
        report.errors[0].message
    );
    let case = db.get_case(p.id, "GONE-1").await.unwrap();
    assert!(case.deleted);
    assert_eq!(case.name, "Gone");
}
