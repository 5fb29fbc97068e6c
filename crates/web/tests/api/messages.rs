//! Sending to a case and the message log: what goes out, what is refused, and the filters.

use casecast_testkit::Workflows;
use std::collections::HashSet;
use std::time::Duration;

use casecast_core::gateway::InboundSms;
use casecast_testkit::{Dialect, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::gateways::{add_case, add_gateway, hold_messages, send};
use crate::{call, code};

casecast_testkit::on_both_engines!(
    a_message_to_a_case_goes_out_through_the_log_gateway,
    sends_that_cannot_go_are_refused_and_nothing_is_queued,
    the_log_filters_and_pages,
    messages_of_another_project_are_not_found,
);

async fn get_message(app: &TestApp, id: i64) -> Value {
    let (status, m) = call(
        app,
        Method::GET,
        &app.api("alpha", &format!("/messages/{id}")),
        Some(&app.alpha_viewer.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{m}");
    m
}

/// Every message of alpha matching `query`, following the cursor; `limit` per page.
async fn all_pages(app: &TestApp, query: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = app.api("alpha", &format!("/messages?limit={limit}&{query}"));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) =
            call(app, Method::GET, &url, Some(&app.alpha_viewer.token), None).await;
        assert_eq!(status, 200, "{query}: {page}");
        let items = page["messages"].as_array().unwrap();
        assert!(items.len() <= limit);
        out.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

async fn a_message_to_a_case_goes_out_through_the_log_gateway(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let gateway = add_gateway(&app, json!({"name": "Log", "kind": "log"})).await;
    let case = add_case(&app, json!({"name": "Apio", "phone_number": "0772 123456"})).await;
    let (status, m) = send(
        &app,
        &case,
        json!({"text": "Your clinic visit is on Monday"}),
    )
    .await;
    assert_eq!(status, 201, "{m}");
    let id = m["id"].as_i64().unwrap();
    assert_eq!(m["direction"], "outbound");
    assert_eq!(m["kind"], "normal");
    assert_eq!(m["case_id"], case.as_str());
    assert_eq!(m["phone_number"], "+256772123456");
    assert_eq!(m["text"], "Your clinic visit is on Monday");
    assert_eq!(m["encoding"], "gsm7");
    assert_eq!(m["segments"], 1);
    assert_eq!(m["gateway_id"], gateway["id"]);
    assert_eq!(m["broadcast_id"], Value::Null);
    assert_eq!(m["error"], Value::Null);
    assert_eq!(m["delivered_at"], Value::Null);
    assert!(m["created_at"].as_str().unwrap().ends_with('Z'), "{m}");
    assert!(m["expires_at"].as_str().unwrap() > m["created_at"].as_str().unwrap());
    // The dispatcher hands it to the log gateway.
    let mut last = m;
    for _ in 0..300 {
        last = get_message(&app, id).await;
        if last["status"] == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["status"], "sent", "{last}");
    assert_eq!(last["attempts"], 1);
    let sent_at = last["sent_at"].as_str().expect("sent_at is set");
    assert!(sent_at >= last["created_at"].as_str().unwrap(), "{last}");
    // Two segments of UCS-2.
    let (status, m) = send(&app, &case, json!({"text": "Habari 😀 ".repeat(8)})).await;
    assert_eq!(status, 201);
    assert_eq!(
        (m["encoding"].as_str(), m["segments"].as_i64()),
        (Some("ucs2"), Some(2))
    );
}

async fn sends_that_cannot_go_are_refused_and_nothing_is_queued(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let admin = Some(app.alpha_admin.token.as_str());
    let case = add_case(&app, json!({"name": "Apio", "phone_number": "0772 123456"})).await;
    let (status, got) = send(&app, &case, json!({"text": "Hello"})).await;
    assert_eq!((status, code(&got)), (409, "no_gateway"), "{got}");
    add_gateway(&app, json!({"name": "Log", "kind": "log"})).await;

    let (status, _) = call(
        &app,
        Method::POST,
        &app.api("alpha", "/opt-outs"),
        admin,
        Some(json!({"phone_number": "+256 772 123456"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, got) = send(&app, &case, json!({"text": "Hello"})).await;
    assert_eq!((status, code(&got)), (409, "opted_out"), "{got}");

    let silent = add_case(&app, json!({"name": "No phone"})).await;
    let (status, got) = send(&app, &silent, json!({"text": "Hello"})).await;
    assert_eq!((status, code(&got)), (409, "no_phone_number"), "{got}");

    let closed = add_case(
        &app,
        json!({"name": "Closed", "phone_number": "0772 000222"}),
    )
    .await;
    let (status, _) = call(
        &app,
        Method::POST,
        &app.api("alpha", &format!("/cases/{closed}/close")),
        admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, got) = send(&app, &closed, json!({"text": "Hello"})).await;
    assert_eq!((status, code(&got)), (409, "case_closed"), "{got}");

    let open = add_case(&app, json!({"name": "Open", "phone_number": "0772 000333"})).await;
    for (body, expected) in [
        (
            json!({"text": "x".repeat(1531)}),
            "text: is 1531 characters",
        ),
        (json!({"text": "   "}), "text:"),
        (json!({"text": "a\u{7}b"}), "text:"),
        (json!({"text": 5}), "text:"),
        (json!({}), "missing field `text`"),
        (json!({"text": "Hi", "gateway_id": 999999}), "gateway_id:"),
        (
            json!({"text": "Hi", "to": "+256772000333"}),
            "unknown field `to`",
        ),
    ] {
        let (status, got) = send(&app, &open, body.clone()).await;
        assert_eq!((status, code(&got)), (422, "invalid"), "{body}: {got}");
        let message = got["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    let (status, got) = send(&app, "no-such-case", json!({"text": "Hello"})).await;
    assert_eq!((status, code(&got)), (404, "not_found"));
    let (status, got) = call(
        &app,
        Method::POST,
        &app.api("alpha", &format!("/cases/{open}/messages")),
        Some(&app.alpha_viewer.token),
        Some(json!({"text": "Hello"})),
    )
    .await;
    assert_eq!((status, code(&got)), (403, "forbidden"));
    // The longest text allowed goes.
    let (status, got) = send(&app, &open, json!({"text": "x".repeat(1530)})).await;
    assert_eq!((status, got["segments"].as_i64()), (201, Some(10)));
    let all = all_pages(&app, "", 50).await;
    assert_eq!(all.len(), 1, "only the last send queued anything: {all:?}");
}

async fn the_log_filters_and_pages(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    let before = casecast_core::time::rfc3339(casecast_core::time::now_ms() - 1000);
    hold_messages(&app).await;
    let gateway = add_gateway(&app, json!({"name": "Log", "kind": "log"})).await;
    let apio = add_case(&app, json!({"name": "Apio", "phone_number": "0772 123456"})).await;
    let okello = add_case(
        &app,
        json!({"name": "Okello", "phone_number": "0772 654321"}),
    )
    .await;
    for i in 0..5 {
        let (status, _) = send(&app, &apio, json!({"text": format!("to Apio {i}")})).await;
        assert_eq!(status, 201);
    }
    for i in 0..2 {
        let (status, _) = send(&app, &okello, json!({"text": format!("to Okello {i}")})).await;
        assert_eq!(status, 201);
    }
    let stored = app
        .db
        .gateway(app.alpha.id, gateway["id"].as_i64().unwrap())
        .await
        .unwrap();
    app.db
        .record_inbound(
            &stored,
            &InboundSms {
                from: "+256772123456".into(),
                to: "8080".into(),
                text: "Thank you".into(),
                gateway_message_id: Some("mo-1".into()),
            },
        )
        .await
        .unwrap();

    let all = all_pages(&app, "", 3).await;
    assert_eq!(all.len(), 8);
    let ids: Vec<i64> = all.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats: {ids:?}"
    );
    assert_eq!(all[0]["direction"], "inbound");
    assert_eq!(all[0]["status"], "received");
    assert_eq!(
        all[0]["case_id"],
        apio.as_str(),
        "matched to the case by number"
    );
    assert_eq!(all[0]["expires_at"], Value::Null);

    let count = |items: &[Value]| items.len();
    let texts = |items: &[Value]| -> HashSet<String> {
        items
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(count(&all_pages(&app, "direction=inbound", 50).await), 1);
    assert_eq!(count(&all_pages(&app, "direction=outbound", 2).await), 7);
    assert_eq!(count(&all_pages(&app, "status=queued", 50).await), 7);
    assert_eq!(count(&all_pages(&app, "status=received", 50).await), 1);
    assert_eq!(count(&all_pages(&app, "status=sent", 50).await), 0);
    let of_okello = all_pages(&app, &format!("case_id={okello}"), 50).await;
    assert_eq!(
        texts(&of_okello),
        HashSet::from(["to Okello 0".into(), "to Okello 1".into()])
    );
    assert_eq!(
        count(&all_pages(&app, &format!("case_id={apio}&direction=outbound"), 2).await),
        5
    );
    assert_eq!(count(&all_pages(&app, "case_id=nobody", 50).await), 0);
    assert_eq!(count(&all_pages(&app, "broadcast_id=1", 50).await), 0);
    // A number in any common form, national numbers in the project's country.
    for phone in ["0772%20654321", "%2B256772654321", "256772654321"] {
        let got = all_pages(&app, &format!("phone_number={phone}"), 50).await;
        assert_eq!(texts(&got), texts(&of_okello), "{phone}");
    }
    assert_eq!(count(&all_pages(&app, "since=2000-01-01", 50).await), 8);
    assert_eq!(
        count(&all_pages(&app, &format!("since={before}"), 50).await),
        8
    );
    assert_eq!(count(&all_pages(&app, "until=2000-01-01", 50).await), 0);
    assert_eq!(count(&all_pages(&app, "since=2999-01-01", 50).await), 0);
    assert_eq!(
        count(&all_pages(&app, &format!("until={before}"), 50).await),
        0
    );
    // Today, as a date in the project's time zone, from its start to its end.
    let today = jiff::Timestamp::now()
        .to_zoned(app.alpha.zone())
        .date()
        .to_string();
    assert_eq!(
        count(&all_pages(&app, &format!("since={today}&until={today}"), 50).await),
        8
    );

    for (query, expected) in [
        (
            "direction=sideways",
            "direction: must be outbound or inbound",
        ),
        ("status=lost", "status: must be one of queued"),
        ("phone_number=abc", "phone_number:"),
        ("phone_number=12", "phone_number:"),
        ("case_id=a%20b", "case_id:"),
        ("broadcast_id=x", "broadcast_id"),
        ("since=yesterday", "since:"),
        ("until=2026-13-01", "until:"),
        ("limit=0", "limit:"),
        ("limit=501", "limit:"),
        ("cursor=abc", "cursor:"),
    ] {
        let (status, got) = call(
            &app,
            Method::GET,
            &app.api("alpha", &format!("/messages?{query}")),
            Some(&app.alpha_viewer.token),
            None,
        )
        .await;
        assert_eq!((status, code(&got)), (422, "invalid"), "{query}: {got}");
        let message = got["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{query}: {message}");
    }
    for path in ["/messages/999999", "/messages/abc"] {
        let (status, got) = call(
            &app,
            Method::GET,
            &app.api("alpha", path),
            Some(&app.alpha_viewer.token),
            None,
        )
        .await;
        assert_eq!((status, code(&got)), (404, "not_found"), "{path}");
    }
}

async fn messages_of_another_project_are_not_found(engine: Dialect) {
    let app = TestApp::spawn(engine).await;
    add_gateway(&app, json!({"name": "Log", "kind": "log"})).await;
    let case = add_case(&app, json!({"name": "Apio", "phone_number": "0772 123456"})).await;
    let (_, m) = send(&app, &case, json!({"text": "Hello"})).await;
    let beta = Some(app.beta_admin.token.as_str());
    let (status, got) = call(
        &app,
        Method::GET,
        &app.api("beta", &format!("/messages/{}", m["id"])),
        beta,
        None,
    )
    .await;
    assert_eq!((status, code(&got)), (404, "not_found"));
    let (status, got) = call(&app, Method::GET, &app.api("beta", "/messages"), beta, None).await;
    assert_eq!((status, got["messages"].clone()), (200, json!([])));
    let (status, got) = call(
        &app,
        Method::GET,
        &app.api("beta", &format!("/messages?case_id={case}")),
        beta,
        None,
    )
    .await;
    assert_eq!((status, got["messages"].clone()), (200, json!([])));
    // Beta cannot send to alpha's case, even with its own gateway.
    let (status, _) = call(
        &app,
        Method::POST,
        &app.api("beta", "/gateways"),
        beta,
        Some(json!({"name": "Log", "kind": "log"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, got) = call(
        &app,
        Method::POST,
        &app.api("beta", &format!("/cases/{case}/messages")),
        beta,
        Some(json!({"text": "Hello"})),
    )
    .await;
    assert_eq!((status, code(&got)), (404, "not_found"));
    // Nor through alpha's gateway: a gateway id of another project is not found.
    let (_, beta_gateways) =
        call(&app, Method::GET, &app.api("beta", "/gateways"), beta, None).await;
    let (status, got) = send(
        &app,
        &case,
        json!({"text": "Hello", "gateway_id": beta_gateways["gateways"][0]["id"]}),
    )
    .await;
    assert_eq!(status, 422, "{got}");
    assert_eq!(all_pages(&app, "", 50).await.len(), 1);
}
