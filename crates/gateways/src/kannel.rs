//! The Kannel gateway: each message is a GET to smsbox's `sendsms`, whose `dlr-url` carries our
//! message id back in delivery reports; inbound messages arrive on an `sms-service` get-url.

use std::time::Duration;

pub use casecast_core::gateway::config::KannelConfig;
use casecast_core::sms::Encoding;
use casecast_core::PhoneNumber;

use crate::http::{refused_error, request_error};
use crate::outbound::GatewayHttp;
use crate::{
    error_text, Accepted, CallbackError, DeliveryReport, DeliveryStatus, InboundSms, MessageRef,
    OutboundSms, SendError, SmsGateway,
};

/// What errors call this kind of gateway.
const WHO: &str = "Kannel";

/// How long one `sendsms` call may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Every report Kannel can make: delivered, undeliverable, queued on the SMSC, accepted by the
/// SMSC, rejected by the SMSC.
const DLR_MASK: &str = "31";

/// Kannel's answers are one short line; longer bodies are cut to this many characters.
const MAX_BODY: usize = 200;

/// A Kannel smsbox that takes messages over its HTTP `sendsms` interface.
#[derive(Clone, Debug)]
pub struct KannelGateway {
    config: KannelConfig,
    http: GatewayHttp,
}

impl KannelGateway {
    /// A gateway for `config`, sending with `http` (shared, for its connection pool).
    pub fn new(config: KannelConfig, http: GatewayHttp) -> Self {
        KannelGateway { config, http }
    }

    /// The dlr-url Kannel stores with the message: ours plus the escape codes Kannel fills in.
    fn dlr_url(&self, message_id: i64) -> String {
        // Kannel reads every `%` of the URL as an escape code (`%C3%A9` would become the
        // charset and the report text): `%%` is its escape for a plain `%`.
        let base = self.config.dlr_url.replace('%', "%%");
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}id={message_id}&status=%d&answer=%A")
    }
}

impl SmsGateway for KannelGateway {
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, SendError> {
        let dlr_url = self.dlr_url(sms.message_id);
        let mut query: Vec<(&str, &str)> = vec![
            ("username", &self.config.username),
            ("password", &self.config.password),
            ("to", sms.to.as_str()),
            ("text", &sms.text),
            ("charset", "UTF-8"),
            ("dlr-mask", DLR_MASK),
            ("dlr-url", &dlr_url),
        ];
        if let Some(from) = sms.from.as_deref().or(self.config.from.as_deref()) {
            query.push(("from", from));
        }
        // Without `coding=2` Kannel sends 7-bit text and turns every character GSM lacks into `?`.
        if sms.encoding == Encoding::Ucs2 {
            query.push(("coding", "2"));
        }
        if let Some(smsc) = self.config.smsc.as_deref() {
            query.push(("smsc", smsc));
        }
        let to = sms.to.masked();
        if let Err(refused) = self.http.check(&self.config.sendsms_url) {
            let error = refused_error(WHO, &refused);
            tracing::warn!(message.id = sms.message_id, to = %to, error = %error, "kannel: address refused");
            return Err(error);
        }
        let result = self
            .http
            .client()
            .get(&self.config.sendsms_url)
            .query(&query)
            .timeout(TIMEOUT)
            .send()
            .await;
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                let error = request_error(WHO, e);
                tracing::warn!(message.id = sms.message_id, to = %to, error = %error, "kannel: sendsms failed");
                return Err(error);
            }
        };
        let status = response.status();
        // The body only explains the status: a body that cannot be read changes nothing.
        let body = crate::outbound::answer_text(response).await;
        let body = shorten(body.trim());
        match classify(status.as_u16(), &body) {
            Ok(accepted) => {
                tracing::info!(message.id = sms.message_id, to = %to, segments = sms.segments, "kannel: message accepted");
                Ok(accepted)
            }
            Err(error) => {
                tracing::warn!(message.id = sms.message_id, to = %to, status = status.as_u16(), error = %error, "kannel: message not accepted");
                Err(error)
            }
        }
    }
}

/// What an answer of sendsms means; `body` is the detail of an error.
fn classify(status: u16, body: &str) -> Result<Accepted, SendError> {
    let error = |category: &str| error_text(&format!("{category} (HTTP {status})"), body);
    match status {
        // `0: Accepted for delivery`, or `3: Queued for later delivery` while no operator is
        // connected (sent on reconnect). Kannel gives no id: ours travels in the dlr-url.
        200..=299 => Ok(Accepted {
            gateway_message_id: None,
        }),
        403 => Err(SendError::Permanent(error(
            "Kannel refused the request: bad credentials, or a number its lists deny",
        ))),
        408 | 429 => Err(SendError::Temporary(error("Kannel is busy"))),
        300..=399 => Err(SendError::Permanent(error(
            "Kannel answered with a redirect, which is not followed",
        ))),
        400..=499 => Err(SendError::Permanent(error("Kannel refused the message"))),
        _ => Err(SendError::Temporary(error(
            "Kannel could not take the message",
        ))),
    }
}

