//! The case-group workflow as a person does it in headless Chromium, against the real binary:
//! create a group; add by case ID, external ID and a phone number with '+' and spaces; see the
//! ambiguous and not-found messages; upload the example sheet filled in and watch the progress
//! reach the results; download the results; remove one case; remove all; rename; delete.

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

casecast_testkit::on_both_engines!(browser_case_group_workflow);

async fn fetch(base: &str, path: &str, session: &str) -> Vec<u8> {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("cookie", format!("casecast_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.bytes().await.unwrap().to_vec()
}

async fn add(b: &Browser, identifier: &str) -> String {
    let input = b.find("#add-case input[name=identifier]").await;
    // A refused add keeps what was typed: start afresh.
    b.clear(&input).await;
    b.type_into(&input, identifier).await;
    b.click(&b.find("#add-case button").await).await;
    // The form reloads the page: the result shown before the click must not be read as this
    // one's.
    b.wait_for_new("#add-case input[name=identifier]", &input)
        .await;
    b.wait_for_text("#add-result", |t| !t.is_empty()).await
}

async fn browser_case_group_workflow(engine: Dialect) {
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
    let cases = dir.path().join("cases.csv");
    std::fs::write(
        &cases,
        "case_id,external_id,name,phone_number\n\
         c-aber,GUL-0001,Aber Grace,0772 100001\n\
         c-okello,GUL-0002,Okello Moses,0772 100002\n\
         c-auma,GUL-0003,Auma Joan,0772 100003\n\
         c-twin1,GUL-0004,Opio Twin,0772 100009\n\
         c-twin2,GUL-0005,Ojok Twin,0772 100009\n\
         c-nakato,KLA-0006,Nakato Sarah,0772 100006\n\
         c-kato,KLA-0007,Kato Ivan,0772 100007\n",
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
    b.goto(&format!("{base}/a/gulu/messaging/case-groups"))
        .await;
    b.log_in("pm@gulu.example.org", "programme manager").await;
    b.wait_for_url("the case groups page", |u| {
        u.ends_with("/messaging/case-groups")
    })
    .await;
    assert!(b
        .text(&b.find("#no-groups").await)
        .await
        .contains("no case groups"));

    // Create a group.
    b.type_into(
        &b.find("#create-group input[name=name]").await,
        "Gulu participants",
    )
    .await;
    b.click(&b.find("#create-group button").await).await;
    let group_url = b
        .wait_for_url("the new group", |u| u.contains("/messaging/case-groups/"))
        .await;
    assert_eq!(
        b.text(&b.find("#group-name").await)
            .await
            .split(" 0 cases")
            .next()
            .unwrap()
            .trim(),
        "Gulu participants"
    );

    // Add by case ID, by external ID, by a phone number with '+' and spaces.
    assert!(add(&b, "c-aber").await.contains("Added"));
    assert!(add(&b, "GUL-0002").await.contains("Added"));
    assert!(add(&b, "+256 772 100 003").await.contains("Added"));
    let members = b.text(&b.find("table.members").await).await;
    assert!(
        members.contains("Aber Grace")
            && members.contains("Okello Moses")
            && members.contains("Auma Joan"),
        "{members}"
    );
    // The case name links to the case data page.
    assert!(b.source().await.contains("href=\"/a/gulu/cases/c-aber\""));

    // Ambiguous (two cases share a phone) and not found.
    let ambiguous = add(&b, "0772 100009").await;
    assert!(
        ambiguous.contains("matches several cases")
            && ambiguous.contains("c-twin1")
            && ambiguous.contains("c-twin2"),
        "{ambiguous}"
    );
    assert!(
        ambiguous.contains("Opio Twin, by phone number"),
        "{ambiguous}"
    );
    // Pick one of them.
    b.click(&b.find("#add-result form.pick button").await).await;
    let picked = b
        .wait_for_text("#add-result", |t| t.contains("Added"))
        .await;
    assert!(picked.contains("Opio Twin (case ID c-twin1)"), "{picked}");
    let missing = add(&b, "GUL-9999").await;
    assert!(missing.contains("No case found"), "{missing}");

    // Download the example sheet, fill it in, upload it, watch the progress reach the results.
    let session = b
        .cookie("casecast_session")
        .await
        .expect("a session cookie");
    let example = fetch(
        &base,
        "/a/gulu/messaging/case-groups/example.xlsx",
        &session,
    )
    .await;
    let example =
        casecast_core::sheet::read_table(&example, "cases_bulk_example.xlsx", &Default::default())
            .unwrap();
    assert_eq!(example.headers.find("case_identifier"), Some(0));
    let filled = dir.path().join("filled.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (row, value) in [
        "case_identifier",
        "KLA-0006",
        "256772100007",
        "GUL-0001",
        "",
        "no-such-case",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(row as u32, 0, *value).unwrap();
    }
    wb.save(&filled).unwrap();
    b.type_into(
        &b.find("#upload input[type=file]").await,
        filled.to_str().unwrap(),
    )
    .await;
    b.click(&b.find("#upload button").await).await;
    b.wait_for_url("the upload page", |u| u.contains("/messaging/uploads/"))
        .await;
    b.wait_for_text("#upload-status", |t| t == "done").await;
    let bar = b.find("#upload-bar").await;
    assert_eq!(
        b.attr(&bar, "value").await,
        b.attr(&bar, "max").await,
        "the bar is full"
    );
    let counts = b.text(&b.find("#upload-counts").await).await;
    assert!(
        counts.contains("added 2")
            && counts.contains("already in the group 1")
            && counts.contains("no such case 1"),
        "{counts}"
    );

    // Download the results.
    let href = b
        .attr(&b.find("#results-xlsx").await, "href")
        .await
        .unwrap();
    let path = href.trim_start_matches(&base);
    let report = casecast_core::sheet::read_table(
        &fetch(&base, path, &session).await,
        "r.xlsx",
        &Default::default(),
    )
    .unwrap();
    assert_eq!(
        report.headers.0,
        ["row", "identifier", "outcome", "case_id", "message"]
    );
    let outcomes: Vec<&str> = report.rows.iter().map(|r| r.get(2)).collect();
    assert_eq!(
        outcomes,
        ["added", "added", "already_in_group", "blank", "not_found"]
    );

    // Remove one case.
    b.goto(&group_url).await;
    assert!(b
        .text(&b.find("#group-name").await)
        .await
        .contains("6 cases"));
    b.click(&b.find("table.members tbody tr:first-child button").await)
        .await;
    b.wait_for_text("#group-name", |t| t.contains("5 cases"))
        .await;
    // The group's page with its members: the guide's picture.
    if let Ok(shots) = std::env::var("CASECAST_SCREENSHOTS") {
        b.screenshot(&std::path::Path::new(&shots).join(format!("groups-{}.png", engine.name())))
            .await;
    }

    // Remove all, after confirming.
    b.click(&b.find("#remove-all summary").await).await;
    b.click(&b.find("#remove-all button").await).await;
    b.wait_for_text("#no-members", |t| t.contains("No cases yet"))
        .await;

    // Rename.
    b.click(&b.find("details.panel summary").await).await;
    let name = b.find("#rename input[name=name]").await;
    b.clear(&name).await;
    b.type_into(&name, "Gulu cohort 2026").await;
    b.click(&b.find("#rename button").await).await;
    b.wait_for_text("#group-name", |t| t.starts_with("Gulu cohort 2026"))
        .await;
    assert!(b
        .text(&b.find("table.history").await)
        .await
        .contains("rename"));

    // Delete, after confirming; the cases stay.
    b.goto(&format!("{base}/a/gulu/messaging/case-groups"))
        .await;
    b.click(&b.find("table.groups details summary").await).await;
    b.click(&b.find("table.groups details button").await).await;
    b.wait_for_text("#no-groups", |t| t.contains("no case groups"))
        .await;
    b.goto(&format!("{base}/a/gulu/cases")).await;
    assert!(b.text(&b.find("h1").await).await.contains("7 cases in all"));
    b.quit().await;
    drop(server);
}
