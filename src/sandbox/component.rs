//! Component plugins: WASI preview-2 components exporting
//! `switchboard:plugin/tools`, and optionally `switchboard:plugin/hooks`
//! (the WIT worlds in `plugin-sdk/wit/`).
//!
//! Each plugin version is compiled and linked once (an `InstancePre`); every
//! call gets a fresh store and instance, so no state survives between calls,
//! unless the plugin opts in to instances that serve several calls
//! ([`super::reuse`]): then a call may get an idle instance of the same
//! version, with a new call's state (limits, log, outbound budget) set in
//! its store.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Instance, InstancePre, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::engine::{self, LoadError, WasmEngine};
use super::host_limits::{self, HeldOutside, HttpHostState};
use super::limits::MemoryLimiter;
use super::pool::{self, InstancePool};
use super::reuse::{Idle, Lease, Reuse};
use super::wasm::Wasm;
use crate::sandbox::capabilities::Capabilities;
use crate::sandbox::capabilities::logging::{self, CallLog, CurrentLog, LogOutput, Stream};
use crate::sandbox::capabilities::outbound::OutboundHttp;
use crate::types::{CallContext, Limits, ToolDefinition, ToolFailure, check_tool_name};

mod bindings {
    wasmtime::component::bindgen!({
        path: "plugin-sdk/wit",
        world: "plugin",
        exports: { default: async },
        // The capability interfaces are wasmtime's own implementations.
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        },
    });
}

use bindings::exports::switchboard::plugin::{hooks, tools};
use bindings::switchboard::plugin::types as wit;

/// Time a plugin gets to list its tools when it is loaded.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes of log output (`wasi:logging`, stdout, stderr) one call may emit.
pub const LOG_BYTES_PER_CALL: usize = 64 << 10;

/// Per-call store data: a deny-all WASI context, the plugin's capabilities
/// (outbound HTTP through its allow-list, its own config and secrets, its
/// log), and the memory limiter.
pub struct CallState {
    /// Built on the plugin's first WASI call: many calls make none, and
    /// building it (clocks, random sources, output pipes) is a measurable
    /// part of a short call.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    limiter: MemoryLimiter,
    http: WasiHttpCtx,
    outbound: OutboundHttp,
    /// What the call's HTTP requests hold outside `table` (see `host_limits`).
    held_outside: HeldOutside,
    capabilities: Arc<Capabilities>,
    log: Arc<CallLog>,
    /// Where stdout and stderr write, once the WASI context is built: the
    /// current call's log.
    stdio: Option<CurrentLog>,
}

/// What a store runs, for the log: a tool call, or (`-`) loading or a hook.
#[derive(Debug, Clone, Copy)]
pub(super) struct CallTag<'a> {
    /// The tool, or `-`.
    pub tool: &'a str,
    /// The platform's call id, or `-`.
    pub call_id: &'a str,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (log, stdio) = (&self.log, &mut self.stdio);
        let wasi = self.wasi.get_or_insert_with(|| deny_all_wasi(stdio.insert(CurrentLog::new(log.clone()))));
        WasiCtxView { ctx: wasi, table: &mut self.table }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}

impl HttpHostState for CallState {
    fn held_outside(&self) -> &HeldOutside {
        &self.held_outside
    }
}

impl bindings::wasi::logging::logging::Host for CallState {
    fn log(&mut self, level: bindings::wasi::logging::logging::Level, context: String, message: String) {
        use bindings::wasi::logging::logging::Level as L;
        let level = match level {
            L::Trace => logging::Level::Trace,
            L::Debug => logging::Level::Debug,
            L::Info => logging::Level::Info,
            L::Warn => logging::Level::Warn,
            L::Error | L::Critical => logging::Level::Error,
        };
        self.log.record(level, &context, &message);
    }
}