/// The first characters of a text, marked when cut.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_BODY) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// The parameters of a callback's query string, decoded to bytes: an MO text is UTF-16BE when
/// smsbox does not recode it.
struct Params(Vec<(String, Vec<u8>)>);

impl Params {
    /// Splits and decodes a query string (with or without its leading `?`).
    fn parse(query: &str) -> Params {
        let query = query.strip_prefix('?').unwrap_or(query);
        let pairs = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                let name = String::from_utf8_lossy(&url_decode(name)).into_owned();
                (name, url_decode(value))
            })
            .collect();
        Params(pairs)
    }

    /// The bytes of the first parameter `name`.
    fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first parameter `name` as text, trimmed.
    fn text(&self, name: &str) -> Option<String> {
        self.bytes(name)
            .map(|v| String::from_utf8_lossy(v).trim().to_string())
    }

    /// Like [`Params::text`], `None` when empty.
    fn non_empty(&self, name: &str) -> Option<String> {
        self.text(name).filter(|v| !v.is_empty())
    }
}

/// Decodes `%XX` and `+` (a space), as Kannel encodes; a malformed escape stays as it is.
fn url_decode(s: &str) -> Vec<u8> {
    // A `+` that was sent as data arrives as `%2B`, so spaces can be put back first.
    percent_encoding::percent_decode_str(&s.replace('+', " ")).collect()
}

/// Reads a delivery report from the dlr-url callback's query string (`id`, `status`, `answer`).
pub fn parse_dlr(query: &str) -> Result<DeliveryReport, CallbackError> {
    let params = Params::parse(query);
    let id = params
        .non_empty("id")
        .ok_or(CallbackError::ReportWithout("id"))?;
    let id: i64 = id.parse().map_err(|_| CallbackError::NotAMessageId(id))?;
    let code = params
        .non_empty("status")
        .ok_or(CallbackError::ReportWithout("status"))?;
    let code: u8 = code
        .parse()
        .map_err(|_| CallbackError::StatusNotANumber(code))?;
    // Kannel reports one dlr-mask bit at a time.
    let (status, meaning) = match code {
        1 => (DeliveryStatus::Delivered, "delivered to the phone"),
        2 => (DeliveryStatus::Failed, "undeliverable"),
        4 => (DeliveryStatus::Pending, "queued on the SMSC"),
        8 => (DeliveryStatus::Sent, "accepted by the SMSC"),
        16 => (DeliveryStatus::Failed, "rejected by the SMSC"),
        other => return Err(CallbackError::UnknownDlrType(other)),
    };
    let detail = match params.non_empty("answer") {
        Some(answer) => format!("{code} {meaning}: {}", shorten(&answer)),
        None => format!("{code} {meaning}"),
    };
    Ok(DeliveryReport {
        message: MessageRef::Ours(id),
        status,
        detail,
    })
}

/// Reads an inbound (MO) message from smsbox's get-url callback ([`mo_get_url`], or the shorter
/// `from=%p&to=%P&text=%a&id=%I`).
pub fn parse_mo(query: &str) -> Result<InboundSms, CallbackError> {
    let params = Params::parse(query);
    let from = params.non_empty("from").ok_or(CallbackError::NoSender)?;
    let to = params.non_empty("to").ok_or(CallbackError::NoReceiver)?;
    // An empty text is a real (empty) SMS; a missing one means the get-url lacks `text=`.
    let text = params.bytes("text").ok_or(CallbackError::NoText)?;
    let text = decode_text(
        text,
        params.text("coding").as_deref(),
        params.text("charset").as_deref(),
    );
    // Operators write senders in many forms: E.164 when it reads as an international number,
    // otherwise (short codes, national numbers, names) as written.
    let from = match PhoneNumber::parse(&from, None) {
        Ok(number) => number.as_str().to_string(),
        Err(_) => from,
    };
    Ok(InboundSms {
        from,
        to,
        text,
        gateway_message_id: params.non_empty("id"),
    })
}

