//! Reminders as a person sets one up, in headless Chromium against the real binary (issue 15):
//! an editor finds Reminders in the messaging navigation, fills the form for "2 days before
//! next_visit at 09:00, 3 times every 1 day", presses Preview and sees the upcoming list with
//! the cases' names and local times (and the cases skipped, in words), saves, lands on the
//! rule's page, deactivates it and sees it inactive there and in the list.

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

casecast_testkit::on_both_engines!(browser_reminder_preview_save_deactivate);

/// Saves a screenshot as `{name}-{engine}.png` when `CASECAST_SCREENSHOTS` names a folder.
async fn screenshot(b: &Browser, name: &str, engine: Dialect) {
    if let Ok(shots) = std::env::var("CASECAST_SCREENSHOTS") {
        let file = format!("{name}-{}.png", engine.name());
        b.screenshot(&std::path::Path::new(&shots).join(file)).await;
    }
}

/// Today in Kampala shifted by `days`, as `YYYY-MM-DD` (the server reads the real clock).
fn kampala_day(days: i64) -> String {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Africa/Kampala").unwrap())
        .date()
        .checked_add(jiff::Span::new().days(days))
        .unwrap()
        .to_string()
}

/// A project `gulu` (Africa/Kampala) with an editor, and four cases: Aber (visit in 10 days),
/// Bako (visit in 5 days), Cana (no phone number), Dimo (a visit date that is not a date).
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
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.csv");
    std::fs::write(
        &cases,
        format!(
            "case_id,name,phone_number,next_visit\n\
             c-aber,Aber Grace,0772 100001,{}\n\
             c-bako,Bako Ruth,0772 100002,{}\n\
             c-cana,Cana Joy,,{}\n\
             c-dimo,Dimo Ann,0772 100004,next week\n",
            kampala_day(10),
            kampala_day(5),
            kampala_day(5),
        ),
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
}

async fn browser_reminder_preview_save_deactivate(engine: Dialect) {
    let (url, _dir) = casecast_testkit::fresh_url(engine).await;
    project(&url).await;
    let server = Server::start(BIN, &url, &[]).await;
    let base = server.base.clone();

    let b = Browser::start().await;
    b.goto(&format!("{base}/a/gulu/cases")).await;
    b.log_in("editor@gulu.example.org", "gulu password").await;
    b.wait_for_url("the cases page", |u| u.ends_with("/a/gulu/cases"))
        .await;
    // Reminders are in the messaging navigation.
    b.click(&b.find("header nav a[href$='/messaging/reminders']").await)
        .await;
    b.wait_for_url("the reminders page", |u| {
        u.ends_with("/messaging/reminders")
    })
    .await;
    assert!(b
        .text(&b.find("#no-reminders").await)
        .await
        .contains("There are no reminders yet"));
    b.click(&b.find("#new-reminder").await).await;
    b.wait_for_url("the form", |u| u.ends_with("/messaging/reminders/new"))
        .await;

    // Two days before next_visit at 09:00, three days running.
    b.type_into(&b.find("#name").await, "ANC visit").await;
    b.type_into(&b.find("#case_type").await, "case").await;
    b.click(&b.find("#start-date").await).await;
    b.type_into(&b.find("#start-property").await, "next_visit")
        .await;
    let offset = b.find("#start-offset_days").await;
    b.clear(&offset).await;
    b.type_into(&offset, "-2").await;
    let time = b.find("#time").await;
    b.clear(&time).await;
    b.type_into(&time, "09:00").await;
    b.type_into(&b.find("#repeat-every_days").await, "1").await;
    b.type_into(&b.find("#repeat-times").await, "3").await;
    b.type_into(
        &b.find("#content-text").await,
        "{case.name}, your ANC visit is on {case.next_visit}.",
    )
    .await;
    b.type_into(&b.find("#stop_query").await, "visit_done = yes")
        .await;

    // Preview: the upcoming list with the names and local times; nothing saved yet.
    let form = b.find("#reminder-form").await;
    b.click(&b.find("#preview-reminder").await).await;
    b.wait_for_new("#reminder-form", &form).await;
    let count = b.text(&b.find("#upcoming-count").await).await;
    assert!(
        count.starts_with("6 occurrences in the next 30 days, for the 4 cases"),
        "{count}"
    );
    let list = b.text(&b.find("#upcoming-list").await).await;
    for part in [
        "Bako Ruth".to_string(),
        "Aber Grace".to_string(),
        format!("{} 09:00", kampala_day(3)),
        format!("{} 09:00", kampala_day(8)),
        format!("Bako Ruth, your ANC visit is on {}.", kampala_day(5)),
    ] {
        assert!(list.contains(&part), "{part} not in {list}");
    }
    assert!(
        list.find("Bako Ruth").unwrap() < list.find("Aber Grace").unwrap(),
        "soonest first: {list}"
    );
    let skipped = b.text(&b.find("#upcoming-skipped").await).await;
    assert!(skipped.contains("1 case has no phone number"), "{skipped}");
    assert!(
        skipped.contains("1 case's next_visit is not a date (YYYY-MM-DD)"),
        "{skipped}"
    );
    // The form kept what was typed.
    assert_eq!(
        b.attr(&b.find("#start-offset_days").await, "value")
            .await
            .as_deref(),
        Some("-2")
    );
    screenshot(&b, "reminder-preview", engine).await;

    // Save: the rule's page.
    b.click(&b.find("#save-reminder").await).await;
    b.wait_for_url("the reminder's page", |u| u.contains("done=created"))
        .await;
    assert_eq!(
        b.text(&b.find("#reminder-notice").await).await,
        "The reminder was created."
    );
    assert_eq!(
        b.text(&b.find("#reminder-when").await).await,
        "2 days before next_visit at 09:00, 3 times every 1 day"
    );
    assert_eq!(b.text(&b.find("#reminder-state").await).await, "active");
    let page = b.url().await;
    let id = page
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    // The server's worker evaluates the cases in the background: "Due next" fills in.
    let next = {
        let mut next = String::new();
        for _ in 0..30 {
            b.refresh().await;
            if let Some(text) = b
                .execute("let t = document.querySelector('#reminder-next'); return t ? t.innerText : null;")
                .await
                .as_str()
            {
                next = text.to_string();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        next
    };
    assert!(
        next.contains("Bako Ruth") && next.contains("Aber Grace"),
        "due next: {next:?}"
    );
    screenshot(&b, "reminder", engine).await;

    // Deactivate: the page and the list say it is inactive.
    b.click(&b.find("#deactivate-reminder").await).await;
    b.wait_for_url("the reminder's page", |u| u.contains("done=deactivated"))
        .await;
    assert_eq!(b.text(&b.find("#reminder-state").await).await, "inactive");
    assert!(b
        .text(&b.find("#reminder-notice").await)
        .await
        .contains("deactivated"));
    b.find("#activate-reminder").await;
    b.click(&b.find("header nav a[href$='/messaging/reminders']").await)
        .await;
    b.wait_for_url("the reminders page", |u| {
        u.ends_with("/messaging/reminders")
    })
    .await;
    let row = b.text(&b.find(&format!("#reminder-{id}")).await).await;
    assert!(
        row.contains("ANC visit") && row.contains("inactive"),
        "{row}"
    );
    screenshot(&b, "reminders", engine).await;
    b.quit().await;
    drop(server);
}
