//! Operational endpoints: health, readiness, metrics, and what is loaded.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::registry::Registry;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: plugins are loaded and the server answers webhooks.
pub async fn readyz(State(app): State<Arc<AppState>>) -> Json<Value> {
    let registry = app.plugins.snapshot();
    Json(json!({
        "ready": true,
        "plugins": registry.plugins().count(),
        "failed": registry.failures().len(),
    }))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], app.metrics.render())
}

/// `GET /tools`: loaded tools in the platform's `llm_config.tools` shape.
pub async fn tools(State(app): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "llm_config": { "tools": tool_list(&app.plugins.snapshot(), app.public_url.as_deref()) } }))
}

/// The platform's `{"llm_config": {"tools": [...]}}` for every loaded tool;
/// with `public_url` (where the platform reaches Switchboard), each tool's
/// `url` points at its `/webhook`.
pub fn tool_definitions(registry: &Registry, public_url: Option<&str>) -> Value {
    json!({ "llm_config": { "tools": tool_list(registry, public_url) } })
}

/// Every loaded tool as the platform defines one: name, description,
/// parameters, async (and async_response), url.
pub fn tool_list(registry: &Registry, public_url: Option<&str>) -> Vec<Value> {
    let url = public_url.map(|base| format!("{}/webhook", base.trim_end_matches('/')));
    registry
        .tools()
        .into_iter()
        .map(|(tool, _)| {
            let parameters: Value =
                serde_json::from_str(&tool.parameters_schema).unwrap_or_else(|_| json!({"type": "object"}));
            let mut definition = json!({
                "name": tool.name,
                "description": tool.description,
                "parameters": parameters,
                "async": tool.is_async,
            });
            if let Some(response) = &tool.async_response {
                definition["async_response"] = json!(response);
            }
            if let Some(url) = &url {
                definition["url"] = json!(url);
            }
            definition
        })
        .collect()
}

/// `GET /plugins`: loaded plugins with versions, and load errors.
pub async fn plugins(State(app): State<Arc<AppState>>) -> Json<Value> {
    let registry = app.plugins.snapshot();
    let loaded: Vec<Value> = registry
        .plugins()
        .map(|p| {
            json!({
                "name": p.name,
                "kind": p.plugin.kind(),
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
