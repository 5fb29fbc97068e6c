//! Gateway webhooks at the HTTP level: Twilio status callbacks and inbound messages signed as
//! Twilio signs them (against a local fake of Twilio's Messages API), Kannel and generic HTTP
//! hooks, and every refusal (wrong secret, wrong or missing signature: 403 and nothing
//! recorded; a webhook the gateway kind does not have: 404; bad parameters: 400).

use casecast_testkit::Workflows;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Form, Json};
use casecast_core::case::CaseChanges;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::PhoneNumber;
use casecast_gateways::twilio::signature;
use casecast_store::gateways::{Gateway, NewGateway};
use casecast_store::messages::{Message, MessageFilter};
use casecast_testkit::{on_both_engines, Dialect, TestApp};
use serde_json::{json, Value};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "hooks-test-token";
const PHONE: &str = "+256772100200";

/// A fake of Twilio's Messages resource: answers 201 with a new `SM…` sid and keeps the form
/// fields of every request (the StatusCallback among them).
#[derive(Clone, Default)]
struct FakeTwilio {
    created: Arc<Mutex<Vec<Fields>>>,
}

/// The form fields of one request.
type Fields = Vec<(String, String)>;

async fn create_message(
    State(fake): State<FakeTwilio>,
    Path(account): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> (StatusCode, Json<Value>) {
    if account != SID {
        return (StatusCode::NOT_FOUND, Json(json!({"code": 20404})));
    }
    let mut created = fake.created.lock().unwrap();
    created.push(fields);
    let sid = format!("SM{:032}", created.len());
    (
        StatusCode::CREATED,
        Json(json!({"sid": sid, "status": "queued"})),
    )
}

impl FakeTwilio {
    async fn start() -> (FakeTwilio, String) {
        let fake = FakeTwilio::default();
        let app = axum::Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(create_message),
            )
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (fake, base)
    }

    fn field(&self, request: usize, name: &str) -> String {
        let created = self.created.lock().unwrap();
        created[request]
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {:?}", created[request]))
    }
}

async fn gateway(app: &TestApp, name: &str, kind: GatewayKind, config: Value) -> Gateway {
    app.db
        .create_gateway(
            app.alpha.id,
            &NewGateway {
                name: name.into(),
                kind,
                config,
                callback_base_url: app.base.clone(),
                max_segments_per_second: None,
                max_attempts: None,
                prefixes: vec![],
                is_default: false,
            },
        )
        .await
        .unwrap()
}

async fn twilio_gateway(app: &TestApp, api_base: &str) -> Gateway {
    let config = json!({"account_sid": SID, "auth_token": TOKEN, "from": "+15005550006", "api_base": api_base});
    gateway(app, "Twilio", GatewayKind::Twilio, config).await
}

/// A case with [`PHONE`]; returns its id.
async fn case(app: &TestApp) -> String {
    let changes = CaseChanges {
        name: Some("Nakato".into()),
        phone_number: Some(Some(PhoneNumber::parse(PHONE, None).unwrap())),
        ..Default::default()
    };
    let case = app.db.create_case(app.alpha.id, None, &changes).await;
    case.unwrap().case_id.as_str().to_string()
}

/// Every message of project alpha.
async fn messages(app: &TestApp) -> Vec<Message> {
    let filter = MessageFilter::default();
    app.db
        .list_messages(app.alpha.id, &filter, 500, None)
        .await
        .unwrap()
        .0
}

async fn message(app: &TestApp, id: i64) -> Message {
    app.db.message(app.alpha.id, id).await.unwrap()
}

