//! The sandbox: one wasmtime engine, and guest code that runs each call in a
//! fresh, limited, interruptible instance, with only the capabilities its
//! manifest grants.
//!
//! This layer knows nothing of HTTP, MCP or the platform's envelope: it takes
//! a tool name, arguments as JSON text and a [`CallContext`], and gives back a
//! result as JSON text or a [`ToolFailure`].
//!
//! Two plugin styles share one interface, [`Guest`]:
//! - [`component`]: a WASI preview-2 component exporting Switchboard's WIT world;
//! - [`command`]: a WASI command (a preview-1 core module) that reads the call
//!   as JSON on stdin and prints its result on stdout.
//!
//! What a guest may touch beyond its memory and CPU is in [`capabilities`];
//! what the host may hold on one call's behalf (resources, HTTP header
//! fields, request bodies) is capped in [`host_limits`]; and every
//! instantiation waits for room in the instance pool within its call's time
//! ([`pool`]) rather than fail when it is full. A plugin may opt in to
//! instances that serve several calls ([`reuse`]).
//!
//! Large plugins are first compiled fast and later optimised ([`tiers`]).

pub(crate) mod cache;
pub(crate) mod capabilities;
pub(crate) mod command;
pub(crate) mod component;
pub(crate) mod engine;
pub(crate) mod host_limits;
mod limits;
pub(crate) mod pool;
pub(crate) mod reuse;
pub(crate) mod tiers;
mod wasm;

use std::sync::Arc;

use crate::types::{CallContext, EventKind, Limits, ToolDefinition, ToolFailure};
use capabilities::Capabilities;
use engine::{EpochTicker, WasmEngine};
pub(crate) use engine::{LoadError, RuntimeOptions};
pub(crate) use reuse::Reuse;
use tiers::CompilePool;
pub(crate) use tiers::{Tier, TierOptions};
pub(crate) use wasm::Wasm;

/// What a freshly loaded guest says about itself.
pub(crate) struct Described {
    /// Its tools.
    pub tools: Vec<ToolDefinition>,
    /// The webhook events it handles.
    pub subscriptions: Vec<EventKind>,
}

/// Compiled plugin code, ready to run calls. Cheap to clone.
#[derive(Clone)]
pub(crate) enum Guest {
    /// A component exporting `switchboard:plugin/tools`.
    Component(component::ComponentPlugin),
    /// A WASI command reading JSON on stdin.
    Command(command::CommandPlugin),
}

impl Guest {
    /// The plugin style, as shown by `GET /plugins`.
    pub fn kind(&self) -> &'static str {
        match self {
            Guest::Component(_) => "component",
            Guest::Command(_) => "command",
        }
    }

    /// How many calls of this plugin fill a quarter of the instance pool:
    /// its `max_concurrent_calls` when neither its manifest nor the
    /// configuration sets one (see [`pool`]).
    pub fn default_max_concurrent_calls(&self) -> usize {
        pool::default_max_concurrent_calls(match self {
            Guest::Component(p) => p.pool_cost(),
            Guest::Command(p) => p.pool_cost(),
        })
    }

    /// Runs tool `name` with `arguments` (JSON object text) under `limits`.
    pub async fn call(
        &self,
        name: &str,
        arguments: &str,
        context: &CallContext,
        limits: Limits,
    ) -> Result<String, ToolFailure> {
        // The benchmarks' edge-only build (see Cargo.toml).
        if cfg!(feature = "bench-no-plugin-call") {
            return Ok(format!("{{\"echo\":{arguments}}}"));
        }
        // Boxed: wasmtime's instantiate and call futures are large, and every
        // future that awaits this one (dispatch, dedup, the handler) would
        // otherwise embed them and copy them each time it is moved.
        match self {
            Guest::Component(p) => Box::pin(p.call(name, arguments, context, limits)).await,
            Guest::Command(p) => Box::pin(p.call(name, arguments, context, limits)).await,
        }
    }

    /// Answers an assistant-request (`message` as JSON) with the response JSON.
    pub async fn assistant_request(&self, message: &str, limits: Limits) -> Result<String, ToolFailure> {
        match self {
            Guest::Component(p) => p.assistant_request(message, limits).await,
            Guest::Command(_) => Err(ToolFailure::Failed("command plugins cannot answer assistant-request".into())),
        }
    }

    /// Delivers a status-update or end-of-call-report (`message` as JSON).
    pub async fn on_event(&self, message: &str, limits: Limits) -> Result<(), ToolFailure> {
        match self {
            Guest::Component(p) => p.on_event(message, limits).await,
            Guest::Command(_) => Err(ToolFailure::Failed("command plugins cannot receive events".into())),
        }
    }
}

