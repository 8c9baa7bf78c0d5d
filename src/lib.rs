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
//! A request flows one way through these modules:
//!
//! - [`webhook`]: the HTTP edge. Raw bytes, [`webhook::signature`] check,
//!   [`webhook::event`] decoding, the response shapes.
//! - [`dispatch`]: fan-out of one request's tool calls, concurrently, under
//!   one deadline; results in request order.
//! - [`registry`]: which plugin owns which tool; an immutable snapshot swapped
//!   atomically.
//! - [`runtime`]: the wasmtime engine; component and WASI-command plugins,
//!   each call in a fresh instance with memory and time limits.
//! - [`watcher`]: hot reload; debounced file events become registry swaps.
//! - [`manifest`]: a plugin's optional `NAME.toml`: limits, grants, tool options.
//! - [`capabilities`]: what a plugin may touch (outbound HTTP, config and
//!   secrets, logs), granted per plugin and enforced at the moment of use.
//! - [`ops`], [`metrics`]: health, readiness, metrics, and what is loaded.
//! - `app`: [`Settings`], [`Switchboard`] and [`serve`], the embedding API.
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
pub mod assistant;
pub mod capabilities;
pub mod config;
pub mod dedup;
pub mod dispatch;
pub mod events;
pub mod manifest;
pub mod metrics;
pub mod ops;
pub mod registry;
pub mod runtime;
pub mod schema;
pub mod watcher;
pub mod webhook;

pub use app::{AppState, Settings, StartError, Switchboard, serve};
pub use webhook::signature::{sign, unix_now};
