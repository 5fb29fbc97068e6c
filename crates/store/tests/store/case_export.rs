//! Case exports: which cases each filter exports (the same as the case list and its count), the
//! columns, CSV and `.xlsx` files that import back unchanged, formula guards, exports uploaded to
//! a group, and background exports made by the worker.

use casecast_core::case::{Case, CaseChanges};
use casecast_core::sheet::{read_table, Limits, Table};
use casecast_core::sheet_out::FORMULA_STARTS;
use casecast_core::{CaseId, CountryCode, PhoneNumber};
use casecast_store::case_export::{Export, ExportFormat, FIXED_COLUMNS};
use casecast_store::cases::CaseFilter;
use casecast_store::membership::Change;
use casecast_store::projects::Project;
use casecast_store::{Db, StoreError};
use casecast_testkit::{on_both_engines, Dialect, TestDb};

use crate::{
    all_cases, all_results, change, group, import, member_ids, project, raw_pool,
    upload_and_process,
};

on_both_engines!(
    export_filters_by_case_type,
    export_filters_by_closed,
    export_filters_by_group_membership,
    export_filters_by_has_phone,
    export_filters_by_modified_since_inclusive,
    export_filters_by_q,
    export_never_holds_deleted_cases,
    export_columns_are_fixed_then_the_exported_cases_properties,
    export_columns_follow_property_changes,
    csv_export_imports_back_unchanged_and_exports_the_same_bytes,
    xlsx_export_imports_back_unchanged_and_exports_the_same_rows,
    csv_export_guards_formula_cells_and_xlsx_keeps_plain_strings,
    exported_case_ids_uploaded_to_a_group_add_exactly_those_cases,
    background_exports_make_the_same_file_as_a_direct_export,
    background_export_of_another_project_is_not_found,
    a_fourth_pending_export_of_a_project_is_refused,
    an_export_with_more_property_columns_than_a_case_may_have_imports_back,
);

/// A case to create; an empty `id` gets a new UUID.
#[derive(Default)]
struct New<'a> {
    id: &'a str,
    name: &'a str,
    external_id: Option<&'a str>,
    phone: Option<&'a str>,
    case_type: Option<&'a str>,
    closed: bool,
    language: Option<&'a str>,
    owner: Option<&'a str>,
    props: &'a [(&'a str, &'a str)],
}

impl New<'_> {
    async fn create(&self, db: &Db, project_id: i64) -> Case {
        let ug = CountryCode::parse("UG").unwrap();
        let changes = CaseChanges {
            name: Some(self.name.to_string()),
            case_type: self.case_type.map(str::to_string),
            external_id: self.external_id.map(|e| Some(e.to_string())),
            phone_number: self
                .phone
                .map(|p| Some(PhoneNumber::parse(p, Some(&ug)).unwrap())),
            language_code: self.language.map(|l| Some(l.to_string())),
            owner_id: self.owner.map(|o| Some(o.to_string())),
            closed: Some(self.closed),
            properties: self
                .props
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
        };
        let id = (!self.id.is_empty()).then(|| CaseId::parse(self.id).unwrap());
        db.create_case(project_id, id, &changes).await.unwrap()
    }
}

/// Project `demo` (UG) with four live cases and a deleted one, and project `other` with a case
/// that looks like `demo`'s first:
///
/// | case   | name         | external | phone | type   | closed | properties              |
/// |--------|--------------|----------|-------|--------|--------|-------------------------|
/// | hh-001 | Aber Grace   | P-001    | yes   | mother | no     | district, village       |
/// | hh-002 | Okello Peter | P-002    | no    | child  | yes    | zone                    |
/// | hh-003 | Akello Mary  | Q-100    | yes   | mother | yes    | district                |
/// | hh-004 | Nakato Zoë   |          | no    | case   | no     |                         |
/// | hh-005 | Gone Away    | P-005    | yes   | mother | no     | secret (deleted case)   |
async fn fixture(db: &Db) -> (Project, Project) {
    let p = project(db, "demo", Some("UG")).await;
    let other = project(db, "other", Some("UG")).await;
    let cases = [
        New {
            id: "hh-001",
            name: "Aber Grace",
            external_id: Some("P-001"),
            phone: Some("+256772000001"),
            case_type: Some("mother"),
            props: &[("district", "Gulu"), ("village", "Layibi")],
            ..Default::default()
        },
        New {
            id: "hh-002",
            name: "Okello Peter",
            external_id: Some("P-002"),
            case_type: Some("child"),
            closed: true,
            props: &[("zone", "North")],
            ..Default::default()
        },
        New {
            id: "hh-003",
            name: "Akello Mary",
            external_id: Some("Q-100"),
            phone: Some("+256772000003"),
            case_type: Some("mother"),
            closed: true,
            props: &[("district", "Lira")],
            ..Default::default()
        },
        New {
            id: "hh-004",
            name: "Nakato Zoë",
            ..Default::default()
        },
        New {
            id: "hh-005",
            name: "Gone Away",
            external_id: Some("P-005"),
            phone: Some("+256772000005"),
            case_type: Some("mother"),
            props: &[("secret", "x")],
            ..Default::default()
        },
    ];
    for c in &cases {
        c.create(db, p.id).await;
    }
    db.delete_case(p.id, "hh-005").await.unwrap();
    New {
        id: "hh-001",
        name: "Aber Grace",
        external_id: Some("P-001"),
        phone: Some("+256772000001"),
        case_type: Some("mother"),
        props: &[("other_prop", "y")],
        ..Default::default()
    }
    .create(db, other.id)
    .await;
    (p, other)
}