/// What every plugin shares: the engines (one per compile tier, with their
/// code cache and one epoch ticker) and a linker per engine and plugin
/// style. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    optimized: Compiler,
    /// The baseline tier, with when to use it; `None`: optimised only.
    baseline: Option<(Compiler, TierOptions)>,
    /// Threads compiling optimised code behind the baseline tier.
    background: Option<CompilePool>,
    _ticker: EpochTicker,
}

/// One compile tier's engine, and the linkers of both plugin styles for it.
struct Compiler {
    engine: WasmEngine,
    component_linker: wasmtime::component::Linker<component::CallState>,
    command_linker: wasmtime::Linker<command::CommandState>,
}

impl Compiler {
    fn new(
        options: &RuntimeOptions,
        tier: Tier,
        pool: &pool::InstancePool,
        turns: &Arc<tokio::sync::Semaphore>,
        compiler: &CompilePool,
    ) -> anyhow::Result<Self> {
        let engine = WasmEngine::new(options, tier, pool.clone(), turns.clone(), compiler.clone())?;
        let component_linker = component::linker(engine.wasmtime())?;
        let command_linker = command::linker(engine.wasmtime())?;
        Ok(Self { engine, component_linker, command_linker })
    }

    /// Compiles `bytes` (or loads them from the cache) with `engine` (this
    /// compiler's, or a background view of it) and links them.
    async fn link(
        &self,
        engine: &WasmEngine,
        bytes: Wasm,
        capabilities: Arc<Capabilities>,
        reuse: Reuse,
    ) -> Result<Guest, LoadError> {
        if is_component(&bytes) {
            let guest =
                component::ComponentPlugin::load(engine, &self.component_linker, bytes, capabilities, reuse).await?;
            Ok(Guest::Component(guest))
        } else if bytes.starts_with(b"\0asm") {
            let guest = command::CommandPlugin::load(engine, &self.command_linker, bytes, capabilities).await?;
            Ok(Guest::Command(guest))
        } else {
            Err(LoadError::Compile("not a WebAssembly module or component (bad magic number)".into()))
        }
    }
}

/// A plugin's code, loaded and described, and the tier it runs on.
pub(crate) struct Loaded {
    /// The code.
    pub guest: Guest,
    /// What it says about itself.
    pub described: Described,
    /// The compiler that made it.
    pub tier: Tier,
}

impl Runtime {
    /// Builds the engines and the linkers every plugin of one style shares.
    pub fn new(options: &RuntimeOptions) -> anyhow::Result<Self> {
        let pool = pool::InstancePool::new();
        let turns = Arc::new(tokio::sync::Semaphore::new(1));
        let foreground = CompilePool::foreground()?;
        let optimized = Compiler::new(options, Tier::Optimized, &pool, &turns, &foreground)?;
        let baseline = match options.tiers {
            Some(tiers) => Some((Compiler::new(options, Tier::Baseline, &pool, &turns, &foreground)?, tiers)),
            None => None,
        };
        let background = match options.tiers {
            Some(tiers) if tiers.background_threads > 0 => {
                Some(CompilePool::new("switchboard-optimize", tiers.background_threads, tiers::BACKGROUND_NICE)?)
            }
            _ => None,
        };
        let mut engines = vec![optimized.engine.wasmtime().clone()];
        engines.extend(baseline.iter().map(|(compiler, _)| compiler.engine.wasmtime().clone()));
        let ticker = EpochTicker::start(engines);
        Ok(Self { inner: Arc::new(RuntimeInner { optimized, baseline, background, _ticker: ticker }) })
    }

    /// Whether fuel is counted (see [`RuntimeOptions::fuel_metering`]).
    pub fn fuel_metering(&self) -> bool {
        self.inner.optimized.engine.fuel_metering()
    }

    /// Whether plugins loaded on the baseline tier should be handed to
    /// [`Self::optimize`]: there are threads to compile them.
    pub fn optimizes_in_background(&self) -> bool {
        self.inner.background.is_some()
    }

