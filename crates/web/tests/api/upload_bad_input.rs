//! Sheet uploads to a case group with bad or unusual input, through the API: each one is
//! refused or fails with a clear message and leaves the group as it was, or resolves its rows
//! as the contract says (encodings, extra columns, formula/date/number cells, other projects,
//! size and row limits, group names).

use std::time::Duration;

use casecast_testkit::{Dialect, TestApp};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

use crate::case_groups::{alpha_case, change, download, group, member_ids, new_group, sheet};
use crate::{call, code};

casecast_testkit::on_both_engines!(
    corrupt_xlsx_is_refused_clearly,
    old_xls_is_refused_at_once,
    xlsx_zip_bomb_is_refused,
    png_named_csv_is_refused,
    csv_in_utf16le_with_bom_resolves,
    csv_in_windows_1252_resolves,
    extra_columns_are_ignored,
    xlsx_formula_and_date_cells,
    xlsx_numeric_phone_and_external_id,
    case_of_another_project_is_not_found,
    upload_over_50_mb_is_413,
    million_and_one_rows_fail,
    group_name_of_256_characters_is_422,
    group_name_differing_only_in_case_is_409
);

/// How long an upload may take to finish before the test gives up.
const FINISH_WITHIN: Duration = Duration::from_secs(180);

