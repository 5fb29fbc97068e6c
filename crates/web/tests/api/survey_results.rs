//! Following a survey: starting it for a case (API and case page), its sessions listed with
//! filters and a cursor, counts and completion rate (page and `counts.json`), the responses as
//! CSV and `.xlsx` (exact cells, times in the project's zone, number answers as numbers, cells
//! that would be formulas kept as text), the case page's sessions, roles, and isolation from
//! another project.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use casecast_core::gateway::InboundSms;
use casecast_core::survey::Survey;
use casecast_testkit::{Dialect, TestApp, Workflows};
use reqwest::Method;
use serde_json::{json, Value};

use crate::case_groups::download;
use crate::gateways::{add_case, add_gateway};
use crate::pages::{get_page, hidden, login};
use crate::{call, code};

casecast_testkit::on_both_engines!(
    starting_for_a_case_refuses_what_cannot_go,
    sessions_list_by_status_and_case_with_a_cursor,
    responses_download_exactly_as_csv_and_xlsx,
    the_survey_page_shows_counts_and_responses_escaped,
    the_case_page_lists_sessions_and_starts_one,
);

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn survey_body(name: &str) -> Value {
    json!({
        "name": name,
        "end_text": "Thank you.",
        "max_attempts": 3,
        "expire_after_minutes": 600,
        "questions": [
            {"key": "visits", "type": "number", "text": "How many visits?", "min": 0, "max": 20},
            {"key": "feeling", "type": "choice", "text": "How do you feel?",
             "choices": [{"value": "good", "text": "Good"}, {"value": "bad", "text": "Bad"}]},
            {"key": "due", "type": "date", "text": "Due date?", "required": false},
            {"key": "ok", "type": "yes_no", "text": "All well?"},
            {"key": "note", "type": "text", "text": "Anything else?"}
        ]
    })
}

/// A survey of `project` (stored as the builder stores it); returns its id.
async fn add_survey(app: &TestApp, project_id: i64, name: &str) -> i64 {
    let survey = Survey::parse(&survey_body(name)).unwrap();
    app.db
        .create_survey(project_id, &survey, None)
        .await
        .unwrap()
        .id
}

/// `POST /cases/{case_id}/surveys` in alpha as `token`.
async fn start(app: &TestApp, token: &str, case_id: &str, body: Value) -> (u16, Value) {
    call(
        app,
        Method::POST,
        &app.api("alpha", &format!("/cases/{case_id}/surveys")),
        Some(token),
        Some(body),
    )
    .await
}

/// Replies from `phone` through the gateway, one at a time, as the inbound router takes them.
async fn reply(app: &TestApp, gateway_id: i64, phone: &str, texts: &[&str]) {
    let gateway = app.db.gateway(app.alpha.id, gateway_id).await.unwrap();
    for text in texts {
        let sms = InboundSms {
            from: phone.into(),
            to: "8080".into(),
            text: (*text).into(),
            gateway_message_id: None,
        };
        app.db.record_inbound(&gateway, &sms).await.unwrap();
    }
}

/// A log gateway in alpha; returns its id.
async fn log_gateway(app: &TestApp) -> i64 {
    add_gateway(app, json!({"name": "Log", "kind": "log"})).await["id"]
        .as_i64()
        .unwrap()
}

