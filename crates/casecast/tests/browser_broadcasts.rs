//! A broadcast as a person sends it, in headless Chromium against the real binary: an editor
//! composes one to a case group with a Swahili translation (the counters follow the typing, a
//! translation row is added), previews it (recipients, the excluded, a rendered sample per
//! language), sends it, watches the detail page's counts reach `completed` without reloading
//! by hand, and opens one of its messages.

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

casecast_testkit::on_both_engines!(browser_broadcast_to_a_group);

/// Saves a screenshot as `{name}-{engine}.png` when `CASECAST_SCREENSHOTS` names a folder.
async fn screenshot(b: &Browser, name: &str, engine: Dialect) {
    if let Ok(shots) = std::env::var("CASECAST_SCREENSHOTS") {
        let file = format!("{name}-{}.png", engine.name());
        b.screenshot(&std::path::Path::new(&shots).join(file)).await;
    }
}

/// The page's status (as the server rendered it) and its broadcast's `sent` count (as shown now).
fn progress_of(html: &str) -> (String, u32) {
    let after = |marker: &str, end: char| {
        let start = html
            .find(marker)
            .map(|i| i + marker.len())
            .unwrap_or(html.len());
        html[start..]
            .split(end)
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let status = after("data-status=\"", '"');
    let sent = after("data-count=\"sent\">", '<').parse().unwrap_or(0);
    (status, sent)
}

/// Watches the broadcast's page until it completes; asserts that its sent count went up while
/// the page that the server rendered still said "sending" (the page's script, not a reload).
async fn follow_to_completed(b: &Browser) {
    let (status, first_sent) = progress_of(&b.source().await);
    assert_eq!(
        status, "sending",
        "four segments at 0.5 a second take a while"
    );
    let mut live = false;
    for _ in 0..300 {
        let (status, sent) = progress_of(&b.source().await);
        live |= status == "sending" && sent > first_sent;
        if status == "completed" {
            assert!(
                live,
                "the counts never moved before the page showed completed"
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the broadcast's page never showed completed");
}

/// A project `gulu` with an editor, four cases in a group "Gulu study" (Aber speaks Swahili,
/// Okello and Akena have no language, one case has no phone), and a log gateway. Returns the
/// group id.
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
        "case_id,external_id,name,phone_number,language_code\n\
         c-aber,GUL-0001,Aber Grace,0772 100001,sw\n\
         c-okello,GUL-0002,Okello James,0772 100002,\n\
         c-lamwaka,GUL-0003,Lamwaka Rose,,sw\n\
         c-akena,GUL-0004,Akena Paul,0772 100004,\n",
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
    // "created case group 1 'Gulu study'"
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
        &[
            "groups",
            "add",
            "--project",
            "gulu",
            &group,
            "c-aber",
            "c-okello",
            "c-lamwaka",
            "c-akena",
        ],
        None,
    )
    .await;
    group
}

/// Adds a log gateway through the API with the admin's token. Its limit of one segment every
/// two seconds spreads the broadcast's four segments (three messages) over six seconds or more,
/// so that its page is seen sending, and its count moving, before it completes: even when the
/// first message is sent before the page is drawn, two seconds pass before the next.
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
        .json(&json!({"name": "Log", "kind": "log", "max_segments_per_second": 0.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

async fn browser_broadcast_to_a_group(engine: Dialect) {
    let (url, _dir) = casecast_testkit::fresh_url(engine).await;
    let group = project(&url).await;
    let server = Server::start(BIN, &url, &[]).await;
    let base = server.base.clone();
    log_gateway(&url, &base).await;

    let b = Browser::start().await;
    b.goto(&format!("{base}/a/gulu/messaging/broadcasts")).await;
    b.log_in("editor@gulu.example.org", "gulu password").await;
    b.wait_for_url("the broadcasts page", |u| {
        u.ends_with("/messaging/broadcasts")
    })
    .await;
    assert!(b
        .text(&b.find("#no-broadcasts").await)
        .await
        .contains("No broadcast yet"));
    b.click(&b.find("#new-broadcast").await).await;
    b.wait_for_url("the compose page", |u| {
        u.ends_with("/messaging/broadcasts/new")
    })
    .await;

    // Compose: name, the group, the default text and a Swahili translation, counted as typed.
    b.type_into(&b.find("input[name=name]").await, "Clinic reminder")
        .await;
    b.click(
        &b.find(&format!("input[name=group][value=\"{group}\"]"))
            .await,
    )
    .await;
    let default = "Hello {case.name}, your clinic visit is tomorrow at 10:00.";
    b.type_into(&b.find("#text-default").await, default).await;
    let chars = format!("{} / 1530 characters", default.chars().count());
    let shown = b
        .wait_for_text("#counter-default", |t| t.starts_with(&chars))
        .await;
    assert!(
        shown.contains("GSM-7") && shown.contains("1 SMS"),
        "{shown}"
    );
    b.type_into(&b.find("input[name=lang_0]").await, "sw").await;
    let swahili = "Habari {case.name}, kliniki kesho saa nne asubuhi. Karibu sana — asante!";
    b.type_into(&b.find("textarea[name=text_0]").await, swahili)
        .await;
    let shown = b.wait_for_text("#counter-0", |t| t.contains("UCS-2")).await;
    assert!(
        shown.starts_with(&format!("{} / 1530", swahili.chars().count())),
        "{shown}"
    );
    // Another row appears on demand, with its own counter; left empty, it is ignored.
    b.click(&b.find("#add-translation").await).await;
    b.type_into(&b.find("textarea[name=text_1]").await, "x")
        .await;
    b.wait_for_text("#counter-1", |t| t.starts_with("1 / 1530 characters"))
        .await;
    b.clear(&b.find("textarea[name=text_1]").await).await;

    // Preview: three recipients (Lamwaka has no phone), a sample in each language.
    b.click(&b.find("#preview-button").await).await;
    b.wait_for_text("#preview-recipients", |t| t == "3").await;
    let preview = b.text(&b.find("#preview").await).await;
    assert!(
        preview.contains("Habari Aber Grace, kliniki kesho"),
        "{preview}"
    );
    assert!(
        preview.contains("Hello Okello James, your clinic visit"),
        "{preview}"
    );
    assert!(preview.contains("no phone number"), "{preview}");
    assert!(
        preview.contains("about 8 s at the gateways' rate limits"),
        "{preview}"
    );
    assert_eq!(b.text(&b.find("#preview-encoding").await).await, "UCS-2");
    // The form kept what was typed.
    let name = b.find("input[name=name]").await;
    assert_eq!(
        b.attr(&name, "value").await.as_deref(),
        Some("Clinic reminder")
    );

    // Send, and follow the counts on the broadcast's page until it completes.
    screenshot(&b, "broadcast-preview", engine).await;
    let confirm = b.find("#confirm-button").await;
    assert_eq!(b.text(&confirm).await, "Send now to 3 recipients");
    b.click(&confirm).await;
    b.wait_for_url("the broadcast's page", |u| u.contains("?done=created"))
        .await;
    follow_to_completed(&b).await;
    b.wait_for_text("#broadcast-status", |t| t == "completed")
        .await;
    assert_eq!(
        b.text(&b.find("#broadcast-counts [data-count=sent]").await)
            .await,
        "3"
    );
    assert_eq!(
        b.text(&b.find("#broadcast-counts [data-count=queued]").await)
            .await,
        "0"
    );
    let occurrences = b.text(&b.find("#occurrences").await).await;
    assert!(
        occurrences.contains("done") && occurrences.contains("no phone: 1"),
        "{occurrences}"
    );
    screenshot(&b, "broadcast-detail", engine).await;
    let messages = b.text(&b.find("#broadcast-messages").await).await;
    assert!(
        messages.contains("Aber Grace GUL-0001") && messages.contains("Okello James GUL-0002"),
        "{messages}"
    );

    // Open a message: Aber's, in Swahili.
    let row = "#broadcast-messages tbody tr:has(a[href$='/cases/c-aber'])";
    b.click(&b.find(&format!("{row} td:first-child a")).await)
        .await;
    b.wait_for_url("the message page", |u| u.contains("/messaging/messages/"))
        .await;
    let message = b.text(&b.find("#message").await).await;
    assert!(
        message.contains("Habari Aber Grace, kliniki kesho")
            && message.contains("+256772100001")
            && message.contains("sent"),
        "{message}"
    );
    screenshot(&b, "broadcast-message", engine).await;

    // The list shows it completed.
    b.goto(&format!("{base}/a/gulu/messaging/broadcasts")).await;
    let list = b.text(&b.find("#broadcast-list").await).await;
    assert!(
        list.contains("Clinic reminder") && list.contains("completed") && list.contains("sent 3"),
        "{list}"
    );
    b.quit().await;
    drop(server);
}