/// Posts a sheet to an alpha group as alpha's editor (mode add); returns status and body.
async fn upload(app: &TestApp, group: i64, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_string()));
    let resp = app
        .http
        .post(app.api("alpha", &format!("/case-groups/{group}/uploads")))
        .bearer_auth(&app.alpha_editor.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls an alpha upload (bounded) until it is done or failed; returns its final status.
async fn finish(app: &TestApp, upload_id: i64) -> Value {
    let url = app.api("alpha", &format!("/uploads/{upload_id}"));
    let deadline = tokio::time::Instant::now() + FINISH_WITHIN;
    loop {
        let (status, body) =
            call(app, Method::GET, &url, Some(&app.alpha_viewer.token), None).await;
        assert_eq!(status, 200, "{body}");
        match body["status"].as_str().unwrap() {
            "done" | "failed" => return body,
            "queued" | "running" => {}
            other => panic!("unknown upload status {other}: {body}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "upload {upload_id} did not finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Uploads, asserts 202, waits for the worker; returns the final status.
async fn upload_and_finish(app: &TestApp, group: i64, name: &str, bytes: Vec<u8>) -> Value {
    let (status, created) = upload(app, group, name, bytes).await;
    assert_eq!(status, 202, "{created}");
    finish(app, created["upload_id"].as_i64().unwrap()).await
}

/// The per-row results of an alpha upload (`results.csv`) as
/// `(row, identifier, outcome, case_id, message)`.
async fn results(app: &TestApp, upload_id: i64) -> Vec<[String; 5]> {
    let bytes = download(
        app,
        &app.api("alpha", &format!("/uploads/{upload_id}/results.csv")),
        &app.alpha_viewer.token,
        "text/csv",
    )
    .await;
    let table = sheet(&bytes, "results.csv");
    assert_eq!(
        table.headers.0,
        ["row", "identifier", "outcome", "case_id", "message"]
    );
    table
        .rows
        .iter()
        .map(|r| std::array::from_fn(|c| r.get(c).to_string()))
        .collect()
}

/// `(row, identifier, outcome, case_id)` of each result, for comparing.
fn short(rows: &[[String; 5]]) -> Vec<[&str; 4]> {
    rows.iter()
        .map(|r| [r[0].as_str(), r[1].as_str(), r[2].as_str(), r[3].as_str()])
        .collect()
}

/// A group's members, sorted, and its stored count.
async fn snapshot(app: &TestApp, g: i64) -> (Vec<String>, Value) {
    let mut members = member_ids(app, g).await;
    members.sort();
    (members, group(app, g).await["case_count"].clone())
}

/// An alpha group "Study" holding one case, and a second alpha case that is not in it.
struct Seeded {
    group: i64,
    member: String,
    outsider: String,
}

async fn seeded(app: &TestApp) -> Seeded {
    let member = alpha_case(app, json!({"name": "Member", "external_id": "MEM-1"})).await;
    let outsider = alpha_case(app, json!({"name": "Outsider", "external_id": "OUT-1"})).await;
    let group = new_group(app, "Study").await;
    let body = change(app, group, false, &[&member]).await;
    assert_eq!(body["counts"], json!({"added": 1}));
    Seeded {
        group,
        member,
        outsider,
    }
}

/// Asserts that the seeded group still holds exactly its one member and nothing was recorded
/// as an upload that changed it.
async fn assert_unchanged(app: &TestApp, s: &Seeded) {
    assert_eq!(
        snapshot(app, s.group).await,
        (vec![s.member.clone()], json!(1)),
        "the group is unchanged"
    );
    assert_ne!(s.member, s.outsider);
}

/// An upload that must not be accepted: either 422 at once, or queued and then failed without
/// touching a row. Returns the user-facing message.
async fn refused_or_failed(app: &TestApp, g: i64, name: &str, bytes: Vec<u8>) -> String {
    let (status, body) = upload(app, g, name, bytes).await;
    match status {
        422 => {
            assert_eq!(code(&body), "invalid", "{body}");
            body["error"]["message"].as_str().unwrap().to_string()
        }
        202 => {
            let upload_id = body["upload_id"].as_i64().unwrap();
            let done = finish(app, upload_id).await;
            assert_eq!(done["status"], "failed", "{done}");
            assert_eq!(done["processed_rows"], 0, "{done}");
            assert_eq!(done["counts"], json!({}), "{done}");
            assert!(results(app, upload_id).await.is_empty());
            done["error"]
                .as_str()
                .expect("an error message")
                .to_string()
        }
        other => panic!("expected 422 or 202, got {other}: {body}"),
    }
}

/// A valid .xlsx with a case_identifier column.
fn workbook(identifiers: &[&str]) -> Vec<u8> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "case_identifier").unwrap();
    for (i, id) in identifiers.iter().enumerate() {
        ws.write_string(i as u32 + 1, 0, *id).unwrap();
    }
    wb.save_to_buffer().unwrap()
}

async fn corrupt_xlsx_is_refused_clearly(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = seeded(&app).await;
    let ids: Vec<String> = (0..200).map(|i| format!("OUT-{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let whole = workbook(&ids);
    // The whole file is fine (so the cut, not the content, is what is refused).
    let (status, created) = upload(&app, s.group, "whole.xlsx", whole.clone()).await;
    assert_eq!(status, 202, "{created}");
    let done = finish(&app, created["upload_id"].as_i64().unwrap()).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["counts"]["added"], 1, "{done}");
    let body = change(&app, s.group, true, &["OUT-1"]).await;
    assert_eq!(body["counts"], json!({"removed": 1}));
    assert_unchanged(&app, &s).await;

    let half = whole[..whole.len() / 2].to_vec();
    let message = refused_or_failed(&app, s.group, "half.xlsx", half).await;
    assert!(message.contains("'half.xlsx'"), "{message}");
    assert!(
        message.contains("damaged") || message.contains("could not be read"),
        "the message says the file is damaged: {message}"
    );
    assert!(message.len() < 500, "a sentence, not a dump: {message}");
    assert_unchanged(&app, &s).await;
}

async fn old_xls_is_refused_at_once(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = seeded(&app).await;
    let xls = [
        &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1][..],
        &[0u8; 4096],
    ]
    .concat();
    let (status, err) = upload(&app, s.group, "people.xls", xls).await;
    assert_eq!((status, code(&err)), (422, "invalid"), "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("people.xls") && message.contains("97-2003") && message.contains(".xlsx"),
        "{message}"
    );
    assert!(
        app.db
            .group_uploads(app.alpha.id, s.group, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing was queued"
    );
    assert_unchanged(&app, &s).await;
}

/// An .xlsx-looking zip: `xl/workbook.xml` and one sheet of `mb` MiB of zeros, deflated.
fn zip_bomb(mb: usize) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file("xl/workbook.xml", options).unwrap();
    zip.write_all(b"<workbook/>").unwrap();
    zip.start_file("xl/worksheets/sheet1.xml", options).unwrap();
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..mb {
        zip.write_all(&zeros).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

async fn xlsx_zip_bomb_is_refused(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = seeded(&app).await;
    let bomb = tokio::task::spawn_blocking(|| zip_bomb(600)).await.unwrap();
    assert!(
        bomb.len() < 2 * 1024 * 1024,
        "the bomb is small: {} bytes",
        bomb.len()
    );
    let message = refused_or_failed(&app, s.group, "bomb.xlsx", bomb).await;
    assert!(message.contains("'bomb.xlsx'"), "{message}");
    assert!(
        message.contains("unpacks to too much data"),
        "the message says why: {message}"
    );
    assert_unchanged(&app, &s).await;
    // The server and its worker are still there for the next upload.
    let done = upload_and_finish(
        &app,
        s.group,
        "next.csv",
        b"case_identifier\nOUT-1\n".to_vec(),
    )
    .await;
    assert_eq!(
        (done["status"].as_str(), &done["counts"]),
        (Some("done"), &json!({"added": 1})),
        "{done}"
    );
}

async fn png_named_csv_is_refused(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = seeded(&app).await;
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend((0..2000u32).map(|i| (i * 7 % 251) as u8));
    let (status, err) = upload(&app, s.group, "people.csv", png).await;
    assert_eq!((status, code(&err)), (422, "invalid"), "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("'people.csv'") && message.contains("PNG image"),
        "{message}"
    );
    assert!(app
        .db
        .group_uploads(app.alpha.id, s.group, 10)
        .await
        .unwrap()
        .is_empty());
    assert_unchanged(&app, &s).await;
}

/// Two cases the encoding tests look up: one by an external ID with a non-ASCII letter, one
/// by its case ID.
async fn encoding_cases(app: &TestApp) -> (i64, String, String) {
    let zoe = alpha_case(app, json!({"name": "Zoë Akello", "external_id": "ZOË-1"})).await;
    let other = alpha_case(app, json!({"name": "Okello", "external_id": "OK-2"})).await;
    let g = new_group(app, "Study").await;
    (g, zoe, other)
}

async fn csv_in_utf16le_with_bom_resolves(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (g, zoe, other) = encoding_cases(&app).await;
    let text = format!("case_identifier\r\nZOË-1\r\n{other}\r\nZOE-1\r\n");
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let done = upload_and_finish(&app, g, "utf16.csv", bytes).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        done["counts"],
        json!({"added": 2, "not_found": 1}),
        "{done}"
    );
    let rows = results(&app, done["upload_id"].as_i64().unwrap()).await;
    assert_eq!(
        short(&rows),
        [
            ["2", "ZOË-1", "added", zoe.as_str()],
            ["3", other.as_str(), "added", other.as_str()],
            ["4", "ZOE-1", "not_found", ""],
        ]
    );
    let mut expected = vec![zoe, other];
    expected.sort();
    assert_eq!(snapshot(&app, g).await, (expected, json!(2)));
}

async fn csv_in_windows_1252_resolves(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (g, zoe, other) = encoding_cases(&app).await;
    // Ë is 0xCB in Windows-1252 (and not valid UTF-8 on its own).
    let mut bytes = b"case_identifier\r\nZO\xCB-1\r\n".to_vec();
    bytes.extend(format!("{other}\r\n").into_bytes());
    assert!(std::str::from_utf8(&bytes).is_err());
    let done = upload_and_finish(&app, g, "excel-windows.csv", bytes).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["counts"], json!({"added": 2}), "{done}");
    let rows = results(&app, done["upload_id"].as_i64().unwrap()).await;
    assert_eq!(
        short(&rows),
        [
            ["2", "ZOË-1", "added", zoe.as_str()],
            ["3", other.as_str(), "added", other.as_str()],
        ]
    );
    let mut expected = vec![zoe, other];
    expected.sort();
    assert_eq!(snapshot(&app, g).await, (expected, json!(2)));
}

async fn extra_columns_are_ignored(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = alpha_case(&app, json!({"name": "Aber", "external_id": "GUL-0001"})).await;
    let b = alpha_case(
        &app,
        json!({"name": "Okello", "phone_number": "+256772123456"}),
    )
    .await;
    // A case whose external ID is what the other columns hold: they must not be looked up.
    let decoy = alpha_case(&app, json!({"name": "Decoy", "external_id": "Gulu"})).await;
    let g = new_group(&app, "Study").await;
    let csv = format!(
        "Name,District, Case_Identifier ,notes,extra\n\
         Aber,Gulu,GUL-0001,first visit,Gulu\n\
         Okello,Gulu,0772 123456,,\n\
         Nobody,Gulu,,\"a, b\",Gulu\n\
         Self,Lira,{a},x,y\n"
    );
    let done = upload_and_finish(&app, g, "register.csv", csv.into_bytes()).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["total_rows"], 4);
    assert_eq!(
        done["counts"],
        json!({"added": 2, "blank": 1, "duplicate_in_file": 1}),
        "{done}"
    );
    let rows = results(&app, done["upload_id"].as_i64().unwrap()).await;
    assert_eq!(
        short(&rows),
        [
            ["2", "GUL-0001", "added", a.as_str()],
            ["3", "0772 123456", "added", b.as_str()],
            ["4", "", "blank", ""],
            ["5", a.as_str(), "duplicate_in_file", a.as_str()],
        ]
    );
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(snapshot(&app, g).await, (expected.clone(), json!(2)));
    assert!(!expected.contains(&decoy));
}

async fn xlsx_formula_and_date_cells(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = alpha_case(&app, json!({"name": "Aber", "external_id": "GUL-0001"})).await;
    let b = alpha_case(&app, json!({"name": "Okello", "external_id": "GUL-0002"})).await;
    let g = new_group(&app, "Study").await;
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "case_identifier").unwrap();
    ws.write_formula(
        1,
        0,
        rust_xlsxwriter::Formula::new("=\"GUL-\"&\"0001\"").set_result("GUL-0001"),
    )
    .unwrap();
    let date = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    ws.write_datetime_with_format(
        2,
        0,
        rust_xlsxwriter::ExcelDateTime::from_ymd(2024, 3, 5).unwrap(),
        &date,
    )
    .unwrap();
    ws.write_string(3, 0, "GUL-0002").unwrap();
    let done = upload_and_finish(&app, g, "formulas.xlsx", wb.save_to_buffer().unwrap()).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["total_rows"], 3);
    assert_eq!(
        done["counts"],
        json!({"added": 2, "not_found": 1}),
        "{done}"
    );
    let rows = results(&app, done["upload_id"].as_i64().unwrap()).await;
    assert_eq!(
        short(&rows),
        [
            ["2", "GUL-0001", "added", a.as_str()],
            ["3", "2024-03-05", "not_found", ""],
            ["4", "GUL-0002", "added", b.as_str()],
        ],
        "the formula's cached value is looked up; the date reads as a date"
    );
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(snapshot(&app, g).await, (expected, json!(2)));
}

