//! Sheet uploads to a case group: CSV and XLSX, typed identifier columns, per-row results,
//! files refused at once or failed whole, resuming after a crash, and concurrent uploads.

use casecast_testkit::Workflows;
use std::collections::{BTreeMap, BTreeSet};

use casecast_core::sheet::SheetError;
use casecast_store::case_import::ImportError;
use casecast_store::membership::Change;
use casecast_store::uploads::ResultRow;
use casecast_store::{Db, StoreError};
use casecast_testkit::{on_both_engines, Dialect, TestDb};
use sqlx::Row;

use crate::{
    all_results, case_with, change, csv, group, import, member_ids, project, raw_pool,
    upload_and_process, xlsx_of_text,
};

on_both_engines!(
    csv_upload_adds_then_the_same_sheet_is_already_in_group,
    xlsx_upload_reads_numeric_phones_and_text_external_ids,
    typed_columns_look_a_value_up_only_as_their_kind,
    remove_mode_removes_the_rows_cases,
    results_page_by_row_number,
    a_sheet_without_an_identifier_column_is_refused_at_once,
    a_corrupt_workbook_fails_and_changes_nothing,
    a_sheet_over_the_row_limit_fails_and_changes_nothing,
    create_upload_refuses_what_is_not_a_sheet_at_once,
    an_upload_to_a_group_deleted_meanwhile_fails,
    processing_a_finished_upload_again_changes_nothing,
    an_upload_resumes_after_a_crash_without_repeating_rows,
    concurrent_uploads_to_one_group_lose_no_member,
);

/// `(row, identifier, outcome, case_id)` of each result.
fn brief(results: &[ResultRow]) -> Vec<(i64, String, String, Option<String>)> {
    results
        .iter()
        .map(|r| {
            (
                r.row,
                r.identifier.clone(),
                r.outcome.to_string(),
                r.case_id.clone(),
            )
        })
        .collect()
}

fn row(
    n: i64,
    identifier: &str,
    outcome: &str,
    case_id: Option<&str>,
) -> (i64, String, String, Option<String>) {
    (
        n,
        identifier.into(),
        outcome.into(),
        case_id.map(Into::into),
    )
}

