//! `POST /cases/import` over HTTP: a real multipart upload, its report, and refusals.

use casecast_testkit::{Dialect, TestApp};
use reqwest::multipart::{Form, Part};
use reqwest::Method;

use crate::{call, code};

casecast_testkit::on_both_engines!(import_over_the_api, import_refusals);

async fn upload(
    app: &TestApp,
    token: &str,
    name: &str,
    bytes: Vec<u8>,
) -> (u16, serde_json::Value) {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_string()));
    let resp = app
        .http
        .post(app.api("alpha", "/cases/import"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// Sends only the headers of a multipart upload of `length` bytes and reads the answer.
async fn announce_upload(app: &TestApp, length: usize) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/projects/alpha/cases/import HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: {length}\r\n\r\n",
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
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

async fn import_over_the_api(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let csv = "external_id,name,phone_number,district\nE-1,Aber,0772 123456,Gulu\nE-2,Okello,+256 abc,Lira\nE-3,Auma,,Kitgum\n";
    let (status, report) = upload(
        &app,
        &app.alpha_editor.token,
        "people.csv",
        csv.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["rows"].as_u64(), report["created"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(report["errors"][0]["row"], 3);
    assert_eq!(report["errors"][0]["column"], "phone_number");
    let (_, again) = upload(
        &app,
        &app.alpha_editor.token,
        "people.csv",
        csv.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(
        (again["unchanged"].as_u64(), again["created"].as_u64()),
        (Some(2), Some(0))
    );
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/cases?external_id=E-1"),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(list["cases"][0]["phone_number"], "+256772123456");
    assert_eq!(list["cases"][0]["properties"]["district"], "Gulu");
}

async fn import_refusals(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let png = [&b"\x89PNG\r\n\x1a\n"[..], &[0u8; 64]].concat();
    let (status, err) = upload(&app, &app.alpha_admin.token, "photo.csv", png).await;
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("photo.csv"),
        "{err}"
    );
    let (status, err) = upload(&app, &app.alpha_admin.token, "empty.csv", Vec::new()).await;
    assert_eq!((status, code(&err)), (422, "invalid"));
    // A 51 MB upload is refused from its Content-Length, before the body is read (sent over a
    // raw socket: an HTTP client may still be writing the body when the 413 arrives).
    let (status, err) = announce_upload(&app, 51 * 1024 * 1024).await;
    assert_eq!((status, code(&err)), (413, "too_large"), "{err}");
    // One row over the documented limit of 1,000,000 data rows (a valid row first, so that
    // the refusal must also undo what was already written).
    let mut rows = String::from("external_id,name\nE-1,First\n");
    rows.push_str(&",\n".repeat(999_999));
    rows.push_str("E-2,Last\n");
    let (status, err) = upload(&app, &app.alpha_admin.token, "long.csv", rows.into_bytes()).await;
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000000"),
        "{err}"
    );
    let resp = app
        .http
        .post(app.api("alpha", "/cases/import"))
        .bearer_auth(&app.alpha_admin.token)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/cases"),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(
        list["cases"].as_array().unwrap().len(),
        0,
        "nothing was imported"
    );
}
