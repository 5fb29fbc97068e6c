//! A survey as a person runs it, in headless Chromium against the real binary: an editor
//! builds a three-question survey with a Swahili translation in the builder (the message
//! counter follows the typing, a question is added with the builder's button), saves it,
//! sends it with a broadcast to a case group, watches the survey's page count the sessions
//! as replies come in through the gateway's inbound webhook (without reloading), downloads
//! the responses, finds a case's session with its answers on the case page, and sees that
//! the survey's page fits a phone's screen.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_testkit::cli::{self, Server};
use casecast_testkit::{Browser, Dialect};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_casecast");

/// A phone's screen width, in CSS pixels.
const PHONE: u32 = 390;

/// `casecast --db URL ARGS…`, which must succeed; returns its stdout.
async fn casecast(url: &str, args: &[&str], stdin: Option<&str>) -> String {
    cli::run(cli::command(BIN, Some(url)), args, stdin)
        .await
        .ok()
        .to_string()
}

casecast_testkit::on_both_engines!(browser_survey_to_a_group);

/// Saves a screenshot as `{name}-{engine}.png` when `CASECAST_SCREENSHOTS` names a folder.
async fn screenshot(b: &Browser, name: &str, engine: Dialect) {
    if let Ok(shots) = std::env::var("CASECAST_SCREENSHOTS") {
        let file = format!("{name}-{}.png", engine.name());
        b.screenshot(&std::path::Path::new(&shots).join(file)).await;
    }
}

/// A project `gulu` with an editor and an admin, four cases in a group "Gulu study" (Aber
/// speaks Swahili, Lamwaka has no phone), and an admin's API token. Returns the group id and
/// the token.
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

/// Adds the gateways through the API: a log gateway that sends everything (the default), and
/// an HTTP gateway that sends nothing (its prefix matches no case) but whose inbound webhook
/// takes the replies, as an aggregator forwards them. Returns that webhook's URL (with its
/// secret, which only admins are shown).
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
    let inbound = body["webhook_urls"]["inbound"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(inbound.starts_with(&format!("{base}/hooks/")), "{inbound}");
    inbound
}