fn counts(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

async fn three_cases(db: &Db, project_id: i64) {
    case_with(
        db,
        project_id,
        Some("C-1"),
        "Aber",
        Some("P-001"),
        Some("+256772123456"),
    )
    .await;
    case_with(
        db,
        project_id,
        Some("C-2"),
        "Okello",
        Some("P-002"),
        Some("+256701000002"),
    )
    .await;
    case_with(db, project_id, Some("C-3"), "Akello", Some("P-003"), None).await;
}

async fn csv_upload_adds_then_the_same_sheet_is_already_in_group(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let g = group(db, p.id, "G").await;
    three_cases(db, p.id).await;
    let sheet = csv(
        "Note, Case_Identifier ",
        &[
            "first,C-1",
            "by external id, P-002 ",
            ",",
            "national phone,0772 123456",
            "nobody,NOPE-1",
            "",
            "closed later,P-003",
            "again,C-2",
        ],
    );
    let done =
        upload_and_process(db, p.id, g.id, Change::Add, "list.csv", sheet.clone(), None).await;
    assert_eq!(done.status, "done");
    assert_eq!(done.mode.as_str(), "add");
    assert_eq!(done.file_name, "list.csv");
    assert_eq!(done.group_id, Some(g.id));
    assert_eq!((done.total_rows, done.processed_rows), (8, 8));
    assert!(done.error.is_none());
    assert!(done.finished_at.is_some());
    assert_eq!(
        done.counts,
        counts(&[
            ("added", 3),
            ("duplicate_in_file", 2),
            ("not_found", 1),
            ("blank", 2)
        ])
    );
    let results = all_results(db, p.id, done.id, 100).await;
    assert_eq!(
        brief(&results),
        vec![
            row(2, "C-1", "added", Some("C-1")),
            row(3, "P-002", "added", Some("C-2")),
            row(4, "", "blank", None),
            row(5, "0772 123456", "duplicate_in_file", Some("C-1")),
            row(6, "NOPE-1", "not_found", None),
            row(7, "", "blank", None),
            row(8, "P-003", "added", Some("C-3")),
            row(9, "C-2", "duplicate_in_file", Some("C-2")),
        ]
    );
    assert!(results[3].message.contains("earlier"));
    assert_eq!(member_ids(db, p.id, g.id).await, vec!["C-1", "C-2", "C-3"]);

    // The stored file is dropped once done.
    let pool = raw_pool(&t.url).await;
    let kept: Option<Vec<u8>> = sqlx::query("SELECT file_bytes FROM uploads WHERE id = $1")
        .bind(done.id)
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("file_bytes");
    assert!(kept.is_none());

    // The same sheet again: nothing new.
    db.close_case(p.id, "C-3").await.unwrap();
    let again = upload_and_process(db, p.id, g.id, Change::Add, "list.csv", sheet, None).await;
    assert_eq!(
        again.counts,
        counts(&[
            ("already_in_group", 3),
            ("duplicate_in_file", 2),
            ("not_found", 1),
            ("blank", 2)
        ])
    );
    let outcomes: Vec<String> = all_results(db, p.id, again.id, 100)
        .await
        .into_iter()
        .map(|r| r.outcome.to_string())
        .collect();
    assert_eq!(
        outcomes,
        vec![
            "already_in_group",
            "already_in_group",
            "blank",
            "duplicate_in_file",
            "not_found",
            "blank",
            "already_in_group",
            "duplicate_in_file"
        ]
    );
    let uploads: Vec<i64> = db
        .group_uploads(p.id, g.id, 10)
        .await
        .unwrap()
        .iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(uploads, vec![again.id, done.id], "newest first");
    assert_eq!(db.group_uploads(p.id, g.id, 1).await.unwrap().len(), 1);
}

async fn xlsx_upload_reads_numeric_phones_and_text_external_ids(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let g = group(db, p.id, "G").await;
    case_with(db, p.id, Some("C-1"), "Aber", None, Some("+256772123456")).await;
    case_with(db, p.id, Some("C-2"), "Okello", Some("000123"), None).await;
    case_with(db, p.id, Some("C-3"), "Akello", Some("123"), None).await;
    case_with(db, p.id, Some("C-4"), "Closed", None, None).await;
    db.close_case(p.id, "C-4").await.unwrap();

    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "name").unwrap();
    sheet.write_string(0, 1, "case_identifier").unwrap();
    sheet.write_string(1, 0, "Aber").unwrap();
    sheet.write_number(1, 1, 256772123456.0).unwrap();
    sheet.write_string(2, 0, "Okello").unwrap();
    sheet.write_string(2, 1, "000123").unwrap();
    // Row 4 left empty; row 5 a number that is an external ID.
    sheet.write_number(4, 1, 123.0).unwrap();
    sheet.write_string(5, 1, " C-4 ").unwrap();
    sheet.write_string(6, 1, "000123").unwrap();
    // A second sheet is never read.
    let other = book.add_worksheet();
    other.write_string(0, 0, "case_identifier").unwrap();
    other.write_string(1, 0, "C-3").unwrap();
    let bytes = book.save_to_buffer().unwrap();

    let done = upload_and_process(db, p.id, g.id, Change::Add, "list.xlsx", bytes, None).await;
    assert_eq!(done.status, "done", "{:?}", done.error);
    let results = all_results(db, p.id, done.id, 100).await;
    assert_eq!(
        brief(&results),
        vec![
            row(2, "256772123456", "added", Some("C-1")),
            row(3, "000123", "added", Some("C-2")),
            row(4, "", "blank", None),
            row(5, "123", "added", Some("C-3")),
            row(6, "C-4", "added", Some("C-4")),
            row(7, "000123", "duplicate_in_file", Some("C-2")),
        ]
    );
    assert!(
        results[4].message.contains("closed"),
        "{}",
        results[4].message
    );
    assert_eq!(
        member_ids(db, p.id, g.id).await,
        vec!["C-1", "C-2", "C-3", "C-4"]
    );
}