async fn wait_status(app: &TestApp, id: i64, status: &str) -> Message {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = message(app, id).await;
        if m.status == status {
            return m;
        }
        assert!(Instant::now() < deadline, "message is not {status}: {m:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POSTs form fields with an optional `X-Twilio-Signature`; returns status, content type, body.
async fn post_form(
    app: &TestApp,
    url: &str,
    fields: &[(&str, &str)],
    signature: Option<&str>,
) -> (u16, String, String) {
    let mut request = app.http.post(url).form(fields);
    if let Some(s) = signature {
        request = request.header("X-Twilio-Signature", s);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

async fn get(app: &TestApp, url: &str) -> (u16, String) {
    let response = app.http.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn owned(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Signs as Twilio does: the full URL it was configured with, then the sorted form fields.
fn sign(url: &str, fields: &[(&str, &str)]) -> String {
    signature(TOKEN, url, &owned(fields))
}

async fn twilio_status_callbacks_update_messages(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (fake, api_base) = FakeTwilio::start().await;
    let g = twilio_gateway(&app, &api_base).await;
    let case_id = case(&app).await;
    let first = app.db.send_to_case(&app.alpha, &case_id, "One", None, None);
    let first = first.await.unwrap();
    wait_status(&app, first.id, "sent").await;
    let second = app.db.send_to_case(&app.alpha, &case_id, "Two", None, None);
    let second = second.await.unwrap();
    wait_status(&app, second.id, "sent").await;

    // The StatusCallback the dispatcher gave Twilio carries our id.
    let callback = fake.field(0, "StatusCallback");
    let expected = format!("{}?id={}", g.callbacks().url("status"), first.id);
    assert_eq!(callback, expected);
    let sid = format!("SM{:032}", 1);
    let delivered = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "delivered"),
        ("AccountSid", SID),
    ];

    // Refused: a signature of other fields, no signature, a wrong secret.
    let undelivered = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "undelivered"),
    ];
    let wrong = sign(&callback, &undelivered);
    let (status, _, _) = post_form(&app, &callback, &delivered, Some(&wrong)).await;
    assert_eq!(status, 403);
    let (status, _, _) = post_form(&app, &callback, &delivered, None).await;
    assert_eq!(status, 403);
    let bad_secret = callback.replace(&g.webhook_secret, &"0".repeat(48));
    let signed_bad = sign(&bad_secret, &delivered);
    let (status, _, _) = post_form(&app, &bad_secret, &delivered, Some(&signed_bad)).await;
    assert_eq!(status, 403);
    assert_eq!(message(&app, first.id).await.status, "sent");

    let (status, _, body) = post_form(
        &app,
        &callback,
        &delivered,
        Some(&sign(&callback, &delivered)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let m = message(&app, first.id).await;
    assert_eq!(m.status, "delivered");
    assert!(m.sent_at.is_some() && m.delivered_at.is_some(), "{m:?}");

    // Without our id, the sid finds the message.
    let plain = g.callbacks().url("status");
    let sid2 = format!("SM{:032}", 2);
    let failed = [
        ("MessageSid", sid2.as_str()),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ];
    let (status, _, _) = post_form(&app, &plain, &failed, Some(&sign(&plain, &failed))).await;
    assert_eq!(status, 200);
    let m = message(&app, second.id).await;
    assert_eq!(m.status, "failed");
    assert!(m.error.as_deref().unwrap().contains("30003"), "{m:?}");

    // A signed callback without a MessageStatus is a bad request, naming what is missing.
    let partial = [("MessageSid", sid2.as_str())];
    let (status, _, body) = post_form(&app, &plain, &partial, Some(&sign(&plain, &partial))).await;
    assert_eq!(status, 400);
    assert!(body.contains("MessageStatus"), "{body}");
}

async fn twilio_inbound_is_recorded_only_when_signed(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let g = twilio_gateway(&app, "http://127.0.0.1:9").await;
    let case_id = case(&app).await;
    let url = g.callbacks().url("inbound");
    let fields = [
        ("MessageSid", "SM00000000000000000000000000000099"),
        ("From", PHONE),
        ("To", "+15005550006"),
        ("Body", "Habari, nitakuja 😀"),
    ];
    let good = sign(&url, &fields);
    let other_gateway = twilio_gateway_url_for_id(&url, g.id + 1);
    let refusals = [
        (url.clone(), None),
        (url.clone(), Some("not base64 at all".to_string())),
        (url.clone(), Some(sign(&url, &fields[..3]))),
        (
            url.replace(&g.webhook_secret, &"f".repeat(48)),
            Some(good.clone()),
        ),
        (other_gateway.clone(), Some(sign(&other_gateway, &fields))),
        // Signed for another URL (the same path with a query).
        (url.clone(), Some(sign(&format!("{url}?x=1"), &fields))),
    ];
    for (target, signature) in &refusals {
        let (status, _, body) = post_form(&app, target, &fields, signature.as_deref()).await;
        assert_eq!(status, 403, "{target} {signature:?}: {body}");
    }
    assert!(
        messages(&app).await.is_empty(),
        "a refused webhook recorded"
    );

    let (status, content_type, body) = post_form(&app, &url, &fields, Some(&good)).await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/xml"), "{content_type}");
    assert_eq!(body.trim(), "<Response></Response>");
    let got = messages(&app).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].direction.as_str(), got[0].status.as_str()),
        ("inbound", "received")
    );
    assert_eq!(got[0].text, "Habari, nitakuja 😀");
    assert_eq!(got[0].case_id.as_deref(), Some(case_id.as_str()));

    // Twilio retries a webhook it saw fail: the same MessageSid is recorded once.
    let (status, _, _) = post_form(&app, &url, &fields, Some(&good)).await;
    assert_eq!(status, 200);
    assert_eq!(messages(&app).await.len(), 1);
}

/// The inbound URL of a gateway id that does not exist, with the same secret.
fn twilio_gateway_url_for_id(url: &str, id: i64) -> String {
    let (base, rest) = url.split_once("/hooks/").unwrap();
    let (_, rest) = rest.split_once('/').unwrap();
    format!("{base}/hooks/{id}/{rest}")
}

async fn kannel_hooks_refuse_wrong_secrets_and_bad_input(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let config = json!({"sendsms_url": "http://127.0.0.1:9/cgi-bin/sendsms", "username": "u", "password": "p"});
    let g = gateway(&app, "Kannel", GatewayKind::Kannel, config).await;
    let case_id = case(&app).await;
    let mo = g.callbacks().url("mo");
    let dlr = g.callbacks().url("dlr");
    let query = format!(
        "?from=%2B256772100200&to=1234&text=Yes+I+will+come&id=k-{}",
        g.id
    );
    let wrong = |url: &str| url.replace(&g.webhook_secret, &"a".repeat(48));
    for url in [
        format!("{}{query}", wrong(&mo)),
        format!("{}?id=1&status=1", wrong(&dlr)),
        format!("{}{query}", twilio_gateway_url_for_id(&mo, 999_999)),
        format!(
            "{}{query}",
            mo.replace(&format!("/hooks/{}/", g.id), "/hooks/x/")
        ),
    ] {
        assert_eq!(get(&app, &url).await.0, 403, "{url}");
    }
    assert!(
        messages(&app).await.is_empty(),
        "a refused webhook recorded"
    );

    // Webhooks a Kannel gateway does not have, and words that are no webhook.
    for what in ["status", "inbound", "other"] {
        let url = g.callbacks().url(what);
        assert_eq!(get(&app, &format!("{url}{query}")).await.0, 404, "{what}");
    }
    // Bad parameters: 400 with the reason.
    let (status, body) = get(&app, &format!("{mo}?to=1234&text=hi")).await;
    assert_eq!(status, 400);
    assert!(body.contains("from"), "{body}");
    let (status, body) = get(&app, &format!("{dlr}?id=1&status=3")).await;
    assert_eq!(status, 400);
    assert!(body.contains("status 3"), "{body}");
    assert!(messages(&app).await.is_empty());

    // The real thing: 200 with an empty body (smsbox would text a body back to the phone).
    let (status, body) = get(&app, &format!("{mo}{query}")).await;
    assert_eq!((status, body.as_str()), (200, ""));
    // smsbox's post-url style: the same fields as a form.
    let fields = [("from", PHONE), ("to", "1234"), ("text", "Asante")];
    let (status, _, body) = post_form(&app, &mo, &fields, None).await;
    assert_eq!((status, body.as_str()), (200, ""));
    let got = messages(&app).await;
    let texts: Vec<&str> = got.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["Asante", "Yes I will come"]);
    assert!(got
        .iter()
        .all(|m| m.case_id.as_deref() == Some(case_id.as_str()) && m.status == "received"));
    // A report for no message of this gateway is answered 200 and changes nothing.
    let (status, _) = get(&app, &format!("{dlr}?id=123456&status=1")).await;
    assert_eq!(status, 200);
}

