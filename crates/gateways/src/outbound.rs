//! The HTTP client gateways send with, kept to the addresses an [`AddressPolicy`] allows: names
//! are resolved by a resolver that drops every address the policy refuses (so a name that
//! resolves to a private address later, DNS rebinding included, reaches only the addresses
//! checked), a URL naming an address is checked before the request ([`GatewayHttp::check`]:
//! resolvers are not asked about addresses), redirects are not followed (a public gateway
//! cannot send the request on to a private address), and no proxy from the environment is used
//! (a proxy would connect to addresses no one checked).
//!
//! [`check_address`] is the same rule for settings being saved, with the reason in words.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use casecast_core::gateway::config::GatewayKind;
use serde_json::Value;

pub use casecast_core::gateway::address::{
    AddressKind, AddressPolicy, AllowEntry, BadAllowEntry, Refused, ALLOW_FLAG,
};

/// How long resolving a gateway's host may take while its settings are saved.
const SAVE_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The most of a gateway's answer that is read: its id, status or error is in the first few
/// hundred bytes; a gateway that streams more cannot make the server hold it.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A gateway's answer as text (lossy UTF-8), at most [`MAX_ANSWER_BYTES`] of it; what cannot be
/// read is left out.
pub async fn answer_text(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ANSWER_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// A shared HTTP client for gateways and the policy it keeps to. Cheap to clone.
#[derive(Clone, Debug)]
pub struct GatewayHttp {
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl GatewayHttp {
    /// A client keeping to `policy`.
    pub fn new(policy: AddressPolicy) -> GatewayHttp {
        GatewayHttp::with_idle_per_host(policy, 32)
    }

    /// [`GatewayHttp::new`], keeping up to `idle` idle connections per host for reuse.
    pub fn with_idle_per_host(policy: AddressPolicy, idle: usize) -> GatewayHttp {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(idle)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver {
                policy: policy.clone(),
            }))
            .build()
            .expect("an HTTP client with rustls builds");
        GatewayHttp { client, policy }
    }

    /// The client, for a request to a URL that [`GatewayHttp::check`] passed.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// Whether a request may go to `url` as far as can be told without resolving: a URL
    /// naming a refused address is refused here (its name, if any, is checked as resolved).
    pub fn check(&self, url: &str) -> Result<(), Refused> {
        self.policy.check_literal(url)
    }
}

/// Resolves names with the system's resolver and keeps only the addresses the policy allows.
struct CheckedResolver {
    policy: AddressPolicy,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check(&host, a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused.get_or_insert(e);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(e)) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// The refusal somewhere in a request error's causes, if the policy refused its address.
pub fn refusal_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cause: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<Refused>() {
            return Some(r);
        }
        cause = c.source();
    }
    None
}

/// Whether settings naming `url` may be saved: its host (an address, or every address its
/// name resolves to) must be allowed. A name that does not resolve now is accepted (it is
/// checked again at every request), and so is text that is not a URL (the settings' own
/// checks refuse it).
pub async fn check_address(policy: &AddressPolicy, url: &str) -> Result<(), Refused> {
    policy.check_literal(url)?;
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(());
    };
    let Some(url::Host::Domain(host)) = parsed.host() else {
        return Ok(());
    };
    let lookup = tokio::net::lookup_host((host, 0));
    let addrs: Vec<IpAddr> = match tokio::time::timeout(SAVE_RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
        Ok(Err(_)) | Err(_) => return Ok(()),
    };
    for ip in addrs {
        policy.check(host, ip)?;
    }
    Ok(())
}

/// Whether gateway settings of `kind` (as given, before their own checks) may be saved as far
/// as their address goes: [`check_address`] on the field holding it. The error names that
/// field (`url`, `sendsms_url`, `api_base`).
pub async fn check_settings_address(
    policy: &AddressPolicy,
    kind: GatewayKind,
    settings: &Value,
) -> Result<(), (&'static str, Refused)> {
    let Some(field) = kind.url_field() else {
        return Ok(());
    };
    // Anything but text (or Twilio's default, when left out) is for the settings' checks.
    let Some(url) = settings.get(field).and_then(Value::as_str) else {
        return Ok(());
    };
    check_address(policy, url.trim())
        .await
        .map_err(|refused| (field, refused))
}