async fn typed_columns_look_a_value_up_only_as_their_kind(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let g = group(db, p.id, "G").await;
    // "X-1" is one case's case ID and another's external ID.
    case_with(db, p.id, Some("X-1"), "By case ID", None, None).await;
    case_with(db, p.id, Some("C-2"), "By external ID", Some("X-1"), None).await;
    case_with(
        db,
        p.id,
        Some("C-3"),
        "By phone",
        Some("0772123456"),
        Some("+256701000003"),
    )
    .await;
    case_with(
        db,
        p.id,
        Some("C-4"),
        "Phone owner",
        None,
        Some("+256772123456"),
    )
    .await;
    let bytes = xlsx_of_text(&[
        &["Phone_Number", "external_id", "case_identifier", "CASE_ID"],
        // A typed case_id column: only a case ID.
        &["", "", "", "X-1"],
        // A typed external ID: only an external ID.
        &["", "X-1", "", ""],
        // Anything: both match.
        &["", "", "X-1", ""],
        // The external ID is national-phone-like text: only C-3's external ID, not C-4's phone.
        &["", "0772123456", "", ""],
        // The same text as a phone number: C-4.
        &["0772123456", "", "", ""],
        // case_id comes before external_id, phone_number and case_identifier.
        &["0701000003", "X-1", "whatever", "C-2"],
        // A blank typed cell falls through to the next non-blank column.
        &["", " ", "C-3", ""],
        // Letters are no phone number.
        &["call me", "", "", ""],
        // Not a valid case ID.
        &["", "", "", "has space"],
        // All blank: a blank row even though it has cells.
        &["", " ", "", " "],
        // A typed case ID that is only another case's external ID: not found.
        &["", "", "", "0772123456"],
    ]);
    let done = upload_and_process(db, p.id, g.id, Change::Add, "typed.xlsx", bytes, None).await;
    assert_eq!(done.status, "done", "{:?}", done.error);
    let results = all_results(db, p.id, done.id, 100).await;
    assert_eq!(
        brief(&results),
        vec![
            row(2, "X-1", "added", Some("X-1")),
            row(3, "X-1", "added", Some("C-2")),
            row(4, "X-1", "ambiguous", None),
            row(5, "0772123456", "added", Some("C-3")),
            row(6, "0772123456", "added", Some("C-4")),
            row(7, "C-2", "duplicate_in_file", Some("C-2")),
            row(8, "C-3", "duplicate_in_file", Some("C-3")),
            row(9, "call me", "invalid", None),
            row(10, "has space", "invalid", None),
            row(11, "", "blank", None),
            row(12, "0772123456", "not_found", None),
        ]
    );
    assert!(
        results[2].message.contains("by case ID"),
        "{}",
        results[2].message
    );
    assert!(
        results[8].message.contains("case ID"),
        "{}",
        results[8].message
    );
    assert_eq!(
        member_ids(db, p.id, g.id).await,
        vec!["X-1", "C-2", "C-3", "C-4"]
    );
}