/// Three sessions of one survey: Amina's completed (every answer, a note that would be a
/// formula), Bosco's active after one answer, Cleo's cancelled (a second survey started for
/// her); returns (survey id, [case IDs], the other survey's id).
async fn three_sessions(app: &TestApp) -> (i64, [String; 3], i64) {
    let gateway = log_gateway(app).await;
    let survey = add_survey(app, app.alpha.id, "ANC check").await;
    let other = add_survey(app, app.alpha.id, "Other survey").await;
    let amina = add_case(
        app,
        json!({"name": "=HYPERLINK(\"http://x\")", "external_id": "-5", "phone_number": "0772 000001"}),
    )
    .await;
    let bosco = add_case(
        app,
        json!({"name": "<b>x</b>", "phone_number": "0772 000002"}),
    )
    .await;
    let cleo = add_case(app, json!({"name": "Cleo", "phone_number": "0772 000003"})).await;
    let editor = app.alpha_editor.token.clone();
    for case in [&amina, &bosco, &cleo] {
        let (status, s) = start(app, &editor, case, json!({"survey_id": survey})).await;
        assert_eq!(status, 201, "{s}");
    }
    reply(
        app,
        gateway,
        "+256772000001",
        &["4", "Good", "31/12/2026", "yes", "=1+2"],
    )
    .await;
    reply(app, gateway, "+256772000002", &["7"]).await;
    let (status, s) = start(app, &editor, &cleo, json!({"survey_id": other.to_string()})).await;
    assert_eq!(status, 201, "the id may be given as text: {s}");
    (survey, [amina, bosco, cleo], other)
}

async fn sessions(app: &TestApp, token: &str, survey: i64, query: &str) -> (u16, Value) {
    call(
        app,
        Method::GET,
        &app.api("alpha", &format!("/surveys/{survey}/sessions?{query}")),
        Some(token),
        None,
    )
    .await
}

async fn starting_for_a_case_refuses_what_cannot_go(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let survey = add_survey(&app, app.alpha.id, "ANC check").await;
    let beta_survey = add_survey(&app, app.beta.id, "Beta's").await;
    let editor = app.alpha_editor.token.clone();
    let ok_case = add_case(&app, json!({"name": "Apio", "phone_number": "0772 123456"})).await;
    // No gateway yet.
    let (status, got) = start(&app, &editor, &ok_case, json!({"survey_id": survey})).await;
    assert_eq!((status, code(&got)), (409, "no_gateway"), "{got}");
    log_gateway(&app).await;
    let no_phone = add_case(&app, json!({"name": "No phone"})).await;
    let (status, got) = start(&app, &editor, &no_phone, json!({"survey_id": survey})).await;
    assert_eq!((status, code(&got)), (409, "no_phone_number"), "{got}");
    let closed = add_case(
        &app,
        json!({"name": "Closed", "phone_number": "0772 123457"}),
    )
    .await;
    let (status, _) = call(
        &app,
        Method::POST,
        &app.api("alpha", &format!("/cases/{closed}/close")),
        Some(&editor),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, got) = start(&app, &editor, &closed, json!({"survey_id": survey})).await;
    assert_eq!((status, code(&got)), (409, "case_closed"), "{got}");
    let stopped = add_case(
        &app,
        json!({"name": "Stopped", "phone_number": "0772 123458"}),
    )
    .await;
    let (status, got) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/opt-outs"),
        Some(&editor),
        Some(json!({"phone_number": "+256772123458"})),
    )
    .await;
    assert!(status == 201 || status == 200, "{got}");
    let (status, got) = start(&app, &editor, &stopped, json!({"survey_id": survey})).await;
    assert_eq!((status, code(&got)), (409, "opted_out"), "{got}");
    // Unknown survey, another project's survey, a survey id that is no id: 422 on survey_id.
    for bad in [
        json!(999_999),
        json!(beta_survey),
        json!("abc"),
        json!(null),
    ] {
        let (status, got) = start(&app, &editor, &ok_case, json!({"survey_id": bad})).await;
        assert_eq!((status, code(&got)), (422, "invalid"), "{bad}: {got}");
        let message = got["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("survey_id"), "{message}");
    }
    let (status, got) = start(&app, &editor, "no-such-case", json!({"survey_id": survey})).await;
    assert_eq!((status, code(&got)), (404, "not_found"), "{got}");
    // Viewers read, never start.
    let (status, got) = start(
        &app,
        &app.alpha_viewer.token,
        &ok_case,
        json!({"survey_id": survey}),
    )
    .await;
    assert_eq!((status, code(&got)), (403, "forbidden"), "{got}");
    let (status, got) = start(&app, &editor, &ok_case, json!({"survey_id": survey})).await;
    assert_eq!(status, 201, "{got}");
    assert_eq!(got["survey_id"], survey);
    assert_eq!(got["case_id"], ok_case.as_str());
    assert_eq!(got["phone_number"], "+256772123456");
    assert_eq!(got["status"], "active");
    assert_eq!(got["current_question"], 0);
    assert_eq!(got["answers"], json!({}));
    assert!(got["started_at"].as_str().unwrap().ends_with('Z'), "{got}");
    assert_eq!(got["completed_at"], Value::Null);
    // Only one refused start of all of them left a session: the one that went.
    let (status, list) = sessions(&app, &editor, survey, "").await;
    assert_eq!(status, 200);
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1, "{list}");
    // A token of another project cannot start alpha's survey for its own case.
    let beta_case = {
        let (status, got) = call(
            &app,
            Method::POST,
            &app.api("beta", "/cases"),
            Some(&app.beta_admin.token),
            Some(json!({"name": "Beta case", "phone_number": "+254712000001"})),
        )
        .await;
        assert_eq!(status, 201, "{got}");
        got["case_id"].as_str().unwrap().to_string()
    };
    let (status, got) = call(
        &app,
        Method::POST,
        &app.api("beta", &format!("/cases/{beta_case}/surveys")),
        Some(&app.beta_admin.token),
        Some(json!({"survey_id": survey})),
    )
    .await;
    assert_eq!((status, code(&got)), (422, "invalid"), "{got}");
}

