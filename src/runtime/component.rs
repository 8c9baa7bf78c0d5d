//! Component plugins: WASI preview-2 components exporting
//! `switchboard:plugin/tools` (the WIT world in `plugin-sdk/wit/`).
//!
//! Each plugin version is compiled and linked once (an `InstancePre`); every
//! call gets a fresh store and instance, so no state survives between calls.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::{CallContext, Limits, LoadError, MemoryLimiter, Runtime, ToolDefinition, ToolFailure};

mod bindings {
    wasmtime::component::bindgen!({
        path: "plugin-sdk/wit",
        world: "tool-plugin",
        exports: { default: async },
    });
}

use bindings::switchboard::plugin::types as wit;

/// Time a plugin gets to list its tools when it is loaded.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// Per-call store data: a deny-all WASI context and the memory limiter.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl CallState {
    fn new(limits: Limits) -> Self {
        // No files, no environment, no network, no arguments: stdio is closed
        // or discarded. Clocks and randomness are WASI's own.
        Self {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory_bytes),
        }
    }
}

/// The linker every component plugin is linked against.
pub(super) fn linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Ok(linker)
}

/// A compiled, linked component plugin. Cheap to clone.
#[derive(Clone)]
pub struct ComponentPlugin {
    pre: bindings::ToolPluginPre<CallState>,
}

impl ComponentPlugin {
    /// Compiles (or loads from the code cache) and links `bytes`.
    pub(super) async fn load(runtime: Runtime, bytes: Arc<Vec<u8>>) -> Result<Self, LoadError> {
        let compiler = runtime.clone();
        let component = tokio::task::spawn_blocking(move || match compiler.cache() {
            Some(cache) => cache.component(&bytes),
            None => Component::new(compiler.engine(), &*bytes).map_err(|e| LoadError::Compile(format!("{e:#}"))),
        })
        .await
        .map_err(|e| LoadError::Compile(format!("compiler thread failed: {e}")))??;
        Self::link(runtime.component_linker(), component)
    }

    fn link(linker: &Linker<CallState>, component: Component) -> Result<Self, LoadError> {
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = bindings::ToolPluginPre::new(instance_pre).map_err(|e| {
            LoadError::Link(format!(
                "it does not export `switchboard:plugin/tools@0.1.0` (build it against plugin-sdk/wit): {e:#}"
            ))
        })?;
        Ok(Self { pre })
    }

    /// Asks the plugin for its tools, in a fresh instance.
    pub(super) async fn list_tools(&self) -> Result<Vec<ToolDefinition>, LoadError> {
        let limits = Limits { timeout: LIST_TIMEOUT, ..Limits::default() };
        let (mut store, instance) =
            self.instantiate(limits).await.map_err(|e| LoadError::Invalid(format!("cannot instantiate: {e}")))?;
        let listed = tokio::time::timeout(LIST_TIMEOUT, instance.switchboard_plugin_tools().call_list(&mut store))
            .await
            .map_err(|_| LoadError::Invalid(format!("listing its tools took longer than {LIST_TIMEOUT:?}")))?
            .map_err(|e| LoadError::Invalid(format!("listing its tools failed: {e:#}")))?;
        listed
            .into_iter()
            .map(|t| {
                let tool =
                    ToolDefinition { name: t.name, description: t.description, parameters_schema: t.parameters_schema };
                validate_tool(&tool).map(|()| tool)
            })
            .collect()
    }

    async fn instantiate(&self, limits: Limits) -> Result<(Store<CallState>, bindings::ToolPlugin), ToolFailure> {
        let mut store = Store::new(self.pre.engine(), CallState::new(limits));
        super::prepare_store(&mut store, limits.timeout, |s| &mut s.limiter);
        match self.pre.instantiate_async(&mut store).await {
            Ok(instance) => Ok((store, instance)),
            Err(e) => Err(super::classify_error(&e, &store.data().limiter, limits)),
        }
    }

    /// Runs one call in a fresh instance, cut at `limits.timeout`.
    pub(super) async fn call(
        &self,
        name: &str,
        arguments: &str,
        context: &CallContext,
        limits: Limits,
    ) -> Result<String, ToolFailure> {
        let run = async {
            let (mut store, instance) = self.instantiate(limits).await?;
            let context = wit::CallContext {
                call_id: context.call_id.clone(),
                call_type: context.call_type.clone(),
                tool_call_id: context.tool_call_id.clone(),
                customer_number: context.customer_number.clone(),
                phone_number: context.phone_number.clone(),
                assistant_metadata: context.assistant_metadata.clone(),
                deadline_ms: u32::try_from(limits.timeout.as_millis()).unwrap_or(u32::MAX),
            };
            let outcome = instance.switchboard_plugin_tools().call_call(&mut store, name, arguments, &context).await;
            match outcome {
                Ok(Ok(result)) => Ok(result),
                Ok(Err(wit::ToolError::InvalidArguments(m))) => Err(ToolFailure::InvalidArguments(m)),
                Ok(Err(wit::ToolError::NotFound(m))) => Err(ToolFailure::NotFound(m)),
                Ok(Err(wit::ToolError::Failed(m))) => Err(ToolFailure::Failed(m)),
                Err(e) => {
                    tracing::debug!(error = ?e, "component call trapped");
                    Err(super::classify_error(&e, &store.data().limiter, limits))
                }
            }
        };
        // The epoch deadline cuts guest code; this timeout also cuts time spent
        // waiting in host calls (sleeps, I/O).
        tokio::time::timeout(limits.timeout, run).await.unwrap_or(Err(ToolFailure::TimedOut(limits.timeout)))
    }
}

/// Checks what a plugin says about a tool before anyone relies on it.
fn validate_tool(tool: &ToolDefinition) -> Result<(), LoadError> {
    let name_ok = tool.name.len() <= 64
        && tool.name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && tool.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !name_ok {
        return Err(LoadError::Invalid(format!(
            "tool name {:?} must start with a letter or underscore and use only letters, digits, `_` and `-` (at most 64)",
            tool.name
        )));
    }
    match serde_json::from_str::<serde_json::Value>(&tool.parameters_schema) {
        Ok(schema) if schema.is_object() => Ok(()),
        Ok(_) => Err(LoadError::Invalid(format!("tool {:?}: parameters schema is not a JSON object", tool.name))),
        Err(e) => Err(LoadError::Invalid(format!("tool {:?}: parameters schema is not JSON: {e}", tool.name))),
    }
}
