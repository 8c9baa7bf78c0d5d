//! The MCP door's figure (issue 14): the server CPU of an MCP `tools/call`
//! over HTTP against a webhook tool call, both of `echo`, measured in turns
//! at 16 connections. Two servers from the same binary, plugin and settings
//! (the MCP door on, with a token), one driven through each door: each MCP
//! connection opens its session once, then calls in it.

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::client::Door;
use crate::{Args, Durations, Server, ServerResults, TARGET_CONCURRENCY};

/// This section's plugins folder (echo), in the work folder.
pub const PLUGINS: &str = "plugins-mcp";
/// The server the MCP load goes to.
pub const MCP_KEY: &str = "switchboard-echo-mcp-door";

/// The two servers measured in turns.
pub const SERVERS: [Server; 2] = [
    ("switchboard-echo-webhook-door", "Switchboard, echo, webhook tool calls (the MCP door on)", "echo", false),
    (MCP_KEY, "Switchboard, echo, MCP `tools/call` over HTTP (a session per connection)", "echo", false),
];

/// The door the load for server `key` goes through.
pub fn door_of(key: &str) -> Door {
    if key == MCP_KEY { Door::Mcp } else { Door::Webhook }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct McpResult {
    /// The webhook-door and MCP-door servers at [`TARGET_CONCURRENCY`], in turns.
    pub throughput: Vec<ServerResults>,
}

/// Measures the section.
pub async fn mcp_section(args: &Args, d: Durations) -> anyhow::Result<McpResult> {
    crate::extras::plugins_dir(args, PLUGINS, &[&args.root.join("plugins/echo.wasm")])?;
    eprintln!("  the webhook door and the MCP door, {TARGET_CONCURRENCY} connections");
    let throughput = crate::bench_servers(SERVERS.to_vec(), args, d, &[TARGET_CONCURRENCY]).await;
    if let Some(failed) = throughput.iter().find(|s| s.failure.is_some()) {
        bail!("{}: {}", failed.label, failed.failure.as_deref().unwrap_or_default());
    }
    Ok(McpResult { throughput })
}
