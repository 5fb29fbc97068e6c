//! Issue 12, items 10 and 15, as a person meets them in headless Chromium at a phone's width
//! (390 px): a form's answer is a page that can be reloaded (the address is the page, not the
//! form's action, and a reload submits nothing); no page scrolls sideways, a wide table
//! scrolls inside its own box; counts read "1 case"; adding a closed case is a warning; a name
//! over the limit is refused, not cut, and the refused rename keeps what was typed; the case
//! page's message status changes without a reload.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_testkit::cli::{self, Server};
use casecast_testkit::{Browser, Dialect};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_casecast");
const WIDTH: u32 = 390;

/// `casecast --db URL ARGS…`, which must succeed; returns its stdout.
async fn casecast(url: &str, args: &[&str], stdin: Option<&str>) -> String {
    cli::run(cli::command(BIN, Some(url)), args, stdin)
        .await
        .ok()
        .to_string()
}

casecast_testkit::on_both_engines!(browser_forms_at_phone_width);

/// The page's width as laid out: wider than the screen means it scrolls sideways.
async fn page_width(b: &Browser) -> u64 {
    b.execute("return document.documentElement.scrollWidth;")
        .await
        .as_u64()
        .unwrap()
}

#[track_caller]
fn assert_fits(width: u64, what: &str) {
    assert!(
        width <= u64::from(WIDTH),
        "{what} is {width} px wide at a {WIDTH} px screen: the page scrolls sideways"
    );
}

