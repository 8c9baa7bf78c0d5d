//! The loaded tools, as a platform wants them listed.
//!
//! Each door describes tools in its own protocol's shape from the same
//! [`ToolDefinition`](crate::types::ToolDefinition)s; this is the voice
//! platform's (`llm_config.tools`), which the core also needs to put tools
//! into an assistant-request answer.

use serde_json::{Value, json};

use crate::plugins::Snapshot;

/// Every loaded tool as the platform defines one: name, description,
/// parameters, async (and async_response), and, with `public_url` (where the
/// platform reaches Switchboard), a `url` pointing at its `/webhook`.
pub(crate) fn platform_tools(snapshot: &Snapshot, public_url: Option<&str>) -> Vec<Value> {
    let url = public_url.map(|base| format!("{}/webhook", base.trim_end_matches('/')));
    snapshot
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
