//! A stored gateway's settings, and the gateway built from them. The settings themselves (each
//! kind's fields checked one by one, which are credentials, masking, callback URLs) live in
//! `casecast_core::gateway::config`, shared with storage; they are re-exported here.

pub use casecast_core::gateway::config::{
    Callbacks, ConfigError, ConfigProblem, GatewayConfig, GatewayKind, UnknownGatewayKind, MASK,
    MAX_CONFIG_BYTES,
};

use crate::http::HttpGateway;
use crate::kannel::KannelGateway;
use crate::log::LogGateway;
use crate::outbound::GatewayHttp;
use crate::twilio::TwilioGateway;
use crate::{Accepted, OutboundSms, SendError, SmsGateway};

/// A gateway of any kind, ready to send.
#[derive(Clone, Debug)]
pub enum AnyGateway {
    Kannel(KannelGateway),
    Twilio(TwilioGateway),
    Http(HttpGateway),
    Log(LogGateway),
}

impl AnyGateway {
    /// The gateway for these settings, its delivery reports pointed at `callbacks`.
    pub fn build(config: GatewayConfig, callbacks: &Callbacks, http: GatewayHttp) -> AnyGateway {
        match config {
            GatewayConfig::Kannel(mut c) => {
                c.dlr_url = callbacks.url("dlr");
                AnyGateway::Kannel(KannelGateway::new(c, http))
            }
            GatewayConfig::Twilio(mut c) => {
                c.status_callback = Some(callbacks.url("status"));
                AnyGateway::Twilio(TwilioGateway::new(c, http))
            }
            GatewayConfig::Http(c) => AnyGateway::Http(HttpGateway::new(c, http)),
            GatewayConfig::Log => AnyGateway::Log(LogGateway),
        }
    }
}

impl SmsGateway for AnyGateway {
    async fn send(&self, sms: &OutboundSms) -> Result<Accepted, SendError> {
        match self {
            AnyGateway::Kannel(g) => g.send(sms).await,
            AnyGateway::Twilio(g) => g.send(sms).await,
            AnyGateway::Http(g) => g.send(sms).await,
            AnyGateway::Log(g) => g.send(sms).await,
        }
    }
}