/// An export written to a temporary file: the rows the call reported, and the file's bytes.
async fn export_bytes(
    db: &Db,
    project_id: i64,
    filter: &CaseFilter,
    format: ExportFormat,
) -> (u64, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("export.{}", format.as_str()));
    let mut heard = Vec::new();
    let rows =
        casecast_engine::export::write_case_export(db, project_id, filter, format, &path, |n| {
            heard.push(n);
            std::future::ready(Ok(()))
        })
        .await
        .unwrap();
    assert_eq!(
        heard.last().copied(),
        Some(rows),
        "progress ends at the row count"
    );
    (rows, std::fs::read(&path).unwrap())
}

/// A file read back as every sheet upload reads it.
fn read(bytes: &[u8], format: ExportFormat) -> Table {
    read_table(bytes, &format!("x.{}", format.as_str()), &Limits::default()).unwrap()
}

/// The exported table (read back) of a filter, as CSV.
async fn export_table(db: &Db, project_id: i64, filter: &CaseFilter) -> Table {
    let (rows, bytes) = export_bytes(db, project_id, filter, ExportFormat::Csv).await;
    let table = read(&bytes, ExportFormat::Csv);
    assert_eq!(rows as usize, table.rows.len(), "rows reported and written");
    table
}

/// The case IDs of an exported table, in order.
fn case_ids(table: &Table) -> Vec<String> {
    assert_eq!(table.headers.0[0], "case_id");
    table.rows.iter().map(|r| r.get(0).to_string()).collect()
}

/// Checks that the case list, its count and an export of the filter all hold exactly `expected`.
async fn check(db: &Db, project_id: i64, filter: &CaseFilter, expected: &[&str]) {
    let listed: Vec<String> = all_cases(db, project_id, filter, 2)
        .await
        .into_iter()
        .map(|c| c.case_id.into_string())
        .collect();
    assert_eq!(listed, expected, "listed with {filter:?}");
    assert_eq!(
        db.count_filtered_cases(project_id, filter).await.unwrap(),
        expected.len() as i64,
        "counted with {filter:?}"
    );
    let table = export_table(db, project_id, filter).await;
    assert_eq!(case_ids(&table), expected, "exported with {filter:?}");
}

fn headers(properties: &[&str]) -> Vec<String> {
    FIXED_COLUMNS
        .iter()
        .chain(properties)
        .map(|s| s.to_string())
        .collect()
}

async fn export_filters_by_case_type(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, _) = fixture(db).await;
    let by_type = |t: &str| CaseFilter {
        case_type: Some(t.into()),
        ..Default::default()
    };
    check(db, p.id, &by_type("mother"), &["hh-001", "hh-003"]).await;
    check(db, p.id, &by_type("child"), &["hh-002"]).await;
    check(db, p.id, &by_type("case"), &["hh-004"]).await;
    check(db, p.id, &by_type("nurse"), &[]).await;
    check(db, p.id, &by_type("Mother"), &[]).await;
    // Two filters at once: open mothers.
    let open_mothers = CaseFilter {
        closed: Some(false),
        ..by_type("mother")
    };
    check(db, p.id, &open_mothers, &["hh-001"]).await;
    // No filter: every live case.
    check(
        db,
        p.id,
        &CaseFilter::default(),
        &["hh-001", "hh-002", "hh-003", "hh-004"],
    )
    .await;
}

async fn export_filters_by_closed(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, other) = fixture(db).await;
    let closed = |c: bool| CaseFilter {
        closed: Some(c),
        ..Default::default()
    };
    check(db, p.id, &closed(true), &["hh-002", "hh-003"]).await;
    check(db, p.id, &closed(false), &["hh-001", "hh-004"]).await;
    db.close_case(p.id, "hh-004").await.unwrap();
    check(db, p.id, &closed(true), &["hh-002", "hh-003", "hh-004"]).await;
    check(db, p.id, &closed(false), &["hh-001"]).await;
    check(db, other.id, &closed(false), &["hh-001"]).await;
    check(db, other.id, &closed(true), &[]).await;
}

async fn export_filters_by_group_membership(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    let other = project(db, "other", Some("UG")).await;
    for (id, phone) in [
        ("hh-001", Some("+256772000001")),
        ("hh-002", None),
        ("hh-003", Some("+256772000003")),
        ("hh-004", None),
        ("hh-005", Some("+256772000005")),
    ] {
        New {
            id,
            name: id,
            phone,
            ..Default::default()
        }
        .create(db, p.id)
        .await;
    }
    New {
        id: "hh-001",
        name: "Other one",
        ..Default::default()
    }
    .create(db, other.id)
    .await;
    let g = group(db, p.id, "Visits").await;
    let empty = group(db, p.id, "Empty").await;
    let h = group(db, other.id, "Theirs").await;
    // Added out of creation order; listed and exported in the group's order.
    change(
        db,
        p.id,
        g.id,
        Change::Add,
        &["hh-004", "hh-001", "hh-005", "hh-003", "hh-002"],
    )
    .await;
    change(db, p.id, g.id, Change::Remove, &["hh-002"]).await;
    change(db, other.id, h.id, Change::Add, &["hh-001"]).await;
    db.delete_case(p.id, "hh-005").await.unwrap();
    let in_group = |id: i64| CaseFilter {
        group_id: Some(id),
        ..Default::default()
    };
    check(db, p.id, &in_group(g.id), &["hh-001", "hh-003", "hh-004"]).await;
    check(db, p.id, &in_group(empty.id), &[]).await;
    // Another project's group yields nothing, though its member has a case ID used here.
    check(db, p.id, &in_group(h.id), &[]).await;
    check(db, other.id, &in_group(h.id), &["hh-001"]).await;
    check(db, other.id, &in_group(g.id), &[]).await;
    check(db, p.id, &in_group(i64::MAX), &[]).await;
    // With a second filter.
    let with_phone = CaseFilter {
        has_phone: Some(true),
        ..in_group(g.id)
    };
    check(db, p.id, &with_phone, &["hh-001", "hh-003"]).await;
    // A case not in the group is out however it matches the other filters.
    let by_q = CaseFilter {
        q: Some("hh-002".into()),
        ..in_group(g.id)
    };
    check(db, p.id, &by_q, &[]).await;
}

