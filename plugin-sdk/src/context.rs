//! [`CallContext`]: where a tool call comes from.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a tool call comes from, taken by Switchboard from the webhook
/// envelope (the WIT record `call-context`).
///
/// Every tool function receives it as its second argument. It is `Default`
/// so tool functions can be unit tested natively:
///
/// ```
/// use switchboard_sdk::CallContext;
///
/// let ctx = CallContext {
///     customer_number: Some("+31612345678".into()),
///     ..CallContext::default()
/// };
/// assert_eq!(ctx.call_type, "");
/// ```
///
/// It serializes to JSON with the field names below (`call_id`, ...,
/// `deadline_ms`), absent values as `null`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallContext {
    /// The platform's id of the phone call (`message.call.id`).
    pub call_id: String,
    /// `inbound_phone_call`, `outbound_phone_call` or `web_call`.
    pub call_type: String,
    /// The id the platform gave this tool call. A platform retrying a call
    /// sends the same id again (see [`CallContext::idempotency_key`]).
    pub tool_call_id: String,
    /// The caller (or callee) number in E.164; `None` on web calls.
    pub customer_number: Option<String>,
    /// The platform number the call came in on; `None` on web calls.
    pub phone_number: Option<String>,
    /// The assistant's custom `metadata`, when the platform sends it.
    ///
    /// Switchboard passes it as a JSON string; the SDK parses it. Should it
    /// not be valid JSON, the raw text is kept as a JSON string value.
    pub assistant_metadata: Option<Value>,
    /// Milliseconds left, when the call started, before Switchboard must
    /// answer. Past it the plugin is stopped, so budget slow work with it.
    pub deadline_ms: u32,
}

impl CallContext {
    /// Parses the `assistant-metadata` JSON text the host sends.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn parse_metadata(raw: Option<String>) -> Option<Value> {
        raw.map(|text| serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A key naming this tool call for an upstream's `Idempotency-Key`
    /// header: `call_id:tool_call_id`, the same when the platform retries the
    /// call, and different for every other call. Send it with the request
    /// that has a side effect ([`http::Request::idempotency_key`]), so that
    /// an upstream that honours the header (Stripe-style) does the work once
    /// even when the call runs twice: a replica that dies after the upstream
    /// booked, but before Switchboard stored the answer, is retried.
    ///
    /// The call id scopes the tool call id: the upstream's keys are shared by
    /// every phone call, and some models number their tool calls (`call_0`)
    /// afresh in each one. `None` for a call from an MCP client (`call_type`
    /// `mcp`): its `tool_call_id` is the JSON-RPC request id, which every MCP
    /// session reuses, and MCP clients do not retry a call under its id. Also
    /// `None` when the context has no tool call id.
    ///
    /// ```
    /// use switchboard_sdk::CallContext;
    ///
    /// let ctx = CallContext { call_id: "c1".into(), tool_call_id: "tool_abc".into(), ..CallContext::default() };
    /// assert_eq!(ctx.idempotency_key().as_deref(), Some("c1:tool_abc"));
    /// let mcp = CallContext { call_type: "mcp".into(), ..ctx };
    /// assert_eq!(mcp.idempotency_key(), None);
    /// ```
    ///
    /// [`http::Request::idempotency_key`]: crate::http::Request::idempotency_key
    pub fn idempotency_key(&self) -> Option<String> {
        if self.call_type == "mcp" || self.tool_call_id.is_empty() {
            return None;
        }
        Some(format!("{}:{}", self.call_id, self.tool_call_id))
    }

    /// `assistant_metadata[key]`, if the metadata is an object that has it.
    ///
    /// ```
    /// use switchboard_sdk::{CallContext, serde_json::json};
    ///
    /// let ctx = CallContext {
    ///     assistant_metadata: Some(json!({"tenant": "acme"})),
    ///     ..CallContext::default()
    /// };
    /// assert_eq!(ctx.metadata("tenant"), Some(&json!("acme")));
    /// assert_eq!(ctx.metadata("other"), None);
    /// ```
    pub fn metadata(&self, key: &str) -> Option<&Value> {
        self.assistant_metadata.as_ref()?.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_is_parsed_or_kept_as_text() {
        assert_eq!(CallContext::parse_metadata(None), None);
        assert_eq!(CallContext::parse_metadata(Some(r#"{"a":[1,2]}"#.into())), Some(json!({"a": [1, 2]})));
        assert_eq!(CallContext::parse_metadata(Some("not json".into())), Some(json!("not json")));
    }

    #[test]
    fn serializes_every_field() {
        let ctx = CallContext {
            call_id: "c1".into(),
            call_type: "web_call".into(),
            tool_call_id: "t1".into(),
            customer_number: None,
            phone_number: Some("+3120".into()),
            assistant_metadata: Some(json!({"k": "v"})),
            deadline_ms: 5000,
        };
        assert_eq!(
            serde_json::to_value(&ctx).unwrap(),
            json!({
                "call_id": "c1",
                "call_type": "web_call",
                "tool_call_id": "t1",
                "customer_number": null,
                "phone_number": "+3120",
                "assistant_metadata": {"k": "v"},
                "deadline_ms": 5000
            })
        );
    }
}
