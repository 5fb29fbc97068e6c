//! Gateways may not be pointed at the server's own or its network's services: loopback,
//! link-local and private addresses are refused when settings are saved (API and form) unless
//! the operator allows them, and a failed message shows non-admins the category of the failure,
//! never the gateway's answer.

use std::time::Duration;

use casecast_gateways::outbound::AllowEntry;
use casecast_gateways::AddressPolicy;
use casecast_testkit::{eventually, serve_state, Dialect, TestApp};
use casecast_web::{AppState, WebConfig};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::call;
use crate::message_pages::{csrf_of, page, post};
use crate::pages::login;

casecast_testkit::on_both_engines!(
    private_gateway_addresses_are_refused_unless_allowed,
    the_gateway_form_names_the_refused_address,
    non_admins_read_the_category_not_the_gateways_answer,
);

/// Points `app` at a server of its own database whose gateways may reach `allowed` only.
async fn serve_with(app: &mut TestApp, allowed: &[&str]) {
    let entries: Vec<AllowEntry> = allowed.iter().map(|a| a.parse().unwrap()).collect();
    let state = AppState::new(
        app.db.clone(),
        WebConfig {
            public_url: Some("http://casecast.example".into()),
            gateway_addresses: AddressPolicy::allowing(entries),
            ..WebConfig::default()
        },
    );
    app.base = serve_state(state).await;
}

fn http_gateway(name: &str, url: &str) -> Value {
    json!({"name": name, "kind": "http", "config": {"url": url, "method": "GET", "params": [["to", "{to}"]]}})
}

async fn create(app: &TestApp, body: Value) -> (u16, Value) {
    call(
        app,
        Method::POST,
        &app.api("alpha", "/gateways"),
        Some(&app.alpha_admin.token),
        Some(body),
    )
    .await
}

