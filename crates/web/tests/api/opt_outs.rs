//! `/opt-outs`: editors add and remove numbers in any common form; the list pages by number.

use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::gateways::{add_case, add_gateway, hold_messages, send};
use crate::{call, code};

casecast_testkit::on_both_engines!(
    numbers_are_added_listed_and_removed,
    opting_out_cancels_what_is_queued,
    opt_outs_of_another_project_are_not_found,
);

async fn add(app: &TestApp, project: &str, token: &str, phone: &str) -> (u16, Value) {
    call(
        app,
        Method::POST,
        &app.api(project, "/opt-outs"),
        Some(token),
        Some(json!({"phone_number": phone})),
    )
    .await
}

async fn list(app: &TestApp, project: &str, token: &str, query: &str) -> (u16, Value) {
    call(
        app,
        Method::GET,
        &app.api(project, &format!("/opt-outs{query}")),
        Some(token),
        None,
    )
    .await
}

async fn numbers_are_added_listed_and_removed(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let editor = app.alpha_editor.token.as_str();
    let (status, first) = add(&app, "alpha", editor, "0772 123456").await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["phone_number"], "+256772123456");
    assert_eq!(first["source"], "api");
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'));
    // The same number written another way: already there.
    let (status, again) = add(&app, "alpha", editor, "+256 (772) 123-456").await;
    assert_eq!((status, &again), (200, &first));
    for (body, expected) in [
        (json!({"phone_number": "abc"}), "phone_number:"),
        (json!({"phone_number": "0772"}), "phone_number:"),
        (json!({"phone_number": ""}), "phone_number:"),
        (json!({}), "missing field `phone_number`"),
        (
            json!({"phone_number": "0772 123457", "why": "x"}),
            "unknown field `why`",
        ),
    ] {
        let (status, got) = call(
            &app,
            Method::POST,
            &app.api("alpha", "/opt-outs"),
            Some(editor),
            Some(body.clone()),
        )
        .await;
        assert_eq!((status, code(&got)), (422, "invalid"), "{body}: {got}");
        let message = got["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    let (status, got) = add(&app, "alpha", &app.alpha_viewer.token, "0772 000999").await;
    assert_eq!((status, code(&got)), (403, "forbidden"));

    for phone in ["+254712345678", "0772 000111", "0700 000222"] {
        assert_eq!(add(&app, "alpha", editor, phone).await.0, 201);
    }
    // Viewers read the list; pages follow the number order, each number once.
    let (status, whole) = list(&app, "alpha", &app.alpha_viewer.token, "").await;
    assert_eq!(status, 200);
    assert_eq!(whole["next_cursor"], Value::Null);
    let expected = [
        "+254712345678",
        "+256700000222",
        "+256772000111",
        "+256772123456",
    ];
    let numbers = |page: &Value| -> Vec<String> {
        page["opt_outs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["phone_number"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(numbers(&whole), expected);
    let mut paged = Vec::new();
    let mut query = "?limit=3".to_string();
    loop {
        let (status, page) = list(&app, "alpha", &app.alpha_viewer.token, &query).await;
        assert_eq!(status, 200, "{page}");
        paged.extend(numbers(&page));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, expected);
    for query in ["?limit=0", "?cursor=abc"] {
        let (status, got) = list(&app, "alpha", editor, query).await;
        assert_eq!((status, code(&got)), (422, "invalid"), "{query}: {got}");
    }

    // Removing: `+` as %2B, or the national number; 404 once it is gone.
    let remove = |path: &str| {
        let url = app.api("alpha", &format!("/opt-outs/{path}"));
        let app = &app;
        async move { call(app, Method::DELETE, &url, Some(editor), None).await }
    };
    assert_eq!(remove("%2B256772123456").await.0, 204);
    let (status, got) = remove("%2B256772123456").await;
    assert_eq!((status, code(&got)), (404, "not_found"));
    assert_eq!(remove("0772000111").await.0, 204);
    assert_eq!(remove("0700%20000%20222").await.0, 204);
    let (status, got) = remove("not-a-number").await;
    assert_eq!((status, code(&got)), (422, "invalid"), "{got}");
    let (status, got) = call(
        &app,
        Method::DELETE,
        &app.api("alpha", "/opt-outs/%2B254712345678"),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!((status, code(&got)), (403, "forbidden"));
    let (_, whole) = list(&app, "alpha", editor, "").await;
    assert_eq!(numbers(&whole), ["+254712345678"]);
}

async fn opting_out_cancels_what_is_queued(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    hold_messages(&app).await;
    add_gateway(&app, json!({"name": "Log", "kind": "log"})).await;
    let apio = add_case(&app, json!({"name": "Apio", "phone_number": "0772 123456"})).await;
    let okello = add_case(
        &app,
        json!({"name": "Okello", "phone_number": "0772 654321"}),
    )
    .await;
    let (_, to_apio) = send(&app, &apio, json!({"text": "Hello"})).await;
    let (_, to_okello) = send(&app, &okello, json!({"text": "Hello"})).await;
    assert_eq!(
        add(&app, "alpha", &app.alpha_editor.token, "0772123456")
            .await
            .0,
        201
    );
    let status_of = |m: &Value| {
        let url = app.api("alpha", &format!("/messages/{}", m["id"]));
        let app = &app;
        async move {
            let (_, got) = call(app, Method::GET, &url, Some(&app.alpha_viewer.token), None).await;
            got["status"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(status_of(&to_apio).await, "cancelled");
    assert_eq!(status_of(&to_okello).await, "queued");
    let (status, got) = send(&app, &apio, json!({"text": "Hello again"})).await;
    assert_eq!((status, code(&got)), (409, "opted_out"));
    // Taken off the list, the number can be sent to again.
    let (status, _) = call(
        &app,
        Method::DELETE,
        &app.api("alpha", "/opt-outs/0772123456"),
        Some(&app.alpha_editor.token),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, got) = send(&app, &apio, json!({"text": "Hello again"})).await;
    assert_eq!(status, 201, "{got}");
}

async fn opt_outs_of_another_project_are_not_found(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    assert_eq!(
        add(&app, "alpha", &app.alpha_admin.token, "+256772123456")
            .await
            .0,
        201
    );
    let beta = app.beta_admin.token.as_str();
    let (status, got) = list(&app, "beta", beta, "").await;
    assert_eq!((status, got["opt_outs"].clone()), (200, json!([])));
    let (status, got) = call(
        &app,
        Method::DELETE,
        &app.api("beta", "/opt-outs/%2B256772123456"),
        Some(beta),
        None,
    )
    .await;
    assert_eq!((status, code(&got)), (404, "not_found"));
    // Beta's country is Kenya: its national numbers are Kenyan.
    let (status, got) = add(&app, "beta", beta, "0712 345678").await;
    assert_eq!(
        (status, got["phone_number"].as_str()),
        (201, Some("+254712345678"))
    );
    let (_, got) = list(&app, "alpha", &app.alpha_admin.token, "").await;
    assert_eq!(got["opt_outs"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got["opt_outs"][0]["phone_number"], "+256772123456");
}
