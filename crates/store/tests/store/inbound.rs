//! Inbound messages and delivery reports: matched to cases, opt-out and opt-in keywords with
//! one confirmation each, gateway retries recorded once, reports in any order.

use casecast_core::gateway::{DeliveryStatus, InboundSms, MessageRef};
use casecast_core::opt_out::Intent;
use casecast_core::states::{Direction, MessageStatus};
use casecast_store::messages::MessageFilter;
use casecast_store::settings::{MessagingSettings, SettingsError, SettingsField};
use casecast_store::StoreError;
use casecast_testkit::Workflows;
use casecast_testkit::{on_both_engines, Dialect, TestDb};

use crate::gateways::log;
use crate::{case_with, project};

on_both_engines!(
    an_inbound_message_is_matched_to_the_case_with_that_number,
    stop_opts_out_once_cancels_the_queue_and_start_opts_back_in,
    project_keywords_and_replies_are_used,
    delivery_reports_in_any_order_end_delivered,
    reports_of_another_gateway_or_unknown_ids_change_nothing,
    opt_out_list_by_hand,
    stored_settings_that_cannot_be_used_are_an_error_and_stop_still_stops,
);

fn mo(from: &str, text: &str, id: Option<&str>) -> InboundSms {
    InboundSms {
        from: from.into(),
        to: "8080".into(),
        text: text.into(),
        gateway_message_id: id.map(str::to_string),
    }
}

async fn an_inbound_message_is_matched_to_the_case_with_that_number(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let g = db.create_gateway(p.id, &log("L", &[])).await.unwrap();
    let case = case_with(db, p.id, None, "Amina", None, Some("0772000001")).await;
    // National and international forms of the number both match.
    let a = db
        .record_inbound(&g, &mo("+256772000001", "Yes I will come", Some("k-1")))
        .await
        .unwrap();
    let b = db
        .record_inbound(&g, &mo("0772000001", "Thanks\nsee you", None))
        .await
        .unwrap();
    for out in [&a, &b] {
        assert!(out.recorded && out.intent.is_none());
        assert_eq!(out.message.case_id.as_deref(), Some(case.case_id.as_str()));
        assert_eq!(
            (out.message.direction.as_str(), out.message.status.as_str()),
            ("inbound", "received")
        );
        assert_eq!(out.message.phone_number, "+256772000001");
    }
    assert_eq!(b.message.text, "Thanks\nsee you");
    // The gateway delivering the same message again records nothing new.
    let again = db
        .record_inbound(&g, &mo("+256772000001", "Yes I will come", Some("k-1")))
        .await
        .unwrap();
    assert!(!again.recorded);
    assert_eq!(again.message.id, a.message.id);
    // NUL and other control characters from a gateway are dropped (PostgreSQL refuses NUL).
    let nul = db
        .record_inbound(
            &g,
            &mo("+256772000001", "a\u{0}b\u{7}c\td", Some("k-\u{0}2")),
        )
        .await
        .unwrap();
    assert_eq!(nul.message.text, "abc\td");
    // An unknown sender (a short code) is recorded without a case.
    let c = db
        .record_inbound(&g, &mo("MTN", "Your bundle", None))
        .await
        .unwrap();
    assert_eq!(
        (c.message.case_id, c.message.phone_number.as_str()),
        (None, "MTN")
    );
    let filter = MessageFilter {
        case_id: Some(case.case_id.as_str().to_string()),
        ..Default::default()
    };
    let (history, _) = db.list_messages(p.id, &filter, 50, None).await.unwrap();
    assert_eq!(
        history.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![nul.message.id, b.message.id, a.message.id]
    );
}

async fn stop_opts_out_once_cancels_the_queue_and_start_opts_back_in(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let g = db.create_gateway(p.id, &log("L", &[])).await.unwrap();
    let case = case_with(db, p.id, None, "Amina", None, Some("0772000001")).await;
    let queued = db
        .send_to_case(&p, case.case_id.as_str(), "reminder", None, None)
        .await
        .unwrap();
    let stop = db
        .record_inbound(&g, &mo("+256772000001", " stop! ", None))
        .await
        .unwrap();
    assert_eq!(stop.intent, Some((Intent::OptOut, true)));
    assert!(db.is_opted_out(p.id, "+256772000001").await.unwrap());
    assert_eq!(
        db.message(p.id, queued.id).await.unwrap().status,
        "cancelled"
    );
    let outbound = MessageFilter {
        direction: Direction::parse("outbound"),
        status: MessageStatus::parse("queued"),
        ..Default::default()
    };
    let (replies, _) = db.list_messages(p.id, &outbound, 50, None).await.unwrap();
    assert_eq!(replies.len(), 1, "one confirmation");
    assert_eq!(replies[0].kind, "confirmation");
    assert_eq!(replies[0].text, MessagingSettings::default().opt_out_reply);
    // Sending to the number is refused; a second STOP gets no second confirmation.
    let err = db
        .send_to_case(&p, case.case_id.as_str(), "again", None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                code: "opted_out",
                ..
            }
        ),
        "{err}"
    );
    let second = db
        .record_inbound(&g, &mo("+256772000001", "STOP", None))
        .await
        .unwrap();
    assert_eq!(second.intent, Some((Intent::OptOut, false)));
    assert_eq!(
        db.list_messages(p.id, &outbound, 50, None)
            .await
            .unwrap()
            .0
            .len(),
        1
    );
    // "Stop please" is a reply to a person, not a keyword.
    let chat = db
        .record_inbound(&g, &mo("+256772000001", "Stop please, who is this", None))
        .await
        .unwrap();
    assert_eq!(chat.intent, None);
    let start = db
        .record_inbound(&g, &mo("+256772000001", "Start", None))
        .await
        .unwrap();
    assert_eq!(start.intent, Some((Intent::OptIn, true)));
    assert!(!db.is_opted_out(p.id, "+256772000001").await.unwrap());
    assert_eq!(
        db.list_messages(p.id, &outbound, 50, None)
            .await
            .unwrap()
            .0
            .len(),
        2
    );
    db.send_to_case(&p, case.case_id.as_str(), "welcome back", None, None)
        .await
        .unwrap();
}

