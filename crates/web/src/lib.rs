//! Casecast's HTTP layer: pages, the JSON API, auth, metrics; `serve` runs it.

pub mod api;
pub mod auth;
pub mod case_query;
pub mod downloads;
pub mod error;
pub mod hooks;
pub mod json;
pub mod metrics;
pub mod pages;
pub mod server;

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use casecast_engine::clock::SharedClock;
use casecast_engine::permits::Permits;
use casecast_engine::supervise::Health;
use casecast_store::Db;
use tokio::net::TcpListener;
use utoipa_swagger_ui::SwaggerUi;

/// Settings of the web layer.
#[derive(Clone, Debug, Default)]
pub struct WebConfig {
    /// Mark cookies `Secure` (set when Casecast is served over HTTPS).
    pub secure_cookies: bool,
    /// The address at which gateways reach this server (for webhook URLs), e.g.
    /// `https://casecast.example`; when unset, the address the user's browser used.
    pub public_url: Option<String>,
    /// When set, `/metrics` answers only requests that bear this token.
    pub metrics_token: Option<String>,
    /// The addresses gateways may be set up at (`--allow-gateway-host`).
    pub gateway_addresses: casecast_gateways::AddressPolicy,
    /// Bounds on connections and on costly work.
    pub limits: ServerLimits,
}

/// How many connections, and how much costly work, the server takes on at once, and how long
/// it waits for a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once; more wait in the listen queue until one closes.
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers, counted from when it
    /// opened or its previous response was sent: idle connections are closed after it too.
    pub header_timeout: std::time::Duration,
    /// How long a request's body may take to arrive, in all.
    pub body_timeout: std::time::Duration,
    /// Sheets parsed at once (uploads, imports), across the process.
    pub max_sheet_parses: usize,
    /// Passwords checked at once (each argon2 check takes 19 MiB).
    pub max_password_checks: usize,
    /// How long a request waits for one of those before it is answered 503.
    pub busy_wait: std::time::Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            header_timeout: std::time::Duration::from_secs(30),
            body_timeout: std::time::Duration::from_secs(600),
            max_sheet_parses: 2,
            max_password_checks: 2 * casecast_engine::permits::cores(),
            busy_wait: casecast_engine::permits::DEFAULT_WAIT,
        }
    }
}

impl WebConfig {
    /// Where gateways reach this server unless told otherwise: the configured public URL,
    /// else the address the request came in by (right when the gateway reaches it the same
    /// way); `None` when neither is known.
    pub fn callback_base(&self, headers: &axum::http::HeaderMap) -> Option<String> {
        if let Some(url) = &self.public_url {
            return Some(url.clone());
        }
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub metrics: Arc<metrics::Metrics>,
    pub config: Arc<WebConfig>,
    /// The workflows' clock (the system clock, except in tests).
    pub clock: SharedClock,
    /// The health of this process's background tasks, for `/healthz`.
    pub health: Health,
    /// The process's bound on sheets parsed at once (shared with its worker).
    pub sheets: Permits,
    /// The bound on passwords checked at once.
    pub password_checks: Permits,
}

impl AppState {
    /// State over a database, on the system clock, with no background task reported.
    pub fn new(db: Db, config: WebConfig) -> Self {
        let l = config.limits;
        AppState {
            db,
            metrics: Arc::new(metrics::Metrics::default()),
            config: Arc::new(config),
            clock: casecast_engine::clock::system(),
            health: Health::default(),
            sheets: Permits::new(l.max_sheet_parses, l.busy_wait),
            password_checks: Permits::new(l.max_password_checks, l.busy_wait),
        }
    }

    /// This state, sharing these sheet permits (the worker's) instead of its own.
    pub fn with_sheet_permits(mut self, sheets: Permits) -> Self {
        self.sheets = sheets;
        self
    }

    /// This state, reporting the health of these background tasks.
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }
}

