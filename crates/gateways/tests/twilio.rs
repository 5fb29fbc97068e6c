//! The Twilio gateway against a local fake of Twilio's Messages API (path, Basic auth, form
//! fields and answers as Twilio documents them), and its signature and webhook parsers.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

mod fake_http;

use casecast_core::sms::Encoding;
use casecast_core::PhoneNumber;
use casecast_gateways::twilio::{
    parse_inbound, parse_status_callback, signature, verify_signature, TwilioConfig, TwilioGateway,
    DEFAULT_API_BASE,
};
use casecast_gateways::{
    CallbackError, DeliveryReport, DeliveryStatus, InboundSms, MessageRef, OutboundSms, SendError,
    SmsGateway,
};
use fake_http::{decode_form, field, FakeServer, Recorded, Reply};
use serde_json::json;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-token-4711";
/// `Basic base64("AC0123456789abcdef0123456789abcdef:test-token-4711")`, worked out separately.
const BASIC_AUTH: &str =
    "Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjp0ZXN0LXRva2VuLTQ3MTE=";
const MESSAGE_SID: &str = "SM1f0e8ae6ade43cb3c0ce4525424e404f";
const CALLBACK: &str = "https://casecast.example/hooks/twilio/7/status";
/// The number the fake, like Twilio, says is not a valid phone number.
const INVALID: &str = "+256700000001";

/// How the fake answers a well-formed request.
#[derive(Clone, Copy)]
enum Mode {
    Normal,
    Status(u16),
}

fn twilio_error(status: u16, code: u32, message: &str) -> Reply {
    Reply::json(
        status,
        json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}

/// Twilio's Messages resource as documented: a 201 with the new Message, or Twilio's error JSON.
fn fake_twilio(mode: Mode) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |request| {
        let expected_path = format!("/2010-04-01/Accounts/{SID}/Messages.json");
        if request.method != "POST" || request.path != expected_path {
            return twilio_error(404, 20404, "The requested resource was not found");
        }
        if request.header("authorization") != Some(BASIC_AUTH) {
            return twilio_error(401, 20003, "Authenticate");
        }
        match mode {
            Mode::Status(429) => return twilio_error(429, 20429, "Too Many Requests"),
            Mode::Status(status) => return twilio_error(status, 20500, "Internal Server Error"),
            Mode::Normal => {}
        }
        let form = decode_form(&request.body_text());
        let Some(to) = field(&form, "To") else {
            return twilio_error(400, 21604, "A 'To' phone number is required.");
        };
        if field(&form, "From").is_none() && field(&form, "MessagingServiceSid").is_none() {
            return twilio_error(
                400,
                21603,
                "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
            );
        }
        let Some(body) = field(&form, "Body") else {
            return twilio_error(400, 21602, "Message body is required.");
        };
        if to == INVALID {
            return twilio_error(
                400,
                21211,
                &format!("The 'To' number {to} is not a valid phone number."),
            );
        }
        let service = field(&form, "MessagingServiceSid");
        Reply::json(
            201,
            json!({
                "account_sid": SID,
                "api_version": "2010-04-01",
                "body": body,
                "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
                "date_sent": null,
                "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
                "direction": "outbound-api",
                "error_code": null,
                "error_message": null,
                "from": field(&form, "From"),
                "messaging_service_sid": service,
                "num_media": "0",
                "num_segments": if service.is_some() { "0" } else { "1" },
                "price": null,
                "price_unit": "USD",
                "sid": MESSAGE_SID,
                "status": if service.is_some() { "accepted" } else { "queued" },
                "subresource_uris": {
                    "media": format!("/2010-04-01/Accounts/{SID}/Messages/{MESSAGE_SID}/Media.json"),
                },
                "to": to,
                "uri": format!("/2010-04-01/Accounts/{SID}/Messages/{MESSAGE_SID}.json"),
            }),
        )
    }
}

