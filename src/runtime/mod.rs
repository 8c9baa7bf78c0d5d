//! The plugin runtime: one wasmtime engine, and plugins that run each call in a
//! fresh, limited, interruptible instance.
//!
//! This module knows nothing of HTTP or of the platform's envelope: it takes a
//! tool name, arguments as JSON text and a [`CallContext`], and gives back a
//! result as JSON text or a [`ToolFailure`].
//!
//! Two plugin styles share one interface, [`Plugin`]:
//! - [`component`]: a WASI preview-2 component exporting Switchboard's WIT world;
//! - [`command`]: a WASI command (a preview-1 core module) that reads the call
//!   as JSON on stdin and prints its result on stdout.

pub mod cache;
pub mod command;
pub mod component;
mod limits;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline};

pub use limits::MemoryLimiter;

use crate::capabilities::{Capabilities, Values};

/// How often the epoch ticker advances. Guest code yields to the async
/// executor on every tick and is interrupted at the first tick past its deadline.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Where a tool call comes from, as the plugin sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The platform's call id.
    pub call_id: String,
    /// `inbound_phone_call`, `outbound_phone_call`, `web_call`, ...
    pub call_type: String,
    /// The id of this tool call.
    pub tool_call_id: String,
    /// The caller's number, when known.
    pub customer_number: Option<String>,
    /// The platform number, when known.
    pub phone_number: Option<String>,
    /// The assistant's metadata as JSON text, when sent.
    pub assistant_metadata: Option<String>,
}

/// One tool a plugin offers, as the LLM will see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ToolDefinition {
    /// Function name.
    pub name: String,
    /// What it does, for the LLM.
    pub description: String,
    /// JSON Schema of the arguments object, as JSON text.
    pub parameters_schema: String,
    /// Answered at once with `async_response`, run in the background (set by the manifest).
    pub is_async: bool,
    /// What the platform hears at once for an async tool.
    pub async_response: Option<String>,
}

/// Resource limits for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time the call may take, guest and host time together.
    pub timeout: Duration,
    /// Linear memory the whole instance may use, summed over its memories.
    pub memory_bytes: usize,
    /// Bytes of stdout/stderr kept from a command plugin.
    pub output_bytes: usize,
    /// Fuel (about one unit per WebAssembly instruction) a call may burn;
    /// `None` for no cap. Only counted when the runtime meters fuel
    /// ([`RuntimeOptions::fuel_metering`]).
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(9), memory_bytes: 128 << 20, output_bytes: 1 << 20, fuel: None }
    }
}

/// Why a tool call produced no result. Messages are worded for the LLM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolFailure {
    /// The plugin rejected the arguments.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The plugin found nothing for the request.
    #[error("{0}")]
    NotFound(String),
    /// The plugin reported an error.
    #[error("{0}")]
    Failed(String),
    /// The plugin crashed (a WebAssembly trap).
    #[error("the tool crashed: {0}")]
    Crashed(String),
    /// The plugin ran past its memory limit.
    #[error("the tool ran out of memory (limit {limit_mib} MiB)")]
    OutOfMemory {
        /// The limit, in MiB.
        limit_mib: usize,
    },
    /// The plugin did not finish within its time limit.
    #[error("the tool did not answer within {0:?}")]
    TimedOut(Duration),
    /// The plugin burnt all the fuel its manifest gives a call.
    #[error("the tool used up its fuel ({fuel} units)")]
    OutOfFuel {
        /// The limit.
        fuel: u64,
    },
    /// The plugin answered with something that is not a valid result.
    #[error("the tool returned an invalid result: {0}")]
    BadOutput(String),
}

/// Why a plugin could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Not WebAssembly, or wasmtime could not compile it.
    #[error("cannot compile: {0}")]
    Compile(String),
    /// It imports something Switchboard does not provide, or lacks an export.
    #[error("cannot link: {0}")]
    Link(String),
    /// Its tool list is missing, broken or invalid.
    #[error("invalid plugin: {0}")]
    Invalid(String),
}

/// A freshly loaded plugin and what it says about itself.
pub struct Loaded {
    /// The compiled, linked code.
    pub plugin: Plugin,
    /// Its tools.
    pub tools: Vec<ToolDefinition>,
    /// The webhook events it handles (`assistant-request`, `status-update`, `end-of-call-report`).
    pub subscriptions: Vec<String>,
}

/// A compiled plugin, ready to run calls. Cheap to clone.
#[derive(Clone)]
pub enum Plugin {
    /// A component exporting `switchboard:plugin/tools`.
    Component(component::ComponentPlugin),
    /// A WASI command reading JSON on stdin.
    Command(command::CommandPlugin),
}