    /// The baseline compiler, when `bytes` are to start on the baseline
    /// tier: at least [`TierOptions::baseline_min_bytes`], and their
    /// optimised code not cached.
    fn baseline_for(&self, bytes: &Wasm) -> Option<&Compiler> {
        let RuntimeInner { optimized, baseline, .. } = &*self.inner;
        let (baseline, tiers) = baseline.as_ref()?;
        (bytes.len() >= tiers.baseline_min_bytes && !optimized.engine.is_cached(bytes)).then_some(baseline)
    }

    /// Whether loading `bytes` is quick (milliseconds): their code for the
    /// tier they would start on is in the code cache, or they are small.
    /// A plugin found at start that is not loads after the others serve.
    pub fn loads_quickly(&self, bytes: &Wasm) -> bool {
        self.baseline_for(bytes).unwrap_or(&self.inner.optimized).engine.compiles_quickly(bytes)
    }

    /// Compiles (or loads from the cache) and links a plugin, then reads its
    /// tool list. Compilation runs on the compile pool, off the request path.
    ///
    /// A plugin of at least [`TierOptions::baseline_min_bytes`] whose
    /// optimised code is not cached is compiled on the baseline tier, unless
    /// the baseline compiler cannot compile it; any other, optimised.
    ///
    /// `command_tools` names the tools of a command plugin (which cannot list
    /// its own); it is ignored for components. Every call of the plugin (and
    /// listing its tools) runs with `capabilities`. A component's instances
    /// serve calls as `reuse` says; a command's instance ends when its
    /// program exits, so every call of a command runs in a fresh one.
    pub async fn load(
        &self,
        bytes: Wasm,
        command_tools: Vec<ToolDefinition>,
        capabilities: Arc<Capabilities>,
        reuse: Reuse,
    ) -> Result<Loaded, LoadError> {
        let optimized = &self.inner.optimized;
        let (guest, tier) = match self.baseline_for(&bytes) {
            Some(baseline) => match baseline.link(&baseline.engine, bytes.clone(), capabilities.clone(), reuse).await {
                Ok(guest) => (guest, Tier::Baseline),
                Err(LoadError::Compile(e)) => {
                    tracing::info!(error = %e, "the baseline compiler cannot compile this plugin; compiling it optimised");
                    (optimized.link(&optimized.engine, bytes, capabilities, reuse).await?, Tier::Optimized)
                }
                Err(e) => return Err(e),
            },
            None => (optimized.link(&optimized.engine, bytes, capabilities, reuse).await?, Tier::Optimized),
        };
        let described = match &guest {
            Guest::Component(plugin) => {
                let (tools, names) = plugin.describe().await?;
                let subscriptions = names
                    .iter()
                    .filter_map(|name| match name.parse::<EventKind>() {
                        Ok(EventKind::ToolCalls) | Err(_) => {
                            tracing::warn!(event = %name, "a plugin subscribes to an event it cannot receive; ignored");
                            None
                        }
                        Ok(kind) => Some(kind),
                    })
                    .collect();
                Described { tools, subscriptions }
            }
            Guest::Command(_) => Described { tools: command_tools, subscriptions: Vec::new() },
        };
        Ok(Loaded { guest, described, tier })
    }

    /// Compiles `bytes` optimised on the background compiler's low-priority
    /// threads (writing the code cache) and links them: the
    /// [`Tier::Optimized`] code of a plugin loaded on the baseline tier.
    /// Its tools are those the baseline code described (same bytes).
    pub async fn optimize(
        &self,
        bytes: Wasm,
        capabilities: Arc<Capabilities>,
        reuse: Reuse,
    ) -> Result<Guest, LoadError> {
        let RuntimeInner { optimized, background, .. } = &*self.inner;
        let background = background
            .as_ref()
            .ok_or_else(|| LoadError::Compile("no background compile threads are configured".into()))?;
        optimized.link(&optimized.engine.in_background(background), bytes, capabilities, reuse).await
    }
}

/// Whether `bytes` start like a component rather than a core module.
pub(crate) fn is_component(bytes: &[u8]) -> bool {
    // Core modules have version 1 (`01 00 00 00`); components have layer 1
    // with version 0x0d (`0d 00 01 00`).
    bytes.len() >= 8 && bytes.starts_with(b"\0asm") && bytes[6..8] == [1, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_components_from_core_modules() {
        assert!(is_component(b"\0asm\x0d\0\x01\0"));
        assert!(!is_component(b"\0asm\x01\0\0\0"));
        assert!(!is_component(b"\0as"));
    }
}
