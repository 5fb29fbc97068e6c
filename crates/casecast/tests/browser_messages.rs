//! Sending an SMS as a person does it in headless Chromium, against the real binary: an admin
//! adds a log gateway on the gateways page, opens a case data page, watches the counter as the
//! message is written, sends it, and sees it reach `sent` in the case's history and in the
//! message log.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_core::sms::{analyse, Encoding};
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

casecast_testkit::on_both_engines!(browser_send_sms_from_a_case);

/// Types `text` into the empty message box; checks that the counter agrees with `analyse`.
async fn write_and_count(b: &Browser, text: &str) {
    let area = b.find("#sms-text").await;
    b.clear(&area).await;
    b.type_into(&area, text).await;
    let info = analyse(text);
    let encoding = match info.encoding {
        Encoding::Gsm7 => "GSM-7",
        Encoding::Ucs2 => "UCS-2",
    };
    let chars = format!("{} / 1530 characters", text.chars().count());
    let shown = b
        .wait_for_text("#sms-counter", |t| t.starts_with(&chars))
        .await;
    assert!(shown.contains(encoding), "{text:?}: {shown}");
    let counter = b.find("#sms-counter").await;
    assert_eq!(
        b.attr(&counter, "data-segments").await,
        Some(info.segments.to_string()),
        "{text:?}: {shown}"
    );
    let unit = match info.encoding {
        Encoding::Gsm7 => "septets",
        Encoding::Ucs2 => "units",
    };
    assert!(
        shown.contains(&format!("{} {unit} left", info.remaining)),
        "{text:?}: {shown} ({info:?})"
    );
}

async fn browser_send_sms_from_a_case(engine: Dialect) {
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
    casecast(
        &url,
        &[
            "user",
            "create",
            "admin@gulu.example.org",
            "--project",
            "gulu",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("gulu admin password\n"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.csv");
    std::fs::write(
        &cases,
        "case_id,external_id,name,phone_number\nc-aber,GUL-0001,Aber Grace,0772 100001\n",
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

    let b = Browser::start().await;
    b.goto(&format!("{base}/a/gulu/messaging/gateways")).await;
    b.log_in("admin@gulu.example.org", "gulu admin password")
        .await;
    b.wait_for_url("the gateways page", |u| u.ends_with("/messaging/gateways"))
        .await;
    assert!(b
        .text(&b.find("#no-gateways").await)
        .await
        .contains("no gateway yet"));

    // Add a log gateway: only its own settings show once the kind is chosen.
    b.type_into(
        &b.find("#create-gateway input[name=name]").await,
        "Log gateway",
    )
    .await;
    b.click(&b.find("#create-gateway option[value=log]").await)
        .await;
    // WebDriver reads no text from what is not displayed.
    let kannel = b
        .text(&b.find("#create-gateway fieldset.kind-kannel").await)
        .await;
    assert_eq!(kannel, "", "Kannel's fields are hidden for a log gateway");
    assert!(b
        .text(&b.find("#create-gateway fieldset.kind-log").await)
        .await
        .contains("sends nothing"));
    b.click(&b.find("#create-gateway button[type=submit]").await)
        .await;
    b.wait_for_url("the new gateway", |u| u.contains("?done=created"))
        .await;
    assert!(b
        .text(&b.find("#gateway-name").await)
        .await
        .starts_with("Log gateway"));

    // The case data page: the counter follows the text as it is written.
    b.goto(&format!("{base}/a/gulu/cases/c-aber")).await;
    assert!(b
        .text(&b.find("#no-history").await)
        .await
        .contains("No messages"));
    write_and_count(&b, "Brackets [and] the euro € take two septets each").await;
    write_and_count(&b, &"Long reminder text. ".repeat(9)).await;
    write_and_count(&b, &"Привет, как дела? ".repeat(5)).await;
    let text = "Hello Aber, your clinic visit is tomorrow at 10:00. Reply STOP to opt out.";
    write_and_count(&b, text).await;
    b.click(&b.find("#send-sms button[type=submit]").await)
        .await;
    b.wait_for_url("the case page after sending", |u| u.contains("?done=sent"))
        .await;
    assert!(b
        .text(&b.find("#send-notice").await)
        .await
        .contains("queued"));

    // The history shows the message; reload until the dispatcher has sent it.
    let case_url = format!("{base}/a/gulu/cases/c-aber");
    let mut status = String::new();
    for _ in 0..100 {
        b.goto(&case_url).await;
        status = b
            .text(
                &b.find("#message-history tbody tr:first-child .status")
                    .await,
            )
            .await;
        if status == "sent" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "sent", "the message left through the log gateway");
    let row = b
        .text(&b.find("#message-history tbody tr:first-child").await)
        .await;
    assert!(
        row.contains(text) && row.contains("+256772100001") && row.contains("1 · gsm7"),
        "{row}"
    );

    // The message log has it too, and links back to the case.
    b.click(&b.find("#case-log").await).await;
    b.wait_for_url("the message log", |u| {
        u.contains("/messaging/messages?case_id=c-aber")
    })
    .await;
    let log = b.text(&b.find("#message-log").await).await;
    assert!(
        log.contains(text)
            && log.contains("outbound")
            && log.contains("sent")
            && log.contains("Aber Grace GUL-0001"),
        "{log}"
    );
    b.goto(&format!("{base}/a/gulu/messaging/messages")).await;
    let all = b
        .text(&b.find("#message-log tbody tr:first-child").await)
        .await;
    assert!(all.contains(text) && all.contains("sent"), "{all}");
    if let Ok(shots) = std::env::var("CASECAST_SCREENSHOTS") {
        b.screenshot(&std::path::Path::new(&shots).join(format!("messages-{}.png", engine.name())))
            .await;
    }
    b.quit().await;
    drop(server);
}