async fn http_inbound_keeps_the_secret_out_of_metrics(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let config = json!({"url": "http://127.0.0.1:9/send", "method": "POST"});
    let g = gateway(&app, "Aggregator", GatewayKind::Http, config).await;
    let inbound = g.callbacks().url("inbound");
    let fields = [
        ("from", PHONE),
        ("to", "6000"),
        ("text", "STOP"),
        ("id", "agg-1"),
    ];
    let (status, _, body) = post_form(&app, &inbound, &fields, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(app.db.is_opted_out(app.alpha.id, PHONE).await.unwrap());
    let (status, _, _) = post_form(&app, &inbound, &fields, None).await;
    assert_eq!(status, 200);
    let got = messages(&app).await;
    let inbound_count = got.iter().filter(|m| m.direction == "inbound").count();
    assert_eq!(
        inbound_count, 1,
        "the same id twice is one message: {got:?}"
    );
    for what in ["dlr", "mo", "status"] {
        let url = g.callbacks().url(what);
        assert_eq!(post_form(&app, &url, &fields, None).await.0, 404, "{what}");
    }
    let (status, _, body) = post_form(&app, &inbound, &fields[..2], None).await;
    assert_eq!(status, 400);
    assert!(body.contains("text"), "{body}");
    // A JSON body is not read as parameters.
    let response = app.http.post(&inbound).json(&json!({"from": PHONE})).send();
    assert_eq!(response.await.unwrap().status().as_u16(), 400);
    // Bodies are limited to 64 KB.
    let huge = "x".repeat(70 * 1024);
    let big = [("from", PHONE), ("to", "6000"), ("text", huge.as_str())];
    assert_eq!(post_form(&app, &inbound, &big, None).await.0, 413);

    let (_, metrics) = get(&app, &app.url("/metrics")).await;
    assert!(
        metrics.contains("/hooks/{gateway_id}/{secret}/{what}"),
        "{metrics}"
    );
    assert!(!metrics.contains(&g.webhook_secret), "{metrics}");
}

on_both_engines!(
    twilio_status_callbacks_update_messages,
    twilio_inbound_is_recorded_only_when_signed,
    kannel_hooks_refuse_wrong_secrets_and_bad_input,
    http_inbound_keeps_the_secret_out_of_metrics,
    log_gateways_take_inbound_messages_to_try_things,
);

/// A log gateway takes inbound messages in an HTTP gateway's form (so that keywords and
/// surveys can be tried before a real gateway exists), and says where in its JSON.
async fn log_gateways_take_inbound_messages_to_try_things(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let g = gateway(&app, "Try-out", GatewayKind::Log, json!({})).await;
    let inbound = g.callbacks().url("inbound");
    let (status, _, body) = post_form(
        &app,
        &inbound,
        &[("from", PHONE), ("to", "8080"), ("text", "STOP")],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(app.db.is_opted_out(app.alpha.id, PHONE).await.unwrap());
    let got = messages(&app).await;
    let received: Vec<&Message> = got.iter().filter(|m| m.direction == "inbound").collect();
    assert_eq!(received.len(), 1, "{got:?}");
    assert_eq!(received[0].gateway_id, Some(g.id));
    // Its other webhooks do not exist, and a wrong secret is refused.
    for what in ["dlr", "mo", "status"] {
        let url = g.callbacks().url(what);
        let fields = [("from", PHONE), ("to", "8080"), ("text", "x")];
        assert_eq!(post_form(&app, &url, &fields, None).await.0, 404, "{what}");
    }
    let wrong = inbound.replace(&g.webhook_secret, &"0".repeat(g.webhook_secret.len()));
    let fields = [("from", PHONE), ("to", "8080"), ("text", "x")];
    assert_eq!(post_form(&app, &wrong, &fields, None).await.0, 403);
    // The admin's view of the gateway names the address.
    let (status, json) = crate::call(
        &app,
        axum::http::Method::GET,
        &app.api("alpha", &format!("/gateways/{}", g.id)),
        Some(&app.alpha_admin.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["webhook_urls"]["inbound"], inbound.as_str());
}
