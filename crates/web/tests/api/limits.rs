//! Issue 12, items 4 to 6: the server's bounds. Slow and idle connections are closed (header
//! and body timeouts) and at most `max_connections` are served, so `/healthz` keeps answering;
//! sheets parsed and passwords checked at once are bounded, and what is beyond answers 503
//! with `Retry-After`; a workbook whose shared strings far outnumber its cells is refused.

use std::io::{Cursor, Write};
use std::time::Duration;

use casecast_testkit::{serve_state, Dialect, TestApp};
use casecast_web::{AppState, ServerLimits, WebConfig};
use reqwest::multipart::{Form, Part};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

casecast_testkit::on_both_engines!(
    slow_and_idle_connections_are_closed,
    slow_bodies_do_not_keep_others_out,
    healthz_answers_while_every_connection_is_held,
    a_shared_strings_bomb_is_refused,
    imports_beyond_the_sheet_bound_answer_503,
    logins_beyond_the_password_bound_answer_503
);

/// A second server over the test app's database, with these limits.
async fn serve_with(app: &TestApp, limits: ServerLimits) -> (String, AppState) {
    let state = AppState::new(
        app.db.clone(),
        WebConfig {
            limits,
            ..WebConfig::default()
        },
    );
    (serve_state(state.clone()).await, state)
}

/// Short timeouts, for tests.
fn short() -> ServerLimits {
    ServerLimits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(2),
        busy_wait: Duration::from_millis(200),
        ..ServerLimits::default()
    }
}

/// Reads until the server closes the connection; everything it sent. Fails the test when the
/// server keeps the connection open far beyond any timeout configured here.
async fn read_until_closed(socket: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), socket.read_to_end(&mut all));
    match read.await {
        Ok(Ok(_)) => {}
        // A reset is a close too.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(Err(e)) => panic!("reading failed: {e}"),
        Err(_) => panic!(
            "the server kept the connection open for 60 s: {:?}",
            String::from_utf8_lossy(&all)
        ),
    }
    String::from_utf8_lossy(&all).into_owned()
}

async fn slow_and_idle_connections_are_closed(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (base, _) = serve_with(&app, short()).await;
    let addr = base.trim_start_matches("http://");

    // Half a request head, never finished: closed after the header timeout, unanswered.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: casecast\r\nX-Slow: ")
        .await
        .unwrap();
    assert_eq!(read_until_closed(&mut half).await, "");

    // A connection that never sends anything is closed the same way.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_until_closed(&mut idle).await, "");

    // A kept-alive connection is answered, then closed once it has been idle that long.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: casecast\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");

    // A body that stops coming: 408 after the body timeout, and the connection closed.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        b"POST /login HTTP/1.1\r\nHost: casecast\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 1000\r\n\r\ncsrf=a&email=",
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("the request body did not arrive within 2 seconds"),
        "{answer}"
    );
}

async fn healthz_answers_while_every_connection_is_held(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    // A header timeout far beyond the test's patience: only making room helps /healthz in.
    let limits = ServerLimits {
        max_connections: 3,
        header_timeout: Duration::from_secs(3600),
        ..short()
    };
    let (base, _) = serve_with(&app, limits).await;
    let addr = base.trim_start_matches("http://");
    // Twice the limit of clients that connect and say nothing or half a request head, as a
    // slowloris does.
    let mut held = Vec::new();
    for i in 0..6 {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 1 {
            socket
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: casecast\r\nX-Slow: ")
                .await
                .unwrap();
        }
        held.push(socket);
    }
    // /healthz still answers, at once: the connection idle longest made room for it.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok\n");
    // The four held longest were closed, unanswered, to make room for the last two and
    // /healthz.
    for socket in &mut held[..4] {
        assert_eq!(read_until_closed(socket).await, "");
    }
}

async fn slow_bodies_do_not_keep_others_out(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    // Timeouts far beyond the test's patience: only making room helps /healthz in.
    let limits = ServerLimits {
        max_connections: 3,
        header_timeout: Duration::from_secs(3600),
        body_timeout: Duration::from_secs(3600),
        ..short()
    };
    let (base, _) = serve_with(&app, limits).await;
    let addr = base.trim_start_matches("http://");
    // Every slot taken by a request whose body trickles: its head is in, its body never ends.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(
                b"POST /login HTTP/1.1\r\nHost: casecast\r\n\
                  Content-Type: application/x-www-form-urlencoded\r\n\
                  Content-Length: 100000\r\n\r\ncsrf=a&email=",
            )
            .await
            .unwrap();
        held.push(socket);
    }
    // Let the server take all three heads in.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The oldest of them made room.
    read_until_closed(&mut held[0]).await;
}

