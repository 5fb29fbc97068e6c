//! Sheet uploads to a case group (`POST /case-groups/{id}/uploads`, processed by the
//! background worker), their status and per-row results, and isolation between projects.

use casecast_core::sheet::Table;
use casecast_testkit::{Dialect, TestApp};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

use crate::case_groups::{
    alpha_case, change, download, group, member_ids, new_case, new_group, outcomes, sheet,
};
use crate::{call, code};

casecast_testkit::on_both_engines!(
    csv_upload_adds_repeats_and_removes,
    xlsx_numeric_cells_and_typed_columns,
    sheet_without_identifier_column_is_refused,
    uploads_refused_at_once,
    other_projects_are_invisible
);

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Posts a sheet to a group of `project`; returns status and body.
async fn upload(
    app: &TestApp,
    project: &str,
    token: &str,
    group: i64,
    name: &str,
    bytes: Vec<u8>,
    mode: Option<&str>,
) -> (u16, Value) {
    let mut form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_string()));
    if let Some(m) = mode {
        form = form.text("mode", m.to_string());
    }
    let resp = app
        .http
        .post(app.api(project, &format!("/case-groups/{group}/uploads")))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Uploads to an alpha group as alpha's editor, waits for the worker; returns the final status.
async fn upload_and_wait(
    app: &TestApp,
    group: i64,
    name: &str,
    bytes: Vec<u8>,
    mode: Option<&str>,
) -> Value {
    let (status, created) = upload(
        app,
        "alpha",
        &app.alpha_editor.token,
        group,
        name,
        bytes,
        mode,
    )
    .await;
    assert_eq!(status, 202, "{created}");
    wait(app, created["upload_id"].as_i64().unwrap()).await
}

