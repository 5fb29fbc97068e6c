//! SMS gateways: for each kind (Kannel, Twilio, a generic HTTP gateway, a log gateway) how one
//! message is handed over, and how its delivery reports and inbound messages are read. No
//! storage here: the dispatcher (outbox) calls `SmsGateway::send`, and the webhook handlers
//! call the parsers.

pub mod config;
pub mod http;
pub mod kannel;
pub mod log;
pub mod twilio;

use casecast_core::sms::Encoding;
use casecast_core::PhoneNumber;

/// One message to hand to a gateway.
#[derive(Clone, Debug)]
pub struct OutboundSms {
    /// Our id for the message: gateways that report delivery by callback carry it back.
    pub message_id: i64,
    pub to: PhoneNumber,
    /// The sender id or number the gateway should use, if it is configurable.
    pub from: Option<String>,
    pub text: String,
    pub encoding: Encoding,
    pub segments: usize,
}

/// What a gateway said when it took a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The gateway's own id for the message, when it gives one.
    pub gateway_message_id: Option<String>,
}

/// Why a gateway did not take a message.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (network error, 5xx, the gateway is throttling).
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Will fail again (bad credentials, a number the gateway refuses, 4xx).
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Where a message stands according to a delivery report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// The operator's SMSC took it.
    Sent,
    /// The handset got it.
    Delivered,
    /// It will not arrive.
    Failed,
    /// The report says nothing final (buffered, queued).
    Pending,
}

/// A delivery report, read from a gateway's callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Our id (gateways given it in the callback URL) or the gateway's id.
    pub message: MessageRef,
    pub status: DeliveryStatus,
    /// The gateway's words, for the message log.
    pub detail: String,
}

/// How a report names its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageRef {
    Ours(i64),
    Gateway(String),
}

/// A message from a phone, read from a gateway's callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundSms {
    /// The sender, as the gateway wrote it (E.164 where it can be parsed).
    pub from: String,
    pub to: String,
    pub text: String,
    pub gateway_message_id: Option<String>,
}

/// A gateway that can take a message.
#[allow(async_fn_in_trait)]
pub trait SmsGateway {
    /// Hands one message over.
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, SendError>;
}
