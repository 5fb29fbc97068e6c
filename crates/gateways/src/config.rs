//! A stored gateway's settings: which kind it is, its settings checked field by field, which of
//! them are secrets (shown masked, kept when an edit leaves them masked), and the gateway built
//! from them with its callback URLs.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::http::{HttpConfig, HttpGateway};
use crate::kannel::{KannelConfig, KannelGateway};
use crate::log::LogGateway;
use crate::twilio::{TwilioConfig, TwilioGateway};
use crate::{Accepted, OutboundSms, SendError, SmsGateway};

/// What a secret field shows instead of its value.
pub const MASK: &str = "********";

/// The largest settings object accepted, as JSON.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024;

/// Longest URL accepted in settings.
const MAX_URL: usize = 2000;
/// Longest other text value accepted in settings.
const MAX_TEXT: usize = 500;

/// The kinds of gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayKind {
    Kannel,
    Twilio,
    Http,
    Log,
}

impl GatewayKind {
    pub const ALL: [GatewayKind; 4] = [
        GatewayKind::Kannel,
        GatewayKind::Twilio,
        GatewayKind::Http,
        GatewayKind::Log,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GatewayKind::Kannel => "kannel",
            GatewayKind::Twilio => "twilio",
            GatewayKind::Http => "http",
            GatewayKind::Log => "log",
        }
    }

    pub fn parse(s: &str) -> Result<GatewayKind, String> {
        GatewayKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown gateway kind {s:?}: use kannel, twilio, http or log"))
    }

    /// The settings fields that are credentials.
    fn secret_fields(self) -> &'static [&'static str] {
        match self {
            GatewayKind::Kannel => &["password"],
            GatewayKind::Twilio => &["auth_token"],
            // Aggregators put API keys in parameters and headers: all their values are masked.
            GatewayKind::Http => &[],
            GatewayKind::Log => &[],
        }
    }
}

/// Settings of one gateway, checked.
#[derive(Clone, Debug)]
pub enum GatewayConfig {
    Kannel(KannelConfig),
    Twilio(TwilioConfig),
    Http(HttpConfig),
    Log,
}

fn parse_as<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("config: {}", e.inner())
        } else {
            format!("config.{path}: {}", e.inner())
        }
    })
}

fn check_url(field: &str, url: &str) -> Result<(), String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "config.{field}: must start with http:// or https://"
        ));
    }
    if url.len() > MAX_URL || reqwest::Url::parse(url).is_err() {
        return Err(format!(
            "config.{field}: is not a valid URL of at most {MAX_URL} characters"
        ));
    }
    Ok(())
}

fn check_text(field: &str, value: &str, required: bool) -> Result<(), String> {
    if required && value.trim().is_empty() {
        return Err(format!("config.{field}: is required"));
    }
    if value.chars().count() > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(format!(
            "config.{field}: must be at most {MAX_TEXT} characters with no control characters"
        ));
    }
    Ok(())
}