async fn export_filters_by_has_phone(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, _) = fixture(db).await;
    let has = |h: bool| CaseFilter {
        has_phone: Some(h),
        ..Default::default()
    };
    check(db, p.id, &has(true), &["hh-001", "hh-003"]).await;
    check(db, p.id, &has(false), &["hh-002", "hh-004"]).await;
    db.update_case(
        p.id,
        "hh-001",
        &CaseChanges {
            phone_number: Some(None),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    check(db, p.id, &has(true), &["hh-003"]).await;
    check(db, p.id, &has(false), &["hh-001", "hh-002", "hh-004"]).await;
    let closed_without = CaseFilter {
        closed: Some(true),
        ..has(false)
    };
    check(db, p.id, &closed_without, &["hh-002"]).await;
}

async fn export_filters_by_modified_since_inclusive(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, _) = fixture(db).await;
    // Known instants, set directly, so that the boundary is exact.
    let pool = raw_pool(&t.url).await;
    for (id, at) in [
        ("hh-001", 1_000i64),
        ("hh-002", 2_000),
        ("hh-003", 2_000),
        ("hh-004", 3_000),
        ("hh-005", 2_500),
    ] {
        sqlx::query("UPDATE cases SET modified_at = $1 WHERE project_id = $2 AND case_id = $3")
            .bind(at)
            .bind(p.id)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let since = |ms: i64| CaseFilter {
        modified_since: Some(ms),
        ..Default::default()
    };
    check(
        db,
        p.id,
        &since(0),
        &["hh-001", "hh-002", "hh-003", "hh-004"],
    )
    .await;
    check(
        db,
        p.id,
        &since(1_000),
        &["hh-001", "hh-002", "hh-003", "hh-004"],
    )
    .await;
    check(db, p.id, &since(1_001), &["hh-002", "hh-003", "hh-004"]).await;
    check(db, p.id, &since(2_000), &["hh-002", "hh-003", "hh-004"]).await;
    check(db, p.id, &since(2_001), &["hh-004"]).await;
    check(db, p.id, &since(3_000), &["hh-004"]).await;
    check(db, p.id, &since(3_001), &[]).await;
    let open_since = CaseFilter {
        closed: Some(false),
        ..since(2_000)
    };
    check(db, p.id, &open_since, &["hh-004"]).await;
    // The exported instant is the stored one, as RFC 3339 UTC.
    let table = export_table(db, p.id, &since(2_000)).await;
    let at = table.headers.find("modified_at").unwrap();
    assert_eq!(table.rows[0].get(at), "1970-01-01T00:00:02.000Z");
    // A change moves a case past the boundary.
    db.update_case(p.id, "hh-001", &crate::named("Aber G."))
        .await
        .unwrap();
    check(db, p.id, &since(3_001), &["hh-001"]).await;
}

async fn export_filters_by_q(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, _) = fixture(db).await;
    let q = |text: &str| CaseFilter {
        q: Some(text.into()),
        country: p.country_code(),
        ..Default::default()
    };
    // Part of the name, any case (also beyond ASCII).
    check(db, p.id, &q("kello"), &["hh-002", "hh-003"]).await;
    check(db, p.id, &q("GRACE"), &["hh-001"]).await;
    check(db, p.id, &q("zoë"), &["hh-004"]).await;
    // The start of an external ID (not its middle); the deleted P-005 stays out.
    check(db, p.id, &q("P-00"), &["hh-001", "hh-002"]).await;
    check(db, p.id, &q("Q-100"), &["hh-003"]).await;
    check(db, p.id, &q("-00"), &[]).await;
    // A case ID exactly, not its start.
    check(db, p.id, &q("hh-003"), &["hh-003"]).await;
    check(db, p.id, &q("hh-00"), &[]).await;
    check(db, p.id, &q("hh-005"), &[]).await;
    // A phone number, international or national in the project's country.
    check(db, p.id, &q("+256772000003"), &["hh-003"]).await;
    check(db, p.id, &q("0772 000 003"), &["hh-003"]).await;
    check(db, p.id, &q("+256772000005"), &[]).await;
    // With another filter.
    let closed_kello = CaseFilter {
        closed: Some(true),
        case_type: Some("mother".into()),
        ..q("kello")
    };
    check(db, p.id, &closed_kello, &["hh-003"]).await;
}

async fn export_never_holds_deleted_cases(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, _) = fixture(db).await;
    db.delete_case(p.id, "hh-003").await.unwrap();
    let filters = [
        CaseFilter::default(),
        CaseFilter {
            case_type: Some("mother".into()),
            ..Default::default()
        },
        CaseFilter {
            has_phone: Some(true),
            ..Default::default()
        },
        CaseFilter {
            external_id: Some("P-005".into()),
            ..Default::default()
        },
        CaseFilter {
            q: Some("hh-005".into()),
            ..Default::default()
        },
    ];
    let expected: [&[&str]; 5] = [
        &["hh-001", "hh-002", "hh-004"],
        &["hh-001"],
        &["hh-001"],
        &[],
        &[],
    ];
    for (filter, expected) in filters.iter().zip(expected) {
        check(db, p.id, filter, expected).await;
        let (_, xlsx) = export_bytes(db, p.id, filter, ExportFormat::Xlsx).await;
        assert_eq!(case_ids(&read(&xlsx, ExportFormat::Xlsx)), expected);
    }
}

