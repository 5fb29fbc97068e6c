//! Prometheus metrics: requests by route and status, latency histogram, database pool, and the
//! outbox backlog (messages queued and being sent).

use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::AppState;

/// The methods that get a label of their own; any other is counted as `other`, so that no
/// request can add a label value (a made-up method name once grew the registry without bound).
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A request method as a label: one of [`METHODS`], else `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    METHODS
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("other")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// The process's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    pool_size: Gauge,
    pool_idle: Gauge,
    outbox: Family<StatusLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("casecast");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        let pool_size = Gauge::default();
        let pool_idle = Gauge::default();
        let outbox = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "outbox_messages",
            "Outbound messages not yet handed to a gateway (queued) or being handed over (sending), all projects",
            outbox.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route",
            latency.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Open database connections",
            pool_size.clone(),
        );
        registry.register(
            "db_pool_idle_connections",
            "Idle database connections",
            pool_idle.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            latency,
            pool_size,
            pool_idle,
            outbox,
        }
    }
}

impl Metrics {
    /// The text exposition, with the pool figures and the outbox backlog read now.
    pub fn render(&self, pool: (u32, usize), backlog: Option<(i64, i64)>) -> String {
        self.pool_size.set(i64::from(pool.0));
        self.pool_idle.set(pool.1 as i64);
        if let Some((queued, sending)) = backlog {
            for (status, n) in [("queued", queued), ("sending", sending)] {
                self.outbox
                    .get_or_create(&StatusLabels {
                        status: status.to_string(),
                    })
                    .set(n);
            }
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// Counts and times every request by its route template (never the raw path, which may hold
/// phone numbers) and its method among a fixed few, and logs it. Every label set is bounded:
/// the methods by [`METHODS`], the routes by the router's templates (`unmatched` for the
/// rest), the statuses by the responses the server writes.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method()).to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(seconds);
    tracing::info!(%method, %route, status, ms = (seconds * 1000.0).round(), "request");
    response
}

/// `GET /metrics`: open, unless the operator set a token (`--metrics-token`), which a scrape
/// then sends as `Authorization: Bearer …` (401 without it).
pub async fn endpoint(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = &state.config.metrics_token {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !casecast_store::secrets::constant_time_eq(given.trim(), token) {
            return (
                axum::http::StatusCode::UNAUTHORIZED,
                [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                "a metrics token is required\n",
            )
                .into_response();
        }
    }
    // Read through the partial indexes of the two statuses; a failure leaves the last figures.
    let backlog = match state.db.outbox_backlog().await {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::error!(error = %e, "reading the outbox backlog for /metrics failed");
            None
        }
    };
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(state.db.pool_stats(), backlog),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_fixed_set_share_one_label() {
        for m in METHODS {
            let method = axum::http::Method::from_bytes(m.as_bytes()).unwrap();
            assert_eq!(method_label(&method), m);
        }
        for m in ["TRACE", "CONNECT", "FOOBAR", &"X".repeat(2000)] {
            let method = axum::http::Method::from_bytes(m.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{m}");
        }
    }
}