/// An MO text from its bytes in the charset smsbox named (`%C`): UTF-8 when it recodes
/// (`mo-recode = true`), UTF-16BE for UCS-2 it leaves as it came.
fn decode_text(bytes: &[u8], coding: Option<&str>, charset: Option<&str>) -> String {
    let charset = charset.unwrap_or("").to_ascii_uppercase();
    match charset.as_str() {
        "UTF-16BE" | "UTF-16" | "UCS-2" | "UCS2" => utf16be(bytes),
        "ISO-8859-1" | "ISO8859-1" | "LATIN1" => bytes.iter().copied().map(char::from).collect(),
        "" if coding == Some("2") => utf16be(bytes),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// UTF-16BE bytes as text (lossy).
fn utf16be(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|b| u16::from_be_bytes([b[0], *b.get(1).unwrap_or(&0)]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// The `group = sms-service` get-url a Kannel operator should configure for MO, for our docs/UI.
pub fn mo_get_url(base: &str) -> String {
    // As in the dlr-url, a `%` of our own URL must reach Kannel as `%%`.
    let base = base.replace('%', "%%");
    let sep = if base.contains('?') { '&' } else { '?' };
    // `%b` is the text as it came; `%a` would rejoin its words with single spaces (newlines and
    // double spaces lost). `%c`/`%C` say how to read it.
    format!("{base}{sep}from=%p&to=%P&text=%b&coding=%c&charset=%C&id=%I")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_answers_of_sendsms() {
        assert!(classify(202, "0: Accepted for delivery").is_ok());
        assert!(classify(202, "3: Queued for later delivery").is_ok());
        assert!(matches!(
            classify(403, "Authorization failed for sendsms"),
            Err(SendError::Permanent(m)) if m.contains("bad credentials") && m.contains("Authorization failed")
        ));
        assert!(matches!(
            classify(400, "Missing receiver number, rejected"),
            Err(SendError::Permanent(m)) if m.contains("Missing receiver number")
        ));
        assert!(matches!(
            classify(503, "Temporal failure, try again later."),
            Err(SendError::Temporary(_))
        ));
        assert!(matches!(classify(429, ""), Err(SendError::Temporary(_))));
        assert!(matches!(classify(404, ""), Err(SendError::Permanent(_))));
    }

    #[test]
    fn the_dlr_url_carries_our_id_and_escapes_percent() {
        let config = |dlr_url: &str| KannelConfig {
            sendsms_url: "http://127.0.0.1:13013/cgi-bin/sendsms".into(),
            username: "u".into(),
            password: "p".into(),
            from: None,
            dlr_url: dlr_url.into(),
            smsc: None,
        };
        let gw = KannelGateway::new(
            config("http://c.example/hooks/kannel/7"),
            GatewayHttp::new(Default::default()),
        );
        assert_eq!(
            gw.dlr_url(42),
            "http://c.example/hooks/kannel/7?id=42&status=%d&answer=%A"
        );
        let gw = KannelGateway::new(
            config("http://c.example/h/caf%C3%A9?k=1"),
            GatewayHttp::new(Default::default()),
        );
        assert_eq!(
            gw.dlr_url(5),
            "http://c.example/h/caf%%C3%%A9?k=1&id=5&status=%d&answer=%A"
        );
        assert!(!format!("{:?}", gw.config).contains("\"p\""));
    }

    #[test]
    fn callbacks_that_cannot_be_read_say_which_parameter() {
        for (query, error, words) in [
            (
                "status=8",
                CallbackError::ReportWithout("id"),
                "the delivery report has no id",
            ),
            (
                "id=x1&status=8",
                CallbackError::NotAMessageId("x1".into()),
                "the delivery report's id \"x1\" is not a message id",
            ),
            (
                "id=1",
                CallbackError::ReportWithout("status"),
                "the delivery report has no status",
            ),
            (
                "id=1&status=%25d",
                CallbackError::StatusNotANumber("%d".into()),
                "the delivery report's status \"%d\" is not a Kannel DLR type",
            ),
            (
                "id=1&status=3",
                CallbackError::UnknownDlrType(3),
                "the delivery report's status 3 is not a Kannel DLR type",
            ),
        ] {
            let e = parse_dlr(query).unwrap_err();
            assert_eq!((&e, e.to_string().as_str()), (&error, words), "{query}");
        }
        for (query, error) in [
            ("to=1&text=a", CallbackError::NoSender),
            ("from=1&text=a", CallbackError::NoReceiver),
            ("from=1&to=2", CallbackError::NoText),
        ] {
            assert_eq!(parse_mo(query), Err(error), "{query}");
        }
    }

    #[test]
    fn mo_get_url_appends_the_escape_codes() {
        assert_eq!(
            mo_get_url("http://c.example/hooks/kannel/7/mo"),
            "http://c.example/hooks/kannel/7/mo?from=%p&to=%P&text=%b&coding=%c&charset=%C&id=%I"
        );
        assert_eq!(
            mo_get_url("http://c.example/mo?k=1"),
            "http://c.example/mo?k=1&from=%p&to=%P&text=%b&coding=%c&charset=%C&id=%I"
        );
    }

    #[test]
    fn url_decode_reads_escapes_and_plus_and_keeps_malformed_escapes() {
        assert_eq!(url_decode("a%2Bb+c%zz%4"), b"a+b c%zz%4");
        assert_eq!(url_decode("%00%E9%00%0a"), [0, 0xe9, 0, 0x0a]);
        assert_eq!(url_decode("%%41%"), b"%A%");
        assert_eq!(url_decode(""), b"");
        let p = Params::parse("?id=7&answer=ACK%2Fok+now&&text");
        assert_eq!(p.text("answer").as_deref(), Some("ACK/ok now"));
        assert_eq!(p.non_empty("text"), None);
    }

    #[test]
    fn shortens_long_bodies() {
        assert_eq!(shorten("ok"), "ok");
        let long = "é".repeat(MAX_BODY + 5);
        assert_eq!(shorten(&long).chars().count(), MAX_BODY + 1);
    }
}
