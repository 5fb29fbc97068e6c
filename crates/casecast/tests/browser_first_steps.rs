//! "The first 10 minutes" of a new user, in headless Chromium against `casecast serve --demo`,
//! step by step as the README's "First 10 minutes" says them: log in with the
//! printed login; query the case list and open a case; import docs/examples/new-participants.csv
//! (one row refused); make the case group "Follow-up" from docs/examples/follow-up.csv (one
//! identifier not found); add a log gateway; preview and send a broadcast to the group; send the
//! demo survey to it; text `VISIT 2027-01-20` in through the log gateway's inbound webhook and see the
//! reply and the case's new `next_visit`; look at the demo reminder's upcoming list.
//!
//! Each step's visible outcome is asserted, and a screenshot taken (`first-steps-STEP`) when
//! `CASECAST_SCREENSHOTS` names a folder: scripts/screenshots copies them to docs/images/.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use casecast_testkit::cli::Server;
use casecast_testkit::{Browser, Dialect};

const BIN: &str = env!("CARGO_BIN_EXE_casecast");

/// The query of step 2 and how many demo cases it matches (the demo's cases are the same on
/// every start).
const QUERY: &str = "district = Gulu AND study_arm = intervention";
const QUERY_MATCHES: &str = "37";

/// The broadcast of step 6.
const BROADCAST: &str = "Hello {case.name}, the clinic has a new service. Reply STOP to stop.";

/// Step 8: Ivan Opio (MBA-0001), a demo participant who is not in Follow-up (a Follow-up
/// member's reply would answer the survey of step 7), texts VISIT in.
const VISIT_FROM: &str = "0708725520";
const VISIT_TEXT: &str = "VISIT 2027-01-20";

casecast_testkit::on_both_engines!(browser_first_steps);

/// A file of docs/examples/, as an absolute path (the browser's file input wants one).
fn example(name: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "docs",
        "examples",
        name,
    ]
    .iter()
    .collect();
    std::fs::canonicalize(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_string_lossy()
        .to_string()
}

/// Saves a screenshot as `first-steps-{step}-{engine}.png` when `CASECAST_SCREENSHOTS` names a
/// folder.
async fn screenshot(b: &Browser, step: &str, engine: Dialect) {
    if let Ok(shots) = std::env::var("CASECAST_SCREENSHOTS") {
        let file = format!("first-steps-{step}-{}.png", engine.name());
        b.screenshot(&std::path::Path::new(&shots).join(file)).await;
    }
}

/// Scrolls the page so that the element matching `css` is at the top of the window.
async fn scroll_to(b: &Browser, css: &str) {
    b.find(css).await;
    let css = serde_json::to_string(css).unwrap();
    b.execute(&format!(
        "document.querySelector({css}).scrollIntoView({{block: 'start'}}); return null;"
    ))
    .await;
}

/// Clicks the header's navigation link to `path` (e.g. `/messaging/gateways`) and waits for
/// the page.
async fn menu(b: &Browser, path: &str) {
    b.click(&b.find(&format!("header nav a[href$='{path}']")).await)
        .await;
    b.wait_for_url(path, |u| u.ends_with(path)).await;
}

/// Selects the option `value` of the `<select>` matching `select`.
async fn choose(b: &Browser, select: &str, value: &str) {
    b.click(&b.find(&format!("{select} option[value=\"{value}\"]")).await)
        .await;
}

/// The last path segment of the current URL (an id), without its query.
async fn id_in_url(b: &Browser) -> String {
    let url = b.url().await;
    let path = url.split(['?', '#']).next().unwrap();
    path.rsplit('/').next().unwrap().to_string()
}