/// Polls an alpha upload until it is done or failed.
async fn wait(app: &TestApp, upload_id: i64) -> Value {
    let url = app.api("alpha", &format!("/uploads/{upload_id}"));
    for _ in 0..200 {
        let (status, body) =
            call(app, Method::GET, &url, Some(&app.alpha_viewer.token), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["upload_id"], upload_id);
        match body["status"].as_str().unwrap() {
            "done" | "failed" => return body,
            "queued" | "running" => {}
            other => panic!("unknown upload status {other}: {body}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("upload {upload_id} did not finish");
}

/// The results of an alpha upload in one format.
async fn results(app: &TestApp, upload_id: i64, xlsx: bool) -> Table {
    let (ext, content_type) = if xlsx {
        ("xlsx", XLSX)
    } else {
        ("csv", "text/csv")
    };
    let bytes = download(
        app,
        &app.api("alpha", &format!("/uploads/{upload_id}/results.{ext}")),
        &app.alpha_viewer.token,
        content_type,
    )
    .await;
    sheet(&bytes, &format!("r.{ext}"))
}

/// The result rows as `(row, identifier, outcome, case_id, message)`, after checking that
/// both formats hold the same rows.
async fn result_rows(app: &TestApp, upload_id: i64) -> Vec<[String; 5]> {
    let mut both = Vec::new();
    for xlsx in [false, true] {
        let table = results(app, upload_id, xlsx).await;
        assert_eq!(
            table.headers.0,
            ["row", "identifier", "outcome", "case_id", "message"]
        );
        let rows: Vec<[String; 5]> = table
            .rows
            .iter()
            .map(|r| std::array::from_fn(|c| r.get(c).to_string()))
            .collect();
        both.push(rows);
    }
    assert_eq!(both[0], both[1], "results.csv and results.xlsx agree");
    both.remove(0)
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
        app.alpha_admin.token
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}}") {
        let n = socket.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn csv_upload_adds_repeats_and_removes(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = alpha_case(&app, json!({"name": "Aber"})).await;
    let b = alpha_case(&app, json!({"name": "Okello", "external_id": "GUL-0002"})).await;
    let p = alpha_case(
        &app,
        json!({"name": "Auma", "phone_number": "+256772123456"}),
    )
    .await;
    let outsider = alpha_case(&app, json!({"name": "Outsider", "external_id": "OUT-1"})).await;
    let g = new_group(&app, "Study").await;
    let csv = format!(
        "case_identifier\n{a}\n GUL-0002 \n+256 772 123 456\n\n0772 123456\nNOBODY-1\nGUL-0002\n256772123456\n"
    );

    let done = upload_and_wait(&app, g, "people.csv", csv.clone().into_bytes(), None).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["error"], Value::Null);
    assert_eq!(
        (done["total_rows"].as_i64(), done["processed_rows"].as_i64()),
        (Some(8), Some(8))
    );
    assert_eq!(
        done["counts"],
        json!({"added": 3, "blank": 1, "duplicate_in_file": 3, "not_found": 1})
    );
    assert_eq!(done["group_id"], g);
    assert_eq!(done["mode"], "add");
    let rows = result_rows(&app, done["upload_id"].as_i64().unwrap()).await;
    let expect = [
        ("2", a.as_str(), "added", a.as_str()),
        ("3", "GUL-0002", "added", b.as_str()),
        ("4", "+256 772 123 456", "added", p.as_str()),
        ("5", "", "blank", ""),
        ("6", "0772 123456", "duplicate_in_file", p.as_str()),
        ("7", "NOBODY-1", "not_found", ""),
        ("8", "GUL-0002", "duplicate_in_file", b.as_str()),
        ("9", "256772123456", "duplicate_in_file", p.as_str()),
    ];
    assert_eq!(rows.len(), expect.len(), "{rows:?}");
    for (row, (n, identifier, outcome, case_id)) in rows.iter().zip(expect) {
        assert_eq!(
            [&row[0], &row[1], &row[2], &row[3]],
            [n, identifier, outcome, case_id],
            "{row:?}"
        );
    }
    assert!(!rows[5][4].is_empty(), "not_found explains itself");
    let mut members = member_ids(&app, g).await;
    members.sort();
    let mut expected = vec![a.clone(), b.clone(), p.clone()];
    expected.sort();
    assert_eq!(members, expected);
    assert!(!members.contains(&outsider));

    // The same sheet again changes nothing.
    let again = upload_and_wait(&app, g, "people.csv", csv.clone().into_bytes(), Some("add")).await;
    assert_eq!(again["status"], "done", "{again}");
    assert_eq!(
        again["counts"],
        json!({"already_in_group": 3, "blank": 1, "duplicate_in_file": 3, "not_found": 1})
    );
    let rows = result_rows(&app, again["upload_id"].as_i64().unwrap()).await;
    let firsts: Vec<&str> = rows[..3].iter().map(|r| r[2].as_str()).collect();
    assert_eq!(firsts, ["already_in_group"; 3]);
    assert_eq!(group(&app, g).await["case_count"], 3);

    // mode=remove takes them out again.
    change(&app, g, false, &["OUT-1"]).await;
    let removed = upload_and_wait(&app, g, "people.csv", csv.into_bytes(), Some("remove")).await;
    assert_eq!(removed["status"], "done", "{removed}");
    assert_eq!(removed["mode"], "remove");
    assert_eq!(
        removed["counts"],
        json!({"removed": 3, "blank": 1, "duplicate_in_file": 3, "not_found": 1})
    );
    let rows = result_rows(&app, removed["upload_id"].as_i64().unwrap()).await;
    assert_eq!(
        (rows[0][2].as_str(), rows[2][3].as_str()),
        ("removed", p.as_str())
    );
    assert_eq!(
        member_ids(&app, g).await,
        [outsider],
        "only what was not in the sheet is left"
    );
    let sheet = "case_identifier\nGUL-0002\n";
    let not_in = upload_and_wait(&app, g, "again.csv", sheet.into(), Some("remove")).await;
    assert_eq!(not_in["counts"], json!({"not_in_group": 1}));
}

async fn xlsx_numeric_cells_and_typed_columns(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let p = alpha_case(
        &app,
        json!({"name": "Auma", "phone_number": "+256772123456"}),
    )
    .await;
    let x = alpha_case(&app, json!({"name": "Xavier", "external_id": "0772123456"})).await;
    let k = alpha_case(
        &app,
        json!({"name": "Kato", "phone_number": "+256701000001"}),
    )
    .await;
    let g = new_group(&app, "Study").await;
    // As a case_identifier, 0772123456 is both X's external ID and P's phone number.
    let ambiguous = change(&app, g, false, &["0772123456"]).await;
    assert_eq!(outcomes(&ambiguous), ["ambiguous"]);

    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, " Case_Identifier ").unwrap();
    ws.write_string(0, 1, "EXTERNAL_ID").unwrap();
    ws.write_string(0, 2, "phone_number").unwrap();
    ws.write_number(1, 0, 256772123456.0).unwrap();
    ws.write_string(2, 1, "0772123456").unwrap();
    ws.write_number(3, 2, 256701000001.0).unwrap();
    ws.write_string(4, 1, "+256701000001").unwrap();
    let bytes = wb.save_to_buffer().unwrap();

    let done = upload_and_wait(&app, g, "people.xlsx", bytes, None).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["total_rows"], 4);
    let rows = result_rows(&app, done["upload_id"].as_i64().unwrap()).await;
    let got: Vec<[&str; 4]> = rows
        .iter()
        .map(|r| [r[0].as_str(), r[1].as_str(), r[2].as_str(), r[3].as_str()])
        .collect();
    assert_eq!(
        got,
        [
            ["2", "256772123456", "added", p.as_str()],
            ["3", "0772123456", "added", x.as_str()],
            ["4", "256701000001", "added", k.as_str()],
            // A typed external_id is not looked up as a phone number.
            ["5", "+256701000001", "not_found", ""],
        ],
        "numeric cells read as integer text; typed columns look up one kind"
    );
    // A typed case_id is looked up only as a case ID; a sheet of headers only is done at once.
    let csv = format!("name,case_id\nx,0772123456\ny,{p}\n");
    let typed = upload_and_wait(&app, g, "typed.csv", csv.into_bytes(), None).await;
    assert_eq!(
        typed["counts"],
        json!({"not_found": 1, "already_in_group": 1}),
        "{typed}"
    );
    let empty = upload_and_wait(&app, g, "empty.csv", "case_identifier\n".into(), None).await;
    assert_eq!(
        (empty["status"].as_str(), empty["total_rows"].as_i64()),
        (Some("done"), Some(0)),
        "{empty}"
    );
    assert!(result_rows(&app, empty["upload_id"].as_i64().unwrap())
        .await
        .is_empty());
    let mut members = member_ids(&app, g).await;
    members.sort();
    let mut expected = vec![p, x, k];
    expected.sort();
    assert_eq!(members, expected);
}