async fn export_columns_are_fixed_then_the_exported_cases_properties(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, _) = fixture(db).await;
    New {
        id: "hh-006",
        name: "Lamwaka Rose",
        case_type: Some("child"),
        language: Some("lg"),
        owner: Some("chw-7"),
        props: &[("age_group", "5-9"), ("age", "7")],
        ..Default::default()
    }
    .create(db, p.id)
    .await;
    let mothers = CaseFilter {
        case_type: Some("mother".into()),
        ..Default::default()
    };
    // Only the mothers' properties: not hh-002's `zone`, not the deleted mother's `secret`,
    // not another project's `other_prop`.
    let columns = db.export_columns(p.id, &mothers).await.unwrap();
    assert_eq!(columns.properties, ["district", "village"]);
    let table = export_table(db, p.id, &mothers).await;
    assert_eq!(table.headers.0, headers(&["district", "village"]));
    let grace = db.get_case(p.id, "hh-001").await.unwrap();
    let mary = db.get_case(p.id, "hh-003").await.unwrap();
    let rfc = casecast_core::time::rfc3339;
    assert_eq!(
        table.rows[0].cells,
        [
            "hh-001",
            "P-001",
            "Aber Grace",
            "+256772000001",
            "mother",
            "",
            "",
            "false",
            rfc(grace.modified_at).as_str(),
            "Gulu",
            "Layibi"
        ]
    );
    // A missing property is an empty cell.
    assert_eq!(
        table.rows[1].cells,
        [
            "hh-003",
            "Q-100",
            "Akello Mary",
            "+256772000003",
            "mother",
            "",
            "",
            "true",
            rfc(mary.modified_at).as_str(),
            "Lira",
            ""
        ]
    );
    for row in &table.rows {
        let at = row.get(8);
        assert!(at.ends_with('Z'), "UTC: {at}");
        let ms = casecast_core::time::parse_rfc3339(at).unwrap();
        assert_eq!(ms, db.get_case(p.id, row.get(0)).await.unwrap().modified_at);
    }
    // The raw file has exactly the header line the table shows, after a byte-order mark.
    let (_, raw) = export_bytes(db, p.id, &mothers, ExportFormat::Csv).await;
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with(
        "\u{feff}case_id,external_id,name,phone_number,case_type,language_code,owner_id,closed,modified_at,district,village\n"
    ), "{text}");

    let children = CaseFilter {
        case_type: Some("child".into()),
        ..Default::default()
    };
    let table = export_table(db, p.id, &children).await;
    assert_eq!(table.headers.0, headers(&["age", "age_group", "zone"]));
    assert_eq!(
        table.rows[1].cells[..9],
        [
            "hh-006",
            "",
            "Lamwaka Rose",
            "",
            "child",
            "lg",
            "chw-7",
            "false",
            rfc(db.get_case(p.id, "hh-006").await.unwrap().modified_at).as_str()
        ]
    );
    assert_eq!(table.rows[0].cells[9..], ["", "", "North"]);
    assert_eq!(table.rows[1].cells[9..], ["7", "5-9", ""]);

    // No property at all: the fixed columns only.
    let bare = CaseFilter {
        case_type: Some("case".into()),
        ..Default::default()
    };
    assert!(db
        .export_columns(p.id, &bare)
        .await
        .unwrap()
        .properties
        .is_empty());
    let table = export_table(db, p.id, &bare).await;
    assert_eq!(table.headers.0, headers(&[]));
    assert_eq!(case_ids(&table), ["hh-004"]);
    // Nothing passes: still the header.
    let none = CaseFilter {
        case_type: Some("nurse".into()),
        ..Default::default()
    };
    let table = export_table(db, p.id, &none).await;
    assert_eq!(table.headers.0, headers(&[]));
    assert!(table.rows.is_empty());

    // The whole project, in CSV and .xlsx alike.
    let all = ["age", "age_group", "district", "village", "zone"];
    for format in [ExportFormat::Csv, ExportFormat::Xlsx] {
        let (rows, bytes) = export_bytes(db, p.id, &CaseFilter::default(), format).await;
        assert_eq!(rows, 5);
        let table = read(&bytes, format);
        assert_eq!(table.headers.0, headers(&all), "{format:?}");
        assert_eq!(
            case_ids(&table),
            ["hh-001", "hh-002", "hh-003", "hh-004", "hh-006"]
        );
    }
}

/// The property columns of an export of every case, checked against the file's header.
async fn property_columns(db: &Db, project_id: i64) -> Vec<String> {
    let all = CaseFilter::default();
    let listed = db
        .export_columns(project_id, &all)
        .await
        .unwrap()
        .properties;
    let table = export_table(db, project_id, &all).await;
    assert_eq!(table.headers.0[..9], headers(&[])[..]);
    assert_eq!(table.headers.0[9..], listed[..], "the file has the columns");
    listed
}

