//! Write Switchboard tool plugins as plain typed Rust functions.
//!
//! A Switchboard plugin is a WebAssembly component (target `wasm32-wasip2`)
//! that offers tools to a voice assistant's LLM. With this crate a tool is
//! an ordinary function from a deserializable argument type to a
//! serializable result; [`plugin!`] turns a list of them into the component's
//! exports (the `switchboard:plugin/tools` interface of `wit/world.wit`).
//! You write no WIT glue and no JSON handling.
//!
//! # Example
//!
//! ```
//! use switchboard_sdk::prelude::*;
//!
//! /// Arguments of `lookup_contact`.
//! #[derive(Deserialize, JsonSchema)]
//! struct LookupArgs {
//!     /// Name or phone number to search
//!     query: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Contact {
//!     name: String,
//!     email: String,
//!     phone: String,
//! }
//!
//! fn lookup_contact(args: LookupArgs, _ctx: &CallContext) -> Result<Contact, ToolError> {
//!     if args.query.trim().is_empty() {
//!         return Err(ToolError::invalid_arguments("`query` must not be empty"));
//!     }
//!     if !"John Smith".to_lowercase().contains(&args.query.to_lowercase()) {
//!         return Err(ToolError::not_found(format!("No contact found for '{}'", args.query)));
//!     }
//!     Ok(Contact {
//!         name: "John Smith".into(),
//!         email: "john@example.com".into(),
//!         phone: "+31612345678".into(),
//!     })
//! }
//!
//! switchboard_sdk::plugin! {
//!     tool "lookup_contact" => lookup_contact, "Look up contact information by name or phone number";
//! }
//! # fn main() {
//! # let ctx = CallContext::default();
//! # assert_eq!(
//! #     plugin().call("lookup_contact", r#"{"query":"john"}"#, &ctx).unwrap(),
//! #     r#"{"name":"John Smith","email":"john@example.com","phone":"+31612345678"}"#
//! # );
//! # }
//! ```
//!
//! The plugin's `Cargo.toml`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! switchboard-sdk = { path = "../../plugin-sdk" }
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the
//! component is `target/wasm32-wasip2/release/NAME.wasm`.
//!
//! # `plugin!`
//!
//! ```text
//! switchboard_sdk::plugin! {
//!     /// Optional doc comments, for readers of the source.
//!     tool "NAME" => FUNCTION, "DESCRIPTION FOR THE LLM";
//!     tool "OTHER" => other_function, "...";
//!     // Optional hooks (at most one of each):
//!     on_assistant_request => answer_assistant_request;
//!     on_event => record_event;
//! }
//! ```
//!
//! - `on_assistant_request` takes `Fn(&Value) -> Result<Value, String>`: the
//!   webhook's `message` in, the response body out (`{}`, `{"assistant": ..}`,
//!   `{"assistant_id": .., "assistant_override": ..}`,
//!   `{"max_duration_seconds": N}` or `{"error": ".."}`).
//! - `on_event` takes `Fn(&Value) -> Result<(), String>` and receives every
//!   `status-update` and `end-of-call-report` after it was acknowledged.
//! - `NAME` is the function name the LLM calls (1 to 64 ASCII letters,
//!   digits, `_`, `-`; unique within the plugin).
//! - `FUNCTION` is any `Fn(A, &CallContext) -> Result<R, ToolError>` (a
//!   function path or a closure) where `A: Deserialize + JsonSchema` and
//!   `R: Serialize`.
//! - `DESCRIPTION` is any expression convertible into a `String`.
//!
//! Use it once per crate. It defines `pub fn plugin() -> &'static Plugin` in
//! the module it is called in (handy for tests, see below) and, when built
//! for WebAssembly, exports the component interface from it.
//!
//! # Arguments, results and errors
//!
//! - The call's arguments (a JSON object) are deserialized with `serde_json`
//!   into `A`. If that fails, the LLM gets
//!   [`ToolError::InvalidArguments`] with serde's message prefixed by the
//!   field's path, e.g. ``missing field `query` `` or
//!   ``query: invalid type: integer `5`, expected a string``. Empty
//!   arguments count as `{}`. Use `Option<T>` or `#[serde(default)]` for
//!   optional parameters, `serde_json::Value` to take anything.
//! - The result `R` is serialized to JSON and returned as the tool result.
//! - Return [`ToolError::invalid_arguments`], [`ToolError::not_found`] or
//!   [`ToolError::failed`] (also `"message".into()`) for errors; word them
//!   for the LLM, which reads them.
//! - An unknown tool name is answered with ``not-found("unknown tool: NAME")``.
//! - A panic aborts the call (it is a WebAssembly trap); Switchboard reports
//!   it as a plugin failure. Prefer returning a [`ToolError`].
//!
//! # Parameters schema
//!
//! The JSON Schema the LLM sees is generated from `A` by `schemars` (see
//! [`parameters_schema`]): a plain object schema with subschemas inlined and
//! doc comments as `description`s. `#[serde(rename = ...)]`,
//! `#[serde(default)]` and friends are honoured, and `#[schemars(...)]`
//! attributes can refine it (e.g. `#[schemars(regex(pattern = ...))]`).
//!
//! # Context and limits
//!
//! Each call gets a [`CallContext`]: the call's ids, the caller's and the
//! platform's numbers, the assistant's metadata and the milliseconds left
//! before Switchboard must answer. Switchboard runs every call in a fresh
//! instance, so keep no state between calls (statics start afresh). It also
//! limits time and memory: a call that runs past its deadline or allocates
//! too much is stopped.
//!
//! # Capabilities: HTTP, configuration, secrets, logs
//!
//! A plugin may do what its manifest (`NAME.toml` beside `NAME.wasm`)
//! grants, and nothing else:
//!
//! - [`http`]: `http::get(url)`, `http::post_json(url, &body)`, or
//!   `http::Request` for headers and other methods; only to the manifest's
//!   `[http] allowed_hosts`.
//! - [`config`]: `config::get("key")` for `[config]` values and
//!   `config::secret("key")` for `[secrets]`.
//! - [`log`]: `log::info("...")` and friends, into Switchboard's log.
//!
//! Their errors convert into [`ToolError`] with `?`, worded for the LLM:
//!
//! ```no_run
//! use switchboard_sdk::{config, http, prelude::*};
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Args { date: String }
//!
//! fn free_slots(args: Args, _ctx: &CallContext) -> Result<serde_json::Value, ToolError> {
//!     let base = config::get("base_url")?;
//!     let key = config::secret("api_key")?;
//!     let response = http::Request::get(format!("{base}/slots?date={}", args.date))
//!         .bearer_auth(key.expose())
//!         .send()?;
//!     Ok(response.json()?)
//! }
//! # switchboard_sdk::plugin! { tool "free_slots" => free_slots, "Free slots on a date"; }
//! # fn main() {}
//! ```
//!
//! # Testing natively
//!
//! The crate builds for the host too, so plugins can have ordinary unit
//! tests (`cargo test -p my_plugin`): call the tool function directly, or go
//! through the JSON boundary with `plugin()`:
//!
//! ```
//! # use switchboard_sdk::prelude::*;
//! # fn echo(args: serde_json::Value, _: &CallContext) -> Result<serde_json::Value, ToolError> { Ok(args) }
//! # switchboard_sdk::plugin! { tool "echo" => echo, "Echo"; }
//! # fn main() {
//! let ctx = CallContext::default();
//! let answer = plugin().call("echo", r#"{"a":1}"#, &ctx);
//! assert_eq!(answer, Ok(r#"{"a":1}"#.to_string()));
//! assert_eq!(
//!     plugin().call("nope", "{}", &ctx),
//!     Err(ToolError::not_found("unknown tool: nope"))
//! );
//! # }
//! ```
#![warn(missing_docs)]