impl GatewayConfig {
    /// Reads and checks settings for `kind`; errors name the field (`config.sendsms_url: …`).
    pub fn parse(kind: GatewayKind, value: &Value) -> Result<GatewayConfig, String> {
        if !value.is_object() {
            return Err("config: must be an object".into());
        }
        if value.to_string().len() > MAX_CONFIG_BYTES {
            return Err(format!("config: larger than {MAX_CONFIG_BYTES} bytes"));
        }
        if let Some(field) = kind
            .secret_fields()
            .iter()
            .find(|f| value.get(**f).and_then(Value::as_str) == Some(MASK))
        {
            return Err(format!("config.{field}: is required"));
        }
        match kind {
            GatewayKind::Kannel => {
                let c: KannelConfig = parse_as(value)?;
                check_url("sendsms_url", &c.sendsms_url)?;
                check_text("username", &c.username, true)?;
                check_text("password", &c.password, true)?;
                for (field, v) in [("from", &c.from), ("smsc", &c.smsc)] {
                    if let Some(v) = v {
                        check_text(field, v, false)?;
                    }
                }
                Ok(GatewayConfig::Kannel(c))
            }
            GatewayKind::Twilio => {
                let c: TwilioConfig = parse_as(value)?;
                check_text("account_sid", &c.account_sid, true)?;
                check_text("auth_token", &c.auth_token, true)?;
                check_url("api_base", &c.api_base)?;
                if c.from.is_none() && c.messaging_service_sid.is_none() {
                    return Err(
                        "config.from: give a sender number or a messaging_service_sid".into(),
                    );
                }
                for (field, v) in [
                    ("from", &c.from),
                    ("messaging_service_sid", &c.messaging_service_sid),
                ] {
                    if let Some(v) = v {
                        check_text(field, v, true)?;
                    }
                }
                Ok(GatewayConfig::Twilio(c))
            }
            GatewayKind::Http => {
                let c: HttpConfig = parse_as(value)?;
                check_url("url", &c.url)?;
                if c.params.len() > 50 || c.headers.len() > 50 {
                    return Err("config.params: at most 50 parameters and 50 headers".into());
                }
                for (name, v) in c.params.iter().chain(c.headers.iter()) {
                    check_text("params", name, true)?;
                    check_text("params", v, false)?;
                    if v == MASK {
                        return Err(format!("config.params: type the value of {name} again"));
                    }
                }
                if c.success_status.0 > c.success_status.1 || c.success_status.1 > 599 {
                    return Err(
                        "config.success_status: must be [low, high] HTTP status codes".into(),
                    );
                }
                Ok(GatewayConfig::Http(c))
            }
            GatewayKind::Log => Ok(GatewayConfig::Log),
        }
    }

    pub fn kind(&self) -> GatewayKind {
        match self {
            GatewayConfig::Kannel(_) => GatewayKind::Kannel,
            GatewayConfig::Twilio(_) => GatewayKind::Twilio,
            GatewayConfig::Http(_) => GatewayKind::Http,
            GatewayConfig::Log => GatewayKind::Log,
        }
    }

    /// The settings as stored (credentials included).
    pub fn to_json(&self) -> Value {
        match self {
            GatewayConfig::Kannel(c) => serde_json::to_value(c),
            GatewayConfig::Twilio(c) => serde_json::to_value(c),
            GatewayConfig::Http(c) => serde_json::to_value(c),
            GatewayConfig::Log => Ok(Value::Object(Map::new())),
        }
        .unwrap_or(Value::Null)
    }

    /// The settings as shown to users: every credential replaced by [`MASK`].
    pub fn masked_json(&self) -> Value {
        let mut value = self.to_json();
        if let Some(object) = value.as_object_mut() {
            for field in self.kind().secret_fields() {
                if let Some(v) = object.get_mut(*field) {
                    if v.as_str().is_some_and(|s| !s.is_empty()) {
                        *v = Value::String(MASK.into());
                    }
                }
            }
            if self.kind() == GatewayKind::Http {
                for list in ["params", "headers"] {
                    if let Some(Value::Array(pairs)) = object.get_mut(list) {
                        for pair in pairs {
                            if let Some(v) = pair.get_mut(1) {
                                if !is_placeholder_only(v.as_str().unwrap_or("")) {
                                    *v = Value::String(MASK.into());
                                }
                            }
                        }
                    }
                }
            }
        }
        value
    }

