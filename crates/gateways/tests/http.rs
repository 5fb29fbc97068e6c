//! The generic HTTP gateway against a local fake aggregator: request shapes, placeholders and
//! their encoding, success rules, id extraction and the mapping of failures.

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

mod fake_http;

use casecast_core::sms::Encoding;
use casecast_core::PhoneNumber;
use casecast_gateways::http::{HttpConfig, HttpGateway, HttpMethod};
use casecast_gateways::{AddressPolicy, GatewayHttp, OutboundSms, SendError, SmsGateway};
use fake_http::{decode_form, field, FakeServer, Reply};

/// Swahili, Amharic, an accent, and the characters that break naive query strings.
const TEXT: &str = "Habari Amina: kliniki 10:00 — ክትባት é & a=b + 50% ? #1";

fn sms() -> OutboundSms {
    OutboundSms {
        message_id: 4711,
        to: PhoneNumber::parse("+256772123456", None).unwrap(),
        from: Some("CLINIC".to_string()),
        text: TEXT.to_string(),
        encoding: Encoding::Ucs2,
        segments: 1,
    }
}

fn config(url: String, method: HttpMethod) -> HttpConfig {
    HttpConfig {
        url,
        method,
        params: vec![
            ("username".to_string(), "casecast".to_string()),
            ("to".to_string(), "{to}".to_string()),
            ("msisdn".to_string(), "{to_digits}".to_string()),
            ("from".to_string(), "{from}".to_string()),
            ("message".to_string(), "{text}".to_string()),
            ("ref".to_string(), "cc-{id}".to_string()),
        ],
        success_status: (200, 299),
        success_contains: None,
        id_after: None,
        headers: vec![("X-Api-Key".to_string(), "k-123".to_string())],
    }
}

