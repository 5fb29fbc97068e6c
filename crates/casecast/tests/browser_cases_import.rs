//! Importing cases from the pages as a person does it in headless Chromium, against the real
//! binary: from the case list's "Import cases" to the form, a sheet uploaded, the progress bar
//! filled by the background job, the counts and each row's outcome, the report downloaded, and
//! the new cases in the list.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_testkit::cli::{self, Server};
use casecast_testkit::{Browser, Dialect};

const BIN: &str = env!("CARGO_BIN_EXE_casecast");

/// `casecast --db URL ARGS…`, which must succeed.
async fn casecast(url: &str, args: &[&str], stdin: Option<&str>) {
    cli::run(cli::command(BIN, Some(url)), args, stdin)
        .await
        .ok();
}

casecast_testkit::on_both_engines!(browser_cases_import);

async fn browser_cases_import(engine: Dialect) {
    let (url, _dir) = casecast_testkit::fresh_url(engine).await;
    casecast(
        &url,
        &["project", "create", "gulu", "--country", "UG"],
        None,
    )
    .await;
    casecast(
        &url,
        &[
            "user",
            "create",
            "pm@gulu.example.org",
            "--project",
            "gulu",
            "--role",
            "editor",
            "--password-stdin",
        ],
        Some("programme manager\n"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let sheet = dir.path().join("people.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    let rows: [[&str; 3]; 5] = [
        ["external_id", "name", "phone_number"],
        ["GUL-1", "Aber Grace", "0772 100001"],
        ["GUL-2", "Okello Moses", "+256 77"],
        ["", "", ""],
        ["GUL-3", "Auma Joan", ""],
    ];
    for (r, row) in rows.iter().enumerate() {
        for (c, value) in row.iter().enumerate() {
            if !value.is_empty() {
                ws.write_string(r as u32, c as u16, *value).unwrap();
            }
        }
    }
    wb.save(&sheet).unwrap();
    let server = Server::start(BIN, &url, &[]).await;
    let base = server.base.clone();

    let b = Browser::start().await;
    b.goto(&format!("{base}/a/gulu/cases")).await;
    b.log_in("pm@gulu.example.org", "programme manager").await;
    b.click(&b.find("#import-cases").await).await;
    b.wait_for_url("the import form", |u| u.ends_with("/a/gulu/cases/import"))
        .await;
    b.type_into(
        &b.find("#import-form input[type=file]").await,
        sheet.to_str().unwrap(),
    )
    .await;
    b.click(&b.find("#import-form button").await).await;
    b.wait_for_url("the import's page", |u| {
        u.contains("/a/gulu/cases/imports/")
    })
    .await;
    b.wait_for_text("#import-status", |t| t == "done").await;
    let bar = b.find("#import-bar").await;
    assert_eq!(b.attr(&bar, "value").await.as_deref(), Some("4"));
    assert_eq!(b.attr(&bar, "max").await.as_deref(), Some("4"));
    let counts = b.text(&b.find("#import-counts").await).await;
    assert!(
        counts.contains("created 2") && counts.contains("error 1") && counts.contains("blank 1"),
        "{counts}"
    );
    let page = b.source().await;
    assert!(page.contains("too short"), "{page}");

    // The report, as a person downloads it.
    let href = b.attr(&b.find("#report-csv").await, "href").await.unwrap();
    let session = b.cookie("casecast_session").await.unwrap();
    let resp = reqwest::Client::new()
        .get(format!("{base}{}", href.trim_start_matches(&base)))
        .header("cookie", format!("casecast_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let report = resp.text().await.unwrap();
    let outcomes: Vec<&str> = report
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["created", "error", "blank", "created"],
        "{report}"
    );

    b.goto(&format!("{base}/a/gulu/cases")).await;
    let list = b.source().await;
    assert!(
        list.contains("Aber Grace") && list.contains("Auma Joan") && !list.contains("Okello"),
        "{list}"
    );
    b.quit().await;
}
