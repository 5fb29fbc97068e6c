//! A stored gateway's settings: which kind it is, its settings checked field by field, which of
//! them are secrets (shown masked, kept when an edit leaves them masked), and where its
//! callbacks reach Casecast. Building a gateway that sends is `casecast-gateways`' part.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a secret field shows instead of its value.
pub const MASK: &str = "********";

/// The largest settings object accepted, as JSON.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024;

/// Longest URL accepted in settings.
const MAX_URL: usize = 2000;
/// Longest other text value accepted in settings.
const MAX_TEXT: usize = 500;
/// Most parameters, and most headers, of an HTTP gateway.
const MAX_PAIRS: usize = 50;

/// Where Twilio's REST API lives.
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";

/// The kinds of gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayKind {
    Kannel,
    Twilio,
    Http,
    Log,
}

/// A gateway kind's name that is none of the kinds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown gateway kind {0:?}: use kannel, twilio, http or log")]
pub struct UnknownGatewayKind(pub String);

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

    pub fn parse(s: &str) -> Result<GatewayKind, UnknownGatewayKind> {
        GatewayKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownGatewayKind(s.to_string()))
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

    /// The settings field holding the address the gateway is reached at (none for `log`).
    pub fn url_field(self) -> Option<&'static str> {
        match self {
            GatewayKind::Kannel => Some("sendsms_url"),
            GatewayKind::Twilio => Some("api_base"),
            GatewayKind::Http => Some("url"),
            GatewayKind::Log => None,
        }
    }
}

/// Settings of a Kannel gateway.
#[derive(Clone, Serialize, Deserialize)]
pub struct KannelConfig {
    /// smsbox's sendsms URL, e.g. `http://kannel.example:13013/cgi-bin/sendsms`.
    pub sendsms_url: String,
    /// A `sendsms-user` of smsbox.
    pub username: String,
    pub password: String,
    /// The sender used when a message names none (Kannel refuses a message with no sender,
    /// unless smsbox has a `global-sender`).
    #[serde(default)]
    pub from: Option<String>,
    /// Where Kannel reports delivery: filled in by Casecast from the gateway's callback URL
    /// (`…/hooks/{gateway_id}/{secret}/dlr`), not given by the user.
    #[serde(default, skip_serializing)]
    pub dlr_url: String,
    /// The `smsc-id` to route through, when Kannel has several operators.
    #[serde(default)]
    pub smsc: Option<String>,
}

// By hand, so that the password never reaches a log through `{:?}`.
impl fmt::Debug for KannelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KannelConfig")
            .field("sendsms_url", &self.sendsms_url)
            .field("username", &self.username)
            .field("password", &"***")
            .field("from", &self.from)
            .field("dlr_url", &"***")
            .field("smsc", &self.smsc)
            .finish()
    }
}

/// How to reach one Twilio account. `Debug` hides the auth token.
#[derive(Clone, Serialize, Deserialize)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: String,
    /// The sender used when a message names none: a Twilio number or an alphanumeric id.
    #[serde(default)]
    pub from: Option<String>,
    /// A Messaging Service to send through (Twilio then picks the sender from its pool).
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// Default <https://api.twilio.com>.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// Where Twilio reports status: filled in by Casecast from the gateway's callback URL
    /// (`…/hooks/{gateway_id}/{secret}/status`), not given by the user.
    #[serde(default, skip_serializing)]
    pub status_callback: Option<String>,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.to_string()
}

impl fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<hidden>")
            .field("from", &self.from)
            .field("messaging_service_sid", &self.messaging_service_sid)
            .field("api_base", &self.api_base)
            .field(
                "status_callback",
                &self
                    .status_callback
                    .as_ref()
                    .map(|_| "*** (carries the webhook secret)"),
            )
            .finish()
    }
}

/// The HTTP method a generic HTTP gateway expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// Parameters in the query string.
    Get,
    /// Parameters form-encoded in the body.
    Post,
}

/// How to talk to one HTTP gateway. `Debug` shows parameter and header names, not their
/// values (API keys live there).
#[derive(Clone, Serialize, Deserialize)]
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

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

