//! `/cases/export.csv` and `/cases/export.xlsx`: the filters they share with `GET /cases`, what
//! the files hold, CSV injection, bad filters, other projects' groups and who may export.

use casecast_core::sheet::Table;
use casecast_core::sheet_out::FORMULA_STARTS;
use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::case_groups::{alpha_case, change, download, new_case, new_group, sheet};
use crate::{call, code};

casecast_testkit::on_both_engines!(
    filters_select_the_same_cases_in_list_and_export,
    modified_since_in_list_and_export,
    xlsx_export_has_the_rows_of_the_csv_export,
    csv_export_is_guarded_against_formulas,
    bad_filters_are_422_naming_the_parameter,
    groups_of_other_projects_are_404,
    who_may_export,
    exports_hold_one_project_only,
    exports_hold_live_cases_only,
    downloads_are_named_files,
    xlsx_keeps_leading_apostrophes
);

const CSV: &str = "text/csv";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The columns every export starts with.
const FIXED: [&str; 9] = [
    "case_id",
    "external_id",
    "name",
    "phone_number",
    "case_type",
    "language_code",
    "owner_id",
    "closed",
    "modified_at",
];

/// Alpha's cases (and one of beta), by case ID.
struct Seeded {
    aber: String,
    okello: String,
    auma: String,
    nakato: String,
    gone: String,
    /// Alpha's group "Study": Aber, Auma, Nakato (and Gone, deleted).
    group: i64,
    /// Beta's case with Aber's external ID and phone number.
    beta_aber: String,
    /// Beta's group, holding `beta_aber`.
    beta_group: i64,
}

