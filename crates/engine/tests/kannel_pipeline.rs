//! The whole pipeline through a real Kannel (bearerbox + smsbox with a fake operator), on both
//! engines: a message queued for a case reaches the operator with its exact text (GSM, UCS-2
//! with emoji, three segments), both delivery reports end it `delivered`, and MO messages land
//! in the case's history, opt the number out (STOP, with one confirmation) and back in (START).

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use casecast_testkit::Workflows;
use std::future::Future;
use std::time::Duration;

use casecast_core::case::CaseChanges;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::PhoneNumber;
use casecast_store::gateways::{Gateway, GatewayPatch, NewGateway};
use casecast_store::messages::{Message, MessageFilter};
use casecast_store::StoreError;
use casecast_testkit::kannel::{decode_ucs2, join_parts, FakeMt, Kannel, LineKind};
use casecast_testkit::{on_both_engines, Dialect, TestApp};
use serde_json::json;

const PHONE: &str = "+256772000001";
const SENDER: &str = "1234";
const WITHIN: Duration = Duration::from_secs(60);

/// Polls `check` until it gives a value, within [`WITHIN`].
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    casecast_testkit::eventually(what, WITHIN, check).await
}

/// A server, a Kannel whose MO goes to the server's webhook, and a Kannel gateway for alpha.
async fn setup(engine: Dialect) -> (TestApp, Kannel, Gateway) {
    let app = TestApp::spawn(engine).await;
    // The gateway first: Kannel's get-url needs its id and secret. Its sendsms URL is set once
    // Kannel runs.
    let placeholder = json!({"sendsms_url": "http://127.0.0.1:9/cgi-bin/sendsms", "username": "u", "password": "p"});
    let new = NewGateway {
        name: "Kannel".into(),
        kind: GatewayKind::Kannel,
        config: placeholder,
        callback_base_url: app.base.clone(),
        max_segments_per_second: None,
        max_attempts: None,
        prefixes: vec![],
        is_default: true,
    };
    let g = app.db.create_gateway(app.alpha.id, &new).await.unwrap();
    let kannel = Kannel::start(&g.callbacks().url("mo")).await;
    let config = json!({
        "sendsms_url": kannel.sendsms_url,
        "username": kannel.username,
        "password": kannel.password,
        "from": SENDER,
    });
    let patch = GatewayPatch {
        config: Some(config),
        ..Default::default()
    };
    let g = app.db.update_gateway(app.alpha.id, g.id, &patch).await;
    (app, kannel, g.unwrap())
}

async fn case(app: &TestApp) -> String {
    let changes = CaseChanges {
        name: Some("Amina".into()),
        phone_number: Some(Some(PhoneNumber::parse(PHONE, None).unwrap())),
        ..Default::default()
    };
    let case = app.db.create_case(app.alpha.id, None, &changes).await;
    case.unwrap().case_id.as_str().to_string()
}

async fn history(app: &TestApp, case_id: &str, direction: &str) -> Vec<Message> {
    let filter = MessageFilter {
        case_id: Some(case_id.into()),
        direction: casecast_core::states::Direction::parse(direction),
        ..Default::default()
    };
    let page = app.db.list_messages(app.alpha.id, &filter, 100, None).await;
    page.unwrap().0
}

/// The whole MT messages the operator got as text: single lines as they are, the parts of a
/// concatenated message joined (as UCS-2 when `ucs2_parts`).
fn whole_texts(got: &[FakeMt], ucs2_parts: bool) -> Vec<String> {
    let mut texts: Vec<String> = got
        .iter()
        .filter(|m| m.kind != LineKind::Udh)
        .map(|m| m.text.clone())
        .collect();
    let parts: Vec<FakeMt> = got
        .iter()
        .filter(|m| m.kind == LineKind::Udh)
        .cloned()
        .collect();
    if !parts.is_empty() {
        let bytes = join_parts(&parts);
        texts.push(if ucs2_parts {
            decode_ucs2(&bytes)
        } else {
            String::from_utf8(bytes).unwrap()
        });
    }
    texts
}

