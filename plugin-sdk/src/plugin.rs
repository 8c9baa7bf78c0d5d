//! [`Plugin`]: a set of typed tools, dispatched by name.

use std::fmt;

use schemars::{JsonSchema, generate::SchemaSettings};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::{CallContext, ToolError};

type Handler = dyn Fn(&str, &CallContext) -> Result<String, ToolError> + Send + Sync;

/// One tool: a name, a description and a typed function behind a JSON
/// boundary.
pub struct Tool {
    name: String,
    description: String,
    schema: fn() -> Value,
    handler: Box<Handler>,
}

impl Tool {
    /// Wraps `function` as the tool `name`.
    ///
    /// `A` (the arguments) is deserialized from the call's JSON arguments
    /// and gives the parameters schema; `R` (the result) is serialized to
    /// the call's JSON answer.
    ///
    /// # Panics
    ///
    /// If `name` is not 1 to 64 ASCII letters, digits, `_` or `-` (what LLM
    /// function-calling APIs accept).
    pub fn new<A, R, F>(name: impl Into<String>, description: impl Into<String>, function: F) -> Self
    where
        A: DeserializeOwned + JsonSchema,
        R: Serialize,
        F: Fn(A, &CallContext) -> Result<R, ToolError> + Send + Sync + 'static,
    {
        let name = name.into();
        assert!(valid_tool_name(&name), "invalid tool name {name:?}: use 1 to 64 ASCII letters, digits, `_` or `-`");
        Tool {
            name,
            description: description.into(),
            schema: parameters_schema::<A>,
            handler: Box::new(move |arguments, context| {
                let arguments = parse_arguments::<A>(arguments)?;
                let result = function(arguments, context)?;
                serde_json::to_string(&result)
                    .map_err(|e| ToolError::failed(format!("could not serialize the result: {e}")))
            }),
        }
    }

    /// The function name the LLM calls.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the tool does, written for the LLM.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The JSON Schema of the arguments object (see [`parameters_schema`]).
    pub fn parameters_schema(&self) -> Value {
        (self.schema)()
    }

    /// The definition [`Plugin::definitions`] reports for this tool.
    pub fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: self.name.clone(),
            description: self.description.clone(),
            parameters_schema: self.parameters_schema(),
        }
    }

    /// Runs the tool on `arguments` (a JSON object as text) and returns the
    /// result as JSON text.
    pub fn call(&self, arguments: &str, context: &CallContext) -> Result<String, ToolError> {
        (self.handler)(arguments, context)
    }
}

impl fmt::Debug for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tool").field("name", &self.name).field("description", &self.description).finish_non_exhaustive()
    }
}

/// One tool as the LLM will see it (the WIT record `tool-definition`, with
/// the schema as a JSON value rather than text).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolDefinition {
    /// The function name the LLM calls, e.g. `lookup_contact`.
    pub name: String,
    /// What the tool does, written for the LLM.
    pub description: String,
    /// JSON Schema of the tool's arguments object.
    pub parameters_schema: Value,
}

/// The tools of a plugin, dispatched by name.
///
/// [`plugin!`](crate::plugin!) builds one and exports it; build one by hand
/// only to test or to register tools conditionally:
///
/// ```
/// use switchboard_sdk::{CallContext, Plugin, ToolError, serde_json::Value};
///
/// fn ping(_args: Value, _ctx: &CallContext) -> Result<&'static str, ToolError> {
///     Ok("pong")
/// }
///
/// let plugin = Plugin::new().tool("ping", "Answers pong", ping);
/// assert_eq!(plugin.call("ping", "{}", &CallContext::default()).unwrap(), r#""pong""#);
/// ```
#[derive(Default)]
pub struct Plugin {
    tools: Vec<Tool>,
    assistant_request: Option<Box<AssistantRequestHandler>>,
    events: Option<Box<EventHandler>>,
}

type AssistantRequestHandler = dyn Fn(&Value) -> Result<Value, String> + Send + Sync;
type EventHandler = dyn Fn(&Value) -> Result<(), String> + Send + Sync;

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").field("tools", &self.tools).field("subscriptions", &self.subscriptions()).finish()
    }
}

impl Plugin {
    /// A plugin without tools.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool; see [`Tool::new`].
    ///
    /// # Panics
    ///
    /// If a tool of that name is already registered, or the name is invalid.
    pub fn tool<A, R, F>(self, name: impl Into<String>, description: impl Into<String>, function: F) -> Self
    where
        A: DeserializeOwned + JsonSchema,
        R: Serialize,
        F: Fn(A, &CallContext) -> Result<R, ToolError> + Send + Sync + 'static,
    {
        self.with(Tool::new(name, description, function))
    }

    /// Adds an already built [`Tool`].
    ///
    /// # Panics
    ///
    /// If a tool of that name is already registered.
    pub fn with(mut self, tool: Tool) -> Self {
        assert!(self.get(tool.name()).is_none(), "tool {:?} is registered twice", tool.name());
        self.tools.push(tool);
        self
    }

