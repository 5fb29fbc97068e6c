//! The log gateway: takes every message and records that it did (for trying Casecast out).
//! It logs the message id, the masked number and the segment count: never the text.

use crate::{Accepted, OutboundSms, SendError, SmsGateway};

/// A gateway that sends nothing.
#[derive(Clone, Debug, Default)]
pub struct LogGateway;

impl SmsGateway for LogGateway {
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, SendError> {
        tracing::info!(message.id = sms.message_id, to = %sms.to.masked(), segments = sms.segments, "log gateway: message taken");
        Ok(Accepted {
            gateway_message_id: Some(format!("log-{}", sms.message_id)),
        })
    }
}
