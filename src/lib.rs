//! Switchboard: verified voice-AI webhooks in, sandboxed WebAssembly plugin
//! results out.
//!
//! A voice platform (first HMS Sovereign / VoiceDock) POSTs signed events while
//! a phone call is live. Switchboard verifies each one, decodes it, sends every
//! tool call to the WebAssembly plugin that owns that function name, and
//! answers inside the platform's deadline.
//!
//! # Layout
//!
//! Four layers, each a folder of `src/`; each uses only the ones below it:
//!
//! ```text
//! doors/    bytes in -> verified (webhook/signature) -> event (webhook/event)   | ops endpoints
//! core/     event -> dispatch (schema check, duplicates, deadline) | assistant routing | event fan-out
//! plugins/  tool name -> plugin version (snapshot, swapped whole on reload; loader, manifest, watcher)
//! sandbox/  plugin -> fresh wasmtime instance, limits, granted capabilities -> result
//! types.rs  the plain types all of them share: CallContext, ToolDefinition, ToolFailure, EventKind, Limits
//! ```
//!
//! `app.rs` wires them together ([`Switchboard`]); the answer goes back up the
//! same way, result -> response. The binary (`main.rs`, `cli/`) reads the
//! command line and the configuration file and uses only this crate's public API.
//!
//! # Embedding
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let settings = switchboard::Settings {
//!     secrets: vec!["whsec_...".into()],
//!     ..Default::default()
//! };
//! let switchboard = switchboard::Switchboard::start(settings).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! switchboard::serve(listener, &switchboard, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod app;
mod core;
mod doors;
mod plugins;
mod sandbox;
mod types;

/// Entry points for the fuzz targets in `fuzz/`; only with the `fuzzing` feature.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use app::{
    CompileSettings, LoadedPlugin, McpSettings, PluginStatus, Settings, StartError, Switchboard, serve, serve_admin,
};
pub use core::assistant::{AssistantRoute, AssistantSettings};
pub use core::call_log::{
    CallEntry, CallLogDatabase, CallLogReader, CallLogSettings, CallPage, CallQuery, CallStory, CallSummary,
    CallsError, ToolStats, parse_time,
};
pub use core::dedup::DedupSettings;
pub use doors::webhook::signature::{sign, unix_now};
pub use types::{CallContext, EventKind, Limits, ToolDefinition, ToolFailure, UnknownEvent};
