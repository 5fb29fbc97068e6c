//! `/gateways`: the project's SMS gateways. Anyone in the project may look (credentials masked);
//! only admins add, change and delete them, and only admins see the webhook URLs (they carry
//! the gateway's webhook secret).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use casecast_core::case::FieldError;
use casecast_core::gateway::config::GatewayKind;
use casecast_core::Role;
use casecast_store::gateways::{Gateway, GatewayPatch, NewGateway};
use casecast_store::StoreError;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::case_groups::ApiPath;
use super::{AdminAuth, ErrorBody, PageParams};
use crate::auth::ApiAuth;
use crate::error::{ApiError, ApiResult};
use crate::json::{ApiJson, ApiQuery};
use crate::{AppState, WebConfig};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_gateways, create_gateway))
        .routes(routes!(get_gateway, update_gateway, delete_gateway))
}

/// A gateway. Credentials in `config` show as `********`.
#[derive(Serialize, ToSchema)]
pub struct GatewayJson {
    pub id: i64,
    pub name: String,
    /// `kannel`, `twilio`, `http` or `log`.
    pub kind: String,
    /// The kind's settings, credentials masked; null for non-admins.
    #[schema(value_type = Option<Object>)]
    pub config: Value,
    /// Segments per second across all workers; null: no limit.
    pub max_segments_per_second: Option<f64>,
    /// Messages to numbers no gateway's prefix matches go through the default.
    pub is_default: bool,
    /// Numbers starting with one of these (`+256`) go through this gateway.
    pub prefixes: Vec<String>,
    /// Attempts per message before it fails.
    pub max_attempts: i64,
    /// Where the gateway reaches Casecast.
    pub callback_base_url: String,
    /// The URLs to give the gateway; admins only (null for others: they hold the secret).
    pub webhook_urls: Option<WebhookUrls>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub modified_at: String,
}

/// Where a gateway reports to Casecast. Each URL holds the gateway's webhook secret.
#[derive(Serialize, ToSchema)]
pub struct WebhookUrls {
    /// Delivery reports. Casecast gives this URL with every message it sends (Kannel's
    /// `dlr-url`, Twilio's `StatusCallback`); nothing to configure.
    pub delivery_reports: Option<String>,
    /// Inbound messages. Kannel: the `get-url` of smsbox's `sms-service`; Twilio: the
    /// number's "A message comes in" webhook (HTTP POST); HTTP gateways: where the aggregator
    /// forwards messages; `log` gateways: where to POST `from`, `to` and `text` to try
    /// keywords and surveys (an HTTP gateway's form).
    pub inbound: Option<String>,
}

impl WebhookUrls {
    fn of(g: &Gateway) -> WebhookUrls {
        let callbacks = g.callbacks();
        match g.kind {
            GatewayKind::Kannel => WebhookUrls {
                delivery_reports: Some(callbacks.url("dlr")),
                inbound: Some(casecast_gateways::kannel::mo_get_url(&callbacks.url("mo"))),
            },
            GatewayKind::Twilio => WebhookUrls {
                delivery_reports: Some(callbacks.url("status")),
                inbound: Some(callbacks.url("inbound")),
            },
            GatewayKind::Http => WebhookUrls {
                delivery_reports: None,
                inbound: Some(callbacks.url("inbound")),
            },
            GatewayKind::Log => WebhookUrls {
                delivery_reports: None,
                inbound: Some(callbacks.url("inbound")),
            },
        }
    }
}

impl GatewayJson {
    /// The gateway as `role` may see it.
    pub fn new(g: Gateway, role: Role) -> GatewayJson {
        GatewayJson {
            webhook_urls: (role == Role::Admin).then(|| WebhookUrls::of(&g)),
            id: g.id,
            name: g.name,
            kind: g.kind.as_str().to_string(),
            // Settings (URLs with keys in their query, account ids) are the admins' business;
            // others see which gateways exist and how they route.
            config: if role == Role::Admin {
                g.config.masked_json()
            } else {
                Value::Null
            },
            max_segments_per_second: g.max_segments_per_second,
            is_default: g.is_default,
            prefixes: g.prefixes,
            max_attempts: g.max_attempts,
            callback_base_url: g.callback_base_url,
            created_at: casecast_core::time::rfc3339(g.created_at),
            modified_at: casecast_core::time::rfc3339(g.modified_at),
        }
    }
}

/// A page of the project's gateways, by name.
#[derive(Serialize, ToSchema)]
pub struct GatewayList {
    pub gateways: Vec<GatewayJson>,
    pub next_cursor: Option<String>,
}