async fn browser_forms_at_phone_width(engine: Dialect) {
    let (url, _dir) = casecast_testkit::fresh_url(engine).await;
    casecast(
        &url,
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
    let email = "admin@gulu.example.org";
    casecast(
        &url,
        &[
            "user",
            "create",
            email,
            "--project",
            "gulu",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("gulu admin password\n"),
    )
    .await;
    let token = casecast(
        &url,
        &["token", "create", "--project", "gulu", "--user", email],
        None,
    )
    .await
    .trim()
    .to_string();
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.csv");
    std::fs::write(
        &cases,
        "case_id,external_id,name,phone_number,closed,district\n\
         c-aber,GUL-0001,Aber Grace,0772 100001,false,Gulu\n\
         c-okot,GUL-0002-WITH-A-VERY-LONG-EXTERNAL-IDENTIFIER,Okot-Nakimuli-Odongo-Akello-Longname,0772 100002,false,Omoro-Koro-Bobi-Lalogi-Odek\n\
         c-shut,GUL-0003,Auma Closed,0772 100003,true,Gulu\n",
    )
    .unwrap();
    casecast(
        &url,
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
    let server = Server::start(BIN, &url, &[]).await;
    let base = server.base.clone();
    let api = |path: &str| format!("{base}/api/v1/projects/gulu{path}");
    let http = reqwest::Client::new();
    let resp = http
        .post(api("/gateways"))
        .bearer_auth(&token)
        .json(&json!({"name": "Log", "kind": "log"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // Quiet hours from now on hold the SMS sent below (the dispatcher reads settings every
    // few seconds: set them long before). Africa/Kampala keeps UTC+3 all year.
    let now_min = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 60
        + 3 * 60;
    let at = |hours: i64| {
        let m = (now_min + hours * 60).rem_euclid(24 * 60);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    let quiet = json!({"quiet_hours_start": at(-1), "quiet_hours_end": at(2)});
    let resp = http
        .put(api("/settings/messaging"))
        .bearer_auth(&token)
        .json(&quiet)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let b = Browser::start().await;
    b.set_viewport(WIDTH, 844).await;
    b.goto(&format!("{base}/a/gulu/messaging/case-groups"))
        .await;
    b.log_in(email, "gulu admin password").await;
    b.wait_for_url("the case groups page", |u| {
        u.ends_with("/messaging/case-groups")
    })
    .await;
    assert_fits(page_width(&b).await, "the case groups page");

    // A name over the limit is refused, not cut to fit, and stays as typed.
    let long = "Gulu participants of the study ".repeat(10);
    let long = long.trim();
    assert!(long.chars().count() > 255);
    let name = b.find("#create-group input[name=name]").await;
    b.type_into(&name, long).await;
    b.click(&b.find("#create-group button").await).await;
    b.wait_for_new("#create-group input[name=name]", &name)
        .await;
    let error = b.wait_for_text("p.error", |t| !t.is_empty()).await;
    assert!(error.contains("at most 255 characters"), "{error}");
    let kept = b.find("#create-group input[name=name]").await;
    assert_eq!(b.attr(&kept, "value").await.as_deref(), Some(long));
    b.clear(&kept).await;
    b.type_into(&kept, "Ward 1").await;
    b.click(&b.find("#create-group button").await).await;
    let group_url = b
        .wait_for_url("the new group", |u| u.contains("/messaging/case-groups/"))
        .await;

    // "Add case": the address is the group's page, and reloading it adds nothing again.
    let input = b.find("#add-case input[name=identifier]").await;
    b.type_into(&input, "GUL-0001").await;
    b.click(&b.find("#add-case button").await).await;
    b.wait_for_new("#add-case input[name=identifier]", &input)
        .await;
    let added = b.wait_for_text("#add-result", |t| !t.is_empty()).await;
    assert!(added.contains("Added Aber Grace"), "{added}");
    let after_add = b.url().await;
    assert!(
        after_add.starts_with(&group_url) && !after_add.contains("/add"),
        "after adding, the address is {after_add}"
    );
    assert!(b.text(&b.find("#group-count").await).await == "1 case");
    let before = b.find("#add-case input[name=identifier]").await;
    b.refresh().await;
    b.wait_for_new("#add-case input[name=identifier]", &before)
        .await;
    let again = b.text(&b.find("#add-result").await).await;
    assert!(
        again.contains("Added Aber Grace") && !again.contains("already"),
        "the reload re-submitted: {again}"
    );
    assert_eq!(b.text(&b.find("#group-count").await).await, "1 case");
    let history = b.text(&b.find("table.history tbody").await).await;
    assert_eq!(
        history.matches("add").count(),
        1,
        "one add in the history: {history}"
    );

    // A closed case is added with a warning, not a success.
    let input = b.find("#add-case input[name=identifier]").await;
    b.type_into(&input, "c-shut").await;
    b.click(&b.find("#add-case button").await).await;
    b.wait_for_new("#add-case input[name=identifier]", &input)
        .await;
    let result = b.find("#add-result").await;
    let class = b.attr(&result, "class").await.unwrap_or_default();
    assert!(
        class.split(' ').any(|c| c == "warning") && !class.split(' ').any(|c| c == "success"),
        "the closed case's add is shown as {class}"
    );
    assert!(b.text(&result).await.contains("closed"));
    assert_eq!(b.text(&b.find("#group-count").await).await, "2 cases");
    b.type_into(&b.find("#add-case input[name=identifier]").await, "c-okot")
        .await;
    b.click(&b.find("#add-case button").await).await;
    b.wait_for_text("#group-count", |t| t == "3 cases").await;
    assert_fits(page_width(&b).await, "the group page");

    // A rename over the limit is refused and keeps the typed text.
    b.click(&b.find("details.panel summary").await).await;
    let rename = b.find("#rename input[name=name]").await;
    b.clear(&rename).await;
    b.type_into(&rename, long).await;
    b.click(&b.find("#rename button").await).await;
    b.wait_for_new("#rename input[name=name]", &rename).await;
    let error = b.wait_for_text("#group-error", |t| !t.is_empty()).await;
    assert!(error.contains("at most 255 characters"), "{error}");
    let kept = b.find("#rename input[name=name]").await;
    assert_eq!(b.attr(&kept, "value").await.as_deref(), Some(long));
    assert!(b
        .text(&b.find("#group-name").await)
        .await
        .starts_with("Ward 1"));
    assert!(
        !b.url().await.contains("/rename"),
        "the address is the group's page"
    );

    // The case list: the page fits, its wide table scrolls inside its own box.
    b.goto(&format!("{base}/a/gulu/cases")).await;
    assert!(b.text(&b.find("h1").await).await.contains("3 cases in all"));
    assert_fits(page_width(&b).await, "the case list");
    let table = b
        .execute(
            "var t = document.querySelector('table.cases'); \
             return [t.scrollWidth, t.clientWidth, getComputedStyle(t).overflowX];",
        )
        .await;
    let (scroll, client) = (table[0].as_u64().unwrap(), table[1].as_u64().unwrap());
    assert!(client <= u64::from(WIDTH), "the table's box is {client} px");
    assert!(
        scroll > client,
        "the case table is wider than its box ({scroll} > {client})"
    );
    assert_eq!(table[2], "auto", "and scrolls inside it");

    // The case page: a message's status changes without a reload.
    b.goto(&format!("{base}/a/gulu/cases/c-aber")).await;
    assert_fits(page_width(&b).await, "the case page");
    b.type_into(&b.find("#sms-text").await, "Your visit is tomorrow.")
        .await;
    b.click(&b.find("#send-sms button[type=submit]").await)
        .await;
    b.wait_for_url("the case page after sending", |u| u.contains("?done=sent"))
        .await;
    let status = "#message-history tbody tr:first-child .status";
    assert_eq!(
        b.text(&b.find(status).await).await,
        "queued",
        "held by the quiet hours"
    );
    b.execute("window.casecastNotReloaded = true; return null;")
        .await;
    let resp = http
        .put(api("/settings/messaging"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The dispatcher sees the settings within seconds; the page polls.
    let mut shown = String::new();
    for _ in 0..3 {
        let found = b.find(status).await;
        shown = b.text(&found).await;
        if shown == "sent" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
    assert_eq!(shown, "sent", "the status follows the message");
    assert_eq!(
        b.execute("return window.casecastNotReloaded === true;")
            .await,
        true,
        "without a reload"
    );

    // Every other page fits the phone's width too.
    for path in [
        "/".to_string(),
        "/a/gulu/messaging/case-groups".into(),
        "/a/gulu/messaging/broadcasts".into(),
        "/a/gulu/messaging/broadcasts/new".into(),
        "/a/gulu/messaging/messages".into(),
        "/a/gulu/messaging/opt-outs".into(),
        "/a/gulu/messaging/gateways".into(),
        "/a/gulu/messaging/settings".into(),
        group_url.trim_start_matches(&base).to_string(),
    ] {
        b.goto(&format!("{base}{path}")).await;
        b.find("main").await;
        assert_fits(page_width(&b).await, &path);
    }
    if let Ok(shots) = std::env::var("CASECAST_SCREENSHOTS") {
        b.screenshot(&std::path::Path::new(&shots).join(format!("forms-{}.png", engine.name())))
            .await;
    }
    b.quit().await;
    drop(server);
}