async fn remove_mode_removes_the_rows_cases(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let g = group(db, p.id, "G").await;
    three_cases(db, p.id).await;
    change(db, p.id, g.id, Change::Add, &["C-1", "C-2"]).await;
    let sheet = csv(
        "case_identifier",
        &["+256772123456", "C-3", "P-002", "C-2", "", "ghost"],
    );
    let done = upload_and_process(db, p.id, g.id, Change::Remove, "out.csv", sheet, None).await;
    assert_eq!(
        (done.status.as_str(), done.mode.as_str()),
        ("done", "remove")
    );
    assert_eq!(
        brief(&all_results(db, p.id, done.id, 100).await),
        vec![
            row(2, "+256772123456", "removed", Some("C-1")),
            row(3, "C-3", "not_in_group", Some("C-3")),
            row(4, "P-002", "removed", Some("C-2")),
            row(5, "C-2", "duplicate_in_file", Some("C-2")),
            row(6, "", "blank", None),
            row(7, "ghost", "not_found", None),
        ]
    );
    assert_eq!(
        done.counts,
        counts(&[
            ("removed", 2),
            ("not_in_group", 1),
            ("duplicate_in_file", 1),
            ("blank", 1),
            ("not_found", 1)
        ])
    );
    assert!(member_ids(db, p.id, g.id).await.is_empty());
}

