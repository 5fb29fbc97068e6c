//! Surveys: the definitions' API (CRUD, every field error, the editing and deletion rules,
//! roles, isolation, limits) and the builder's pages through HTTP form posts.

mod api;
mod pages;

use casecast_store::survey_sessions::NewSession;
use casecast_store::Db;
use casecast_testkit::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

use crate::call;

/// A valid survey body named `name`.
pub fn body(name: &str) -> Value {
    json!({
        "name": name,
        "intro": {"*": "Hello from the clinic", "sw": "Habari kutoka kliniki"},
        "questions": [
            {"key": "age", "type": "number", "text": "Your age?", "min": 0, "max": 120,
             "case_property": "age"},
            {"key": "visited", "type": "choice", "text": {"*": "Were you visited?", "sw": "Ulitembelewa?"},
             "choices": [
                {"value": "yes", "text": {"*": "Yes", "sw": "Ndiyo"}, "synonyms": ["y"]},
                {"value": "no", "text": {"*": "No", "sw": "Hapana"}}
             ]}
        ],
        "end_text": "Thank you",
        "max_attempts": 2,
        "reminders": {"every_minutes": 60, "times": 2},
        "expire_after_minutes": 1440
    })
}

/// Creates an alpha survey as alpha's editor; returns its JSON.
pub async fn new_survey(app: &TestApp, name: &str) -> Value {
    let (status, s) = call(
        app,
        Method::POST,
        &app.api("alpha", "/surveys"),
        Some(&app.alpha_editor.token),
        Some(body(name)),
    )
    .await;
    assert_eq!(status, 201, "{s}");
    s
}

/// An active session of the survey for a new alpha case with phone number `+2567720000{n}`,
/// inserted as the engine inserts one.
pub async fn active_session(app: &TestApp, survey_id: i64, n: u32) -> i64 {
    let phone = format!("+2567720000{n:02}");
    let (status, case) = call(
        app,
        Method::POST,
        &app.api("alpha", "/cases"),
        Some(&app.alpha_admin.token),
        Some(json!({"name": format!("Case {n}"), "phone_number": phone})),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    let case_id = case["case_id"].as_str().unwrap();
    let recipient = app
        .db
        .case_recipient(app.alpha.id, case_id)
        .await
        .unwrap()
        .unwrap();
    let mut tx = app.db.begin_write().await.unwrap();
    let id = Db::insert_session(
        &mut tx,
        &NewSession {
            project_id: app.alpha.id,
            survey_id,
            case_pk: recipient.case_pk,
            phone: &phone,
            language_code: None,
            gateway_id: 0,
            occurrence_id: None,
            started_by: None,
            now: 1_000,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

/// Ends a session as `status` (what the engine does when it completes, expires or is cancelled).
pub async fn end_session(app: &TestApp, id: i64, status: &str) {
    let mut tx = app.db.begin_write().await.unwrap();
    let s = app
        .db
        .survey_session_tx(&mut tx, app.alpha.id, id)
        .await
        .unwrap()
        .unwrap();
    let mut state = s.state.clone();
    state.status = casecast_core::survey::session::SessionStatus::parse(status).unwrap();
    state.current_question = None;
    state.step += 1;
    Db::write_session(
        &mut tx,
        id,
        &state,
        &casecast_store::survey_sessions::SessionWrite {
            now: 2_000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}
