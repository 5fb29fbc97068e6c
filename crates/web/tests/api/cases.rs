//! `/cases`: creating, reading, listing, changing, closing and deleting, and bad input.

use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::json;

use crate::{call, code};

casecast_testkit::on_both_engines!(
    case_lifecycle,
    case_list_pages_and_filters,
    bad_case_input_is_422,
    oversized_body_is_413,
    cases_of_another_project_are_404
);

async fn case_lifecycle(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let token = Some(app.alpha_editor.token.as_str());
    let body = json!({
        "name": "Aber Grace", "external_id": "GUL-0001", "phone_number": "0772 123456",
        "language_code": "ach", "properties": {"district": "Gulu", "visits": 3, "consented": true}
    });
    let (status, case) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/cases"),
        token,
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    assert_eq!(case["phone_number"], "+256772123456");
    assert_eq!(case["case_type"], "case");
    assert_eq!(
        case["properties"],
        json!({"district": "Gulu", "visits": "3", "consented": "true"})
    );
    assert!(case["created_at"].as_str().unwrap().ends_with('Z'));
    let id = case["case_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID");
    let url = app.api("alpha", &format!("/cases/{id}"));

    let (status, got) = call(&app, Method::GET, &url, token, None).await;
    assert_eq!((status, &got), (200, &case));

    let patch = json!({"name": "Aber G.", "owner_id": "cm-7", "external_id": null, "properties": {"district": "Kitgum", "visits": null}});
    let (status, changed) = call(&app, Method::PATCH, &url, token, Some(patch)).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "Aber G.");
    assert_eq!(changed["owner_id"], "cm-7");
    assert_eq!(changed["external_id"], serde_json::Value::Null);
    assert_eq!(
        changed["phone_number"], "+256772123456",
        "absent fields stay"
    );
    assert_eq!(
        changed["properties"],
        json!({"district": "Kitgum", "consented": "true"})
    );

    let (status, closed) = call(&app, Method::POST, &format!("{url}/close"), token, None).await;
    assert_eq!((status, closed["closed"].as_bool()), (200, Some(true)));

    let (status, _) = call(&app, Method::DELETE, &url, token, None).await;
    assert_eq!(status, 204);
    let (status, gone) = call(&app, Method::GET, &url, token, None).await;
    assert_eq!((status, gone["deleted"].as_bool()), (200, Some(true)));
    let (_, list) = call(&app, Method::GET, &app.api("alpha", "/cases"), token, None).await;
    assert_eq!(
        list["cases"].as_array().unwrap().len(),
        0,
        "deleted cases are not listed"
    );
    let (status, _) = call(&app, Method::DELETE, &url, token, None).await;
    assert_eq!(status, 404, "deleting twice");

    let (status, dup) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/cases"),
        token,
        Some(json!({"name": "X", "case_id": "p-1"})),
    )
    .await;
    assert_eq!(status, 201, "{dup}");
    let (status, dup) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/cases"),
        token,
        Some(json!({"name": "Y", "case_id": "p-1"})),
    )
    .await;
    assert_eq!((status, code(&dup)), (409, "case_id_taken"));
}

async fn case_list_pages_and_filters(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let token = Some(app.alpha_admin.token.as_str());
    for i in 0..12 {
        let body = json!({"name": format!("Person {i:02}"), "external_id": format!("E-{i}"), "phone_number": format!("+25677200{i:04}")});
        assert_eq!(
            call(
                &app,
                Method::POST,
                &app.api("alpha", "/cases"),
                token,
                Some(body)
            )
            .await
            .0,
            201
        );
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = call(
            &app,
            Method::GET,
            &app.api("alpha", &format!("/cases?limit=5&cursor={cursor}")),
            token,
            None,
        )
        .await;
        assert_eq!(status, 200);
        for c in page["cases"].as_array().unwrap() {
            seen.push(c["name"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let expected: Vec<String> = (0..12).map(|i| format!("Person {i:02}")).collect();
    assert_eq!(seen, expected, "every case once, in order");

    let (_, by_ext) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/cases?external_id=E-3"),
        token,
        None,
    )
    .await;
    assert_eq!(by_ext["cases"][0]["name"], "Person 03");
    assert_eq!(by_ext["cases"].as_array().unwrap().len(), 1);
    let (_, by_phone) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/cases?phone_number=0772%20000%20004"),
        token,
        None,
    )
    .await;
    assert_eq!(by_phone["cases"][0]["name"], "Person 04", "{by_phone}");
    let (_, by_q) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/cases?q=son%2011"),
        token,
        None,
    )
    .await;
    assert_eq!(by_q["cases"][0]["name"], "Person 11");
    let (_, by_national) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/cases?q=0772%20000%20005"),
        token,
        None,
    )
    .await;
    assert_eq!(
        by_national["cases"][0]["name"], "Person 05",
        "a national number takes the project's country"
    );
    let (_, by_prefix) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/cases?q=E-1"),
        token,
        None,
    )
    .await;
    let names: Vec<&str> = by_prefix["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Person 01", "Person 10", "Person 11"],
        "the start of an external ID"
    );
    let (_, by_q) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/cases?q=100%25"),
        token,
        None,
    )
    .await;
    assert_eq!(
        by_q["cases"].as_array().unwrap().len(),
        0,
        "LIKE wildcards are escaped"
    );

    for bad in [
        "limit=0",
        "limit=501",
        "limit=abc",
        "cursor=xyz",
        "phone_number=%2B256abc",
    ] {
        let (status, body) = call(
            &app,
            Method::GET,
            &app.api("alpha", &format!("/cases?{bad}")),
            token,
            None,
        )
        .await;
        assert_eq!((status, code(&body)), (422, "invalid"), "{bad}: {body}");
    }
}

