//! The wasmtime engines plugins share (one per compile tier, see
//! [`super::tiers`]), and how one call's store is set up and its failures
//! named: the epoch ticker that cuts deadlines, the pooling allocator, the
//! code cache, fuel, memory limits, redaction.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::Component;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Module, PoolingAllocationConfig, Store, Strategy, UpdateDeadline,
};

use super::cache::CodeCache;
use super::capabilities::Values;
use super::host_limits::HostLimitExceeded;
use super::limits::MemoryLimiter;
use super::pool::{InstancePool, MAX_CORE_INSTANCES_PER_COMPONENT, POOL_COMPONENT_INSTANCES, POOL_CORE_INSTANCES};
use super::tiers::{CompilePool, Tier, TierOptions};
use super::wasm::Wasm;
use crate::types::{Limits, ToolFailure};

/// How often the epoch ticker advances. Guest code yields to the async
/// executor on every tick and is interrupted at the first tick past its deadline.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Plugins smaller than this compile in well under a second (a Rust
/// component is 100-250 KB): they compile at normal priority, as a reload
/// always did, rather than on the compile pool behind large ones.
const QUICK_COMPILE_BYTES: usize = 1 << 20;

/// Why a plugin could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LoadError {
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

/// Options for building a [`Runtime`](super::Runtime).
#[derive(Debug, Clone, Default)]
pub(crate) struct RuntimeOptions {
    /// Folder for precompiled code; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Count fuel, so a manifest's `fuel` caps the instructions of a call.
    /// Off by default: the counting slows all guest code down (epochs
    /// already cut calls at their deadline), and precompiled code differs.
    pub fuel_metering: bool,
    /// Large plugins start on the baseline tier (see [`super::tiers`]);
    /// `None`: every plugin compiles optimised before it serves.
    pub tiers: Option<TierOptions>,
}

/// One compiler's wasmtime engine and its code cache.
pub(crate) struct WasmEngine {
    engine: Engine,
    cache: Option<CodeCache>,
    fuel_metering: bool,
    pool: InstancePool,
    /// Compiles that are waited for (not in the background) take turns, so
    /// that several at once (ten plugins at start) do not add up their memory.
    turns: Arc<tokio::sync::Semaphore>,
    /// Where this engine's compiles run.
    compiler: CompilePool,
    /// Whether this is a background view (see [`Self::in_background`]).
    in_background: bool,
}

