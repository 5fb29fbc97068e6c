//! Every API route, read from the OpenAPI document: 401 without a token, 404 with another
//! project's token, 403 for a viewer's writes.

use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::json;

use crate::{call, code};

casecast_testkit::on_both_engines!(every_route_checks_token_project_and_role);

async fn every_route_checks_token_project_and_role(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (_, case) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/cases"),
        Some(&app.alpha_admin.token),
        Some(json!({"name": "Aber", "phone_number": "+256772123456"})),
    )
    .await;
    let case_id = case["case_id"].as_str().unwrap().to_string();
    let admin = Some(app.alpha_admin.token.as_str());
    let (_, gateway) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/gateways"),
        admin,
        Some(json!({"name": "Log", "kind": "log"})),
    )
    .await;
    let gateway_id = gateway["id"].as_i64().unwrap().to_string();
    let (_, message) = call(
        &app,
        Method::POST,
        &app.api("alpha", &format!("/cases/{case_id}/messages")),
        admin,
        Some(json!({"text": "Hello"})),
    )
    .await;
    let message_id = message["id"].as_i64().unwrap().to_string();
    let (status, _) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/opt-outs"),
        admin,
        Some(json!({"phone_number": "+256772000111"})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, group) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/case-groups"),
        Some(&app.alpha_admin.token),
        Some(json!({"name": "Study"})),
    )
    .await;
    let group_id = group["id"].as_i64().unwrap().to_string();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"case_identifier\nnobody\n".to_vec()).file_name("s.csv"),
    );
    let upload: serde_json::Value = app
        .http
        .post(app.api("alpha", &format!("/case-groups/{group_id}/uploads")))
        .bearer_auth(&app.alpha_admin.token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload_id = upload["upload_id"].as_i64().unwrap().to_string();
    let mut broadcast = crate::broadcasts::body("Weekly", group_id.parse().unwrap());
    broadcast["schedule"] = crate::broadcasts::weekly();
    let (status, broadcast) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/broadcasts"),
        admin,
        Some(broadcast),
    )
    .await;
    assert_eq!(status, 201, "{broadcast}");
    let broadcast_id = broadcast["id"].as_i64().unwrap().to_string();
    let survey = crate::surveys::new_survey(&app, "Follow-up").await;
    let survey_id = survey["id"].as_i64().unwrap().to_string();
    let keyword = crate::keywords::new_keyword(&app, crate::keywords::reply_only("REG")).await;
    let keyword_id = keyword["id"].as_i64().unwrap().to_string();
    let (status, reminder) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/reminders"),
        admin,
        // Inactive: it sends nothing to the case above.
        Some(
            json!({"name": "Visit", "active": false, "case_type": "case",
            "start": {"immediately": true}, "content": {"sms": "Hello"}}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{reminder}");
    let reminder_id = reminder["id"].as_i64().unwrap().to_string();
    let doc: serde_json::Value = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/broadcasts",
        "/broadcasts/preview",
        "/broadcasts/{id}",
        "/broadcasts/{id}/cancel",
        "/broadcasts/{id}/pause",
        "/broadcasts/{id}/resume",
        "/broadcasts/{id}/messages",
        "/broadcasts/{id}/occurrences",
    ] {
        let path = format!("/api/v1/projects/{{project}}{route}");
        assert!(
            paths.contains_key(&path),
            "{route} is not in the OpenAPI document"
        );
    }
    let mut checked = 0;
    let mut admin_only = Vec::new();
    for (template, item) in paths {
        // `{id}` names a different object under each collection.
        let id = match template.trim_start_matches("/api/v1/projects/{project}") {
            t if t.starts_with("/gateways/") => &gateway_id,
            t if t.starts_with("/messages/") => &message_id,
            t if t.starts_with("/broadcasts/") => &broadcast_id,
            t if t.starts_with("/surveys/") => &survey_id,
            t if t.starts_with("/keywords/") => &keyword_id,
            t if t.starts_with("/reminders/") => &reminder_id,
            _ => &group_id,
        };
        for (method, operation) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let path = |project: &str| {
                let p = template
                    .replace("{project}", project)
                    .replace("{case_id}", &case_id)
                    .replace("{id}", id)
                    .replace("{upload_id}", &upload_id)
                    .replace("{phone_number}", "%2B256772000111");
                assert!(
                    !p.contains('{'),
                    "the access test does not know a parameter of {template}"
                );
                format!("{}{p}", app.base)
            };
            let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
            let (status, err) =
                call(&app, method.clone(), &path("alpha"), None, body.clone()).await;
            assert_eq!(
                (status, code(&err)),
                (401, "unauthorized"),
                "{method} {template} without a token"
            );
            let (status, _) = call(
                &app,
                method.clone(),
                &path("alpha"),
                Some("cc_not-a-token"),
                body.clone(),
            )
            .await;
            assert_eq!(status, 401, "{method} {template} with a bad token");
            let (status, err) = call(
                &app,
                method.clone(),
                &path("alpha"),
                Some(&app.beta_admin.token),
                body.clone(),
            )
            .await;
            assert_eq!(
                (status, code(&err)),
                (404, "not_found"),
                "{method} {template} with another project's token"
            );
            let (status, _) = call(
                &app,
                method.clone(),
                &path("nowhere"),
                Some(&app.alpha_admin.token),
                body.clone(),
            )
            .await;
            assert_eq!(
                status, 404,
                "{method} {template} on a project that does not exist"
            );
            if method != Method::GET {
                let (status, err) = call(
                    &app,
                    method.clone(),
                    &path("alpha"),
                    Some(&app.alpha_viewer.token),
                    body.clone(),
                )
                .await;
                assert_eq!(
                    (status, code(&err)),
                    (403, "forbidden"),
                    "{method} {template} as a viewer"
                );
                let doc = format!("{} {}", operation["summary"], operation["description"]);
                if doc.contains("Admins only") {
                    let (status, err) = call(
                        &app,
                        method.clone(),
                        &path("alpha"),
                        Some(&app.alpha_editor.token),
                        body.clone(),
                    )
                    .await;
                    assert_eq!(
                        (status, code(&err)),
                        (403, "forbidden"),
                        "{method} {template} as an editor"
                    );
                    admin_only.push(format!(
                        "{method} {}",
                        template.trim_start_matches("/api/v1/projects/{project}")
                    ));
                }
            } else {
                let (status, _) = call(
                    &app,
                    method.clone(),
                    &path("alpha"),
                    Some(&app.alpha_viewer.token),
                    None,
                )
                .await;
                assert_eq!(status, 200, "{method} {template} as a viewer");
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 7,
        "only {checked} routes in the OpenAPI document"
    );
    // Gateways and messaging settings are for admins; their documentation says so.
    for route in [
        "POST /gateways",
        "PATCH /gateways/{id}",
        "DELETE /gateways/{id}",
        "PUT /settings/messaging",
    ] {
        assert!(
            admin_only.iter().any(|r| r == route),
            "{route} is not documented as admins only: {admin_only:?}"
        );
    }
    // None of that changed the gateway, the message or the opt-out list.
    let (status, got) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/gateways/{gateway_id}")),
        admin,
        None,
    )
    .await;
    assert_eq!((status, got["name"].as_str()), (200, Some("Log")));
    let (_, got) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/opt-outs"),
        admin,
        None,
    )
    .await;
    assert_eq!(got["opt_outs"].as_array().map(Vec::len), Some(1), "{got}");
    let (_, got) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/broadcasts/{broadcast_id}")),
        admin,
        None,
    )
    .await;
    assert_eq!(got["status"], "scheduled", "{got}");
    let (_, got) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/broadcasts"),
        admin,
        None,
    )
    .await;
    assert_eq!(got["broadcasts"].as_array().map(Vec::len), Some(1), "{got}");
    // The case is untouched by all of that.
    let (status, got) = call(
        &app,
        Method::GET,
        &app.api("alpha", &format!("/cases/{case_id}")),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(
        (status, got["name"].as_str(), got["deleted"].as_bool()),
        (200, Some("Aber"), Some(false))
    );
}

