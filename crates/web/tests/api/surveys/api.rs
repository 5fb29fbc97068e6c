//! `/surveys` over HTTP.

use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use super::{active_session, body, end_session, new_survey};
use crate::{call, code};

casecast_testkit::on_both_engines!(
    surveys_are_created_read_listed_changed_and_deleted,
    every_field_error_is_returned_with_its_path,
    names_are_unique_ignoring_case,
    questions_are_frozen_while_sessions_are_active,
    deletion_is_refused_while_sessions_are_active,
    readers_read_and_writers_write,
    another_projects_survey_is_404,
    the_largest_survey_fits_and_bigger_bodies_are_413,
);

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

async fn surveys_are_created_read_listed_changed_and_deleted(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let token = Some(app.alpha_editor.token.as_str());
    let s = new_survey(&app, "Follow-up").await;
    let id = s["id"].as_i64().unwrap();
    assert_eq!(s["name"], "Follow-up");
    assert_eq!(s["questions"][0]["key"], "age");
    assert_eq!(s["questions"][1]["choices"][0]["text"]["sw"], "Ndiyo");
    assert_eq!(s["intro"]["*"], "Hello from the clinic");
    assert_eq!(
        s["end_text"],
        json!({"*": "Thank you"}),
        "a plain text is the default"
    );
    assert_eq!(s["invalid_text"], Value::Null);
    assert_eq!(s["max_attempts"], 2);
    assert_eq!(s["reminders"], json!({"every_minutes": 60, "times": 2}));
    assert_eq!(s["expire_after_minutes"], 1440);
    assert!(s["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(s["updated_at"].is_string());
    assert_eq!(
        s["sessions"],
        json!({"active": 0, "completed": 0, "expired": 0, "cancelled": 0})
    );
    let (status, got) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/surveys/{id}")),
        token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(got, s);
    // Defaults of a minimal body.
    let (status, min) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/surveys"),
        token,
        Some(
            json!({"name": "Minimal", "questions": [{"key": "q", "type": "text", "text": "Why?"}]}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{min}");
    assert_eq!(min["max_attempts"], 3);
    assert_eq!(min["expire_after_minutes"], 1440);
    assert_eq!(min["reminders"], Value::Null);
    assert_eq!(min["questions"][0]["required"], true);
    // The list, newest first, in pages.
    let (status, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/surveys"),
        token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let ids: Vec<i64> = list["surveys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![min["id"].as_i64().unwrap(), id]);
    assert_eq!(list["next_cursor"], Value::Null);
    let (_, first) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/surveys?limit=1"),
        token,
        None,
    )
    .await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let (_, second) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/surveys?limit=1&cursor={cursor}")),
        token,
        None,
    )
    .await;
    assert_eq!(second["surveys"][0]["id"], id);
    assert_eq!(second["next_cursor"], Value::Null);
    // PATCH merges: the given fields change, the others stay; null clears an optional one.
    let url = app.api("alpha", &format!("/surveys/{id}"));
    let (status, changed) = call(
        &app,
        Method::PATCH,
        &url,
        token,
        Some(json!({"name": "Renamed", "end_text": null})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "Renamed");
    assert_eq!(changed["end_text"], Value::Null);
    assert_eq!(changed["questions"], s["questions"]);
    assert_eq!(changed["intro"], s["intro"]);
    // What GET answers can be sent back whole (its read-only fields are ignored).
    let mut whole = changed.clone();
    whole["max_attempts"] = json!(4);
    let (status, again) = call(&app, Method::PATCH, &url, token, Some(whole)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["max_attempts"], 4);
    assert_eq!(again["id"], id);
    assert_eq!(again["created_at"], s["created_at"]);
    let (status, _) = call(&app, Method::DELETE, &url, token, None).await;
    assert_eq!(status, 204);
    let (status, gone) = call(&app, Method::GET, &url, token, None).await;
    assert_eq!((status, code(&gone)), (404, "not_found"));
    let (status, _) = call(&app, Method::DELETE, &url, token, None).await;
    assert_eq!(status, 404);
}

async fn every_field_error_is_returned_with_its_path(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let token = Some(app.alpha_editor.token.as_str());
    let url = app.api("alpha", "/surveys");
    let bad = json!({
        "name": "  ",
        "intro": {"sw": "Habari"},
        "max_attempts": 0,
        "expire_after_minutes": 60,
        "reminders": {"every_minutes": 90, "times": 11},
        "questions": [
            {"key": "status", "type": "text", "text": {"*": "Hi", "not a code": "x"}},
            {"key": "visited", "type": "choice", "text": "Visited?", "case_property": "bad name!",
             "choices": [
                {"value": " ", "text": "Yes"},
                {"value": "no", "text": "No", "synonyms": ["1"]}
             ]},
            {"key": "when", "type": "date", "text": "When?", "min": 1}
        ]
    });
    let (status, e) = call(&app, Method::POST, &url, token, Some(bad)).await;
    assert_eq!((status, code(&e)), (422, "invalid"), "{e}");
    assert_eq!(
        fields(&e),
        vec![
            "intro",
            "max_attempts",
            "name",
            "questions[0].key",
            "questions[0].text.not a code",
            "questions[1].case_property",
            "questions[1].choices[0].value",
            "questions[1].choices[1].synonyms[0]",
            "questions[2].min",
            "reminders.every_minutes",
            "reminders.times",
        ]
    );
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("max_attempts: must be from 1 to 10"),
        "{message}"
    );
    assert!(
        message.contains("; "),
        "the message joins them all: {message}"
    );
    for f in e["error"]["fields"].as_array().unwrap() {
        assert!(!f["message"].as_str().unwrap().is_empty());
    }
    // A value of the wrong shape stops the reading there, with its path.
    let mut wrong = body("Wrong");
    wrong["questions"][1]["type"] = json!("essay");
    let (status, e) = call(&app, Method::POST, &url, token, Some(wrong)).await;
    assert_eq!(status, 422);
    assert_eq!(fields(&e), vec!["questions[1].type"]);
    let mut unknown = body("Unknown");
    unknown["colour"] = json!("blue");
    let (_, e) = call(&app, Method::POST, &url, token, Some(unknown)).await;
    assert_eq!(fields(&e), vec!["colour"], "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field"),
        "{e}"
    );
    let (status, e) = call(&app, Method::POST, &url, token, Some(json!([1, 2]))).await;
    assert_eq!((status, fields(&e)), (422, vec!["body".to_string()]));
    // Not JSON at all.
    let resp = app
        .http
        .post(&url)
        .bearer_auth(&app.alpha_editor.token)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    // A PATCH is checked whole, and names every problem too; nothing changes.
    let s = new_survey(&app, "Kept").await;
    let one = app.api("alpha", &format!("/surveys/{}", s["id"]));
    let (status, e) = call(
        &app,
        Method::PATCH,
        &one,
        token,
        Some(json!({"max_attempts": 0, "questions": []})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(fields(&e), vec!["max_attempts", "questions"]);
    let (status, e) = call(
        &app,
        Method::PATCH,
        &one,
        token,
        Some(json!({"reminders": {"every_minutes": 2000, "times": 1}})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        fields(&e),
        vec!["reminders.every_minutes"],
        "longer than the expiry: {e}"
    );
    let (_, after) = call(&app, Method::GET, &one, token, None).await;
    assert_eq!(after["max_attempts"], 2);
    assert_eq!(after["reminders"], s["reminders"]);
}

async fn names_are_unique_ignoring_case(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let token = Some(app.alpha_editor.token.as_str());
    new_survey(&app, "Follow-up").await;
    let (status, e) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/surveys"),
        token,
        Some(body(" follow-UP ")),
    )
    .await;
    assert_eq!((status, code(&e)), (409, "name_taken"), "{e}");
    let other = new_survey(&app, "Other").await;
    let (status, e) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/surveys/{}", other["id"])),
        token,
        Some(json!({"name": "FOLLOW-UP"})),
    )
    .await;
    assert_eq!((status, code(&e)), (409, "name_taken"));
    // Another project may use it.
    let (status, _) = call(
        &app,
        Method::POST,
        &app.api("beta", "/surveys"),
        Some(&app.beta_admin.token),
        Some(body("Follow-up")),
    )
    .await;
    assert_eq!(status, 201);
}

async fn questions_are_frozen_while_sessions_are_active(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let token = Some(app.alpha_editor.token.as_str());
    let s = new_survey(&app, "Follow-up").await;
    let id = s["id"].as_i64().unwrap();
    let url = app.api("alpha", &format!("/surveys/{id}"));
    let one = active_session(&app, id, 1).await;
    let two = active_session(&app, id, 2).await;
    let mut questions = s["questions"].clone();
    questions[0]["max"] = json!(99);
    let (status, e) = call(
        &app,
        Method::PATCH,
        &url,
        token,
        Some(json!({"questions": questions})),
    )
    .await;
    assert_eq!((status, code(&e)), (409, "survey_in_use"), "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("2 active sessions"), "{message}");
    assert!(
        message.contains("completing, expiring, or being cancelled"),
        "{message}"
    );
    // Every other field may change; the same questions sent back are no change.
    let (status, changed) = call(
        &app,
        Method::PATCH,
        &url,
        token,
        Some(json!({
            "name": "Renamed", "intro": "Hi", "end_text": "Bye", "invalid_text": "Try again",
            "max_attempts": 5, "reminders": null, "expire_after_minutes": 600,
            "questions": s["questions"]
        })),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "Renamed");
    assert_eq!(changed["sessions"]["active"], 2);
    end_session(&app, one, "completed").await;
    let (status, e) = call(
        &app,
        Method::PATCH,
        &url,
        token,
        Some(json!({"questions": questions})),
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 active session;"),
        "{e}"
    );
    end_session(&app, two, "expired").await;
    let (status, done) = call(
        &app,
        Method::PATCH,
        &url,
        token,
        Some(json!({"questions": questions})),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["questions"][0]["max"], 99);
    assert_eq!(
        done["sessions"],
        json!({"active": 0, "completed": 1, "expired": 1, "cancelled": 0})
    );
}

async fn deletion_is_refused_while_sessions_are_active(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let token = Some(app.alpha_editor.token.as_str());
    let s = new_survey(&app, "Follow-up").await;
    let id = s["id"].as_i64().unwrap();
    let url = app.api("alpha", &format!("/surveys/{id}"));
    let session = active_session(&app, id, 1).await;
    let (status, e) = call(&app, Method::DELETE, &url, token, None).await;
    assert_eq!((status, code(&e)), (409, "survey_in_use"));
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 active session"),
        "{e}"
    );
    end_session(&app, session, "cancelled").await;
    let (status, _) = call(&app, Method::DELETE, &url, token, None).await;
    assert_eq!(status, 204);
    assert!(
        app.db.survey_session(app.alpha.id, session).await.is_err(),
        "its sessions went with it"
    );
}

async fn readers_read_and_writers_write(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = new_survey(&app, "Follow-up").await;
    let one = app.api("alpha", &format!("/surveys/{}", s["id"]));
    let list = app.api("alpha", "/surveys");
    let viewer = Some(app.alpha_viewer.token.as_str());
    let (status, got) = call(&app, Method::GET, &one, viewer, None).await;
    assert_eq!((status, got["name"].as_str()), (200, Some("Follow-up")));
    let (status, _) = call(&app, Method::GET, &list, viewer, None).await;
    assert_eq!(status, 200);
    for (method, url, b) in [
        (Method::POST, &list, Some(body("Viewer's"))),
        (Method::PATCH, &one, Some(json!({"name": "Viewer's"}))),
        (Method::DELETE, &one, None),
    ] {
        let (status, e) = call(&app, method.clone(), url, viewer, b.clone()).await;
        assert_eq!((status, code(&e)), (403, "forbidden"), "{method} {url}");
        let (status, _) = call(&app, method.clone(), url, None, b).await;
        assert_eq!(status, 401, "{method} {url} without a token");
    }
    let (status, _) = call(&app, Method::GET, &list, None, None).await;
    assert_eq!(status, 401);
    // Admins write as editors do.
    let (status, _) = call(
        &app,
        Method::PATCH,
        &one,
        Some(&app.alpha_admin.token),
        Some(json!({"name": "Admin's"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, after) = call(&app, Method::GET, &one, viewer, None).await;
    assert_eq!(after["name"], "Admin's");
}

async fn another_projects_survey_is_404(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let s = new_survey(&app, "Follow-up").await;
    let beta = Some(app.beta_admin.token.as_str());
    let path = format!("/surveys/{}", s["id"]);
    for (method, b) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "Stolen"}))),
        (Method::DELETE, None),
    ] {
        let (status, e) = call(&app, method.clone(), &app.api("beta", &path), beta, b).await;
        assert_eq!((status, code(&e)), (404, "not_found"), "{method}");
    }
    // Beta's token on alpha's path is not alpha's.
    let (status, _) = call(&app, Method::GET, &app.api("alpha", &path), beta, None).await;
    assert!(status == 401 || status == 403 || status == 404, "{status}");
    let (_, list) = call(&app, Method::GET, &app.api("beta", "/surveys"), beta, None).await;
    assert_eq!(list["surveys"], json!([]));
    let (status, _) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/surveys/x1"),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, still) = call(
        &app,
        Method::GET,
        &app.api("alpha", &path),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(still["name"], "Follow-up");
}

/// A survey at the rules' limits in eight translations of a three-byte script: 50 questions
/// of 20 options, every option with 10 synonyms, every question's message near its longest.
fn largest_survey() -> Value {
    let languages = ["am", "ti", "om", "so", "sw", "ar", "hi", "zh"];
    // `n` characters, distinct per seed: the seed's digits, then `fill`.
    let pad = |seed: usize, fill: char, n: usize| -> String {
        let mut s = format!("{seed} ");
        while s.chars().count() < n {
            s.push(fill);
        }
        s
    };
    let long = |seed: usize, n: usize| pad(seed, 'ሀ', n);
    let questions: Vec<Value> = (0..50)
        .map(|q| {
            let texts = |seed: usize, n: usize| {
                let mut m = serde_json::Map::new();
                m.insert("*".into(), json!(pad(seed, 'x', n)));
                for (l, code) in languages.iter().enumerate() {
                    m.insert((*code).into(), json!(long(seed * 10 + l, n)));
                }
                Value::Object(m)
            };
            let choices: Vec<Value> = (0..20)
                .map(|c| {
                    let seed = 1_000_000 + q * 1000 + c * 10;
                    json!({
                        "value": format!("v{q}-{c}-{}", "v".repeat(50)),
                        "text": texts(seed, 60),
                        "synonyms": (0..10).map(|s| format!("s{q}-{c}-{s}-{}", "s".repeat(50))).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({"key": format!("q{q}"), "type": "choice", "text": texts(q, 150), "choices": choices})
        })
        .collect();
    json!({"name": "Largest", "questions": questions})
}

async fn the_largest_survey_fits_and_bigger_bodies_are_413(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let token = Some(app.alpha_editor.token.as_str());
    let url = app.api("alpha", "/surveys");
    let largest = largest_survey();
    let size = largest.to_string().len();
    assert!(
        size > 2 * 1024 * 1024,
        "more than the other endpoints' 2 MB: {size}"
    );
    let (status, s) = call(&app, Method::POST, &url, token, Some(largest)).await;
    assert_eq!(
        status,
        201,
        "{}",
        &s.to_string()[..s.to_string().len().min(500)]
    );
    assert_eq!(s["questions"].as_array().unwrap().len(), 50);
    // A body over 8 MB is refused before it is read whole.
    let padding = "x".repeat(8 * 1024 * 1024);
    let (status, e) = call(
        &app,
        Method::POST,
        &url,
        token,
        Some(json!({"name": padding})),
    )
    .await;
    assert_eq!((status, code(&e)), (413, "too_large"));
    assert!(
        e["error"]["message"].as_str().unwrap().contains("8 MB"),
        "{e}"
    );
}