impl WasmEngine {
    /// Builds the engine for `tier`, sharing `pool` (the instance pool's
    /// places), `turns` and `compiler` (where compiles run) with the other
    /// tier. The optimising engine uses
    /// the pooling allocator when the address space allows it; the baseline
    /// one, whose code runs only until the optimised code is ready, allocates
    /// on demand and reserves nothing.
    pub fn new(
        options: &RuntimeOptions,
        tier: Tier,
        pool: InstancePool,
        turns: Arc<tokio::sync::Semaphore>,
        compiler: CompilePool,
    ) -> anyhow::Result<Self> {
        let base_config = || {
            let mut config = base_config();
            config.consume_fuel(options.fuel_metering);
            if tier == Tier::Baseline {
                // Winch leaves out the proposals it cannot compile (GC, tail
                // calls, exceptions): a plugin using one fails here and is
                // compiled optimised instead (`Runtime::load`).
                config.strategy(Strategy::Winch);
            }
            config
        };
        let engine = match tier {
            Tier::Baseline => Engine::new(&base_config())?,
            Tier::Optimized => {
                let mut config = base_config();
                config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config()));
                Engine::new(&config).or_else(|e| {
                    tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                    Engine::new(&base_config())
                })?
            }
        };
        let cache = options.cache_dir.clone().map(|dir| CodeCache::new(dir, &engine));
        Ok(Self { engine, cache, fuel_metering: options.fuel_metering, pool, turns, compiler, in_background: false })
    }

    /// The same engine and cache, compiling on `compiler`'s threads (of
    /// lower priority) without taking turns.
    pub fn in_background(&self, compiler: &CompilePool) -> Self {
        Self {
            engine: self.engine.clone(),
            cache: self.cache.clone(),
            fuel_metering: self.fuel_metering,
            pool: self.pool.clone(),
            turns: self.turns.clone(),
            compiler: compiler.clone(),
            in_background: true,
        }
    }

    /// The wasmtime engine.
    pub fn wasmtime(&self) -> &Engine {
        &self.engine
    }

    /// Whether the code cache holds this engine's code for `bytes`.
    pub fn is_cached(&self, bytes: &Wasm) -> bool {
        self.cache.as_ref().is_some_and(|cache| cache.path_for(bytes).is_file())
    }

    /// Whether compiling `bytes` is quick: its code is in the cache, or the
    /// plugin is small.
    pub fn compiles_quickly(&self, bytes: &Wasm) -> bool {
        is_small(bytes) || self.is_cached(bytes)
    }

    /// Whether fuel is counted (see [`RuntimeOptions::fuel_metering`]).
    pub fn fuel_metering(&self) -> bool {
        self.fuel_metering
    }

    /// Admission to the instance pool, for every call of every plugin.
    pub fn pool(&self) -> &InstancePool {
        &self.pool
    }

    /// Compiles a component (or loads it from the code cache) off the
    /// request path, on the compile pool's threads.
    pub async fn compile_component(&self, bytes: Wasm) -> Result<Component, LoadError> {
        let (engine, cache) = (self.engine.clone(), self.cache.clone());
        let cached = self.is_cached(&bytes);
        let _turn = self.take_turn(cached).await;
        let quick = cached || is_small(&bytes);
        self.compile_off_thread(quick, move || match &cache {
            Some(cache) => cache.component(&bytes),
            None => Component::new(&engine, &*bytes),
        })
        .await
    }

    /// Compiles a core module (or loads it from the code cache) off the
    /// request path, on the compile pool's threads.
    pub async fn compile_module(&self, bytes: Wasm) -> Result<Module, LoadError> {
        let (engine, cache) = (self.engine.clone(), self.cache.clone());
        let cached = self.is_cached(&bytes);
        let _turn = self.take_turn(cached).await;
        let quick = cached || is_small(&bytes);
        self.compile_off_thread(quick, move || match &cache {
            Some(cache) => cache.module(&bytes),
            None => Module::new(&engine, &*bytes),
        })
        .await
    }

    /// Waits for this compile's turn, unless it runs in the background
    /// (which takes one plugin at a time anyway) or comes from the cache.
    async fn take_turn(&self, cached: bool) -> Option<tokio::sync::SemaphorePermit<'_>> {
        if self.in_background || cached {
            return None;
        }
        self.turns.acquire().await.ok()
    }

    /// Runs `compile` on the compile pool; a `quick` one (code from the
    /// cache, mapped from its file, or a small plugin: milliseconds) on a
    /// blocking thread at normal priority instead, so that it never waits
    /// behind a large compile: cached plugins are ready first, and a small
    /// plugin reloads as fast as ever.
    async fn compile_off_thread<T: Send + 'static>(
        &self,
        quick: bool,
        compile: impl FnOnce() -> wasmtime::Result<T> + Send + 'static,
    ) -> Result<T, LoadError> {
        if quick && !self.in_background {
            return tokio::task::spawn_blocking(compile)
                .await
                .map_err(|e| LoadError::Compile(format!("compiler thread failed: {e}")))?
                .map_err(|e| LoadError::Compile(format!("{e:#}")));
        }
        self.compiler
            .run(compile)
            .await
            .ok_or_else(|| LoadError::Compile("compiler thread failed".into()))?
            .map_err(|e| LoadError::Compile(format!("{e:#}")))
    }
}

/// Whether `bytes` are a plugin small enough to compile in well under a
/// second (see [`QUICK_COMPILE_BYTES`]).
fn is_small(bytes: &[u8]) -> bool {
    bytes.len() < QUICK_COMPILE_BYTES
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
    // of several core instances (componentize-py, componentize-js). Calls
    // wait for their slots rather than fail when it is full (`pool.rs`).
    pool.total_component_instances(POOL_COMPONENT_INSTANCES);
    pool.total_core_instances(POOL_CORE_INSTANCES);
    pool.total_memories(POOL_CORE_INSTANCES);
    pool.total_tables(POOL_CORE_INSTANCES);
    pool.total_stacks(POOL_COMPONENT_INSTANCES);
    pool.max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT);
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
pub(super) fn prepare_store<T: Send + 'static>(
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
/// cannot pass one on to the platform by accident (in a result, a hook's
/// answer or an error, in any form [`Values::redact`] knows).
pub(super) fn redact(values: &Values, outcome: Result<String, ToolFailure>) -> Result<String, ToolFailure> {
    if !values.has_secrets() {
        return outcome;
    }
    outcome.map(|result| values.redact(result)).map_err(|failure| redact_failure(values, failure))
}