async fn messages_reach_the_operator_and_both_reports_count(engine: Dialect) {
    let (app, kannel, g) = setup(engine).await;
    let case_id = case(&app).await;
    let gsm = "Hello Amina: your visit is on 12/05 at 09:00 (bring card #7)".to_string();
    let ucs2 = "Habari Amina 😀 café – ናይ".to_string();
    let long: String = (0..400)
        .map(|i| char::from(b"abcdefghij klmnopqrstuvwxyz0123456789"[i % 37]))
        .collect();
    let mut sent = Vec::new();
    for (text, encoding, segments) in [(&gsm, "gsm7", 1), (&ucs2, "ucs2", 1), (&long, "gsm7", 3)] {
        // One at a time, so the operator's lines can be told apart.
        let expected = kannel.received().len() + segments as usize;
        let m = app.db.send_to_case(&app.alpha, &case_id, text, None, None);
        let m = m.await.unwrap();
        assert_eq!((m.encoding.as_str(), m.segments), (encoding, segments));
        assert_eq!(m.gateway_id, Some(g.id));
        let got = kannel.wait_for(expected, WITHIN).await;
        assert_eq!(got.len(), expected, "{got:#?}");
        sent.push(m);
    }
    let got = kannel.received();
    assert!(
        got.iter()
            .all(|m| m.receiver == PHONE && m.sender == SENDER),
        "{got:#?}"
    );
    assert_eq!(
        (got[0].kind, got[0].text.as_str()),
        (LineKind::Text, gsm.as_str())
    );
    assert_eq!(
        (got[1].kind, got[1].text.as_str()),
        (LineKind::Ucs2, ucs2.as_str())
    );
    assert_eq!(whole_texts(&got[2..], false), [long.as_str()]);
    assert!(got[2..]
        .iter()
        .all(|p| p.concat().is_some_and(|c| c.total == 3)));

    // The fake SMSC reports 8 (accepted) and 1 (delivered) for each, in either order.
    for m in &sent {
        let done = eventually(&format!("message {} delivered", m.id), || async {
            let now = app.db.message(app.alpha.id, m.id).await.unwrap();
            (now.status == "delivered").then_some(now)
        })
        .await;
        assert!(
            done.sent_at.is_some() && done.delivered_at.is_some(),
            "{done:?}"
        );
        assert_eq!(done.error, None);
    }
}

async fn mo_replies_stop_and_start(engine: Dialect) {
    let (app, kannel, _g) = setup(engine).await;
    let case_id = case(&app).await;
    let settings = app
        .db
        .project_by_id(app.alpha.id)
        .await
        .unwrap()
        .messaging
        .unwrap();

    kannel.send_mo(PHONE, SENDER, "Yes I will come").await;
    let reply = eventually("the reply in the case's history", || async {
        history(&app, &case_id, "inbound").await.into_iter().next()
    })
    .await;
    assert_eq!(
        (
            reply.text.as_str(),
            reply.status.as_str(),
            reply.phone_number.as_str()
        ),
        ("Yes I will come", "received", PHONE)
    );

    kannel.send_mo(PHONE, SENDER, "STOP").await;
    eventually("the number opted out", || async {
        app.db
            .is_opted_out(app.alpha.id, PHONE)
            .await
            .unwrap()
            .then_some(())
    })
    .await;
    let got = kannel.wait_for(1, WITHIN).await;
    assert_eq!(whole_texts(&got, false), [settings.opt_out_reply.as_str()]);
    assert_eq!(got[0].receiver, PHONE);
    let refused = app
        .db
        .send_to_case(&app.alpha, &case_id, "Reminder", None, None);
    match refused.await {
        Err(StoreError::Conflict { code, .. }) => assert_eq!(code, "opted_out"),
        other => panic!("expected a conflict opted_out, got {other:?}"),
    }

    kannel.send_mo(PHONE, SENDER, "START").await;
    eventually("the number opted back in", || async {
        (!app.db.is_opted_out(app.alpha.id, PHONE).await.unwrap()).then_some(())
    })
    .await;
    let got = kannel.wait_for(2, WITHIN).await;
    assert_eq!(got[1].text, settings.opt_in_reply);
    let m = app
        .db
        .send_to_case(&app.alpha, &case_id, "Reminder", None, None);
    m.await.unwrap();
    let got = kannel.wait_for(3, WITHIN).await;
    assert_eq!(got[2].text, "Reminder");

    let inbound: Vec<String> = history(&app, &case_id, "inbound")
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(inbound, ["START", "STOP", "Yes I will come"]);
    // Nothing more reached the operator than the two confirmations and the reminder.
    assert_eq!(kannel.received().len(), 3);
}

on_both_engines!(
    messages_reach_the_operator_and_both_reports_count,
    mo_replies_stop_and_start,
);