    /// The settings an edit gives, with every field still showing [`MASK`] (or left out, for
    /// credentials) taken from the stored settings: users edit without re-typing passwords.
    /// Stored credentials only go where they went before: when the edit moves the gateway to
    /// another address (scheme, host or port), they must be typed again.
    pub fn merge_edit(old: &GatewayConfig, edit: &Value) -> Result<Value, String> {
        let old_json = old.to_json();
        let mut merged = edit.clone();
        let Some(object) = merged.as_object_mut() else {
            return Ok(merged);
        };
        let url_field = match old.kind() {
            GatewayKind::Kannel => "sendsms_url",
            GatewayKind::Twilio => "api_base",
            GatewayKind::Http => "url",
            GatewayKind::Log => "",
        };
        let moved = match (old_json.get(url_field), object.get(url_field)) {
            (Some(Value::String(a)), Some(Value::String(b))) => origin(a) != origin(b),
            // Twilio's api_base may be left out (the default); others are required anyway.
            (Some(Value::String(a)), None) if old.kind() == GatewayKind::Twilio => {
                origin(a) != origin(crate::twilio::DEFAULT_API_BASE)
            }
            _ => false,
        };
        for field in old.kind().secret_fields() {
            let keep = match object.get(*field) {
                None => true,
                Some(v) => v.as_str() == Some(MASK),
            };
            if keep {
                if moved {
                    return Err(format!(
                        "config.{field}: type it again: the gateway's address ({url_field}) changed"
                    ));
                }
                if let Some(v) = old_json.get(*field) {
                    object.insert(field.to_string(), v.clone());
                }
            }
        }
        if old.kind() == GatewayKind::Http {
            for list in ["params", "headers"] {
                let old_pairs = old_json.get(list).and_then(Value::as_array);
                if let (Some(Value::Array(pairs)), Some(old_pairs)) =
                    (object.get_mut(list), old_pairs)
                {
                    for pair in pairs.iter_mut() {
                        let name = pair.get(0).cloned();
                        if pair.get(1).and_then(Value::as_str) != Some(MASK) {
                            continue;
                        }
                        if moved {
                            return Err(format!(
                                "config.{list}: type the value of {} again: the gateway's address (url) changed",
                                name.as_ref().and_then(Value::as_str).unwrap_or("?")
                            ));
                        }
                        if let Some(old_pair) = old_pairs.iter().find(|p| p.get(0) == name.as_ref())
                        {
                            if let (Some(slot), Some(v)) = (pair.get_mut(1), old_pair.get(1)) {
                                *slot = v.clone();
                            }
                        }
                    }
                }
            }
        }
        Ok(merged)
    }
}

/// Scheme, host and port of a URL (what decides where credentials are sent).
fn origin(url: &str) -> Option<(String, String, Option<u16>)> {
    let u = reqwest::Url::parse(url).ok()?;
    Some((
        u.scheme().to_string(),
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default(),
    ))
}

/// Whether an HTTP parameter's value is only placeholders and punctuation (nothing secret).
fn is_placeholder_only(v: &str) -> bool {
    let mut rest = v.to_string();
    for p in ["{to}", "{to_digits}", "{from}", "{text}", "{id}"] {
        rest = rest.replace(p, "");
    }
    rest.trim().is_empty()
}

/// Where a gateway's callbacks reach Casecast: `{base}/hooks/{gateway_id}/{secret}/{what}`.
#[derive(Clone)]
pub struct Callbacks {
    pub base: String,
    pub gateway_id: i64,
    pub secret: String,
}