/// A failure's message with the plugin's secrets replaced by `***`.
pub(super) fn redact_failure(values: &Values, failure: ToolFailure) -> ToolFailure {
    if !values.has_secrets() {
        return failure;
    }
    match failure {
        ToolFailure::InvalidArguments(m) => ToolFailure::InvalidArguments(values.redact(m)),
        ToolFailure::NotFound(m) => ToolFailure::NotFound(values.redact(m)),
        ToolFailure::Failed(m) => ToolFailure::Failed(values.redact(m)),
        ToolFailure::BadOutput(m) => ToolFailure::BadOutput(values.redact(m)),
        ToolFailure::Crashed(m) => ToolFailure::Crashed(values.redact(m)),
        other => other,
    }
}

/// A call's outcome, or [`ToolFailure::ResultTooLarge`] when its result or
/// its error message is over `limit` bytes: what a plugin returns is kept
/// (for duplicates) and passed on, so it is bounded like its memory.
pub(super) fn cap_result(outcome: Result<String, ToolFailure>, limit: usize) -> Result<String, ToolFailure> {
    let size = match &outcome {
        Ok(result) => result.len(),
        Err(
            ToolFailure::InvalidArguments(m)
            | ToolFailure::NotFound(m)
            | ToolFailure::Failed(m)
            | ToolFailure::Crashed(m)
            | ToolFailure::BadOutput(m),
        ) => m.len(),
        Err(_) => 0,
    };
    if size > limit { Err(ToolFailure::ResultTooLarge { limit }) } else { outcome }
}

/// Maps an error from running guest code to the failure the LLM sees.
pub(super) fn classify_error(error: &wasmtime::Error, limiter: &MemoryLimiter, limits: Limits) -> ToolFailure {
    if let Some(exceeded) = HostLimitExceeded::of(error) {
        return ToolFailure::HostLimit(exceeded.to_string());
    }
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

/// A thread that advances the engines' epochs every [`EPOCH_TICK`]; stopped
/// and joined when dropped.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking for `engines` (one per compile tier).
    pub fn start(engines: Vec<Engine>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("switchboard-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    for engine in &engines {
                        engine.increment_epoch();
                    }
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
    fn a_crash_is_described_by_its_cause_not_its_backtrace() {
        let limiter = MemoryLimiter::new(1 << 20);
        let refused = wasmtime::Error::msg("resource has children").context("error while executing at wasm backtrace:");
        let failure = classify_error(&refused, &limiter, Limits::default());
        assert_eq!(failure.to_string(), "the tool crashed: resource has children");
        let trap = wasmtime::Error::from(wasmtime::Trap::UnreachableCodeReached).context("at wasm backtrace:");
        let failure = classify_error(&trap, &limiter, Limits::default());
        assert!(failure.to_string().starts_with("the tool crashed: wasm trap: "), "{failure}");
    }

    #[test]
    fn results_and_error_messages_over_the_limit_fail_the_call() {
        assert_eq!(cap_result(Ok("12345".into()), 5), Ok("12345".into()));
        let too_large = Err(ToolFailure::ResultTooLarge { limit: 4 });
        assert_eq!(cap_result(Ok("12345".into()), 4), too_large);
        assert_eq!(cap_result(Err(ToolFailure::Failed("12345".into())), 4), too_large);
        assert_eq!(cap_result(Err(ToolFailure::Failed("1234".into())), 4), Err(ToolFailure::Failed("1234".into())));
        assert_eq!(
            ToolFailure::ResultTooLarge { limit: 4 }.to_string(),
            "the tool's result is larger than the limit of 4 bytes"
        );
    }
}