async fn sessions_list_by_status_and_case_with_a_cursor(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (survey, [amina, bosco, cleo], other) = three_sessions(&app).await;
    let viewer = app.alpha_viewer.token.clone();
    // Every session, newest first, two a page.
    let mut ids = Vec::new();
    let mut statuses = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) =
            sessions(&app, &viewer, survey, &format!("limit=2&cursor={cursor}")).await;
        assert_eq!(status, 200, "{page}");
        let items = page["sessions"].as_array().unwrap();
        assert!(items.len() <= 2);
        for s in items {
            ids.push(s["id"].as_i64().unwrap());
            statuses.push((
                s["case_id"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert_eq!(
        statuses,
        vec![
            (cleo.clone(), "cancelled".to_string()),
            (bosco.clone(), "active".to_string()),
            (amina.clone(), "completed".to_string()),
        ]
    );
    let (_, page) = sessions(&app, &viewer, survey, "status=completed").await;
    let items = page["sessions"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(
        items[0]["answers"],
        json!({"visits": 4, "feeling": "good", "due": "2026-12-31", "ok": "yes", "note": "=1+2"})
    );
    assert_eq!(items[0]["current_question"], Value::Null);
    assert!(items[0]["completed_at"].as_str().unwrap().ends_with('Z'));
    let (_, page) = sessions(&app, &viewer, survey, "status=active").await;
    let items = page["sessions"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(
        (
            items[0]["case_id"].as_str(),
            items[0]["current_question"].as_i64()
        ),
        (Some(bosco.as_str()), Some(1))
    );
    assert_eq!(items[0]["answers"], json!({"visits": 7}));
    let (_, page) = sessions(&app, &viewer, survey, "status=cancelled").await;
    let cancelled = &page["sessions"][0];
    assert_eq!(cancelled["case_id"], cleo.as_str());
    assert!(
        cancelled["reason"]
            .as_str()
            .unwrap()
            .contains("Other survey"),
        "{cancelled}"
    );
    let (_, page) = sessions(&app, &viewer, survey, "status=expired").await;
    assert_eq!(page["sessions"], json!([]));
    // By case, and with both filters.
    let (_, page) = sessions(&app, &viewer, other, &format!("case_id={cleo}")).await;
    assert_eq!(page["sessions"][0]["status"], "active", "{page}");
    let (_, page) = sessions(
        &app,
        &viewer,
        survey,
        &format!("case_id={amina}&status=active"),
    )
    .await;
    assert_eq!(page["sessions"], json!([]));
    let (_, page) = sessions(&app, &viewer, survey, "case_id=no-such-case").await;
    assert_eq!(page["sessions"], json!([]));
    // Bad filters and pages.
    for (query, field) in [
        ("status=done", "status"),
        ("case_id=a%20b", "case_id"),
        ("limit=0", "limit"),
        ("cursor=x", "cursor"),
    ] {
        let (status, got) = sessions(&app, &viewer, survey, query).await;
        assert_eq!((status, code(&got)), (422, "invalid"), "{query}: {got}");
        assert!(
            got["error"]["message"].as_str().unwrap().starts_with(field),
            "{query}: {got}"
        );
    }
    // Another project's token, or alpha's survey under beta's path: not found.
    let (status, got) = call(
        &app,
        Method::GET,
        &app.api("beta", &format!("/surveys/{survey}/sessions")),
        Some(&app.beta_admin.token),
        None,
    )
    .await;
    assert_eq!((status, code(&got)), (404, "not_found"), "{got}");
    let (status, _) = sessions(&app, &app.beta_admin.token, survey, "").await;
    assert_eq!(status, 404, "a beta token is no key to alpha");
    let (status, _) = sessions(&app, &viewer, 999_999, "").await;
    assert_eq!(status, 404);
}

/// The cells of the first sheet of an `.xlsx`.
fn xlsx_cells(bytes: &[u8]) -> Vec<Vec<Data>> {
    let mut book = Xlsx::new(Cursor::new(bytes.to_vec())).unwrap();
    let range = book.worksheet_range_at(0).unwrap().unwrap();
    range.rows().map(|r| r.to_vec()).collect()
}

/// A UTC RFC 3339 time of the API in Kampala, as the responses write it.
fn kampala(utc: &str) -> String {
    let ts: jiff::Timestamp = utc.parse().unwrap();
    ts.to_zoned(jiff::tz::TimeZone::get("Africa/Kampala").unwrap())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

async fn responses_download_exactly_as_csv_and_xlsx(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (survey, [amina, bosco, cleo], _) = three_sessions(&app).await;
    let viewer = app.alpha_viewer.token.clone();
    let (_, page) = sessions(&app, &viewer, survey, "").await;
    let time_of = |case: &str, field: &str| -> String {
        let s = page["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["case_id"] == case)
            .unwrap();
        s[field].as_str().map(kampala).unwrap_or_default()
    };
    let (a_start, a_end) = (
        time_of(&amina, "started_at"),
        time_of(&amina, "completed_at"),
    );
    let (b_start, c_start, c_end) = (
        time_of(&bosco, "started_at"),
        time_of(&cleo, "started_at"),
        time_of(&cleo, "completed_at"),
    );
    assert!(a_end.ends_with("+03:00"), "{a_end}");
    let csv = download(
        &app,
        &app.api("alpha", &format!("/surveys/{survey}/responses.csv")),
        &viewer,
        "text/csv",
    )
    .await;
    let expected = format!(
        "\u{feff}case_id,external_id,name,phone_number,status,started_at,completed_at,visits,feeling,due,ok,note\n\
         {amina},'-5,\"'=HYPERLINK(\"\"http://x\"\")\",'+256772000001,completed,{a_start},{a_end},4,good,2026-12-31,yes,'=1+2\n\
         {bosco},,<b>x</b>,'+256772000002,active,{b_start},,7,,,,\n\
         {cleo},,Cleo,'+256772000003,cancelled,{c_start},{c_end},,,,,\n"
    );
    assert_eq!(String::from_utf8(csv).unwrap(), expected);
    let bytes = download(
        &app,
        &app.api("alpha", &format!("/surveys/{survey}/responses.xlsx")),
        &viewer,
        XLSX,
    )
    .await;
    let cells = xlsx_cells(&bytes);
    let s = |v: &str| Data::String(v.to_string());
    assert_eq!(
        cells[0],
        [
            "case_id",
            "external_id",
            "name",
            "phone_number",
            "status",
            "started_at",
            "completed_at",
            "visits",
            "feeling",
            "due",
            "ok",
            "note"
        ]
        .map(s)
        .to_vec()
    );
    // Strings, never formulas; the number answer is a number.
    assert_eq!(
        cells[1],
        vec![
            s(&amina),
            s("-5"),
            s("=HYPERLINK(\"http://x\")"),
            s("+256772000001"),
            s("completed"),
            s(&a_start),
            s(&a_end),
            Data::Float(4.0),
            s("good"),
            s("2026-12-31"),
            s("yes"),
            s("=1+2"),
        ]
    );
    assert_eq!(
        cells[2][..8],
        [
            s(&bosco),
            Data::Empty,
            s("<b>x</b>"),
            s("+256772000002"),
            s("active"),
            s(&b_start),
            Data::Empty,
            Data::Float(7.0)
        ]
    );
    assert_eq!(cells[3][4], s("cancelled"));
    assert_eq!(cells.len(), 4);
    // The page's downloads are the same files; another project's survey is not found.
    let editor = login(&app, &app.alpha_editor).await;
    let page_csv = app
        .http
        .get(app.url(&format!(
            "/a/alpha/messaging/surveys/{survey}/responses.csv"
        )))
        .header("cookie", format!("casecast_session={editor}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page_csv.status(), 200);
    assert_eq!(page_csv.text().await.unwrap(), expected);
    let (status, _) = get_page(
        &app,
        &editor,
        &format!("/a/alpha/messaging/surveys/{survey}/responses.xlsx"),
    )
    .await;
    assert_eq!(status, 200);
    for ext in ["csv", "xlsx"] {
        let (status, got) = call(
            &app,
            Method::GET,
            &app.api("beta", &format!("/surveys/{survey}/responses.{ext}")),
            Some(&app.beta_admin.token),
            None,
        )
        .await;
        assert_eq!((status, code(&got)), (404, "not_found"), "{got}");
    }
    let beta = login(&app, &app.beta_admin).await;
    let (status, _) = get_page(
        &app,
        &beta,
        &format!("/a/beta/messaging/surveys/{survey}/responses.csv"),
    )
    .await;
    assert_eq!(status, 404);
}

async fn the_survey_page_shows_counts_and_responses_escaped(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (survey, [_, bosco, _], _) = three_sessions(&app).await;
    let viewer = login(&app, &app.alpha_viewer).await;
    let (status, html) = get_page(
        &app,
        &viewer,
        &format!("/a/alpha/messaging/surveys/{survey}"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("ANC check"), "the name");
    assert!(html.contains("How many visits?") && html.contains("<code>note</code>"));
    for (status, n) in [
        ("active", 1),
        ("completed", 1),
        ("expired", 0),
        ("cancelled", 1),
    ] {
        assert!(
            html.contains(&format!(
                "<td data-count=\"{status}\" data-initial=\"{n}\">{n}</td>"
            )),
            "{status}: {n}"
        );
    }
    assert!(html.contains("<td data-field=\"total\">3</td>"));
    assert!(html.contains("33.3%"), "one of three completed");
    // The case's name is text, linked to its page.
    assert!(!html.contains("<b>x</b>"));
    assert!(
        html.contains(&format!(
            "<a href=\"/a/alpha/cases/{bosco}\">&#60;b&#62;x&#60;/b&#62;</a>"
        )) || html.contains(&format!(
            "<a href=\"/a/alpha/cases/{bosco}\">&lt;b&gt;x&lt;/b&gt;</a>"
        )),
        "{html}"
    );
    assert!(html.contains("2026-12-31") && html.contains(">good<"));
    assert!(html.contains("responses.xlsx") && html.contains("responses.csv"));
    // Filtered by status.
    let (_, active) = get_page(
        &app,
        &viewer,
        &format!("/a/alpha/messaging/surveys/{survey}?status=active"),
    )
    .await;
    assert!(active.contains(&format!("/a/alpha/cases/{bosco}")));
    assert!(
        !active.contains("2026-12-31"),
        "the completed session is not listed"
    );
    let (status, _) = get_page(
        &app,
        &viewer,
        &format!("/a/alpha/messaging/surveys/{survey}?status=nope"),
    )
    .await;
    assert_eq!(status, 400);
    // The counts the page polls.
    let (status, body) = get_page(
        &app,
        &viewer,
        &format!("/a/alpha/messaging/surveys/{survey}/counts.json"),
    )
    .await;
    assert_eq!(status, 200);
    let counts: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        counts["counts"],
        json!({"active": 1, "completed": 1, "expired": 0, "cancelled": 1})
    );
    assert_eq!(
        (counts["total"].as_i64(), counts["completed"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(counts["completion"], "33.3%");
    // They move as sessions do: Bosco answers the rest.
    let gateway = app.db.list_gateways(app.alpha.id).await.unwrap()[0].id;
    reply(
        &app,
        gateway,
        "+256772000002",
        &["bad", "skip", "no", "fine"],
    )
    .await;
    let (_, body) = get_page(
        &app,
        &viewer,
        &format!("/a/alpha/messaging/surveys/{survey}/counts.json"),
    )
    .await;
    let counts: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        counts["counts"],
        json!({"active": 0, "completed": 2, "expired": 0, "cancelled": 1})
    );
    assert_eq!(counts["completion"], "66.7%");
    // Another project's people, and unknown surveys, find nothing.
    let beta = login(&app, &app.beta_admin).await;
    for path in [
        format!("/a/beta/messaging/surveys/{survey}"),
        format!("/a/beta/messaging/surveys/{survey}/counts.json"),
        "/a/alpha/messaging/surveys/999999".to_string(),
    ] {
        let who = if path.starts_with("/a/beta") {
            &beta
        } else {
            &viewer
        };
        let (status, _) = get_page(&app, who, &path).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = get_page(&app, &beta, &format!("/a/alpha/messaging/surveys/{survey}")).await;
    assert!(status == 404 || status == 403, "{status}");
    // Not logged in: to the login page.
    let resp = app
        .http
        .get(app.url(&format!("/a/alpha/messaging/surveys/{survey}/counts.json")))
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status().as_u16(), 200);
}

/// POSTs the case page's survey form; returns status and `Location`.
async fn post_start(
    app: &TestApp,
    session: &str,
    case_id: &str,
    csrf: &str,
    survey_id: &str,
) -> (u16, String, String) {
    post_start_form(
        app,
        session,
        case_id,
        &[("csrf", csrf), ("survey_id", survey_id)],
    )
    .await
}

async fn post_start_form(
    app: &TestApp,
    session: &str,
    case_id: &str,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    let resp = app
        .http
        .post(app.url(&format!("/a/alpha/cases/{case_id}/surveys")))
        .header("cookie", format!("casecast_session={session}"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, resp.text().await.unwrap())
}

async fn the_case_page_lists_sessions_and_starts_one(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (survey, [amina, _, cleo], other) = three_sessions(&app).await;
    let editor = login(&app, &app.alpha_editor).await;
    let (status, html) = get_page(&app, &editor, &format!("/a/alpha/cases/{amina}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"surveys\""));
    assert!(html.contains(&format!(
        "href=\"/a/alpha/messaging/surveys/{survey}\">ANC check</a>"
    )));
    assert!(html.contains("session-completed"));
    assert!(
        html.contains("<code>feeling</code></th><td>good</td>"),
        "answers in order"
    );
    // The session's messages in order: the questions sent and the replies taken.
    let order = [
        "How many visits?",
        "How do you feel?",
        "31/12/2026",
        "All well?",
        "Thank you.",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|t| html.find(t).unwrap_or_else(|| panic!("{t} on the page")))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
    // Cleo's page shows both her sessions, newest first, the old one cancelled.
    let (_, cleo_page) = get_page(&app, &editor, &format!("/a/alpha/cases/{cleo}")).await;
    let newer = cleo_page.find("Other survey</a>").unwrap();
    let older = cleo_page.find("ANC check</a>").unwrap();
    assert!(newer < older);
    assert!(cleo_page.contains("session-cancelled"));
    // Starting one from the page: CSRF, role, then a redirect with a notice.
    let csrf = hidden(&html, "csrf");
    let (status, _, _) = post_start(&app, &editor, &amina, "forged", &other.to_string()).await;
    assert_eq!(status, 403);
    let viewer = login(&app, &app.alpha_viewer).await;
    let (_, viewer_page) = get_page(&app, &viewer, &format!("/a/alpha/cases/{amina}")).await;
    assert!(
        !viewer_page.contains("id=\"start-survey\""),
        "viewers see no form"
    );
    let viewer_csrf = hidden(&viewer_page, "csrf");
    let (status, _, _) = post_start(&app, &viewer, &amina, &viewer_csrf, &other.to_string()).await;
    assert_eq!(status, 403);
    assert!(html.contains("id=\"start-survey\""));
    let (status, location, _) = post_start(&app, &editor, &amina, &csrf, &other.to_string()).await;
    assert_eq!(status, 303);
    assert!(location.contains("done=survey_started"), "{location}");
    let (_, after) = get_page(&app, &editor, &location).await;
    assert!(after.contains("id=\"survey-notice\""));
    assert!(after.contains(&format!(
        "href=\"/a/alpha/messaging/surveys/{other}\">Other survey</a>"
    )));
    let (_, page) = call(
        &app,
        Method::GET,
        &app.api(
            "alpha",
            &format!("/surveys/{other}/sessions?case_id={amina}"),
        ),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(page["sessions"][0]["status"], "active", "{page}");
    // Ending the open session takes a tick in the box the page now shows.
    let (_, answering) = get_page(&app, &editor, &format!("/a/alpha/cases/{amina}")).await;
    assert!(answering.contains("id=\"replace-open-survey\""));
    assert!(answering.contains("End its open survey, «Other survey»"));
    let (status, _, body) = post_start(&app, &editor, &amina, &csrf, &survey.to_string()).await;
    assert_eq!(status, 422);
    assert!(
        body.contains("The case is answering a survey now"),
        "{body}"
    );
    let (_, page) = call(
        &app,
        Method::GET,
        &app.api(
            "alpha",
            &format!("/surveys/{other}/sessions?case_id={amina}"),
        ),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(page["sessions"][0]["status"], "active", "still: {page}");
    // Refusals show the page again with why; nothing is started.
    let (status, _) = call(
        &app,
        Method::POST,
        &app.api("alpha", &format!("/cases/{amina}/close")),
        Some(&app.alpha_editor.token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let survey_text = survey.to_string();
    let replacing = [
        ("csrf", csrf.as_str()),
        ("survey_id", survey_text.as_str()),
        ("replace", "1"),
    ];
    let (status, _, body) = post_start_form(&app, &editor, &amina, &replacing).await;
    assert_eq!(status, 409);
    assert!(body.contains("id=\"survey-error\"") && body.contains("closed"));
    let (status, _, body) = post_start(&app, &editor, &cleo, &csrf, "abc").await;
    assert_eq!(status, 422);
    assert!(body.contains("Survey: choose one of the list."));
    let beta_survey = add_survey(&app, app.beta.id, "Beta's").await;
    let (status, _, _) = post_start(&app, &editor, &cleo, &csrf, &beta_survey.to_string()).await;
    assert_eq!(status, 422, "another project's survey is not in the list");
    // A case of another project is not found.
    let beta = login(&app, &app.beta_admin).await;
    let (status, _) = get_page(&app, &beta, &format!("/a/beta/cases/{amina}")).await;
    assert_eq!(status, 404);
}
