//! Operational endpoints: health and readiness for the load balancer (open
//! to all), and for operators what is loaded and how it runs (`/metrics`,
//! `/tools`, `/plugins`: loopback peers or the admin token, see
//! [`OperatorRule`]; `/plugins` shows file paths and load errors).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::access::OperatorRule;
use crate::core::Core;

/// `GET /healthz` and `/readyz`: open to anyone who reaches the port.
pub(crate) fn health_routes(core: Arc<Core>) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(core)
}

/// `GET /metrics`, `/tools`, `/plugins` and the call log's `/api/*`, behind `rule` (`None`: open, for a
/// listener only operators reach).
pub(crate) fn operator_routes(core: Arc<Core>, rule: Option<Arc<OperatorRule>>) -> Router {
    let routes = Router::new()
        .route("/metrics", get(metrics))
        .route("/tools", get(tools))
        .route("/plugins", get(plugins))
        .with_state(core.clone())
        .merge(super::call_api::routes(core));
    match rule {
        Some(rule) => routes.layer(axum::middleware::from_fn_with_state(rule, check_operator)),
        None => routes,
    }
}

/// Refuses a client that is neither local nor holding the admin token.
async fn check_operator(State(rule): State<Arc<OperatorRule>>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| *peer);
    match rule.check(peer, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::warn!(status = refusal.status.as_u16(), peer = ?peer, path = %request.uri().path(), "operator request refused");
            refusal.into_response()
        }
    }
}

/// `GET /healthz`: the process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: every plugin found at start is loaded (or failed to) and
/// the server answers webhooks; 503 while plugins found at start are still
/// compiling (the others already serve), and from the moment it is told to
/// shut down, so the load balancer stops sending.
async fn readyz(State(core): State<Arc<Core>>) -> (StatusCode, Json<Value>) {
    let registry = core.snapshot();
    let draining = core.is_draining();
    let loading = core.plugins_loading();
    let ready = !draining && loading.is_empty();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "ready": ready,
        "draining": draining,
        "plugins": registry.plugins().count(),
        "failed": registry.failures().len(),
        "loading": loading,
    });
    (status, Json(body))
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(core): State<Arc<Core>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], core.metrics().render())
}

/// `GET /tools`: loaded tools in the platform's `llm_config.tools` shape.
async fn tools(State(core): State<Arc<Core>>) -> Json<Value> {
    Json(json!({ "llm_config": { "tools": core.platform_tools() } }))
}

/// `GET /plugins`: loaded plugins with versions, load errors, and the
/// plugins found at start still compiling.
async fn plugins(State(core): State<Arc<Core>>) -> Json<Value> {
    let registry = core.snapshot();
    let loaded: Vec<Value> = registry
        .plugins()
        .map(|p| {
            json!({
                "name": p.name,
                "kind": p.guest.kind(),
                "tier": p.tier.as_str(),
                "version": p.version,
                "path": p.path,
                "loaded_at": p.loaded_at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
                "tools": p.tools.iter().map(|t| &t.name).collect::<Vec<_>>(),
                "subscriptions": p.subscriptions,
                "timeout_ms": p.limits.timeout.as_millis() as u64,
                "memory_mib": p.limits.memory_bytes >> 20,
            })
        })
        .collect();
    let errors: Vec<Value> =
        registry.failures().iter().map(|(name, f)| json!({ "name": name, "path": f.path, "error": f.error })).collect();
    Json(json!({ "plugins": loaded, "errors": errors, "loading": core.plugins_loading() }))
}