async fn project_keywords_and_replies_are_used(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let settings = MessagingSettings {
        stop_keywords: vec!["ARRÊT".into(), "STOP".into()],
        start_keywords: vec!["REPRISE".into()],
        opt_out_reply: "Désinscrit.".into(),
        ..Default::default()
    };
    db.set_messaging_settings(p.id, &settings).await.unwrap();
    let p = db.project_by_id(p.id).await.unwrap();
    assert_eq!(p.messaging, Ok(settings));
    let g = db.create_gateway(p.id, &log("L", &[])).await.unwrap();
    let out = db
        .record_inbound(&g, &mo("+256772000001", "arrêt", None))
        .await
        .unwrap();
    assert_eq!(out.intent, Some((Intent::OptOut, true)));
    let (replies, _) = db
        .list_messages(
            p.id,
            &MessageFilter {
                direction: Direction::parse("outbound"),
                ..Default::default()
            },
            5,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (replies[0].text.as_str(), replies[0].encoding.as_str()),
        ("Désinscrit.", "gsm7")
    );
    // Checked on save, field named.
    let bad = MessagingSettings {
        quiet_hours_start: Some("21:00".into()),
        ..Default::default()
    };
    let err = db.set_messaging_settings(p.id, &bad).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(f) if f.field == "quiet_hours_end"),
        "{err}"
    );
    let bad = MessagingSettings {
        validity_seconds: 1,
        ..Default::default()
    };
    assert!(db.set_messaging_settings(p.id, &bad).await.is_err());
}

async fn delivery_reports_in_any_order_end_delivered(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let g = db.create_gateway(p.id, &log("L", &[])).await.unwrap();
    let case = case_with(db, p.id, None, "Amina", None, Some("0772000001")).await;
    let orders = [
        [DeliveryStatus::Sent, DeliveryStatus::Delivered],
        [DeliveryStatus::Delivered, DeliveryStatus::Sent],
    ];
    for order in orders {
        let m = db
            .send_to_case(&p, case.case_id.as_str(), "hi", None, None)
            .await
            .unwrap();
        for status in order {
            assert!(db
                .apply_delivery_report(&g, &MessageRef::Ours(m.id), status, "x")
                .await
                .unwrap());
        }
        let m = db.message(p.id, m.id).await.unwrap();
        assert_eq!(m.status, "delivered", "{order:?}");
        assert!(m.delivered_at.is_some());
        // Delivered means sent, even when the report overtook the record of sending.
        assert!(m.sent_at.is_some(), "{order:?}");
        // A late failure report does not undo a delivery.
        db.apply_delivery_report(&g, &MessageRef::Ours(m.id), DeliveryStatus::Failed, "16")
            .await
            .unwrap();
        assert_eq!(db.message(p.id, m.id).await.unwrap().status, "delivered");
    }
    let m = db
        .send_to_case(&p, case.case_id.as_str(), "hi", None, None)
        .await
        .unwrap();
    db.apply_delivery_report(
        &g,
        &MessageRef::Ours(m.id),
        DeliveryStatus::Failed,
        "16 rejected by the SMSC",
    )
    .await
    .unwrap();
    let m = db.message(p.id, m.id).await.unwrap();
    assert_eq!(m.status, "failed");
    assert_eq!(
        m.error.as_deref(),
        Some("delivery report: 16 rejected by the SMSC")
    );
}

