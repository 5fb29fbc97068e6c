//! The dispatcher when gateways fail, on both engines (issue 4, "Reliability"):
//! - Kannel stopped: messages are retried (the reason recorded), then expire once past their
//!   validity; none is lost, and none is sent late when Kannel is back;
//! - a gateway that fails every fifth request: every message ends `sent` or `failed` after its
//!   attempts, with the reason, and each attempt is one request the gateway saw.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Form;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::PhoneNumber;
use casecast_store::gateways::{Gateway, GatewayPatch, NewGateway};
use casecast_store::messages::{Message, MessageFilter};
use casecast_testkit::kannel::Kannel;
use casecast_testkit::{on_both_engines, Dialect, TestApp};
use serde_json::{json, Value};

const WITHIN: Duration = Duration::from_secs(90);

async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    casecast_testkit::eventually(what, WITHIN, check).await
}

async fn gateway(
    app: &TestApp,
    name: &str,
    kind: GatewayKind,
    config: Value,
    max_attempts: i64,
) -> Gateway {
    let new = NewGateway {
        name: name.into(),
        kind,
        config,
        callback_base_url: app.base.clone(),
        max_segments_per_second: None,
        max_attempts: Some(max_attempts),
        prefixes: vec![],
        is_default: false,
    };
    app.db.create_gateway(app.alpha.id, &new).await.unwrap()
}

/// Queues `n` messages through `gateway`, to distinct numbers, each text unique.
async fn queue(app: &TestApp, gateway: &Gateway, n: usize, first_number: usize) {
    // Read again: the validity of new messages comes from the project's current settings.
    let project = app.db.project_by_id(app.alpha.id).await.unwrap();
    let items: Vec<_> = (0..n)
        .map(|i| {
            let number = format!("+256772{:06}", first_number + i);
            let phone = PhoneNumber::parse(&number, None).unwrap();
            (None, phone, format!("Reminder {} via {}", i, gateway.name))
        })
        .collect();
    let queued = app.db.queue_outbound_bulk(&project, gateway.id, &items);
    assert_eq!(queued.await.unwrap(), n as u64);
}

async fn messages_of(app: &TestApp, gateway: &Gateway) -> Vec<Message> {
    let (all, _) = app
        .db
        .list_messages(app.alpha.id, &MessageFilter::default(), 10_000, None)
        .await
        .unwrap();
    all.into_iter()
        .filter(|m| m.gateway_id == Some(gateway.id))
        .collect()
}

/// Waits until no message is queued or being sent.
async fn settled(app: &TestApp) {
    eventually("every message in a final status", || async {
        let counts = app.db.outbox_counts().await.unwrap();
        let open = counts
            .iter()
            .any(|(s, n)| (s == "queued" || s == "sending") && *n > 0);
        (!open).then_some(())
    })
    .await
}

async fn kannel_stopped_messages_retry_then_expire(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let mut settings = app.alpha.messaging.clone().unwrap();
    settings.validity_seconds = 10;
    app.db
        .set_messaging_settings(app.alpha.id, &settings)
        .await
        .unwrap();
    // A Kannel that has been stopped: its sendsms port no longer answers.
    let stopped = Kannel::start("http://127.0.0.1:9/mo").await;
    let config = json!({"sendsms_url": stopped.sendsms_url, "username": stopped.username,
        "password": stopped.password, "from": "1234"});
    drop(stopped);
    let g = gateway(&app, "Kannel", GatewayKind::Kannel, config, 20).await;
    queue(&app, &g, 20, 0).await;

    // They wait and retry, the reason recorded, while still queued.
    eventually("every message retried at least once", || async {
        let ms = messages_of(&app, &g).await;
        ms.iter().all(|m| m.attempts >= 2).then_some(())
    })
    .await;
    settled(&app).await;
    let ms = messages_of(&app, &g).await;
    assert_eq!(ms.len(), 20, "none lost");
    for m in &ms {
        assert_eq!(m.status, "expired", "{m:?}");
        assert!(m.attempts > 1, "{m:?}");
        let error = m.error.as_deref().unwrap_or("");
        assert!(
            error.contains("Kannel could not be reached") && error.contains("validity"),
            "{m:?}"
        );
        assert_eq!(m.sent_at, None, "{m:?}");
    }

    // Kannel back: a new message goes through, and none of the expired ones is sent late.
    let kannel = Kannel::start("http://127.0.0.1:9/mo").await;
    let config = json!({"sendsms_url": kannel.sendsms_url, "username": kannel.username,
        "password": kannel.password, "from": "1234"});
    let patch = GatewayPatch {
        config: Some(config),
        ..Default::default()
    };
    let g = app
        .db
        .update_gateway(app.alpha.id, g.id, &patch)
        .await
        .unwrap();
    queue(&app, &g, 1, 500).await;
    let got = kannel.wait_for(1, WITHIN).await;
    assert_eq!(got[0].receiver, "+256772000500", "{got:?}");
    // Its delivery report may be recorded before the gateway's answer: wait for both.
    eventually("the new message recorded as sent", || async {
        let ms = messages_of(&app, &g).await;
        ms.iter().any(|m| m.sent_at.is_some()).then_some(())
    })
    .await;
    settled(&app).await;
    let ms = messages_of(&app, &g).await;
    let sent: Vec<&Message> = ms.iter().filter(|m| m.sent_at.is_some()).collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent.iter().all(|m| m.sent_at < Some(m.expires_at)));
    assert_eq!(kannel.received().len(), 1, "{:?}", kannel.received());
}

