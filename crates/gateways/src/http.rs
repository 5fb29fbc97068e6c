//! The generic HTTP gateway: one GET or POST per message to an aggregator's URL, shaped by the
//! configuration (the parameters with placeholders, how success looks, where the id is), as the
//! SMS aggregators in Africa and Asia expect. It logs the message id, the masked number and the
//! HTTP status: never the text, and never the gateway's body (it may echo the text).
//!
//! `https://` URLs are reached with rustls (the `ring` provider, Mozilla's root certificates
//! built in).

use std::time::Duration;

use crate::{Accepted, OutboundSms, SendError, SmsGateway};

/// How long one request may take before the message is retried later.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// How many characters of a gateway's body an error keeps.
const SNIPPET_CHARS: usize = 200;

/// The HTTP method the gateway expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// Parameters in the query string.
    Get,
    /// Parameters form-encoded in the body.
    Post,
}

/// How to talk to one HTTP gateway. `Debug` shows parameter and header names, not their
/// values (API keys live there).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct HttpConfig {
    pub url: String,
    pub method: HttpMethod,
    /// Parameters with placeholders `{to}` `{to_digits}` `{from}` `{text}` `{id}`; values are URL-encoded when sent.
    #[serde(default)]
    pub params: Vec<(String, String)>,
    /// How to recognise success: a status code range (inclusive) and, optionally, a substring the body must contain.
    #[serde(default = "default_success_status")]
    pub success_status: (u16, u16),
    #[serde(default)]
    pub success_contains: Option<String>,
    /// Optional regex-free way to find the gateway's id: the text after this prefix up to the end of the line.
    #[serde(default)]
    pub id_after: Option<String>,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |pairs: &[(String, String)]| -> Vec<String> {
            pairs.iter().map(|(n, _)| n.clone()).collect()
        };
        f.debug_struct("HttpConfig")
            .field("url", &"***")
            .field("method", &self.method)
            .field("params", &names(&self.params))
            .field("success_status", &self.success_status)
            .field("success_contains", &self.success_contains)
            .field("id_after", &self.id_after)
            .field("headers", &names(&self.headers))
            .finish()
    }
}

fn default_success_status() -> (u16, u16) {
    (200, 299)
}

/// A gateway reached by plain HTTP requests.
#[derive(Clone, Debug)]
pub struct HttpGateway {
    config: HttpConfig,
    http: reqwest::Client,
}

impl HttpGateway {
    /// A gateway sending through `http` (shared, so connections are reused).
    pub fn new(config: HttpConfig, http: reqwest::Client) -> Self {
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
        let params = self.params(sms);
        let mut request = match self.config.method {
            HttpMethod::Get => self.http.get(&self.config.url).query(&params),
            HttpMethod::Post => self.http.post(&self.config.url).form(&params),
        };
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }
        let response = match request.timeout(TIMEOUT).send().await {
            Ok(response) => response,
            Err(e) => {
                let err = request_error("HTTP gateway", e);
                tracing::warn!(message.id = sms.message_id, to = %sms.to.masked(), error = %err, "HTTP gateway: request failed");
                return Err(err);
            }
        };
        let status = response.status().as_u16();
        // A body that cannot be read counts as empty: the status still tells the outcome.
        let body = response.text().await.unwrap_or_default();
        let (low, high) = self.config.success_status;
        let result = if (low..=high).contains(&status) {
            match &self.config.success_contains {
                Some(needle) if !body.contains(needle.as_str()) => {
                    Err(SendError::Permanent(format!(
                        "the gateway answered {status} without '{needle}': {}",
                        snippet(&body, sms)
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
            Err(status_error("the gateway", status, &snippet(&body, sms)))
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

/// A non-success status as a `SendError`: timeouts, throttling and 5xx are worth retrying.
pub(crate) fn status_error(who: &str, status: u16, detail: &str) -> SendError {
    let message = if detail.is_empty() {
        format!("{who} answered {status}")
    } else {
        format!("{who} answered {status}: {detail}")
    };
    match status {
        408 | 429 | 500..=599 => SendError::Temporary(message),
        _ => SendError::Permanent(message),
    }
}

/// A failed request as a `SendError`, without the URL.
pub(crate) fn request_error(who: &str, e: reqwest::Error) -> SendError {
    // A GET's query holds the number and the text: neither may reach the logs.
    let e = e.without_url();
    // A request that cannot be built (bad URL, bad header) will fail the same way again.
    let permanent = e.is_builder();
    let mut message = if e.is_timeout() {
        format!("{who}: no answer within {} s", TIMEOUT.as_secs())
    } else {
        format!("{who}: {e}")
    };
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if permanent {
        SendError::Permanent(message)
    } else {
        SendError::Temporary(message)
    }
}