async fn results_page_by_row_number(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let other = project(db, "other", None).await;
    let g = group(db, p.id, "G").await;
    let lines: Vec<String> = (0..23).map(|i| format!("missing-{i}")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let done = upload_and_process(
        db,
        p.id,
        g.id,
        Change::Add,
        "x.csv",
        csv("case_identifier", &lines),
        None,
    )
    .await;
    let walked = all_results(db, p.id, done.id, 7).await;
    let rows: Vec<i64> = walked.iter().map(|r| r.row).collect();
    assert_eq!(rows, (2..=24).collect::<Vec<i64>>());
    let tail = db.upload_results(p.id, done.id, 20, 100).await.unwrap();
    assert_eq!(
        tail.iter().map(|r| r.row).collect::<Vec<_>>(),
        vec![21, 22, 23, 24]
    );
    assert!(matches!(
        db.upload_results(other.id, done.id, 0, 10).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.get_upload(other.id, done.id).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Checks that an upload failed with a message containing each of `needles`, and that the
/// group, its results and its history show no trace of it.
async fn assert_failed_without_changes(
    db: &Db,
    project_id: i64,
    group_id: i64,
    upload_id: i64,
    needles: &[&str],
) {
    let upload = db.get_upload(project_id, upload_id).await.unwrap();
    assert_eq!(upload.status, "failed");
    let error = upload.error.clone().expect("an error message");
    for needle in needles {
        assert!(error.contains(needle), "'{needle}' missing from: {error}");
    }
    assert!(upload.finished_at.is_some());
    assert_eq!(upload.processed_rows, 0);
    assert!(upload.counts.is_empty(), "{:?}", upload.counts);
    assert!(all_results(db, project_id, upload_id, 100).await.is_empty());
    assert_eq!(
        member_ids(db, project_id, group_id).await,
        vec!["C-1"],
        "the group is as it was"
    );
    let history = db.group_history(project_id, group_id, 10).await.unwrap();
    assert!(
        history.iter().all(|h| !h.action.starts_with("upload")),
        "{history:?}"
    );
}

/// Uploads `bytes` to a group holding C-1 and runs the job, which must end normally.
async fn upload_to_group_with_one_member(
    db: &Db,
    file_name: &str,
    bytes: Vec<u8>,
) -> (i64, i64, i64) {
    let p = project(db, "demo", Some("UG")).await;
    let g = group(db, p.id, "G").await;
    three_cases(db, p.id).await;
    change(db, p.id, g.id, Change::Add, &["C-1"]).await;
    let upload = upload_and_process(db, p.id, g.id, Change::Remove, file_name, bytes, None).await;
    (p.id, g.id, upload.id)
}

async fn a_sheet_without_an_identifier_column_is_refused_at_once(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let g = group(db, p.id, "G").await;
    let refused = [
        (
            "people.csv",
            csv("Name, Phone ,id", &["Aber,0772123456,C-1", "Okello,,C-2"]),
            "'Name', 'Phone', 'id'",
        ),
        (
            "people.xlsx",
            xlsx_of_text(&[&["full name", "phone"], &["Aber", "C-1"]]),
            "'full name', 'phone'",
        ),
    ];
    for (name, bytes, found) in refused {
        match db
            .create_upload(p.id, g.id, Change::Remove, name, bytes, None)
            .await
        {
            Err(ImportError::Sheet(e)) => {
                let e = e.to_string();
                assert!(e.contains("no case_identifier column"), "{e}");
                assert!(e.contains(found), "{e}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert!(db.group_uploads(p.id, g.id, 10).await.unwrap().is_empty());
    assert!(db.claim_job("t").await.unwrap().is_none(), "no job");
    // Headers written as people write them are the columns they name.
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let sheet = csv("Name,Phone Number", &["Aber,0772123456"]);
    let (p, g, u) = upload_to_group_with_one_member(db, "people.csv", sheet).await;
    let upload = db.get_upload(p, u).await.unwrap();
    assert_eq!(upload.counts.get("removed"), Some(&1), "{upload:?}");
    assert!(member_ids(db, p, g).await.is_empty());
}

async fn a_corrupt_workbook_fails_and_changes_nothing(engine: Dialect) {
    use std::io::Write;
    let t = TestDb::new(engine).await;
    let db = &t.db;
    // A zip that says it is a workbook but holds nonsense.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("xl/workbook.xml", options).unwrap();
    zip.write_all(b"this is not xml <<<").unwrap();
    zip.start_file("[Content_Types].xml", options).unwrap();
    zip.write_all(b"nor this").unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let (p, g, u) = upload_to_group_with_one_member(db, "broken.xlsx", bytes).await;
    assert_failed_without_changes(db, p, g, u, &["broken.xlsx"]).await;
}

async fn a_sheet_over_the_row_limit_fails_and_changes_nothing(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let limit = casecast_core::sheet::Limits::default().max_rows;
    // Removing C-1 is the first row: a reader that acted before counting would remove it.
    let mut text = String::from("case_identifier\nC-1\n");
    text.push_str(&"1\n".repeat(limit));
    let (p, g, u) = upload_to_group_with_one_member(db, "huge.csv", text.into_bytes()).await;
    assert_failed_without_changes(db, p, g, u, &[&limit.to_string(), "rows"]).await;
}

async fn create_upload_refuses_what_is_not_a_sheet_at_once(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "G").await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    let xls = [
        &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1][..],
        &[0u8; 512][..],
    ]
    .concat();
    let mut huge = b"case_identifier\n".to_vec();
    huge.resize(50 * 1024 * 1024 + 1, b'1');

    match db
        .create_upload(p.id, g.id, Change::Add, "photo.png", png, None)
        .await
    {
        Err(ImportError::Sheet(SheetError::NotSpreadsheet { detected, .. })) => {
            assert!(detected.contains("PNG"), "{detected}")
        }
        other => panic!("expected NotSpreadsheet, got {other:?}"),
    }
    assert!(matches!(
        db.create_upload(p.id, g.id, Change::Add, "old.xls", xls, None)
            .await,
        Err(ImportError::Sheet(SheetError::OldXls { .. }))
    ));
    assert!(matches!(
        db.create_upload(p.id, g.id, Change::Add, "huge.csv", huge, None)
            .await,
        Err(ImportError::Sheet(SheetError::TooLarge { .. }))
    ));
    assert!(matches!(
        db.create_upload(p.id, g.id, Change::Add, "empty.csv", Vec::new(), None)
            .await,
        Err(ImportError::Sheet(SheetError::Empty { .. }))
    ));
    assert!(db.group_uploads(p.id, g.id, 10).await.unwrap().is_empty());
    assert!(
        db.claim_job("t").await.unwrap().is_none(),
        "no job was queued"
    );
}

async fn an_upload_to_a_group_deleted_meanwhile_fails(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "G").await;
    case_with(db, p.id, Some("C-1"), "Aber", None, None).await;
    let upload = db
        .create_upload(
            p.id,
            g.id,
            Change::Add,
            "x.csv",
            csv("case_identifier", &["C-1"]),
            None,
        )
        .await
        .unwrap();
    db.delete_group(p.id, g.id).await.unwrap();
    let job = db.claim_job("t").await.unwrap().unwrap();
    db.process_upload(job.ref_id, job.id, "t").await.unwrap();
    db.finish_job(job.id).await.unwrap();
    let upload = db.get_upload(p.id, upload.id).await.unwrap();
    assert_eq!(upload.status, "failed");
    assert_eq!(upload.group_id, None);
    assert!(upload.error.unwrap().contains("deleted"));
    assert!(all_results(db, p.id, upload.id, 10).await.is_empty());
}

async fn processing_a_finished_upload_again_changes_nothing(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "G").await;
    case_with(db, p.id, Some("C-1"), "Aber", None, None).await;
    let done = upload_and_process(
        db,
        p.id,
        g.id,
        Change::Add,
        "x.csv",
        csv("case_identifier", &["C-1"]),
        None,
    )
    .await;
    db.remove_member(p.id, g.id, "C-1", crate::PAGE)
        .await
        .unwrap();
    // A late second run of the same job (another worker after a lease expiry) does nothing.
    db.process_upload(done.id, 1, "late").await.unwrap();
    let after = db.get_upload(p.id, done.id).await.unwrap();
    assert_eq!(
        (after.status.as_str(), after.counts.clone()),
        ("done", done.counts)
    );
    assert!(member_ids(db, p.id, g.id).await.is_empty());
    assert_eq!(all_results(db, p.id, done.id, 10).await.len(), 1);
}

const RESUME_ROWS: usize = 5000;

async fn an_upload_resumes_after_a_crash_without_repeating_rows(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let g = group(db, p.id, "G").await;
    // 4,000 cases P-0..P-3999 by import.
    let mut cases = String::from("name,external_id\n");
    for i in 0..4000 {
        cases.push_str(&format!("Case {i},P-{i}\n"));
    }
    let report = import(db, &p, cases.as_bytes(), "cases.csv").await.unwrap();
    assert_eq!(report.created, 4000);
    // Rows: each case once, with repeats on both sides of the 2,000-row mark (some repeating a
    // row before it), some unknown identifiers and some blanks.
    let mut lines = Vec::with_capacity(RESUME_ROWS);
    for i in 0..RESUME_ROWS {
        let line = match i {
            _ if i % 500 == 123 => String::new(),
            _ if i % 250 == 7 => format!("UNKNOWN-{i}"),
            _ if i % 100 == 50 => format!("P-{}", (i * 7) % 4000),
            _ => format!("P-{}", i % 4000),
        };
        lines.push(line);
    }
    let lines_ref: Vec<&str> = lines.iter().map(String::as_str).collect();
    let sheet = csv("case_identifier", &lines_ref);

    let upload = db
        .create_upload(p.id, g.id, Change::Add, "big.csv", sheet.clone(), None)
        .await
        .unwrap();
    let job = db.claim_job("first").await.unwrap().unwrap();
    db.process_upload(job.ref_id, job.id, "first")
        .await
        .unwrap();
    // The worker dies before it records the job as finished.
    let complete = db.get_upload(p.id, upload.id).await.unwrap();
    assert_eq!(complete.status, "done");
    assert_eq!((complete.total_rows, complete.processed_rows), (5000, 5000));
    let complete_results = all_results(db, p.id, upload.id, 1000).await;
    assert_eq!(complete_results.len(), RESUME_ROWS);
    let complete_members = member_ids(db, p.id, g.id).await;
    assert_eq!(complete.counts["added"] as usize, complete_members.len());

    // Turn the clock back to just after the first 2,000-row batch committed.
    let pool = raw_pool(&t.url).await;
    sqlx::query(
        "DELETE FROM case_group_members WHERE group_id = $1 AND case_pk IN
         (SELECT case_pk FROM upload_results WHERE upload_id = $2 AND row_number > 2001 AND outcome = 'added')",
    )
    .bind(g.id)
    .bind(upload.id)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM upload_results WHERE upload_id = $1 AND row_number > 2001")
        .bind(upload.id)
        .execute(&pool)
        .await
        .unwrap();
    let mut partial: BTreeMap<String, i64> = BTreeMap::new();
    for r in all_results(db, p.id, upload.id, 1000).await {
        *partial.entry(r.outcome.to_string()).or_default() += 1;
    }
    assert_eq!(partial.values().sum::<i64>(), 2000);
    sqlx::query(
        "UPDATE uploads SET status = 'running', processed_rows = 2000, counts = $1, file_bytes = $2, finished_at = NULL WHERE id = $3",
    )
    .bind(serde_json::to_string(&partial).unwrap())
    .bind(sheet)
    .bind(upload.id)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM case_group_history WHERE group_id = $1 AND action = 'upload_add'")
        .bind(g.id)
        .execute(&pool)
        .await
        .unwrap();
    let halfway = member_ids(db, p.id, g.id).await.len();
    assert!(halfway < complete_members.len());

    // The job's lease runs out; another worker takes it over and finishes it.
    db.retry_job(job.id, 0).await.unwrap();
    let again = db
        .claim_job("second")
        .await
        .unwrap()
        .expect("the job again");
    assert_eq!(
        (again.id, again.ref_id, again.attempts),
        (job.id, upload.id, 2)
    );
    db.process_upload(again.ref_id, again.id, "second")
        .await
        .unwrap();
    db.finish_job(again.id).await.unwrap();
    assert!(db.claim_job("third").await.unwrap().is_none());

    let resumed = db.get_upload(p.id, upload.id).await.unwrap();
    assert_eq!(resumed.status, "done");
    assert_eq!((resumed.total_rows, resumed.processed_rows), (5000, 5000));
    assert_eq!(resumed.counts, complete.counts, "each row counted once");
    let resumed_results = all_results(db, p.id, upload.id, 1000).await;
    let rows: Vec<i64> = resumed_results.iter().map(|r| r.row).collect();
    assert_eq!(
        rows,
        (2..=5001).collect::<Vec<i64>>(),
        "one result per input row"
    );
    assert_eq!(brief(&resumed_results), brief(&complete_results));
    assert_eq!(member_ids(db, p.id, g.id).await, complete_members);
    let history = db.group_history(p.id, g.id, 10).await.unwrap();
    assert_eq!(history[0].action, "upload_add");
    assert_eq!(history[0].added, complete.counts["added"]);
}

async fn concurrent_uploads_to_one_group_lose_no_member(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "G").await;
    let mut cases = String::from("name,external_id\n");
    for i in 0..6000 {
        cases.push_str(&format!("Case {i},E-{i}\n"));
    }
    import(db, &p, cases.as_bytes(), "cases.csv").await.unwrap();
    // The first file has E-0..E-3999 in order, the second E-2000..E-5999 backwards: they overlap
    // in 2,000 cases, met in opposite orders.
    let first: Vec<String> = (0..4000).map(|i| format!("E-{i}")).collect();
    let second: Vec<String> = (2000..6000).rev().map(|i| format!("E-{i}")).collect();
    let mut uploads = Vec::new();
    for (name, lines) in [("first.csv", &first), ("second.csv", &second)] {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        uploads.push(
            db.create_upload(
                p.id,
                g.id,
                Change::Add,
                name,
                csv("case_identifier", &lines),
                None,
            )
            .await
            .unwrap()
            .id,
        );
    }
    let mut tasks = Vec::new();
    for worker in ["w1", "w2"] {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let job = db.claim_job(worker).await.unwrap().expect("a job each");
            db.process_upload(job.ref_id, job.id, worker).await.unwrap();
            db.finish_job(job.id).await.unwrap();
            job.ref_id
        }));
    }
    let mut processed = BTreeSet::new();
    for task in tasks {
        processed.insert(task.await.unwrap());
    }
    assert_eq!(
        processed,
        uploads.iter().copied().collect(),
        "each worker ran one upload"
    );

    let a = db.get_upload(p.id, uploads[0]).await.unwrap();
    let b = db.get_upload(p.id, uploads[1]).await.unwrap();
    assert_eq!((a.status.as_str(), b.status.as_str()), ("done", "done"));
    let added =
        a.counts.get("added").copied().unwrap_or(0) + b.counts.get("added").copied().unwrap_or(0);
    let already = a.counts.get("already_in_group").copied().unwrap_or(0)
        + b.counts.get("already_in_group").copied().unwrap_or(0);
    assert_eq!(
        (added, already),
        (6000, 2000),
        "{:?} {:?}",
        a.counts,
        b.counts
    );
    assert_eq!(db.get_group(p.id, g.id).await.unwrap().case_count, 6000);
    let members: BTreeSet<String> = crate::all_members(db, p.id, g.id, 5000)
        .await
        .into_iter()
        .map(|c| c.external_id.unwrap())
        .collect();
    assert_eq!(members.len(), 6000);
    assert!((0..6000).all(|i| members.contains(&format!("E-{i}"))));
    let history = db.group_history(p.id, g.id, 10).await.unwrap();
    let total: i64 = history
        .iter()
        .filter(|h| h.action == "upload_add")
        .map(|h| h.added)
        .sum();
    assert_eq!(total, 6000);
}

