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

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorData, Implementation, ListToolsResult, PaginatedRequestParams,
    ProtocolVersion, ServerCapabilities, ServerConfig,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, ServiceExt};

mod fast;
mod tools;

pub(crate) use super::access::AccessRule;
pub(crate) use tools::McpDoor;
use tools::{PROTOCOL_VERSIONS, call_tool, mcp_tool};
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
