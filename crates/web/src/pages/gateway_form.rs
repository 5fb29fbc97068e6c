//! The gateway form: what an admin types, turned into the settings the store checks, and back
//! (credentials never shown again); errors carry the form's own field names.

use casecast_core::case::FieldError;
use casecast_core::gateway::config::{GatewayConfig, GatewayKind, MASK};
use casecast_store::gateways::{Gateway, GatewayPatch, NewGateway};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Most lines in the HTTP parameters or headers box.
const MAX_LINES: usize = 50;

/// The form's fields, as typed. One form serves every kind: each kind's fields have its prefix.
/// No `Debug`: it holds credentials.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct GatewayForm {
    pub csrf: String,
    pub name: String,
    pub kind: String,
    pub kannel_sendsms_url: String,
    pub kannel_username: String,
    pub kannel_password: String,
    pub kannel_from: String,
    pub kannel_smsc: String,
    pub twilio_account_sid: String,
    pub twilio_auth_token: String,
    pub twilio_from: String,
    pub twilio_messaging_service_sid: String,
    pub twilio_api_base: String,
    pub http_url: String,
    pub http_method: String,
    pub http_params: String,
    pub http_headers: String,
    pub http_success_low: String,
    pub http_success_high: String,
    pub http_success_contains: String,
    pub http_id_after: String,
    pub max_segments_per_second: String,
    pub max_attempts: String,
    pub prefixes: String,
    pub is_default: Option<String>,
    pub callback_base_url: String,
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Inserts `key` when the trimmed value is not empty.
fn put_opt(object: &mut Map<String, Value>, key: &str, value: &str) {
    if let Some(v) = opt(value) {
        object.insert(key.into(), Value::String(v));
    }
}

/// `name=value` (or `Name: value` for headers) lines as pairs; blank lines are skipped.
fn pairs(text: &str, sep: char, field: &str) -> Result<Vec<Value>, FieldError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(sep) else {
            return Err(FieldError::new(
                field,
                format!("line {}: write name{sep}value", n + 1),
            ));
        };
        let value = if sep == ':' { value.trim() } else { value };
        out.push(json!([name.trim(), value]));
        if out.len() > MAX_LINES {
            return Err(FieldError::new(field, format!("at most {MAX_LINES} lines")));
        }
    }
    Ok(out)
}

fn status_code(text: &str, default: u16) -> Result<u16, FieldError> {
    match opt(text) {
        None => Ok(default),
        Some(t) => t
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .ok_or_else(|| {
                FieldError::new(
                    "http_success_status",
                    "must be HTTP status codes from 100 to 599",
                )
            }),
    }
}

/// The form field an error of the store names (`config.sendsms_url` → `kannel_sendsms_url`).
pub(super) fn form_field(kind: GatewayKind, store_field: &str) -> String {
    match store_field.strip_prefix("config.") {
        Some(rest) => {
            let name = rest.split(['.', '[']).next().unwrap_or(rest);
            format!("{}_{name}", kind.as_str())
        }
        None => store_field.to_string(),
    }
}

/// What the page calls a field, for the error at the top of the form.
pub(super) fn label(field: &str) -> &'static str {
    match field {
        "name" => "Name",
        "kind" => "Kind",
        "kannel_sendsms_url" => "sendsms URL",
        "kannel_username" => "Username",
        "kannel_password" => "Password",
        "kannel_from" => "Sender (from)",
        "kannel_smsc" => "SMSC id",
        "twilio_account_sid" => "Account SID",
        "twilio_auth_token" => "Auth token",
        "twilio_from" => "Sender (from)",
        "twilio_messaging_service_sid" => "Messaging service SID",
        "twilio_api_base" => "API base URL",
        "http_url" => "URL",
        "http_method" => "Method",
        "http_params" => "Parameters",
        "http_headers" => "Headers",
        "http_success_status" => "Success status range",
        "http_success_contains" => "Success text",
        "http_id_after" => "Message id after",
        "max_segments_per_second" => "Rate limit",
        "max_attempts" => "Attempts per message",
        "prefixes" => "Number prefixes",
        "is_default" => "Default gateway",
        "callback_base_url" => "Callback base URL",
        _ => "Settings",
    }
}

