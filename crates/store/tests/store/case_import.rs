//! Case imports: which case a row creates or updates, a file checked whole before anything is
//! written, batches that let other writers in, isolation.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use casecast_core::case::CaseChanges;
use casecast_core::sheet::{Limits, SheetError};
use casecast_core::{CaseId, PhoneNumber};
use casecast_store::case_import::ImportError;
use casecast_store::cases::CaseFilter;
use casecast_testkit::{on_both_engines, Dialect, TestDb};

use crate::{all_cases, by_external_id, import, import_with, named, project, xlsx_of_text};

on_both_engines!(
    import_creates_cases_with_e164_phones_properties_and_closed,
    reimporting_the_same_file_changes_nothing,
    import_updates_the_case_with_the_rows_case_id,
    import_updates_the_case_with_the_rows_external_id,
    import_creates_a_case_with_the_given_case_id,
    import_applies_two_rows_that_reach_the_same_case_in_order,
    import_over_the_row_limit_writes_nothing,
    a_file_error_past_the_first_batch_writes_nothing,
    large_import_counts_and_stays_in_its_project,
    a_stopped_page_import_resumes_after_the_rows_written,
);

async fn import_creates_cases_with_e164_phones_properties_and_closed(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let file = xlsx_of_text(&[
        &[
            "External_ID",
            " Name ",
            "phone_number",
            "district",
            "closed",
            "case_type",
        ],
        &["P-1", "Aber Grace", "0772 123456", "Gulu", "yes", "mother"],
        &["P-2", "Okello Peter", "+256 782 345678", "", "no", ""],
        &["P-3", "Akello Mary", "", "Lira", "", ""],
    ]);
    let report = import(db, &p, &file, "cases.xlsx").await.unwrap();
    assert_eq!(
        (
            report.rows,
            report.created,
            report.updated,
            report.unchanged,
            report.blank
        ),
        (3, 3, 0, 0, 0)
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    let cases = by_external_id(db, p.id).await;
    assert_eq!(cases.len(), 3);
    let grace = &cases["P-1"];
    assert_eq!(grace.name, "Aber Grace");
    assert_eq!(
        grace.phone_number.as_ref().unwrap().as_str(),
        "+256772123456"
    );
    assert_eq!(
        grace.properties.get("district").map(String::as_str),
        Some("Gulu")
    );
    assert_eq!(grace.properties.len(), 1);
    assert!(grace.closed);
    assert_eq!(grace.case_type, "mother");
    let peter = &cases["P-2"];
    assert_eq!(
        peter.phone_number.as_ref().unwrap().as_str(),
        "+256782345678"
    );
    assert!(!peter.closed);
    assert!(peter.properties.is_empty(), "a blank cell sets no property");
    assert_eq!(peter.case_type, "case");
    let mary = &cases["P-3"];
    assert_eq!(mary.phone_number, None);
    assert!(!mary.closed);
    assert_eq!(db.count_cases(p.id).await.unwrap(), 3);
}

async fn reimporting_the_same_file_changes_nothing(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let given = db
        .create_case(
            p.id,
            Some(CaseId::parse("HH-1").unwrap()),
            &named("Household one"),
        )
        .await
        .unwrap();
    let csv = "case_id,external_id,name,phone_number,village,closed\n\
               HH-1,,Household one,0772 123456,Layibi,no\n\
               ,P-1,Aber Grace,+256772000111,Gulu,yes\n\
               \n\
               ,P-2,Okello,,,\n";
    let first = import(db, &p, csv.as_bytes(), "cases.csv").await.unwrap();
    assert_eq!((first.created, first.updated, first.blank), (2, 1, 1));
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let before = all_cases(db, p.id, &CaseFilter::default(), 100).await;
    assert_eq!(before.len(), 3);
    assert!(before.iter().any(|c| c.case_id == given.case_id));

    let second = import(db, &p, csv.as_bytes(), "cases.csv").await.unwrap();
    assert_eq!(second.rows, 4);
    assert_eq!(second.blank, 1);
    assert_eq!(
        (second.created, second.updated, second.unchanged),
        (0, 0, second.rows - second.blank),
        "every non-blank row is unchanged"
    );
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    let after = all_cases(db, p.id, &CaseFilter::default(), 100).await;
    assert_eq!(
        after, before,
        "every case, modified_at included, is as it was"
    );
}

async fn import_updates_the_case_with_the_rows_case_id(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let existing = db
        .create_case(
            p.id,
            None,
            &CaseChanges {
                name: Some("Aber Grace".into()),
                external_id: Some(Some("P-1".into())),
                phone_number: Some(Some(PhoneNumber::parse("+256772123456", None).unwrap())),
                properties: [
                    ("district".to_string(), Some("Gulu".to_string())),
                    ("parity".to_string(), Some("1".to_string())),
                ]
                .into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let id = existing.case_id.as_str();
    // Blank cells (name, phone) change nothing; properties merge.
    let csv = format!("case_id,name,phone_number,parity,village,owner_id\n{id},,,2,Layibi,chw-9\n");
    let report = import(db, &p, csv.as_bytes(), "update.csv").await.unwrap();
    assert_eq!(
        (report.created, report.updated, report.unchanged),
        (0, 1, 0)
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let case = db.get_case(p.id, id).await.unwrap();
    assert_eq!(case.name, "Aber Grace");
    assert_eq!(case.external_id.as_deref(), Some("P-1"));
    assert_eq!(
        case.phone_number.as_ref().unwrap().as_str(),
        "+256772123456"
    );
    assert_eq!(case.owner_id.as_deref(), Some("chw-9"));
    let props: Vec<(&str, &str)> = case
        .properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        props,
        [("district", "Gulu"), ("parity", "2"), ("village", "Layibi")]
    );
    assert!(case.modified_at >= existing.modified_at);
    assert_eq!(case.created_at, existing.created_at);
    assert_eq!(db.count_cases(p.id).await.unwrap(), 1);
}

async fn import_updates_the_case_with_the_rows_external_id(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let existing = db
        .create_case(
            p.id,
            None,
            &CaseChanges {
                name: Some("Okello".into()),
                external_id: Some(Some("00123".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let csv = "external_id,name,language_code,phone_number\n00123,Okello Peter,ach,0782 345678\n";
    let report = import(db, &p, csv.as_bytes(), "update.csv").await.unwrap();
    assert_eq!((report.created, report.updated), (0, 1));
    let case = db.get_case(p.id, existing.case_id.as_str()).await.unwrap();
    assert_eq!(case.name, "Okello Peter");
    assert_eq!(case.language_code.as_deref(), Some("ach"));
    assert_eq!(
        case.phone_number.as_ref().unwrap().as_str(),
        "+256782345678"
    );
    assert_eq!(db.count_cases(p.id).await.unwrap(), 1, "no second case");
}

async fn import_creates_a_case_with_the_given_case_id(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let csv = "case_id,name,external_id\nHH-77,New household,E-77\n";
    let report = import(db, &p, csv.as_bytes(), "new.csv").await.unwrap();
    assert_eq!((report.created, report.updated), (1, 0));
    let case = db.get_case(p.id, "HH-77").await.unwrap();
    assert_eq!(case.name, "New household");
    assert_eq!(case.external_id.as_deref(), Some("E-77"));
    let again = import(db, &p, b"case_id,name\nHH-77,Renamed\n", "again.csv")
        .await
        .unwrap();
    assert_eq!((again.created, again.updated), (0, 1));
    assert_eq!(db.get_case(p.id, "HH-77").await.unwrap().name, "Renamed");
    assert_eq!(db.count_cases(p.id).await.unwrap(), 1);
}

async fn import_applies_two_rows_that_reach_the_same_case_in_order(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    db.create_case(
        p.id,
        Some(CaseId::parse("C-1").unwrap()),
        &CaseChanges {
            name: Some("Aber".into()),
            external_id: Some(Some("E-1".into())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Row 2 finds the case by case_id, row 3 by external_id: both changes must land.
    let csv = "case_id,external_id,name,district\nC-1,,Aber Grace,\n,E-1,,Gulu\n";
    let report = import(db, &p, csv.as_bytes(), "same.csv").await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.updated, 2);
    let case = db.get_case(p.id, "C-1").await.unwrap();
    assert_eq!(case.name, "Aber Grace", "row 2's change was lost");
    assert_eq!(
        case.properties.get("district").map(String::as_str),
        Some("Gulu")
    );
}

async fn import_over_the_row_limit_writes_nothing(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let limits = Limits {
        max_rows: 3,
        ..Default::default()
    };
    let csv = "external_id,name\nE-1,A\nE-2,B\nE-3,C\nE-4,D\n";
    let result = import_with(db, &p, csv.as_bytes(), "four.csv", limits).await;
    match result {
        Err(ImportError::Sheet(SheetError::TooManyRows { limit: 3, .. })) => {}
        other => panic!("expected too many rows, got {other:?}"),
    }
    assert_eq!(db.count_cases(p.id).await.unwrap(), 0);
    assert!(all_cases(
        db,
        p.id,
        &CaseFilter {
            include_deleted: true,
            ..Default::default()
        },
        10
    )
    .await
    .is_empty());
    // Three rows are within the limit.
    let three = "external_id,name\nE-1,A\nE-2,B\nE-3,C\n";
    let report = import_with(db, &p, three.as_bytes(), "three.csv", limits)
        .await
        .unwrap();
    assert_eq!(report.created, 3);
}

async fn a_file_error_past_the_first_batch_writes_nothing(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let existing = db
        .create_case(
            p.id,
            None,
            &CaseChanges {
                name: Some("Before".into()),
                external_id: Some(Some("E-0".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // The importer writes in batches of 2,000 rows; the limit is hit past the first batch, and
    // found by the check of the whole file before anything is written.
    let mut csv = String::from("external_id,name\nE-0,After\n");
    for i in 1..2_100 {
        csv.push_str(&format!("E-{i},Case {i}\n"));
    }
    let limits = Limits {
        max_rows: 2_050,
        ..Default::default()
    };
    let result = import_with(db, &p, csv.as_bytes(), "big.csv", limits).await;
    assert!(
        matches!(
            result,
            Err(ImportError::Sheet(SheetError::TooManyRows { .. }))
        ),
        "{result:?}"
    );
    assert_eq!(
        db.count_cases(p.id).await.unwrap(),
        1,
        "no case was created"
    );
    let after = db.get_case(p.id, existing.case_id.as_str()).await.unwrap();
    assert_eq!(
        after, existing,
        "the update in the first batch was not written"
    );
}

async fn large_import_counts_and_stays_in_its_project(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let a = project(db, "alpha", Some("UG")).await;
    let b = project(db, "beta", Some("UG")).await;
    const N: usize = 5_000;
    let mut csv = String::from("external_id,name,phone_number,district\n");
    for i in 0..N {
        csv.push_str(&format!(
            "EXT-{i:05},Person {i},+2567720{i:05},D{}\n",
            i % 7
        ));
    }
    let done = AtomicUsize::new(0);
    let report = casecast_engine::import::import_cases(
        db,
        a.id,
        a.country_code(),
        csv.clone().into_bytes(),
        "big.csv",
        Limits::default(),
        &|n| done.store(n, Ordering::SeqCst),
    )
    .await
    .unwrap();
    assert_eq!((report.rows, report.created, report.updated), (N, N, 0));
    assert!(
        report.errors.is_empty(),
        "{:?}",
        &report.errors[..report.errors.len().min(3)]
    );
    assert_eq!(
        done.load(Ordering::SeqCst),
        N,
        "progress reached the last row"
    );
    assert_eq!(db.count_cases(a.id).await.unwrap(), N as i64);
    let a_before = all_cases(db, a.id, &CaseFilter::default(), 1_000).await;
    assert_eq!(a_before.len(), N);
    assert_eq!(a_before[1234].external_id.as_deref(), Some("EXT-01234"));
    assert_eq!(
        a_before[1234].phone_number.as_ref().unwrap().as_str(),
        "+256772001234"
    );

    // The same external IDs in another project are other cases.
    let changed = csv.replace("Person", "Other");
    let in_b = import(db, &b, changed.as_bytes(), "big.csv").await.unwrap();
    assert_eq!((in_b.created, in_b.updated), (N, 0));
    assert_eq!(db.count_cases(b.id).await.unwrap(), N as i64);
    let a_after = all_cases(db, a.id, &CaseFilter::default(), 1_000).await;
    assert_eq!(a_after, a_before, "alpha's cases are untouched");
    let b_cases = all_cases(db, b.id, &CaseFilter::default(), 1_000).await;
    assert!(b_cases.iter().all(|c| c.name.starts_with("Other ")));
    let a_ids: HashSet<&str> = a_before.iter().map(|c| c.case_id.as_str()).collect();
    assert!(b_cases.iter().all(|c| !a_ids.contains(c.case_id.as_str())));

    // Importing into beta again updates beta only.
    let again = import(db, &b, csv.as_bytes(), "big.csv").await.unwrap();
    assert_eq!((again.created, again.updated, again.unchanged), (0, N, 0));
    assert_eq!(
        all_cases(db, a.id, &CaseFilter::default(), 1_000).await,
        a_before
    );
}

/// On SQLite an import commits batch by batch, so that another writer (a login, another
/// project's new case) gets in between two batches instead of waiting for the whole import:
/// here a second connection that waits at most 1 s for the lock writes while the import is
/// past its first batch. (The import used to hold the lock from its first row to its last.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writer_gets_in_between_an_imports_batches() {
    let t = TestDb::new(Dialect::Sqlite).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let mut csv = String::from("external_id,name\n");
    for i in 0..5_000 {
        csv.push_str(&format!("E-{i},Case {i}\n"));
    }
    let url = casecast_store::db::normalise_url(&t.url).1;
    let wrote = std::sync::Mutex::new(Vec::new());
    let progress = |n: usize| {
        if n != 2_000 {
            return;
        }
        // Another process's writer, on its own thread and runtime, while the import waits.
        let url = url.clone();
        let outcome = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move {
                    use sqlx::{Connection, Executor};
                    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
                    conn.execute("PRAGMA busy_timeout = 1000").await.unwrap();
                    let written = conn
                        .execute("UPDATE projects SET name = 'Renamed' WHERE slug = 'demo'")
                        .await;
                    conn.close().await.ok();
                    written.map(|_| ()).map_err(|e| e.to_string())
                })
        })
        .join()
        .unwrap();
        wrote.lock().unwrap().push(outcome);
    };
    let report = casecast_engine::import::import_cases(
        db,
        p.id,
        p.country_code(),
        csv.into_bytes(),
        "five.csv",
        Limits::default(),
        &progress,
    )
    .await
    .unwrap();
    assert_eq!(report.created, 5_000);
    assert_eq!(*wrote.lock().unwrap(), vec![Ok(())]);
    assert_eq!(db.project_by_id(p.id).await.unwrap().name, "Renamed");
}

/// A page's import whose worker stopped after its first batch resumes after the rows written:
/// they are not written again (nor reported as unchanged), and a later row repeating one of
/// them is still refused as a repeat.
async fn a_stopped_page_import_resumes_after_the_rows_written(engine: Dialect) {
    use casecast_core::case_sheet::ImportColumns;
    use casecast_core::sheet::{read_table, Row};
    use casecast_store::case_import::{ImportWriter, Parsed};
    use casecast_store::import_jobs::ImportProgress;
    use casecast_store::jobs::JobKind;

    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let mut csv = String::from("external_id,name\n");
    for i in 0..5_000 {
        // Row 4,502 repeats row 102's external ID.
        let id = if i == 4_500 { 100 } else { i };
        csv.push_str(&format!("E-{id},Case {i}\n"));
    }
    let import = db
        .create_case_import(p.id, "five.csv", csv.clone().into_bytes(), None)
        .await
        .unwrap();
    // An earlier run wrote the first 2,000 rows, then its worker died.
    let table = read_table(csv.as_bytes(), "five.csv", &Limits::default()).unwrap();
    let columns = ImportColumns::from_headers(&table.headers).unwrap();
    let parsed = |r: &Row| Parsed::Valid(columns.parse_row(r, None).unwrap());
    let work = db.case_import_work(import.id).await.unwrap().unwrap();
    let mut writer = ImportWriter::new(db, p.id).with_results();
    let mut progress = ImportProgress::default();
    let first: Vec<Parsed> = table.rows[..2_000].iter().map(parsed).collect();
    assert!(db
        .write_case_import_batch(&work, &mut writer, first, &mut progress)
        .await
        .unwrap());

    let job = db
        .claim_job_for(JobKind::Import, import.id, "resumer")
        .await
        .unwrap()
        .unwrap();
    casecast_engine::import::process_case_import(db, import.id, job.id, "resumer")
        .await
        .unwrap();
    let done = db.get_case_import(p.id, import.id).await.unwrap();
    assert_eq!(done.status.to_string(), "done");
    assert_eq!((done.total_rows, done.processed_rows), (5_000, 5_000));
    assert_eq!(
        done.counts.get("created"),
        Some(&4_999),
        "{:?}",
        done.counts
    );
    assert_eq!(done.counts.get("error"), Some(&1), "{:?}", done.counts);
    assert_eq!(done.counts.get("unchanged"), None, "{:?}", done.counts);
    assert_eq!(db.count_cases(p.id).await.unwrap(), 4_999);
    let results = db
        .case_import_results(p.id, import.id, 0, 10_000)
        .await
        .unwrap();
    assert_eq!(results.len(), 5_000);
    let repeat = results.iter().find(|r| r.row == 4_502).unwrap();
    assert_eq!(repeat.column, "external_id");
    assert!(
        repeat.message.contains("already appears in row 102"),
        "{repeat:?}"
    );
}