async fn reports_of_another_gateway_or_unknown_ids_change_nothing(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let q = project(db, "beta", Some("KE")).await;
    let g = db.create_gateway(p.id, &log("L", &[])).await.unwrap();
    let other = db.create_gateway(q.id, &log("L", &[])).await.unwrap();
    let case = case_with(db, p.id, None, "Amina", None, Some("0772000001")).await;
    let m = db
        .send_to_case(&p, case.case_id.as_str(), "hi", None, None)
        .await
        .unwrap();
    assert!(!db
        .apply_delivery_report(
            &other,
            &MessageRef::Ours(m.id),
            DeliveryStatus::Delivered,
            "1"
        )
        .await
        .unwrap());
    assert!(!db
        .apply_delivery_report(
            &g,
            &MessageRef::Ours(m.id + 1000),
            DeliveryStatus::Delivered,
            "1"
        )
        .await
        .unwrap());
    assert!(!db
        .apply_delivery_report(
            &g,
            &MessageRef::Gateway("nope".into()),
            DeliveryStatus::Delivered,
            "1"
        )
        .await
        .unwrap());
    assert_eq!(db.message(p.id, m.id).await.unwrap().status, "queued");
    // Another project's message is not found through this one.
    assert!(matches!(
        db.message(q.id, m.id).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn opt_out_list_by_hand(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let q = project(db, "beta", Some("KE")).await;
    for i in 0..5 {
        assert!(db
            .add_opt_out(p.id, &format!("+25677200000{i}"), "api")
            .await
            .unwrap());
    }
    assert!(!db.add_opt_out(p.id, "+256772000001", "page").await.unwrap());
    let (first, next) = db.list_opt_outs(p.id, 3, None).await.unwrap();
    assert_eq!(first.len(), 3);
    let (rest, end) = db.list_opt_outs(p.id, 3, next.as_deref()).await.unwrap();
    assert_eq!((rest.len(), end), (2, None));
    assert_eq!(rest[1].phone_number, "+256772000004");
    assert!(db.list_opt_outs(q.id, 10, None).await.unwrap().0.is_empty());
    assert!(!db.is_opted_out(q.id, "+256772000001").await.unwrap());
    db.remove_opt_out(p.id, "+256772000001").await.unwrap();
    assert!(matches!(
        db.remove_opt_out(p.id, "+256772000001").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.remove_opt_out(q.id, "+256772000002").await,
        Err(StoreError::NotFound(_))
    ));
}

/// Settings written past the checks (a hand edit, damage) read as an error naming what is
/// wrong, never as the defaults; an inbound STOP is still honoured (by the default keywords).
async fn stored_settings_that_cannot_be_used_are_an_error_and_stop_still_stops(engine: Dialect) {
    let t = TestDb::new(engine).await;
    let db = &t.db;
    let p = project(db, "alpha", Some("UG")).await;
    let g = db.create_gateway(p.id, &log("L", &[])).await.unwrap();
    t.store_messaging_settings_unchecked(
        p.id,
        r#"{"quiet_hours_start": "21:00", "quiet_hours_end": "7 pm", "stop_keywords": ["SIMAMA"], "validity_seconds": 600}"#,
    )
    .await;
    let broken = db.project_by_id(p.id).await.unwrap();
    let e = broken.messaging.as_ref().unwrap_err();
    assert_eq!(
        e.field_error().map(|f| f.field),
        Some(SettingsField::QuietHoursEnd),
        "{e}"
    );
    let stored = e.stored().unwrap();
    assert_eq!(
        (stored.quiet_hours_end.as_deref(), stored.validity_seconds),
        (Some("7 pm"), 600)
    );
    // Messages queued meanwhile keep the default validity.
    assert_eq!(
        broken.validity_seconds(),
        casecast_store::settings::DEFAULT_VALIDITY_SECONDS
    );
    let stop = db
        .record_inbound(&g, &mo("+256772000001", "STOP", None))
        .await
        .unwrap();
    assert_eq!(stop.intent, Some((Intent::OptOut, true)));
    assert!(db.is_opted_out(p.id, "+256772000001").await.unwrap());
    // Text that is not JSON, or JSON of another shape, cannot be read at all.
    for (text, expected) in [
        (
            "{\"quiet_hours_start\": ",
            SettingsError::NotJson {
                line: 1,
                column: 22,
            },
        ),
        ("[]", SettingsError::NotAnObject),
        (
            r#"{"quiet_hours_end": 7}"#,
            SettingsError::WrongShape {
                at: "quiet_hours_end".into(),
            },
        ),
    ] {
        t.store_messaging_settings_unchecked(p.id, text).await;
        let e = db.project_by_id(p.id).await.unwrap().messaging.unwrap_err();
        assert_eq!(e, expected, "{text}");
        // Every way of reading a project says so.
        let by_slug = db.project_by_slug("alpha").await.unwrap();
        assert_eq!(by_slug.messaging, Err(e), "{text}");
    }
    // Saving settings again mends them.
    db.set_messaging_settings(p.id, &MessagingSettings::default())
        .await
        .unwrap();
    assert_eq!(
        db.project_by_id(p.id).await.unwrap().messaging,
        Ok(MessagingSettings::default())
    );
}
