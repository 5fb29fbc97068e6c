//! Bodies that cannot be sent are 422s naming the field; viewers only read; another project's
//! broadcasts, groups, cases and gateways do not exist.

use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use super::*;
use crate::case_groups::new_case;
use crate::{call, code};

casecast_testkit::on_both_engines!(
    bad_bodies_are_422_naming_the_field,
    viewers_read_and_other_projects_see_nothing
);

async fn bad_bodies_are_422_naming_the_field(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = audience(&app).await;
    let beta_case = new_case(&app, "beta", &app.beta_admin.token, json!({"name": "Beta"})).await;
    let (_, beta_group) = call(
        &app,
        Method::POST,
        &app.api("beta", "/case-groups"),
        Some(&app.beta_admin.token),
        Some(json!({"name": "Beta group"})),
    )
    .await;
    let (_, beta_gateway) = call(
        &app,
        Method::POST,
        &app.api("beta", "/gateways"),
        Some(&app.beta_admin.token),
        Some(json!({"name": "Beta log", "kind": "log"})),
    )
    .await;
    let with = |changes: Value| {
        let mut b = body("Notice", a.group);
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let last_year = jiff::Zoned::now().year() - 1;
    let cases: Vec<(Value, &str)> = vec![
        (with(json!({"name": null})), "name: "),
        (with(json!({"name": "   "})), "name: "),
        (
            with(json!({"recipients": {"case_groups": [], "cases": []}})),
            "recipients: ",
        ),
        (
            with(json!({"recipients": {"case_groups": [beta_group["id"]]}})),
            "recipients.case_groups[0]: ",
        ),
        (
            with(json!({"recipients": {"cases": [beta_case, "nobody"]}})),
            "recipients.cases: ",
        ),
        (
            with(json!({"content": {"sms": {"sw": "Habari"}}})),
            "content.sms: ",
        ),
        (
            with(json!({"content": {"sms": {"*": "Hi", "sw": "  "}}})),
            "content.sms.sw: ",
        ),
        (
            with(json!({"content": {"sms": {"*": "Hi {case.name"}}})),
            "content.sms.*: ",
        ),
        (
            with(json!({"content": {"survey": "s1"}})),
            "content.survey: ",
        ),
        (
            with(
                json!({"schedule": {"kind": "weekly", "start_date": "2030-01-07", "time": "09:00", "weekdays": []}}),
            ),
            "schedule.weekdays: ",
        ),
        (
            with(json!({"schedule": {"kind": "fortnightly"}})),
            "schedule.kind: ",
        ),
        (
            with(json!({"schedule": {"kind": "once", "at": format!("{last_year}-01-01T09:00")}})),
            "schedule.at: ",
        ),
        (
            with(json!({"gateway_id": beta_gateway["id"]})),
            "gateway_id: ",
        ),
        (with(json!({"gateway_id": "log"})), "gateway_id: "),
        (with(json!({"colour": "blue"})), "colour: "),
        (json!([1, 2]), "body: "),
    ];
    for path in ["/broadcasts/preview", "/broadcasts"] {
        for (b, field) in &cases {
            // A preview shows what would go out now, whatever the schedule says.
            if path.ends_with("preview") && *field == "schedule.at: " {
                continue;
            }
            let (status, err) = post(&app, path, b.clone()).await;
            let message = err["error"]["message"].as_str().unwrap_or_default();
            assert_eq!((status, code(&err)), (422, "invalid"), "{path} {b}: {err}");
            assert!(
                message.starts_with(field),
                "{path} {b}: '{message}' should name {field}"
            );
        }
    }
    // The placeholder error says where it is.
    let (_, err) = post(
        &app,
        "/broadcasts",
        with(json!({"content": {"sms": {"*": "Hi {case.name"}}})),
    )
    .await;
    assert!(
        err["error"]["message"].as_str().unwrap().contains("column"),
        "{err}"
    );
    // Not JSON at all.
    let resp = app
        .http
        .post(app.api("alpha", "/broadcasts"))
        .bearer_auth(&app.alpha_editor.token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(code(&err), "invalid_json");
    let resp = app
        .http
        .post(app.api("alpha", "/broadcasts/preview"))
        .bearer_auth(&app.alpha_editor.token)
        .body(body("Notice", a.group).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415, "a body that is not declared JSON");
    assert_eq!(
        read(&app, "/broadcasts").await["broadcasts"],
        json!([]),
        "nothing was created"
    );
}

async fn viewers_read_and_other_projects_see_nothing(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let a = audience(&app).await;
    let mut b = body("Weekly", a.group);
    b["schedule"] = weekly();
    let (_, created) = post(&app, "/broadcasts", b.clone()).await;
    let id = created["id"].as_i64().unwrap();
    let viewer = Some(app.alpha_viewer.token.as_str());
    for path in ["/broadcasts/preview", "/broadcasts"] {
        let (status, err) = call(
            &app,
            Method::POST,
            &app.api("alpha", path),
            viewer,
            Some(b.clone()),
        )
        .await;
        assert_eq!((status, code(&err)), (403, "forbidden"), "viewer {path}");
    }
    for action in ["cancel", "pause", "resume"] {
        let path = app.api("alpha", &format!("/broadcasts/{id}/{action}"));
        let (status, err) = call(&app, Method::POST, &path, viewer, None).await;
        assert_eq!((status, code(&err)), (403, "forbidden"), "viewer {action}");
    }
    for path in ["", "/messages", "/occurrences"] {
        read(&app, &format!("/broadcasts/{id}{path}")).await;
    }
    assert_eq!(
        read(&app, &format!("/broadcasts/{id}")).await["status"],
        "scheduled"
    );
    // Admins may do what editors do.
    let (status, paused) = call(
        &app,
        Method::POST,
        &app.api("alpha", &format!("/broadcasts/{id}/pause")),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!((status, paused["status"].as_str()), (200, Some("paused")));

    // Beta's admin: alpha's broadcast does not exist in beta, and alpha is not theirs.
    let beta = Some(app.beta_admin.token.as_str());
    for (method, path) in [
        (Method::GET, format!("/broadcasts/{id}")),
        (Method::GET, format!("/broadcasts/{id}/messages")),
        (Method::GET, format!("/broadcasts/{id}/occurrences")),
        (Method::POST, format!("/broadcasts/{id}/cancel")),
        (Method::POST, format!("/broadcasts/{id}/pause")),
        (Method::POST, format!("/broadcasts/{id}/resume")),
    ] {
        let (status, err) = call(&app, method.clone(), &app.api("beta", &path), beta, None).await;
        assert_eq!(
            (status, code(&err)),
            (404, "not_found"),
            "beta {method} {path}"
        );
        let (status, _) = call(&app, method.clone(), &app.api("alpha", &path), beta, None).await;
        assert_eq!(status, 404, "beta's token on alpha {method} {path}");
    }
    let (_, listed) = call(
        &app,
        Method::GET,
        &app.api("beta", "/broadcasts"),
        beta,
        None,
    )
    .await;
    assert_eq!(listed["broadcasts"], json!([]));
    // Beta cannot send to alpha's group either.
    let (status, err) = call(
        &app,
        Method::POST,
        &app.api("beta", "/broadcasts/preview"),
        beta,
        Some(b),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("recipients.case_groups[0]"));
    // Still paused: nothing above changed it.
    assert_eq!(
        read(&app, &format!("/broadcasts/{id}")).await["status"],
        "paused"
    );
}