impl GatewayForm {
    /// The kind chosen in the form.
    pub fn parsed_kind(&self) -> Result<GatewayKind, FieldError> {
        GatewayKind::parse(self.kind.trim())
            .map_err(|_| FieldError::new("kind", "choose Kannel, Twilio, HTTP or log"))
    }

    /// The settings JSON for `kind`. When `editing`, an empty credential becomes the mask, so
    /// that the stored one is kept.
    fn config(&self, kind: GatewayKind, editing: bool) -> Result<Value, FieldError> {
        let secret = |typed: &str| {
            if editing && typed.is_empty() {
                MASK.to_string()
            } else {
                typed.to_string()
            }
        };
        let mut c = Map::new();
        match kind {
            GatewayKind::Kannel => {
                c.insert("sendsms_url".into(), json!(self.kannel_sendsms_url.trim()));
                c.insert("username".into(), json!(self.kannel_username.trim()));
                c.insert("password".into(), json!(secret(&self.kannel_password)));
                put_opt(&mut c, "from", &self.kannel_from);
                put_opt(&mut c, "smsc", &self.kannel_smsc);
            }
            GatewayKind::Twilio => {
                c.insert("account_sid".into(), json!(self.twilio_account_sid.trim()));
                c.insert("auth_token".into(), json!(secret(&self.twilio_auth_token)));
                put_opt(&mut c, "from", &self.twilio_from);
                put_opt(
                    &mut c,
                    "messaging_service_sid",
                    &self.twilio_messaging_service_sid,
                );
                put_opt(&mut c, "api_base", &self.twilio_api_base);
            }
            GatewayKind::Http => {
                c.insert("url".into(), json!(self.http_url.trim()));
                let method = match self.http_method.trim() {
                    "" | "GET" => "GET",
                    "POST" => "POST",
                    _ => return Err(FieldError::new("http_method", "choose GET or POST")),
                };
                c.insert("method".into(), json!(method));
                c.insert(
                    "params".into(),
                    Value::Array(pairs(&self.http_params, '=', "http_params")?),
                );
                c.insert(
                    "headers".into(),
                    Value::Array(pairs(&self.http_headers, ':', "http_headers")?),
                );
                let low = status_code(&self.http_success_low, 200)?;
                let high = status_code(&self.http_success_high, 299)?;
                c.insert("success_status".into(), json!([low, high]));
                put_opt(&mut c, "success_contains", &self.http_success_contains);
                put_opt(&mut c, "id_after", &self.http_id_after);
            }
            GatewayKind::Log => {}
        }
        Ok(Value::Object(c))
    }

    fn rate(&self) -> Result<Option<f64>, FieldError> {
        match opt(&self.max_segments_per_second) {
            None => Ok(None),
            Some(t) => t.parse::<f64>().map(Some).map_err(|_| {
                FieldError::new(
                    "max_segments_per_second",
                    "must be a number of segments per second (e.g. 10 or 0.5), or empty for no limit",
                )
            }),
        }
    }

    fn attempts(&self) -> Result<Option<i64>, FieldError> {
        match opt(&self.max_attempts) {
            None => Ok(None),
            Some(t) => t
                .parse::<i64>()
                .map(Some)
                .map_err(|_| FieldError::new("max_attempts", "must be a whole number")),
        }
    }

    fn prefix_list(&self) -> Vec<String> {
        self.prefixes.split(',').filter_map(opt).collect()
    }

    /// A new gateway from the form; errors name the form's fields.
    pub fn new_gateway(&self) -> Result<NewGateway, FieldError> {
        let kind = self.parsed_kind()?;
        Ok(NewGateway {
            name: self.name.clone(),
            kind,
            config: self.config(kind, false)?,
            callback_base_url: self.callback_base_url.clone(),
            max_segments_per_second: self.rate()?,
            max_attempts: self.attempts()?,
            prefixes: self.prefix_list(),
            is_default: self.is_default.is_some(),
        })
    }

    /// Changes to a gateway of `kind` (the kind itself never changes).
    pub fn patch(&self, kind: GatewayKind) -> Result<GatewayPatch, FieldError> {
        Ok(GatewayPatch {
            name: Some(self.name.clone()),
            config: Some(self.config(kind, true)?),
            callback_base_url: Some(self.callback_base_url.clone()),
            max_segments_per_second: Some(self.rate()?),
            max_attempts: self.attempts()?,
            prefixes: Some(self.prefix_list()),
            // An unticked box does not take the default away: another gateway must take it.
            is_default: self.is_default.as_ref().map(|_| true),
        })
    }