on_both_engines!(single_adds_during_an_upload_lose_no_member);

/// While a worker applies a 4,000-row upload, someone adds cases one at a time, some of them in
/// the sheet too: every case ends in the group once, and the stored count is the real one.
async fn single_adds_during_an_upload_lose_no_member(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    let g = group(db, p.id, "G").await;
    let mut cases = String::from("name,external_id\n");
    for i in 0..5000 {
        cases.push_str(&format!("Case {i},E-{i}\n"));
    }
    import(db, &p, cases.as_bytes(), "cases.csv").await.unwrap();
    let sheet: Vec<String> = (0..4000).map(|i| format!("E-{i}")).collect();
    let lines: Vec<&str> = sheet.iter().map(String::as_str).collect();
    let upload = db
        .create_upload(
            p.id,
            g.id,
            Change::Add,
            "sheet.csv",
            csv("case_identifier", &lines),
            None,
        )
        .await
        .unwrap();
    let worker = {
        let db = db.clone();
        tokio::spawn(async move {
            let job = db.claim_job("w").await.unwrap().expect("the upload's job");
            db.process_upload(job.ref_id, job.id, "w").await.unwrap();
            db.finish_job(job.id).await.unwrap();
        })
    };
    // Every 7th case from 0 to 4999, one request each: some in the sheet, some beyond it.
    let mut singles = 0;
    for i in (0..5000).step_by(7) {
        let results = change(db, p.id, g.id, Change::Add, &[&format!("E-{i}")]).await;
        assert!(
            matches!(results[0].outcome.as_str(), "added" | "already_in_group"),
            "{:?}",
            results[0]
        );
        singles += 1;
    }
    worker.await.unwrap();
    assert_eq!(db.get_upload(p.id, upload.id).await.unwrap().status, "done");
    let expected: BTreeSet<String> = (0..4000)
        .chain((0..5000).step_by(7))
        .map(|i| format!("E-{i}"))
        .collect();
    let members: BTreeSet<String> = crate::all_members(db, p.id, g.id, 5000)
        .await
        .into_iter()
        .map(|c| c.external_id.unwrap())
        .collect();
    assert_eq!(members, expected, "{singles} single adds");
    assert_eq!(
        db.get_group(p.id, g.id).await.unwrap().case_count,
        expected.len() as i64
    );
}