async fn export_columns_follow_property_changes(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, _) = fixture(db).await;
    let all = CaseFilter::default();
    assert_eq!(
        property_columns(db, p.id).await,
        ["district", "village", "zone"]
    );
    let set = |props: &[(&str, Option<&str>)]| CaseChanges {
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect(),
        ..Default::default()
    };
    // The only case with `zone` loses it.
    db.update_case(p.id, "hh-002", &set(&[("zone", None)]))
        .await
        .unwrap();
    assert_eq!(property_columns(db, p.id).await, ["district", "village"]);
    // A new property on a case without any.
    db.update_case(p.id, "hh-004", &set(&[("age", Some("31"))]))
        .await
        .unwrap();
    assert_eq!(
        property_columns(db, p.id).await,
        ["age", "district", "village"]
    );
    // `village` removed, `ward` added, in one change.
    db.update_case(
        p.id,
        "hh-001",
        &set(&[("village", None), ("ward", Some("Bar-dege"))]),
    )
    .await
    .unwrap();
    assert_eq!(
        property_columns(db, p.id).await,
        ["age", "district", "ward"]
    );
    let table = export_table(db, p.id, &all).await;
    let ward = table.headers.find("ward").unwrap();
    let age = table.headers.find("age").unwrap();
    assert_eq!(table.rows[0].get(ward), "Bar-dege");
    assert_eq!(table.rows[3].get(age), "31");
    // Imports keep the names current too: an update and a new case.
    let sheet = "case_id,external_id,name,parity,ward\n\
                 hh-003,,,2,\n\
                 ,N-1,New Person,,Pece\n";
    let report = import(db, &p, sheet.as_bytes(), "more.csv").await.unwrap();
    assert_eq!((report.created, report.updated), (1, 1), "{report:?}");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        property_columns(db, p.id).await,
        ["age", "district", "parity", "ward"]
    );
    // Every property removed: the fixed columns only.
    for (id, props) in [
        ("hh-001", vec!["district", "ward"]),
        ("hh-003", vec!["district", "parity"]),
        ("hh-004", vec!["age"]),
    ] {
        let gone: Vec<(&str, Option<&str>)> = props.iter().map(|k| (*k, None)).collect();
        db.update_case(p.id, id, &set(&gone)).await.unwrap();
    }
    let new_id = db
        .list_cases(
            p.id,
            &CaseFilter {
                external_id: Some("N-1".into()),
                ..Default::default()
            },
            1,
            None,
        )
        .await
        .unwrap()
        .items[0]
        .case_id
        .clone();
    db.update_case(p.id, new_id.as_str(), &set(&[("ward", None)]))
        .await
        .unwrap();
    assert!(property_columns(db, p.id).await.is_empty());
}

/// Cases with values that spreadsheets and sheet readers like to change: leading zeros,
/// formula starts, apostrophes, non-ASCII, commas, quotes, newlines; with and without phone
/// numbers and external IDs; a closed one; language codes and owners; and a deleted case.
/// Values that start with apostrophes and then a formula start (`'=x`) keep their own
/// apostrophes in CSV and `.xlsx` alike.
async fn tricky_cases(db: &Db, project_id: i64) {
    let first_props: &[(&str, &str)] = &[
        ("formula", "@SUM(A1)"),
        ("minus", "-5"),
        ("plus", "+1 more"),
        ("quoted", "'=x"),
        ("twice", "''-1"),
        ("plain_apostrophe", "'plain"),
        ("multi", "line one\nline two, \"quoted\""),
    ];
    let cases = [
        New {
            name: "=HYPERLINK(\"http://evil.example\",\"x\")",
            external_id: Some("007"),
            phone: Some("+256772123456"),
            case_type: Some("mother"),
            language: Some("lg"),
            owner: Some("chw-7"),
            props: first_props,
            ..Default::default()
        },
        New {
            id: "007",
            name: "Zoë Nakato, \"Jr\"",
            case_type: Some("child"),
            closed: true,
            language: Some("en-GB"),
            props: &[("district", "Gulu"), ("note", "日本語, ok; ümlaut")],
            ..Default::default()
        },
        New {
            id: "-7",
            name: "-minus",
            external_id: Some("0012"),
            phone: Some("+256782345678"),
            owner: Some("=owner"),
            props: &[("district", "+Lira"), ("note", "comma, \"quote\"")],
            ..Default::default()
        },
        New {
            id: "hh-4",
            name: "'=x",
            external_id: Some("+E1"),
            ..Default::default()
        },
        New {
            id: "hh-5",
            name: "@home",
            external_id: Some("@ext"),
            closed: true,
            props: &[("formula", "=1+1")],
            ..Default::default()
        },
        New {
            id: "hh-6",
            name: "=deleted",
            external_id: Some("D-1"),
            props: &[("only_deleted", "x")],
            ..Default::default()
        },
    ];
    for c in &cases {
        c.create(db, project_id).await;
    }
    db.delete_case(project_id, "hh-6").await.unwrap();
}

/// Every case of the project, deleted ones included, in creation order.
async fn everything(db: &Db, project_id: i64) -> Vec<Case> {
    let all = CaseFilter {
        include_deleted: true,
        ..Default::default()
    };
    all_cases(db, project_id, &all, 100).await
}

/// Exports the tricky cases, imports the file back (nothing changes), and exports again.
/// Returns the first and second file.
async fn round_trip(engine: Dialect, format: ExportFormat) -> (Vec<u8>, Vec<u8>) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    tricky_cases(db, p.id).await;
    let before = everything(db, p.id).await;
    assert_eq!(before.len(), 6);
    let (rows, first) = export_bytes(db, p.id, &CaseFilter::default(), format).await;
    assert_eq!(rows, 5, "the deleted case is not exported");
    let table = read(&first, format);
    assert!(
        table.headers.find("only_deleted").is_none(),
        "{:?}",
        table.headers
    );
    // The file reads back as exactly what is stored.
    let live: Vec<&Case> = before.iter().filter(|c| !c.deleted).collect();
    for (row, case) in table.rows.iter().zip(&live) {
        let cell = |name: &str| row.get(table.headers.find(name).unwrap()).to_string();
        assert_eq!(cell("case_id"), case.case_id.as_str());
        assert_eq!(cell("name"), case.name);
        assert_eq!(
            cell("external_id"),
            case.external_id.clone().unwrap_or_default()
        );
        assert_eq!(
            cell("phone_number"),
            case.phone_number
                .as_ref()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default()
        );
        assert_eq!(cell("closed"), case.closed.to_string());
        for (k, v) in &case.properties {
            assert_eq!(&cell(k), v, "{format:?}: property {k} of {}", case.case_id);
        }
    }

    let file_name = format!("export.{}", format.as_str());
    let report = import(db, &p, &first, &file_name).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        (
            report.rows,
            report.created,
            report.updated,
            report.unchanged,
            report.blank
        ),
        (5, 0, 0, 5, 0),
        "{format:?}: every row is unchanged"
    );
    let after = everything(db, p.id).await;
    assert_eq!(after, before, "{format:?}: the cases are exactly as before");
    let (_, second) = export_bytes(db, p.id, &CaseFilter::default(), format).await;
    (first, second)
}

