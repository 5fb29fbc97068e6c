//! Keywords as a person sets them up, in headless Chromium against the real binary: an editor
//! finds Keywords in the messaging navigation, creates JOIN with two actions (a reply with a
//! Swahili translation, and adding the sender to a case group) through the form, sees it
//! listed with its actions and its use, opens its page, and finds a JOIN sent in through a
//! gateway's inbound webhook in the message log.
//!
//! [`sms_in`] posts an inbound SMS the way an aggregator forwards one: the router acts on it
//! (the sender joins the group) and the keyword's page counts it.

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

casecast_testkit::on_both_engines!(browser_keyword_with_two_actions);

/// Saves a screenshot as `{name}-{engine}.png` when `CASECAST_SCREENSHOTS` names a folder.
async fn screenshot(b: &Browser, name: &str, engine: Dialect) {
    if let Ok(shots) = std::env::var("CASECAST_SCREENSHOTS") {
        let file = format!("{name}-{}.png", engine.name());
        b.screenshot(&std::path::Path::new(&shots).join(file)).await;
    }
}

/// A project `gulu` with an editor and an admin, one case (Aber, +256772100001) and a case
/// group "ANC", and an admin's API token. Returns the group id and the token.
async fn project(url: &str) -> (String, String) {
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
        "case_id,name,phone_number,language_code\nc-aber,Aber Grace,0772 100001,sw\n",
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
    // "created case group 1 'ANC'"
    let created = casecast(url, &["groups", "create", "--project", "gulu", "ANC"], None).await;
    let group = created
        .split_whitespace()
        .find(|w| w.parse::<i64>().is_ok())
        .unwrap_or_else(|| panic!("no group id in {created:?}"))
        .to_string();
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
    (group, token)
}