/// A new gateway.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGatewayBody {
    /// 1–100 characters, unique in the project ignoring case.
    pub name: String,
    /// `kannel`, `twilio`, `http` or `log`.
    pub kind: String,
    /// The kind's settings. Kannel: `{sendsms_url, username, password, from?, smsc?}`;
    /// Twilio: `{account_sid, auth_token, from? | messaging_service_sid?, api_base?}`;
    /// HTTP: `{url, method, params: [[name, value]], headers?, success_status?,
    /// success_contains?, id_after?}`; log: `{}` (the default).
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// Segments per second; absent or null: no limit.
    pub max_segments_per_second: Option<f64>,
    /// Make this the project's default (the first gateway always is).
    pub is_default: Option<bool>,
    /// Number prefixes routed through this gateway, e.g. `["+256"]`.
    pub prefixes: Option<Vec<String>>,
    /// 1–20; 5 when absent.
    pub max_attempts: Option<i64>,
    /// Where the gateway reaches Casecast; absent: the server's public URL, else the
    /// address this request was sent to.
    pub callback_base_url: Option<String>,
}

/// Changes to a gateway: absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayPatchBody {
    pub name: Option<String>,
    /// Accepted when it is the gateway's kind (so a read gateway can be sent back); a kind
    /// cannot change: add a new gateway instead.
    pub kind: Option<String>,
    /// The whole settings object; credentials left out or still showing `********` keep
    /// their stored values.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// Null removes the limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub max_segments_per_second: Option<Option<f64>>,
    /// `true` makes this the default; `false` is refused for the default (make another
    /// gateway the default instead).
    pub is_default: Option<bool>,
    pub prefixes: Option<Vec<String>>,
    pub max_attempts: Option<i64>,
    pub callback_base_url: Option<String>,
}

