//! Cancel, pause and resume through the API: what each allows, what it answers, and that a
//! cancel stops every message not yet handed to a gateway.

use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::Value;

use super::*;
use crate::gateways::hold_messages;
use crate::{call, code};

casecast_testkit::on_both_engines!(
    a_schedule_pauses_resumes_and_cancels,
    cancelling_stops_what_is_still_queued
);

/// POSTs `/broadcasts/{id}/{action}` as alpha's editor.
async fn control(app: &TestApp, id: i64, action: &str) -> (u16, Value) {
    call(
        app,
        Method::POST,
        &app.api("alpha", &format!("/broadcasts/{id}/{action}")),
        Some(&app.alpha_editor.token),
        None,
    )
    .await
}

async fn a_schedule_pauses_resumes_and_cancels(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = audience(&app).await;
    let mut b = body("Weekly reminder", a.group);
    b["schedule"] = weekly();
    let (_, created) = post(&app, "/broadcasts", b).await;
    let id = created["id"].as_i64().unwrap();
    let next_run = created["next_run_at"].clone();

    let (status, paused) = control(&app, id, "pause").await;
    assert_eq!(
        (status, paused["status"].as_str()),
        (200, Some("paused")),
        "{paused}"
    );
    let (status, err) = control(&app, id, "pause").await;
    assert_eq!((status, code(&err)), (409, "not_active"), "{err}");
    let (status, resumed) = control(&app, id, "resume").await;
    assert_eq!(
        (status, resumed["status"].as_str()),
        (200, Some("scheduled")),
        "{resumed}"
    );
    assert_eq!(
        resumed["next_run_at"], next_run,
        "the first occurrence is still to come"
    );
    let (status, err) = control(&app, id, "resume").await;
    assert_eq!((status, code(&err)), (409, "not_paused"), "{err}");

    let (status, cancelled) = control(&app, id, "cancel").await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );
    assert_eq!(cancelled["next_run_at"], Value::Null);
    let (status, again) = control(&app, id, "cancel").await;
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("cancelled")),
        "cancelling twice"
    );
    for action in ["pause", "resume"] {
        let (status, err) = control(&app, id, action).await;
        assert_eq!(status, 409, "{action} after cancel: {err}");
    }
    for action in ["cancel", "pause", "resume"] {
        let (status, err) = control(&app, 999_999, action).await;
        assert_eq!((status, code(&err)), (404, "not_found"), "{action}");
        let (status, _) = control(&app, -1, action).await;
        assert_eq!(status, 404, "{action} of a negative id");
    }
    let (status, _) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/broadcasts/abc/cancel"),
        Some(&app.alpha_editor.token),
        None,
    )
    .await;
    assert_eq!(status, 404, "an id that is not a number names nothing");
    // Viewers read it and change nothing.
    assert_eq!(
        read(&app, &format!("/broadcasts/{id}")).await["status"],
        "cancelled"
    );
}

async fn cancelling_stops_what_is_still_queued(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    // Quiet hours now: the messages stay queued until the cancel.
    hold_messages(&app).await;
    let a = audience(&app).await;
    let (status, created) = post(&app, "/broadcasts", body("Held", a.group)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    casecast_testkit::eventually(
        "the fan-out queued both messages",
        std::time::Duration::from_secs(30),
        || async {
            let b = read(&app, &format!("/broadcasts/{id}")).await;
            (b["counts"]["queued"] == 2).then_some(())
        },
    )
    .await;
    let (status, pause) = call(
        &app,
        Method::POST,
        &app.api("alpha", &format!("/broadcasts/{id}/pause")),
        Some(&app.alpha_editor.token),
        None,
    )
    .await;
    assert_eq!(
        (status, code(&pause)),
        (409, "not_active"),
        "a sent-now broadcast has nothing to pause"
    );
    let (status, cancelled) = control(&app, id, "cancel").await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["counts"]["cancelled"], 2, "{cancelled}");
    assert_eq!(cancelled["counts"]["queued"], 0);
    let messages = read(&app, &format!("/broadcasts/{id}/messages?status=cancelled")).await;
    let list = messages["messages"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list
        .iter()
        .all(|m| m["error"].as_str().is_some_and(|e| e.contains("cancelled"))));
}
