//! The Kannel gateway against a real bearerbox and smsbox (the testkit harness): what it sends
//! reaches the fake operator intact, delivery reports and inbound messages reach local listeners
//! and parse, and errors are sorted into permanent and temporary ones.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use casecast_core::sms::{analyse, Encoding};
use casecast_core::PhoneNumber;
use casecast_gateways::kannel::{mo_get_url, parse_dlr, parse_mo, KannelConfig, KannelGateway};
use casecast_gateways::{
    Accepted, DeliveryStatus, InboundSms, MessageRef, OutboundSms, SendError, SmsGateway,
};
use casecast_testkit::capture::Capture;
use casecast_testkit::kannel::{decode_ucs2, join_parts, FakeMt, Kannel, LineKind};

const WITHIN: Duration = Duration::from_secs(15);

/// Settings for the harness's Kannel with sender 1234.
fn config(kannel: &Kannel, dlr_url: &str) -> KannelConfig {
    KannelConfig {
        sendsms_url: kannel.sendsms_url.clone(),
        username: kannel.username.clone(),
        password: kannel.password.clone(),
        from: Some("1234".into()),
        dlr_url: dlr_url.into(),
        smsc: None,
    }
}

/// The gateways' client, allowed to reach loopback (where the harness's Kannel listens).
fn loopback_client() -> casecast_gateways::GatewayHttp {
    casecast_gateways::GatewayHttp::new(casecast_gateways::AddressPolicy::allowing_loopback())
}

fn gateway(kannel: &Kannel, dlr_url: &str) -> KannelGateway {
    KannelGateway::new(config(kannel, dlr_url), loopback_client())
}

fn sms(message_id: i64, text: &str) -> OutboundSms {
    let info = analyse(text);
    OutboundSms {
        message_id,
        to: PhoneNumber::parse("+256772123456", None).unwrap(),
        from: None,
        text: text.into(),
        encoding: info.encoding,
        segments: info.segments,
    }
}