fn config(api_base: String) -> TwilioConfig {
    TwilioConfig {
        account_sid: SID.to_string(),
        auth_token: TOKEN.to_string(),
        from: Some("+15005550006".to_string()),
        messaging_service_sid: None,
        api_base,
        status_callback: Some(CALLBACK.to_string()),
    }
}

fn sms(to: &str, text: &str) -> OutboundSms {
    OutboundSms {
        message_id: 42,
        to: PhoneNumber::parse(to, None).unwrap(),
        from: None,
        text: text.to_string(),
        encoding: Encoding::Ucs2,
        segments: 1,
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn a_message_is_posted_as_twilio_documents_and_its_sid_kept() {
    let fake = FakeServer::start(fake_twilio(Mode::Normal)).await;
    let gateway = TwilioGateway::new(config(fake.url("")), fake_http::client());
    let text = "Habari Amina: kliniki kesho 10:00 & lete kadi — ክትባት";

    let accepted = gateway.send(&sms("+256772123456", text)).await.unwrap();

    assert_eq!(accepted.gateway_message_id.as_deref(), Some(MESSAGE_SID));
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.path,
        format!("/2010-04-01/Accounts/{SID}/Messages.json")
    );
    assert_eq!(request.header("authorization"), Some(BASIC_AUTH));
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form = decode_form(&request.body_text());
    assert_eq!(field(&form, "To"), Some("+256772123456"));
    assert_eq!(field(&form, "From"), Some("+15005550006"));
    assert_eq!(field(&form, "Body"), Some(text));
    // Our message id rides in the callback URL.
    assert_eq!(
        field(&form, "StatusCallback"),
        Some(format!("{CALLBACK}?id=42").as_str())
    );
    assert_eq!(field(&form, "MessagingServiceSid"), None);
    // The `+` of the number must arrive encoded, or Twilio would read a space.
    assert!(request.body_text().contains("To=%2B256772123456"));
}

#[tokio::test]
async fn a_messaging_service_replaces_from_and_a_message_sender_wins() {
    let fake = FakeServer::start(fake_twilio(Mode::Normal)).await;
    let mut cfg = config(fake.url("/"));
    cfg.from = None;
    cfg.messaging_service_sid = Some("MG9752274e9e519418a7406176694466fa".to_string());
    cfg.status_callback = None;
    let gateway = TwilioGateway::new(cfg, fake_http::client());
    gateway
        .send(&sms("+256772123456", "Reminder"))
        .await
        .unwrap();
    let mut with_sender = sms("+256772123456", "Reminder");
    with_sender.from = Some("CLINIC".to_string());
    gateway.send(&with_sender).await.unwrap();

    let seen = fake.requests();
    let first = decode_form(&seen[0].body_text());
    assert_eq!(
        field(&first, "MessagingServiceSid"),
        Some("MG9752274e9e519418a7406176694466fa")
    );
    assert_eq!(field(&first, "From"), None);
    assert_eq!(field(&first, "StatusCallback"), None);
    let second = decode_form(&seen[1].body_text());
    assert_eq!(field(&second, "From"), Some("CLINIC"));
}

#[tokio::test]
async fn without_any_sender_nothing_is_sent() {
    let fake = FakeServer::start(fake_twilio(Mode::Normal)).await;
    let mut cfg = config(fake.url(""));
    cfg.from = None;
    let gateway = TwilioGateway::new(cfg, fake_http::client());
    let err = gateway
        .send(&sms("+256772123456", "Reminder"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)), "{err}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_400_is_permanent_with_twilios_message_and_code_and_the_number_masked() {
    let fake = FakeServer::start(fake_twilio(Mode::Normal)).await;
    let gateway = TwilioGateway::new(config(fake.url("")), fake_http::client());
    let err = gateway.send(&sms(INVALID, "Reminder")).await.unwrap_err();
    let SendError::Permanent(message) = &err else {
        panic!("expected a permanent failure, got {err}");
    };
    assert!(message.contains("21211"), "{message}");
    assert!(message.contains("is not a valid phone number"), "{message}");
    assert!(message.contains("400"), "{message}");
    assert!(
        !message.contains(INVALID),
        "the full number leaked: {message}"
    );
    assert!(
        !message.contains(&INVALID[1..]),
        "the full number leaked: {message}"
    );
}

#[tokio::test]
async fn wrong_credentials_are_permanent() {
    let fake = FakeServer::start(fake_twilio(Mode::Normal)).await;
    let mut cfg = config(fake.url(""));
    cfg.auth_token = "not-the-token".to_string();
    let gateway = TwilioGateway::new(cfg, fake_http::client());
    let err = gateway
        .send(&sms("+256772123456", "Reminder"))
        .await
        .unwrap_err();
    let SendError::Permanent(message) = &err else {
        panic!("expected a permanent failure, got {err}");
    };
    assert!(message.contains("20003"), "{message}");
}

#[tokio::test]
async fn a_503_is_temporary() {
    let fake = FakeServer::start(fake_twilio(Mode::Status(503))).await;
    let gateway = TwilioGateway::new(config(fake.url("")), fake_http::client());
    let err = gateway
        .send(&sms("+256772123456", "Reminder"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Temporary(_)), "{err}");
}

#[tokio::test]
async fn throttling_is_temporary() {
    let fake = FakeServer::start(fake_twilio(Mode::Status(429))).await;
    let gateway = TwilioGateway::new(config(fake.url("")), fake_http::client());
    let err = gateway
        .send(&sms("+256772123456", "Reminder"))
        .await
        .unwrap_err();
    let SendError::Temporary(message) = &err else {
        panic!("expected a temporary failure, got {err}");
    };
    assert!(message.contains("20429"), "{message}");
}

#[tokio::test]
async fn a_refused_connection_is_temporary() {
    let addr = fake_http::refused_addr().await;
    let gateway = TwilioGateway::new(config(format!("http://{addr}")), fake_http::client());
    let err = gateway
        .send(&sms("+256772123456", "Reminder"))
        .await
        .unwrap_err();
    let SendError::Temporary(message) = &err else {
        panic!("expected a temporary failure, got {err}");
    };
    assert!(
        !message.contains(SID),
        "the URL should be left out: {message}"
    );
}

/// Twilio's API is HTTPS only: the client speaks TLS (a ClientHello reaches the server), and a
/// server that hangs up mid-handshake is a temporary failure.
#[tokio::test]
async fn https_is_spoken_to_the_api() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut first = [0u8; 3];
        socket.read_exact(&mut first).await.unwrap();
        first
    });
    let gateway = TwilioGateway::new(config(format!("https://{addr}")), fake_http::client());
    let err = gateway
        .send(&sms("+256772123456", "Reminder"))
        .await
        .unwrap_err();
    // A TLS record of type handshake (22), version 3.x.
    assert_eq!(server.await.unwrap()[..2], [0x16, 0x03]);
    assert!(matches!(err, SendError::Temporary(_)), "{err}");
}

