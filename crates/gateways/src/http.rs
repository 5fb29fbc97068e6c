//! The generic HTTP gateway: one GET or POST per message to an aggregator's URL, shaped by the
//! configuration (the parameters with placeholders, how success looks, where the id is), as the
//! SMS aggregators in Africa and Asia expect; inbound messages arrive as `from`, `to`, `text`
//! and `id` fields ([`parse_inbound`]). It logs the message id, the masked number and the
//! HTTP status: never the text, and never the gateway's body (it may echo the text).
//!
//! `https://` URLs are reached with rustls (the `ring` provider, Mozilla's root certificates
//! built in).

use std::time::Duration;

pub use casecast_core::gateway::config::{HttpConfig, HttpMethod};

use crate::outbound::{refusal_in, GatewayHttp, Refused};
use crate::{error_text, Accepted, CallbackError, InboundSms, OutboundSms, SendError, SmsGateway};

/// What errors call this kind of gateway.
const WHO: &str = "the gateway";

/// How long one request may take before the message is retried later.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// How many characters of a gateway's body an error keeps.
const SNIPPET_CHARS: usize = 200;

/// A gateway reached by plain HTTP requests.
#[derive(Clone, Debug)]
pub struct HttpGateway {
    config: HttpConfig,
    http: GatewayHttp,
}

impl HttpGateway {
    /// A gateway sending through `http` (shared, so connections are reused).
    pub fn new(config: HttpConfig, http: GatewayHttp) -> Self {
        HttpGateway { config, http }
    }

    /// The parameters for one message, placeholders replaced (not yet URL-encoded).
    fn params(&self, sms: &OutboundSms) -> Vec<(String, String)> {
        self.config
            .params
            .iter()
            // Without a sender, a bare `{from}` parameter is left out rather than sent empty:
            // gateways then use their default sender, where an empty one may be refused.
            .filter(|(_, template)| !(template == "{from}" && sms.from.is_none()))
            .map(|(name, template)| (name.clone(), expand(template, sms)))
            .collect()
    }
}

impl SmsGateway for HttpGateway {
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, SendError> {
        if let Err(refused) = self.http.check(&self.config.url) {
            let err = refused_error(WHO, &refused);
            tracing::warn!(message.id = sms.message_id, to = %sms.to.masked(), error = %err, "HTTP gateway: address refused");
            return Err(err);
        }
        let params = self.params(sms);
        let client = self.http.client();
        let mut request = match self.config.method {
            HttpMethod::Get => client.get(&self.config.url).query(&params),
            HttpMethod::Post => client.post(&self.config.url).form(&params),
        };
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }
        let response = match request.timeout(TIMEOUT).send().await {
            Ok(response) => response,
            Err(e) => {
                let err = request_error(WHO, e);
                tracing::warn!(message.id = sms.message_id, to = %sms.to.masked(), error = %err, "HTTP gateway: request failed");
                return Err(err);
            }
        };
        let status = response.status().as_u16();
        // A body that cannot be read counts as empty: the status still tells the outcome.
        let body = crate::outbound::answer_text(response).await;
        let (low, high) = self.config.success_status;
        let result = if (low..=high).contains(&status) {
            match &self.config.success_contains {
                Some(needle) if !body.contains(needle.as_str()) => {
                    Err(SendError::Permanent(error_text(
                        &format!("{WHO} did not confirm the message (HTTP {status})"),
                        &format!("no '{needle}' in its answer: {}", snippet(&body, sms)),
                    )))
                }
                _ => Ok(Accepted {
                    gateway_message_id: self
                        .config
                        .id_after
                        .as_deref()
                        .and_then(|prefix| text_after(&body, prefix)),
                }),
            }
        } else {
            Err(status_error(WHO, status, &snippet(&body, sms)))
        };
        match &result {
            Ok(accepted) => tracing::info!(
                message.id = sms.message_id,
                to = %sms.to.masked(),
                status,
                gateway.id = accepted.gateway_message_id.as_deref(),
                "HTTP gateway: message accepted"
            ),
            Err(e) => tracing::warn!(
                message.id = sms.message_id,
                to = %sms.to.masked(),
                status,
                permanent = matches!(e, SendError::Permanent(_)),
                "HTTP gateway: message refused"
            ),
        }
        result
    }
}

