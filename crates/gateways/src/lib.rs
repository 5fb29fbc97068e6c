//! SMS gateways: for each kind (Kannel, Twilio, a generic HTTP gateway, a log gateway) how one
//! message is handed over, and how its delivery reports and inbound messages are read. No
//! storage here: the dispatcher (outbox) calls `SmsGateway::send`, and the webhook handlers
//! call the parsers. The data both sides share (reports, inbound messages, settings) is
//! `casecast_core::gateway`'s, re-exported here.

pub mod config;
pub mod http;
pub mod kannel;
pub mod log;
pub mod outbound;
pub mod twilio;

pub use casecast_core::gateway::{
    error_text, error_without_detail, DeliveryReport, DeliveryStatus, InboundSms, MessageRef,
};
use casecast_core::sms::Encoding;
use casecast_core::PhoneNumber;
pub use outbound::{AddressPolicy, GatewayHttp};

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

/// Why a gateway did not take a message. The text is [`error_text`]'s: a category anyone in
/// the project may read, and the detail (the gateway's own words) for admins.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (network error, 5xx, the gateway is throttling).
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Will fail again (bad credentials, a number the gateway refuses, 4xx).
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Why a gateway's callback (a delivery report, an inbound message) cannot be read. The text is
/// the gateway's answer (400): it names the parameter, never a value a person wrote.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// A delivery report without this parameter (`id`, `status`).
    #[error("the delivery report has no {0}")]
    ReportWithout(&'static str),
    #[error("the delivery report's id {0:?} is not a message id")]
    NotAMessageId(String),
    /// A delivery report's status that is not a number.
    #[error("the delivery report's status {0:?} is not a Kannel DLR type")]
    StatusNotANumber(String),
    /// A number that is none of Kannel's delivery report types.
    #[error("the delivery report's status {0} is not a Kannel DLR type")]
    UnknownDlrType(u8),
    #[error("the inbound message has no sender (from)")]
    NoSender,
    #[error("the inbound message has no receiver (to)")]
    NoReceiver,
    /// The parameter is absent (an empty text is a real, empty SMS).
    #[error("the inbound message has no text parameter")]
    NoText,
    /// A Twilio request without this parameter (`MessageSid`, `From`, `Body`…).
    #[error("the Twilio request has no {0}")]
    TwilioWithout(&'static str),
}

/// A gateway that can take a message.
#[allow(async_fn_in_trait)]
pub trait SmsGateway {
    /// Hands one message over.
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, SendError>;
}