#[test]
fn the_config_reads_with_defaults_and_hides_the_token_in_debug() {
    let cfg: TwilioConfig =
        serde_json::from_value(json!({"account_sid": SID, "auth_token": TOKEN})).unwrap();
    assert_eq!(cfg.api_base, DEFAULT_API_BASE);
    assert_eq!(cfg.from, None);
    assert!(!format!("{cfg:?}").contains(TOKEN));
}

// Twilio's documented example ("Validating signatures from Twilio",
// https://www.twilio.com/docs/usage/security#validating-requests), with auth token `12345`:
//   URL     https://mycompany.com/myapp.php?foo=1&bar=2
//   POST    CallSid=CA1234567890ABCDE, Caller=+12349013030, Digits=1234,
//           From=+12349013030, To=+18005551212
//   signed  https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+12349013030Digits1234From+12349013030To+18005551212
//   result  0/KCTR6DLpKmkAf8muzZqo1nDgQ=
const DOC_TOKEN: &str = "12345";
const DOC_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
const DOC_SIGNATURE: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

fn doc_params() -> Vec<(String, String)> {
    // Not in sorted order, as a form may arrive: the signature sorts them.
    pairs(&[
        ("To", "+18005551212"),
        ("Digits", "1234"),
        ("CallSid", "CA1234567890ABCDE"),
        ("From", "+12349013030"),
        ("Caller", "+12349013030"),
    ])
}