async fn xlsx_numeric_phone_and_external_id(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let p = alpha_case(
        &app,
        json!({"name": "Auma", "phone_number": "+256772123456"}),
    )
    .await;
    let e = alpha_case(&app, json!({"name": "Kato", "external_id": "1234567"})).await;
    let g = new_group(&app, "Study").await;
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "case_identifier").unwrap();
    ws.write_number(1, 0, 256772123456.0).unwrap();
    ws.write_number(2, 0, 1234567.0).unwrap();
    let done = upload_and_finish(&app, g, "numbers.xlsx", wb.save_to_buffer().unwrap()).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["counts"], json!({"added": 2}), "{done}");
    let rows = results(&app, done["upload_id"].as_i64().unwrap()).await;
    assert_eq!(
        short(&rows),
        [
            ["2", "256772123456", "added", p.as_str()],
            ["3", "1234567", "added", e.as_str()],
        ],
        "numbers read as their integer text"
    );
    let mut expected = vec![p, e];
    expected.sort();
    assert_eq!(snapshot(&app, g).await, (expected, json!(2)));
}

async fn case_of_another_project_is_not_found(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = seeded(&app).await;
    let (status, theirs) = call(
        &app,
        Method::POST,
        &app.api("beta", "/cases"),
        Some(&app.beta_admin.token),
        Some(json!({"name": "Beta person", "external_id": "BETA-1"})),
    )
    .await;
    assert_eq!(status, 201, "{theirs}");
    let theirs = theirs["case_id"].as_str().unwrap().to_string();
    let csv = format!("case_identifier\n{theirs}\nBETA-1\n");
    let done = upload_and_finish(&app, s.group, "beta.csv", csv.into_bytes()).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["counts"], json!({"not_found": 2}), "{done}");
    let rows = results(&app, done["upload_id"].as_i64().unwrap()).await;
    assert_eq!(
        short(&rows),
        [
            ["2", theirs.as_str(), "not_found", ""],
            ["3", "BETA-1", "not_found", ""],
        ]
    );
    assert!(!rows[0][4].contains("Beta person"), "{:?}", rows[0]);
    let body = change(&app, s.group, false, &[&theirs]).await;
    assert_eq!(body["results"][0]["outcome"], "not_found", "{body}");
    assert_unchanged(&app, &s).await;
}

