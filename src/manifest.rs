//! The optional manifest `NAME.toml` beside a plugin's `NAME.wasm`.
//!
//! A manifest sets the plugin's limits and, for a command plugin (which cannot
//! describe itself), its tools. Without one a plugin gets safe defaults.
//! Unknown keys are errors, so a typo never silently grants or drops anything.

use std::time::Duration;

use serde::Deserialize;

use crate::runtime::{Limits, ToolDefinition};

/// A parsed manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Longest a call may take, in milliseconds (still capped by the request's budget).
    pub timeout_ms: Option<u64>,
    /// Linear memory for the whole instance, in MiB.
    pub memory_mib: Option<usize>,
    /// The tools of a command plugin. Components list their own tools.
    #[serde(default)]
    pub tools: Vec<ManifestTool>,
}

/// One tool declared in a manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestTool {
    /// Function name.
    pub name: String,
    /// What it does, for the LLM.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments (a TOML table); an open object by default.
    #[serde(default)]
    pub parameters: Option<toml::Table>,
}

impl Manifest {
    /// Parses manifest text; errors name the line and the reason.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// The limits for calls to this plugin, starting from `defaults`.
    pub fn limits(&self, defaults: Limits) -> Limits {
        Limits {
            timeout: self.timeout_ms.map(Duration::from_millis).unwrap_or(defaults.timeout),
            memory_bytes: self.memory_mib.map(|m| m << 20).unwrap_or(defaults.memory_bytes),
            ..defaults
        }
    }

    /// Tool definitions for a command plugin named `plugin`: the manifest's
    /// list, or one tool named after the plugin.
    pub fn command_tools(&self, plugin: &str) -> Vec<ToolDefinition> {
        if self.tools.is_empty() {
            return vec![ToolDefinition {
                name: plugin.to_owned(),
                description: String::new(),
                parameters_schema: r#"{"type":"object"}"#.to_owned(),
            }];
        }
        self.tools
            .iter()
            .map(|t| ToolDefinition {
                name: t.name.clone(),
                description: t.description.clone(),
                parameters_schema: match &t.parameters {
                    Some(table) => serde_json::to_string(table).expect("TOML tables serialize to JSON"),
                    None => r#"{"type":"object"}"#.to_owned(),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits_and_tools() {
        let m = Manifest::parse(
            r#"
            timeout_ms = 1500
            memory_mib = 32
            [[tools]]
            name = "add"
            description = "Adds"
            parameters = { type = "object", properties = { a = { type = "number" } } }
            "#,
        )
        .unwrap();
        let limits = m.limits(Limits::default());
        assert_eq!(limits.timeout, Duration::from_millis(1500));
        assert_eq!(limits.memory_bytes, 32 << 20);
        let tools = m.command_tools("calc");
        assert_eq!(tools[0].name, "add");
        assert_eq!(tools[0].parameters_schema, r#"{"properties":{"a":{"type":"number"}},"type":"object"}"#);
    }

    #[test]
    fn defaults_and_errors() {
        let m = Manifest::parse("").unwrap();
        assert_eq!(m.limits(Limits::default()), Limits::default());
        assert_eq!(m.command_tools("greet")[0].name, "greet");
        let err = Manifest::parse("timeout_ms = 10\nallowed = 3\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("unknown field `allowed`"), "{err}");
    }
}
