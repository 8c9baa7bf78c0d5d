//! `__NAME__`: a Switchboard tool plugin in Rust.
//!
//! `./build.sh` builds it into `dist/__NAME__.wasm`; `cargo test` runs the
//! unit tests natively, without Switchboard.

use switchboard_sdk::prelude::*;

/// The arguments of `__NAME__`. The doc comments become the descriptions in
/// the JSON Schema the LLM sees; Switchboard checks every call against it
/// before the plugin runs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Arguments {
    /// Who to greet, e.g. "Ada"
    pub name: String,
}

/// What `__NAME__` answers.
#[derive(Debug, PartialEq, Serialize)]
pub struct Greeting {
    /// The sentence for the assistant to say.
    pub message: String,
}

/// The tool: typed arguments in, anything `Serialize` out. Lines written to
/// stderr end up in Switchboard's log (and in `switchboard call`'s output).
fn greet(arguments: Arguments, context: &CallContext) -> Result<Greeting, ToolError> {
    if arguments.name.trim().is_empty() {
        return Err(ToolError::invalid_arguments("`name` must not be empty"));
    }
    eprintln!("greeting {} (call {})", arguments.name, context.call_id);
    Ok(Greeting { message: format!("Hello, {}!", arguments.name) })
}

// Exports the tools: `tool "NAME" => FUNCTION, "DESCRIPTION FOR THE LLM";`
switchboard_sdk::plugin! {
    tool "__NAME__" => greet, "Greets someone by name.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_by_name() {
        let answer = plugin().call("__NAME__", r#"{"name": "Ada"}"#, &CallContext::default());
        assert_eq!(answer.unwrap(), r#"{"message":"Hello, Ada!"}"#);
    }

    #[test]
    fn refuses_an_empty_name() {
        let answer = plugin().call("__NAME__", r#"{"name": " "}"#, &CallContext::default());
        assert!(answer.is_err());
    }
}