/// What a delete did.
#[derive(Serialize, ToSchema)]
pub struct GatewayDeleted {
    pub deleted: bool,
    /// Queued messages of this gateway, now `cancelled`.
    pub cancelled_messages: u64,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
pub struct GatewayPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

fn kind(s: &str) -> ApiResult<GatewayKind> {
    GatewayKind::parse(s).map_err(|e| ApiError::invalid(format!("kind: {e}")))
}

/// The callback base when the body gives none (`WebConfig::callback_base`), or 422.
fn default_callback_base(config: &WebConfig, headers: &HeaderMap) -> ApiResult<String> {
    config.callback_base(headers).ok_or_else(|| {
            ApiError::invalid(
                "callback_base_url: give the address at which the gateway reaches Casecast, e.g. http://casecast.example:8080",
            )
        })
}

/// Refuses settings whose address this server may not reach (a loopback, link-local or
/// private address not allowed by `--allow-gateway-host`); the error names the settings field
/// (`config.url`), the address and the flag that would allow it.
pub(crate) async fn address_allowed(
    config: &WebConfig,
    kind: GatewayKind,
    settings: &Value,
) -> Result<(), StoreError> {
    casecast_gateways::outbound::check_settings_address(&config.gateway_addresses, kind, settings)
        .await
        .map_err(|(field, refused)| {
            StoreError::Invalid(FieldError::new(
                format!("config.{field}"),
                refused.to_string(),
            ))
        })
}

/// List the project's gateways, by name.
#[utoipa::path(get, path = "/gateways", tag = "gateways", params(PageParams),
    responses((status = 200, body = GatewayList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_gateways(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<GatewayList>> {
    // A project has a handful of gateways: they are read whole and paged here, the cursor
    // being how many came before.
    let (limit, cursor) = page.checked()?;
    let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
    let all = state.db.list_gateways(auth.project.id).await?;
    let more = all.len() > skip.saturating_add(limit);
    Ok(Json(GatewayList {
        gateways: all
            .into_iter()
            .skip(skip)
            .take(limit)
            .map(|g| GatewayJson::new(g, auth.role))
            .collect(),
        next_cursor: more.then(|| (skip + limit).to_string()),
    }))
}

/// Add a gateway. Admins only.
///
/// The first gateway of a project becomes its default. 409 `name_taken` when another gateway
/// has the name; 422 names the field at fault (`config.sendsms_url: …`).
#[utoipa::path(post, path = "/gateways", tag = "gateways", request_body = NewGatewayBody,
    responses((status = 201, body = GatewayJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_gateway(
    State(state): State<AppState>,
    AdminAuth(auth): AdminAuth,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewGatewayBody>,
) -> ApiResult<(StatusCode, Json<GatewayJson>)> {
    let callback_base_url = match body.callback_base_url {
        Some(url) => url,
        None => default_callback_base(&state.config, &headers)?,
    };
    let new = NewGateway {
        name: body.name,
        kind: kind(&body.kind)?,
        config: body
            .config
            .unwrap_or_else(|| Value::Object(Default::default())),
        callback_base_url,
        max_segments_per_second: body.max_segments_per_second,
        max_attempts: body.max_attempts,
        prefixes: body.prefixes.unwrap_or_default(),
        is_default: body.is_default.unwrap_or(false),
    };
    address_allowed(&state.config, new.kind, &new.config).await?;
    let gateway = state.db.create_gateway(auth.project.id, &new).await?;
    tracing::info!(
        gateway.id = gateway.id,
        project.id = auth.project.id,
        kind = gateway.kind.as_str(),
        "gateway added"
    );
    Ok((
        StatusCode::CREATED,
        Json(GatewayJson::new(gateway, auth.role)),
    ))
}

/// Read a gateway.
#[utoipa::path(get, path = "/gateways/{id}", tag = "gateways", params(("id" = i64, Path)),
    responses((status = 200, body = GatewayJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_gateway(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiPath(p): ApiPath<GatewayPath>,
) -> ApiResult<Json<GatewayJson>> {
    let gateway = state.db.gateway(auth.project.id, p.id).await?;
    Ok(Json(GatewayJson::new(gateway, auth.role)))
}

/// Change a gateway. Admins only.
///
/// Credentials still showing `********` (or left out of `config`) keep their stored values.
#[utoipa::path(patch, path = "/gateways/{id}", tag = "gateways", params(("id" = i64, Path)), request_body = GatewayPatchBody,
    responses((status = 200, body = GatewayJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_gateway(
    State(state): State<AppState>,
    AdminAuth(auth): AdminAuth,
    ApiPath(p): ApiPath<GatewayPath>,
    ApiJson(body): ApiJson<GatewayPatchBody>,
) -> ApiResult<Json<GatewayJson>> {
    if body.kind.is_some() || body.config.is_some() {
        let old = state.db.gateway(auth.project.id, p.id).await?;
        if let Some(k) = &body.kind {
            if kind(k)? != old.kind {
                return Err(ApiError::invalid(format!(
                    "kind: this gateway is a {} gateway and stays one; add a new gateway for another kind",
                    old.kind.as_str()
                )));
            }
        }
        if let Some(config) = &body.config {
            address_allowed(&state.config, old.kind, config).await?;
        }
    }
    let patch = GatewayPatch {
        name: body.name,
        config: body.config,
        callback_base_url: body.callback_base_url,
        max_segments_per_second: body.max_segments_per_second,
        max_attempts: body.max_attempts,
        prefixes: body.prefixes,
        is_default: body.is_default,
    };
    let gateway = state
        .db
        .update_gateway(auth.project.id, p.id, &patch)
        .await?;
    tracing::info!(
        gateway.id = gateway.id,
        project.id = auth.project.id,
        "gateway changed"
    );
    Ok(Json(GatewayJson::new(gateway, auth.role)))
}

/// Delete a gateway. Admins only.
///
/// Its queued messages are cancelled; if it was the default, the oldest remaining gateway
/// becomes the default. Answers 200 with the number of messages cancelled.
#[utoipa::path(delete, path = "/gateways/{id}", tag = "gateways", params(("id" = i64, Path)),
    responses((status = 200, body = GatewayDeleted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_gateway(
    State(state): State<AppState>,
    AdminAuth(auth): AdminAuth,
    ApiPath(p): ApiPath<GatewayPath>,
) -> ApiResult<Json<GatewayDeleted>> {
    let cancelled = state.db.delete_gateway(auth.project.id, p.id).await?;
    tracing::info!(
        gateway.id = p.id,
        project.id = auth.project.id,
        cancelled,
        "gateway deleted"
    );
    Ok(Json(GatewayDeleted {
        deleted: true,
        cancelled_messages: cancelled,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    fn config(public_url: Option<&str>) -> WebConfig {
        WebConfig {
            public_url: public_url.map(str::to_string),
            ..WebConfig::default()
        }
    }

    #[test]
    fn the_callback_base_is_the_public_url_else_the_host_used() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "10.0.0.7:8080".parse().unwrap());
        assert_eq!(
            default_callback_base(&config(Some("https://cc.example.org")), &headers).unwrap(),
            "https://cc.example.org"
        );
        assert_eq!(
            default_callback_base(&config(None), &headers).unwrap(),
            "http://10.0.0.7:8080"
        );
        let err = default_callback_base(&config(None), &HeaderMap::new()).unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            err.message.starts_with("callback_base_url:"),
            "{}",
            err.message
        );
    }
}