/// Sends only the headers of a multipart upload of `length` bytes to an alpha group and reads
/// the answer (over a raw socket: an HTTP client may still be writing the body when the 413
/// arrives).
async fn announce_upload(app: &TestApp, group: i64, length: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/projects/alpha/case-groups/{group}/uploads HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary=XYZ\r\n\
         Content-Length: {length}\r\n\r\n",
        app.alpha_editor.token
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !String::from_utf8_lossy(&answer).contains("}}") {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("an answer before the body is sent");
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn upload_over_50_mb_is_413(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = seeded(&app).await;
    let (status, err) = announce_upload(&app, s.group, 51 * 1024 * 1024).await;
    assert_eq!((status, code(&err)), (413, "too_large"), "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("50 MB"),
        "{err}"
    );
    assert!(
        app.db
            .group_uploads(app.alpha.id, s.group, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing was queued"
    );
    assert_unchanged(&app, &s).await;
}

async fn million_and_one_rows_fail(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = seeded(&app).await;
    // A real case first: had any row been applied, the outsider would now be a member.
    let mut csv = String::with_capacity(2_100_000);
    csv.push_str("case_identifier\nOUT-1\n");
    csv.push_str(&"x\n".repeat(1_000_000));
    assert!(csv.len() < 3 * 1024 * 1024);
    let done = upload_and_finish(&app, s.group, "long.csv", csv.into_bytes()).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(
        error.contains("'long.csv'") && error.contains("1000000"),
        "the error names the limit: {error}"
    );
    assert_eq!(done["processed_rows"], 0, "{done}");
    assert_eq!(done["counts"], json!({}), "{done}");
    assert!(results(&app, done["upload_id"].as_i64().unwrap())
        .await
        .is_empty());
    assert_unchanged(&app, &s).await;
}

/// The names of alpha's groups, in the API's order.
async fn group_names(app: &TestApp) -> Vec<String> {
    let (status, list) = call(
        app,
        Method::GET,
        &app.api("alpha", "/case-groups"),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    list["case_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect()
}

async fn create_group(app: &TestApp, name: &str) -> (u16, Value) {
    call(
        app,
        Method::POST,
        &app.api("alpha", "/case-groups"),
        Some(&app.alpha_editor.token),
        Some(json!({ "name": name })),
    )
    .await
}

async fn rename_group(app: &TestApp, g: i64, name: &str) -> (u16, Value) {
    call(
        app,
        Method::PATCH,
        &app.api("alpha", &format!("/case-groups/{g}")),
        Some(&app.alpha_editor.token),
        Some(json!({ "name": name })),
    )
    .await
}

async fn group_name_of_256_characters_is_422(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let g = new_group(&app, "Study").await;
    for long in [
        "n".repeat(256),
        "é".repeat(256),
        format!(" {} ", "ü".repeat(256)),
    ] {
        let (status, err) = create_group(&app, &long).await;
        assert_eq!((status, code(&err)), (422, "invalid"), "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains("255"),
            "{err}"
        );
        let (status, err) = rename_group(&app, g, &long).await;
        assert_eq!((status, code(&err)), (422, "invalid"), "{err}");
    }
    assert_eq!(group_names(&app).await, ["Study"], "nothing was created");
    // 255 characters are allowed, however many bytes they take.
    let (status, made) = create_group(&app, &"é".repeat(255)).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["name"].as_str().unwrap().chars().count(), 255);
}

async fn group_name_differing_only_in_case_is_409(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let mothers = new_group(&app, "Mothers").await;
    let zoe = new_group(&app, "Zoë's babies").await;
    let other = new_group(&app, "Other").await;
    for taken in ["mothers", "MOTHERS", "  mOtHeRs ", "ZOË'S BABIES"] {
        let (status, err) = create_group(&app, taken).await;
        assert_eq!((status, code(&err)), (409, "name_taken"), "{taken}: {err}");
        let (status, err) = rename_group(&app, other, taken).await;
        assert_eq!((status, code(&err)), (409, "name_taken"), "{taken}: {err}");
    }
    assert_eq!(
        group_names(&app).await,
        ["Mothers", "Zoë's babies", "Other"],
        "nothing was created or renamed"
    );
    assert_eq!(group(&app, mothers).await["name"], "Mothers");
    assert_eq!(group(&app, zoe).await["name"], "Zoë's babies");
}