fn expected_params() -> Vec<(String, String)> {
    [
        ("username", "casecast"),
        ("to", "+256772123456"),
        ("msisdn", "256772123456"),
        ("from", "CLINIC"),
        ("message", TEXT),
        ("ref", "cc-4711"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
}

/// Checks what the gateway must encode: the `+` of the number, UTF-8, `&`, `=`, `%`, `#`.
fn assert_encoded(raw: &str) {
    assert!(raw.contains("to=%2B256772123456"), "{raw}");
    assert!(raw.contains("msisdn=256772123456"), "{raw}");
    assert!(raw.contains("%E1%8A%AD"), "Amharic as UTF-8: {raw}");
    assert!(raw.contains("%C3%A9"), "é as UTF-8: {raw}");
    assert!(raw.contains("%26") && raw.contains("a%3Db"), "{raw}");
    assert!(raw.contains("50%25") && raw.contains("%23"), "{raw}");
    assert!(!raw.contains('#') && !raw.contains(' '), "{raw}");
}

#[tokio::test]
async fn get_puts_the_expanded_params_in_the_query() {
    let fake = FakeServer::start(|_| Reply::text(200, "OK")).await;
    let gateway = HttpGateway::new(
        config(fake.url("/api/send?channel=sms"), HttpMethod::Get),
        fake_http::client(),
    );

    let accepted = gateway.send(&sms()).await.unwrap();

    assert_eq!(accepted.gateway_message_id, None);
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.path, "/api/send");
    assert!(request.body.is_empty());
    assert_eq!(request.header("x-api-key"), Some("k-123"));
    assert_encoded(&request.query);
    // The query already in the URL is kept, ahead of ours.
    let mut expected = vec![("channel".to_string(), "sms".to_string())];
    expected.extend(expected_params());
    assert_eq!(decode_form(&request.query), expected);
}

#[tokio::test]
async fn post_sends_the_expanded_params_as_a_form() {
    let fake = FakeServer::start(|_| Reply::text(200, "OK")).await;
    let gateway = HttpGateway::new(
        config(fake.url("/api/send"), HttpMethod::Post),
        fake_http::client(),
    );

    gateway.send(&sms()).await.unwrap();

    let request = &fake.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/api/send");
    assert_eq!(request.query, "");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(request.header("x-api-key"), Some("k-123"));
    assert_encoded(&request.body_text());
    assert_eq!(decode_form(&request.body_text()), expected_params());
}

#[tokio::test]
async fn placeholders_are_replaced_once_and_a_bare_from_is_left_out_without_sender() {
    let fake = FakeServer::start(|_| Reply::text(200, "OK")).await;
    let mut cfg = config(fake.url("/send"), HttpMethod::Post);
    cfg.params.push((
        "note".to_string(),
        "{id}:{to_digits}:{unknown}:{".to_string(),
    ));
    let gateway = HttpGateway::new(cfg, fake_http::client());
    let mut message = sms();
    message.from = None;
    // A placeholder written in the text is the text, not a placeholder.
    message.text = "Reply to {to} with {id}".to_string();

    gateway.send(&message).await.unwrap();

    let form = decode_form(&fake.requests()[0].body_text());
    assert_eq!(field(&form, "from"), None);
    assert_eq!(field(&form, "message"), Some("Reply to {to} with {id}"));
    assert_eq!(field(&form, "note"), Some("4711:256772123456:{unknown}:{"));
}

#[tokio::test]
async fn the_id_is_the_rest_of_the_line_after_the_prefix() {
    let fake = FakeServer::start(|_| {
        Reply::text(
            200,
            "Status: OK\r\nMessage-ID: ATXid_7f3c9a  \r\nCost: 0.8\r\n",
        )
    })
    .await;
    let mut cfg = config(fake.url("/send"), HttpMethod::Get);
    cfg.success_contains = Some("OK".to_string());
    cfg.id_after = Some("Message-ID:".to_string());
    let gateway = HttpGateway::new(cfg.clone(), fake_http::client());
    let accepted = gateway.send(&sms()).await.unwrap();
    assert_eq!(accepted.gateway_message_id.as_deref(), Some("ATXid_7f3c9a"));

    // A prefix the body does not have gives no id, and no failure.
    cfg.id_after = Some("MessageId=".to_string());
    let gateway = HttpGateway::new(cfg, fake_http::client());
    let accepted = gateway.send(&sms()).await.unwrap();
    assert_eq!(accepted.gateway_message_id, None);
}

#[tokio::test]
async fn a_success_status_without_the_expected_text_is_permanent_with_the_body_start() {
    let body = format!(
        "ERROR 102: insufficient credit for +256772123456 {}",
        "x".repeat(300)
    );
    let fake = FakeServer::start(move |_| Reply::text(200, &body)).await;
    let mut cfg = config(fake.url("/send"), HttpMethod::Post);
    cfg.success_contains = Some("ACCEPTED".to_string());
    let gateway = HttpGateway::new(cfg, fake_http::client());

    let err = gateway.send(&sms()).await.unwrap_err();

    let SendError::Permanent(message) = &err else {
        panic!("expected a permanent failure, got {err}");
    };
    assert!(
        message.contains("ERROR 102: insufficient credit"),
        "{message}"
    );
    assert!(
        !message.contains("256772123456"),
        "the number leaked: {message}"
    );
    // At most the first 200 characters of the body.
    assert!(message.contains(&"x".repeat(100)), "{message}");
    assert!(!message.contains(&"x".repeat(200)), "{message}");
}

#[tokio::test]
async fn the_success_range_is_configurable() {
    let fake = FakeServer::start(|request| {
        if request.path == "/queued" {
            Reply::text(202, "ACCEPTED")
        } else {
            Reply::text(200, "ACCEPTED")
        }
    })
    .await;
    let mut cfg = config(fake.url("/queued"), HttpMethod::Post);
    cfg.success_status = (202, 202);
    cfg.success_contains = Some("ACCEPTED".to_string());
    let only_202 = HttpGateway::new(cfg.clone(), fake_http::client());
    assert!(only_202.send(&sms()).await.is_ok());

    cfg.url = fake.url("/plain");
    let gateway = HttpGateway::new(cfg, fake_http::client());
    let err = gateway.send(&sms()).await.unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)), "{err}");
}

async fn failure_for(status: u16) -> SendError {
    let fake = FakeServer::start(move |_| Reply::text(status, "refused")).await;
    let gateway = HttpGateway::new(
        config(fake.url("/send"), HttpMethod::Post),
        fake_http::client(),
    );
    gateway.send(&sms()).await.unwrap_err()
}

#[tokio::test]
async fn a_4xx_is_permanent() {
    for status in [400, 401, 403, 404] {
        let err = failure_for(status).await;
        let SendError::Permanent(message) = &err else {
            panic!("{status}: expected a permanent failure, got {err}");
        };
        assert!(message.contains(&status.to_string()), "{message}");
        assert!(message.contains("refused"), "{message}");
    }
}

#[tokio::test]
async fn a_5xx_or_throttling_is_temporary() {
    for status in [429, 500, 502, 503] {
        let err = failure_for(status).await;
        assert!(matches!(err, SendError::Temporary(_)), "{status}: {err}");
    }
}

