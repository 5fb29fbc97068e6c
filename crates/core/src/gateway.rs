//! What gateways and storage share: delivery reports and inbound messages as read from a
//! gateway's callbacks, and each gateway kind's settings checked field by field ([`config`]).
//! Sending is the `casecast-gateways` crate's business; nothing here does I/O.

pub mod config;

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