async fn sheet_without_identifier_column_is_refused(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = alpha_case(&app, json!({"name": "Aber", "phone_number": "0772123456"})).await;
    let g = new_group(&app, "Study").await;
    change(&app, g, false, &[&a]).await;
    let token = app.alpha_editor.token.clone();
    let csv = "Name, Mobile ,District\nAber,0772123456,Gulu\nOkello,0772000001,Lira\n";
    let (status, err) = upload(
        &app,
        "alpha",
        &token,
        g,
        "people.csv",
        csv.into(),
        Some("remove"),
    )
    .await;
    assert_eq!((status, code(&err)), (422, "invalid"), "{err}");
    let error = err["error"]["message"].as_str().unwrap();
    assert!(
        error.contains("people.csv") && error.contains("no case_identifier column"),
        "{error}"
    );
    assert!(
        error.contains("'Name', 'Mobile', 'District'"),
        "the error lists the headers found: {error}"
    );
    assert_eq!(member_ids(&app, g).await, [a], "the group is unchanged");

    // An .xlsx whose first sheet has no identifier column is refused alike.
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "mobile").unwrap();
    ws.write_number(1, 0, 256772123456.0).unwrap();
    let other = wb.add_worksheet();
    other.write_string(0, 0, "case_identifier").unwrap();
    other.write_string(1, 0, "0772123456").unwrap();
    let (status, err) = upload(
        &app,
        "alpha",
        &token,
        g,
        "people.xlsx",
        wb.save_to_buffer().unwrap(),
        Some("remove"),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'mobile'"),
        "{err}"
    );
    assert_eq!(group(&app, g).await["case_count"], 1);

    // Headers as people write them name the columns: `Phone Number` is phone_number.
    let csv = "Name, Phone Number \nAber,0772123456\n";
    let done = upload_and_wait(&app, g, "people.csv", csv.into(), Some("remove")).await;
    assert_eq!(done["counts"], json!({"removed": 1}), "{done}");
    assert_eq!(group(&app, g).await["case_count"], 0);
}