/// Settings of one gateway, checked.
#[derive(Clone, Debug)]
pub enum GatewayConfig {
    Kannel(KannelConfig),
    Twilio(TwilioConfig),
    Http(HttpConfig),
    Log,
}

/// Why settings were refused: the field at fault, and what is wrong with it. Shown as
/// `config.sendsms_url: must start with http:// or https://`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The settings field at fault (`sendsms_url`, `params[0]`); `None`: the settings as a whole.
    pub field: Option<String>,
    pub problem: ConfigProblem,
}

/// What is wrong with a settings field; the words users see after the field's name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    #[error("must be an object")]
    NotAnObject,
    #[error("larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge,
    /// The settings do not have the kind's shape (serde's words: a missing field, a wrong type).
    #[error("{0}")]
    Shape(String),
    #[error("is required")]
    Required,
    #[error("must start with http:// or https://")]
    NotHttp,
    #[error("is not a valid URL of at most {MAX_URL} characters")]
    BadUrl,
    #[error("must be at most {MAX_TEXT} characters with no control characters")]
    BadText,
    #[error("give a sender number or a messaging_service_sid")]
    NoSender,
    #[error("at most {MAX_PAIRS} parameters and {MAX_PAIRS} headers")]
    TooManyPairs,
    /// An HTTP parameter or header still shows the mask: its value must be typed.
    #[error("type the value of {0} again")]
    MaskedValue(String),
    #[error("must be [low, high] HTTP status codes")]
    BadSuccessStatus,
    /// A stored credential left masked while the gateway moves to another address (the field
    /// holding the address).
    #[error("type it again: the gateway's address ({0}) changed")]
    SecretMoved(&'static str),
    /// A stored HTTP parameter or header value left masked while the gateway moves.
    #[error("type the value of {0} again: the gateway's address (url) changed")]
    ValueMoved(String),
}

impl ConfigError {
    fn of(field: &str, problem: ConfigProblem) -> ConfigError {
        ConfigError {
            field: Some(field.to_string()),
            problem,
        }
    }

    fn whole(problem: ConfigProblem) -> ConfigError {
        ConfigError {
            field: None,
            problem,
        }
    }

    /// Where the fault is, as API clients name it: `config` or `config.sendsms_url`.
    pub fn path(&self) -> String {
        match &self.field {
            Some(field) => format!("config.{field}"),
            None => "config".to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path(), self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn parse_as<T: DeserializeOwned>(value: &Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ConfigError {
            field: (path != ".").then_some(path),
            problem: ConfigProblem::Shape(e.inner().to_string()),
        }
    })
}

fn check_url(field: &str, url: &str) -> Result<(), ConfigError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ConfigError::of(field, ConfigProblem::NotHttp));
    }
    if url.len() > MAX_URL || url::Url::parse(url).is_err() {
        return Err(ConfigError::of(field, ConfigProblem::BadUrl));
    }
    Ok(())
}

fn check_text(field: &str, value: &str, required: bool) -> Result<(), ConfigError> {
    if required && value.trim().is_empty() {
        return Err(ConfigError::of(field, ConfigProblem::Required));
    }
    if value.chars().count() > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(ConfigError::of(field, ConfigProblem::BadText));
    }
    Ok(())
}

