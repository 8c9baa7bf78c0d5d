//! What both MCP transports share: the door's settings, and a `tools/call`
//! and a tool as MCP sees them. The SDK's session ([`super`]) and the short
//! way for HTTP calls ([`super::fast`]) both run calls through here, so the
//! two give the same answer for the same call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, ErrorData, ProtocolVersion, Tool};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::core::Core;
use crate::core::dispatch::Door;
use crate::doors::access::AccessRule;
use crate::types::{CallContext, ToolDefinition, ToolFailure};

/// The protocol revisions this door speaks.
pub(super) const PROTOCOL_VERSIONS: [ProtocolVersion; 3] =
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

/// Runs one `tools/call` through the core (request `id`, cancelled by `cancelled`).
pub(super) async fn call_tool(
    door: &McpDoor,
    request: CallToolRequestParams,
    id: String,
    cancelled: &CancellationToken,
) -> Result<CallToolResult, ErrorData> {
    let tool = request.name.as_ref();
    // A tool none serves yet may come with a plugin found at start that is
    // still compiling: the core waits for those.
    if door.core.snapshot().lookup(tool).is_none() && door.core.plugins_loading().is_empty() {
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
pub(super) fn mcp_tool(tool: &ToolDefinition) -> Tool {
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