/// A local SMS aggregator that answers 500 to every fifth request and records, per message id,
/// the status of each request.
#[derive(Clone, Default)]
struct FlakySink {
    seen: Arc<Mutex<Seen>>,
}

/// Requests so far, and the statuses answered per message id.
type Seen = (usize, HashMap<i64, Vec<u16>>);

async fn flaky(
    State(sink): State<FlakySink>,
    Form(fields): Form<HashMap<String, String>>,
) -> (StatusCode, &'static str) {
    let id: i64 = fields["id"].parse().unwrap();
    let mut seen = sink.seen.lock().unwrap();
    seen.0 += 1;
    let status = if seen.0.is_multiple_of(5) { 500 } else { 200 };
    seen.1.entry(id).or_default().push(status);
    match status {
        500 => (StatusCode::INTERNAL_SERVER_ERROR, "temporarily unavailable"),
        _ => (StatusCode::OK, "ACCEPTED"),
    }
}

impl FlakySink {
    async fn start() -> (FlakySink, String) {
        let sink = FlakySink::default();
        let app = axum::Router::new()
            .route("/send", axum::routing::post(flaky))
            .with_state(sink.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/send", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (sink, url)
    }

    fn requests(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
}

fn http_config(url: &str) -> Value {
    json!({"url": url, "method": "POST",
        "params": [["to", "{to}"], ["text", "{text}"], ["id", "{id}"]]})
}

async fn a_gateway_failing_every_fifth_request(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let (once_sink, once_url) = FlakySink::start().await;
    let (thrice_sink, thrice_url) = FlakySink::start().await;
    let once = gateway(&app, "Once", GatewayKind::Http, http_config(&once_url), 1).await;
    let thrice = gateway(
        &app,
        "Thrice",
        GatewayKind::Http,
        http_config(&thrice_url),
        3,
    )
    .await;
    queue(&app, &once, 100, 0).await;
    queue(&app, &thrice, 100, 100).await;
    settled(&app).await;

    for (g, sink, max_attempts) in [(&once, &once_sink, 1), (&thrice, &thrice_sink, 3)] {
        let ms = messages_of(&app, g).await;
        assert_eq!(ms.len(), 100, "none lost");
        let (total, per_message) = sink.requests();
        // Each attempt is one request: no message was handed over without being counted.
        let attempts: i64 = ms.iter().map(|m| m.attempts).sum();
        assert_eq!(attempts as usize, total, "{}", g.name);
        assert_eq!(per_message.len(), 100, "{}", g.name);
        for m in &ms {
            let seen = &per_message[&m.id];
            assert_eq!(seen.len() as i64, m.attempts, "{m:?} {seen:?}");
            let (last, earlier) = seen.split_last().unwrap();
            assert!(earlier.iter().all(|s| *s == 500), "{m:?} {seen:?}");
            match m.status.as_str() {
                "sent" => assert_eq!(*last, 200, "{m:?}"),
                "failed" => {
                    assert_eq!((*last, m.attempts), (500, max_attempts), "{m:?}");
                    let error = m.error.as_deref().unwrap_or("");
                    assert!(
                        error.contains(&format!("after {max_attempts} attempts"))
                            && error.contains("(HTTP 500)"),
                        "{m:?}"
                    );
                }
                _ => panic!("not sent or failed: {m:?}"),
            }
        }
        if max_attempts == 1 {
            // One request each, every fifth refused: exactly a fifth failed.
            let failed = ms.iter().filter(|m| m.status == "failed").count();
            assert_eq!((total, failed), (100, 20));
        }
    }
}

on_both_engines!(
    kannel_stopped_messages_retry_then_expire,
    a_gateway_failing_every_fifth_request,
);