/// Replaces the placeholders in one pass, so a `{to}` written in the text stays as written.
fn expand(template: &str, sms: &OutboundSms) -> String {
    let id = sms.message_id.to_string();
    let number = sms.to.as_str();
    let values: [(&str, &str); 5] = [
        ("{to}", number),
        ("{to_digits}", number.trim_start_matches('+')),
        ("{from}", sms.from.as_deref().unwrap_or("")),
        ("{text}", &sms.text),
        ("{id}", &id),
    ];
    let mut out = String::with_capacity(template.len() + sms.text.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let from_brace = &rest[start..];
        match values.iter().find(|(name, _)| from_brace.starts_with(name)) {
            Some((name, value)) => {
                out.push_str(value);
                rest = &from_brace[name.len()..];
            }
            None => {
                out.push('{');
                rest = &from_brace[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The rest of the line after the first `prefix` in `body`, trimmed; `None` when absent or empty.
fn text_after(body: &str, prefix: &str) -> Option<String> {
    if prefix.is_empty() {
        return None;
    }
    let start = body.find(prefix)? + prefix.len();
    let id = body[start..].lines().next().unwrap_or("").trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// The start of a gateway's body for an error message, the recipient's number masked.
pub(crate) fn snippet(body: &str, sms: &OutboundSms) -> String {
    // Masked because the error is stored and shown, and gateways often repeat the number.
    let short: String = body.trim().chars().take(SNIPPET_CHARS).collect();
    mask_number(&short, sms)
}

/// `text` with the recipient's number (with or without `+`) replaced by its masked form.
pub(crate) fn mask_number(text: &str, sms: &OutboundSms) -> String {
    let number = sms.to.as_str();
    let digits = number.trim_start_matches('+');
    let masked = sms.to.masked();
    if digits.is_empty() {
        return text.to_string();
    }
    // The `+` form first, so it is not masked twice.
    text.replace(number, &masked)
        .replace(digits, masked.trim_start_matches('+'))
}

/// A non-success status as a `SendError` (`who` names the gateway: "the gateway", "Twilio"):
/// timeouts, throttling and 5xx are worth retrying. `detail` is the gateway's answer.
pub(crate) fn status_error(who: &str, status: u16, detail: &str) -> SendError {
    let category = match status {
        408 | 429 => format!("{who} is busy (HTTP {status})"),
        500..=599 => format!("{who} could not take the message (HTTP {status})"),
        300..=399 => {
            format!("{who} answered with a redirect, which is not followed (HTTP {status})")
        }
        _ => format!("{who} refused the message (HTTP {status})"),
    };
    let message = error_text(&category, detail);
    match status {
        408 | 429 | 500..=599 => SendError::Temporary(message),
        _ => SendError::Permanent(message),
    }
}

/// A request not made because the gateway's address is refused: it will be refused again
/// until the settings or the server's allowed hosts change.
pub(crate) fn refused_error(who: &str, refused: &Refused) -> SendError {
    SendError::Permanent(error_text(
        &format!("{who}'s address is not allowed"),
        &refused.to_string(),
    ))
}

/// A failed request as a `SendError`, without the URL.
pub(crate) fn request_error(who: &str, e: reqwest::Error) -> SendError {
    if let Some(refused) = refusal_in(&e) {
        return refused_error(who, refused);
    }
    // A GET's query holds the number and the text: neither may reach the logs.
    let e = e.without_url();
    let category = if e.is_timeout() {
        format!("{who} timed out (no answer within {} s)", TIMEOUT.as_secs())
    } else if e.is_builder() {
        format!("{who}'s URL cannot be used")
    } else if e.is_connect() {
        format!("{who} could not be reached")
    } else {
        format!("the request to {who} failed")
    };
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    let message = error_text(&category, &detail);
    // A request that cannot be built (bad URL, bad header) will fail the same way again.
    if e.is_builder() {
        SendError::Permanent(message)
    } else {
        SendError::Temporary(message)
    }
}

/// Reads an inbound message the aggregator forwards: `from`, `to`, `text` and optionally `id`
/// (the first of each; query and form fields alike, decoded). `from`, `to` and `id` are
/// trimmed; the text is kept as it came.
pub fn parse_inbound(fields: &[(String, String)]) -> Result<InboundSms, CallbackError> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let non_empty = |name: &str| field(name).map(str::trim).filter(|v| !v.is_empty());
    let from = non_empty("from").ok_or(CallbackError::NoSender)?;
    let to = non_empty("to").ok_or(CallbackError::NoReceiver)?;
    // An empty text is a real (empty) SMS; a missing one is a misconfigured gateway.
    let text = field("text").ok_or(CallbackError::NoText)?;
    Ok(InboundSms {
        from: from.to_string(),
        to: to.to_string(),
        text: text.to_string(),
        gateway_message_id: non_empty("id").map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_inbound_message_is_read_from_its_fields() {
        let sms = parse_inbound(&fields(&[
            ("apikey", "ignored"),
            ("from", " +256772123456 "),
            ("to", "1234"),
            ("text", "  NDIYO 2\nasante "),
            ("id", " ATXid_1 "),
        ]))
        .unwrap();
        assert_eq!(
            sms,
            InboundSms {
                from: "+256772123456".into(),
                to: "1234".into(),
                text: "  NDIYO 2\nasante ".into(),
                gateway_message_id: Some("ATXid_1".into()),
            }
        );
        // The first of a repeated field counts (form fields come before the query's).
        let sms = parse_inbound(&fields(&[
            ("from", "A"),
            ("to", "B"),
            ("text", "first"),
            ("text", "second"),
            ("from", "C"),
        ]))
        .unwrap();
        assert_eq!((sms.from.as_str(), sms.text.as_str()), ("A", "first"));
        assert_eq!(sms.gateway_message_id, None);
    }

    #[test]
    fn an_empty_text_is_a_message_and_a_blank_id_is_none() {
        let sms = parse_inbound(&fields(&[
            ("from", "A"),
            ("to", "B"),
            ("text", ""),
            ("id", "  "),
        ]))
        .unwrap();
        assert_eq!((sms.text.as_str(), sms.gateway_message_id), ("", None));
        // Long texts (concatenated SMS) are taken whole: the webhook's body limit bounds them.
        let long = "é".repeat(5_000);
        let sms = parse_inbound(&fields(&[("from", "A"), ("to", "B"), ("text", &long)])).unwrap();
        assert_eq!(sms.text, long);
    }

    #[test]
    fn a_message_without_sender_receiver_or_text_is_refused() {
        let full = [("from", "+256772123456"), ("to", "1234"), ("text", "hi")];
        for (missing, error, words) in [
            (
                "from",
                CallbackError::NoSender,
                "the inbound message has no sender (from)",
            ),
            (
                "to",
                CallbackError::NoReceiver,
                "the inbound message has no receiver (to)",
            ),
            (
                "text",
                CallbackError::NoText,
                "the inbound message has no text parameter",
            ),
        ] {
            let without: Vec<_> = full
                .iter()
                .copied()
                .filter(|(n, _)| *n != missing)
                .collect();
            let e = parse_inbound(&fields(&without)).unwrap_err();
            assert_eq!((&e, e.to_string().as_str()), (&error, words), "{missing}");
        }
        // A blank sender or receiver is no sender or receiver; names are compared exactly.
        let blank = fields(&[("from", "  "), ("to", "1234"), ("text", "hi")]);
        assert_eq!(parse_inbound(&blank), Err(CallbackError::NoSender));
        let upper = fields(&[("From", "A"), ("To", "B"), ("Text", "hi")]);
        assert_eq!(parse_inbound(&upper), Err(CallbackError::NoSender));
        assert_eq!(parse_inbound(&[]), Err(CallbackError::NoSender));
    }
}
