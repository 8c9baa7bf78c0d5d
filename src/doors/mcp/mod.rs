//! The MCP door: the same plugins, as Model Context Protocol tools, for the
//! other agents of a team (a chat assistant, a copilot, an IDE).
//!
//! Streamable HTTP at `/mcp` on the `serve` listener, and stdio for clients
//! that launch their servers (`switchboard mcp`), both speaking protocol
//! revisions 2025-11-25 and 2025-06-18 (and answering 2025-03-26 clients)
//! through the official SDK, `rmcp`. A `tools/call` runs through the same
//! core as a webhook's tool call: the tool's schema checked first, the
//! plugin's limits and grants, a deadline, metrics (door `mcp`). Only the
//! shapes differ: a result becomes text content (and `structuredContent`
//! when it is an object), a failure `isError: true` with the message the
//! webhook door would give. [`AccessRule`] says who may connect over HTTP.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData, Implementation, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, ServiceExt};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

mod fast;

pub(crate) use super::access::AccessRule;
use crate::core::Core;
use crate::core::dispatch::Door;
use crate::types::{CallContext, ToolDefinition, ToolFailure};

/// The protocol revisions this door speaks.
const PROTOCOL_VERSIONS: [ProtocolVersion; 3] =
    [ProtocolVersion::V_2025_03_26, ProtocolVersion::V_2025_06_18, ProtocolVersion::V_2025_11_25];

/// The MCP door: the core it reaches, and its rules.
pub(crate) struct McpDoor {
    /// The core that runs the calls.
    pub core: Arc<Core>,
    /// The deadline of one `tools/call`.
    pub call_timeout: Duration,
    /// Who may connect over HTTP.
    pub access: AccessRule,
    /// Ends every session (and its open streams) when the server shuts down.
    pub shutdown: CancellationToken,
}

/// `POST`, `GET` and `DELETE /mcp`, behind the access rule.
pub(crate) fn routes(door: Arc<McpDoor>) -> Router {
    let session = McpSession { door: door.clone() };
    // The access rule below checks Host and Origin itself (the rules differ
    // with and without tokens); the SDK's own checks would only repeat them.
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_cancellation_token(door.shutdown.child_token());
    let sessions = Arc::new(LocalSessionManager::default());
    let service = StreamableHttpService::new(move || Ok(session.clone()), sessions.clone(), config);
    let fast = Arc::new(fast::FastPath::new(door.clone(), sessions));
    Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(fast, fast::short_way))
        .layer(axum::middleware::from_fn_with_state(door, check_access))
}

/// Refuses a request the access rule does not allow, with a plain JSON error.
async fn check_access(State(door): State<Arc<McpDoor>>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| *peer);
    match door.access.check(peer, request.headers()) {
        Ok(()) => {
            let ends_session = request.method() == axum::http::Method::DELETE;
            let mut response = next.run(request).await;
            // The SDK accepts a DELETE with 202; clients expect 200 or 204.
            if ends_session && response.status() == axum::http::StatusCode::ACCEPTED {
                *response.status_mut() = axum::http::StatusCode::NO_CONTENT;
            }
            response
        }
        Err(refusal) => {
            tracing::warn!(status = refusal.status.as_u16(), peer = ?peer, reason = refusal.message, "MCP request refused");
            refusal.into_response()
        }
    }
}

/// Serves MCP over `reader` and `writer` (stdin and stdout for `switchboard
/// mcp`) until the client closes it.
pub(crate) async fn serve_stream<R, W>(door: Arc<McpDoor>, reader: R, writer: W) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let running = McpSession { door }.serve((reader, writer)).await.map_err(std::io::Error::other)?;
    running.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}

/// One client's session: list and call the loaded tools.
#[derive(Clone)]
struct McpSession {
    door: Arc<McpDoor>,
}

impl ServerHandler for McpSession {
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Owned(PROTOCOL_VERSIONS.to_vec())
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build())
            .with_server_info(Implementation::new("switchboard", env!("CARGO_PKG_VERSION")))
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.door.core.tools().iter().map(mcp_tool).collect()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        call_tool(&self.door, request, context.id.to_string(), &context.ct).await.map(Into::into)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // Tell this client when hot reload changes the tool set.
        let core = self.door.core.clone();
        let peer = context.peer;
        let mut changes = core.plugin_changes();
        tokio::spawn(async move {
            let mut announced = core.tools();
            while changes.changed().await.is_ok() {
                let now = core.tools();
                if now == announced {
                    continue;
                }
                announced = now;
                if let Err(error) = peer.notify_tool_list_changed().await {
                    tracing::debug!(%error, "MCP session gone; no more list_changed notifications to it");
                    return;
                }
            }
        });
    }
}

