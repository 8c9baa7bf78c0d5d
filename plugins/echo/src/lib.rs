//! `echo`: the smallest Switchboard plugin, and the template for new ones.
//!
//! It offers one tool, `echo`, that answers `{"echo": <arguments>}`.
//! Build it with `plugins/build.sh` (or `cargo build --target wasm32-wasip2`).

use serde_json::{Value, json};
// The prelude brings `CallContext`, `ToolError`, `serde_json`, and the
// `Deserialize` / `Serialize` / `JsonSchema` derives.
use switchboard_sdk::prelude::*;

/// A tool is a plain function: typed arguments in (deserialized from the
/// call's JSON arguments), anything `Serialize` out.
///
/// `Value` takes whatever object the LLM sends; its parameters schema is the
/// open object `{"type":"object"}`. Real tools take a struct deriving
/// `Deserialize` and `JsonSchema`, so the LLM is told which fields to send.
fn echo(arguments: Value, _ctx: &CallContext) -> Result<Value, ToolError> {
    Ok(json!({ "echo": arguments }))
}

// Exports the tools: `tool "NAME" => FUNCTION, "DESCRIPTION FOR THE LLM";`
switchboard_sdk::plugin! {
    tool "echo" => echo, "Echo the arguments back, as {\"echo\": <arguments>}. For testing.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_the_arguments() {
        let arguments = r#"{"text":"hi","n":[1,2.5,null]}"#;
        let answer = plugin().call("echo", arguments, &CallContext::default());
        let answer: Value = serde_json::from_str(&answer.unwrap()).unwrap();
        assert_eq!(answer, json!({"echo": {"text": "hi", "n": [1, 2.5, null]}}));
    }
}