/// The messages (and parts) the fake operator received, once exactly `n` arrived.
async fn received(kannel: &Kannel, n: usize) -> Vec<FakeMt> {
    let got = kannel.wait_for(n, WITHIN).await;
    assert_eq!(got.len(), n, "{got:#?}");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_the_operator_intact() {
    let capture = Capture::start();
    let kannel = Kannel::start(&format!("{}/mo", capture.base)).await;
    let gw = gateway(&kannel, &format!("{}/dlr", capture.base));

    // GSM-7, extension characters included.
    let gsm = "Visit on 12/05 at 09:00 {room 3} costs €0 - bring card #7";
    let message = sms(1, gsm);
    assert_eq!((message.encoding, message.segments), (Encoding::Gsm7, 1));
    assert_eq!(gw.send(&message).await.unwrap(), not_numbered());
    let got = received(&kannel, 1).await;
    assert_eq!(
        (
            got[0].sender.as_str(),
            got[0].receiver.as_str(),
            got[0].kind,
            got[0].text.as_str()
        ),
        ("1234", "+256772123456", LineKind::Text, gsm)
    );

    // UCS-2: `coding=2` keeps what GSM lacks; the message's own sender wins over the default.
    let unicode = "Habari 😀 Zoë";
    let mut message = sms(2, unicode);
    message.from = Some("5678".into());
    assert_eq!((message.encoding, message.segments), (Encoding::Ucs2, 1));
    gw.send(&message).await.unwrap();
    let got = received(&kannel, 2).await;
    assert_eq!(
        (got[1].sender.as_str(), got[1].kind, got[1].text.as_str()),
        ("5678", LineKind::Ucs2, unicode)
    );

    // 400 GSM characters: 3 parts with a concatenation header.
    let long: String = (0..400)
        .map(|i| char::from(b"abcdefghij klmnopqrstuvwxyz0123456789.,"[i % 39]))
        .collect();
    let message = sms(3, &long);
    assert_eq!(message.segments, 3);
    gw.send(&message).await.unwrap();
    let got = received(&kannel, 5).await;
    let parts = &got[2..];
    assert!(parts.iter().all(|p| p.kind == LineKind::Udh), "{parts:#?}");
    assert_eq!(String::from_utf8(join_parts(parts)).unwrap(), long);

    // Long UCS-2 splits into UTF-16BE parts.
    let long_unicode = "Asante sana 🙏 Zoë. ".repeat(6);
    let message = sms(4, &long_unicode);
    assert_eq!((message.encoding, message.segments), (Encoding::Ucs2, 2));
    gw.send(&message).await.unwrap();
    let got = received(&kannel, 7).await;
    assert_eq!(decode_ucs2(&join_parts(&got[5..])), long_unicode);
}

fn not_numbered() -> Accepted {
    Accepted {
        gateway_message_id: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_reports_reach_the_dlr_url_and_parse() {
    let capture = Capture::start();
    let kannel = Kannel::start(&format!("{}/mo", capture.base)).await;
    // A query of our own and a `%` escape: Kannel would read `%C` and `%A` as escape codes.
    let gw = gateway(
        &kannel,
        &format!("{}/hooks/kannel/7?token=caf%C3%A9", capture.base),
    );
    gw.send(&sms(4711, "With reports")).await.unwrap();
    let reports = capture.wait_for("/hooks/kannel/7", 2).await;
    let mut statuses = Vec::new();
    for query in &reports {
        assert!(query.starts_with("token=caf%C3%A9&id=4711&"), "{query}");
        let report = parse_dlr(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(report.message, MessageRef::Ours(4711), "{query}");
        statuses.push(report.status);
    }
    // The fake SMSC reports in either order.
    statuses.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(statuses, [DeliveryStatus::Delivered, DeliveryStatus::Sent]);
    assert_eq!(kannel.received()[0].text, "With reports");

    // A concatenated message gets one pair of reports, not one per part.
    gw.send(&sms(4712, &"x".repeat(400))).await.unwrap();
    kannel.wait_for(4, WITHIN).await;
    capture.wait_for("/hooks/kannel/7", 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reports = capture.wait_for("/hooks/kannel/7", 0).await;
    assert_eq!(reports.len(), 4, "{reports:#?}");
    let long: Vec<_> = reports
        .iter()
        .map(|q| parse_dlr(q).unwrap())
        .filter(|r| r.message == MessageRef::Ours(4712))
        .collect();
    assert_eq!(long.len(), 2, "{long:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mo_reaches_the_get_url_and_parses() {
    // The get-url as the harness writes it: `from=%p&to=%P&text=%a&id=%I`.
    let capture = Capture::start();
    let kannel = Kannel::start(&format!("{}/mo", capture.base)).await;
    kannel.send_mo("+256772123456", "1234", "STOP now").await;
    kannel
        .send_mo("256772123457", "1234", "Ndiyo 😀 & 100% Zoë")
        .await;
    let queries = capture.wait_for("/mo", 2).await;
    // smsbox forwards MO messages in parallel: they may arrive in either order.
    let mut mo: Vec<InboundSms> = queries.iter().map(|q| parse_mo(q).unwrap()).collect();
    mo.sort_by(|a, b| a.from.cmp(&b.from));
    assert_eq!(
        (mo[0].from.as_str(), mo[0].to.as_str(), mo[0].text.as_str()),
        ("+256772123456", "1234", "STOP now")
    );
    assert!(mo[0]
        .gateway_message_id
        .as_ref()
        .is_some_and(|id| id.len() == 36));
    // Digits with a country code read as E.164.
    assert_eq!(
        (mo[1].from.as_str(), mo[1].text.as_str()),
        ("+256772123457", "Ndiyo 😀 & 100% Zoë")
    );

    // The get-url we tell operators to use keeps the text as sent; `%a` would have joined
    // the words with single spaces. (The harness appends its own parameters after ours; the
    // first of each name counts.)
    let capture = Capture::start();
    let kannel = Kannel::start(&mo_get_url(&format!("{}/mo", capture.base))).await;
    let text = "Yes  please\nTwo lines, 😀 é";
    kannel.send_mo("+256772123456", "1234", text).await;
    kannel.send_mo("0772123456", "1234", "ok").await;
    let queries = capture.wait_for("/mo", 2).await;
    // smsbox forwards MO messages in parallel: they may arrive in either order.
    let mut mo: Vec<InboundSms> = queries.iter().map(|q| parse_mo(q).unwrap()).collect();
    mo.sort_by(|a, b| a.from.cmp(&b.from));
    assert_eq!(
        (mo[0].from.as_str(), mo[0].to.as_str(), mo[0].text.as_str()),
        ("+256772123456", "1234", text)
    );
    // A national number stays as the operator wrote it.
    assert_eq!(
        (mo[1].from.as_str(), mo[1].text.as_str()),
        ("0772123456", "ok")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_permanent_and_a_stopped_kannel_temporary() {
    let kannel = Kannel::start("http://127.0.0.1:9/mo").await;
    let message = sms(9, "Hello");

    let mut settings = config(&kannel, "http://127.0.0.1:9/dlr");
    settings.password = "wrong".into();
    let wrong = KannelGateway::new(settings, loopback_client());
    match wrong.send(&message).await {
        Err(SendError::Permanent(why)) => assert!(why.contains("bad credentials"), "{why}"),
        other => panic!("{other:?}"),
    }

    // No sender anywhere: Kannel answers 400 with its reason.
    let mut settings = config(&kannel, "http://127.0.0.1:9/dlr");
    settings.from = None;
    let unnamed = KannelGateway::new(settings, loopback_client());
    match unnamed.send(&message).await {
        Err(SendError::Permanent(why)) => assert!(why.contains("Sender missing"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(kannel.received().is_empty());

    let gw = gateway(&kannel, "http://127.0.0.1:9/dlr");
    drop(kannel);
    match gw.send(&message).await {
        Err(SendError::Temporary(why)) => {
            assert!(why.contains("could not be reached"), "{why}");
            // The URL (with the password, number and text) stays out of the error.
            assert!(
                !why.contains("password") && !why.contains("256772"),
                "{why}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn parse_dlr_reads_each_kannel_type() {
    let cases = [
        (1, DeliveryStatus::Delivered),
        (2, DeliveryStatus::Failed),
        (4, DeliveryStatus::Pending),
        (8, DeliveryStatus::Sent),
        (16, DeliveryStatus::Failed),
    ];
    for (code, status) in cases {
        let report = parse_dlr(&format!("id=12&status={code}&answer=")).unwrap();
        assert_eq!(
            (report.message, report.status),
            (MessageRef::Ours(12), status)
        );
    }
    let report = parse_dlr("?id=+12+&status=8&answer=ACK%2F").unwrap();
    assert_eq!(report.message, MessageRef::Ours(12));
    assert_eq!(report.detail, "8 accepted by the SMSC: ACK/");
    let report = parse_dlr("status=1&id=3").unwrap();
    assert_eq!(report.detail, "1 delivered to the phone");
}

#[test]
fn parse_dlr_refuses_what_kannel_would_not_send() {
    for (query, why) in [
        ("status=8&answer=ACK", "no id"),
        ("id=&status=8", "no id"),
        ("id=abc&status=8", "not a message id"),
        ("id=1.5&status=8", "not a message id"),
        ("id=12", "no status"),
        ("id=12&status=delivered", "not a Kannel DLR type"),
        // An escape code Kannel did not fill in.
        ("id=12&status=%d", "not a Kannel DLR type"),
        ("id=12&status=3", "not a Kannel DLR type"),
        ("id=12&status=300", "not a Kannel DLR type"),
        ("", "no id"),
    ] {
        match parse_dlr(query) {
            Err(e) => assert!(e.to_string().contains(why), "{query}: {e}"),
            Ok(r) => panic!("{query}: {r:?}"),
        }
    }
}

#[test]
fn parse_mo_decodes_the_text() {
    let mo = parse_mo(
        "from=%2B256772123456&to=1234&text=Zo%C3%AB+%F0%9F%98%80+1%2B1%3D2+%26+100%25&id=ab-1",
    )
    .unwrap();
    assert_eq!(
        mo,
        InboundSms {
            from: "+256772123456".into(),
            to: "1234".into(),
            text: "Zoë 😀 1+1=2 & 100%".into(),
            gateway_message_id: Some("ab-1".into()),
        }
    );
    // `%b` with `%c`/`%C`: UTF-8 after mo-recode, UTF-16BE or Latin-1 when smsbox leaves it.
    let mo = parse_mo("from=MTN&to=1234&text=a++b%0Ac&coding=0&charset=UTF-8").unwrap();
    assert_eq!((mo.from.as_str(), mo.text.as_str()), ("MTN", "a  b\nc"));
    let mo =
        parse_mo("from=1&to=2&text=%00Z%00o%00%EB%D8%3D%DE%00&coding=2&charset=UTF-16BE").unwrap();
    assert_eq!(mo.text, "Zoë😀");
    let mo = parse_mo("from=1&to=2&text=%00h%00i&coding=2").unwrap();
    assert_eq!(mo.text, "hi");
    let mo = parse_mo("from=1&to=2&text=Zo%EB&coding=0&charset=ISO-8859-1").unwrap();
    assert_eq!(mo.text, "Zoë");
    // Invalid UTF-8 is kept, marked, rather than the message lost.
    let mo = parse_mo("from=1&to=2&text=Zo%EB").unwrap();
    assert_eq!(mo.text, "Zo\u{fffd}");
    // An empty SMS is a message; an empty id is none.
    let mo = parse_mo("from=1234567&to=2&text=&id=").unwrap();
    assert_eq!((mo.text.as_str(), mo.gateway_message_id), ("", None));
    // A malformed escape stays as it is.
    assert_eq!(
        parse_mo("from=1&to=2&text=100%+%zz%4").unwrap().text,
        "100% %zz%4"
    );
}

#[test]
fn parse_mo_refuses_incomplete_callbacks() {
    for (query, why) in [
        ("to=1234&text=hi", "no sender"),
        ("from=&to=1234&text=hi", "no sender"),
        ("from=%2B256772123456&text=hi", "no receiver"),
        ("from=%2B256772123456&to=1234", "no text"),
    ] {
        match parse_mo(query) {
            Err(e) => assert!(e.to_string().contains(why), "{query}: {e}"),
            Ok(m) => panic!("{query}: {m:?}"),
        }
    }
}