    /// The form again, credentials emptied (they are never sent back to the browser).
    pub fn without_secrets(mut self) -> Self {
        self.kannel_password.clear();
        self.twilio_auth_token.clear();
        self.csrf.clear();
        self
    }

    /// The form showing a stored gateway: credentials empty, HTTP values that may be keys masked.
    pub fn from_gateway(g: &Gateway) -> Self {
        let shown = g.config.masked_json();
        let text = |key: &str| {
            shown
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let lines = |key: &str, sep: &str| {
            shown
                .get(key)
                .and_then(Value::as_array)
                .map(|pairs| {
                    pairs
                        .iter()
                        .map(|p| {
                            format!(
                                "{}{sep}{}",
                                p.get(0).and_then(Value::as_str).unwrap_or_default(),
                                p.get(1).and_then(Value::as_str).unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default()
        };
        let mut form = GatewayForm {
            name: g.name.clone(),
            kind: g.kind.as_str().to_string(),
            max_segments_per_second: g
                .max_segments_per_second
                .map(|r| r.to_string())
                .unwrap_or_default(),
            max_attempts: g.max_attempts.to_string(),
            prefixes: g.prefixes.join(", "),
            is_default: g.is_default.then(|| "on".to_string()),
            callback_base_url: g.callback_base_url.clone(),
            ..Default::default()
        };
        match &g.config {
            GatewayConfig::Kannel(_) => {
                form.kannel_sendsms_url = text("sendsms_url");
                form.kannel_username = text("username");
                form.kannel_from = text("from");
                form.kannel_smsc = text("smsc");
            }
            GatewayConfig::Twilio(_) => {
                form.twilio_account_sid = text("account_sid");
                form.twilio_from = text("from");
                form.twilio_messaging_service_sid = text("messaging_service_sid");
                form.twilio_api_base = text("api_base");
            }
            GatewayConfig::Http(c) => {
                form.http_url = text("url");
                form.http_method = text("method");
                form.http_params = lines("params", "=");
                form.http_headers = lines("headers", ": ");
                form.http_success_low = c.success_status.0.to_string();
                form.http_success_high = c.success_status.1.to_string();
                form.http_success_contains = text("success_contains");
                form.http_id_after = text("id_after");
            }
            GatewayConfig::Log => {}
        }
        form
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_pairs_and_errors_name_the_line() {
        let p = pairs("to={to}\r\n\ntext={text}\nkey=a=b\n", '=', "http_params").unwrap();
        assert_eq!(
            p,
            vec![
                json!(["to", "{to}"]),
                json!(["text", "{text}"]),
                json!(["key", "a=b"])
            ]
        );
        let h = pairs("Authorization: Basic abc==\n", ':', "http_headers").unwrap();
        assert_eq!(h, vec![json!(["Authorization", "Basic abc=="])]);
        let e = pairs("to={to}\nnonsense\n", '=', "http_params").unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("http_params", "line 2: write name=value")
        );
    }

    #[test]
    fn store_fields_map_to_form_fields() {
        assert_eq!(
            form_field(GatewayKind::Kannel, "config.sendsms_url"),
            "kannel_sendsms_url"
        );
        assert_eq!(
            form_field(GatewayKind::Http, "config.params[0]"),
            "http_params"
        );
        assert_eq!(form_field(GatewayKind::Http, "name"), "name");
    }

    #[test]
    fn an_empty_credential_is_kept_when_editing_and_required_when_creating() {
        let form = GatewayForm {
            kind: "kannel".into(),
            kannel_sendsms_url: "http://k/cgi-bin/sendsms".into(),
            kannel_username: "u".into(),
            ..Default::default()
        };
        let editing = form.config(GatewayKind::Kannel, true).unwrap();
        assert_eq!(editing["password"], MASK);
        let creating = form.config(GatewayKind::Kannel, false).unwrap();
        assert_eq!(creating["password"], "");
        assert!(GatewayConfig::parse(GatewayKind::Kannel, &creating).is_err());
    }
}