async fn bad_case_input_is_422(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let token = Some(app.alpha_admin.token.as_str());
    let url = app.api("alpha", "/cases");
    let cases = [
        (json!({"name": "A", "colour": "red"}), "colour"),
        (json!({"name": 5}), "name"),
        (
            json!({"name": "A", "phone_number": "+256abc"}),
            "phone_number",
        ),
        (json!({"name": "A", "phone_number": "12"}), "phone_number"),
        (
            json!({"name": "A", "phone_number": "+999123456789"}),
            "phone_number",
        ),
        (json!({"name": "   "}), "name"),
        (
            json!({"name": "A", "language_code": "english"}),
            "language_code",
        ),
        (json!({"name": "A", "case_id": "has space"}), "case_id"),
        (
            json!({"name": "A", "properties": {"bad key": "x"}}),
            "properties.bad key",
        ),
        (
            json!({"name": "A", "properties": {"k": [1, 2]}}),
            "properties.k",
        ),
        (json!({"external_id": "X"}), "name"),
    ];
    for (body, field) in cases {
        let (status, err) = call(&app, Method::POST, &url, token, Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{body}: '{message}' should name {field}"
        );
    }
    let resp = app
        .http
        .post(&url)
        .bearer_auth(&app.alpha_admin.token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let err: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(code(&err), "invalid_json");
    let resp = app
        .http
        .post(&url)
        .bearer_auth(&app.alpha_admin.token)
        .body("name=A")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let (_, list) = call(&app, Method::GET, &url, token, None).await;
    assert_eq!(
        list["cases"].as_array().unwrap().len(),
        0,
        "nothing was created"
    );
}

async fn oversized_body_is_413(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let huge = json!({"name": "A", "properties": {"notes": "x".repeat(3 * 1024 * 1024)}});
    let (status, err) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/cases"),
        Some(&app.alpha_admin.token),
        Some(huge),
    )
    .await;
    assert_eq!((status, code(&err)), (413, "too_large"));
}

async fn cases_of_another_project_are_404(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (_, case) = call(
        &app,
        Method::POST,
        &app.api("beta", "/cases"),
        Some(&app.beta_admin.token),
        Some(json!({"name": "Beta person", "external_id": "B-1"})),
    )
    .await;
    let id = case["case_id"].as_str().unwrap();
    let token = Some(app.alpha_admin.token.as_str());
    let url = app.api("alpha", &format!("/cases/{id}"));
    assert_eq!(call(&app, Method::GET, &url, token, None).await.0, 404);
    assert_eq!(
        call(
            &app,
            Method::PATCH,
            &url,
            token,
            Some(json!({"name": "stolen"}))
        )
        .await
        .0,
        404
    );
    assert_eq!(call(&app, Method::DELETE, &url, token, None).await.0, 404);
    let (_, list) = call(
        &app,
        Method::GET,
        &app.api("alpha", "/cases?external_id=B-1"),
        token,
        None,
    )
    .await;
    assert_eq!(list["cases"].as_array().unwrap().len(), 0);
    let (_, still) = call(
        &app,
        Method::GET,
        &app.api("beta", &format!("/cases/{id}")),
        Some(&app.beta_admin.token),
        None,
    )
    .await;
    assert_eq!(
        (still["name"].as_str(), still["deleted"].as_bool()),
        (Some("Beta person"), Some(false))
    );
}
