//! The Twilio gateway: sends through Twilio's Messages API, and reads Twilio's status callbacks
//! and incoming-message webhooks after checking their `X-Twilio-Signature`. It logs the message
//! id, the masked number and Twilio's status and error code: never the text.
//!
//! Twilio's API is HTTPS only: reqwest speaks TLS with rustls (the `ring` provider, Mozilla's
//! root certificates built in).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

pub use casecast_core::gateway::config::{TwilioConfig, DEFAULT_API_BASE};

use crate::http::{mask_number, refused_error, request_error, snippet, status_error, TIMEOUT};
use crate::outbound::GatewayHttp;
use crate::{
    Accepted, CallbackError, DeliveryReport, DeliveryStatus, InboundSms, MessageRef, OutboundSms,
    SendError, SmsGateway,
};

/// What errors call this kind of gateway.
const WHO: &str = "Twilio";

/// A gateway sending through one Twilio account.
#[derive(Clone, Debug)]
pub struct TwilioGateway {
    config: TwilioConfig,
    http: GatewayHttp,
}

impl TwilioGateway {
    /// A gateway sending through `http` (shared, so connections are reused).
    pub fn new(config: TwilioConfig, http: GatewayHttp) -> Self {
        TwilioGateway { config, http }
    }

    /// The Messages resource of the account.
    fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.config.api_base.trim_end_matches('/'),
            self.config.account_sid
        )
    }
}

/// The part of Twilio's answer to a new message that is read.
#[derive(serde::Deserialize)]
struct CreatedMessage {
    sid: Option<String>,
}

/// Twilio's error body (`code`, `message`, `more_info`, `status`).
#[derive(serde::Deserialize)]
struct TwilioError {
    code: Option<u32>,
    message: Option<String>,
}

impl SmsGateway for TwilioGateway {
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, SendError> {
        let from = sms.from.as_deref().or(self.config.from.as_deref());
        let service = self.config.messaging_service_sid.as_deref();
        if from.is_none() && service.is_none() {
            // Twilio would refuse it (error 21603); no need to ask.
            return Err(SendError::Permanent(
                "twilio: no sender: set From or a Messaging Service".to_string(),
            ));
        }
        let mut form: Vec<(&str, &str)> = vec![("To", sms.to.as_str())];
        if let Some(from) = from {
            form.push(("From", from));
        }
        if let Some(service) = service {
            form.push(("MessagingServiceSid", service));
        }
        form.push(("Body", &sms.text));
        // Our id rides in the callback URL, so a status that arrives before Twilio's answer
        // (and its sid) has been recorded still finds its message.
        let callback = self.config.status_callback.as_deref().map(|base| {
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}id={}", sms.message_id)
        });
        if let Some(callback) = callback.as_deref() {
            form.push(("StatusCallback", callback));
        }
        let url = self.messages_url();
        if let Err(refused) = self.http.check(&url) {
            let err = refused_error(WHO, &refused);
            tracing::warn!(message.id = sms.message_id, to = %sms.to.masked(), error = %err, "twilio: address refused");
            return Err(err);
        }
        let sent = self
            .http
            .client()
            .post(url)
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .form(&form)
            .timeout(TIMEOUT)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                let err = request_error(WHO, e);
                tracing::warn!(message.id = sms.message_id, to = %sms.to.masked(), error = %err, "twilio: request failed");
                return Err(err);
            }
        };
        let status = response.status().as_u16();
        // A body that cannot be read counts as empty: the status still tells the outcome.
        let body = crate::outbound::answer_text(response).await;
        if (200..300).contains(&status) {
            let sid = serde_json::from_str::<CreatedMessage>(&body)
                .ok()
                .and_then(|m| m.sid);
            tracing::info!(
                message.id = sms.message_id,
                to = %sms.to.masked(),
                status,
                twilio.sid = sid.as_deref(),
                "twilio: message accepted"
            );
            return Ok(Accepted {
                gateway_message_id: sid,
            });
        }
        let (code, detail) = match serde_json::from_str::<TwilioError>(&body) {
            Ok(TwilioError { code, message }) => {
                let words = mask_number(message.as_deref().unwrap_or(""), sms);
                let detail = match code {
                    Some(code) => format!("error {code}: {words}"),
                    None => words,
                };
                (code, detail)
            }
            Err(_) => (None, snippet(&body, sms)),
        };
        let err = status_error(WHO, status, &detail);
        tracing::warn!(
            message.id = sms.message_id,
            to = %sms.to.masked(),
            status,
            twilio.code = code,
            permanent = matches!(err, SendError::Permanent(_)),
            "twilio: message refused"
        );
        Err(err)
    }
}

