//! A person in headless Chromium against the real binary: a project and a login made with the
//! CLI, `casecast serve` started from the CLI; log in, search the case list, open a case.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_testkit::cli::{self, Server};
use casecast_testkit::{Browser, Dialect};

const BIN: &str = env!("CARGO_BIN_EXE_casecast");

/// `casecast --db URL ARGS…`, which must succeed; returns its stdout.
async fn casecast(url: &str, args: &[&str], stdin: Option<&str>) -> String {
    cli::run(cli::command(BIN, Some(url)), args, stdin)
        .await
        .ok()
        .to_string()
}

casecast_testkit::on_both_engines!(browser_login_search_and_open_a_case);

async fn browser_login_search_and_open_a_case(engine: Dialect) {
    let (url, _dir) = casecast_testkit::fresh_url(engine).await;
    casecast(
        &url,
        &[
            "project",
            "create",
            "gulu",
            "--name",
            "Gulu study",
            "--time-zone",
            "Africa/Kampala",
            "--country",
            "UG",
        ],
        None,
    )
    .await;
    casecast(
        &url,
        &[
            "user",
            "create",
            "nurse@gulu.example.org",
            "--project",
            "gulu",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        Some("a long secret\n"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let sheet = dir.path().join("cases.csv");
    std::fs::write(
        &sheet,
        "external_id,name,phone_number,hiv_status\nGUL-0001,Aber Grace,0772 123456,positive\nLIR-0002,Okello Moses,0772 654321,negative\nKLA-0003,Nakato Sarah,,positive\n",
    )
    .unwrap();
    casecast(
        &url,
        &[
            "cases",
            "import",
            "--project",
            "gulu",
            sheet.to_str().unwrap(),
        ],
        None,
    )
    .await;
    let server = Server::start(BIN, &url, &[]).await;
    let base = server.base.clone();

    let b = Browser::start().await;
    b.goto(&format!("{base}/a/gulu/cases")).await;
    assert!(b.url().await.contains("/login"), "sent to the login page");
    b.log_in("nurse@gulu.example.org", "a long secret").await;
    b.wait_for_url("the case list", |u| u.ends_with("/a/gulu/cases"))
        .await;
    assert!(
        b.url().await.ends_with("/a/gulu/cases"),
        "back where we started: {}",
        b.url().await
    );
    let rows = b.text(&b.find("table.cases tbody").await).await;
    assert!(
        rows.contains("Aber Grace") && rows.contains("Nakato Sarah"),
        "{rows}"
    );

    b.type_into(&b.find("input[name=q]").await, "okello").await;
    b.click(&b.find("form.search button").await).await;
    b.wait_for_url("the search result", |u| u.contains("q=okello"))
        .await;
    let rows = b.text(&b.find("table.cases tbody").await).await;
    assert!(
        rows.contains("Okello Moses") && !rows.contains("Aber Grace"),
        "{rows}"
    );

    b.click(&b.find("table.cases tbody a").await).await;
    b.wait_for_url("a case page", |u| u.contains("/a/gulu/cases/"))
        .await;
    assert_eq!(b.text(&b.find("h1").await).await.trim(), "Okello Moses");
    let fields = b.text(&b.find("table.fields").await).await;
    assert!(
        fields.contains("LIR-0002") && fields.contains("+256772654321"),
        "{fields}"
    );
    assert!(b
        .text(&b.find("table.properties").await)
        .await
        .contains("negative"));
    if let Ok(shots) = std::env::var("CASECAST_SCREENSHOTS") {
        b.screenshot(
            &std::path::Path::new(&shots).join(format!("case-page-{}.png", engine.name())),
        )
        .await;
    }
    b.quit().await;
    drop(server);
}
