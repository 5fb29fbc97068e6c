//! Gateway pages: the list (everyone), and for admins the create form, the edit form, delete,
//! and the webhook URLs to set up in the gateway (they hold the gateway's secret).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use casecast_core::case::FieldError;
use casecast_core::gateway::config::GatewayKind;
use casecast_store::gateways::Gateway;
use casecast_store::StoreError;
use serde::Deserialize;

use super::gateway_form::{form_field, label, GatewayForm};
use super::{html, Chrome, DoneQuery};
use crate::api::gateways::address_allowed;
use crate::auth::ProjectPage;
use crate::error::PageResult;
use crate::AppState;

/// A gateway in the list.
pub(super) struct GatewayRow {
    id: i64,
    name: String,
    kind: &'static str,
    is_default: bool,
    rate: String,
    prefixes: String,
    max_attempts: i64,
}

impl GatewayRow {
    fn new(g: &Gateway) -> Self {
        GatewayRow {
            id: g.id,
            name: g.name.clone(),
            kind: g.kind.as_str(),
            is_default: g.is_default,
            rate: match g.max_segments_per_second {
                Some(r) => format!("{r} segments/s"),
                None => "no limit".into(),
            },
            prefixes: g.prefixes.join(", "),
            max_attempts: g.max_attempts,
        }
    }
}

/// The gateway form as a page shows it, with the error of the last attempt.
pub(super) struct FormView {
    form: GatewayForm,
    error: Option<FieldError>,
    editing: bool,
}

impl FormView {
    /// The error's message when it is about `field`.
    fn err(&self, field: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    /// The error as the top of the form says it: which field, and what is wrong.
    fn summary(&self) -> Option<String> {
        self.error
            .as_ref()
            .map(|e| format!("{}: {}", label(&e.field), e.message))
    }

    /// Whether the fields of `kind` are shown.
    fn shows(&self, kind: &str) -> bool {
        !self.editing || self.form.kind == kind
    }
}

/// A webhook to set up in the gateway.
struct Hook {
    what: &'static str,
    url: String,
}

#[derive(Template)]
#[template(path = "gateways.html")]
struct GatewaysPage {
    chrome: Chrome,
    slug: String,
    is_admin: bool,
    gateways: Vec<GatewayRow>,
    fv: FormView,
    notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "gateway.html")]
struct GatewayPage {
    chrome: Chrome,
    slug: String,
    is_admin: bool,
    gateway: GatewayRow,
    fv: FormView,
    hooks: Vec<Hook>,
    kannel_service: Option<String>,
    notice: Option<&'static str>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "created" => Some("The gateway was created. Set up the webhooks below in the gateway."),
        "saved" => Some("The changes were saved."),
        "deleted" => Some("The gateway was deleted; messages still queued for it were cancelled."),
        _ => None,
    }
}

/// Where gateways reach this server by default (`WebConfig::callback_base`), pre-filled in
/// the form.
fn default_base(state: &AppState, headers: &HeaderMap) -> String {
    state
        .config
        .callback_base(headers)
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_string())
}

fn list_url(page: &ProjectPage) -> String {
    format!("/a/{}/messaging/gateways", page.project.slug)
}

async fn render_list(
    state: &AppState,
    page: &ProjectPage,
    status: StatusCode,
    fv: FormView,
    notice: Option<&'static str>,
) -> PageResult<Response> {
    let gateways = state.db.list_gateways(page.project.id).await?;
    let view = GatewaysPage {
        chrome: Chrome::project(page, "gateways"),
        slug: page.project.slug.clone(),
        is_admin: page.require_admin().is_ok(),
        gateways: gateways.iter().map(GatewayRow::new).collect(),
        fv,
        notice,
    };
    Ok((status, html(&view)?).into_response())
}

/// `GET …/messaging/gateways`.
pub(super) async fn list(
    State(state): State<AppState>,
    page: ProjectPage,
    headers: HeaderMap,
    Query(q): Query<DoneQuery>,
) -> PageResult<Response> {
    let fv = FormView {
        form: GatewayForm {
            kind: "kannel".into(),
            callback_base_url: default_base(&state, &headers),
            ..Default::default()
        },
        error: None,
        editing: false,
    };
    render_list(&state, &page, StatusCode::OK, fv, notice(q.done.as_deref())).await
}

/// The status and the error (keyed by form field) for a refused form.
fn refused(
    kind: Option<GatewayKind>,
    e: StoreError,
) -> Result<(StatusCode, FieldError), StoreError> {
    match e {
        StoreError::Invalid(f) => {
            let field = match kind {
                Some(k) => form_field(k, &f.field),
                None => f.field,
            };
            // The store speaks to API clients; on the page, no limit is an empty field.
            let message = f
                .message
                .replace(", or null for no limit", "; leave it empty for no limit");
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                FieldError::new(field, message),
            ))
        }
        StoreError::Conflict { message, .. } => {
            Ok((StatusCode::CONFLICT, FieldError::new("name", message)))
        }
        other => Err(other),
    }
}