async fn csv_export_imports_back_unchanged_and_exports_the_same_bytes(engine: Dialect) {
    let (first, second) = round_trip(engine, ExportFormat::Csv).await;
    assert_eq!(
        String::from_utf8(second).unwrap(),
        String::from_utf8(first).unwrap(),
        "a second export is byte-identical"
    );
}

async fn xlsx_export_imports_back_unchanged_and_exports_the_same_rows(engine: Dialect) {
    let (first, second) = round_trip(engine, ExportFormat::Xlsx).await;
    // A workbook records when it was made, so its bytes may differ; its cells may not.
    assert_eq!(
        read(&second, ExportFormat::Xlsx),
        read(&first, ExportFormat::Xlsx)
    );
}

/// The CSV cells as written, without undoing any formula guard.
fn raw_csv(bytes: &[u8]) -> Vec<Vec<String>> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

async fn csv_export_guards_formula_cells_and_xlsx_keeps_plain_strings(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    tricky_cases(db, p.id).await;
    let all = CaseFilter::default();
    let (_, csv) = export_bytes(db, p.id, &all, ExportFormat::Csv).await;
    let raw = raw_csv(&csv);
    assert_eq!(raw.len(), 6, "a header and five rows");
    for record in &raw {
        assert_eq!(record.len(), raw[0].len(), "{record:?}");
        for cell in record {
            assert!(
                !cell.starts_with(FORMULA_STARTS),
                "a cell a spreadsheet would run: {cell:?}"
            );
        }
    }
    let header = &raw[0];
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let first = &raw[1];
    assert_eq!(first[col("phone_number")], "'+256772123456");
    assert_eq!(
        first[col("name")],
        "'=HYPERLINK(\"http://evil.example\",\"x\")"
    );
    assert_eq!(first[col("external_id")], "007", "leading zeros kept");
    assert_eq!(first[col("formula")], "'@SUM(A1)");
    assert_eq!(first[col("minus")], "'-5");
    assert_eq!(first[col("plus")], "'+1 more");
    assert_eq!(first[col("quoted")], "''=x");
    assert_eq!(first[col("twice")], "'''-1");
    assert_eq!(first[col("plain_apostrophe")], "'plain", "not a formula");
    assert_eq!(first[col("multi")], "line one\nline two, \"quoted\"");
    assert_eq!(raw[2][col("case_id")], "007");
    assert_eq!(raw[2][col("name")], "Zoë Nakato, \"Jr\"");
    assert_eq!(raw[3][col("case_id")], "'-7");
    assert_eq!(raw[3][col("owner_id")], "'=owner");
    assert_eq!(raw[3][col("phone_number")], "'+256782345678");
    assert_eq!(raw[4][col("name")], "''=x");
    assert_eq!(raw[4][col("external_id")], "'+E1");
    assert_eq!(raw[5][col("name")], "'@home");
    // Read back, every guard is gone.
    let table = read(&csv, ExportFormat::Csv);
    assert_eq!(table.rows[0].get(col("phone_number")), "+256772123456");
    assert_eq!(table.rows[0].get(col("quoted")), "'=x");
    assert_eq!(table.rows[2].get(col("case_id")), "-7");
    assert_eq!(table.rows[3].get(col("name")), "'=x");

    // .xlsx: the same values, unguarded, as string cells, and no formula anywhere.
    let (_, xlsx) = export_bytes(db, p.id, &all, ExportFormat::Xlsx).await;
    let table = read(&xlsx, ExportFormat::Xlsx);
    assert_eq!(
        table.headers.0,
        header.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(table.rows[0].get(col("phone_number")), "+256772123456");
    assert_eq!(table.rows[0].get(col("external_id")), "007");
    assert_eq!(table.rows[0].get(col("minus")), "-5");
    assert_eq!(table.rows[1].get(col("case_id")), "007");
    assert_eq!(table.rows[2].get(col("case_id")), "-7");
    let sheet = sheet_xml(&xlsx);
    assert!(
        !sheet.contains("<f>") && !sheet.contains("<f "),
        "a formula"
    );
    let cells: Vec<&str> = sheet.split("<c ").skip(1).collect();
    assert!(cells.len() > 5 * 9, "{} cells", cells.len());
    for cell in &cells {
        let attributes = &cell[..cell.find('>').unwrap()];
        assert!(
            attributes.contains("t=\"s\"") || attributes.contains("t=\"inlineStr\""),
            "not a string cell: <c {attributes}>"
        );
    }
    assert!(
        sheet.contains(">+256772123456<") || shared_strings(&xlsx).contains(">+256772123456<"),
        "the phone number is stored as it is"
    );
    assert!(!sheet.contains("'+256772123456") && !shared_strings(&xlsx).contains("'+256"));
}

/// The text of a member of an `.xlsx` (empty when missing).
fn xlsx_part(xlsx: &[u8], name: &str) -> String {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(xlsx)).unwrap();
    let Ok(mut part) = zip.by_name(name) else {
        return String::new();
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut part, &mut text).unwrap();
    text
}

fn sheet_xml(xlsx: &[u8]) -> String {
    xlsx_part(xlsx, "xl/worksheets/sheet1.xml")
}

fn shared_strings(xlsx: &[u8]) -> String {
    xlsx_part(xlsx, "xl/sharedStrings.xml")
}