/// Aber (patient, phone) and Okello (patient, phone, closed) of Gulu; Auma (contact, no phone)
/// and Nakato (contact, phone, closed) of Kampala; Gone, deleted. In beta, a case with Aber's
/// external ID and phone number.
async fn seed(app: &TestApp) -> Seeded {
    let aber = alpha_case(
        app,
        json!({"name": "Aber Grace", "external_id": "GUL-001", "phone_number": "0772 100001",
               "case_type": "patient", "language_code": "ach", "owner_id": "cm-1",
               "properties": {"district": "Gulu"}}),
    )
    .await;
    let okello = alpha_case(
        app,
        json!({"name": "Okello Moses", "external_id": "GUL-002", "phone_number": "0772 100002",
               "case_type": "patient", "properties": {"district": "Gulu", "visits": 2}}),
    )
    .await;
    let auma = alpha_case(
        app,
        json!({"name": "Auma Joan", "external_id": "KLA-003", "case_type": "contact",
               "properties": {"hiv_status": "negative"}}),
    )
    .await;
    let nakato = alpha_case(
        app,
        json!({"name": "Nakato Sarah", "external_id": "KLA-004", "phone_number": "0772 100004",
               "case_type": "contact"}),
    )
    .await;
    let gone = alpha_case(
        app,
        json!({"name": "Gone Person", "external_id": "GUL-005", "phone_number": "0772 100005",
               "case_type": "patient", "properties": {"only_gone": "x"}}),
    )
    .await;
    let group = new_group(app, "Study").await;
    change(app, group, false, &[&aber, &auma, &nakato, &gone]).await;
    let admin = Some(app.alpha_admin.token.as_str());
    for closed in [&okello, &nakato] {
        let (status, body) = call(
            app,
            Method::POST,
            &app.api("alpha", &format!("/cases/{closed}/close")),
            admin,
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = call(
        app,
        Method::DELETE,
        &app.api("alpha", &format!("/cases/{gone}")),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 204);

    let beta_aber = new_case(
        app,
        "beta",
        &app.beta_admin.token,
        json!({"name": "Aber Beta", "external_id": "GUL-001", "phone_number": "+256772100001",
               "case_type": "patient", "properties": {"beta_only": "secret"}}),
    )
    .await;
    let (status, g) = call(
        app,
        Method::POST,
        &app.api("beta", "/case-groups"),
        Some(&app.beta_admin.token),
        Some(json!({"name": "Beta study"})),
    )
    .await;
    assert_eq!(status, 201, "{g}");
    let beta_group = g["id"].as_i64().unwrap();
    let (status, added) = call(
        app,
        Method::POST,
        &app.api("beta", &format!("/case-groups/{beta_group}/cases")),
        Some(&app.beta_admin.token),
        Some(json!({"identifiers": [beta_aber]})),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    Seeded {
        aber,
        okello,
        auma,
        nakato,
        gone,
        group,
        beta_aber,
        beta_group,
    }
}

/// The cases `GET /cases?{query}` lists, following cursors two at a time.
async fn listed(app: &TestApp, project: &str, token: &str, query: &str) -> Vec<Value> {
    let mut cases = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = call(
            app,
            Method::GET,
            &app.api(project, &format!("/cases?{query}&limit=2&cursor={cursor}")),
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{query}: {page}");
        cases.extend(page["cases"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => return cases,
        }
    }
}

/// The case IDs of listed cases.
fn ids_of(cases: &[Value]) -> Vec<String> {
    cases
        .iter()
        .map(|c| c["case_id"].as_str().unwrap().to_string())
        .collect()
}

/// An export of `project` with these filters, read back.
async fn exported(app: &TestApp, project: &str, token: &str, query: &str, xlsx: bool) -> Table {
    let (path, content_type, name) = if xlsx {
        ("/cases/export.xlsx", XLSX, "cases.xlsx")
    } else {
        ("/cases/export.csv", CSV, "cases.csv")
    };
    let bytes = download(
        app,
        &app.api(project, &format!("{path}?{query}")),
        token,
        content_type,
    )
    .await;
    sheet(&bytes, name)
}

/// Every row of a table as `width` cells (a shorter row is padded with empty cells).
fn cells(table: &Table) -> Vec<Vec<String>> {
    let width = table.headers.0.len();
    table
        .rows
        .iter()
        .map(|r| (0..width).map(|c| r.get(c).to_string()).collect())
        .collect()
}

/// The export row of a case as the API shows it, under these headers.
fn expected_row(case: &Value, headers: &[String]) -> Vec<String> {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    headers
        .iter()
        .map(|h| match h.as_str() {
            "closed" => case["closed"].as_bool().unwrap().to_string(),
            field if FIXED.contains(&field) => text(&case[field]),
            property => text(&case["properties"][property]),
        })
        .collect()
}

/// The headers an export of these cases has: the fixed ones, then their properties, sorted.
fn expected_headers(cases: &[Value]) -> Vec<String> {
    let mut properties = std::collections::BTreeSet::new();
    for c in cases {
        properties.extend(c["properties"].as_object().unwrap().keys().cloned());
    }
    FIXED
        .iter()
        .map(|h| h.to_string())
        .chain(properties)
        .collect()
}

/// Lists and exports (CSV) with the same filters; asserts both hold the same cases, in the
/// same order, with every column as the API shows it; returns the case IDs.
async fn list_and_export(app: &TestApp, query: &str) -> Vec<String> {
    let token = &app.alpha_viewer.token;
    let cases = listed(app, "alpha", token, query).await;
    let table = exported(app, "alpha", token, query, false).await;
    let exported_ids: Vec<String> = table.rows.iter().map(|r| r.get(0).to_string()).collect();
    assert_eq!(
        exported_ids,
        ids_of(&cases),
        "{query}: the export holds what the list shows"
    );
    assert_eq!(
        table.headers.0,
        expected_headers(&cases),
        "{query}: the fixed columns, then the properties of the exported cases"
    );
    let rows: Vec<Vec<String>> = cases
        .iter()
        .map(|c| expected_row(c, &table.headers.0))
        .collect();
    assert_eq!(cells(&table), rows, "{query}");
    ids_of(&cases)
}

async fn filters_select_the_same_cases_in_list_and_export(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = seed(&app).await;
    let (aber, okello, auma, nakato) = (&s.aber, &s.okello, &s.auma, &s.nakato);
    let g = s.group;
    let every = vec![aber, okello, auma, nakato];
    let checks: Vec<(String, Vec<&String>)> = vec![
        (String::new(), every.clone()),
        ("q=GUL".into(), vec![aber, okello]),
        ("q=aber".into(), vec![aber]),
        ("q=0772%20100002".into(), vec![okello]),
        ("q=%2B256772100004".into(), vec![nakato]),
        (format!("q={auma}"), vec![auma]),
        ("q=nobody".into(), vec![]),
        ("case_type=patient".into(), vec![aber, okello]),
        ("case_type=contact".into(), vec![auma, nakato]),
        ("case_type=other".into(), vec![]),
        ("closed=true".into(), vec![okello, nakato]),
        ("closed=false".into(), vec![aber, auma]),
        ("closed=TRUE".into(), vec![okello, nakato]),
        (format!("group_id={g}"), vec![aber, auma, nakato]),
        ("has_phone=true".into(), vec![aber, okello, nakato]),
        ("has_phone=false".into(), vec![auma]),
        ("external_id=KLA-003".into(), vec![auma]),
        ("external_id=KLA".into(), vec![]),
        ("phone_number=%2B256772100004".into(), vec![nakato]),
        ("phone_number=0772%20100%20004".into(), vec![nakato]),
        ("modified_since=2000-01-01".into(), every.clone()),
        ("modified_since=2000-01-01T00:00:00Z".into(), every.clone()),
        ("modified_since=2999-01-01".into(), vec![]),
        ("include_deleted=false".into(), every.clone()),
        // Several filters narrow together.
        (format!("group_id={g}&closed=true"), vec![nakato]),
        (format!("group_id={g}&has_phone=false"), vec![auma]),
        (format!("group_id={g}&case_type=patient"), vec![aber]),
        ("case_type=contact&has_phone=true".into(), vec![nakato]),
        ("q=GUL&closed=false".into(), vec![aber]),
        (
            "case_type=patient&closed=true&has_phone=true".into(),
            vec![okello],
        ),
        // Blank values filter nothing.
        (
            "q=%20&case_type=&closed=&group_id=&has_phone=".into(),
            every.clone(),
        ),
        // Case queries (issue 16), alone and with the other filters.
        (query(&[("query", "district = gulu")]), vec![aber, okello]),
        (query(&[("query", "district != Gulu")]), vec![auma, nakato]),
        (query(&[("query", "visits >= 2")]), vec![okello]),
        (
            query(&[("query", "hiv_status = negative OR name ~ sarah")]),
            vec![auma, nakato],
        ),
        (
            query(&[("query", &format!("group = {g} AND closed = false"))]),
            vec![aber, auma],
        ),
        (
            query(&[("query", "group = study")]),
            vec![aber, auma, nakato],
        ),
        (
            query(&[("query", "case_type = patient"), ("closed", "false")]),
            vec![aber],
        ),
        (query(&[("query", "only_gone = x")]), vec![]),
        (query(&[("query", "  ")]), every.clone()),
    ];
    for (query, want) in checks {
        let got = list_and_export(&app, &query).await;
        let want: Vec<String> = want.into_iter().cloned().collect();
        assert_eq!(got, want, "{query}");
    }
    // The list can show deleted cases; an export never does (see exports_hold_live_cases_only).
    let with_deleted = listed(
        &app,
        "alpha",
        &app.alpha_viewer.token,
        "include_deleted=true",
    )
    .await;
    assert_eq!(
        ids_of(&with_deleted),
        [aber, okello, auma, nakato, &s.gone].map(|c| c.to_string())
    );
}

/// A query string of these pairs (percent-encoded).
fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

async fn modified_since_in_list_and_export(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = seed(&app).await;
    let all = listed(&app, "alpha", &app.alpha_viewer.token, "").await;
    let latest = all
        .iter()
        .map(|c| casecast_core::time::parse_rfc3339(c["modified_at"].as_str().unwrap()).unwrap())
        .max()
        .unwrap();
    // Let the clock pass every case's last change, then change two cases.
    while casecast_core::time::now_ms() <= latest {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let mut changed_at = Vec::new();
    for case in [&s.auma, &s.aber] {
        let (status, c) = call(
            &app,
            Method::PATCH,
            &app.api("alpha", &format!("/cases/{case}")),
            Some(&app.alpha_editor.token),
            Some(json!({"owner_id": "cm-9"})),
        )
        .await;
        assert_eq!(status, 200, "{c}");
        changed_at
            .push(casecast_core::time::parse_rfc3339(c["modified_at"].as_str().unwrap()).unwrap());
    }
    let since = changed_at[0];
    assert!(since > latest);
    let since_utc = casecast_core::time::rfc3339(since);
    // The same instant in the project's zone (Kampala, +03:00).
    let zone = app.alpha.zone();
    let since_local = jiff::Timestamp::from_millisecond(since)
        .unwrap()
        .to_zoned(zone.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string();
    assert!(since_local.ends_with("+03:00"), "{since_local}");
    for q in [
        query(&[("modified_since", &since_utc)]),
        query(&[("modified_since", &since_local)]),
    ] {
        assert_eq!(
            list_and_export(&app, &q).await,
            [s.aber.clone(), s.auma.clone()],
            "{q}: only the cases changed at or after the instant"
        );
    }
    let just_after = casecast_core::time::rfc3339(changed_at[1] + 1);
    assert!(
        list_and_export(&app, &query(&[("modified_since", &just_after)]))
            .await
            .is_empty(),
        "nothing changed after the last change"
    );

    // A date is midnight in the project's zone: every case changed since then is in.
    let all = listed(&app, "alpha", &app.alpha_viewer.token, "").await;
    let first_day = all
        .iter()
        .map(|c| {
            jiff::Timestamp::from_millisecond(
                casecast_core::time::parse_rfc3339(c["modified_at"].as_str().unwrap()).unwrap(),
            )
            .unwrap()
            .to_zoned(zone.clone())
            .date()
        })
        .min()
        .unwrap();
    for day in [first_day, first_day.tomorrow().unwrap()] {
        let midnight = day
            .to_zoned(zone.clone())
            .unwrap()
            .timestamp()
            .as_millisecond();
        let want: Vec<String> = all
            .iter()
            .filter(|c| {
                casecast_core::time::parse_rfc3339(c["modified_at"].as_str().unwrap()).unwrap()
                    >= midnight
            })
            .map(|c| c["case_id"].as_str().unwrap().to_string())
            .collect();
        let q = query(&[("modified_since", &day.to_string())]);
        assert_eq!(list_and_export(&app, &q).await, want, "{q}");
    }
    assert_eq!(
        list_and_export(&app, &query(&[("modified_since", &first_day.to_string())]))
            .await
            .len(),
        4
    );
}

async fn xlsx_export_has_the_rows_of_the_csv_export(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = seed(&app).await;
    let zeros = alpha_case(
        &app,
        json!({"case_id": "00123", "name": "Zoë Ocen, \"Jr\"", "external_id": "007",
               "phone_number": "+256772100123", "owner_id": "0042",
               "properties": {"code": "000123", "big": "256772100123456789", "ratio": "1.50",
                              "day": "2026-01-02", "formula": "=1+2", "minus": "-5",
                              "quoted": "'=y", "notes": "two\nlines"}}),
    )
    .await;
    let token = &app.alpha_viewer.token;
    for q in [
        String::new(),
        format!("group_id={}", s.group),
        "closed=true".into(),
        "q=007".into(),
        "case_type=none".into(),
    ] {
        let csv = exported(&app, "alpha", token, &q, false).await;
        let xlsx = exported(&app, "alpha", token, &q, true).await;
        assert_eq!(xlsx.headers, csv.headers, "{q}");
        assert_eq!(cells(&xlsx), cells(&csv), "{q}: the same rows");
        if q == "q=007" {
            let headers = &csv.headers;
            let row = cells(&csv).remove(0);
            let cell = |h: &str| row[headers.find(h).unwrap()].as_str();
            assert_eq!(
                [
                    cell("case_id"),
                    cell("external_id"),
                    cell("name"),
                    cell("owner_id"),
                    cell("code"),
                    cell("big"),
                    cell("ratio"),
                    cell("day"),
                    cell("formula"),
                    cell("minus"),
                    cell("quoted"),
                    cell("notes"),
                ],
                [
                    zeros.as_str(),
                    "007",
                    "Zoë Ocen, \"Jr\"",
                    "0042",
                    "000123",
                    "256772100123456789",
                    "1.50",
                    "2026-01-02",
                    "=1+2",
                    "-5",
                    "'=y",
                    "two\nlines"
                ],
                "values kept as text, exactly"
            );
        }
    }

    // Every cell of the workbook is a string, none a number, a date or a formula.
    let bytes = download(&app, &app.api("alpha", "/cases/export.xlsx"), token, XLSX).await;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(
        &mut zip.by_name("xl/worksheets/sheet1.xml").unwrap(),
        &mut xml,
    )
    .unwrap();
    let cells_xml: Vec<&str> = xml.split("<c ").skip(1).collect();
    assert!(cells_xml.len() > 30, "{xml}");
    for c in &cells_xml {
        let open = &c[..c.find('>').unwrap()];
        assert!(
            open.contains("t=\"s\"")
                || open.contains("t=\"inlineStr\"")
                || open.contains("t=\"str\""),
            "a cell that is not text: <c {open}>"
        );
        assert!(!c.contains("<f>"), "a formula: <c {c}");
    }
}

/// The cells of CSV text as a spreadsheet program reads them (RFC 4180: quoted cells, doubled
/// quotes, CR LF or LF line ends).
fn csv_cells(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cell.push('"');
                } else {
                    quoted = false;
                }
            } else {
                cell.push(c);
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut cell)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            _ => cell.push(c),
        }
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    rows
}

async fn csv_export_is_guarded_against_formulas(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let properties = json!({
        "hyperlink": "=HYPERLINK(\"http://evil.example\",\"click\")",
        "plus": "+1",
        "minus": "-5",
        "at": "@SUM(A1)",
        "quoted": "'=y",
        "twice": "''+z",
        "apostrophe": "'plain",
        "middle": "a=b",
        "comma": "a, b",
        "quote": "say \"hi\"",
        "newline": "=x\n=y",
        "zoe": "Zoë"
    });
    let tricky = alpha_case(
        &app,
        json!({"case_id": "-007", "name": "=1+2", "external_id": "@ext",
               "phone_number": "0772 100001", "owner_id": "+cm", "language_code": "ach",
               "case_type": "-t", "properties": properties}),
    )
    .await;
    assert_eq!(tricky, "-007");
    let plain = alpha_case(&app, json!({"name": "Plain Person", "external_id": "P-1"})).await;
    let resp = app
        .http
        .get(app.api("alpha", "/cases/export.csv"))
        .bearer_auth(&app.alpha_viewer.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.unwrap().to_vec();
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "UTF-8 with a BOM");
    let text = std::str::from_utf8(&bytes[3..]).expect("UTF-8");
    let raw = csv_cells(text);
    assert_eq!(raw.len(), 3, "a header and two rows: {text}");
    for row in &raw {
        for cell in row {
            assert!(
                !cell.starts_with(FORMULA_STARTS),
                "a cell a spreadsheet would run: {cell:?} in {text}"
            );
        }
    }
    let headers = &raw[0];
    let raw_cell = |h: &str| raw[1][headers.iter().position(|x| x == h).unwrap()].as_str();
    assert_eq!(raw_cell("case_id"), "'-007");
    assert_eq!(raw_cell("name"), "'=1+2");
    assert_eq!(raw_cell("external_id"), "'@ext");
    assert_eq!(raw_cell("phone_number"), "'+256772100001");
    assert_eq!(raw_cell("owner_id"), "'+cm");
    assert_eq!(raw_cell("case_type"), "'-t");
    assert_eq!(raw_cell("minus"), "'-5");
    assert_eq!(raw_cell("quoted"), "''=y");
    assert_eq!(raw_cell("twice"), "'''+z");
    assert_eq!(
        raw_cell("apostrophe"),
        "'plain",
        "no formula: left as it is"
    );
    assert_eq!(raw_cell("middle"), "a=b");
    assert_eq!(raw_cell("comma"), "a, b");
    assert_eq!(raw_cell("zoe"), "Zoë");
    assert_eq!(raw[2][0], plain);

    // Read back, every value is exactly what the API holds.
    let (_, case) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/cases/-007"),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    let table = sheet(&bytes, "cases.csv");
    let row = cells(&table).remove(0);
    assert_eq!(row, expected_row(&case, &table.headers.0));
    for (k, v) in properties.as_object().unwrap() {
        let col = table.headers.find(k).unwrap();
        assert_eq!(row[col], v.as_str().unwrap(), "{k}");
    }
    assert_eq!(row[2], "=1+2");
    assert_eq!(row[0], "-007");
    // The .xlsx needs no guard and reads back the same.
    let xlsx = exported(&app, "alpha", &app.alpha_viewer.token, "", true).await;
    assert_eq!(xlsx.headers, table.headers);
    assert_eq!(cells(&xlsx), cells(&table));
}

/// A value that starts with an apostrophe and then a formula character reads back from the
/// `.xlsx` export as it is (every sheet read drops one apostrophe before a formula start, as the
/// CSV guard), as it does from the CSV export.
async fn xlsx_keeps_leading_apostrophes(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let values = ["'=y", "''+z", "'-5", "'@x", "'plain"];
    for (i, v) in values.iter().enumerate() {
        alpha_case(
            &app,
            json!({"name": format!("Case {i}"), "external_id": format!("A-{i}"),
                   "properties": {"value": v}}),
        )
        .await;
    }
    for xlsx in [false, true] {
        let table = exported(&app, "alpha", &app.alpha_viewer.token, "", xlsx).await;
        let col = table.headers.find("value").unwrap();
        let back: Vec<&str> = table.rows.iter().map(|r| r.get(col)).collect();
        assert_eq!(back, values, "xlsx: {xlsx}");
    }
}

async fn bad_filters_are_422_naming_the_parameter(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    seed(&app).await;
    let long = "x".repeat(256);
    let bad = [
        ("closed=maybe".to_string(), "closed"),
        ("closed=1".into(), "closed"),
        ("has_phone=yes".into(), "has_phone"),
        ("include_deleted=perhaps".into(), "include_deleted"),
        ("group_id=abc".into(), "group_id"),
        ("group_id=1.5".into(), "group_id"),
        ("modified_since=yesterday".into(), "modified_since"),
        ("modified_since=2026-13-01".into(), "modified_since"),
        (
            "modified_since=2026-11-01T25:00:00Z".into(),
            "modified_since",
        ),
        ("case_type=not%20a%20type".into(), "case_type"),
        ("phone_number=%2B256abc".into(), "phone_number"),
        (format!("q={long}"), "q"),
        (format!("external_id={long}"), "external_id"),
        (format!("case_type={long}"), "case_type"),
        (
            query(&[("query", "age >= ")]),
            "query: at 7: expected a value after",
        ),
        (query(&[("query", "district = Gulu AND (")]), "query: at "),
        (query(&[("query", "age > eighteen")]), "query: at "),
        (query(&[("query", &"a = 1 AND ".repeat(1_100))]), "query: "),
    ];
    let token = Some(app.alpha_viewer.token.as_str());
    for (q, field) in &bad {
        for path in ["/cases", "/cases/export.csv", "/cases/export.xlsx"] {
            let (status, err) = call(
                &app,
                Method::GET,
                &app.api("alpha", &format!("{path}?{q}")),
                token,
                None,
            )
            .await;
            // A case query's error is `invalid_query` (the CONTRACT's code), the others
            // `invalid`.
            let want_code = if field.starts_with("query:") {
                "invalid_query"
            } else {
                "invalid"
            };
            assert_eq!((status, code(&err)), (422, want_code), "{path}?{q}: {err}");
            let message = err["error"]["message"].as_str().unwrap();
            let want = if field.contains(':') {
                field.to_string()
            } else {
                format!("{field}:")
            };
            assert!(
                message.starts_with(&want),
                "{path}?{q}: '{message}' should start with {want}"
            );
        }
    }
}

async fn groups_of_other_projects_are_404(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = seed(&app).await;
    let deleted = new_group(&app, "Deleted").await;
    let (status, _) = call(
        &app,
        Method::DELETE,
        &app.api("alpha", &format!("/case-groups/{deleted}")),
        Some(&app.alpha_editor.token),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let token = Some(app.alpha_viewer.token.as_str());
    for group in [s.beta_group, deleted, 999_999] {
        for path in ["/cases", "/cases/export.csv", "/cases/export.xlsx"] {
            let (status, err) = call(
                &app,
                Method::GET,
                &app.api("alpha", &format!("{path}?group_id={group}")),
                token,
                None,
            )
            .await;
            assert_eq!(
                (status, code(&err)),
                (404, "not_found"),
                "{path}?group_id={group}: {err}"
            );
        }
    }
    // And the other way round.
    let (status, err) = call(
        &app,
        Method::GET,
        &app.api("beta", &format!("/cases/export.csv?group_id={}", s.group)),
        Some(&app.beta_admin.token),
        None,
    )
    .await;
    assert_eq!((status, code(&err)), (404, "not_found"), "{err}");
    // Each project's own group works.
    let beta = exported(
        &app,
        "beta",
        &app.beta_admin.token,
        &format!("group_id={}", s.beta_group),
        false,
    )
    .await;
    let ids: Vec<&str> = beta.rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [s.beta_aber.as_str()]);
}

async fn who_may_export(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = seed(&app).await;
    for path in ["/cases/export.csv", "/cases/export.xlsx"] {
        let url = app.api("alpha", path);
        let (status, err) = call(&app, Method::GET, &url, None, None).await;
        assert_eq!(
            (status, code(&err)),
            (401, "unauthorized"),
            "{path} without a token"
        );
        let (status, err) = call(&app, Method::GET, &url, Some("cc_not-a-token"), None).await;
        assert_eq!(
            (status, code(&err)),
            (401, "unauthorized"),
            "{path} with a bad token"
        );
        let (status, err) = call(&app, Method::GET, &url, Some(&app.beta_admin.token), None).await;
        assert_eq!(
            (status, code(&err)),
            (404, "not_found"),
            "{path} with another project's token"
        );
        let (status, err) = call(
            &app,
            Method::GET,
            &app.api("nowhere", path),
            Some(&app.alpha_admin.token),
            None,
        )
        .await;
        assert_eq!(status, 404, "{path} of no project: {err}");
    }
    // Viewers, editors and admins may export (it changes nothing).
    for token in [
        &app.alpha_viewer.token,
        &app.alpha_editor.token,
        &app.alpha_admin.token,
    ] {
        for xlsx in [false, true] {
            let table = exported(&app, "alpha", token, "", xlsx).await;
            let ids: Vec<&str> = table.rows.iter().map(|r| r.get(0)).collect();
            assert_eq!(
                ids,
                [&s.aber, &s.okello, &s.auma, &s.nakato].map(|c| c.as_str())
            );
        }
    }
}

async fn exports_hold_one_project_only(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = seed(&app).await;
    let token = &app.alpha_viewer.token;
    // Beta's case shares Aber's external ID and phone number.
    for q in [
        String::new(),
        "q=GUL-001".into(),
        "q=%2B256772100001".into(),
        format!("q={}", s.beta_aber),
        "external_id=GUL-001".into(),
        "phone_number=%2B256772100001".into(),
        "case_type=patient".into(),
        "has_phone=true".into(),
    ] {
        for xlsx in [false, true] {
            let table = exported(&app, "alpha", token, &q, xlsx).await;
            let ids: Vec<&str> = table.rows.iter().map(|r| r.get(0)).collect();
            assert!(!ids.contains(&s.beta_aber.as_str()), "{q}: {ids:?}");
            assert!(
                table.headers.find("beta_only").is_none(),
                "{q}: beta's properties are not alpha's columns"
            );
            for row in cells(&table) {
                assert!(
                    row.iter().all(|c| c != "Aber Beta" && c != "secret"),
                    "{q}: {row:?}"
                );
            }
        }
    }
    let alpha = exported(&app, "alpha", token, "external_id=GUL-001", false).await;
    let ids: Vec<&str> = alpha.rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [s.aber.as_str()]);
    // Beta's export is beta's case alone.
    let beta = exported(&app, "beta", &app.beta_admin.token, "", false).await;
    let rows = cells(&beta);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], s.beta_aber);
    assert_eq!(rows[0][2], "Aber Beta");
    assert_eq!(beta.headers.0.last().map(String::as_str), Some("beta_only"));
}