casecast_testkit::on_both_engines!(revoked_tokens_stop_working);

async fn revoked_tokens_stop_working(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let url = app.api("alpha", "/cases");
    assert_eq!(
        call(&app, Method::GET, &url, Some(&app.alpha_editor.token), None)
            .await
            .0,
        200
    );
    let tokens = app.db.list_tokens(app.alpha.id).await.unwrap();
    for t in tokens
        .iter()
        .filter(|t| t.user_email == app.alpha_editor.email)
    {
        app.db.revoke_token(app.alpha.id, t.id).await.unwrap();
    }
    assert_eq!(
        call(&app, Method::GET, &url, Some(&app.alpha_editor.token), None)
            .await
            .0,
        401
    );
    // Another project's token id cannot be revoked through this project.
    let beta_tokens = app.db.list_tokens(app.beta.id).await.unwrap();
    assert!(app
        .db
        .revoke_token(app.alpha.id, beta_tokens[0].id)
        .await
        .is_err());
    assert_eq!(
        call(
            &app,
            Method::GET,
            &app.api("beta", "/cases"),
            Some(&app.beta_admin.token),
            None
        )
        .await
        .0,
        200
    );
}

casecast_testkit::on_both_engines!(service_endpoints_answer);

async fn service_endpoints_answer(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    call(
        &app,
        Method::GET,
        &app.api("alpha", "/cases"),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("casecast_http_requests_total{"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="/api/v1/projects/{project}/cases""#),
        "{metrics}"
    );
    assert!(
        metrics.contains("casecast_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("casecast_db_pool_connections"),
        "{metrics}"
    );
    let docs = app.http.get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("swagger"));
    let (status, body) = call(
        &app,
        Method::GET,
        &app.url("/api/v1/nothing-here"),
        None,
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
}

casecast_testkit::on_both_engines!(nul_characters_in_urls_are_refused);

/// PostgreSQL cannot compare text holding NUL: such URLs are refused before any query.
async fn nul_characters_in_urls_are_refused(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let token = Some(app.alpha_admin.token.as_str());
    for path in ["/cases/%00", "/cases?q=%00", "/cases?external_id=a%00b"] {
        let (status, body) = call(&app, Method::GET, &app.api("alpha", path), token, None).await;
        assert_eq!((status, code(&body)), (422, "invalid"), "{path}: {body}");
    }
    let page = app.http.get(app.url("/a/%00/cases")).send().await.unwrap();
    assert_eq!(page.status(), 400);
    let (status, _) = call(&app, Method::GET, &app.api("alpha", "/cases"), token, None).await;
    assert_eq!(status, 200, "the server still answers");
}