async fn exported_case_ids_uploaded_to_a_group_add_exactly_those_cases(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", Some("UG")).await;
    tricky_cases(db, p.id).await;
    // Cases whose case IDs look like another case's external ID, or a phone number.
    New {
        id: "0012",
        name: "Not the 0012 above",
        case_type: Some("child"),
        ..Default::default()
    }
    .create(db, p.id)
    .await;
    New {
        id: "256772123456",
        name: "A number for an ID",
        case_type: Some("mother"),
        ..Default::default()
    }
    .create(db, p.id)
    .await;
    let filters = [
        CaseFilter {
            case_type: Some("case".into()),
            ..Default::default()
        },
        CaseFilter {
            case_type: Some("mother".into()),
            ..Default::default()
        },
        CaseFilter::default(),
    ];
    for (i, filter) in filters.iter().enumerate() {
        let (_, bytes) = export_bytes(db, p.id, filter, ExportFormat::Csv).await;
        let exported = case_ids(&read(&bytes, ExportFormat::Csv));
        assert!(!exported.is_empty());
        let mut sorted_exported = exported.clone();
        sorted_exported.sort();

        // The case_id column alone, copied from the file as written (guards and all).
        let raw = raw_csv(&bytes);
        let mut column = String::from("case_id\n");
        for record in &raw[1..] {
            let cell = &record[0];
            if cell.contains(['"', ',', '\n']) {
                column.push_str(&format!("\"{}\"\n", cell.replace('"', "\"\"")));
            } else {
                column.push_str(&format!("{cell}\n"));
            }
        }
        let alone = group(db, p.id, &format!("Alone {i}")).await;
        let done = upload_and_process(
            db,
            p.id,
            alone.id,
            Change::Add,
            "ids.csv",
            column.into_bytes(),
            None,
        )
        .await;
        assert_eq!(done.status, "done", "{:?}", done.error);
        let results = all_results(db, p.id, done.id, 100).await;
        assert!(
            results.iter().all(|r| r.outcome.as_str() == "added"),
            "{results:?}"
        );
        let mut members = member_ids(db, p.id, alone.id).await;
        members.sort();
        assert_eq!(members, sorted_exported, "{filter:?}");

        // The whole export file, CSV and .xlsx.
        for format in [ExportFormat::Csv, ExportFormat::Xlsx] {
            let (_, file) = export_bytes(db, p.id, filter, format).await;
            let whole = group(db, p.id, &format!("Whole {i} {}", format.as_str())).await;
            let done = upload_and_process(
                db,
                p.id,
                whole.id,
                Change::Add,
                &format!("export.{}", format.as_str()),
                file,
                None,
            )
            .await;
            assert_eq!(done.status, "done", "{:?}", done.error);
            let results = all_results(db, p.id, done.id, 100).await;
            assert!(
                results.iter().all(|r| r.outcome.as_str() == "added"),
                "{format:?}: {results:?}"
            );
            let mut members = member_ids(db, p.id, whole.id).await;
            members.sort();
            assert_eq!(members, sorted_exported, "{format:?} {filter:?}");
        }
    }
}

/// Runs the worker until every listed export has ended (bounded only so that a hang fails).
async fn run_exports(db: &Db, project_id: i64, ids: &[i64]) -> Vec<Export> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(casecast_engine::worker::run_worker(
        db.clone(),
        casecast_engine::worker::WorkerContext::new("exporter"),
        stop_rx,
    ));
    let mut ended = Vec::new();
    for _ in 0..1200 {
        ended.clear();
        for id in ids {
            let e = db.get_export(project_id, *id).await.unwrap();
            if e.status == "done" || e.status == "failed" {
                ended.push(e);
            }
        }
        if ended.len() == ids.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop_tx.send(true).unwrap();
    worker.await.unwrap();
    assert_eq!(
        ended.len(),
        ids.len(),
        "the worker did not finish the exports"
    );
    ended
}

/// A finished export's file: its chunks in order.
async fn chunks(db: &Db, export_id: i64) -> Vec<u8> {
    let mut file = Vec::new();
    let mut seq = 0;
    while let Some(chunk) = db.export_chunk(export_id, seq).await.unwrap() {
        assert!(!chunk.is_empty(), "an empty chunk");
        file.extend(chunk);
        seq += 1;
    }
    assert!(seq > 0, "no chunk");
    file
}

async fn background_exports_make_the_same_file_as_a_direct_export(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, _) = fixture(db).await;
    tricky_cases(db, p.id).await;
    let everything = CaseFilter::default();
    // `q` as a national number: the stored filter has no country (the job reads the project's).
    let by_phone = CaseFilter {
        q: Some("0772 000 003".into()),
        country: p.country_code(),
        ..Default::default()
    };
    let mothers = CaseFilter {
        case_type: Some("mother".into()),
        closed: Some(false),
        ..Default::default()
    };
    let jobs = [
        (&everything, ExportFormat::Xlsx, 9),
        (&everything, ExportFormat::Csv, 9),
        (&by_phone, ExportFormat::Csv, 1),
    ];
    let mut created = Vec::new();
    for (filter, format, rows) in jobs {
        let e = db.create_export(&p, None, filter, format).await.unwrap();
        assert_eq!(e.status, "queued");
        assert_eq!(e.total_rows, rows);
        assert_eq!(e.processed_rows, 0);
        assert_eq!(e.format, format.as_str());
        assert!(
            e.file_name.starts_with("cases-demo-")
                && e.file_name.ends_with(&format!(".{}", format.as_str())),
            "{}",
            e.file_name
        );
        assert_eq!(db.export_chunk(e.id, 0).await.unwrap(), None, "no file yet");
        created.push(e.id);
    }
    let ended = run_exports(db, p.id, &created).await;
    for (e, (filter, format, rows)) in ended.iter().zip(jobs) {
        assert_eq!(e.status, "done", "{:?}", e.error);
        assert_eq!((e.processed_rows, e.total_rows), (rows, rows));
        assert!(e.finished_at.is_some());
        assert_eq!(e.error, None);
        let file = chunks(db, e.id).await;
        assert_eq!(e.size_bytes, file.len() as i64);
        let (direct_rows, direct) = export_bytes(db, p.id, filter, format).await;
        assert_eq!(direct_rows, rows as u64);
        let table = read(&file, format);
        assert_eq!(table.rows.len(), rows as usize);
        assert_eq!(table, read(&direct, format), "{format:?}");
        if format == ExportFormat::Csv {
            assert_eq!(file, direct, "the same bytes");
        }
    }
    assert_eq!(
        case_ids(&read(&chunks(db, ended[2].id).await, ExportFormat::Csv)),
        ["hh-003"]
    );
    // Another export after those, with a filter of two.
    let e = db
        .create_export(&p, None, &mothers, ExportFormat::Xlsx)
        .await
        .unwrap();
    let ended = run_exports(db, p.id, &[e.id]).await;
    assert_eq!(ended[0].status, "done", "{:?}", ended[0].error);
    assert_eq!((ended[0].processed_rows, ended[0].total_rows), (2, 2));
    let table = read(&chunks(db, e.id).await, ExportFormat::Xlsx);
    assert_eq!(case_ids(&table), ["hh-001", table.rows[1].get(0)]);
    let second = db.get_case(p.id, table.rows[1].get(0)).await.unwrap();
    assert_eq!(second.name, "=HYPERLINK(\"http://evil.example\",\"x\")");
}