impl Plugin {
    /// The plugin style, as shown by `GET /plugins`.
    pub fn kind(&self) -> &'static str {
        match self {
            Plugin::Component(_) => "component",
            Plugin::Command(_) => "command",
        }
    }

    /// Runs tool `name` with `arguments` (JSON object text) under `limits`.
    pub async fn call(
        &self,
        name: &str,
        arguments: &str,
        context: &CallContext,
        limits: Limits,
    ) -> Result<String, ToolFailure> {
        // Boxed: wasmtime's instantiate and call futures are large, and every
        // future that awaits this one (dispatch, dedup, the handler) would
        // otherwise embed them and copy them each time it is moved.
        match self {
            Plugin::Component(p) => Box::pin(p.call(name, arguments, context, limits)).await,
            Plugin::Command(p) => Box::pin(p.call(name, arguments, context, limits)).await,
        }
    }

    /// Answers an assistant-request (`message` as JSON) with the response JSON.
    pub async fn assistant_request(&self, message: &str, limits: Limits) -> Result<String, ToolFailure> {
        match self {
            Plugin::Component(p) => p.assistant_request(message, limits).await,
            Plugin::Command(_) => Err(ToolFailure::Failed("command plugins cannot answer assistant-request".into())),
        }
    }

    /// Delivers a status-update or end-of-call-report (`message` as JSON).
    pub async fn on_event(&self, message: &str, limits: Limits) -> Result<(), ToolFailure> {
        match self {
            Plugin::Component(p) => p.on_event(message, limits).await,
            Plugin::Command(_) => Err(ToolFailure::Failed("command plugins cannot receive events".into())),
        }
    }
}

/// The wasmtime engine and what every plugin shares: linkers, the epoch
/// ticker, the compiled-code cache. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    component_linker: wasmtime::component::Linker<component::CallState>,
    command_linker: wasmtime::Linker<command::CommandState>,
    cache: Option<cache::CodeCache>,
    pooling: bool,
    fuel_metering: bool,
    _ticker: EpochTicker,
}

/// Options for building a [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Folder for precompiled code; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Use on-demand allocation instead of the pooling allocator.
    pub disable_pooling: bool,
    /// Count fuel, so a manifest's `fuel` caps the instructions of a call.
    /// Off by default: the counting slows all guest code down (epochs
    /// already cut calls at their deadline), and precompiled code differs.
    pub fuel_metering: bool,
}

impl Runtime {
    /// Builds the engine (pooling allocator when the address space allows it)
    /// and starts the epoch ticker.
    pub fn new(options: &RuntimeOptions) -> anyhow::Result<Self> {
        let base_config = || {
            let mut config = base_config();
            config.consume_fuel(options.fuel_metering);
            config
        };
        let (engine, pooling) = if options.disable_pooling {
            (Engine::new(&base_config())?, false)
        } else {
            let mut config = base_config();
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config()));
            match Engine::new(&config) {
                Ok(engine) => (engine, true),
                Err(e) => {
                    tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                    (Engine::new(&base_config())?, false)
                }
            }
        };
        let component_linker = component::linker(&engine)?;
        let command_linker = command::linker(&engine)?;
        let cache = options.cache_dir.clone().map(|dir| cache::CodeCache::new(dir, &engine));
        let ticker = EpochTicker::start(engine.clone());
        let fuel_metering = options.fuel_metering;
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                component_linker,
                command_linker,
                cache,
                pooling,
                fuel_metering,
                _ticker: ticker,
            }),
        })
    }

    /// Whether instances come from the pooling allocator.
    pub fn uses_pooling(&self) -> bool {
        self.inner.pooling
    }

    /// Whether fuel is counted (see [`RuntimeOptions::fuel_metering`]).
    pub fn fuel_metering(&self) -> bool {
        self.inner.fuel_metering
    }

    /// Use of the precompiled-code cache, when there is one.
    pub fn cache_stats(&self) -> Option<cache::CacheStats> {
        self.cache().map(cache::CodeCache::stats)
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Compiles (or loads from the cache) and links a plugin, then reads its
    /// tool list. Compilation runs on a blocking thread, off the request path.
    ///
    /// `command_tools` names the tools of a command plugin (which cannot list
    /// its own); it is ignored for components. Every call of the plugin (and
    /// listing its tools) runs with `capabilities`.
    pub async fn load(
        &self,
        bytes: Arc<Vec<u8>>,
        command_tools: Vec<ToolDefinition>,
        capabilities: Arc<Capabilities>,
    ) -> Result<Loaded, LoadError> {
        if is_component(&bytes) {
            let plugin = component::ComponentPlugin::load(self.clone(), bytes, capabilities).await?;
            let (tools, subscriptions) = plugin.describe().await?;
            Ok(Loaded { plugin: Plugin::Component(plugin), tools, subscriptions })
        } else if bytes.starts_with(b"\0asm") {
            let plugin = command::CommandPlugin::load(self.clone(), bytes, capabilities).await?;
            Ok(Loaded { plugin: Plugin::Command(plugin), tools: command_tools, subscriptions: Vec::new() })
        } else {
            Err(LoadError::Compile("not a WebAssembly module or component (bad magic number)".into()))
        }
    }

    fn cache(&self) -> Option<&cache::CodeCache> {
        self.inner.cache.as_ref()
    }

    fn component_linker(&self) -> &wasmtime::component::Linker<component::CallState> {
        &self.inner.component_linker
    }

    fn command_linker(&self) -> &wasmtime::Linker<command::CommandState> {
        &self.inner.command_linker
    }
}