impl CallState {
    fn new(capabilities: &Arc<Capabilities>, limits: Limits, tag: CallTag<'_>) -> Self {
        let log = Arc::new(CallLog::new(capabilities.clone(), tag.tool, tag.call_id, LOG_BYTES_PER_CALL));
        let http_deadline = tokio::time::Instant::now() + outbound_budget(limits.timeout);
        // Host memory the call makes Switchboard hold is capped (see `host_limits`).
        let mut table = ResourceTable::new();
        table.set_max_capacity(host_limits::MAX_RESOURCES);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(host_limits::MAX_FIELDS_BYTES);
        let held_outside = HeldOutside::default();
        Self {
            wasi: None,
            table,
            limiter: MemoryLimiter::new(limits.memory_bytes),
            http,
            outbound: OutboundHttp::new(capabilities.clone(), http_deadline, held_outside.clone()),
            held_outside,
            capabilities: capabilities.clone(),
            log,
            stdio: None,
        }
    }

    /// Sets up a reused instance's store for a new call: the call's memory
    /// cap (the memory the instance has still counts), log (with its own
    /// budget, and stdout and stderr writing to it) and outbound-request
    /// budget. The instance keeps its WASI context (clocks, randomness, the
    /// streams it holds) and its resource table.
    fn begin_call(&mut self, limits: Limits, tag: CallTag<'_>) {
        self.limiter.begin_call(limits.memory_bytes);
        self.log = Arc::new(CallLog::new(self.capabilities.clone(), tag.tool, tag.call_id, LOG_BYTES_PER_CALL));
        if let Some(stdio) = &self.stdio {
            stdio.set(self.log.clone());
        }
        self.held_outside = HeldOutside::default();
        let http_deadline = tokio::time::Instant::now() + outbound_budget(limits.timeout);
        self.outbound = OutboundHttp::new(self.capabilities.clone(), http_deadline, self.held_outside.clone());
    }
}