impl GatewayConfig {
    /// Reads and checks settings for `kind`; errors name the field (`config.sendsms_url: …`).
    pub fn parse(kind: GatewayKind, value: &Value) -> Result<GatewayConfig, ConfigError> {
        if !value.is_object() {
            return Err(ConfigError::whole(ConfigProblem::NotAnObject));
        }
        if value.to_string().len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::whole(ConfigProblem::TooLarge));
        }
        if let Some(field) = kind
            .secret_fields()
            .iter()
            .find(|f| value.get(**f).and_then(Value::as_str) == Some(MASK))
        {
            return Err(ConfigError::of(field, ConfigProblem::Required));
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
                    return Err(ConfigError::of("from", ConfigProblem::NoSender));
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
                if c.params.len() > MAX_PAIRS || c.headers.len() > MAX_PAIRS {
                    return Err(ConfigError::of("params", ConfigProblem::TooManyPairs));
                }
                for (name, v) in c.params.iter().chain(c.headers.iter()) {
                    check_text("params", name, true)?;
                    check_text("params", v, false)?;
                    if v == MASK {
                        return Err(ConfigError::of(
                            "params",
                            ConfigProblem::MaskedValue(name.clone()),
                        ));
                    }
                }
                if c.success_status.0 > c.success_status.1 || c.success_status.1 > 599 {
                    return Err(ConfigError::of(
                        "success_status",
                        ConfigProblem::BadSuccessStatus,
                    ));
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
    pub fn merge_edit(old: &GatewayConfig, edit: &Value) -> Result<Value, ConfigError> {
        let old_json = old.to_json();
        let mut merged = edit.clone();
        let Some(object) = merged.as_object_mut() else {
            return Ok(merged);
        };
        let url_field = old.kind().url_field().unwrap_or("");
        let moved = match (old_json.get(url_field), object.get(url_field)) {
            (Some(Value::String(a)), Some(Value::String(b))) => origin(a) != origin(b),
            // Twilio's api_base may be left out (the default); others are required anyway.
            (Some(Value::String(a)), None) if old.kind() == GatewayKind::Twilio => {
                origin(a) != origin(DEFAULT_API_BASE)
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
                    return Err(ConfigError::of(
                        field,
                        ConfigProblem::SecretMoved(url_field),
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
                            let name = name.as_ref().and_then(Value::as_str).unwrap_or("?");
                            return Err(ConfigError::of(
                                list,
                                ConfigProblem::ValueMoved(name.to_string()),
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
    let u = url::Url::parse(url).ok()?;
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

impl fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callbacks")
            .field("base", &self.base)
            .field("gateway_id", &self.gateway_id)
            .field("secret", &"***")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(e: &ConfigError) -> Option<&str> {
        e.field.as_deref()
    }

    #[test]
    fn checks_each_kind_and_names_the_field() {
        let ok = json!({"sendsms_url": "http://127.0.0.1:13013/cgi-bin/sendsms", "username": "u", "password": "p"});
        assert!(GatewayConfig::parse(GatewayKind::Kannel, &ok).is_ok());
        let bad = json!({"sendsms_url": "ftp://x", "username": "u", "password": "p"});
        let e = GatewayConfig::parse(GatewayKind::Kannel, &bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config.sendsms_url: must start with http:// or https://"
        );
        assert_eq!(
            (field_of(&e), &e.problem, e.path().as_str()),
            (
                Some("sendsms_url"),
                &ConfigProblem::NotHttp,
                "config.sendsms_url"
            )
        );
        let missing = json!({"sendsms_url": "http://x/", "username": "u"});
        let e = GatewayConfig::parse(GatewayKind::Kannel, &missing).unwrap_err();
        assert_eq!(e.to_string(), "config: missing field `password`");
        assert_eq!(field_of(&e), None);
        let twilio = json!({"account_sid": "AC1", "auth_token": "t"});
        let e = GatewayConfig::parse(GatewayKind::Twilio, &twilio).unwrap_err();
        assert_eq!(
            (field_of(&e), &e.problem),
            (Some("from"), &ConfigProblem::NoSender)
        );
        assert_eq!(
            e.to_string(),
            "config.from: give a sender number or a messaging_service_sid"
        );
        let e = GatewayConfig::parse(GatewayKind::Log, &json!([])).unwrap_err();
        assert_eq!(e.to_string(), "config: must be an object");
        let huge =
            json!({"url": "http://x/", "method": "GET", "params": [["a", "b".repeat(20_000)]]});
        let e = GatewayConfig::parse(GatewayKind::Http, &huge).unwrap_err();
        assert_eq!(
            (field_of(&e), e.to_string().as_str()),
            (None, "config: larger than 16384 bytes")
        );
    }

    #[test]
    fn each_problem_names_its_field() {
        let kannel = |v: Value| GatewayConfig::parse(GatewayKind::Kannel, &v).unwrap_err();
        let e = kannel(json!({"sendsms_url": "http://k/", "username": " ", "password": "p"}));
        assert_eq!(e.to_string(), "config.username: is required");
        let e = kannel(json!({"sendsms_url": "http://k/", "username": "u", "password": MASK}));
        assert_eq!(e.to_string(), "config.password: is required");
        let e = kannel(
            json!({"sendsms_url": "http://k/", "username": "u", "password": "p", "smsc": "a\nb"}),
        );
        assert_eq!(
            e.to_string(),
            "config.smsc: must be at most 500 characters with no control characters"
        );
        let e = kannel(json!({"sendsms_url": "http://", "username": "u", "password": "p"}));
        assert_eq!(
            e.to_string(),
            "config.sendsms_url: is not a valid URL of at most 2000 characters"
        );
        let e = kannel(json!({"sendsms_url": 5, "username": "u", "password": "p"}));
        assert_eq!(field_of(&e), Some("sendsms_url"));
        assert!(matches!(e.problem, ConfigProblem::Shape(_)), "{e}");
        let http = |v: Value| GatewayConfig::parse(GatewayKind::Http, &v).unwrap_err();
        let e = http(json!({"url": "http://h/", "method": "GET", "success_status": [300, 200]}));
        assert_eq!(
            e.to_string(),
            "config.success_status: must be [low, high] HTTP status codes"
        );
        let e = http(json!({"url": "http://h/", "method": "PUT"}));
        assert_eq!(field_of(&e), Some("method"));
        let e =
            http(json!({"url": "http://h/", "method": "GET", "params": [["a", "b"], [1, "c"]]}));
        assert_eq!(field_of(&e), Some("params[1][0]"));
        let many: Vec<Value> = (0..51).map(|i| json!([format!("p{i}"), "v"])).collect();
        let e = http(json!({"url": "http://h/", "method": "GET", "headers": many}));
        assert_eq!(
            e.to_string(),
            "config.params: at most 50 parameters and 50 headers"
        );
        assert_eq!(
            GatewayKind::parse("smpp").unwrap_err().to_string(),
            "unknown gateway kind \"smpp\": use kannel, twilio, http or log"
        );
        assert_eq!(GatewayKind::parse("http"), Ok(GatewayKind::Http));
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
        let e = GatewayConfig::merge_edit(&c, &moved).unwrap_err();
        assert_eq!(
            (field_of(&e), &e.problem),
            (Some("password"), &ConfigProblem::SecretMoved("sendsms_url"))
        );
        assert_eq!(
            e.to_string(),
            "config.password: type it again: the gateway's address (sendsms_url) changed"
        );
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
        let e = GatewayConfig::merge_edit(&h, &moved).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config.params: type the value of key again: the gateway's address (url) changed"
        );
        assert_eq!(field_of(&e), Some("params"));
        // A renamed parameter cannot take the stored value, and the mask is never stored.
        let mut renamed = shown.clone();
        renamed["params"][1][0] = json!("apikey");
        let merged = GatewayConfig::merge_edit(&h, &renamed).unwrap();
        let e = GatewayConfig::parse(GatewayKind::Http, &merged).unwrap_err();
        assert_eq!(
            (field_of(&e), &e.problem),
            (Some("params"), &ConfigProblem::MaskedValue("apikey".into()))
        );
        assert_eq!(
            e.to_string(),
            "config.params: type the value of apikey again"
        );
    }

    #[test]
    fn the_kannel_config_reads_from_json_without_the_optional_fields() {
        let config: KannelConfig = serde_json::from_str(
            r#"{"sendsms_url": "http://k:13013/cgi-bin/sendsms", "username": "u",
                "password": "secret", "dlr_url": "http://c/hooks/kannel/1"}"#,
        )
        .unwrap();
        assert_eq!((&config.from, &config.smsc), (&None, &None));
        assert!(!format!("{config:?}").contains("secret"));
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