    /// The tools, in registration order.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|tool| tool.name == name)
    }

    /// The definitions of all tools (the `list` export).
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.tools.iter().map(Tool::definition).collect()
    }

    /// Answers `assistant-request` with `handler`, which gets the webhook's
    /// `message` object and returns the response body: `{}` (use the saved
    /// assistant), `{"assistant": {...}}`, `{"assistant_id": ..,
    /// "assistant_override": {..}}`, `{"max_duration_seconds": N}` or
    /// `{"error": "spoken to the caller"}`.
    pub fn on_assistant_request(
        mut self,
        handler: impl Fn(&Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.assistant_request = Some(Box::new(handler));
        self
    }

    /// Receives every `status-update` and `end-of-call-report` (the webhook's
    /// `message` object), after Switchboard acknowledged it: for CRM sync,
    /// logging, analytics. Check `message["type"]` to tell them apart.
    pub fn on_event(mut self, handler: impl Fn(&Value) -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.events = Some(Box::new(handler));
        self
    }

    /// The webhook events this plugin handles (the `subscriptions` export).
    pub fn subscriptions(&self) -> Vec<&'static str> {
        let mut events = Vec::new();
        if self.assistant_request.is_some() {
            events.push("assistant-request");
        }
        if self.events.is_some() {
            events.extend(["status-update", "end-of-call-report"]);
        }
        events
    }

    /// Answers an assistant-request given its `message` as JSON text (the
    /// `assistant-request` export). Without a handler the answer is `{}`.
    pub fn assistant_request(&self, message: &str) -> Result<String, String> {
        let Some(handler) = &self.assistant_request else { return Ok("{}".to_owned()) };
        let message: Value = serde_json::from_str(message).map_err(|e| format!("message is not JSON: {e}"))?;
        let response = handler(&message)?;
        if !response.is_object() {
            return Err("an assistant-request answer must be a JSON object".to_owned());
        }
        Ok(response.to_string())
    }

    /// Delivers an event given its `message` as JSON text (the `on-event`
    /// export). Without a handler it is ignored.
    pub fn event(&self, message: &str) -> Result<(), String> {
        let Some(handler) = &self.events else { return Ok(()) };
        let message: Value = serde_json::from_str(message).map_err(|e| format!("message is not JSON: {e}"))?;
        handler(&message)
    }

    /// Runs tool `name` (the `call` export). An unknown name is
    /// `not-found("unknown tool: NAME")`.
    pub fn call(&self, name: &str, arguments: &str, context: &CallContext) -> Result<String, ToolError> {
        match self.get(name) {
            Some(tool) => tool.call(arguments, context),
            None => Err(ToolError::not_found(format!("unknown tool: {name}"))),
        }
    }
}

/// The JSON Schema of an arguments type, as the platform wants it.
///
/// Generated by `schemars` (draft 2020-12, deserialize contract) with
/// subschemas inlined, without the top-level `$schema`, `title` and
/// `description` (the tool's description says what the arguments are for);
/// doc comments on fields become their `description`. A schema that accepts anything (such as
/// that of `serde_json::Value`) becomes the open object `{"type":"object"}`,
/// since tool arguments are always an object.
///
/// ```
/// use switchboard_sdk::{JsonSchema, parameters_schema, serde_json::json};
///
/// /// The type's own doc comment is not part of the schema.
/// #[derive(JsonSchema)]
/// # #[schemars(crate = "switchboard_sdk::schemars")]
/// struct Args {
///     /// Name or phone number to search
///     query: String,
/// }
///
/// assert_eq!(
///     parameters_schema::<Args>(),
///     json!({
///         "type": "object",
///         "properties": {
///             "query": {"type": "string", "description": "Name or phone number to search"}
///         },
///         "required": ["query"]
///     })
/// );
/// ```
pub fn parameters_schema<A: JsonSchema + ?Sized>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .for_deserialize()
        .with(|settings| {
            settings.inline_subschemas = true;
            settings.meta_schema = None;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<A>().to_value();
    match &mut schema {
        Value::Bool(true) => schema = serde_json::json!({"type": "object"}),
        Value::Object(object) => {
            object.remove("$schema");
            object.remove("title");
            object.remove("description");
            if object.is_empty() {
                object.insert("type".into(), "object".into());
            }
        }
        _ => {}
    }
    schema
}

/// Deserializes a call's `arguments` into `A`, with errors worded for the
/// LLM (they name the field: ``address.city: missing field `zip` ``).
///
/// Empty text counts as `{}`: some platforms send nothing for tools without
/// parameters.
pub fn parse_arguments<A: DeserializeOwned>(arguments: &str) -> Result<A, ToolError> {
    let arguments = match arguments.trim() {
        "" => "{}",
        text => text,
    };
    let mut deserializer = serde_json::Deserializer::from_str(arguments);
    let parsed = serde_path_to_error::deserialize(&mut deserializer);
    let error = match parsed {
        Ok(value) => match deserializer.end() {
            Ok(()) => return Ok(value),
            Err(error) => error,
        },
        Err(error) => {
            let path = error.path();
            let path = match path.iter().all(|s| matches!(s, Segment::Unknown)) {
                true => None,
                false => Some(path.to_string()),
            };
            let error = error.into_inner();
            if error.is_data() {
                // A value of the wrong shape: name the field, drop the
                // position ("at line 1 column 12") the LLM has no use for.
                let message = error.to_string();
                let position = format!(" at line {} column {}", error.line(), error.column());
                let message = message.strip_suffix(&position).unwrap_or(&message);
                return Err(ToolError::invalid_arguments(match path {
                    Some(path) => format!("{path}: {message}"),
                    None => message.to_owned(),
                }));
            }
            error
        }
    };
    Err(ToolError::invalid_arguments(format!("the arguments are not valid JSON: {error}")))
}

fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
