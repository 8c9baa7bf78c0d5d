//! The call log for operators and the dashboard, over HTTP:
//!
//! - `GET /api/calls`: recent calls, filtered (number, tool, outcome, time)
//!   and paged;
//! - `GET /api/calls/{call_id}`: one call's story, in order;
//! - `GET /api/stats`: each tool's last hour on this replica;
//! - `POST /api/try`: runs a tool with the arguments given (the dashboard's
//!   "try a tool"), logged as door `dashboard`.
//!
//! Behind the operator rule, like `/metrics`. Handlers only translate: the
//! core reads and runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::core::Core;
use crate::core::call_log::{CallQuery, CallsError, parse_time};
use crate::core::dispatch::Door;
use crate::types::CallContext;

/// The routes, over `core`.
pub(crate) fn routes(core: Arc<Core>) -> Router {
    Router::new()
        .route("/api/calls", get(list_calls))
        .route("/api/calls/{call_id}", get(one_call))
        .route("/api/stats", get(stats))
        .route("/api/try", post(try_tool))
        .with_state(core)
}

/// A refusal: its status and `{"error": message}`.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The answer when the call log is off.
fn log_off() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "the call log is off: `switchboard serve` keeps it in its data folder unless [call_log] enabled = false",
    )
}

/// `GET /api/calls`'s query string.
#[derive(Deserialize)]
struct ListParams {
    number: Option<String>,
    tool: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

async fn list_calls(
    State(core): State<Arc<Core>>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(params) = match params {
        Ok(params) => params,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let Some(reader) = core.call_log().reader() else { return log_off() };
    let time = |text: &Option<String>| text.as_deref().filter(|t| !t.is_empty()).map(parse_time).transpose();
    let (from, to) = match (time(&params.from), time(&params.to)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) | (_, Err(e)) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let query = CallQuery {
        number: params.number,
        tool: params.tool,
        outcome: params.outcome,
        from,
        to,
        limit: params.limit.unwrap_or(CallQuery::default().limit),
        before: params.before,
    };
    match reader.calls(&query).await {
        Ok(page) => Json(page).into_response(),
        Err(CallsError::BadQuery(e)) => refuse(StatusCode::BAD_REQUEST, e),
        Err(CallsError::Unavailable(e)) => unavailable(e),
    }
}

/// The database failed a read.
fn unavailable(error: String) -> Response {
    tracing::warn!(error = %error, "call log read failed");
    refuse(StatusCode::SERVICE_UNAVAILABLE, format!("the call log cannot be read now: {error}"))
}

async fn one_call(State(core): State<Arc<Core>>, Path(call_id): Path<String>) -> Response {
    let Some(reader) = core.call_log().reader() else { return log_off() };
    match reader.story(&call_id).await {
        Ok(Some(story)) => Json(story).into_response(),
        Ok(None) => refuse(StatusCode::NOT_FOUND, format!("no call {call_id:?} in the call log")),
        Err(e) => unavailable(e),
    }
}

async fn stats(State(core): State<Arc<Core>>) -> Json<Value> {
    Json(json!({ "window_seconds": 3600, "tools": core.call_log().stats() }))
}

/// `POST /api/try`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TryRequest {
    tool: String,
    #[serde(default)]
    arguments: Map<String, Value>,
}

async fn try_tool(State(core): State<Arc<Core>>, body: Result<Json<TryRequest>, JsonRejection>) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("{}: send {{\"tool\": \"NAME\", \"arguments\": {{...}}}}", e.body_text()),
            );
        }
    };
    static TRIES: AtomicU64 = AtomicU64::new(1);
    let context = CallContext {
        call_id: "dashboard".into(),
        call_type: "dashboard".into(),
        tool_call_id: format!(
            "try-{}-{}",
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            TRIES.fetch_add(1, Ordering::Relaxed)
        ),
        ..CallContext::default()
    };
    let arguments = Value::Object(request.arguments).to_string();
    let started = Instant::now();
    let deadline = started + core.tool_calls_budget();
    let outcome = core.call_tool(&request.tool, &arguments, &context, deadline, Door::Dashboard).await;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(result) => {
            let result = serde_json::from_str::<Value>(&result).unwrap_or(Value::String(result));
            Json(json!({ "result": result, "duration_ms": duration_ms })).into_response()
        }
        Err(failure) => Json(json!({ "error": failure.to_string(), "duration_ms": duration_ms })).into_response(),
    }
}
