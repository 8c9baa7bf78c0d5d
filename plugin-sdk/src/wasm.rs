//! The component glue: bindings for `wit/world.wit` and the conversions
//! between them and the SDK's types. Only built for WebAssembly; used by the
//! code [`plugin!`](crate::plugin!) expands to.

use crate::{CallContext, Plugin, ToolError};

/// Bindings generated from `wit/world.wit` (world `plugin`: tools and hooks).
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "wit",
        // `plugin!` expands `export!` in the plugin's crate.
        pub_export_macro: true,
        default_bindings_module: "switchboard_sdk::__private::bindings",
        // Also the capability imports (wasi:http, wasi:config, wasi:logging)
        // and the WASI interfaces they use, for `http`, `config` and `log`.
        generate_all,
    });
}

pub use bindings::exports::switchboard::plugin::hooks::Guest as HooksGuest;
pub use bindings::exports::switchboard::plugin::tools::{
    CallContext as WitCallContext, Guest, ToolDefinition as WitToolDefinition, ToolError as WitToolError,
};

/// The `subscriptions` export.
pub fn subscriptions(plugin: &Plugin) -> Vec<String> {
    plugin.subscriptions().into_iter().map(str::to_owned).collect()
}

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