async fn private_gateway_addresses_are_refused_unless_allowed(engine: Dialect) {
    let mut app = TestApp::spawn(engine).await;
    serve_with(&mut app, &[]).await;
    for (url, address, kind) in [
        ("http://127.0.0.1:8080/metrics", "127.0.0.1", "loopback"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
            "link-local",
        ),
        ("http://[::1]:9/send", "[::1]", "loopback"),
        (
            "http://[::ffff:127.0.0.1]/send",
            "[::ffff:7f00:1]",
            "loopback",
        ),
        ("http://0.0.0.0:8080/", "0.0.0.0", "unspecified"),
        ("http://10.0.0.5/send", "10.0.0.5", "private"),
        ("http://100.64.0.1/send", "100.64.0.1", "shared"),
        ("http://[fd00::1]/send", "[fd00::1]", "unique-local"),
        (
            "http://localhost:8080/metrics",
            "localhost resolves to",
            "loopback",
        ),
    ] {
        let (status, got) = create(&app, http_gateway("Internal", url)).await;
        assert_eq!(status, 422, "{url}: {got}");
        let message = got["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("config.url: {address}")),
            "{url}: {message}"
        );
        assert!(message.contains(kind), "{url}: {message}");
        assert!(message.contains("--allow-gateway-host"), "{url}: {message}");
    }
    // Every kind that makes requests, on the field holding its address.
    let kannel = json!({"name": "K", "kind": "kannel", "config": {
        "sendsms_url": "http://127.0.0.1:13013/cgi-bin/sendsms", "username": "u", "password": "p"}});
    let (status, got) = create(&app, kannel).await;
    assert_eq!(status, 422, "{got}");
    assert!(
        got["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("config.sendsms_url: 127.0.0.1 is a loopback address"),
        "{got}"
    );
    let twilio = json!({"name": "T", "kind": "twilio", "config": {
        "account_sid": "AC1", "auth_token": "t", "from": "+15005550006",
        "api_base": "http://192.168.1.1"}});
    let (status, got) = create(&app, twilio).await;
    assert_eq!(status, 422, "{got}");
    assert!(
        got["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("config.api_base: 192.168.1.1 is a private address"),
        "{got}"
    );
    assert!(app.db.list_gateways(app.alpha.id).await.unwrap().is_empty());

    // An edit cannot move a gateway there either.
    let (status, got) = create(&app, http_gateway("Public", "http://8.8.8.8/send")).await;
    assert_eq!(status, 201, "{got}");
    let id = got["id"].as_i64().unwrap();
    let (status, got) = call(
        &app,
        Method::PATCH,
        &app.api("alpha", &format!("/gateways/{id}")),
        Some(&app.alpha_admin.token),
        Some(json!({"config": {"url": "http://169.254.169.254/", "method": "GET"}})),
    )
    .await;
    assert_eq!(status, 422, "{got}");
    assert!(
        got["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("config.url: 169.254.169.254 is a link-local address"),
        "{got}"
    );

    // Allowed by address, by network and by name.
    serve_with(&mut app, &["127.0.0.1", "10.0.0.0/8", "localhost"]).await;
    for (name, url) in [
        ("Local", "http://127.0.0.1:13013/cgi-bin/sendsms"),
        ("Network", "http://10.20.30.40/send"),
        ("Named", "http://localhost:8080/send"),
    ] {
        let (status, got) = create(&app, http_gateway(name, url)).await;
        assert_eq!(status, 201, "{url}: {got}");
    }
    let (status, got) = create(&app, http_gateway("Other", "http://192.168.0.1/")).await;
    assert_eq!(status, 422, "{got}");
    assert!(
        got["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-gateway-host 192.168.0.1"),
        "{got}"
    );
}

async fn the_gateway_form_names_the_refused_address(engine: Dialect) {
    let mut app = TestApp::spawn(engine).await;
    serve_with(&mut app, &[]).await;
    let session = login(&app, &app.alpha_admin).await;
    let csrf = csrf_of(&app, &session).await;
    let (status, _, html) = post(
        &app,
        &session,
        "/a/alpha/messaging/gateways",
        &[
            ("csrf", csrf.as_str()),
            ("name", "Metadata"),
            ("kind", "http"),
            ("http_url", "http://169.254.169.254/latest/meta-data/"),
            ("http_method", "GET"),
            ("http_params", "to={to}"),
            ("callback_base_url", "http://casecast.example"),
        ],
    )
    .await;
    assert_eq!(status, 422, "{html}");
    assert!(
        html.contains("URL: 169.254.169.254 is a link-local address"),
        "{html}"
    );
    assert!(
        html.contains("--allow-gateway-host 169.254.169.254"),
        "{html}"
    );
    assert!(app.db.list_gateways(app.alpha.id).await.unwrap().is_empty());
}

/// A gateway on loopback that refuses every message with 400 and an answer no viewer should
/// read (an internal service would answer with its own data).
async fn refusing_gateway() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let body = "internal-answer: token=abc123";
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}/send")
}

async fn non_admins_read_the_category_not_the_gateways_answer(engine: Dialect) {
    // The test server allows loopback, where the refusing gateway listens.
    let app = TestApp::spawn(engine).await;
    let url = refusing_gateway().await;
    let (status, got) = create(&app, http_gateway("Refusing", &url)).await;
    assert_eq!(status, 201, "{got}");
    let (status, case) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/cases"),
        Some(&app.alpha_admin.token),
        Some(json!({"name": "Amina", "phone_number": "+256772000001"})),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    let case_id = case["case_id"].as_str().unwrap();
    let (status, sent) = call(
        &app,
        Method::POST,
        &app.api("alpha", &format!("/cases/{case_id}/messages")),
        Some(&app.alpha_editor.token),
        Some(json!({"text": "Hello"})),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    let id = sent["id"].as_i64().unwrap();
    let message_url = app.api("alpha", &format!("/messages/{id}"));
    let as_admin = eventually("the message failed", Duration::from_secs(30), || async {
        let (_, m) = call(
            &app,
            Method::GET,
            &message_url,
            Some(&app.alpha_admin.token),
            None,
        )
        .await;
        (m["status"] == "failed").then_some(m)
    })
    .await;
    const CATEGORY: &str = "the gateway refused the message (HTTP 400)";
    assert_eq!(
        as_admin["error"],
        format!("{CATEGORY} [detail: internal-answer: token=abc123]")
    );
    for token in [&app.alpha_viewer.token, &app.alpha_editor.token] {
        let (status, m) = call(&app, Method::GET, &message_url, Some(token), None).await;
        assert_eq!(status, 200, "{m}");
        assert_eq!(m["error"], CATEGORY);
        let (_, list) = call(
            &app,
            Method::GET,
            &app.api("alpha", "/messages?status=failed"),
            Some(token),
            None,
        )
        .await;
        assert_eq!(list["messages"][0]["error"], CATEGORY, "{list}");
    }
    let session = login(&app, &app.alpha_viewer).await;
    for path in [
        format!("/a/alpha/messaging/messages/{id}"),
        "/a/alpha/messaging/messages".to_string(),
        format!("/a/alpha/cases/{case_id}"),
    ] {
        let html = page(&app, &session, &path).await;
        assert!(html.contains(CATEGORY), "{path}: {html}");
        assert!(!html.contains("abc123"), "{path}: {html}");
    }
    let admin = login(&app, &app.alpha_admin).await;
    let html = page(&app, &admin, &format!("/a/alpha/messaging/messages/{id}")).await;
    assert!(html.contains("token=abc123"), "{html}");
}
