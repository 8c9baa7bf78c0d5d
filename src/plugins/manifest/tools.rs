//! The tools a manifest declares (for a command plugin, which cannot
//! describe itself) or adjusts (for a component: description, async).

use super::Manifest;
use crate::types::{ToolDefinition, check_tool_name};

/// The most levels a tool's `parameters` may nest (a real schema nests a few).
pub(crate) const MAX_PARAMETER_DEPTH: usize = 64;

impl Manifest {
    /// Tool definitions for a command plugin named `plugin`: the manifest's
    /// list, or one tool named after the plugin.
    pub fn command_tools(&self, plugin: &str) -> Vec<ToolDefinition> {
        if self.tools.is_empty() {
            return vec![ToolDefinition {
                name: plugin.to_owned(),
                description: String::new(),
                parameters_schema: r#"{"type":"object"}"#.to_owned(),
                is_async: false,
                async_response: None,
            }];
        }
        self.tools
            .iter()
            .map(|t| ToolDefinition {
                name: t.name.clone(),
                description: t.description.clone().unwrap_or_default(),
                parameters_schema: match &t.parameters {
                    Some(table) => serde_json::to_string(table).expect("TOML tables serialize to JSON"),
                    None => r#"{"type":"object"}"#.to_owned(),
                },
                is_async: t.is_async,
                async_response: t.async_response.clone(),
            })
            .collect()
    }

