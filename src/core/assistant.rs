//! `assistant-request`: which assistant answers an inbound call.
//!
//! The platform waits 5 s before answering the phone and uses the saved
//! assistant when the answer is `{}`, late or broken. So this module never
//! fails: a static route keyed by the called and calling numbers answers
//! first; otherwise the plugin that subscribes to `assistant-request`, under
//! a budget (4 s by default); on any failure, timeout or malformed answer,
//! `{}`. It never rejects a call by accident.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::plugins::Snapshot;
use crate::types::EventKind;

/// How `assistant-request` is answered.
#[derive(Debug, Clone)]
pub struct AssistantSettings {
    /// Time from arrival to the answer (the platform waits 5 s).
    pub budget: Duration,
    /// Static answers keyed by numbers; the most specific match wins.
    pub routes: Vec<AssistantRoute>,
    /// Add the loaded tools to `llm_config.tools` of an answer that sets `llm_config`.
    pub inject_tools: bool,
}

impl Default for AssistantSettings {
    fn default() -> Self {
        Self { budget: Duration::from_secs(4), routes: Vec::new(), inject_tools: false }
    }
}

/// A static answer for calls to `phone_number` and/or from `customer_number`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssistantRoute {
    /// The called (platform) number, E.164. Absent: any.
    #[serde(default)]
    pub phone_number: Option<String>,
    /// The caller's number, E.164. Absent: any.
    #[serde(default)]
    pub customer_number: Option<String>,
    /// The response body, in one of the documented shapes.
    pub response: Value,
}

impl AssistantRoute {
    /// How specifically this route matches a call, or `None` if it does not.
    fn specificity(&self, phone: Option<&str>, customer: Option<&str>) -> Option<u8> {
        let part = |want: &Option<String>, got: Option<&str>| match want {
            None => Some(0),
            Some(want) => (Some(want.as_str()) == got).then_some(1),
        };
        Some(2 * part(&self.phone_number, phone)? + part(&self.customer_number, customer)?)
    }
}

/// Checks that `response` is one of the platform's documented answers:
/// `{}`, `{"assistant": {..}}`, `{"assistant_id": "..", "assistant_override": {..}}`,
/// `{"max_duration_seconds": N}`, `{"error": ".."}`.
pub(crate) fn validate_response(response: &Value) -> Result<(), String> {
    let Some(object) = response.as_object() else {
        return Err("the answer must be a JSON object".into());
    };
    for (key, value) in object {
        let ok = match key.as_str() {
            "assistant" | "assistant_override" => value.is_object(),
            "assistant_id" | "error" => value.is_string(),
            "max_duration_seconds" => value.as_f64().is_some_and(|n| n > 0.0),
            other => return Err(format!("unknown key {other:?} in the answer")),
        };
        if !ok {
            return Err(format!("{key:?} has the wrong type"));
        }
    }
    if object.contains_key("assistant_override") && !object.contains_key("assistant_id") {
        return Err("\"assistant_override\" needs \"assistant_id\"".into());
    }
    Ok(())
}

/// Where an answer came from, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnswerSource {
    /// A static route.
    Route,
    /// A plugin.
    Plugin,
    /// Nothing applied: `{}`.
    Default,
    /// Something failed: `{}`.
    Fallback,
}

impl AnswerSource {
    /// Label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            AnswerSource::Route => "route",
            AnswerSource::Plugin => "plugin",
            AnswerSource::Default => "default",
            AnswerSource::Fallback => "fallback",
        }
    }
}

/// Answers one assistant-request. `message` is the webhook's `message` object
/// as JSON text; `tools` the loaded tools in the platform's shape.
pub(crate) async fn answer(
    settings: &AssistantSettings,
    registry: &Snapshot,
    message: &str,
    phone: Option<&str>,
    customer: Option<&str>,
    arrived: Instant,
    tools: impl FnOnce() -> Vec<Value>,
) -> (Value, AnswerSource) {
    let routed = settings
        .routes
        .iter()
        .filter_map(|route| Some((route.specificity(phone, customer)?, route)))
        .max_by_key(|(specificity, _)| *specificity);
    let (mut response, source) = if let Some((_, route)) = routed {
        (route.response.clone(), AnswerSource::Route)
    } else {
        let mut handlers = registry.subscribers(EventKind::AssistantRequest);
        let Some(plugin) = handlers.next() else { return (json!({}), AnswerSource::Default) };
        if let Some(other) = handlers.next() {
            tracing::warn!(chosen = %plugin.name, also = %other.name, "several plugins answer assistant-request; the first by name is used");
        }
        let remaining = (arrived + settings.budget).saturating_duration_since(Instant::now());
        let mut limits = plugin.limits;
        limits.timeout = limits.timeout.min(remaining);
        let answer = plugin.guest.assistant_request(message, limits).await;
        let parsed = answer.map_err(|e| e.to_string()).and_then(|text| {
            let value: Value = serde_json::from_str(&text).map_err(|e| format!("the answer is not JSON: {e}"))?;
            validate_response(&value).map(|()| value)
        });
        match parsed {
            Ok(value) => (value, AnswerSource::Plugin),
            Err(error) => {
                tracing::warn!(plugin = %plugin.name, %error, "assistant-request failed; answering {{}} so the saved assistant takes the call");
                return (json!({}), AnswerSource::Fallback);
            }
        }
    };
    if settings.inject_tools {
        inject_tools(&mut response, tools());
    }
    (response, source)
}

