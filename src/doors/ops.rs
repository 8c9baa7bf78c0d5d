//! Operational endpoints: health, readiness, metrics, and what is loaded.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::core::Core;

/// `GET /healthz`, `/readyz`, `/metrics`, `/tools`, `/plugins`.
pub(crate) fn routes(core: Arc<Core>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/tools", get(tools))
        .route("/plugins", get(plugins))
        .with_state(core)
}

/// `GET /healthz`: the process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: plugins are loaded and the server answers webhooks.
async fn readyz(State(core): State<Arc<Core>>) -> Json<Value> {
    let registry = core.snapshot();
    Json(json!({
        "ready": true,
        "plugins": registry.plugins().count(),
        "failed": registry.failures().len(),
    }))
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(core): State<Arc<Core>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], core.metrics().render())
}

/// `GET /tools`: loaded tools in the platform's `llm_config.tools` shape.
async fn tools(State(core): State<Arc<Core>>) -> Json<Value> {
    Json(json!({ "llm_config": { "tools": core.platform_tools() } }))
}

/// `GET /plugins`: loaded plugins with versions, and load errors.
async fn plugins(State(core): State<Arc<Core>>) -> Json<Value> {
    let registry = core.snapshot();
    let loaded: Vec<Value> = registry
        .plugins()
        .map(|p| {
            json!({
                "name": p.name,
                "kind": p.guest.kind(),
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
    Json(json!({ "plugins": loaded, "errors": errors }))
}