async fn exports_hold_live_cases_only(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = seed(&app).await;
    let token = Some(app.alpha_viewer.token.as_str());
    for path in ["/cases/export.csv", "/cases/export.xlsx"] {
        for q in ["include_deleted=true", "include_deleted=TRUE&closed=true"] {
            let (status, err) = call(
                &app,
                Method::GET,
                &app.api("alpha", &format!("{path}?{q}")),
                token,
                None,
            )
            .await;
            assert_eq!((status, code(&err)), (422, "invalid"), "{path}?{q}: {err}");
            assert!(
                err["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("include_deleted"),
                "{err}"
            );
        }
    }
    // The deleted member of the group, and its property, are not exported.
    for q in [
        String::new(),
        format!("group_id={}", s.group),
        "q=GUL-005".into(),
    ] {
        for xlsx in [false, true] {
            let table = exported(&app, "alpha", &app.alpha_viewer.token, &q, xlsx).await;
            let ids: Vec<&str> = table.rows.iter().map(|r| r.get(0)).collect();
            assert!(!ids.contains(&s.gone.as_str()), "{q}: {ids:?}");
            assert!(table.headers.find("only_gone").is_none(), "{q}");
        }
    }
}

async fn downloads_are_named_files(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    seed(&app).await;
    for (path, content_type, extension) in [
        ("/cases/export.csv?closed=true", CSV, ".csv"),
        ("/cases/export.xlsx?closed=true", XLSX, ".xlsx"),
    ] {
        let resp = app
            .http
            .get(app.api("alpha", path))
            .bearer_auth(&app.alpha_viewer.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let headers = resp.headers();
        let got_type = headers["content-type"].to_str().unwrap();
        assert!(got_type.starts_with(content_type), "{path}: {got_type}");
        let disposition = headers["content-disposition"].to_str().unwrap();
        assert!(disposition.starts_with("attachment;"), "{disposition}");
        let name = disposition
            .split("filename=\"")
            .nth(1)
            .and_then(|n| n.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no file name: {disposition}"));
        assert!(
            name.ends_with(extension) && name.contains("alpha"),
            "{path}: {name}"
        );
        assert!(
            !name.contains(['/', '\\']),
            "{path}: a plain file name: {name}"
        );
    }
}
