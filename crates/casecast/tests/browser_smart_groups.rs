//! A smart group as a person makes one, in headless Chromium against the real binary (issue
//! 16): on the case list she types a query with an error and sees where it is, fixes it and
//! sees the matching count, saves it as a smart group, and lands on the group's page with its
//! query and members; a case then changes (an import) so that it no longer matches, and the
//! group's count moves without anyone touching the group.

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

casecast_testkit::on_both_engines!(browser_query_to_smart_group);

/// Saves a screenshot as `{name}-{engine}.png` when `CASECAST_SCREENSHOTS` names a folder.
async fn screenshot(b: &Browser, name: &str, engine: Dialect) {
    if let Ok(shots) = std::env::var("CASECAST_SCREENSHOTS") {
        let file = format!("{name}-{}.png", engine.name());
        b.screenshot(&std::path::Path::new(&shots).join(file)).await;
    }
}

async fn import(url: &str, csv: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.csv");
    std::fs::write(&cases, csv).unwrap();
    casecast(
        url,
        &[
            "cases",
            "import",
            "--project",
            "gulu",
            cases.to_str().unwrap(),
        ],
        None,
    )
    .await;
}

/// A project `gulu` with an editor and four cases: two adults in Gulu, a child in Gulu, an
/// adult in Lira.
async fn project(url: &str) {
    casecast(
        url,
        &[
            "project",
            "create",
            "gulu",
            "--time-zone",
            "Africa/Kampala",
            "--country",
            "UG",
        ],
        None,
    )
    .await;
    casecast(
        url,
        &[
            "user",
            "create",
            "editor@gulu.example.org",
            "--project",
            "gulu",
            "--role",
            "editor",
            "--password-stdin",
        ],
        Some("gulu password\n"),
    )
    .await;
    import(
        url,
        "case_id,name,phone_number,district,age\n\
         c-aber,Aber Grace,0772 100001,Gulu,34\n\
         c-bako,Bako Ruth,0772 100002,Gulu,19\n\
         c-cana,Cana Joy,0772 100003,Gulu,12\n\
         c-dimo,Dimo Ann,0772 100004,Lira,40\n",
    )
    .await;
}

async fn search(b: &Browser, query: &str) {
    let box_ = b.find("#case-query").await;
    b.clear(&box_).await;
    b.type_into(&box_, query).await;
    let form = b.find("#case-filters").await;
    b.click(&b.find("#case-filters button[type=submit]").await)
        .await;
    b.wait_for_new("#case-filters", &form).await;
}

async fn browser_query_to_smart_group(engine: Dialect) {
    let (url, _dir) = casecast_testkit::fresh_url(engine).await;
    project(&url).await;
    let server = Server::start(BIN, &url, &[]).await;
    let base = server.base.clone();

    let b = Browser::start().await;
    b.goto(&format!("{base}/a/gulu/cases")).await;
    b.log_in("editor@gulu.example.org", "gulu password").await;
    b.wait_for_url("the cases page", |u| u.ends_with("/a/gulu/cases"))
        .await;

    // A query with an error: where it is, and no offer to save it.
    search(&b, "district = Gulu AND age >=").await;
    let error = b.text(&b.find("#query-error").await).await;
    assert_eq!(error, "query: at 27: expected a value after '>='");
    assert!(b
        .execute("return document.querySelector('#save-smart-group') === null;")
        .await
        .as_bool()
        .unwrap());
    // Fixed: two match.
    search(&b, "district = Gulu AND age >= 18").await;
    assert_eq!(b.text(&b.find("#matching").await).await, "2");
    let list = b.text(&b.find("table.cases").await).await;
    assert!(
        list.contains("Aber Grace") && list.contains("Bako Ruth"),
        "{list}"
    );
    assert!(
        !list.contains("Cana Joy") && !list.contains("Dimo Ann"),
        "{list}"
    );
    screenshot(&b, "case-query", engine).await;

    // Saved as a smart group: its page.
    b.type_into(
        &b.find("#save-smart-group input[name=name]").await,
        "Gulu adults",
    )
    .await;
    b.click(&b.find("#save-smart-group button[type=submit]").await)
        .await;
    b.wait_for_url("the group's page", |u| {
        u.contains("/messaging/case-groups/")
    })
    .await;
    assert_eq!(
        b.text(&b.find("#smart-query").await).await,
        "district = Gulu AND age >= 18"
    );
    assert_eq!(b.text(&b.find("#group-count").await).await, "2 cases");
    let members = b.text(&b.find("table.members").await).await;
    assert!(members.contains("Aber Grace") && members.contains("Bako Ruth"));
    assert!(b
        .execute("return document.querySelector('#add-case') === null && document.querySelector('#upload') === null;")
        .await
        .as_bool()
        .unwrap(), "no hand changes offered");
    screenshot(&b, "smart-group", engine).await;

    // Bako moves to Lira (an import); the server's worker takes her out of the group.
    import(&url, "case_id,name,district\nc-bako,Bako Ruth,Lira\n").await;
    let mut count = String::new();
    for _ in 0..40 {
        b.refresh().await;
        count = b.text(&b.find("#group-count").await).await;
        if count == "1 case" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(count, "1 case");
    let members = b.text(&b.find("table.members").await).await;
    assert!(
        members.contains("Aber Grace") && !members.contains("Bako Ruth"),
        "{members}"
    );
    let history = b.text(&b.find("table.history").await).await;
    assert!(history.contains("members kept current"), "{history}");
    b.quit().await;
    drop(server);
}
