//! The component glue: bindings for `wit/world.wit` and the conversions
//! between them and the SDK's types. Only built for WebAssembly; used by the
//! code [`plugin!`](crate::plugin!) expands to.

use crate::{CallContext, Plugin, ToolError};

/// Bindings generated from `wit/world.wit` (world `tool-plugin`).
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "tool-plugin",
        path: "wit",
        // `plugin!` expands `export!` in the plugin's crate.
        pub_export_macro: true,
        default_bindings_module: "switchboard_sdk::__private::bindings",
    });
}

pub use bindings::exports::switchboard::plugin::tools::{
    CallContext as WitCallContext, Guest, ToolDefinition as WitToolDefinition, ToolError as WitToolError,
};

/// The `list` export.
pub fn list(plugin: &Plugin) -> Vec<WitToolDefinition> {
    plugin
        .tools()
        .iter()
        .map(|tool| WitToolDefinition {
            name: tool.name().to_owned(),
            description: tool.description().to_owned(),
            parameters_schema: tool.parameters_schema().to_string(),
        })
        .collect()
}

/// The `call` export.
pub fn call(plugin: &Plugin, name: String, arguments: String, context: WitCallContext) -> Result<String, WitToolError> {
    let context = CallContext {
        call_id: context.call_id,
        call_type: context.call_type,
        tool_call_id: context.tool_call_id,
        customer_number: context.customer_number,
        phone_number: context.phone_number,
        assistant_metadata: CallContext::parse_metadata(context.assistant_metadata),
        deadline_ms: context.deadline_ms,
    };
    plugin.call(&name, &arguments, &context).map_err(|error| match error {
        ToolError::InvalidArguments(m) => WitToolError::InvalidArguments(m),
        ToolError::NotFound(m) => WitToolError::NotFound(m),
        ToolError::Failed(m) => WitToolError::Failed(m),
    })
}