/// Runs one `tools/call` through the core (request `id`, cancelled by `cancelled`).
async fn call_tool(
    door: &McpDoor,
    request: CallToolRequestParams,
    id: String,
    cancelled: &CancellationToken,
) -> Result<CallToolResult, ErrorData> {
    let tool = request.name.as_ref();
    if door.core.snapshot().lookup(tool).is_none() {
        return Err(ErrorData::invalid_params(format!("unknown tool {tool:?}: no loaded plugin provides it"), None));
    }
    let arguments = match &request.arguments {
        Some(arguments) => serde_json::to_string(arguments).expect("JSON objects serialize"),
        None => "{}".to_owned(),
    };
    // A plugin sees an MCP call as a call with no phone numbers.
    let call =
        CallContext { call_id: "mcp".into(), call_type: "mcp".into(), tool_call_id: id, ..CallContext::default() };
    let deadline = Instant::now() + door.call_timeout;
    let run = door.core.call_tool(tool, &arguments, &call, deadline, Door::Mcp);
    // Cancelling drops the call, and with it the plugin's instance.
    let result = tokio::select! {
        result = run => result,
        () = cancelled.cancelled() => {
            tracing::info!(tool, request = %call.tool_call_id, "MCP tool call cancelled; its instance is stopped");
            return Err(ErrorData::internal_error("the call was cancelled", None));
        }
    };
    Ok(tool_result(result))
}

/// A loaded tool as MCP lists it.
fn mcp_tool(tool: &ToolDefinition) -> Tool {
    let schema = match serde_json::from_str::<Value>(&tool.parameters_schema) {
        Ok(Value::Object(schema)) => schema,
        _ => serde_json::Map::from_iter([("type".to_owned(), Value::from("object"))]),
    };
    Tool::new(tool.name.clone(), tool.description.clone(), Arc::new(schema))
}

/// A call's outcome as MCP returns it: a JSON string becomes its text; any
/// other JSON becomes compact JSON text, and also `structuredContent` when
/// it is an object; a failure is `isError: true` with its message.
fn tool_result(result: Result<String, ToolFailure>) -> CallToolResult {
    let output = match result {
        Ok(output) => output,
        Err(failure) => return CallToolResult::error(vec![ContentBlock::text(failure.to_string())]),
    };
    match serde_json::from_str::<Value>(&output) {
        Ok(Value::String(text)) => CallToolResult::success(vec![ContentBlock::text(text)]),
        Ok(value) => {
            // The text keeps the plugin's key order (the Value sorts them).
            let text = compact_json(&output).unwrap_or_else(|| value.to_string());
            let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
            if value.is_object() {
                result.structured_content = Some(value);
            }
            result
        }
        // Plugins answer JSON; a lenient one's plain text is passed on as text.
        Err(_) => CallToolResult::success(vec![ContentBlock::text(output)]),
    }
}

/// `json` without insignificant whitespace, its keys in their order.
fn compact_json(json: &str) -> Option<String> {
    let mut out = Vec::with_capacity(json.len());
    let mut deserializer = serde_json::Deserializer::from_str(json);
    serde_transcode::transcode(&mut deserializer, &mut serde_json::Serializer::new(&mut out)).ok()?;
    deserializer.end().ok()?;
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_results_keep_the_plugins_key_order() {
        let result = as_json(&tool_result(Ok(r#"{"zebra": 1, "apple": {"y": 2, "b": 3}}"#.into())));
        assert_eq!(result["content"][0]["text"], r#"{"zebra":1,"apple":{"y":2,"b":3}}"#);
    }

    fn as_json(result: &CallToolResult) -> Value {
        serde_json::to_value(result).unwrap()
    }

    #[test]
    fn results_take_the_shapes_the_issue_names() {
        let object = as_json(&tool_result(Ok(r#"{"echo": {"a": 1}}"#.into())));
        assert_eq!(object["content"][0]["text"], r#"{"echo":{"a":1}}"#);
        assert_eq!(object["structuredContent"], serde_json::json!({"echo": {"a": 1}}));
        assert!(object.get("isError").is_none_or(|e| e == false), "{object}");
        let string = as_json(&tool_result(Ok(r#""It is 9 o'clock""#.into())));
        assert_eq!(string["content"][0]["text"], "It is 9 o'clock");
        assert!(string.get("structuredContent").is_none());
        let array = as_json(&tool_result(Ok("[1, 2]".into())));
        assert_eq!(array["content"][0]["text"], "[1,2]");
        assert!(array.get("structuredContent").is_none());
        let failed = as_json(&tool_result(Err(ToolFailure::InvalidArguments("\"city\" is required".into()))));
        assert_eq!(failed["isError"], true);
        assert_eq!(failed["content"][0]["text"], "invalid arguments: \"city\" is required");
    }
}