/// The whole application: pages, API, OpenAPI, service endpoints.
pub fn app(state: AppState) -> Router {
    let body_timeout = state.config.limits.body_timeout;
    let (api, openapi) = api::router();
    Router::new()
        .merge(pages::router())
        .merge(api)
        .merge(hooks::router())
        .merge(SwaggerUi::new("/api/docs").url("/api/v1/openapi.json", openapi))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::endpoint))
        .route("/static/casecast.css", get(stylesheet))
        .route("/static/job_progress.js", get(job_progress_script))
        .route("/static/sms_counter.js", get(sms_counter_script))
        .route("/static/broadcast_form.js", get(broadcast_form_script))
        .route(
            "/static/broadcast_progress.js",
            get(broadcast_progress_script),
        )
        .route("/static/case_messages.js", get(case_messages_script))
        .route("/static/survey_builder.js", get(survey_builder_script))
        .route("/static/survey_counts.js", get(survey_counts_script))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            body_timeout,
            server::body_deadline,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(middleware::from_fn(refuse_nul))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// `ok` while the database answers and no background task keeps failing; otherwise 503, with
/// JSON naming the failing tasks when that is the reason.
async fn healthz(State(state): State<AppState>) -> Response {
    let failing = state.health.unhealthy();
    if !failing.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": "unhealthy",
                "failing_tasks": failing,
            })),
        )
            .into_response();
    }
    match state.db.is_migrated().await {
        Ok(true) => (StatusCode::OK, "ok\n").into_response(),
        Ok(false) => (StatusCode::SERVICE_UNAVAILABLE, "database not migrated\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n").into_response()
        }
    }
}

/// JSON for unknown API paths, a page for everything else.
async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        error::ApiError::not_found("route").into_response()
    } else {
        error::PageError::not_found().into_response()
    }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/casecast.css"),
    )
}

/// A script of `static/`, cached for an hour like the stylesheet.
fn script(body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
}

async fn job_progress_script() -> impl IntoResponse {
    script(include_str!("../static/job_progress.js"))
}

async fn sms_counter_script() -> impl IntoResponse {
    script(include_str!("../static/sms_counter.js"))
}

async fn broadcast_form_script() -> impl IntoResponse {
    script(include_str!("../static/broadcast_form.js"))
}

async fn broadcast_progress_script() -> impl IntoResponse {
    script(include_str!("../static/broadcast_progress.js"))
}

async fn case_messages_script() -> impl IntoResponse {
    script(include_str!("../static/case_messages.js"))
}

async fn survey_builder_script() -> impl IntoResponse {
    script(include_str!("../static/survey_builder.js"))
}

async fn survey_counts_script() -> impl IntoResponse {
    script(include_str!("../static/survey_counts.js"))
}

/// Refuses URLs that carry a NUL character (`%00`): nothing legitimate does, and PostgreSQL
/// cannot compare text with one.
///
/// Gateway webhooks are let through: Kannel sends the bytes of a UCS-2 message as they came
/// (`%00` in every ASCII character's UTF-16), and their parameters are decoded and cleaned
/// before anything is stored.
async fn refuse_nul(request: Request, next: Next) -> Response {
    let uri = request.uri();
    if uri.path().starts_with("/hooks/") {
        return next.run(request).await;
    }
    let raw = format!("{}?{}", uri.path(), uri.query().unwrap_or(""));
    if raw.to_ascii_lowercase().contains("%00") {
        return if uri.path().starts_with("/api/") {
            error::ApiError::invalid("the URL contains a NUL character (%00)").into_response()
        } else {
            error::PageError::bad_request("The address contains a NUL character (%00).")
                .into_response()
        };
    }
    next.run(request).await
}

async fn security_headers(request: Request, next: Next) -> Response {
    let is_docs = request.uri().path().starts_with("/api/docs");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Pages, downloads and API answers show case data: no browser or proxy keeps a copy (the
    // back button after logging out must not show a case). Only the static files, which say
    // how long they may be kept, are cached.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_docs {
        // Swagger UI needs inline scripts; every other page runs only /static scripts.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
            ),
        );
    }
    response
}

/// Serves until `shutdown` completes, then finishes the requests in flight; within the
/// connection limits and timeouts of the state's [`ServerLimits`] (see [`server`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.limits;
    server::run(listener, app(state), limits, shutdown).await
}