/// HMAC-SHA1 with the auth token over the URL, then each parameter's name and value.
fn signing_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // By name (byte order, as Twilio documents); a repeated name by value, as Twilio's libraries do.
    sorted.sort();
    let mut mac =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// The `X-Twilio-Signature` of a request to `url` (in full, with its query) with these decoded POST fields.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    BASE64.encode(signing_mac(auth_token, url, params).finalize().into_bytes())
}

/// Whether `header` is Twilio's signature for this request (compared in constant time).
pub fn verify_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header: &str,
) -> bool {
    let Ok(claimed) = BASE64.decode(header.trim()) else {
        return false;
    };
    signing_mac(auth_token, url, params)
        .verify_slice(&claimed)
        .is_ok()
}

/// The first value of a form parameter.
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A required, non-empty parameter, or the first of its older names Twilio also sends.
fn required<'a>(
    params: &'a [(String, String)],
    names: &[&'static str],
) -> Result<&'a str, CallbackError> {
    names
        .iter()
        .find_map(|name| param(params, name).filter(|v| !v.is_empty()))
        .ok_or(CallbackError::TwilioWithout(names[0]))
}

/// Reads a status callback: `MessageSid`, `MessageStatus` and, when delivery failed, `ErrorCode`.
pub fn parse_status_callback(params: &[(String, String)]) -> Result<DeliveryReport, CallbackError> {
    let sid = required(params, &["MessageSid", "SmsSid"])?;
    let status = required(params, &["MessageStatus", "SmsStatus"])?;
    let delivery = match status {
        "queued" | "accepted" | "scheduled" | "sending" => DeliveryStatus::Pending,
        "sent" => DeliveryStatus::Sent,
        // `read` comes after `delivered` on channels with read receipts.
        "delivered" | "read" => DeliveryStatus::Delivered,
        "undelivered" | "failed" | "canceled" => DeliveryStatus::Failed,
        // Twilio adds statuses now and then: a new one says nothing final to us.
        _ => DeliveryStatus::Pending,
    };
    let detail = match param(params, "ErrorCode").filter(|c| !c.is_empty() && *c != "0") {
        Some(code) => format!("{status} (error {code})"),
        None => status.to_string(),
    };
    Ok(DeliveryReport {
        message: MessageRef::Gateway(sid.to_string()),
        status: delivery,
        detail,
    })
}

/// Reads an incoming-message webhook: `From`, `To`, `Body` and `MessageSid`.
pub fn parse_inbound(params: &[(String, String)]) -> Result<InboundSms, CallbackError> {
    let from = required(params, &["From"])?;
    let to = required(params, &["To"])?;
    // An empty body is a real message (or a picture with no words); only its absence is wrong.
    let text = param(params, "Body").ok_or(CallbackError::TwilioWithout("Body"))?;
    let sid = ["MessageSid", "SmsMessageSid", "SmsSid"]
        .iter()
        .find_map(|name| param(params, name).filter(|v| !v.is_empty()));
    Ok(InboundSms {
        from: from.to_string(),
        to: to.to_string(),
        text: text.to_string(),
        gateway_message_id: sid.map(str::to_string),
    })
}