/// A reply from `phone`, forwarded by the aggregator to the inbound webhook.
async fn reply(inbound: &str, phone: &str, text: &str) {
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

/// The count the survey's page shows now for `status` (or `total`).
async fn count(b: &Browser, status: &str) -> String {
    let css = if status == "total" {
        "#session-counts [data-field=total]".to_string()
    } else {
        format!("#session-counts [data-count={status}]")
    };
    b.text(&b.find(&css).await).await
}

/// Waits (up to 40 s: the page polls every 3 s, and less often as time goes on) until the
/// survey's page shows `n` sessions of `status`.
async fn wait_for_count(b: &Browser, status: &str, n: &str) {
    for _ in 0..400 {
        if count(b, status).await == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "the survey's page never showed {n} {status}; it shows {}",
        count(b, status).await
    );
}

/// The page's width as laid out: wider than the screen means it scrolls sideways.
async fn page_width(b: &Browser) -> u64 {
    b.execute("return document.documentElement.scrollWidth;")
        .await
        .as_u64()
        .unwrap()
}

/// The `<body>`'s elements that reach past the right edge of a `width` px screen.
async fn overflowing(b: &Browser, width: u32) -> String {
    b.execute(&format!(
        "return Array.from(document.body.querySelectorAll('*'))\
           .filter(e => e.getBoundingClientRect().right > {width} + 0.5)\
           .map(e => e.tagName + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : ''))\
           .join(', ');"
    ))
    .await
    .as_str()
    .unwrap_or_default()
    .to_string()
}

async fn browser_survey_to_a_group(engine: Dialect) {
    let (url, _dir) = casecast_testkit::fresh_url(engine).await;
    let (group, token) = project(&url).await;
    let server = Server::start(BIN, &url, &[]).await;
    let base = server.base.clone();
    let inbound = gateways(&base, &token).await;

    let b = Browser::start().await;
    b.goto(&format!("{base}/a/gulu/messaging/surveys")).await;
    b.log_in("editor@gulu.example.org", "gulu password").await;
    b.wait_for_url("the surveys page", |u| u.ends_with("/messaging/surveys"))
        .await;
    assert!(b
        .text(&b.find("#no-surveys").await)
        .await
        .contains("There are no surveys yet"));
    b.click(&b.find("#new-survey").await).await;
    b.wait_for_url("the builder", |u| u.ends_with("/messaging/surveys/new"))
        .await;

    // The name and a Swahili translation: the builder shows the translation fields.
    b.type_into(&b.find("#name").await, "Clinic follow-up")
        .await;
    b.type_into(&b.find("#languages").await, "sw").await;
    let old = b.find("#name").await;
    b.click(&b.find("#update-languages").await).await;
    let name = b.wait_for_new("#name", &old).await;
    assert_eq!(
        b.attr(&name, "value").await.as_deref(),
        Some("Clinic follow-up")
    );

    // The first question: a number from 0 to 20, saved to the case. Its message counter
    // follows the typing, then counts the intro too, which goes out with the first question.
    b.type_into(&b.find("[name='q0.key']").await, "visits")
        .await;
    choose(&b, "[name='q0.type']", "number").await;
    let question = "How many clinic visits did you make this month?";
    b.type_into(&b.find("[name='q0.text']").await, question)
        .await;
    let shown = b
        .wait_for_text("#message-counter-0", |t| {
            t.contains(&format!(": {} / ", question.chars().count()))
        })
        .await;
    assert!(
        shown.starts_with("First message as sent") && shown.contains("GSM-7 · 1 SMS"),
        "{shown}"
    );
    b.type_into(
        &b.find("[name='q0.text.sw']").await,
        "Ulienda kliniki mara ngapi mwezi huu?",
    )
    .await;
    b.type_into(&b.find("[name='q0.min']").await, "0").await;
    b.type_into(&b.find("[name='q0.max']").await, "20").await;
    b.type_into(&b.find("[name='q0.case_property']").await, "visits")
        .await;
    let intro = "Hello from the Gulu clinic. Please answer 3 short questions; reply SKIP to pass.";
    b.type_into(&b.find("[name='intro']").await, intro).await;
    let both = intro.chars().count() + 1 + question.chars().count();
    let shown = b
        .wait_for_text("#message-counter-0", |t| {
            t.contains(&format!(": {both} / "))
        })
        .await;
    assert!(shown.contains("GSM-7 · 1 SMS"), "{shown}");
    b.type_into(
        &b.find("[name='intro.sw']").await,
        "Habari kutoka kliniki ya Gulu. Tafadhali jibu maswali 3 mafupi.",
    )
    .await;

    // The second question, added in place: a choice, its options numbered in the count.
    b.click(&b.find("#add-question").await).await;
    b.find("#question-1").await;
    assert_eq!(
        b.text(&b.find("#question-1 .question-number").await).await,
        "2"
    );
    b.type_into(&b.find("[name='q1.key']").await, "feeling")
        .await;
    choose(&b, "[name='q1.type']", "choice").await;
    b.type_into(
        &b.find("[name='q1.text']").await,
        "How do you feel since the visit?",
    )
    .await;
    b.type_into(
        &b.find("[name='q1.text.sw']").await,
        "Unajisikiaje tangu ziara?",
    )
    .await;
    b.type_into(
        &b.find("[name='q1.choices']").await,
        "good | Better | fine\nsame | The same\nbad | Worse | sick",
    )
    .await;
    b.type_into(
        &b.find("[name='q1.choices.sw']").await,
        "Bora zaidi\nVilevile\nVibaya zaidi",
    )
    .await;
    let shown = b
        .wait_for_text("#message-counter-1", |t| t.starts_with("Question as sent"))
        .await;
    let text = "How do you feel since the visit?\n1. Better 2. The same 3. Worse";
    assert!(
        shown.contains(&format!(": {} / ", text.chars().count())),
        "{shown}"
    );

    // The third: a date, then the end text. Save.
    b.click(&b.find("#add-question").await).await;
    b.find("#question-2").await;
    b.type_into(&b.find("[name='q2.key']").await, "next_visit")
        .await;
    choose(&b, "[name='q2.type']", "date").await;
    b.type_into(
        &b.find("[name='q2.text']").await,
        "When is your next visit? (DD/MM/YYYY)",
    )
    .await;
    b.type_into(
        &b.find("[name='q2.text.sw']").await,
        "Ziara yako ijayo ni lini? (DD/MM/YYYY)",
    )
    .await;
    b.type_into(&b.find("[name='end_text']").await, "Thank you!")
        .await;
    b.type_into(&b.find("[name='end_text.sw']").await, "Asante!")
        .await;
    screenshot(&b, "survey-builder", engine).await;
    b.click(&b.find("#save-survey").await).await;
    b.wait_for_url("the surveys page", |u| u.contains("/messaging/surveys?"))
        .await;
    let list = b.text(&b.find("#survey-list").await).await;
    assert!(list.contains("Clinic follow-up"), "{list}");
    let row = b.find("#survey-list tbody tr").await;
    let survey = b
        .attr(&row, "id")
        .await
        .unwrap()
        .trim_start_matches("survey-")
        .to_string();

    // Send it to the group with a broadcast.
    b.goto(&format!("{base}/a/gulu/messaging/broadcasts/new"))
        .await;
    b.type_into(&b.find("input[name=name]").await, "Follow-up survey")
        .await;
    b.click(
        &b.find(&format!("input[name=group][value=\"{group}\"]"))
            .await,
    )
    .await;
    b.click(&b.find("input[name=content_kind][value=survey]").await)
        .await;
    choose(&b, "#survey-id", &survey).await;
    b.click(&b.find("#preview-button").await).await;
    b.wait_for_text("#preview-recipients", |t| t == "3").await;
    let preview = b.text(&b.find("#preview").await).await;
    assert!(
        preview.contains("Habari kutoka kliniki ya Gulu")
            && preview.contains("Hello from the Gulu"),
        "{preview}"
    );
    let confirm = b.find("#confirm-button").await;
    assert_eq!(b.text(&confirm).await, "Send now to 3 recipients");
    b.click(&confirm).await;
    b.wait_for_url("the broadcast's page", |u| u.contains("?done=created"))
        .await;
    b.wait_for_text("#broadcast-status", |t| t == "completed")
        .await;

    // The survey's page: three sessions waiting for their first answer.
    b.click(&b.find("#broadcast-survey a").await).await;
    b.wait_for_url("the survey's page", |u| {
        u.ends_with(&format!("/messaging/surveys/{survey}"))
    })
    .await;
    assert_eq!(count(&b, "active").await, "3");
    assert_eq!(count(&b, "completed").await, "0");
    assert_eq!(count(&b, "total").await, "3");
    // A mark in the page: still there at the end, so the page was never loaded anew.
    b.execute("window.notReloaded = true; return null;").await;
    let stale = "return document.getElementById('responses-stale').hidden;";
    assert_eq!(b.execute(stale).await, json!(true), "nothing new yet");

    // Replies come in; the counts follow without a reload.
    // Aber, in Swahili: all valid; the choice by its number, the date in the local form.
    for text in ["3", "1", "15/01/2027"] {
        reply(&inbound, "+256772100001", text).await;
    }
    wait_for_count(&b, "completed", "1").await;
    assert_eq!(count(&b, "active").await, "2");
    // Okello: a decimal with spaces, the choice by its synonym, an impossible date then a
    // good one.
    for text in [" 2.5 ", "Sick!", "31/02/2027", "2027-02-28"] {
        reply(&inbound, "0772100002", text).await;
    }
    wait_for_count(&b, "completed", "2").await;
    // Akena: a word where a number is wanted, then the number; then silence.
    for text in ["seven", "7"] {
        reply(&inbound, "+256772100004", text).await;
    }
    wait_for_count(&b, "active", "1").await;
    let rate = b
        .text(&b.find("#session-counts [data-field=completion]").await)
        .await;
    assert_eq!(rate, "66.7%");
    // The table was drawn before the replies: a notice says to reload it.
    assert_eq!(b.execute(stale).await, json!(false), "no reload notice");
    assert_eq!(
        b.execute("return window.notReloaded === true;").await,
        json!(true),
        "the page was loaded anew"
    );
    screenshot(&b, "survey-page", engine).await;

    // The responses: the CSV the page links to, answers normalised.
    let session = b
        .cookie("casecast_session")
        .await
        .expect("a session cookie");
    let href = b
        .attr(&b.find("#download-csv").await, "href")
        .await
        .unwrap();
    let path = href.trim_start_matches(&base).to_string();
    assert_eq!(
        path,
        format!("/a/gulu/messaging/surveys/{survey}/responses.csv")
    );
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("cookie", format!("casecast_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let csv = resp.text().await.unwrap();
    let mut lines = csv.trim_start_matches('\u{feff}').lines();
    assert_eq!(
        lines.next().unwrap(),
        "case_id,external_id,name,phone_number,status,started_at,completed_at,visits,feeling,next_visit"
    );
    let mut rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    rows.sort();
    // The times: when the session started and, if it did, ended, in Kampala's time.
    for row in &mut rows {
        assert!(row[5].ends_with("+03:00"), "{row:?}");
        let ended = if row[4] == "completed" { "+03:00" } else { "" };
        assert!(
            row[6].ends_with(ended) && row[6].is_empty() == ended.is_empty(),
            "{row:?}"
        );
        row[5] = "started".into();
        row[6] = if ended.is_empty() { "" } else { "ended" }.into();
    }
    // Phone numbers start with ' in CSV, as every cell that a spreadsheet would read as a
    // formula (+, -, =, @).
    let expected = [
        "c-aber,GUL-0001,Aber Grace,'+256772100001,completed,started,ended,3,good,2027-01-15",
        "c-akena,GUL-0004,Akena Paul,'+256772100004,active,started,,7,,",
        "c-okello,GUL-0002,Okello James,'+256772100002,completed,started,ended,2.5,bad,2027-02-28",
    ];
    assert_eq!(
        rows.iter().map(|r| r.join(",")).collect::<Vec<_>>(),
        expected
    );

    // The case page shows Okello's session, its answers and its messages in order.
    b.refresh().await;
    let table = b.text(&b.find("#responses-table").await).await;
    assert!(
        table.contains("Okello James") && table.contains("2027-02-28"),
        "{table}"
    );
    b.click(&b.find("#responses-table a[href$='/cases/c-okello']").await)
        .await;
    b.wait_for_url("Okello's page", |u| u.ends_with("/cases/c-okello"))
        .await;
    let section = b.text(&b.find(".survey-session").await).await;
    for part in [
        "Clinic follow-up",
        "completed",
        "visits",
        "2.5",
        "feeling",
        "bad",
        "next_visit",
        "2027-02-28",
        "31/02/2027",
        "Thank you!",
    ] {
        assert!(section.contains(part), "{part} not in {section}");
    }
    screenshot(&b, "survey-case", engine).await;

    // At a phone's width, nothing of the survey's page reaches past the screen.
    b.set_viewport(PHONE, 844).await;
    b.goto(&format!("{base}/a/gulu/messaging/surveys/{survey}"))
        .await;
    b.find("#responses-table").await;
    let width = page_width(&b).await;
    assert!(
        width <= u64::from(PHONE),
        "the survey's page is {width} px wide at a {PHONE} px screen: {}",
        overflowing(&b, PHONE).await
    );
    screenshot(&b, "survey-page-phone", engine).await;
    b.quit().await;
    drop(server);
}
