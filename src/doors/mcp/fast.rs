//! The short way for `tools/call` over HTTP: in an open session, a call is
//! run here and answered as one JSON response, rather than handed to the
//! session's task in the SDK and back as a server-sent event. The answer is
//! the same (the same [`call_tool`](super::tools::call_tool)); what is saved is two
//! task hand-offs and the event stream per call, which cost more CPU than
//! the webhook door's whole call. Anything else, or anything unusual (no
//! session, a protocol version or `Accept` the SDK should judge, `_meta`
//! such as a progress token, a malformed message), goes to the SDK as it came.
//! `notifications/cancelled` for a call running here stops it here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::tools::{McpDoor, PROTOCOL_VERSIONS, call_tool};

/// The most a message may hold (the SDK's own limit).
const MAX_BODY: usize = 4 << 20;

/// What the short way needs: the door, the SDK's sessions, and the calls
/// running here by (session, request id), to cancel them.
pub(super) struct FastPath {
    pub door: Arc<McpDoor>,
    pub sessions: Arc<LocalSessionManager>,
    running: Mutex<HashMap<(String, String), CancellationToken>>,
}

impl FastPath {
    pub fn new(door: Arc<McpDoor>, sessions: Arc<LocalSessionManager>) -> Self {
        Self { door, sessions, running: Mutex::default() }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), CancellationToken>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A JSON-RPC message, as far as the short way reads it.
#[derive(Deserialize)]
struct Message<'a> {
    jsonrpc: &'a str,
    #[serde(default)]
    id: Option<Value>,
    method: &'a str,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// `notifications/cancelled`'s parameters.
#[derive(Deserialize)]
struct Cancelled {
    #[serde(rename = "requestId")]
    request_id: Value,
}

/// A request id as the plugin sees it (and as the SDK shows it): a string
/// as itself, a number as its digits.
fn id_text(id: &Value) -> String {
    match id {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Whether the headers are those the short way answers for: the session
/// given, both answer types accepted, JSON sent, a protocol version this
/// door speaks (or none: 2025-03-26).
fn session_of(headers: &HeaderMap) -> Option<&str> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let accept = text(header::ACCEPT.as_str())?;
    let json = text(header::CONTENT_TYPE.as_str())?.starts_with("application/json");
    let version = text("mcp-protocol-version").is_none_or(|v| PROTOCOL_VERSIONS.iter().any(|p| p.as_str() == v));
    (json && version && accept.contains("application/json") && accept.contains("text/event-stream"))
        .then(|| text("mcp-session-id"))
        .flatten()
}

/// The middleware: answers `tools/call` and its cancellation in an open
/// session; passes everything else on.
pub(super) async fn short_way(State(fast): State<Arc<FastPath>>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(session) = session_of(request.headers()).map(str::to_owned) else { return next.run(request).await };
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "the message is over 4 MiB, or was cut off").into_response(),
    };
    let pass_on = |bytes| next.run(Request::from_parts(parts, Body::from(bytes)));
    let message = match serde_json::from_slice::<Message<'_>>(&bytes) {
        Ok(m) if m.jsonrpc == "2.0" && matches!(m.method, "tools/call" | "notifications/cancelled") => m,
        _ => return pass_on(bytes.clone()).await,
    };
    let has_meta = message.params.is_some_and(|p| p.get().contains("\"_meta\""));
    if has_meta || !fast.sessions.has_session(&session.as_str().into()).await.unwrap_or(false) {
        return pass_on(bytes.clone()).await;
    }
    match (message.method, &message.id) {
        ("tools/call", Some(id @ (Value::Number(_) | Value::String(_)))) => {
            let Some(params) = message.params.and_then(|p| serde_json::from_str::<CallToolRequestParams>(p.get()).ok())
            else {
                return pass_on(bytes.clone()).await;
            };
            call(&fast, session, id.clone(), params).await
        }
        ("notifications/cancelled", None) => {
            let cancelled = message.params.and_then(|p| serde_json::from_str::<Cancelled>(p.get()).ok());
            let token = cancelled.and_then(|c| fast.running().get(&(session, id_text(&c.request_id))).cloned());
            match token {
                Some(token) => {
                    token.cancel();
                    StatusCode::ACCEPTED.into_response()
                }
                // Not one of ours: the SDK's to cancel.
                None => pass_on(bytes.clone()).await,
            }
        }
        _ => pass_on(bytes.clone()).await,
    }
}

/// Runs the call, registered for cancellation while it runs; answers its
/// JSON-RPC response.
async fn call(fast: &FastPath, session: String, id: Value, params: CallToolRequestParams) -> Response {
    let key = (session, id_text(&id));
    let cancelled = CancellationToken::new();
    fast.running().insert(key.clone(), cancelled.clone());
    // Unregistered however the call ends (its connection gone included).
    struct Unregister<'a>(&'a FastPath, (String, String));
    impl Drop for Unregister<'_> {
        fn drop(&mut self) {
            self.0.running().remove(&self.1);
        }
    }
    let _unregister = Unregister(fast, key.clone());
    let answer = match call_tool(&fast.door, params, key.1.clone(), &cancelled).await {
        Ok(result) => serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(error) => serde_json::json!({"jsonrpc": "2.0", "id": id, "error": error}),
    };
    ([(header::CONTENT_TYPE, crate::doors::webhook::JSON)], answer.to_string()).into_response()
}