/// Adds the gateways through the API: a log gateway that sends everything, and an HTTP
/// gateway that sends nothing (its prefix matches no case) but whose inbound webhook takes
/// messages, as an aggregator forwards them. Returns that webhook's URL.
async fn gateways(base: &str, token: &str) -> String {
    let http = reqwest::Client::new();
    let add = |body: serde_json::Value| {
        http.post(format!("{base}/api/v1/projects/gulu/gateways"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let log = add(json!({"name": "Log", "kind": "log"})).await.unwrap();
    assert_eq!(log.status(), 201, "{}", log.text().await.unwrap());
    let aggregator = add(json!({
        "name": "Aggregator", "kind": "http", "callback_base_url": base, "prefixes": ["+999"],
        "config": {"url": "https://sms.example.org/send", "method": "GET",
                   "params": [["to", "{to}"], ["text", "{text}"]]}
    }))
    .await
    .unwrap();
    let status = aggregator.status();
    let body: serde_json::Value = aggregator.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body["webhook_urls"]["inbound"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An SMS from `phone`, forwarded by the aggregator to the inbound webhook.
async fn sms_in(inbound: &str, phone: &str, text: &str) {
    let resp = reqwest::Client::new()
        .post(inbound)
        .form(&[("from", phone), ("to", "8080"), ("text", text)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

/// Selects the option `value` of the `<select>` matching `select`.
async fn choose(b: &Browser, select: &str, value: &str) {
    b.click(&b.find(&format!("{select} option[value=\"{value}\"]")).await)
        .await;
}

async fn browser_keyword_with_two_actions(engine: Dialect) {
    let (url, _dir) = casecast_testkit::fresh_url(engine).await;
    let (group, token) = project(&url).await;
    let server = Server::start(BIN, &url, &[]).await;
    let base = server.base.clone();
    let inbound = gateways(&base, &token).await;

    let b = Browser::start().await;
    b.goto(&format!("{base}/a/gulu/cases")).await;
    b.log_in("editor@gulu.example.org", "gulu password").await;
    b.wait_for_url("the cases page", |u| u.ends_with("/a/gulu/cases"))
        .await;
    // Keywords are in the messaging navigation.
    b.click(&b.find("header nav a[href$='/messaging/keywords']").await)
        .await;
    b.wait_for_url("the keywords page", |u| u.ends_with("/messaging/keywords"))
        .await;
    assert!(b
        .text(&b.find("#no-keywords").await)
        .await
        .contains("There are no keywords yet"));
    b.click(&b.find("#new-keyword").await).await;
    b.wait_for_url("the form", |u| u.ends_with("/messaging/keywords/new"))
        .await;

    // JOIN: reply (with a Swahili translation), then add the sender to ANC.
    b.type_into(&b.find("#keyword").await, "JOIN").await;
    choose(&b, "[name='a0.type']", "reply").await;
    b.type_into(
        &b.find("[name='a0.text']").await,
        "Welcome to ANC reminders, {case.name}!",
    )
    .await;
    b.type_into(
        &b.find("[name='a0.translations']").await,
        "sw: Karibu kwenye vikumbusho vya ANC!",
    )
    .await;
    choose(&b, "[name='a1.type']", "add_to_group").await;
    choose(&b, "[name='a1.case_group_id']", &group).await;
    screenshot(&b, "keyword-form", engine).await;
    b.click(&b.find("#save-keyword").await).await;
    b.wait_for_url("the keywords page", |u| u.contains("/messaging/keywords?"))
        .await;
    let notice = b.text(&b.find("#keywords-notice").await).await;
    assert_eq!(notice, "The keyword JOIN was created.");
    let list = b.text(&b.find("#keyword-list").await).await;
    for part in [
        "JOIN",
        "reply “Welcome to ANC reminders, {case.name}!” (+1 translations)",
        "add to group “ANC”",
    ] {
        assert!(list.contains(part), "{part} not in {list}");
    }
    let row = b.find("#keyword-list tbody tr").await;
    let id = b
        .attr(&row, "id")
        .await
        .unwrap()
        .trim_start_matches("keyword-")
        .to_string();
    assert_eq!(
        b.text(&b.find(&format!("#keyword-{id} [data-use='7']")).await)
            .await,
        "0"
    );
    screenshot(&b, "keywords", engine).await;

    // The API agrees with what the form made.
    let api: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/projects/gulu/keywords/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        api["actions"],
        json!([
            {"type": "reply", "text": {"*": "Welcome to ANC reminders, {case.name}!",
                                       "sw": "Karibu kwenye vikumbusho vya ANC!"}},
            {"type": "add_to_group", "case_group_id": group.parse::<i64>().unwrap()}
        ])
    );

    // Aber texts JOIN in: the keyword acts (she joins the group) and its page counts the use.
    sms_in(&inbound, "+256772100001", "join").await;
    b.click(&b.find(&format!("#keyword-{id} a.keyword-link")).await)
        .await;
    b.wait_for_url("the keyword's page", |u| {
        u.ends_with(&format!("/messaging/keywords/{id}"))
    })
    .await;
    assert_eq!(b.text(&b.find("#keyword-usage").await).await, "JOIN");
    assert_eq!(
        b.text(&b.find("#keyword-use [data-use='7']").await).await,
        "1",
        "the JOIN is counted"
    );
    let members: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/projects/gulu/case-groups/{group}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(members["case_count"], 1, "Aber joined ANC: {members}");
    b.click(&b.find("#keyword-messages-link").await).await;
    b.wait_for_url("the message log", |u| {
        u.contains(&format!("/messaging/messages?keyword_id={id}"))
    })
    .await;
    // The webhook has stored the message when it answers.
    b.goto(&format!(
        "{base}/a/gulu/messaging/messages?direction=inbound"
    ))
    .await;
    let log = b.text(&b.find("#message-log").await).await;
    assert!(log.contains("join") && log.contains("Aber Grace"), "{log}");
    b.quit().await;
    drop(server);
}
