//! Importing cases from the pages: the form (editors and admins, with CSRF and a size limit),
//! the background job with its progress and per-row report, another project's import out of
//! reach; and a busy SQLite database answered with 503 and `Retry-After`, never 500.

use casecast_testkit::{Dialect, TestApp};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

use crate::call;
use crate::pages::login;

casecast_testkit::on_both_engines!(
    the_import_page_runs_a_job_with_a_report,
    a_sheet_that_cannot_be_imported_writes_nothing
);

/// The value of `name="{field}" value="…"` in a page.
fn hidden(html: &str, field: &str) -> String {
    let marker = format!("name=\"{field}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {field} in page"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// GET with a session; returns status and body.
async fn get(app: &TestApp, session: &str, path: &str) -> (u16, String) {
    let resp = app
        .http
        .get(app.url(path))
        .header("cookie", format!("casecast_session={session}"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Posts the import form with a file; returns status, `Location` and body.
async fn post_import(
    app: &TestApp,
    session: &str,
    csrf: Option<&str>,
    name: &str,
    bytes: Vec<u8>,
) -> (u16, String, String) {
    let mut form = Form::new();
    if let Some(c) = csrf {
        form = form.text("csrf", c.to_string());
    }
    form = form.part("file", Part::bytes(bytes).file_name(name.to_string()));
    let resp = app
        .http
        .post(app.url("/a/alpha/cases/import"))
        .header("cookie", format!("casecast_session={session}"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, resp.text().await.unwrap())
}

/// Polls an import's status until it is done or failed.
async fn wait(app: &TestApp, session: &str, page: &str) -> Value {
    casecast_testkit::eventually(
        "the import to end",
        std::time::Duration::from_secs(60),
        || async {
            let (status, body) = get(app, session, &format!("{page}/status.json")).await;
            assert_eq!(status, 200, "{body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            matches!(v["status"].as_str(), Some("done" | "failed")).then_some(v)
        },
    )
    .await
}

async fn the_import_page_runs_a_job_with_a_report(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let editor = login(&app, &app.alpha_editor).await;
    let viewer = login(&app, &app.alpha_viewer).await;

    // The cases page offers the import to editors, not to viewers, who may not open it.
    let (_, list) = get(&app, &editor, "/a/alpha/cases").await;
    assert!(list.contains("href=\"/a/alpha/cases/import\""), "{list}");
    let (_, list) = get(&app, &viewer, "/a/alpha/cases").await;
    assert!(!list.contains("/a/alpha/cases/import"), "{list}");
    let (status, _) = get(&app, &viewer, "/a/alpha/cases/import").await;
    assert_eq!(status, 403);

    let (status, form) = get(&app, &editor, "/a/alpha/cases/import").await;
    assert_eq!(status, 200);
    let csrf = hidden(&form, "csrf");
    let sheet = "external_id,name,phone_number,district\n\
                 P-1,Amina,+256772000001,Gulu\n\
                 P-2,Okello,+256 77,Lira\n\
                 ,,,\n\
                 P-3,Akello,,Gulu\n";

    // Without the token, or as a viewer, nothing is queued.
    let (status, _, _) = post_import(&app, &editor, None, "p.csv", sheet.into()).await;
    assert_eq!(status, 403);
    let viewer_csrf = hidden(&get(&app, &viewer, "/a/alpha/cases").await.1, "csrf");
    let (status, _, _) =
        post_import(&app, &viewer, Some(&viewer_csrf), "p.csv", sheet.into()).await;
    assert_eq!(status, 403);
    assert_eq!(app.db.count_cases(app.alpha.id).await.unwrap(), 0);

    let (status, location, body) =
        post_import(&app, &editor, Some(&csrf), "people.csv", sheet.into()).await;
    assert_eq!(status, 303, "{body}");
    assert!(
        location.starts_with("/a/alpha/cases/imports/"),
        "{location}"
    );
    let (status, page) = get(&app, &editor, &location).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"import-progress\""), "{page}");
    assert!(page.contains("<progress id=\"import-bar\""), "{page}");

    let end = wait(&app, &editor, &location).await;
    assert_eq!(end["status"], "done", "{end}");
    assert_eq!(
        (end["total_rows"].as_i64(), end["processed_rows"].as_i64()),
        (Some(4), Some(4))
    );
    assert_eq!(
        end["counts"],
        json!({"created": 2, "error": 1, "blank": 1}),
        "{end}"
    );
    assert_eq!(app.db.count_cases(app.alpha.id).await.unwrap(), 2);

    // The page shows the counts and the rows; the report has every row, in order.
    let (_, page) = get(&app, &editor, &location).await;
    assert!(page.contains("id=\"import-counts\""), "{page}");
    assert!(page.contains("too short"), "{page}");
    let (status, report) = get(&app, &editor, &format!("{location}/report.csv")).await;
    assert_eq!(status, 200, "{report}");
    let lines: Vec<&str> = report.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(lines[0], "row,outcome,case_id,column,message", "{report}");
    assert_eq!(lines.len(), 5, "{report}");
    assert!(lines[1].starts_with("2,created,"), "{report}");
    assert!(lines[2].starts_with("3,error,,phone_number,"), "{report}");
    assert_eq!(lines[3], "4,blank,,,", "{report}");
    assert!(lines[4].starts_with("5,created,"), "{report}");
    let (status, _) = get(&app, &editor, &format!("{location}/report.xlsx")).await;
    assert_eq!(status, 200);
    // A viewer may follow it; another project's admin finds nothing there.
    let (status, _) = get(&app, &viewer, &location).await;
    assert_eq!(status, 200);
    let beta = login(&app, &app.beta_admin).await;
    let id = location.rsplit('/').next().unwrap();
    for path in [
        format!("/a/beta/cases/imports/{id}"),
        format!("/a/beta/cases/imports/{id}/status.json"),
        format!("/a/beta/cases/imports/{id}/report.csv"),
    ] {
        let (status, _) = get(&app, &beta, &path).await;
        assert_eq!(status, 404, "{path}");
    }

    // Importing the same sheet again changes nothing.
    let (status, location, _) =
        post_import(&app, &editor, Some(&csrf), "people.csv", sheet.into()).await;
    assert_eq!(status, 303);
    let end = wait(&app, &editor, &location).await;
    assert_eq!(
        end["counts"],
        json!({"unchanged": 2, "error": 1, "blank": 1}),
        "{end}"
    );
}

async fn a_sheet_that_cannot_be_imported_writes_nothing(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let editor = login(&app, &app.alpha_editor).await;
    let csrf = hidden(&get(&app, &editor, "/a/alpha/cases/import").await.1, "csrf");

    // Not a sheet, or an empty file: refused on the form, nothing queued.
    let png = b"\x89PNG\r\n\x1a\n0000".to_vec();
    let (status, _, page) = post_import(&app, &editor, Some(&csrf), "photo.csv", png).await;
    assert_eq!(status, 422);
    assert!(page.contains("a PNG image"), "{page}");
    let (status, _, page) = post_import(&app, &editor, Some(&csrf), "e.csv", Vec::new()).await;
    assert_eq!(status, 422);
    assert!(page.contains("Choose a file"), "{page}");

    // Over 50 MB: a clear error.
    let big = vec![b'a'; 50 * 1024 * 1024 + 1];
    let (status, _, page) = post_import(&app, &editor, Some(&csrf), "big.csv", big).await;
    assert_eq!(status, 413);
    assert!(page.contains("50 MB"), "{page}");

    // A header without a name column, checked before anything is written: the job fails
    // with the reason, and the rows before a bad one are not written either.
    for (sheet, reason) in [
        ("external_id,phone\nP-1,+256772000001\n", "no 'name' column"),
        (
            "external_id,name,name\nP-1,Amina,Amina\n",
            "appears twice in the header row",
        ),
    ] {
        let (status, location, body) =
            post_import(&app, &editor, Some(&csrf), "p.csv", sheet.into()).await;
        assert_eq!(status, 303, "{body}");
        let end = wait(&app, &editor, &location).await;
        assert_eq!(end["status"], "failed", "{end}");
        assert!(end["error"].as_str().unwrap().contains(reason), "{end}");
        let (_, page) = get(&app, &editor, &location).await;
        assert!(page.contains("id=\"import-error\""), "{page}");
    }
    assert_eq!(app.db.count_cases(app.alpha.id).await.unwrap(), 0);
}

/// A write that waits on SQLite's lock past the busy timeout (another process holds it, as a
/// long import did) is answered 503 with `Retry-After`, by the API and by the pages, not 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_database_is_a_503_with_retry_after() {
    let app = TestApp::spawn(Dialect::Sqlite).await;
    let viewer = login(&app, &app.alpha_viewer).await;
    let csrf = hidden(&get(&app, &viewer, "/a/alpha/cases").await.1, "csrf");
    let lock = app.test_db.hold_write_lock().await;
    let api = async {
        let resp = app
            .http
            .post(app.api("beta", "/cases"))
            .bearer_auth(&app.beta_admin.token)
            .json(&json!({"name": "Wanjiru", "external_id": "K-1"}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (status, retry, resp.text().await.unwrap())
    };
    let page = async {
        // Logging out deletes the session: a page's write.
        let resp = app
            .http
            .post(app.url("/logout"))
            .header("cookie", format!("casecast_session={viewer}"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let retry = resp.headers().get("retry-after").is_some();
        (status, retry, resp.text().await.unwrap())
    };
    let ((status, retry, body), (page_status, page_retry, page_body)) = tokio::join!(api, page);
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("5"));
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "busy", "{body}");
    assert_eq!(page_status, 503, "{page_body}");
    assert!(page_retry);
    assert!(page_body.contains("try again"), "{page_body}");
    drop(lock);

    // Once the lock is gone, the same request succeeds.
    let (status, body) = call(
        &app,
        Method::POST,
        &app.api("beta", "/cases"),
        Some(&app.beta_admin.token),
        Some(json!({"name": "Wanjiru", "external_id": "K-1"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}
