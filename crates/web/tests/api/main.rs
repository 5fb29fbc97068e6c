//! API and page tests against a real server on port 0, on SQLite and PostgreSQL.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

mod access;
mod accounts;
mod broadcasts;
mod case_export;
mod case_groups;
mod case_import;
mod case_import_pages;
mod cases;
mod forms;
mod gateway_addresses;
mod gateways;
mod group_pages;
mod health;
mod hooks;
mod keywords;
mod limits;
mod message_pages;
mod messages;
mod messaging_settings;
mod metrics;
mod openapi;
mod opt_outs;
mod pages;
mod people_pages;
mod reminder_pages;
mod reminders;
mod smart_groups;
mod survey_results;
mod surveys;
mod upload_bad_input;
mod uploads;

use casecast_testkit::TestApp;
use serde_json::Value;

/// Sends a JSON request with a token; returns status and parsed body (Null when empty).
pub async fn call(
    app: &TestApp,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The error code of an API error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}