#[tokio::test]
async fn a_refused_connection_is_temporary_and_names_neither_number_nor_text() {
    let addr = fake_http::refused_addr().await;
    let gateway = HttpGateway::new(
        config(format!("http://{addr}/send"), HttpMethod::Get),
        fake_http::client(),
    );
    let err = gateway.send(&sms()).await.unwrap_err();
    let SendError::Temporary(message) = &err else {
        panic!("expected a temporary failure, got {err}");
    };
    assert!(!message.contains("256772123456"), "{message}");
    assert!(!message.contains("Habari"), "{message}");
}

#[tokio::test]
async fn a_bad_header_name_is_permanent() {
    let mut cfg = config("http://127.0.0.1:9/send".to_string(), HttpMethod::Get);
    cfg.headers = vec![("Bad Header".to_string(), "x".to_string())];
    let gateway = HttpGateway::new(cfg, fake_http::client());
    let err = gateway.send(&sms()).await.unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)), "{err}");
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    // A gateway answering with a redirect to another local service: the service is not asked.
    let internal = FakeServer::start(|_| Reply::text(200, "metrics: secret")).await;
    let target = internal.url("/metrics");
    let gateway_server = FakeServer::start(move |_| Reply::redirect(302, &target)).await;
    let gateway = HttpGateway::new(
        config(gateway_server.url("/send"), HttpMethod::Get),
        fake_http::client(),
    );
    let err = gateway.send(&sms()).await.unwrap_err();
    let SendError::Permanent(message) = &err else {
        panic!("expected a permanent failure, got {err}");
    };
    assert!(
        message
            .starts_with("the gateway answered with a redirect, which is not followed (HTTP 302)"),
        "{message}"
    );
    assert_eq!(gateway_server.requests().len(), 1);
    assert!(internal.requests().is_empty(), "the redirect was followed");
}

#[tokio::test]
async fn a_refused_address_is_never_asked() {
    let fake = FakeServer::start(|_| Reply::text(200, "OK")).await;
    let strict = GatewayHttp::new(AddressPolicy::default());
    // The address in the URL, and a name that resolves to loopback (checked as resolved).
    for url in [
        fake.url("/send"),
        format!("http://localhost:{}/send", fake.addr.port()),
    ] {
        let gateway = HttpGateway::new(config(url.clone(), HttpMethod::Get), strict.clone());
        let err = gateway.send(&sms()).await.unwrap_err();
        let SendError::Permanent(message) = &err else {
            panic!("{url}: expected a permanent failure, got {err}");
        };
        assert!(
            message.starts_with("the gateway's address is not allowed [detail: "),
            "{message}"
        );
        assert!(message.contains("loopback address"), "{message}");
        assert!(message.contains("--allow-gateway-host"), "{message}");
        assert_eq!(
            casecast_gateways::error_without_detail(message),
            "the gateway's address is not allowed"
        );
    }
    assert!(fake.requests().is_empty());
    // Allowing 127.0.0.1: `localhost` reaches its IPv4 address only (::1 is dropped).
    let allowed = GatewayHttp::new(AddressPolicy::allowing(["127.0.0.1".parse().unwrap()]));
    let url = format!("http://localhost:{}/send", fake.addr.port());
    let gateway = HttpGateway::new(config(url, HttpMethod::Get), allowed);
    gateway.send(&sms()).await.unwrap();
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn the_config_reads_from_json_with_defaults() {
    let cfg: HttpConfig = serde_json::from_value(serde_json::json!({
        "url": "http://sms.example/send",
        "method": "GET",
        "params": [["to", "{to}"], ["text", "{text}"]],
    }))
    .unwrap();
    assert_eq!(cfg.method, HttpMethod::Get);
    assert_eq!(cfg.success_status, (200, 299));
    assert_eq!(cfg.params[1], ("text".to_string(), "{text}".to_string()));
    assert!(cfg.headers.is_empty() && cfg.id_after.is_none());
}

/// A gateway that answers 200 and then streams its body for ever: only the start of it is read
/// (the server does not hold whatever a gateway sends), and the send ends on what it read,
/// without waiting for the end that never comes.
#[tokio::test]
async fn an_endless_answer_is_read_only_in_part() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 4096];
        let _ = socket.read(&mut head).await;
        socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let chunk = vec![b'x'; 8192];
        // Until the client goes away.
        while socket.write_all(&chunk).await.is_ok() {}
    });
    let mut cfg = config(url, HttpMethod::Get);
    cfg.success_contains = Some("ACCEPTED".to_string());
    let gateway = HttpGateway::new(cfg, fake_http::client());
    let err = gateway.send(&sms()).await.unwrap_err();
    // Not the client's timeout (temporary): the answer read, without the expected text.
    let SendError::Permanent(message) = &err else {
        panic!("expected a permanent failure on the answer's start, got {err}");
    };
    assert!(message.contains("xxxx"), "{message}");
}