impl Callbacks {
    /// The URL of one callback: `dlr` and `mo` (Kannel), `status` and `inbound` (Twilio, HTTP).
    pub fn url(&self, what: &str) -> String {
        format!(
            "{}/hooks/{}/{}/{what}",
            self.base.trim_end_matches('/'),
            self.gateway_id,
            self.secret
        )
    }
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("base", &self.base)
            .field("gateway_id", &self.gateway_id)
            .field("secret", &"***")
            .finish()
    }
}

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
    pub fn build(
        config: GatewayConfig,
        callbacks: &Callbacks,
        http: reqwest::Client,
    ) -> AnyGateway {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_each_kind_and_names_the_field() {
        let ok = json!({"sendsms_url": "http://127.0.0.1:13013/cgi-bin/sendsms", "username": "u", "password": "p"});
        assert!(GatewayConfig::parse(GatewayKind::Kannel, &ok).is_ok());
        let bad = json!({"sendsms_url": "ftp://x", "username": "u", "password": "p"});
        assert_eq!(
            GatewayConfig::parse(GatewayKind::Kannel, &bad).unwrap_err(),
            "config.sendsms_url: must start with http:// or https://"
        );
        let missing = json!({"sendsms_url": "http://x/", "username": "u"});
        assert!(GatewayConfig::parse(GatewayKind::Kannel, &missing)
            .unwrap_err()
            .contains("password"));
        let twilio = json!({"account_sid": "AC1", "auth_token": "t"});
        assert!(GatewayConfig::parse(GatewayKind::Twilio, &twilio)
            .unwrap_err()
            .contains("config.from"));
        assert!(GatewayConfig::parse(GatewayKind::Log, &json!([])).is_err());
        let huge =
            json!({"url": "http://x/", "method": "GET", "params": [["a", "b".repeat(20_000)]]});
        assert!(GatewayConfig::parse(GatewayKind::Http, &huge)
            .unwrap_err()
            .contains("larger than"));
    }

    #[test]
    fn secrets_are_masked_and_kept_through_an_edit() {
        let c = GatewayConfig::parse(
            GatewayKind::Kannel,
            &json!({"sendsms_url": "http://k/", "username": "u", "password": "s3cret"}),
        )
        .unwrap();
        let shown = c.masked_json();
        assert_eq!(shown["password"], MASK);
        assert!(!shown.to_string().contains("s3cret"));
        let mut edit = shown.clone();
        edit["username"] = json!("v");
        let merged = GatewayConfig::merge_edit(&c, &edit).unwrap();
        assert_eq!(merged["password"], "s3cret");
        assert_eq!(merged["username"], "v");
        // The stored password does not follow the gateway to another address.
        let mut moved = shown.clone();
        moved["sendsms_url"] = json!("http://elsewhere.example:13013/cgi-bin/sendsms");
        assert!(GatewayConfig::merge_edit(&c, &moved)
            .unwrap_err()
            .starts_with("config.password: type it again"));
        moved["password"] = json!("typed-again");
        assert_eq!(
            GatewayConfig::merge_edit(&c, &moved).unwrap()["password"],
            "typed-again"
        );
        let mut path_only = shown.clone();
        path_only["sendsms_url"] = json!("http://k/other-path");
        assert_eq!(
            GatewayConfig::merge_edit(&c, &path_only).unwrap()["password"],
            "s3cret"
        );
        let h = GatewayConfig::parse(
            GatewayKind::Http,
            &json!({"url": "http://h/", "method": "POST", "params": [["to", "{to}"], ["key", "k-123"]]}),
        )
        .unwrap();
        let shown = h.masked_json();
        assert_eq!(shown["params"][0][1], "{to}");
        assert_eq!(shown["params"][1][1], MASK);
        let merged = GatewayConfig::merge_edit(&h, &shown).unwrap();
        assert_eq!(merged["params"][1][1], "k-123");
        let mut moved = shown.clone();
        moved["url"] = json!("http://evil.example/");
        assert!(GatewayConfig::merge_edit(&h, &moved).is_err());
        // A renamed parameter cannot take the stored value, and the mask is never stored.
        let mut renamed = shown.clone();
        renamed["params"][1][0] = json!("apikey");
        let merged = GatewayConfig::merge_edit(&h, &renamed).unwrap();
        assert!(GatewayConfig::parse(GatewayKind::Http, &merged)
            .unwrap_err()
            .contains("type the value of apikey again"));
    }

    #[test]
    fn callback_urls() {
        let cb = Callbacks {
            base: "http://127.0.0.1:8080/".into(),
            gateway_id: 7,
            secret: "abc".into(),
        };
        assert_eq!(cb.url("dlr"), "http://127.0.0.1:8080/hooks/7/abc/dlr");
        assert!(!format!("{cb:?}").contains("abc"));
    }
}
