//! `/settings/messaging`: everyone reads, admins replace, and bad values are refused by name.

use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{call, code};

casecast_testkit::on_both_engines!(
    settings_round_trip,
    bad_settings_name_the_field,
    stored_settings_that_cannot_be_used_are_reported,
);

async fn get(app: &TestApp, project: &str, token: &str) -> Value {
    let (status, got) = call(
        app,
        Method::GET,
        &app.api(project, "/settings/messaging"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{got}");
    got
}

async fn put(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    call(
        app,
        Method::PUT,
        &app.api("alpha", "/settings/messaging"),
        Some(token),
        Some(body),
    )
    .await
}

async fn settings_round_trip(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let defaults = get(&app, "alpha", &app.alpha_viewer.token).await;
    assert_eq!(defaults["quiet_hours_start"], Value::Null);
    assert_eq!(defaults["quiet_hours_end"], Value::Null);
    assert_eq!(defaults["validity_seconds"], 86400);
    assert!(defaults["stop_keywords"]
        .as_array()
        .unwrap()
        .contains(&json!("STOP")));
    assert!(defaults["start_keywords"]
        .as_array()
        .unwrap()
        .contains(&json!("START")));
    assert!(!defaults["opt_out_reply"].as_str().unwrap().is_empty());
    assert_eq!(
        defaults["default_reply"],
        Value::Null,
        "no default reply unless set"
    );
    assert_eq!(defaults["keyword_reply_limit"], "5/10m");
    assert_eq!(defaults["reminder_late_limit_hours"], 48);
    assert_eq!(
        app.alpha.reminder_late_limit(),
        jiff::SignedDuration::from_hours(48)
    );

    let wanted = json!({
        "quiet_hours_start": "21:00",
        "quiet_hours_end": "07:00",
        "stop_keywords": ["STOP", "ACHA"],
        "start_keywords": ["START", "ANZA"],
        "opt_out_reply": "Umejiondoa. Tuma ANZA kujiunga tena.",
        "opt_in_reply": "Karibu tena.",
        "validity_seconds": 3600,
        "default_reply": "Tuma HELP kwa msaada.",
        "keyword_reply_limit": "3/1h",
        "reminder_late_limit_hours": 72,
    });
    let (status, got) = put(&app, &app.alpha_admin.token, wanted.clone()).await;
    assert_eq!((status, &got), (200, &wanted));
    assert_eq!(get(&app, "alpha", &app.alpha_viewer.token).await, wanted);
    assert_eq!(
        app.db
            .project_by_id(app.alpha.id)
            .await
            .unwrap()
            .messaging
            .unwrap()
            .validity_seconds,
        3600
    );
    let project = app.db.project_by_id(app.alpha.id).await.unwrap();
    assert_eq!(
        project.reminder_late_limit(),
        jiff::SignedDuration::from_hours(72)
    );
    // Editors and viewers read but do not change them.
    for token in [&app.alpha_editor.token, &app.alpha_viewer.token] {
        let (status, got) = put(&app, token, json!({"validity_seconds": 60})).await;
        assert_eq!((status, code(&got)), (403, "forbidden"));
    }
    assert_eq!(get(&app, "alpha", &app.alpha_editor.token).await, wanted);
    // Another project keeps its own.
    assert_eq!(get(&app, "beta", &app.beta_admin.token).await, defaults);
    // A field left out takes its default; null quiet hours turn them off.
    let (status, got) = put(
        &app,
        &app.alpha_admin.token,
        json!({"validity_seconds": 600, "quiet_hours_start": null, "quiet_hours_end": null}),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    let mut expected = defaults.clone();
    expected["validity_seconds"] = json!(600);
    assert_eq!(got, expected);
}

async fn bad_settings_name_the_field(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let before = get(&app, "alpha", &app.alpha_admin.token).await;
    for (body, expected) in [
        (json!({"quiet_hours_start": "21:00"}), "quiet_hours_end:"),
        (
            json!({"quiet_hours_start": "25:00", "quiet_hours_end": "07:00"}),
            "quiet_hours_start:",
        ),
        (
            json!({"quiet_hours_start": "9pm", "quiet_hours_end": "07:00"}),
            "quiet_hours_start:",
        ),
        (json!({"validity_seconds": 5}), "validity_seconds:"),
        (json!({"validity_seconds": 700000}), "validity_seconds:"),
        (json!({"validity_seconds": "long"}), "validity_seconds:"),
        (json!({"opt_out_reply": " "}), "opt_out_reply:"),
        (json!({"opt_in_reply": "x".repeat(481)}), "opt_in_reply:"),
        (
            json!({"stop_keywords": ["STOP"], "start_keywords": ["stop"]}),
            "stop_keywords:",
        ),
        (json!({"stop_keywords": "STOP"}), "stop_keywords:"),
        (json!({"default_reply": "  "}), "default_reply:"),
        (
            json!({"keyword_reply_limit": "often"}),
            "keyword_reply_limit:",
        ),
        (
            json!({"keyword_reply_limit": "0/10m"}),
            "keyword_reply_limit:",
        ),
        (
            json!({"reminder_late_limit_hours": 0}),
            "reminder_late_limit_hours: must be a whole number of hours from 1 to 720",
        ),
        (
            json!({"reminder_late_limit_hours": 721}),
            "reminder_late_limit_hours:",
        ),
        (
            json!({"reminder_late_limit_hours": "two days"}),
            "reminder_late_limit_hours:",
        ),
        (
            json!({"quiet_hours": "21-07"}),
            "unknown field `quiet_hours`",
        ),
    ] {
        let (status, got) = put(&app, &app.alpha_admin.token, body.clone()).await;
        assert_eq!((status, code(&got)), (422, "invalid"), "{body}: {got}");
        let message = got["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert_eq!(
        get(&app, "alpha", &app.alpha_admin.token).await,
        before,
        "nothing changed"
    );
}

/// Settings written past the checks (a hand edit, damage) are reported with the field at
/// fault, the stored values shown for mending; settings saved again mend them.
async fn stored_settings_that_cannot_be_used_are_reported(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let healthy = get(&app, "alpha", &app.alpha_admin.token).await;
    assert!(healthy.get("stored_error").is_none(), "{healthy}");
    app.test_db
        .store_messaging_settings_unchecked(
            app.alpha.id,
            r#"{"quiet_hours_start": "21:00", "quiet_hours_end": "25:00", "validity_seconds": 3600}"#,
        )
        .await;
    for token in [&app.alpha_admin.token, &app.alpha_viewer.token] {
        let got = get(&app, "alpha", token).await;
        assert_eq!(
            got["stored_error"],
            json!({
                "field": "quiet_hours_end",
                "message": "the stored quiet_hours_end: quiet hours end \"25:00\" is not a time like 21:00",
            })
        );
        assert_eq!(
            (&got["quiet_hours_end"], &got["validity_seconds"]),
            (&json!("25:00"), &json!(3600)),
            "the stored values"
        );
    }
    // Another project's settings are its own.
    let beta = get(&app, "beta", &app.beta_admin.token).await;
    assert!(beta.get("stored_error").is_none(), "{beta}");
    // Text that cannot be read at all: the defaults are shown, and the error says where.
    app.test_db
        .store_messaging_settings_unchecked(app.alpha.id, "{\"quiet_hours_start\": \"21:00\", ")
        .await;
    let got = get(&app, "alpha", &app.alpha_admin.token).await;
    assert_eq!(got["stored_error"]["field"], Value::Null);
    let message = got["stored_error"]["message"].as_str().unwrap();
    assert!(
        message.contains("not valid JSON (line 1, column"),
        "{message}"
    );
    assert_eq!(got["quiet_hours_start"], Value::Null, "the defaults");
    // An admin saves settings again: nothing more to report.
    let (status, saved) = put(
        &app,
        &app.alpha_admin.token,
        json!({"validity_seconds": 600}),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    assert!(saved.get("stored_error").is_none(), "{saved}");
    assert!(get(&app, "alpha", &app.alpha_admin.token)
        .await
        .get("stored_error")
        .is_none());
}
