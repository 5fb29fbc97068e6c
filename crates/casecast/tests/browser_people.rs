//! People, not identifiers, in headless Chromium against the real binary: an upload whose
//! header is written as people write it (`Case Identifier`) and whose external IDs are in the
//! wrong case is accepted, and its report names each case, linked to its page, with outcomes
//! in words and a problems-only view; the broadcast composer refuses a language name where its
//! code belongs ("Acholi"), counts the recipients by language code and warns of a translation
//! nobody gets and of a misspelt property.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_testkit::cli::{self, Server};
use casecast_testkit::{Browser, Dialect};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_casecast");

/// `casecast --db URL ARGS…`, which must succeed; returns its stdout.
async fn casecast(url: &str, args: &[&str], stdin: Option<&str>) -> String {
    cli::run(cli::command(BIN, Some(url)), args, stdin)
        .await
        .ok()
        .to_string()
}

casecast_testkit::on_both_engines!(browser_pages_name_people);

/// Project `gulu` with an editor and an admin, four cases (two speak Acholi, one English, one
/// has no language code; each has a district) and a group "Gulu study" holding Okello.
/// Returns the group's id.
async fn project(url: &str) -> String {
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
    for (email, role) in [
        ("editor@gulu.example.org", "editor"),
        ("admin@gulu.example.org", "admin"),
    ] {
        casecast(
            url,
            &[
                "user",
                "create",
                email,
                "--project",
                "gulu",
                "--role",
                role,
                "--password-stdin",
            ],
            Some("gulu password\n"),
        )
        .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.csv");
    std::fs::write(
        &cases,
        "Case ID,External ID,Name,Phone Number,Language Code,district\n\
         c-aber,GUL-0020,Aber Grace,0772 100001,ach,Gulu\n\
         c-okello,GUL-0021,Okello James,0772 100002,ach,Gulu\n\
         c-auma,GUL-0022,Auma Joan,0772 100003,en,Amuru\n\
         c-opio,GUL-0023,Opio Peter,0772 100004,,Omoro\n",
    )
    .unwrap();
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
    let created = casecast(
        url,
        &["groups", "create", "--project", "gulu", "Gulu study"],
        None,
    )
    .await;
    let group = created
        .split_whitespace()
        .find(|w| w.parse::<i64>().is_ok())
        .unwrap_or_else(|| panic!("no group id in {created:?}"))
        .to_string();
    casecast(
        url,
        &["groups", "add", "--project", "gulu", &group, "c-okello"],
        None,
    )
    .await;
    group
}

/// A log gateway, added through the API with the admin's token.
async fn log_gateway(url: &str, base: &str) {
    let token = casecast(
        url,
        &[
            "token",
            "create",
            "--project",
            "gulu",
            "--user",
            "admin@gulu.example.org",
        ],
        None,
    )
    .await
    .trim()
    .to_string();
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/projects/gulu/gateways"))
        .bearer_auth(token)
        .json(&json!({"name": "Log", "kind": "log"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

async fn browser_pages_name_people(engine: Dialect) {
    let (url, _dir) = casecast_testkit::fresh_url(engine).await;
    let group = project(&url).await;
    let server = Server::start(BIN, &url, &[]).await;
    let base = server.base.clone();
    log_gateway(&url, &base).await;

    let b = Browser::start().await;
    b.goto(&format!("{base}/a/gulu/messaging/case-groups/{group}"))
        .await;
    b.log_in("editor@gulu.example.org", "gulu password").await;
    b.wait_for_url("the group page", |u| {
        u.ends_with(&format!("/messaging/case-groups/{group}"))
    })
    .await;

    // Item 12 and 14: upload a sheet with a header as people write it and IDs in lower case.
    let dir = tempfile::tempdir().unwrap();
    let sheet = dir.path().join("people.csv");
    std::fs::write(&sheet, "Case Identifier\ngul-0020\ngul-0021\nGUL-9999\n").unwrap();
    b.type_into(
        &b.find("#upload input[type=file]").await,
        sheet.to_str().unwrap(),
    )
    .await;
    b.click(&b.find("#upload button").await).await;
    let report_url = b
        .wait_for_url("the upload page", |u| u.contains("/messaging/uploads/"))
        .await;
    b.wait_for_text("#upload-status", |t| t == "done").await;
    let counts = b.text(&b.find("#upload-counts").await).await;
    assert!(
        counts.contains("added 1")
            && counts.contains("already in the group 1")
            && counts.contains("no such case 1"),
        "{counts}"
    );
    let results = b.text(&b.find("#upload-results").await).await;
    assert!(
        results.contains("Aber Grace GUL-0020") && results.contains("Okello James GUL-0021"),
        "the report names the cases: {results}"
    );
    assert!(!results.contains("already_in_group"), "{results}");
    let link = b.find("#upload-results a.case-link").await;
    assert_eq!(b.text(&link).await, "Aber Grace");
    assert!(b
        .attr(&link, "href")
        .await
        .unwrap()
        .ends_with("/a/gulu/cases/c-aber"));
    b.click(&b.find("#problems-only").await).await;
    b.wait_for_url("the problems", |u| u.ends_with("?problems=1"))
        .await;
    let problems = b.text(&b.find("#upload-results").await).await;
    assert!(
        problems.contains("GUL-9999") && !problems.contains("Aber Grace"),
        "{problems}"
    );
    assert!(report_url.contains("/messaging/uploads/"));

    // Item 13: the composer.
    b.goto(&format!("{base}/a/gulu/messaging/broadcasts/new"))
        .await;
    let properties = b.text(&b.find("#property-names summary").await).await;
    assert!(properties.contains("case properties (1)"), "{properties}");
    b.type_into(&b.find("input[name=name]").await, "Clinic reminder")
        .await;
    b.type_into(&b.find("#cases").await, "c-aber\nc-okello\nc-auma\nc-opio")
        .await;
    b.type_into(&b.find("#text-default").await, "Clinic in {case.distrct}")
        .await;
    b.type_into(&b.find("input[name=lang_0]").await, "Acholi")
        .await;
    b.type_into(&b.find("textarea[name=text_0]").await, "Apwoyo")
        .await;
    let old = b.find("#compose").await;
    b.click(&b.find("#preview-button").await).await;
    b.wait_for_new("#compose", &old).await;
    let error = b.text(&b.find("#form-error").await).await;
    assert!(
        error.contains("'Acholi' is not a language code") && error.contains("ach"),
        "{error}"
    );
    // The translation's code written as cases have it, and one no recipient has.
    let lang = b.find("input[name=lang_0]").await;
    b.clear(&lang).await;
    b.type_into(&lang, "ach").await;
    b.type_into(&b.find("input[name=lang_1]").await, "lg").await;
    b.type_into(&b.find("textarea[name=text_1]").await, "Gyebale")
        .await;
    let old = b.find("#compose").await;
    b.click(&b.find("#preview-button").await).await;
    b.wait_for_new("#compose", &old).await;
    let languages = b.text(&b.find("#preview-languages").await).await;
    assert!(
        languages.contains("ach 2")
            && languages.contains("en 1")
            && languages.contains("no code 1"),
        "{languages}"
    );
    let warnings = b.text(&b.find("#preview-warnings").await).await;
    assert!(
        warnings.contains("No recipient gets the translation 'lg'"),
        "{warnings}"
    );
    assert!(
        warnings.contains("did you mean {case.district}?"),
        "{warnings}"
    );
    b.quit().await;
}