/// `POST …/messaging/gateways`: create (admins).
pub(super) async fn create(
    State(state): State<AppState>,
    page: ProjectPage,
    Form(form): Form<GatewayForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_admin()?;
    let kind = form.parsed_kind().ok();
    let outcome = match form.new_gateway() {
        Ok(new) => match address_allowed(&state.config, new.kind, &new.config).await {
            Ok(()) => state.db.create_gateway(page.project.id, &new).await,
            Err(e) => Err(e),
        },
        Err(f) => Err(StoreError::Invalid(f)),
    };
    match outcome {
        Ok(g) => {
            Ok(Redirect::to(&format!("{}/{}?done=created", list_url(&page), g.id)).into_response())
        }
        Err(e) => {
            let (status, error) = refused(kind, e)?;
            let fv = FormView {
                form: form.without_secrets(),
                error: Some(error),
                editing: false,
            };
            render_list(&state, &page, status, fv, None).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct GatewayPath {
    #[allow(dead_code)]
    project: String,
    id: i64,
}

async fn render_gateway(
    page: &ProjectPage,
    gateway: &Gateway,
    status: StatusCode,
    fv: FormView,
    notice: Option<&'static str>,
) -> PageResult<Response> {
    let is_admin = page.require_admin().is_ok();
    let callbacks = gateway.callbacks();
    let mut hooks = Vec::new();
    let mut kannel_service = None;
    // The URLs carry the webhook secret: only admins see them.
    if is_admin {
        match gateway.kind {
            GatewayKind::Kannel => {
                let get_url = casecast_gateways::kannel::mo_get_url(&callbacks.url("mo"));
                kannel_service = Some(format!(
                    "# in the smsbox group: mo-recode = true (UCS-2 replies arrive as UTF-8)\ngroup = sms-service\nkeyword = default\ncatch-all = true\nmax-messages = 0\naccept-x-kannel-headers = true\nget-url = \"{get_url}\""
                ));
                hooks.push(Hook {
                    what: "Incoming messages: the get-url of Kannel's sms-service",
                    url: get_url,
                });
            }
            GatewayKind::Twilio => hooks.push(Hook {
                what: "Incoming messages: the phone number's “A message comes in” webhook (HTTP POST)",
                url: callbacks.url("inbound"),
            }),
            GatewayKind::Http => hooks.push(Hook {
                what: "Incoming messages, if the aggregator forwards them",
                url: callbacks.url("inbound"),
            }),
            GatewayKind::Log => hooks.push(Hook {
                what: "Incoming messages, to try keywords and surveys: POST the fields from, to and text",
                url: callbacks.url("inbound"),
            }),
        }
    }
    let view = GatewayPage {
        chrome: Chrome::project(page, "gateways"),
        slug: page.project.slug.clone(),
        is_admin,
        gateway: GatewayRow::new(gateway),
        fv,
        hooks,
        kannel_service,
        notice,
    };
    Ok((status, html(&view)?).into_response())
}

/// `GET …/messaging/gateways/{id}`: the gateway; its settings and webhooks for admins.
pub(super) async fn show(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<GatewayPath>,
    Query(q): Query<DoneQuery>,
) -> PageResult<Response> {
    let gateway = state.db.gateway(page.project.id, p.id).await?;
    let fv = FormView {
        form: GatewayForm::from_gateway(&gateway),
        error: None,
        editing: true,
    };
    render_gateway(
        &page,
        &gateway,
        StatusCode::OK,
        fv,
        notice(q.done.as_deref()),
    )
    .await
}

/// `POST …/messaging/gateways/{id}`: save changes (admins).
pub(super) async fn update(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<GatewayPath>,
    Form(mut form): Form<GatewayForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_admin()?;
    let gateway = state.db.gateway(page.project.id, p.id).await?;
    let outcome = match form.patch(gateway.kind) {
        Ok(patch) => {
            let settings = patch.config.clone().unwrap_or_default();
            match address_allowed(&state.config, gateway.kind, &settings).await {
                Ok(()) => state.db.update_gateway(page.project.id, p.id, &patch).await,
                Err(e) => Err(e),
            }
        }
        Err(f) => Err(StoreError::Invalid(f)),
    };
    match outcome {
        Ok(_) => {
            Ok(Redirect::to(&format!("{}/{}?done=saved", list_url(&page), p.id)).into_response())
        }
        Err(e) => {
            let (status, error) = refused(Some(gateway.kind), e)?;
            form.kind = gateway.kind.as_str().to_string();
            let fv = FormView {
                form: form.without_secrets(),
                error: Some(error),
                editing: true,
            };
            render_gateway(&page, &gateway, status, fv, None).await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST …/messaging/gateways/{id}/delete` (admins).
pub(super) async fn delete(
    State(state): State<AppState>,
    page: ProjectPage,
    Path(p): Path<GatewayPath>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    page.me.check_csrf(&form.csrf)?;
    page.require_admin()?;
    state.db.delete_gateway(page.project.id, p.id).await?;
    Ok(Redirect::to(&format!("{}?done=deleted", list_url(&page))).into_response())
}