#[test]
fn the_documented_example_reproduces_the_documented_signature() {
    assert_eq!(signature(DOC_TOKEN, DOC_URL, &doc_params()), DOC_SIGNATURE);
    assert!(verify_signature(
        DOC_TOKEN,
        DOC_URL,
        &doc_params(),
        DOC_SIGNATURE
    ));
}

#[test]
fn a_changed_parameter_url_token_or_header_fails() {
    let mut changed = doc_params();
    changed[1].1 = "9999".to_string();
    assert!(!verify_signature(
        DOC_TOKEN,
        DOC_URL,
        &changed,
        DOC_SIGNATURE
    ));

    let mut extra = doc_params();
    extra.push(("Body".to_string(), "hello".to_string()));
    assert!(!verify_signature(DOC_TOKEN, DOC_URL, &extra, DOC_SIGNATURE));

    let other_url = "https://mycompany.com/myapp.php?foo=1&bar=3";
    assert!(!verify_signature(
        DOC_TOKEN,
        other_url,
        &doc_params(),
        DOC_SIGNATURE
    ));
    assert!(!verify_signature(
        "54321",
        DOC_URL,
        &doc_params(),
        DOC_SIGNATURE
    ));
    assert!(!verify_signature(DOC_TOKEN, DOC_URL, &doc_params(), ""));
    assert!(!verify_signature(
        DOC_TOKEN,
        DOC_URL,
        &doc_params(),
        "not base64!"
    ));
    // One byte short of the real one.
    let short = signature(DOC_TOKEN, DOC_URL, &doc_params()).replace("gQ=", "g==");
    assert!(!verify_signature(DOC_TOKEN, DOC_URL, &doc_params(), &short));
}

#[test]
fn a_status_callback_signed_for_our_url_verifies() {
    let params = pairs(&[
        ("MessageSid", MESSAGE_SID),
        ("MessageStatus", "delivered"),
        ("AccountSid", SID),
    ]);
    let header = signature(TOKEN, CALLBACK, &params);
    assert!(verify_signature(TOKEN, CALLBACK, &params, &header));
    assert!(!verify_signature(
        TOKEN,
        "https://casecast.example/hooks/twilio/8/status",
        &params,
        &header
    ));
}

fn callback(status: &str, error_code: Option<&str>) -> Vec<(String, String)> {
    let mut list = vec![
        ("AccountSid", SID),
        ("ApiVersion", "2010-04-01"),
        ("From", "+15005550006"),
        ("MessageSid", MESSAGE_SID),
        ("MessageStatus", status),
        ("SmsSid", MESSAGE_SID),
        ("SmsStatus", status),
        ("To", "+256772123456"),
    ];
    if let Some(code) = error_code {
        list.push(("ErrorCode", code));
    }
    pairs(&list)
}

fn report(status: DeliveryStatus, detail: &str) -> DeliveryReport {
    DeliveryReport {
        message: MessageRef::Gateway(MESSAGE_SID.to_string()),
        status,
        detail: detail.to_string(),
    }
}

