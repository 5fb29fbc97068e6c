//! Gateway webhooks at `/hooks/{gateway_id}/{secret}/{what}`: delivery reports and inbound
//! messages. Gateways are not browsers: no login and no CSRF token; the per-gateway secret in
//! the path (and, for Twilio, the `X-Twilio-Signature` header) is what authenticates them.
//!
//! The path holds the secret, so nothing here logs it: the request metrics and log record the
//! route template only (`metrics::track`), and these handlers log ids and outcomes, never a
//! phone number or a message text.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use casecast_core::gateway::config::{GatewayConfig, GatewayKind};
use casecast_core::gateway::{DeliveryReport, InboundSms, MessageRef};
use casecast_gateways::{http, kannel, twilio};
use casecast_store::gateways::Gateway;
use casecast_store::StoreError;

use crate::AppState;

/// The largest webhook body accepted: gateways send a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The webhook routes, GET and POST alike (gateways use either).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/hooks/{gateway_id}/{secret}/{what}", get(hook).post(hook))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// What a webhook can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    /// Kannel's dlr-url.
    Dlr,
    /// Kannel's sms-service get-url.
    Mo,
    /// Twilio's StatusCallback.
    Status,
    /// Twilio's incoming-message webhook, or a generic HTTP gateway's.
    Inbound,
}

impl What {
    fn parse(s: &str) -> Option<What> {
        match s {
            "dlr" => Some(What::Dlr),
            "mo" => Some(What::Mo),
            "status" => Some(What::Status),
            "inbound" => Some(What::Inbound),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            What::Dlr => "dlr",
            What::Mo => "mo",
            What::Status => "status",
            What::Inbound => "inbound",
        }
    }

    /// Whether a gateway of `kind` calls this webhook.
    fn fits(self, kind: GatewayKind) -> bool {
        matches!(
            (kind, self),
            (GatewayKind::Kannel, What::Dlr | What::Mo)
                | (GatewayKind::Twilio, What::Status | What::Inbound)
                | (GatewayKind::Http | GatewayKind::Log, What::Inbound)
        )
    }
}

/// A webhook's answer when it is refused: a status and a plain-text reason.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.1),
        )
            .into_response()
    }
}

fn forbidden(why: &str) -> Refusal {
    Refusal(StatusCode::FORBIDDEN, format!("forbidden: {why}"))
}

fn not_found() -> Refusal {
    Refusal(
        StatusCode::NOT_FOUND,
        "not found: this gateway has no such webhook".into(),
    )
}

fn bad_request(why: impl std::fmt::Display) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, why.to_string())
}

fn internal(e: StoreError, gateway_id: i64, what: What) -> Refusal {
    tracing::error!(error = %e, gateway.id = gateway_id, hook = what.as_str(), "webhook: storing failed");
    Refusal(
        StatusCode::INTERNAL_SERVER_ERROR,
        "something went wrong; it has been logged".into(),
    )
}

/// The request's parameters: the raw query string, and the form fields of a POST body.
struct Params {
    query: String,
    /// The raw form body (empty for GET or an empty body).
    form: String,
}