/// The WASI context of a call: no files, no environment, no sockets, no
/// arguments; stdout and stderr go to the call's log. Clocks and randomness
/// are WASI's own.
fn deny_all_wasi(log: &CurrentLog) -> WasiCtx {
    WasiCtx::builder()
        .stdout(LogOutput::new(log.clone(), Stream::Stdout))
        .stderr(LogOutput::new(log.clone(), Stream::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// The time outbound requests of a call get: the call's time minus a small
/// margin, so a plugin whose request runs out of time can still answer.
fn outbound_budget(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 10).min(Duration::from_millis(200)))
}

/// The linker every component plugin is linked against: WASI, and every
/// capability interface. Grants are checked when a capability is used.
pub(super) fn linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    host_limits::add_to_linker(&mut linker)?;
    wasmtime_wasi_config::add_to_linker(&mut linker, |s: &mut CallState| s.capabilities.wasi_config())?;
    bindings::wasi::logging::logging::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// An instance with its store, and the places in the instance pool it takes.
struct Warm {
    // Dropped in this order: the store before the places it holds.
    store: Store<CallState>,
    instance: Instance,
    _places: tokio::sync::OwnedSemaphorePermit,
}

/// What a call starts from: an idle instance, or the places for a new one.
enum Start {
    Idle(Lease<Warm>),
    New(tokio::sync::OwnedSemaphorePermit),
}

/// A compiled, linked component plugin. Cheap to clone.
#[derive(Clone)]
pub struct ComponentPlugin {
    pre: InstancePre<CallState>,
    /// Idle instances, when the plugin lets an instance serve several calls.
    idle: Option<Idle<Warm>>,
    tools: Arc<tools::GuestIndices>,
    hooks: Option<Arc<hooks::GuestIndices>>,
    capabilities: Arc<Capabilities>,
    fuel_metering: bool,
    /// Admission to the instance pool, and the places one instance takes.
    pool: InstancePool,
    pool_cost: u32,
}

impl ComponentPlugin {
    /// Compiles (or loads from the code cache) and links `bytes`; its calls
    /// get `capabilities`, and its instances are reused under `reuse`.
    pub(super) async fn load(
        engine: &WasmEngine,
        linker: &Linker<CallState>,
        bytes: Wasm,
        capabilities: Arc<Capabilities>,
        reuse: Reuse,
    ) -> Result<Self, LoadError> {
        let component = engine.compile_component(bytes.clone()).await.map_err(explain_compile_error)?;
        let pool_cost = pool::component_cost(&component, bytes.shared()).await;
        let mut plugin = Self::link(linker, component, capabilities, engine.pool().clone(), pool_cost)?;
        plugin.fuel_metering = engine.fuel_metering();
        plugin.idle = Idle::new(reuse, engine.pool());
        Ok(plugin)
    }

    fn link(
        linker: &Linker<CallState>,
        component: Component,
        capabilities: Arc<Capabilities>,
        pool: InstancePool,
        pool_cost: u32,
    ) -> Result<Self, LoadError> {
        let pre = linker.instantiate_pre(&component).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let tools = tools::GuestIndices::new(&pre).map_err(|e| {
            LoadError::Link(format!(
                "it does not export `switchboard:plugin/tools@0.1.0` (build it against plugin-sdk/wit): {e:#}"
            ))
        })?;
        // Hooks are optional: components from other toolchains often have tools only.
        let hooks = hooks::GuestIndices::new(&pre).ok().map(Arc::new);
        Ok(Self { pre, idle: None, tools: Arc::new(tools), hooks, capabilities, fuel_metering: false, pool, pool_cost })
    }

    /// The places of the instance pool one instance takes.
    pub(super) fn pool_cost(&self) -> u32 {
        self.pool_cost
    }

    /// Asks the plugin for its tools and its event subscriptions, in fresh instances.
    pub(super) async fn describe(&self) -> Result<(Vec<ToolDefinition>, Vec<String>), LoadError> {
        let limits = Limits { timeout: LIST_TIMEOUT, ..Limits::default() };
        // What a plugin says about itself is shown by endpoints and logs: redacted too.
        let values = self.capabilities.values();
        // What the plugin printed before it failed: its words usually name
        // the cause that a trap does not.
        let output = std::sync::Mutex::new(Vec::new());
        let invalid = |what: &str, e: ToolFailure| {
            let output = output.lock().unwrap_or_else(|e| e.into_inner());
            LoadError::Invalid(format!("{what} failed: {}{}", engine::redact_failure(values, e), quote_output(&output)))
        };
        // Fresh instances, never kept: an instance counts the calls it serves.
        let listed = self
            .run_fresh(limits, async |store, instance, this| {
                let tools = this.tools.load(&mut *store, instance)?;
                let listed = tools.call_list(&mut *store).await;
                if listed.is_err() {
                    *output.lock().unwrap_or_else(|e| e.into_inner()) = store.data().log.recent();
                }
                listed
            })
            .await
            .map_err(|e| invalid("listing its tools", e))?;
        let tools = listed
            .into_iter()
            .map(|t| {
                let tool = ToolDefinition {
                    name: values.redact(t.name),
                    description: values.redact(t.description),
                    parameters_schema: values.redact(t.parameters_schema),
                    is_async: false,
                    async_response: None,
                };
                validate_tool(&tool).map(|()| tool)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let subscriptions = match &self.hooks {
            None => Vec::new(),
            Some(hooks) => self
                .run_fresh(limits, async |store, instance, _| {
                    hooks.load(&mut *store, instance)?.call_subscriptions(&mut *store).await
                })
                .await
                .map_err(|e| invalid("listing its subscriptions", e))?
                .into_iter()
                .map(|name| values.redact(name))
                .collect(),
        };
        Ok((tools, subscriptions))
    }

    /// Runs `body` against a fresh instance (or, when the plugin reuses
    /// instances, an idle one) under `limits`; traps, memory exhaustion and
    /// timeouts become [`ToolFailure`]s.
    async fn run<R>(
        &self,
        limits: Limits,
        body: impl AsyncFnOnce(&mut Store<CallState>, &Instance, &Self) -> wasmtime::Result<R>,
    ) -> Result<R, ToolFailure> {
        self.run_tagged(CallTag { tool: "-", call_id: "-" }, limits, self.idle.as_ref(), body).await
    }

    /// [`Self::run`] in a fresh instance, dropped afterwards, whatever the
    /// plugin's reuse.
    async fn run_fresh<R>(
        &self,
        limits: Limits,
        body: impl AsyncFnOnce(&mut Store<CallState>, &Instance, &Self) -> wasmtime::Result<R>,
    ) -> Result<R, ToolFailure> {
        self.run_tagged(CallTag { tool: "-", call_id: "-" }, limits, None, body).await
    }

    /// [`Self::run`], with the tool and call id that tag the call's log, and
    /// the idle instances to take from and return to (`None`: a fresh
    /// instance, dropped afterwards).
    async fn run_tagged<R>(
        &self,
        tag: CallTag<'_>,
        mut limits: Limits,
        idle: Option<&Idle<Warm>>,
        body: impl AsyncFnOnce(&mut Store<CallState>, &Instance, &Self) -> wasmtime::Result<R>,
    ) -> Result<R, ToolFailure> {
        // An idle instance, or room in the instance pool for a new one,
        // within the call's time (held with the store; an idle instance
        // holds its own).
        let start = match idle.and_then(Idle::take) {
            Some(lease) => Start::Idle(lease),
            None => Start::New(self.pool.enter(self.pool_cost, &mut limits).await?),
        };
        let run = async {
            let mut lease = match start {
                Start::Idle(mut lease) => {
                    lease.instance.store.data_mut().begin_call(limits, tag);
                    engine::prepare_store(&mut lease.instance.store, limits, self.fuel_metering, |s| &mut s.limiter);
                    lease
                }
                Start::New(places) => {
                    let mut store = Store::new(self.pre.engine(), CallState::new(&self.capabilities, limits, tag));
                    engine::prepare_store(&mut store, limits, self.fuel_metering, |s| &mut s.limiter);
                    let instance = match self.pre.instantiate_async(&mut store).await {
                        Ok(instance) => instance,
                        Err(e) => return Err(self.failure(&e, &store, limits)),
                    };
                    Lease::fresh(Warm { store, instance, _places: places })
                }
            };
            let Warm { store, instance, .. } = &mut lease.instance;
            let outcome = body(store, instance, self).await;
            match (outcome, idle) {
                (Ok(result), Some(idle)) => {
                    // The call returned: its log ends now, and the instance
                    // may serve the next call.
                    store.data().log.flush();
                    idle.put(lease);
                    Ok(result)
                }
                (Ok(result), None) => Ok(result),
                // Trapped, out of memory or fuel: the instance is dropped.
                (Err(e), _) => Err(self.failure(&e, store, limits)),
            }
        };
        // The epoch deadline cuts guest code; this timeout also cuts time spent
        // waiting in host calls (sleeps, I/O). Either way the instance is
        // dropped with the future, never reused.
        tokio::time::timeout(limits.timeout, run).await.unwrap_or(Err(ToolFailure::TimedOut(limits.timeout)))
    }

    /// The failure an error from guest code means.
    fn failure(&self, error: &wasmtime::Error, store: &Store<CallState>, limits: Limits) -> ToolFailure {
        tracing::debug!(error = ?error, "component trapped");
        engine::classify_error(error, &store.data().limiter, limits)
    }

    /// Runs one tool call, cut at `limits.timeout`.
    pub(super) async fn call(
        &self,
        name: &str,
        arguments: &str,
        context: &CallContext,
        limits: Limits,
    ) -> Result<String, ToolFailure> {
        let context = wit::CallContext {
            call_id: context.call_id.clone(),
            call_type: context.call_type.clone(),
            tool_call_id: context.tool_call_id.clone(),
            customer_number: context.customer_number.clone(),
            phone_number: context.phone_number.clone(),
            assistant_metadata: context.assistant_metadata.clone(),
            deadline_ms: u32::try_from(limits.timeout.as_millis()).unwrap_or(u32::MAX),
        };
        let tag = CallTag { tool: name, call_id: &context.call_id };
        let outcome = self
            .run_tagged(tag, limits, self.idle.as_ref(), async |store, instance, this| {
                this.tools.load(&mut *store, instance)?.call_call(&mut *store, name, arguments, &context).await
            })
            .await;
        let outcome = outcome.and_then(|result| {
            result.map_err(|error| match error {
                wit::ToolError::InvalidArguments(m) => ToolFailure::InvalidArguments(m),
                wit::ToolError::NotFound(m) => ToolFailure::NotFound(m),
                wit::ToolError::Failed(m) => ToolFailure::Failed(m),
            })
        });
        engine::redact(self.capabilities.values(), engine::cap_result(outcome, limits.max_result_bytes))
    }

    /// Answers an assistant-request (`message` as JSON) with the response JSON.
    pub(super) async fn assistant_request(&self, message: &str, limits: Limits) -> Result<String, ToolFailure> {
        let hooks = self.hooks.as_ref().ok_or_else(|| ToolFailure::Failed("the plugin exports no hooks".into()))?;
        let answer = self
            .run(limits, async |store, instance, _| {
                hooks.load(&mut *store, instance)?.call_assistant_request(&mut *store, message).await
            })
            .await
            .and_then(|answer| answer.map_err(ToolFailure::Failed));
        // The answer goes to the platform, the error to the log: neither may carry a secret.
        engine::redact(self.capabilities.values(), engine::cap_result(answer, limits.max_result_bytes))
    }

    /// Delivers a status-update or end-of-call-report (`message` as JSON).
    pub(super) async fn on_event(&self, message: &str, limits: Limits) -> Result<(), ToolFailure> {
        let hooks = self.hooks.as_ref().ok_or_else(|| ToolFailure::Failed("the plugin exports no hooks".into()))?;
        self.run(limits, async |store, instance, _| {
            hooks.load(&mut *store, instance)?.call_on_event(&mut *store, message).await
        })
        .await
        .and_then(|delivered| delivered.map_err(ToolFailure::Failed))
        .map_err(|failure| engine::redact_failure(self.capabilities.values(), failure))
    }
}

/// Adds the way out to a compile error that a toolchain option avoids.
///
/// Some toolchains (componentize-qjs, so `jco componentize --backend qjs`)
/// emit the component-model async ABI by default; Switchboard does not enable
/// that (still experimental) wasmtime feature, and their synchronous output
/// loads as it is.
fn explain_compile_error(error: LoadError) -> LoadError {
    match error {
        LoadError::Compile(message) if message.contains("requires the component model async feature") => {
            LoadError::Compile(format!(
                "{message}: the component uses the component-model async ABI, which Switchboard does not \
                 support; build it synchronous (componentize-qjs --sync, jco componentize \
                 --backend-qjs-disable-async)"
            ))
        }
        other => other,
    }
}

/// The plugin's last output lines for an error message, with a hint when
/// they show a known mistake.
fn quote_output(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut quoted = format!("; the plugin's last output: {}", lines.join(" | "));
    // A tool definition's field missing or not text, as componentize-js and
    // componentize-py say it when they lower `list`'s records.
    let missing_or_not_text = |l: &String| {
        l.contains("expected a string, received [undefined]") || l.contains("object is not an instance of 'str'")
    };
    if lines.iter().any(missing_or_not_text) {
        quoted.push_str(
            "; hint: each tool definition needs `name`, `description` and the JSON Schema as JSON text, \
             spelled so (JavaScript: `parametersSchema`, from `JSON.stringify(schema)`; Python: \
             `parameters_schema`, from `json.dumps(schema)`)",
        );
    }
    quoted
}

/// Checks what a plugin says about a tool before anyone relies on it.
fn validate_tool(tool: &ToolDefinition) -> Result<(), LoadError> {
    check_tool_name(&tool.name).map_err(LoadError::Invalid)?;
    match serde_json::from_str::<serde_json::Value>(&tool.parameters_schema) {
        Ok(schema) if schema.is_object() => Ok(()),
        Ok(_) => Err(LoadError::Invalid(format!(
            "tool {:?}: its parameters-schema (JS `parametersSchema`, Python `parameters_schema`) is not a JSON object",
            tool.name
        ))),
        Err(e) => Err(LoadError::Invalid(format!(
            "tool {:?}: its parameters-schema (JS `parametersSchema`, Python `parameters_schema`) is not JSON text: {e}",
            tool.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_errors_quote_the_plugins_output_and_name_the_fields_it_points_at() {
        assert_eq!(quote_output(&[]), "");
        let plain = quote_output(&["config missing: api_key".into()]);
        assert_eq!(plain, "; the plugin's last output: config missing: api_key");
        for said in
            ["expected a string, received [undefined]", "TypeError(\"'dict' object is not an instance of 'str'\")"]
        {
            let quoted = quote_output(&["Stack:".into(), said.into()]);
            assert!(quoted.contains(said) && quoted.contains("`parametersSchema`"), "{quoted}");
            assert!(quoted.contains("`parameters_schema`"), "{quoted}");
        }
    }
}