#[test]
fn each_status_callback_maps_to_a_delivery_status() {
    for (twilio, ours) in [
        ("queued", DeliveryStatus::Pending),
        ("accepted", DeliveryStatus::Pending),
        ("scheduled", DeliveryStatus::Pending),
        ("sending", DeliveryStatus::Pending),
        ("sent", DeliveryStatus::Sent),
        ("delivered", DeliveryStatus::Delivered),
        ("read", DeliveryStatus::Delivered),
        ("undelivered", DeliveryStatus::Failed),
        ("failed", DeliveryStatus::Failed),
        ("canceled", DeliveryStatus::Failed),
        ("some_new_status", DeliveryStatus::Pending),
    ] {
        assert_eq!(
            parse_status_callback(&callback(twilio, None)),
            Ok(report(ours, twilio)),
            "{twilio}"
        );
    }
}

#[test]
fn a_failed_callback_carries_its_error_code() {
    assert_eq!(
        parse_status_callback(&callback("undelivered", Some("30003"))),
        Ok(report(DeliveryStatus::Failed, "undelivered (error 30003)"))
    );
    assert_eq!(
        parse_status_callback(&callback("failed", Some("30008"))),
        Ok(report(DeliveryStatus::Failed, "failed (error 30008)"))
    );
    // Twilio sends an empty ErrorCode when there is none.
    assert_eq!(
        parse_status_callback(&callback("delivered", Some(""))),
        Ok(report(DeliveryStatus::Delivered, "delivered"))
    );
}

#[test]
fn a_callback_without_sid_or_status_is_refused() {
    let no_sid = pairs(&[("MessageStatus", "delivered")]);
    assert_eq!(
        parse_status_callback(&no_sid),
        Err(CallbackError::TwilioWithout("MessageSid"))
    );
    let no_status = pairs(&[("MessageSid", MESSAGE_SID)]);
    let e = parse_status_callback(&no_status).unwrap_err();
    assert_eq!(e, CallbackError::TwilioWithout("MessageStatus"));
    assert_eq!(e.to_string(), "the Twilio request has no MessageStatus");
    // The older names alone still do.
    let old = pairs(&[("SmsSid", MESSAGE_SID), ("SmsStatus", "sent")]);
    assert_eq!(
        parse_status_callback(&old),
        Ok(report(DeliveryStatus::Sent, "sent"))
    );
}

#[test]
fn an_inbound_message_is_read() {
    let params = pairs(&[
        ("ToCountry", "UG"),
        ("SmsMessageSid", "SM3c0a6e1b6f3d4b9a8e2d1c0b9a8f7e6d"),
        ("NumMedia", "0"),
        ("SmsSid", "SM3c0a6e1b6f3d4b9a8e2d1c0b9a8f7e6d"),
        ("SmsStatus", "received"),
        ("Body", "NDIYO 2 — asante"),
        ("To", "+256312000000"),
        ("NumSegments", "1"),
        ("MessageSid", "SM3c0a6e1b6f3d4b9a8e2d1c0b9a8f7e6d"),
        ("AccountSid", SID),
        ("From", "+256772123456"),
        ("ApiVersion", "2010-04-01"),
    ]);
    assert_eq!(
        parse_inbound(&params),
        Ok(InboundSms {
            from: "+256772123456".to_string(),
            to: "+256312000000".to_string(),
            text: "NDIYO 2 — asante".to_string(),
            gateway_message_id: Some("SM3c0a6e1b6f3d4b9a8e2d1c0b9a8f7e6d".to_string()),
        })
    );
}

#[test]
fn an_inbound_message_needs_from_to_and_body() {
    let full = [
        ("From", "+256772123456"),
        ("To", "+256312000000"),
        ("Body", ""),
    ];
    let empty_body = parse_inbound(&pairs(&full)).unwrap();
    assert_eq!(empty_body.text, "");
    assert_eq!(empty_body.gateway_message_id, None);
    for missing in ["From", "To", "Body"] {
        let without: Vec<_> = full
            .iter()
            .copied()
            .filter(|(n, _)| *n != missing)
            .collect();
        assert_eq!(
            parse_inbound(&pairs(&without)),
            Err(CallbackError::TwilioWithout(missing)),
            "{missing}"
        );
    }
}