/// Adds `tools` to `llm_config.tools` of the answer's assistant (or override),
/// keeping tools the answer already names. Only where the answer sets
/// `llm_config` itself: the platform merges top-level blocks shallowly, so
/// adding an `llm_config` would replace the saved assistant's whole block.
fn inject_tools(response: &mut Value, tools: Vec<Value>) {
    for key in ["assistant", "assistant_override"] {
        let Some(llm) = response.get_mut(key).and_then(|a| a.get_mut("llm_config")).and_then(Value::as_object_mut)
        else {
            continue;
        };
        let list = llm.entry("tools").or_insert_with(|| Value::Array(Vec::new()));
        let Some(list) = list.as_array_mut() else { continue };
        for tool in &tools {
            let taken = list.iter().any(|t| t.get("name").is_some_and(|n| Some(n) == tool.get("name")));
            if !taken {
                list.push(tool.clone());
            }
        }
    }
}

impl AssistantSettings {
    /// Checks that every route answers in one of the platform's documented
    /// shapes; the error names the route (`assistant_request.routes[N]`).
    pub fn validate(&self) -> Result<(), String> {
        for (i, route) in self.routes.iter().enumerate() {
            validate_response(&route.response).map_err(|e| format!("assistant_request.routes[{i}].response: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_shapes_validate_and_others_do_not() {
        for ok in [
            json!({}),
            json!({"assistant": {"first_message": "Hi"}}),
            json!({"assistant_id": "a1", "assistant_override": {"first_message": "Hi"}}),
            json!({"max_duration_seconds": 300}),
            json!({"error": "We are closed"}),
        ] {
            assert_eq!(validate_response(&ok), Ok(()), "{ok}");
        }
        for bad in [
            json!([]),
            json!({"assistant": "x"}),
            json!({"assistant_override": {}}),
            json!({"max_duration_seconds": -1}),
            json!({"maxDuration": 5}),
        ] {
            assert!(validate_response(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_most_specific_route_wins() {
        let route = |phone: Option<&str>, customer: Option<&str>| AssistantRoute {
            phone_number: phone.map(str::to_owned),
            customer_number: customer.map(str::to_owned),
            response: json!({}),
        };
        assert_eq!(route(None, None).specificity(Some("+1"), Some("+2")), Some(0));
        assert_eq!(route(Some("+1"), None).specificity(Some("+1"), Some("+2")), Some(2));
        assert_eq!(route(None, Some("+2")).specificity(Some("+1"), Some("+2")), Some(1));
        assert_eq!(route(Some("+1"), Some("+2")).specificity(Some("+1"), Some("+2")), Some(3));
        assert_eq!(route(Some("+9"), None).specificity(Some("+1"), Some("+2")), None);
        assert_eq!(route(Some("+1"), None).specificity(None, None), None);
    }

    #[test]
    fn tools_are_injected_only_where_llm_config_is_set() {
        let tools = vec![json!({"name": "echo"}), json!({"name": "lookup"})];
        let mut with_llm = json!({"assistant": {"llm_config": {"model": "m", "tools": [{"name": "lookup", "x": 1}]}}});
        inject_tools(&mut with_llm, tools.clone());
        assert_eq!(with_llm["assistant"]["llm_config"]["tools"], json!([{"name": "lookup", "x": 1}, {"name": "echo"}]));
        let mut without = json!({"assistant": {"first_message": "Hi"}});
        inject_tools(&mut without, tools);
        assert_eq!(without, json!({"assistant": {"first_message": "Hi"}}));
    }
}