async fn background_export_of_another_project_is_not_found(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, other) = fixture(db).await;
    let e = db
        .create_export(&p, None, &CaseFilter::default(), ExportFormat::Csv)
        .await
        .unwrap();
    assert!(matches!(
        db.get_export(other.id, e.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.get_export(p.id, e.id + 1000).await,
        Err(StoreError::NotFound(_))
    ));
    let ended = run_exports(db, p.id, &[e.id]).await;
    assert_eq!(ended[0].status, "done");
    assert!(matches!(
        db.get_export(other.id, e.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(db.get_export(p.id, e.id).await.unwrap().total_rows, 4);
    // The other project's own export holds only its case.
    let theirs = db
        .create_export(&other, None, &CaseFilter::default(), ExportFormat::Csv)
        .await
        .unwrap();
    let ended = run_exports(db, other.id, &[theirs.id]).await;
    assert_eq!(ended[0].status, "done");
    let table = read(&chunks(db, theirs.id).await, ExportFormat::Csv);
    assert_eq!(case_ids(&table), ["hh-001"]);
    assert_eq!(
        table.rows[0].get(table.headers.find("other_prop").unwrap()),
        "y"
    );
}

async fn a_fourth_pending_export_of_a_project_is_refused(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let (p, other) = fixture(db).await;
    let all = CaseFilter::default();
    let mut queued = Vec::new();
    for format in [ExportFormat::Csv, ExportFormat::Xlsx, ExportFormat::Csv] {
        queued.push(db.create_export(&p, None, &all, format).await.unwrap().id);
    }
    for format in [ExportFormat::Csv, ExportFormat::Xlsx] {
        match db.create_export(&p, None, &all, format).await {
            Err(StoreError::Conflict { code, .. }) => assert_eq!(code, "too_many_exports"),
            other => panic!("expected too_many_exports, got {other:?}"),
        }
    }
    // Per project: another project may still export.
    let theirs = db
        .create_export(&other, None, &all, ExportFormat::Csv)
        .await
        .unwrap();
    // Once they are done, the project may export again.
    let ended = run_exports(db, p.id, &queued).await;
    assert!(ended.iter().all(|e| e.status == "done"));
    let again = db
        .create_export(&p, None, &all, ExportFormat::Csv)
        .await
        .unwrap();
    assert_eq!(again.status, "queued");
    run_exports(db, other.id, &[theirs.id]).await;
    run_exports(db, p.id, &[again.id]).await;
}

/// Two cases with 150 properties of their own each: 300 property columns, more than the 200
/// one case may have, import back unchanged (the limit is per case, not per sheet); a row that
/// gives a new case 201 properties is refused with its row and field.
async fn an_export_with_more_property_columns_than_a_case_may_have_imports_back(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "demo", None).await;
    for (id, prefix) in [("a-1", "a"), ("b-1", "b")] {
        let props: Vec<(String, String)> = (0..150)
            .map(|i| (format!("{prefix}{i:03}"), format!("v{i}")))
            .collect();
        let props: Vec<(&str, &str)> = props
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        New {
            id,
            name: id,
            props: &props,
            ..Default::default()
        }
        .create(db, p.id)
        .await;
    }
    let before = everything(db, p.id).await;
    let (_, bytes) = export_bytes(db, p.id, &CaseFilter::default(), ExportFormat::Csv).await;
    assert_eq!(
        read(&bytes, ExportFormat::Csv).headers.0.len(),
        FIXED_COLUMNS.len() + 300
    );
    let report = import(db, &p, &bytes, "export.csv").await.unwrap();
    assert_eq!(
        (report.created, report.updated, report.unchanged),
        (0, 0, 2),
        "{report:?}"
    );
    assert_eq!(everything(db, p.id).await, before);

    let header: Vec<String> = std::iter::once("external_id,name".to_string())
        .chain((0..201).map(|i| format!("p{i}")))
        .collect();
    let row: Vec<String> = std::iter::once("X-1,Too many".to_string())
        .chain((0..201).map(|i| format!("v{i}")))
        .collect();
    let sheet = format!("{}\n{}\n", header.join(","), row.join(","));
    let report = import(db, &p, sheet.as_bytes(), "wide.csv").await.unwrap();
    assert_eq!(report.created, 0);
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert_eq!(
        (report.errors[0].row, report.errors[0].column.as_str()),
        (2, "properties")
    );
}
