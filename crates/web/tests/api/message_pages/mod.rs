//! Messaging pages over HTTP (gateways, message log, opt-outs, settings, the case page's SMS
//! form): every change needs the session's CSRF token and the right role, credentials never
//! reach a page, user text is escaped, another project's objects do not exist, and a message
//! sent from the case page goes out through a log gateway.

mod access;
mod gateways;
mod lists;
mod log;
mod sending;

use casecast_core::gateway::config::GatewayKind;
use casecast_store::gateways::NewGateway;
use casecast_testkit::TestApp;
use reqwest::Method;
use serde_json::json;

use crate::call;

pub(super) const SCRIPT: &str = "<script>alert(1)</script>";
pub(super) const PASSWORD: &str = "kannel-Pa55word";
pub(super) const TOKEN: &str = "twilio-auth-T0ken";

/// The value of `name="{field}" value="…"` in a page.
pub(super) fn hidden(html: &str, field: &str) -> String {
    let marker = format!("name=\"{field}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {field} in page"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// GET with a session; returns status and body.
pub(super) async fn get(app: &TestApp, session: &str, path: &str) -> (u16, String) {
    let resp = app
        .http
        .get(app.url(path))
        .header("cookie", format!("casecast_session={session}"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// A page's HTML; asserts 200.
pub(super) async fn page(app: &TestApp, session: &str, path: &str) -> String {
    let (status, html) = get(app, session, path).await;
    assert_eq!(status, 200, "{path}: {html}");
    html
}

/// POSTs a form with a session; returns status, `Location` and body.
pub(super) async fn post(
    app: &TestApp,
    session: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, String, String) {
    let resp = app
        .http
        .post(app.url(path))
        .header("cookie", format!("casecast_session={session}"))
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, resp.text().await.unwrap())
}

/// The session's CSRF token.
pub(super) async fn csrf_of(app: &TestApp, session: &str) -> String {
    hidden(
        &page(app, session, "/a/alpha/messaging/messages").await,
        "csrf",
    )
}

/// `raw` appears only escaped, and at least once.
#[track_caller]
pub(super) fn assert_escaped(html: &str, raw: &str, what: &str) {
    assert!(!html.contains(raw), "{what}: '{raw}' appears unescaped");
    let named = raw
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;");
    let numeric = raw
        .replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;");
    assert!(
        html.contains(&named) || html.contains(&numeric),
        "{what}: '{raw}' is not shown (escaped)"
    );
}

/// A log gateway in `project_id`.
pub(super) async fn log_gateway(app: &TestApp, project_id: i64, name: &str) -> i64 {
    app.db
        .create_gateway(
            project_id,
            &NewGateway {
                name: name.into(),
                kind: GatewayKind::Log,
                config: json!({}),
                callback_base_url: app.base.clone(),
                max_segments_per_second: None,
                max_attempts: None,
                prefixes: Vec::new(),
                is_default: true,
            },
        )
        .await
        .unwrap()
        .id
}

/// A case of alpha through the API; returns its case ID.
pub(super) async fn new_case(app: &TestApp, body: serde_json::Value) -> String {
    let (status, case) = call(
        app,
        Method::POST,
        &app.api("alpha", "/cases"),
        Some(&app.alpha_admin.token),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{case}");
    case["case_id"].as_str().unwrap().to_string()
}

/// The Kannel create form with `name` and a valid configuration.
pub(super) fn kannel_form<'a>(
    csrf: &'a str,
    name: &'a str,
    url: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("name", name),
        ("kind", "kannel"),
        ("kannel_sendsms_url", url),
        ("kannel_username", "casecast"),
        ("kannel_password", PASSWORD),
        ("kannel_from", "CASECAST"),
        ("max_segments_per_second", "25"),
        ("max_attempts", "3"),
        ("prefixes", "+256, +25477"),
        ("callback_base_url", "http://casecast.example:8080"),
    ]
}

/// The session's CSRF token, read from a page of `project`.
pub(super) async fn csrf_of_project(app: &TestApp, session: &str, project: &str) -> String {
    hidden(
        &page(app, session, &format!("/a/{project}/messaging/messages")).await,
        "csrf",
    )
}