pub mod config;
mod context;
mod error;
pub mod http;
pub mod log;
mod plugin;
#[cfg(target_arch = "wasm32")]
mod wasm;

pub use context::CallContext;
pub use error::ToolError;
pub use plugin::{Plugin, Tool, ToolDefinition, parameters_schema, parse_arguments};

pub use schemars::{self, JsonSchema};
pub use serde;
pub use serde_json;

/// Everything a plugin needs in one import: `use switchboard_sdk::prelude::*;`.
///
/// Besides the SDK's types it brings serde's `Deserialize` and `Serialize`,
/// `serde_json`, and `schemars` so that `#[derive(JsonSchema)]` works
/// without a direct `schemars` dependency (the derive refers to
/// `schemars::`). `#[derive(Deserialize, Serialize)]` still needs `serde`
/// (with the `derive` feature) in the plugin's `Cargo.toml`.
pub mod prelude {
    pub use crate::{CallContext, JsonSchema, ToolError, schemars, serde_json};
    pub use serde::{Deserialize, Serialize};
}

/// Declares the plugin's tools and exports them as the component's
/// `switchboard:plugin/tools` interface.
///
/// ```
/// use switchboard_sdk::prelude::*;
///
/// #[derive(Deserialize, JsonSchema)]
/// struct AddArgs {
///     /// First term
///     a: i64,
///     /// Second term
///     b: i64,
/// }
///
/// fn add(args: AddArgs, _ctx: &CallContext) -> Result<i64, ToolError> {
///     args.a.checked_add(args.b).ok_or_else(|| ToolError::failed("overflow"))
/// }
///
/// switchboard_sdk::plugin! {
///     /// Adds two integers.
///     tool "add" => add, "Add two integers";
///     tool "negate" => |n: i64, _ctx: &CallContext| Ok::<_, ToolError>(-n), "Negate an integer";
/// }
/// # fn main() {
/// let ctx = CallContext::default();
/// assert_eq!(plugin().call("add", r#"{"a":2,"b":3}"#, &ctx).unwrap(), "5");
/// assert_eq!(plugin().tools().len(), 2);
/// # }
/// ```
///
/// See the [crate documentation](crate) for the rules.
#[macro_export]
macro_rules! plugin {
    // Builds the `Plugin` one entry at a time.
    (@build $plugin:expr; $(#[$meta:meta])* tool $name:literal => $function:expr, $description:expr $(; $($rest:tt)*)?) => {
        $crate::plugin!(@build $plugin.tool($name, $description, $function); $($($rest)*)?)
    };
    (@build $plugin:expr; $(#[$meta:meta])* on_assistant_request => $handler:expr $(; $($rest:tt)*)?) => {
        $crate::plugin!(@build $plugin.on_assistant_request($handler); $($($rest)*)?)
    };
    (@build $plugin:expr; $(#[$meta:meta])* on_event => $handler:expr $(; $($rest:tt)*)?) => {
        $crate::plugin!(@build $plugin.on_event($handler); $($($rest)*)?)
    };
    (@build $plugin:expr;) => {
        $plugin
    };

    ($($body:tt)+) => {
        /// The tools of this plugin, as declared with `switchboard_sdk::plugin!`.
        pub fn plugin() -> &'static $crate::Plugin {
            static PLUGIN: ::std::sync::OnceLock<$crate::Plugin> = ::std::sync::OnceLock::new();
            PLUGIN.get_or_init(|| $crate::plugin!(@build $crate::Plugin::new(); $($body)+))
        }

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct SwitchboardComponent;

            impl $crate::__private::Guest for SwitchboardComponent {
                fn list() -> ::std::vec::Vec<$crate::__private::WitToolDefinition> {
                    $crate::__private::list(plugin())
                }

                fn call(
                    name: ::std::string::String,
                    arguments: ::std::string::String,
                    context: $crate::__private::WitCallContext,
                ) -> ::std::result::Result<::std::string::String, $crate::__private::WitToolError> {
                    $crate::__private::call(plugin(), name, arguments, context)
                }
            }

            impl $crate::__private::HooksGuest for SwitchboardComponent {
                fn subscriptions() -> ::std::vec::Vec<::std::string::String> {
                    $crate::__private::subscriptions(plugin())
                }

                fn assistant_request(
                    message: ::std::string::String,
                ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                    plugin().assistant_request(&message)
                }

                fn on_event(message: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                    plugin().event(&message)
                }
            }

            $crate::__private::bindings::export!(
                SwitchboardComponent with_types_in $crate::__private::bindings
            );
        };
    };

}

/// Used by the expansion of [`plugin!`]; not part of the API.
#[doc(hidden)]
#[cfg(target_arch = "wasm32")]
pub mod __private {
    pub use crate::wasm::*;
}

#[cfg(test)]
mod tests;