/// Adds a gateway through the Gateways page's form ("Add a gateway"): `fields` are the form's
/// text inputs by name. Leaves the browser on the new gateway's page.
async fn add_gateway(b: &Browser, name: &str, kind: &str, fields: &[(&str, &str)]) {
    menu(b, "/messaging/gateways").await;
    b.click(&b.find("#new-gateway summary").await).await;
    b.type_into(&b.find("#create-gateway input[name=name]").await, name)
        .await;
    choose(b, "#create-gateway select[name=kind]", kind).await;
    for (field, value) in fields {
        b.type_into(
            &b.find(&format!("#create-gateway input[name={field}]"))
                .await,
            value,
        )
        .await;
    }
    b.click(&b.find("#create-gateway button[type=submit]").await)
        .await;
    b.wait_for_url("the new gateway's page", |u| u.contains("?done=created"))
        .await;
    let title = b.text(&b.find("#gateway-name").await).await;
    assert!(title.starts_with(name), "{title}");
}

/// Reloads the page at `url` (up to 10 s) until the text of `css` satisfies `ok`: what the
/// server did in the background shows on the next load.
async fn reload_until(b: &Browser, url: &str, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        b.goto(url).await;
        let found = b
            .execute(&format!(
                "let e = document.querySelector({}); return e ? e.innerText : null;",
                serde_json::to_string(css).unwrap()
            ))
            .await;
        if let Some(text) = found.as_str() {
            if ok(text) {
                return text.to_string();
            }
            last = text.to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("'{css}' on {url} never showed the expected text; last seen: '{last}'");
}

/// Previews the compose form and sends it to `n` recipients; waits for the broadcast's page to
/// show it completed.
async fn send_previewed(b: &Browser, n: &str) {
    let confirm = b.find("#confirm-button").await;
    assert_eq!(
        b.text(&confirm).await,
        format!("Send now to {n} recipients")
    );
    b.click(&confirm).await;
    b.wait_for_url("the broadcast's page", |u| u.contains("?done=created"))
        .await;
    b.wait_for_text("#broadcast-status", |t| t == "completed")
        .await;
}

/// The README's "First 10 minutes" section.
fn readme_walk() -> String {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let start = readme
        .find("## First 10 minutes")
        .expect("the README has its First 10 minutes");
    let rest = &readme[start + 3..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i + 1);
    rest[..end].to_string()
}

/// What this test types, clicks and expects is what the README's walk says: a change to one
/// without the other fails here.
#[test]
fn the_readme_walk_says_what_this_test_does() {
    let walk = readme_walk();
    for needle in [
        QUERY,
        &format!("*{QUERY_MATCHES} match*"),
        BROADCAST,
        VISIT_TEXT,
        &format!("from={VISIT_FROM}"),
        "docs/examples/new-participants.csv",
        "docs/examples/follow-up.csv",
        "*created 4*, *error 1*",
        "*added 10*, *no such case 1*",
        "`Follow-up`",
        "`Try-out`",
        "*9 recipients*",
        "**Clinic visit follow-up**",
        "*9 active*",
        "**Demo log gateway**",
        "your next visit is on 2027-01-20",
        "**Visit reminder**",
        "*2 days before next_visit at 09:00*",
    ] {
        assert!(
            walk.contains(needle),
            "the README's walk does not say {needle:?}"
        );
    }
    let steps = walk
        .lines()
        .filter(|l| l.len() > 3 && l.as_bytes()[0].is_ascii_digit() && l[1..].starts_with(". **"))
        .count();
    assert_eq!(steps, 9, "nine steps");
}

async fn browser_first_steps(engine: Dialect) {
    let started = std::time::Instant::now();
    let (url, _db) = casecast_testkit::fresh_url(engine).await;
    let mut server = Server::start(BIN, &url, &["--demo"]).await;
    let base = server.base.clone();
    let b = Browser::start().await;

    // 1. Log in with the printed email and password.
    let line = server
        .wait_for_line(|l| l.starts_with("Demo: log in at "))
        .await;
    let (login_url, rest) = line
        .trim_start_matches("Demo: log in at ")
        .split_once(" as ")
        .unwrap();
    let (email, password) = rest.split_once(" with password ").unwrap();
    assert_eq!(login_url, format!("{base}/login"), "{line}");
    b.goto(login_url).await;
    assert_eq!(b.text(&b.find("main h1").await).await, "Log in");
    b.type_into(&b.find("input[name=email]").await, email).await;
    b.type_into(&b.find("input[name=password]").await, password)
        .await;
    screenshot(&b, "login", engine).await;
    b.click(&b.find("button[type=submit]").await).await;
    b.wait_for_url("the projects page", |u| u == format!("{base}/"))
        .await;
    assert_eq!(b.text(&b.find("main h1").await).await, "Your projects");
    b.click(&b.find("main a[href='/a/demo/cases']").await).await;
    b.wait_for_url("the case list", |u| u.ends_with("/a/demo/cases"))
        .await;
    let heading = b.text(&b.find("main h1").await).await;
    assert!(heading.contains("500 cases in all"), "{heading}");

    // 2. Cases: a query; the count and the list follow; one case's page.
    b.type_into(&b.find("#case-query").await, QUERY).await;
    b.click(&b.find("#case-filters button[type=submit]").await)
        .await;
    b.wait_for_url("the query's result", |u| u.contains("query=district"))
        .await;
    assert_eq!(b.text(&b.find("#matching").await).await, QUERY_MATCHES);
    let rows = b
        .execute("return document.querySelectorAll('table.cases tbody tr').length;")
        .await;
    assert_eq!(rows.to_string(), QUERY_MATCHES, "one page holds them all");
    // The list is the query's: its export (the cases the page shows) holds only such cases.
    let export = b.attr(&b.find("#export-csv").await, "href").await.unwrap();
    let session = b.cookie("casecast_session").await.unwrap();
    let csv = reqwest::Client::new()
        .get(format!("{base}{}", export.trim_start_matches(&base)))
        .header("cookie", format!("casecast_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut lines = csv.trim_start_matches('\u{feff}').lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (district, arm) = (column("district"), column("study_arm"));
    let exported: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(exported.len().to_string(), QUERY_MATCHES);
    assert!(
        exported
            .iter()
            .all(|r| r[district] == "Gulu" && r[arm] == "intervention"),
        "{csv}"
    );
    screenshot(&b, "case-query", engine).await;
    let first = b.find("table.cases tbody tr:first-child a").await;
    let name = b.text(&first).await;
    b.click(&first).await;
    b.wait_for_url("a case's page", |u| u.contains("/a/demo/cases/"))
        .await;
    assert_eq!(b.text(&b.find("main h1").await).await.trim(), name);
    let properties = b.text(&b.find("table.properties").await).await;
    assert!(
        properties.contains("district Gulu") && properties.contains("study_arm intervention"),
        "{properties}"
    );
    screenshot(&b, "case", engine).await;

    // 3. Import cases: four created, the row with a bad phone number refused.
    menu(&b, "/a/demo/cases").await;
    b.click(&b.find("#import-cases").await).await;
    b.wait_for_url("the import form", |u| u.ends_with("/a/demo/cases/import"))
        .await;
    b.type_into(
        &b.find("#import-form input[type=file]").await,
        &example("new-participants.csv"),
    )
    .await;
    b.click(&b.find("#import-form button").await).await;
    b.wait_for_url("the import's page", |u| {
        u.contains("/a/demo/cases/imports/")
    })
    .await;
    b.wait_for_text("#import-status", |t| t == "done").await;
    let counts = b.text(&b.find("#import-counts").await).await;
    assert!(
        counts.contains("created 4") && counts.contains("error 1"),
        "{counts}"
    );
    let error = b
        .text(&b.find("table.results tr.outcome-error").await)
        .await;
    assert!(
        error.starts_with("5 error")
            && error.contains("'0772 4105' is not a valid phone number for UG"),
        "{error}"
    );
    assert_eq!(
        b.execute("return document.querySelectorAll('table.results tr.outcome-created').length;")
            .await,
        4
    );
    screenshot(&b, "import", engine).await;
    menu(&b, "/a/demo/cases").await;
    let heading = b.text(&b.find("main h1").await).await;
    assert!(heading.contains("504 cases in all"), "{heading}");

    // 4. A case group from a sheet: ten added, one identifier matches nothing.
    menu(&b, "/messaging/case-groups").await;
    b.type_into(&b.find("#create-group input[name=name]").await, "Follow-up")
        .await;
    b.click(&b.find("#create-group button").await).await;
    b.wait_for_url("the new group's page", |u| {
        u.contains("/messaging/case-groups/")
    })
    .await;
    let group = id_in_url(&b).await;
    assert!(b
        .text(&b.find("#group-name").await)
        .await
        .starts_with("Follow-up 0 cases"));
    b.type_into(
        &b.find("#upload input[type=file]").await,
        &example("follow-up.csv"),
    )
    .await;
    b.click(&b.find("#upload button").await).await;
    b.wait_for_url("the upload's page", |u| u.contains("/messaging/uploads/"))
        .await;
    b.wait_for_text("#upload-status", |t| t == "done").await;
    let counts = b.text(&b.find("#upload-counts").await).await;
    assert!(
        counts.contains("added 10") && counts.contains("no such case 1"),
        "{counts}"
    );
    let results = b.text(&b.find("#upload-results").await).await;
    for part in [
        "GUL-0003 added Sarah Auma GUL-0003",
        "0768 783736 added Joan Opio JIN-0022",
        "GUL-0999 no such case",
    ] {
        assert!(results.contains(part), "{part} not in {results}");
    }
    assert_eq!(
        b.text(&b.find("#problems-only").await).await,
        "Show only the 1 row with problems"
    );
    scroll_to(&b, "#upload-counts").await;
    screenshot(&b, "group-upload", engine).await;

    // 5. Gateways: the demo's log gateway, and a second one added through the form.
    menu(&b, "/messaging/gateways").await;
    let list = b.text(&b.find("table.gateways").await).await;
    assert!(
        list.contains("Demo log gateway log default"),
        "the demo gateway: {list}"
    );
    add_gateway(&b, "Try-out", "log", &[]).await;
    assert!(b
        .text(&b.find("#notice").await)
        .await
        .starts_with("The gateway was created."));
    menu(&b, "/messaging/gateways").await;
    let list = b.text(&b.find("table.gateways").await).await;
    assert!(
        list.contains("Demo log gateway") && list.contains("Try-out log"),
        "{list}"
    );
    screenshot(&b, "gateways", engine).await;

    // 6. A broadcast to Follow-up: preview, send, the broadcast's page, the message log.
    menu(&b, "/messaging/broadcasts").await;
    b.click(&b.find("#new-broadcast").await).await;
    b.wait_for_url("the compose page", |u| {
        u.ends_with("/messaging/broadcasts/new")
    })
    .await;
    b.type_into(&b.find("input[name=name]").await, "New service")
        .await;
    let label = format!("label.check:has(input[name=group][value=\"{group}\"])");
    assert_eq!(
        b.text(&b.find(&label).await).await.trim(),
        "Follow-up (10 cases)"
    );
    b.click(
        &b.find(&format!("input[name=group][value=\"{group}\"]"))
            .await,
    )
    .await;
    b.type_into(&b.find("#text-default").await, BROADCAST).await;
    b.click(&b.find("#preview-button").await).await;
    // Winnie Akello (GUL-0125) has no phone number.
    b.wait_for_text("#preview-recipients", |t| t == "9").await;
    let preview = b.text(&b.find("#preview").await).await;
    for part in [
        "Hello Sarah Auma, the clinic has a new service. Reply STOP to stop.",
        "no phone number",
    ] {
        assert!(preview.contains(part), "{part} not in {preview}");
    }
    scroll_to(&b, "#preview").await;
    screenshot(&b, "broadcast-preview", engine).await;
    send_previewed(&b, "9").await;
    b.wait_for_text("#broadcast-counts [data-count=sent]", |t| t == "9")
        .await;
    let occurrences = b.text(&b.find("#occurrences").await).await;
    assert!(occurrences.contains("no phone: 1"), "{occurrences}");
    screenshot(&b, "broadcast", engine).await;
    menu(&b, "/messaging/messages").await;
    let log = b.text(&b.find("#message-log").await).await;
    assert!(
        log.contains("Hello Sarah Auma, the clinic has a new service") && log.contains("sent"),
        "{log}"
    );
    assert_eq!(
        b.execute("return document.querySelectorAll('#message-log tbody tr').length;")
            .await,
        9
    );
    screenshot(&b, "messages", engine).await;

    // 7. The demo survey, sent to Follow-up with a broadcast from the group's page.
    menu(&b, "/messaging/surveys").await;
    b.click(&b.find("#survey-list a[href*='/messaging/surveys/']").await)
        .await;
    b.wait_for_url("the survey's page", |u| {
        u.contains("/messaging/surveys/") && !u.ends_with("/surveys")
    })
    .await;
    let survey = id_in_url(&b).await;
    assert_eq!(
        b.text(&b.find("#survey-name").await).await,
        "Clinic visit follow-up"
    );
    assert_eq!(
        b.execute("return document.querySelectorAll('#survey-questions li').length;")
            .await,
        3
    );
    assert!(b
        .text(&b.find("#no-responses").await)
        .await
        .contains("No one has been sent this survey yet"));
    menu(&b, "/messaging/case-groups").await;
    b.click(
        &b.find(&format!("table.groups a[href$='/case-groups/{group}']"))
            .await,
    )
    .await;
    b.wait_for_url("the group's page", |u| {
        u.ends_with(&format!("/case-groups/{group}"))
    })
    .await;
    b.click(&b.find("#broadcast-to-group").await).await;
    b.wait_for_url("the compose page", |u| {
        u.contains("/messaging/broadcasts/new?group=")
    })
    .await;
    b.type_into(&b.find("input[name=name]").await, "Follow-up survey")
        .await;
    b.click(&b.find("input[name=content_kind][value=survey]").await)
        .await;
    choose(&b, "#survey-id", &survey).await;
    b.click(&b.find("#preview-button").await).await;
    b.wait_for_text("#preview-recipients", |t| t == "9").await;
    let preview = b.text(&b.find("#preview").await).await;
    assert!(
        preview.contains("Hello from the Gulu HIV study")
            && preview.contains("Gyebale ko okuva mu kunoonyereza kwa Gulu"),
        "the intro, in English and in Luganda: {preview}"
    );
    send_previewed(&b, "9").await;
    b.click(&b.find("#broadcast-survey a").await).await;
    b.wait_for_url("the survey's page", |u| {
        u.ends_with(&format!("/messaging/surveys/{survey}"))
    })
    .await;
    b.wait_for_text("#session-counts [data-count=active]", |t| t == "9")
        .await;
    let table = b.text(&b.find("#responses-table").await).await;
    assert!(
        table.contains("Sarah Auma") && table.contains("active"),
        "{table}"
    );
    screenshot(&b, "survey", engine).await;

    // 8. The VISIT keyword: an SMS sent in through the demo log gateway's inbound webhook, the
    // reply in the message log (sent, through the log gateway) and the case's new next_visit.
    menu(&b, "/messaging/keywords").await;
    let keywords = b.text(&b.find("#keyword-list").await).await;
    assert!(keywords.contains("VISIT"), "{keywords}");
    screenshot(&b, "keywords", engine).await;
    menu(&b, "/messaging/gateways").await;
    let href = b
        .execute(
            "return [...document.querySelectorAll('table.gateways a')]\
               .find(a => a.textContent.trim() === 'Demo log gateway').href",
        )
        .await;
    b.goto(href.as_str().expect("a link to the demo log gateway"))
        .await;
    let hooks = b.text(&b.find("table.hooks").await).await;
    assert!(
        hooks.starts_with("Incoming messages, to try keywords and surveys"),
        "{hooks}"
    );
    let inbound = b.text(&b.find("table.hooks code.url").await).await;
    assert!(
        inbound.starts_with(&format!("{base}/hooks/")) && inbound.ends_with("/inbound"),
        "{inbound}"
    );
    screenshot(&b, "inbound-gateway", engine).await;
    // As `curl -d from=0708725520 -d to=8080 --data-urlencode 'text=VISIT 2027-01-20' URL`.
    let resp = reqwest::Client::new()
        .post(&inbound)
        .form(&[("from", VISIT_FROM), ("to", "8080"), ("text", VISIT_TEXT)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let reply = "Thank you Ivan Opio: your next visit is on 2027-01-20.";
    // The reply goes out through the log gateway the SMS came in on: recorded as sent.
    let log = reload_until(
        &b,
        &format!("{base}/a/demo/messaging/messages"),
        "#message-log",
        |t| t.lines().any(|l| l.contains(reply) && l.contains("sent")),
    )
    .await;
    assert!(log.contains(VISIT_TEXT), "{log}");
    screenshot(&b, "keyword-reply", engine).await;
    // The newest messages are Ivan Opio's: his name opens his page.
    b.click(
        &b.find("#message-log tbody tr:first-child a.case-link")
            .await,
    )
    .await;
    b.wait_for_url("Ivan Opio's page", |u| u.contains("/a/demo/cases/"))
        .await;
    assert_eq!(b.text(&b.find("main h1").await).await.trim(), "Ivan Opio");
    let properties = b.text(&b.find("table.properties").await).await;
    assert!(properties.contains("next_visit 2027-01-20"), "{properties}");
    screenshot(&b, "case-next-visit", engine).await;

    // 9. The demo reminder rule and its upcoming list.
    menu(&b, "/messaging/reminders").await;
    let row = b.text(&b.find("#reminder-list").await).await;
    assert!(
        row.contains("Visit reminder") && row.contains("2 days before next_visit at 09:00"),
        "{row}"
    );
    b.click(&b.find("#reminder-list a.reminder-link").await)
        .await;
    b.wait_for_url("the reminder's page", |u| {
        u.contains("/messaging/reminders/")
    })
    .await;
    assert!(b
        .text(&b.find("#reminder-when").await)
        .await
        .starts_with("2 days before next_visit at 09:00"));
    let count = b.text(&b.find("#upcoming-count").await).await;
    assert!(count.contains(" in the next 30 days"), "{count}");
    let upcoming = b.text(&b.find("#upcoming-list").await).await;
    assert!(
        upcoming.contains(" 09:00") && upcoming.contains("Hello "),
        "{upcoming}"
    );
    assert!(
        b.execute("return document.querySelectorAll('#upcoming-list tbody tr').length;")
            .await
            .as_u64()
            .unwrap()
            > 0
    );
    scroll_to(&b, "#upcoming-count").await;
    screenshot(&b, "reminder-upcoming", engine).await;

    // Beyond the walk, for the guides' pictures: STOP texted in through the same webhook puts
    // the number on Opt-outs; the messaging settings hold the quiet hours.
    let resp = reqwest::Client::new()
        .post(&inbound)
        .form(&[("from", VISIT_FROM), ("to", "8080"), ("text", "STOP")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    menu(&b, "/messaging/opt-outs").await;
    let opt_outs = b.text(&b.find("table.opt-outs").await).await;
    assert!(
        opt_outs.contains("+256708725520")
            && opt_outs.contains("Ivan Opio")
            && opt_outs.contains("texted a stop keyword"),
        "{opt_outs}"
    );
    screenshot(&b, "opt-outs", engine).await;
    menu(&b, "/messaging/settings").await;
    b.find("#messaging-settings input[name=quiet_hours_start]")
        .await;
    screenshot(&b, "messaging-settings", engine).await;

    b.quit().await;
    drop(server);
    eprintln!(
        "first steps on {}: {:.1} s",
        engine.name(),
        started.elapsed().as_secs_f64()
    );
}