/// A workbook with one data row and `strings` shared strings besides the four its cells use,
/// as in issue 12.
fn shared_strings_bomb(strings: usize) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let parts: [(&str, &[u8]); 3] = [
        ("xl/workbook.xml", br#"<workbook xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>"#),
        ("xl/_rels/workbook.xml.rels", br#"<Relationships><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#),
        ("xl/worksheets/sheet1.xml", br#"<worksheet><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row><row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" t="s"><v>3</v></c></row></sheetData></worksheet>"#),
    ];
    for (name, data) in parts {
        zip.start_file(name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.start_file("xl/sharedStrings.xml", options).unwrap();
    zip.write_all(b"<sst><si><t>external_id</t></si><si><t>name</t></si><si><t>E-1</t></si><si><t>Akello</t></si>")
        .unwrap();
    for i in 0..strings {
        write!(zip, "<si><t>{i:08}</t></si>").unwrap();
    }
    zip.write_all(b"</sst>").unwrap();
    zip.finish().unwrap().into_inner()
}

async fn import(base: &str, token: &str, name: &str, bytes: Vec<u8>) -> reqwest::Response {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_string()));
    reqwest::Client::new()
        .post(format!("{base}/api/v1/projects/alpha/cases/import"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn a_shared_strings_bomb_is_refused(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let token = &app.alpha_admin.token;
    let bomb = shared_strings_bomb(200_000);
    let r = import(&app.base, token, "bomb.xlsx", bomb).await;
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message
            .contains("'bomb.xlsx' has 200004 shared strings (xl/sharedStrings.xml) for 4 cells"),
        "{message}"
    );
    assert_eq!(app.db.count_cases(app.alpha.id).await.unwrap(), 0);
    // The same workbook with as many strings as cells is imported.
    let fine = shared_strings_bomb(0);
    let r = import(&app.base, token, "fine.xlsx", fine).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(app.db.count_cases(app.alpha.id).await.unwrap(), 1);
}

async fn imports_beyond_the_sheet_bound_answer_503(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let limits = ServerLimits {
        max_sheet_parses: 1,
        ..short()
    };
    let (base, state) = serve_with(&app, limits).await;
    let token = &app.alpha_admin.token;
    let csv = b"external_id,name\nE-1,Akello\n".to_vec();
    // Another parse holds the only permit.
    let parsing = state.sheets.try_acquire().await.unwrap();
    let r = import(&base, token, "cases.csv", csv.clone()).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "busy", "{body}");
    assert_eq!(app.db.count_cases(app.alpha.id).await.unwrap(), 0);
    // Once it is done, the import goes through.
    drop(parsing);
    let r = import(&base, token, "cases.csv", csv).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.db.count_cases(app.alpha.id).await.unwrap(), 1);
    assert_eq!(state.sheets.available(), 1, "the permit is given back");
}

/// Posts the login form; status, `Retry-After` and the page.
async fn log_in(base: &str, email: &str, password: &str) -> (u16, Option<String>, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(format!("{base}/login")).send().await.unwrap();
    let pre = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("casecast_login_csrf="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .unwrap();
    let html = page.text().await.unwrap();
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let csrf = html[start..].split('"').next().unwrap().to_string();
    let r = http
        .post(format!("{base}/login"))
        .header("cookie", format!("casecast_login_csrf={pre}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry, r.text().await.unwrap())
}

async fn logins_beyond_the_password_bound_answer_503(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let limits = ServerLimits {
        max_password_checks: 1,
        ..short()
    };
    let (base, state) = serve_with(&app, limits).await;
    let who = &app.alpha_viewer;
    let checking = state.password_checks.try_acquire().await.unwrap();
    // Right password or unknown email alike: no check can start, so none is made.
    for email in [who.email.as_str(), "nobody@example.org"] {
        let (status, retry, page) = log_in(&base, email, &who.password).await;
        assert_eq!(status, 503, "{page}");
        assert_eq!(retry.as_deref(), Some("5"));
        assert!(page.contains("Too many sign-ins at once"), "{page}");
    }
    drop(checking);
    let (status, _, _) = log_in(&base, "nobody@example.org", &who.password).await;
    assert_eq!(status, 401);
    let (status, _, page) = log_in(&base, &who.email, &who.password).await;
    assert_eq!(status, 303, "{page}");
    assert_eq!(state.password_checks.available(), 1);
}