/// Whether `bytes` start like a component rather than a core module.
pub fn is_component(bytes: &[u8]) -> bool {
    // Core modules have version 1 (`01 00 00 00`); components have layer 1
    // with version 0x0d (`0d 00 01 00`).
    bytes.len() >= 8 && bytes.starts_with(b"\0asm") && bytes[6..8] == [1, 0]
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    config
}

fn pooling_config() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    // Enough slots for ~1,000 concurrent calls, with room for components made
    // of several core instances (componentize-py, componentize-js).
    pool.total_component_instances(1_500);
    pool.total_core_instances(3_000);
    pool.total_memories(3_000);
    pool.total_tables(3_000);
    pool.total_stacks(1_500);
    pool.max_core_instances_per_component(64);
    pool.max_memories_per_component(16);
    pool.max_tables_per_component(16);
    pool.max_memories_per_module(2);
    pool.max_tables_per_module(4);
    pool.table_elements(100_000);
    pool.max_component_instance_size(1 << 20);
    pool.max_core_instance_size(1 << 20);
    pool.max_memory_size(1 << 30);
    // Reset a slot by zeroing its first pages in place rather than handing
    // them back to the kernel: returning and re-faulting pages on every call
    // costs page faults and TLB-flush interrupts across cores, and was the
    // largest per-call cost measured (see BENCHMARKS.md and issue notes).
    pool.linear_memory_keep_resident(1 << 20);
    pool.table_keep_resident(1 << 20);
    pool.async_stack_keep_resident(64 << 10);
    // Where the kernel can (Linux 6.7+), reset only the pages a call touched.
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    pool
}

/// Sets up a fresh store for one call: memory limiter, fuel (when metered),
/// and a deadline that yields to the executor every tick and traps once
/// `limits.timeout` has passed.
fn prepare_store<T: Send + 'static>(
    store: &mut Store<T>,
    limits: Limits,
    fuel_metering: bool,
    limiter: fn(&mut T) -> &mut MemoryLimiter,
) {
    store.limiter(move |data| limiter(data) as &mut dyn wasmtime::ResourceLimiter);
    // Only an engine that meters fuel takes it; asking another would build an
    // error on every call.
    if fuel_metering {
        let _ = store.set_fuel(limits.fuel.unwrap_or(u64::MAX));
    }
    let deadline = Instant::now() + limits.timeout;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline { Ok(UpdateDeadline::Interrupt) } else { Ok(UpdateDeadline::Yield(1)) }
    });
}

/// A call's outcome with the plugin's secrets replaced by `***`, so a plugin
/// cannot pass one on to the platform by accident (in a result or an error).
fn redact(values: &Values, outcome: Result<String, ToolFailure>) -> Result<String, ToolFailure> {
    if !values.has_secrets() {
        return outcome;
    }
    match outcome {
        Ok(result) => Ok(values.redact(result)),
        Err(ToolFailure::InvalidArguments(m)) => Err(ToolFailure::InvalidArguments(values.redact(m))),
        Err(ToolFailure::NotFound(m)) => Err(ToolFailure::NotFound(values.redact(m))),
        Err(ToolFailure::Failed(m)) => Err(ToolFailure::Failed(values.redact(m))),
        Err(ToolFailure::BadOutput(m)) => Err(ToolFailure::BadOutput(values.redact(m))),
        Err(other) => Err(other),
    }
}

/// Maps an error from running guest code to the failure the LLM sees.
fn classify_error(error: &wasmtime::Error, limiter: &MemoryLimiter, limits: Limits) -> ToolFailure {
    if limiter.exceeded() {
        return ToolFailure::OutOfMemory { limit_mib: limits.memory_bytes >> 20 };
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => ToolFailure::TimedOut(limits.timeout),
        Some(wasmtime::Trap::OutOfFuel) => ToolFailure::OutOfFuel { fuel: limits.fuel.unwrap_or(u64::MAX) },
        Some(trap) => ToolFailure::Crashed(trap.to_string()),
        // A host call refused the guest (a resource misused, say): the cause
        // is the root; the outer context is only the wasm backtrace.
        None => ToolFailure::Crashed(error.root_cause().to_string()),
    }
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`]; stopped
/// and joined when dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("switchboard-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn epoch ticker thread");
        Self { stop, thread: Some(thread) }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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

    #[test]
    fn a_crash_is_described_by_its_cause_not_its_backtrace() {
        let limiter = MemoryLimiter::new(1 << 20);
        let refused = wasmtime::Error::msg("resource has children").context("error while executing at wasm backtrace:");
        let failure = classify_error(&refused, &limiter, Limits::default());
        assert_eq!(failure.to_string(), "the tool crashed: resource has children");
        let trap = wasmtime::Error::from(wasmtime::Trap::UnreachableCodeReached).context("at wasm backtrace:");
        let failure = classify_error(&trap, &limiter, Limits::default());
        assert!(failure.to_string().starts_with("the tool crashed: wasm trap: "), "{failure}");
    }
}