    /// Refuses `parameters` nested deeper than [`MAX_PARAMETER_DEPTH`]:
    /// dotted TOML keys nest a table a level per dot, and the JSON reader
    /// the schema goes through stops at 128 levels (a fuzzer found a
    /// manifest that loaded as a schema "not JSON").
    pub(super) fn check_parameter_depth(&self) -> Result<(), String> {
        for tool in &self.tools {
            let Some(parameters) = &tool.parameters else { continue };
            // Depth-first with a stack of its own: no recursion on untrusted nesting.
            let mut stack: Vec<(&toml::Value, usize)> = parameters.values().map(|v| (v, 2)).collect();
            while let Some((value, depth)) = stack.pop() {
                if depth > MAX_PARAMETER_DEPTH {
                    return Err(format!(
                        "[[tools]] {:?}: `parameters` nests deeper than {MAX_PARAMETER_DEPTH} levels",
                        tool.name
                    ));
                }
                match value {
                    toml::Value::Table(table) => stack.extend(table.values().map(|v| (v, depth + 1))),
                    toml::Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Checks the names of the tools [`Self::command_tools`] gives, by the
    /// rule a component's own tools are checked by
    /// ([`check_tool_name`]); the error names the tool and the rule.
    pub fn check_command_tools(&self, plugin: &str) -> Result<(), String> {
        if self.tools.is_empty() {
            return check_tool_name(plugin).map_err(|e| {
                format!(
                    "a command plugin without [[tools]] in a manifest offers one tool named after its file, and {e}; rename the file or declare its tools in [[tools]]"
                )
            });
        }
        self.tools.iter().try_for_each(|tool| check_tool_name(&tool.name).map_err(|e| format!("[[tools]]: {e}")))
    }

    /// Applies `[[tools]]` options to the tools a component listed. Every
    /// entry must name one of them.
    pub fn apply_to_component_tools(&self, tools: &mut [ToolDefinition]) -> Result<(), String> {
        for option in &self.tools {
            let offered = tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
            let Some(tool) = tools.iter_mut().find(|t| t.name == option.name) else {
                return Err(format!(
                    "[[tools]] names {:?}, which this plugin does not offer (it offers: {offered})",
                    option.name,
                ));
            };
            if option.parameters.is_some() {
                return Err(format!(
                    "[[tools]] {:?}: `parameters` is only for command plugins; a component describes its own",
                    option.name
                ));
            }
            if let Some(description) = &option.description {
                tool.description = description.clone();
            }
            tool.is_async = option.is_async;
            tool.async_response = option.async_response.clone();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tools_come_from_the_manifest_or_the_plugin_name() {
        let m = Manifest::parse(
            "[[tools]]\nname = \"add\"\nparameters = { type = \"object\", properties = { a = { type = \"number\" } } }\n",
        )
        .unwrap();
        let tools = m.command_tools("calc");
        assert_eq!(tools[0].name, "add");
        assert_eq!(tools[0].parameters_schema, r#"{"properties":{"a":{"type":"number"}},"type":"object"}"#);
        assert_eq!(Manifest::parse("").unwrap().command_tools("greet")[0].name, "greet");
    }

    #[test]
    fn parameters_nested_past_the_limit_are_refused_and_up_to_it_load() {
        // `parameters.a.a...` with `levels` tables: the schema object is level 1.
        let nested = |levels: usize| {
            format!("[[tools]]\nname = \"deep\"\nparameters = {{ {} = 1 }}\n", vec!["a"; levels].join("."))
        };
        let ok = Manifest::parse(&nested(MAX_PARAMETER_DEPTH - 1)).unwrap();
        let schema = &ok.command_tools("deep")[0].parameters_schema;
        assert!(serde_json::from_str::<serde_json::Value>(schema).is_ok());
        let err = Manifest::parse(&nested(MAX_PARAMETER_DEPTH)).unwrap_err();
        assert_eq!(err, format!("[[tools]] \"deep\": `parameters` nests deeper than {MAX_PARAMETER_DEPTH} levels"));
        // What the fuzzer found: past serde_json's 128 levels.
        assert!(Manifest::parse(&nested(200)).is_err());
    }

    #[test]
    fn command_tool_names_follow_the_platforms_rule() {
        let toml = |name: &str| format!("[[tools]]\nname = {}\n", toml::Value::String(name.to_owned()));
        let long = "a".repeat(5_000);
        for bad in ["has space", "", long.as_str(), "quo\"te", "new\nline", "9lives", "dot.ted", "ünï"] {
            let err = Manifest::parse(&toml(bad)).unwrap().check_command_tools("calc").unwrap_err();
            assert!(err.starts_with("[[tools]]: tool name \""), "{bad:?}: {err}");
            assert!(err.contains("must start with a letter or `_`") && !err.contains('\n'), "{bad:?}: {err}");
            assert!(err.len() < 300, "a long name is shortened: {err}");
        }
        for good in ["add", "_private", "book-appointment", &"a".repeat(64)] {
            Manifest::parse(&toml(good)).unwrap().check_command_tools("calc").unwrap();
        }
        let err = Manifest::default().check_command_tools("my plugin").unwrap_err();
        assert!(err.contains("named after its file") && err.contains("\"my plugin\""), "{err}");
        Manifest::default().check_command_tools("greet").unwrap();
    }

    #[test]
    fn tool_options_apply_to_component_tools() {
        let tool = |name: &str| ToolDefinition {
            name: name.into(),
            description: "own".into(),
            parameters_schema: "{}".into(),
            is_async: false,
            async_response: None,
        };
        let mut tools = vec![tool("book"), tool("cancel")];
        let m = Manifest::parse("[[tools]]\nname = \"book\"\ndescription = \"Book a slot\"\nasync = true\n").unwrap();
        m.apply_to_component_tools(&mut tools).unwrap();
        assert_eq!((tools[0].description.as_str(), tools[1].description.as_str()), ("Book a slot", "own"));
        assert!(tools[0].is_async && !tools[1].is_async);
        let unknown = Manifest::parse("[[tools]]\nname = \"nope\"\n").unwrap();
        let err = unknown.apply_to_component_tools(&mut tools).unwrap_err();
        assert!(err.contains("\"nope\"") && err.contains("book, cancel"), "{err}");
        let schema = Manifest::parse("[[tools]]\nname = \"book\"\nparameters = {}\n").unwrap();
        assert!(schema.apply_to_component_tools(&mut tools).unwrap_err().contains("only for command plugins"));
    }
}