impl Params {
    fn read(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Params, Refusal> {
        let mut form = String::new();
        if *method == Method::POST && !body.is_empty() {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !content_type
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
            {
                return Err(bad_request(
                    "send the parameters in the query string or as application/x-www-form-urlencoded",
                ));
            }
            form = std::str::from_utf8(body)
                .map_err(|_| bad_request("the form body is not UTF-8"))?
                .to_string();
        }
        Ok(Params {
            query: uri.query().unwrap_or("").to_string(),
            form,
        })
    }

    /// Query and form as one query string (Kannel's parsers read raw, undecoded text).
    fn raw(&self) -> String {
        match (self.query.is_empty(), self.form.is_empty()) {
            (_, true) => self.query.clone(),
            (true, false) => self.form.clone(),
            (false, false) => format!("{}&{}", self.query, self.form),
        }
    }

    fn decode(raw: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The decoded form fields (what Twilio signs).
    fn form_fields(&self) -> Vec<(String, String)> {
        Params::decode(&self.form)
    }

    /// The decoded form fields, then the query's.
    fn all_fields(&self) -> Vec<(String, String)> {
        let mut fields = self.form_fields();
        fields.extend(Params::decode(&self.query));
        fields
    }

    /// The first query parameter `name`.
    fn query_field(&self, name: &str) -> Option<String> {
        Params::decode(&self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// `GET|POST /hooks/{gateway_id}/{secret}/{what}`.
async fn hook(
    State(state): State<AppState>,
    Path((gateway_id, secret, what)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match handle(
        &state,
        &gateway_id,
        &secret,
        &what,
        &method,
        &uri,
        &headers,
        &body,
    )
    .await
    {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    state: &AppState,
    gateway_id: &str,
    secret: &str,
    what: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, Refusal> {
    let what = What::parse(what).ok_or_else(not_found)?;
    // An id that is not a number names no gateway: refused like a wrong secret.
    let id: i64 = gateway_id
        .parse()
        .map_err(|_| forbidden("unknown gateway or wrong secret"))?;
    let gateway = match state.db.gateway_for_webhook(id, secret).await {
        Ok(g) => g,
        Err(StoreError::NotFound(_)) => {
            tracing::warn!(
                gateway.id = id,
                hook = what.as_str(),
                "webhook: unknown gateway or wrong secret"
            );
            return Err(forbidden("unknown gateway or wrong secret"));
        }
        Err(e) => return Err(internal(e, id, what)),
    };
    if !what.fits(gateway.kind) {
        return Err(not_found());
    }
    let params = Params::read(method, uri, headers, body)?;
    if gateway.kind == GatewayKind::Twilio {
        check_twilio_signature(&gateway, uri, headers, &params, what)?;
    }
    match (gateway.kind, what) {
        (GatewayKind::Kannel, What::Dlr) => {
            let report = kannel::parse_dlr(&params.raw()).map_err(bad_request)?;
            apply_report(state, &gateway, &report, what).await?;
            Ok(StatusCode::OK.into_response())
        }
        (GatewayKind::Kannel, What::Mo) => {
            let sms = kannel::parse_mo(&params.raw()).map_err(bad_request)?;
            record(state, &gateway, &sms, what).await?;
            // smsbox sends a non-empty answer back to the phone as a reply: answer nothing.
            Ok(StatusCode::OK.into_response())
        }
        (GatewayKind::Twilio, What::Status) => {
            let mut report =
                twilio::parse_status_callback(&params.all_fields()).map_err(bad_request)?;
            // Our id in the StatusCallback URL finds the message even before its sid is stored.
            if let Some(ours) = params.query_field("id") {
                let ours = ours
                    .parse()
                    .map_err(|_| bad_request(format!("the id {ours:?} is not a message id")))?;
                report.message = MessageRef::Ours(ours);
            }
            apply_report(state, &gateway, &report, what).await?;
            Ok(StatusCode::OK.into_response())
        }
        (GatewayKind::Twilio, What::Inbound) => {
            let sms = twilio::parse_inbound(&params.all_fields()).map_err(bad_request)?;
            record(state, &gateway, &sms, what).await?;
            // Empty TwiML: Twilio sends no reply.
            Ok((
                [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
                "<Response></Response>",
            )
                .into_response())
        }
        // A log gateway takes inbound messages in an HTTP gateway's form, so that keywords and
        // survey replies can be tried before a real gateway is set up (the replies go out
        // through the log gateway: recorded as sent, sent nowhere).
        (GatewayKind::Http | GatewayKind::Log, What::Inbound) => {
            let sms = http::parse_inbound(&params.all_fields()).map_err(bad_request)?;
            record(state, &gateway, &sms, what).await?;
            Ok(StatusCode::OK.into_response())
        }
        _ => Err(not_found()),
    }
}

/// Refuses a Twilio request whose `X-Twilio-Signature` is missing or is not Twilio's signature
/// of the URL it was sent to (the gateway's callback base, the path and the raw query, as
/// configured at Twilio) with the form fields.
fn check_twilio_signature(
    gateway: &Gateway,
    uri: &Uri,
    headers: &HeaderMap,
    params: &Params,
    what: What,
) -> Result<(), Refusal> {
    let GatewayConfig::Twilio(config) = &gateway.config else {
        return Err(not_found());
    };
    let Some(claimed) = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
    else {
        tracing::warn!(
            gateway.id = gateway.id,
            hook = what.as_str(),
            "webhook: no X-Twilio-Signature"
        );
        return Err(forbidden("the X-Twilio-Signature header is missing"));
    };
    let mut url = format!(
        "{}{}",
        gateway.callback_base_url.trim_end_matches('/'),
        uri.path()
    );
    if let Some(query) = uri.query() {
        url.push('?');
        url.push_str(query);
    }
    if !twilio::verify_signature(&config.auth_token, &url, &params.form_fields(), claimed) {
        tracing::warn!(
            gateway.id = gateway.id,
            hook = what.as_str(),
            "webhook: wrong X-Twilio-Signature"
        );
        return Err(forbidden("the X-Twilio-Signature does not match"));
    }
    Ok(())
}

async fn apply_report(
    state: &AppState,
    gateway: &Gateway,
    report: &DeliveryReport,
    what: What,
) -> Result<(), Refusal> {
    let known = state
        .db
        .apply_delivery_report(gateway, &report.message, report.status, &report.detail)
        .await
        .map_err(|e| internal(e, gateway.id, what))?;
    let message_id = match &report.message {
        MessageRef::Ours(id) => Some(*id),
        MessageRef::Gateway(_) => None,
    };
    if known {
        tracing::info!(gateway.id = gateway.id, message.id = message_id, status = ?report.status, "webhook: delivery report");
    } else {
        // Answered 200 all the same: the gateway cannot do better by sending it again.
        tracing::warn!(gateway.id = gateway.id, message.id = message_id, status = ?report.status, "webhook: delivery report for no message of this gateway");
    }
    Ok(())
}

async fn record(
    state: &AppState,
    gateway: &Gateway,
    sms: &InboundSms,
    what: What,
) -> Result<(), Refusal> {
    let outcome = casecast_engine::inbound::handle_inbound(&state.db, &*state.clock, gateway, sms)
        .await
        .map_err(|e| internal(e, gateway.id, what))?;
    tracing::info!(
        gateway.id = gateway.id,
        message.id = outcome.message.id,
        recorded = outcome.recorded,
        intent = ?outcome.intent,
        "webhook: inbound message"
    );
    Ok(())
}
