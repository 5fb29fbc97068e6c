//! `/reminders` over HTTP: the rules' CRUD with every field error, roles, isolation, the
//! upcoming list and the preview of an unsaved rule, and a message a rule sent carrying
//! `reminder_id` in the API and on its page.

use casecast_engine::clock::ManualClock;
use casecast_engine::reminders;
use casecast_testkit::{Dialect, TestApp};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use reqwest::Method;
use serde_json::{json, Value};

use crate::pages::{get_page, login};
use crate::surveys::new_survey;
use crate::{call, code};

casecast_testkit::on_both_engines!(
    reminders_are_created_read_listed_changed_and_deleted,
    every_field_error_is_returned_with_its_path,
    readers_read_and_writers_write,
    another_projects_reminder_is_404,
    the_upcoming_list_is_soonest_first_with_the_skipped_by_reason,
    an_unsaved_rule_is_previewed,
    a_message_sent_by_a_reminder_carries_its_id,
);

/// A visit reminder two days before `next_visit` at 09:00, with `extra` fields over it.
fn rule(extra: Value) -> Value {
    let mut body = json!({
        "name": "Visit reminder",
        "case_type": "mother",
        "start": {"property": "next_visit", "offset_days": -2},
        "time": "09:00",
        "content": {"sms": {"*": "{case.name}: your visit is on {case.next_visit}."}}
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn create(app: &TestApp, body: Value) -> Value {
    let (status, r) = call(
        app,
        Method::POST,
        &app.api("alpha", "/reminders"),
        Some(&app.alpha_editor.token),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    r
}

fn fields(body: &Value) -> Vec<String> {
    let mut f: Vec<String> = body["error"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields in {body}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect();
    f.sort();
    f
}

fn kampala() -> TimeZone {
    TimeZone::get("Africa/Kampala").unwrap()
}

/// Today in Kampala (alpha's zone).
fn today() -> Date {
    jiff::Timestamp::now().to_zoned(kampala()).date()
}

fn day(d: Date, days: i64) -> Date {
    d.checked_add(jiff::Span::new().days(days)).unwrap()
}

/// 09:00 on `d` in `zone`, as epoch ms.
fn nine_on(d: Date, zone: &TimeZone) -> i64 {
    d.at(9, 0, 0, 0)
        .to_zoned(zone.clone())
        .unwrap()
        .timestamp()
        .as_millisecond()
}

/// Creates an alpha case as the editor; returns its case id.
async fn new_case(
    app: &TestApp,
    name: &str,
    case_type: &str,
    phone: Option<&str>,
    properties: Value,
) -> String {
    let (status, c) = call(
        app,
        Method::POST,
        &app.api("alpha", "/cases"),
        Some(&app.alpha_editor.token),
        Some(
            json!({"name": name, "case_type": case_type, "phone_number": phone,
            "properties": properties}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{c}");
    c["case_id"].as_str().unwrap().to_string()
}

async fn reminders_are_created_read_listed_changed_and_deleted(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let token = Some(app.alpha_editor.token.as_str());
    let r = create(
        &app,
        rule(json!({
            "query": "study_arm = B",
            "stop_query": "visit_done = yes",
            "repeat": {"every_days": 1, "times": 3},
            "content": {"sms": {"*": "Visit on {case.next_visit}", "sw": "Kliniki {case.next_visit}"}},
            "late_limit_hours": 6
        })),
    )
    .await;
    let id = r["id"].as_i64().unwrap();
    assert_eq!(r["name"], "Visit reminder");
    assert_eq!(r["active"], true, "active by default");
    assert_eq!(r["case_type"], "mother");
    assert_eq!(r["query"], "study_arm = B");
    assert_eq!(r["stop_query"], "visit_done = yes");
    assert_eq!(
        r["start"],
        json!({"property": "next_visit", "offset_days": -2})
    );
    assert_eq!(r["time"], "09:00");
    assert_eq!(r["repeat"], json!({"every_days": 1, "times": 3}));
    assert_eq!(r["content"]["sms"]["sw"], "Kliniki {case.next_visit}");
    assert_eq!(r["late_limit_hours"], 6);
    assert_eq!(r["version"], 1);
    assert!(r["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(r["updated_at"].is_string());
    assert!(r["evaluation"]["done"].is_boolean());
    assert!(r["counts"]["states"].is_object(), "{r}");
    let url = app.api("alpha", &format!("/reminders/{id}"));
    let (status, got) = call(&app, Method::GET, &url, token, None).await;
    assert_eq!(status, 200);
    for k in [
        "id",
        "name",
        "query",
        "start",
        "time",
        "repeat",
        "content",
        "created_at",
    ] {
        assert_eq!(got[k], r[k], "{k}");
    }
    // The list, oldest first, in pages; without counts.
    let second = create(&app, rule(json!({"name": "Second"}))).await;
    let third = create(
        &app,
        rule(json!({"name": "Third", "start": {"immediately": true}, "time": null})),
    )
    .await;
    assert_eq!(third["start"], json!({"immediately": true}));
    assert_eq!(third["time"], Value::Null);
    assert_eq!(third["late_limit_hours"], Value::Null);
    let list_url = app.api("alpha", "/reminders?limit=2");
    let (status, page1) = call(&app, Method::GET, &list_url, token, None).await;
    assert_eq!(status, 200, "{page1}");
    let ids = |page: &Value| -> Vec<Value> {
        page["reminders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].clone())
            .collect()
    };
    assert_eq!(ids(&page1), vec![r["id"].clone(), second["id"].clone()]);
    assert!(page1["reminders"][0].get("counts").is_none());
    assert_eq!(page1["reminders"][0]["name"], "Visit reminder");
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/reminders?limit=2&cursor={cursor}")),
        token,
        None,
    )
    .await;
    assert_eq!(ids(&page2), vec![third["id"].clone()]);
    assert_eq!(page2["next_cursor"], Value::Null);
    // PATCH merges: the given fields change, the others stay; the version goes up.
    let (status, changed) = call(
        &app,
        Method::PATCH,
        &url,
        token,
        Some(json!({"start": {"property": "next_visit", "offset_days": -3}, "repeat": null})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["start"]["offset_days"], -3);
    assert_eq!(changed["repeat"], Value::Null);
    assert_eq!(changed["query"], "study_arm = B");
    assert_eq!(changed["content"], r["content"]);
    assert_eq!(changed["version"], 2);
    assert_eq!(changed["created_at"], r["created_at"]);
    // What GET answers can be sent back whole (its read-only fields are ignored).
    let mut whole = changed.clone();
    whole["active"] = json!(false);
    whole["late_limit_hours"] = Value::Null;
    let (status, again) = call(&app, Method::PATCH, &url, token, Some(whole)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (&again["active"], &again["late_limit_hours"], &again["id"]),
        (&json!(false), &Value::Null, &json!(id))
    );
    assert_eq!(again["version"], 3);
    // A PATCH that breaks a rule changes nothing.
    let (status, e) = call(
        &app,
        Method::PATCH,
        &url,
        token,
        Some(json!({"repeat": {"every_days": 0, "times": 2}})),
    )
    .await;
    assert_eq!(
        (status, fields(&e)),
        (422, vec!["repeat.every_days".to_string()])
    );
    let (_, still) = call(&app, Method::GET, &url, token, None).await;
    assert_eq!(still["repeat"], Value::Null);
    assert_eq!(still["version"], 3);
    let (status, _) = call(&app, Method::DELETE, &url, token, None).await;
    assert_eq!(status, 204);
    let (status, gone) = call(&app, Method::GET, &url, token, None).await;
    assert_eq!((status, code(&gone)), (404, "not_found"));
    let (status, _) = call(&app, Method::DELETE, &url, token, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, Method::PATCH, &url, token, Some(json!({}))).await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/reminders/not-a-number"),
        token,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/reminders"),
        token,
        None,
    )
    .await;
    assert_eq!(ids(&list), vec![second["id"].clone(), third["id"].clone()]);
    let (status, e) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/reminders?limit=501"),
        token,
        None,
    )
    .await;
    assert_eq!((status, code(&e)), (422, "invalid"));
}

async fn every_field_error_is_returned_with_its_path(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let post = |body: Value| {
        let app = &app;
        async move {
            call(
                app,
                Method::POST,
                &app.api("alpha", "/reminders"),
                Some(&app.alpha_editor.token),
                Some(body),
            )
            .await
        }
    };
    let (status, e) = post(json!({
        "name": "",
        "case_type": "mother",
        "query": "(study_arm = B",
        "start": {"property": "next_visit", "offset_days": 400},
        "time": "9am",
        "repeat": {"every_days": 1, "times": 0},
        "content": {"sms": {"*": "Hi", "sw": 3}},
        "late_limit_hours": 0,
        "colour": "red"
    }))
    .await;
    assert_eq!((status, code(&e)), (422, "invalid"), "{e}");
    assert_eq!(
        fields(&e),
        vec![
            "colour",
            "content.sms.sw",
            "late_limit_hours",
            "name",
            "query",
            "repeat.times",
            "start.offset_days",
            "time",
        ]
    );
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("start.offset_days: must be a whole number of days from -365 to 365"),
        "{message}"
    );
    // Nothing said about when: `start` is named.
    let (status, e) =
        post(json!({"name": "R", "case_type": "mother", "content": {"sms": "Hi"}})).await;
    assert_eq!((status, fields(&e)), (422, vec!["start".to_string()]));
    // A survey the project does not have.
    let (status, e) = post(rule(json!({"content": {"survey": 987654}}))).await;
    assert_eq!(
        (status, fields(&e)),
        (422, vec!["content.survey".to_string()]),
        "{e}"
    );
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no such survey in this project"));
    // Beta's survey is not alpha's.
    let (status, beta_survey) = call(
        &app,
        Method::POST,
        &app.api("beta", "/surveys"),
        Some(&app.beta_admin.token),
        Some(crate::surveys::body("Beta")),
    )
    .await;
    assert_eq!(status, 201, "{beta_survey}");
    let (status, e) = post(rule(json!({"content": {"survey": beta_survey["id"]}}))).await;
    assert_eq!(
        (status, fields(&e)),
        (422, vec!["content.survey".to_string()])
    );
    let survey = new_survey(&app, "Follow-up").await;
    let (status, r) = post(rule(json!({"content": {"survey": survey["id"]}}))).await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["content"], json!({"survey": survey["id"]}));
    // Not an object; not JSON.
    let (status, e) = post(json!([1, 2])).await;
    assert_eq!((status, fields(&e)), (422, vec!["body".to_string()]));
    let resp = app
        .http
        .post(app.api("alpha", "/reminders"))
        .bearer_auth(&app.alpha_editor.token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(code(&e), "invalid_json");
    // Bodies over 2 MB are 413.
    // Just over (what is sent past the limit is not read, so keep that small).
    let big = rule(json!({"name": "x".repeat(2 * 1024 * 1024)}));
    let (status, e) = post(big).await;
    assert_eq!((status, code(&e)), (413, "too_large"), "{e}");
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/reminders"),
        Some(&app.alpha_editor.token),
        None,
    )
    .await;
    assert_eq!(
        list["reminders"].as_array().unwrap().len(),
        1,
        "only the good one"
    );
}

async fn readers_read_and_writers_write(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let r = create(&app, rule(json!({}))).await;
    let id = r["id"].as_i64().unwrap();
    let viewer = Some(app.alpha_viewer.token.as_str());
    for path in [
        "/reminders".to_string(),
        format!("/reminders/{id}"),
        format!("/reminders/{id}/upcoming"),
    ] {
        let (status, body) = call(&app, Method::GET, &app.api("alpha", &path), viewer, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        let (status, body) = call(&app, Method::GET, &app.api("alpha", &path), None, None).await;
        assert_eq!((status, code(&body)), (401, "unauthorized"), "{path}");
    }
    for (method, path, body) in [
        (
            Method::POST,
            "/reminders".to_string(),
            Some(rule(json!({}))),
        ),
        (
            Method::POST,
            "/reminders/preview".to_string(),
            Some(rule(json!({}))),
        ),
        (
            Method::PATCH,
            format!("/reminders/{id}"),
            Some(json!({"active": false})),
        ),
        (Method::DELETE, format!("/reminders/{id}"), None),
    ] {
        let (status, e) = call(&app, method.clone(), &app.api("alpha", &path), viewer, body).await;
        assert_eq!((status, code(&e)), (403, "forbidden"), "{method} {path}");
    }
    // The admin writes too.
    let (status, _) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/reminders/{id}")),
        Some(&app.alpha_admin.token),
        Some(json!({"active": false})),
    )
    .await;
    assert_eq!(status, 200);
}

async fn another_projects_reminder_is_404(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let r = create(&app, rule(json!({}))).await;
    let id = r["id"].as_i64().unwrap();
    let beta = Some(app.beta_admin.token.as_str());
    for (method, path, body) in [
        (Method::GET, format!("/reminders/{id}"), None),
        (Method::GET, format!("/reminders/{id}/upcoming"), None),
        (
            Method::PATCH,
            format!("/reminders/{id}"),
            Some(json!({"name": "Mine"})),
        ),
        (Method::DELETE, format!("/reminders/{id}"), None),
    ] {
        let (status, e) = call(&app, method.clone(), &app.api("beta", &path), beta, body).await;
        assert_eq!((status, code(&e)), (404, "not_found"), "{method} {path}");
    }
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("beta", "/reminders"),
        beta,
        None,
    )
    .await;
    assert_eq!(list["reminders"], json!([]));
    // Alpha's token does not reach beta either.
    let (status, _) = call(
        &app,
        Method::GET,
        &app.api("beta", "/reminders"),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, still) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/reminders/{id}")),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(
        (&still["name"], &still["version"]),
        (&json!("Visit reminder"), &json!(1))
    );
}

/// Cases of every kind for the upcoming list; returns (soonest, London, later) case ids, due
/// at 09:00 on today+3, on today+10 in London and on today+48 in Kampala.
async fn upcoming_cases(app: &TestApp) -> (String, String, String) {
    let t = today();
    let visit = |days: i64| day(t, days).to_string();
    let later = new_case(
        app,
        "Cleo",
        "mother",
        Some("0772000103"),
        json!({"next_visit": visit(50)}),
    )
    .await;
    let london = new_case(
        app,
        "Bea",
        "mother",
        Some("0772000102"),
        json!({"next_visit": visit(12), "time_zone": "Europe/London", "study_arm": "B"}),
    )
    .await;
    let soonest = new_case(
        app,
        "Amina",
        "mother",
        Some("0772000101"),
        json!({"next_visit": visit(5), "study_arm": "B"}),
    )
    .await;
    new_case(app, "No date", "mother", Some("0772000104"), json!({})).await;
    new_case(
        app,
        "Bad date",
        "mother",
        Some("0772000105"),
        json!({"next_visit": "5 March"}),
    )
    .await;
    new_case(
        app,
        "No phone",
        "mother",
        None,
        json!({"next_visit": visit(6)}),
    )
    .await;
    new_case(
        app,
        "Opted out",
        "mother",
        Some("0772000106"),
        json!({"next_visit": visit(6)}),
    )
    .await;
    new_case(
        app,
        "Other type",
        "contact",
        Some("0772000107"),
        json!({"next_visit": visit(6)}),
    )
    .await;
    let (status, e) = call(
        app,
        Method::POST,
        &app.api("alpha", "/opt-outs"),
        Some(&app.alpha_editor.token),
        Some(json!({"phone_number": "0772000106"})),
    )
    .await;
    assert!(status == 201 || status == 200, "{status} {e}");
    (soonest, london, later)
}

async fn the_upcoming_list_is_soonest_first_with_the_skipped_by_reason(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (soonest, london, later) = upcoming_cases(&app).await;
    let r = create(&app, rule(json!({}))).await;
    let id = r["id"].as_i64().unwrap();
    let upcoming = |query: &str| {
        let app = &app;
        let url = app.api("alpha", &format!("/reminders/{id}/upcoming{query}"));
        async move { call(app, Method::GET, &url, Some(&app.alpha_viewer.token), None).await }
    };
    let t = today();
    let london_zone = TimeZone::get("Europe/London").unwrap();
    let (status, u) = upcoming("").await;
    assert_eq!(status, 200, "{u}");
    assert_eq!(u["days"], 30);
    let list = u["upcoming"].as_array().unwrap();
    assert_eq!(
        list.iter()
            .map(|i| i["case_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec![soonest.as_str(), london.as_str()],
        "soonest first, the later one outside 30 days: {u}"
    );
    assert_eq!(u["total"], 2);
    assert_eq!(
        u["cases"], 7,
        "every mother with or without a schedule: {u}"
    );
    assert_eq!(
        u["skipped"],
        json!({"no_date": 1, "date_unreadable": 1, "no_phone": 1, "opted_out": 1})
    );
    let first = &list[0];
    assert_eq!(first["case_name"], "Amina");
    assert_eq!(first["occurrence"], 1);
    assert_eq!(
        first["at"],
        casecast_core::time::rfc3339(nine_on(day(t, 3), &kampala()))
    );
    assert!(first["at"].as_str().unwrap().ends_with('Z'));
    let local = first["local"].as_str().unwrap();
    assert!(
        local.contains(&day(t, 3).to_string()) && local.contains("09:00"),
        "{local}"
    );
    assert_eq!(
        first["text"],
        format!("Amina: your visit is on {}.", day(t, 5))
    );
    // Bea's 09:00 is London's.
    assert_eq!(
        list[1]["at"],
        casecast_core::time::rfc3339(nine_on(day(t, 10), &london_zone))
    );
    // A longer window takes the later case; a limit shortens the list, not the total.
    let (_, u) = upcoming("?days=60").await;
    assert_eq!(u["total"], 3);
    assert_eq!(u["upcoming"][2]["case_id"], later.as_str());
    let (_, u) = upcoming("?days=60&limit=1").await;
    assert_eq!(
        (u["upcoming"].as_array().unwrap().len(), &u["total"]),
        (1, &json!(3))
    );
    // A repeat lists each occurrence; a query narrows the cases.
    let (status, _) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/reminders/{id}")),
        Some(&app.alpha_editor.token),
        Some(json!({"query": "study_arm = B", "repeat": {"every_days": 1, "times": 2}})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, u) = upcoming("?days=30").await;
    let got: Vec<(String, i64)> = u["upcoming"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["case_name"].as_str().unwrap().to_string(),
                i["occurrence"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("Amina".to_string(), 1),
            ("Amina".to_string(), 2),
            ("Bea".to_string(), 1),
            ("Bea".to_string(), 2)
        ]
    );
    assert_eq!(u["cases"], 2);
    assert_eq!(u["skipped"], json!({}));
    // The window and the limit are bounded.
    for query in [
        "?days=0",
        "?days=91",
        "?days=-1",
        "?days=soon",
        "?limit=0",
        "?limit=1001",
    ] {
        let (status, e) = upcoming(query).await;
        assert_eq!((status, code(&e)), (422, "invalid"), "{query}: {e}");
    }
    let (_, e) = upcoming("?days=91").await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("days: must be"),
        "{e}"
    );
    let (_, u) = upcoming("?days=90&limit=1000").await;
    assert_eq!(u["days"], 90);
}

async fn an_unsaved_rule_is_previewed(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (soonest, london, _) = upcoming_cases(&app).await;
    let preview = |query: &str, body: Value| {
        let app = &app;
        let url = app.api("alpha", &format!("/reminders/preview{query}"));
        async move {
            call(
                app,
                Method::POST,
                &url,
                Some(&app.alpha_editor.token),
                Some(body),
            )
            .await
        }
    };
    let (status, u) = preview("", rule(json!({"query": "study_arm = B"}))).await;
    assert_eq!(status, 200, "{u}");
    assert_eq!(
        u["upcoming"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["case_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec![soonest.as_str(), london.as_str()]
    );
    assert_eq!(
        (&u["total"], &u["cases"], &u["days"]),
        (&json!(2), &json!(2), &json!(30))
    );
    assert_eq!(
        u["upcoming"][0]["text"],
        format!("Amina: your visit is on {}.", day(today(), 5))
    );
    let (_, u) = preview("?days=60", rule(json!({}))).await;
    assert_eq!(u["total"], 3);
    // A bad rule names its fields; a bad window is refused.
    let (status, e) = preview("", rule(json!({"start": {"property": "next visit"}}))).await;
    assert_eq!(
        (status, fields(&e)),
        (422, vec!["start.property".to_string()])
    );
    let (status, e) = preview("?days=100", rule(json!({}))).await;
    assert_eq!((status, code(&e)), (422, "invalid"));
    // Nothing was saved.
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/reminders"),
        Some(&app.alpha_editor.token),
        None,
    )
    .await;
    assert_eq!(list["reminders"], json!([]));
}

async fn a_message_sent_by_a_reminder_carries_its_id(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    // The test drives the reminders itself, on a clock of its own.
    app._stop_worker.send(true).unwrap();
    let (status, g) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/gateways"),
        Some(&app.alpha_admin.token),
        Some(json!({"name": "Log", "kind": "log"})),
    )
    .await;
    assert_eq!(status, 201, "{g}");
    let t = today();
    let case_id = new_case(
        &app,
        "Amina",
        "mother",
        Some("0772000201"),
        json!({"next_visit": day(t, 5).to_string()}),
    )
    .await;
    let r = create(&app, rule(json!({}))).await;
    let id = r["id"].as_i64().unwrap();
    let clock = ManualClock::new(jiff::Timestamp::now().as_millisecond());
    while reminders::evaluate_rules(&app.db, &clock).await.unwrap() {}
    let (_, got) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/reminders/{id}")),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(got["evaluation"]["done"], true, "{got}");
    assert!(got["evaluation"]["evaluated_at"].is_string());
    assert_eq!(got["counts"]["states"], json!({"scheduled": 1}));
    clock.set(nine_on(day(t, 3), &kampala()));
    assert_eq!(reminders::fire_due(&app.db, &clock).await.unwrap(), 1);
    let (_, got) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/reminders/{id}")),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(got["counts"]["outcomes"], json!({"queued": 1}));
    let messages = |query: String| {
        let app = &app;
        async move {
            let (status, list) = call(
                app,
                Method::GET,
                &app.api("alpha", &format!("/messages{query}")),
                Some(&app.alpha_viewer.token),
                None,
            )
            .await;
            assert_eq!(status, 200, "{list}");
            list["messages"].as_array().unwrap().clone()
        }
    };
    let all = messages(String::new()).await;
    assert_eq!(all.len(), 1);
    let m = &all[0];
    assert_eq!(m["reminder_id"], id);
    assert_eq!(m["case_id"], case_id.as_str());
    assert_eq!(m["text"], format!("Amina: your visit is on {}.", day(t, 5)));
    assert_eq!(messages(format!("?reminder_id={id}")).await.len(), 1);
    assert!(messages(format!("?reminder_id={}", id + 1))
        .await
        .is_empty());
    let message_id = m["id"].as_i64().unwrap();
    let (_, one) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/messages/{message_id}")),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(one["reminder_id"], id);
    // The message's page names the rule and links to it.
    let session = login(&app, &app.alpha_viewer).await;
    let path = format!("/a/alpha/messaging/messages/{message_id}");
    let (status, html) = get_page(&app, &session, &path).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!(
            "<a href=\"/a/alpha/messaging/reminders/{id}\">Visit reminder</a>"
        )),
        "{html}"
    );
    // A deleted rule's messages keep its id.
    let (status, _) = call(
        &app,
        Method::DELETE,
        &app.api("alpha", &format!("/reminders/{id}")),
        Some(&app.alpha_editor.token),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(messages(format!("?reminder_id={id}")).await.len(), 1);
    let (_, html) = get_page(&app, &session, &path).await;
    assert!(html.contains("a deleted reminder"), "{html}");
}