async fn uploads_refused_at_once(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let g = new_group(&app, "Study").await;
    let token = app.alpha_editor.token.clone();
    let png = [&b"\x89PNG\r\n\x1a\n"[..], &[0u8; 64]].concat();
    let (status, err) = upload(&app, "alpha", &token, g, "photo.csv", png, None).await;
    assert_eq!((status, code(&err)), (422, "invalid"), "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("photo.csv") && message.contains("PNG"),
        "{message}"
    );
    let xls = [
        &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1][..],
        &[0u8; 512],
    ]
    .concat();
    let (status, err) = upload(&app, "alpha", &token, g, "old.xls", xls, None).await;
    assert_eq!((status, code(&err)), (422, "invalid"), "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains(".xlsx"),
        "{err}"
    );
    let (status, err) = upload(&app, "alpha", &token, g, "empty.csv", Vec::new(), None).await;
    assert_eq!(status, 422, "{err}");
    let sheet = b"case_identifier\nGUL-1\n".to_vec();
    let (status, err) = upload(
        &app,
        "alpha",
        &token,
        g,
        "s.csv",
        sheet.clone(),
        Some("replace"),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("mode"),
        "{err}"
    );
    let (status, err) = upload(&app, "alpha", &token, 999_999, "s.csv", sheet, None).await;
    assert_eq!(status, 404, "{err}");
    let resp = app
        .http
        .post(app.api("alpha", &format!("/case-groups/{g}/uploads")))
        .bearer_auth(&token)
        .multipart(Form::new().text("mode", "add"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422, "no file part");
    let resp = app
        .http
        .post(app.api("alpha", &format!("/case-groups/{g}/uploads")))
        .bearer_auth(&token)
        .json(&json!({"file": "case_identifier\nX\n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422, "not multipart");
    let (status, err) = announce_upload(&app, g, 51 * 1024 * 1024).await;
    assert_eq!((status, code(&err)), (413, "too_large"), "{err}");
    let (status, _) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/uploads/999999"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

async fn other_projects_are_invisible(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let beta_token = app.beta_admin.token.clone();
    let beta_case = new_case(
        &app,
        "beta",
        &beta_token,
        json!({"name": "Beta person", "case_id": "beta-1", "external_id": "B-1",
               "phone_number": "+254712345678"}),
    )
    .await;
    assert_eq!(beta_case, "beta-1");
    let g = new_group(&app, "Study").await;
    let attempts = [
        "beta-1",
        "B-1",
        "+254712345678",
        "+254 712 345 678",
        "254712345678",
        "00254712345678",
    ];
    let body = change(&app, g, false, &attempts).await;
    assert_eq!(outcomes(&body), ["not_found"; 6], "{body}");
    let body = change(&app, g, true, &attempts).await;
    assert_eq!(outcomes(&body), ["not_found"; 6], "{body}");
    let csv = format!("case_identifier\n{}\n", attempts.join("\n"));
    let done = upload_and_wait(&app, g, "beta.csv", csv.into_bytes(), None).await;
    assert_eq!(done["counts"], json!({"not_found": 6}), "{done}");
    let upload_id = done["upload_id"].as_i64().unwrap();
    let (status, _) = call(
        &app,
        Method::DELETE,
        &app.api("alpha", &format!("/case-groups/{g}/cases/beta-1")),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert!(member_ids(&app, g).await.is_empty());

    // Beta's token never sees alpha's group or upload, even on beta's own paths.
    let beta = |path: String| app.api("beta", &path);
    for url in [
        beta(format!("/case-groups/{g}")),
        beta(format!("/case-groups/{g}/cases")),
        beta(format!("/case-groups/{g}/export.csv")),
        beta(format!("/case-groups/{g}/export.xlsx")),
        beta(format!("/uploads/{upload_id}")),
        beta(format!("/uploads/{upload_id}/results.csv")),
        beta(format!("/uploads/{upload_id}/results.xlsx")),
    ] {
        let (status, err) = call(&app, Method::GET, &url, Some(&beta_token), None).await;
        assert_eq!((status, code(&err)), (404, "not_found"), "{url}: {err}");
    }
    let (status, _) = call(
        &app,
        Method::POST,
        &beta(format!("/case-groups/{g}/cases")),
        Some(&beta_token),
        Some(json!({"identifiers": ["beta-1"]})),
    )
    .await;
    assert_eq!(status, 404, "beta cannot add to alpha's group");
    let (status, _) = call(
        &app,
        Method::PATCH,
        &beta(format!("/case-groups/{g}")),
        Some(&beta_token),
        Some(json!({"name": "Taken over"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        Method::DELETE,
        &beta(format!("/case-groups/{g}")),
        Some(&beta_token),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = upload(
        &app,
        "beta",
        &beta_token,
        g,
        "s.csv",
        b"case_identifier\nbeta-1\n".to_vec(),
        None,
    )
    .await;
    assert_eq!(status, 404, "beta cannot upload to alpha's group");
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("beta", "/case-groups"),
        Some(&beta_token),
        None,
    )
    .await;
    assert_eq!(list["case_groups"], json!([]));
    assert_eq!(
        group(&app, g).await["name"],
        "Study",
        "alpha's group is untouched"
    );

    // Names are unique per project only.
    let (status, made) = call(
        &app,
        Method::POST,
        &app.api("beta", "/case-groups"),
        Some(&beta_token),
        Some(json!({"name": "study"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
}
