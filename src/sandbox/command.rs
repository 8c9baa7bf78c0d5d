//! WASI-command plugins: the simplest contract, needing no SDK.
//!
//! The plugin is a preview-1 core module with `_start`. It reads
//! `{"name": ..., "arguments": {...}, "call": {...}}` as JSON on stdin and
//! prints its result as JSON on stdout. A non-zero exit is an error whose
//! message is what it wrote to stderr. Its manifest's `[config]` values and
//! `[secrets]` are its environment variables (preview 1 has neither
//! `wasi:config` nor `wasi:http`); it gets nothing else.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use wasmtime::{InstancePre, Linker, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{I32Exit, WasiCtx};

use super::engine::{self, LoadError, WasmEngine};
use super::limits::MemoryLimiter;
use super::pool::{self, InstancePool};
use super::wasm::Wasm;
use crate::sandbox::capabilities::Capabilities;
use crate::sandbox::capabilities::logging::{CallLog, Stream};
use crate::types::{CallContext, Limits, ToolFailure};

/// Longest stderr message passed on to the LLM.
const STDERR_MESSAGE_LIMIT: usize = 1_000;

/// Per-call store data for a command plugin.
pub struct CommandState {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

/// The linker every command plugin is linked against.
pub(super) fn linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<CommandState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut CommandState| &mut s.wasi)?;
    Ok(linker)
}

/// A compiled, linked command plugin. Cheap to clone.
#[derive(Clone)]
pub struct CommandPlugin {
    pre: Arc<InstancePre<CommandState>>,
    capabilities: Arc<Capabilities>,
    fuel_metering: bool,
    /// Admission to the instance pool, and the places one instance takes.
    pool: InstancePool,
    pool_cost: u32,
}

/// What a command plugin reads on stdin.
#[derive(Serialize)]
struct Request<'a> {
    name: &'a str,
    arguments: &'a RawValue,
    call: CallInfo<'a>,
}

#[derive(Serialize)]
struct CallInfo<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    call_type: &'a str,
    tool_call_id: &'a str,
    customer_number: Option<&'a str>,
    phone_number: Option<&'a str>,
    assistant_metadata: Option<&'a RawValue>,
    deadline_ms: u128,
}

impl CommandPlugin {
    /// Compiles (or loads from the code cache) and links `bytes`; its calls
    /// get the values and secrets of `capabilities` as environment variables.
    pub(super) async fn load(
        engine: &WasmEngine,
        linker: &Linker<CommandState>,
        bytes: Wasm,
        capabilities: Arc<Capabilities>,
    ) -> Result<Self, LoadError> {
        let module = engine.compile_module(bytes).await?;
        if module.get_export("_start").is_none() {
            return Err(LoadError::Link(
                "a core module plugin must be a WASI command exporting `_start` (build a binary, not a library)".into(),
            ));
        }
        let pre = linker.instantiate_pre(&module).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        Ok(Self {
            pre: Arc::new(pre),
            capabilities,
            fuel_metering: engine.fuel_metering(),
            pool: engine.pool().clone(),
            pool_cost: pool::module_cost(&module),
        })
    }

    /// The places of the instance pool one instance takes.
    pub(super) fn pool_cost(&self) -> u32 {
        self.pool_cost
    }

    /// Runs one call: the request on stdin, the result from stdout.
    pub(super) async fn call(
        &self,
        name: &str,
        arguments: &str,
        context: &CallContext,
        limits: Limits,
    ) -> Result<String, ToolFailure> {
        let outcome = self.run(name, arguments, context, limits).await;
        engine::redact(self.capabilities.values(), engine::cap_result(outcome, limits.max_result_bytes))
    }

    async fn run(
        &self,
        name: &str,
        arguments: &str,
        context: &CallContext,
        mut limits: Limits,
    ) -> Result<String, ToolFailure> {
        // Room in the instance pool, within the call's time; held until the
        // store (declared after it, so dropped first) is gone.
        let _places = self.pool.enter(self.pool_cost, &mut limits).await?;
        let stdin = request_json(name, arguments, context, limits)?;
        // stdout is the result: room for the largest one, and for whitespace around it.
        let stdout = MemoryOutputPipe::new(limits.max_result_bytes.saturating_add(OUTPUT_SLACK));
        let stderr = MemoryOutputPipe::new(limits.output_bytes);
        let mut wasi = WasiCtx::builder();
        wasi.stdin(MemoryInputPipe::new(Bytes::from(stdin))).stdout(stdout.clone()).stderr(stderr.clone()).arg(name);
        for (key, value) in self.capabilities.values().exposed() {
            wasi.env(key, value);
        }
        let wasi = wasi.build_p1();
        let mut store = Store::new(
            self.pre.module().engine(),
            CommandState { wasi, limiter: MemoryLimiter::new(limits.memory_bytes) },
        );
        engine::prepare_store(&mut store, limits, self.fuel_metering, |s| &mut s.limiter);

        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call_async(&mut store, ()).await
        };
        let exit = match tokio::time::timeout(limits.timeout, run).await {
            Err(_) => return Err(ToolFailure::TimedOut(limits.timeout)),
            Ok(Ok(())) => 0,
            Ok(Err(e)) => match e.downcast_ref::<I32Exit>() {
                Some(I32Exit(code)) => *code,
                None => match overflow(&stdout, &stderr, limits) {
                    None => return Err(engine::classify_error(&e, &store.data().limiter, limits)),
                    Some(failure) => return Err(failure),
                },
            },
        };
        // The pipes refuse writes past their capacity; a plugin that hit the
        // cap then fails or traps. Name the real cause.
        if exit != 0
            && let Some(failure) = overflow(&stdout, &stderr, limits)
        {
            return Err(failure);
        }
        drop(store);
        if exit == 0 {
            // What a command wrote on stderr while succeeding goes to the
            // log, as a component's output does (capped and redacted there).
            let log = CallLog::new(self.capabilities.clone(), name, &context.call_id, limits.output_bytes);
            log.write(Stream::Stderr, &stderr.contents());
        }
        if exit != 0 {
            let message = String::from_utf8_lossy(&stderr.contents()).trim().to_owned();
            let message = if message.is_empty() {
                format!("the tool exited with status {exit}")
            } else {
                // Redacted before the cut, so no piece of a secret is left at it.
                self.capabilities.values().redact_cut(&message, STDERR_MESSAGE_LIMIT)
            };
            return Err(ToolFailure::Failed(message));
        }
        let out = stdout.contents();
        let text = std::str::from_utf8(&out).map_err(|_| ToolFailure::BadOutput("stdout is not UTF-8".into()))?.trim();
        match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => Ok(text.to_owned()),
            Err(e) if text.is_empty() => Err(ToolFailure::BadOutput(format!("it printed nothing on stdout ({e})"))),
            Err(e) => Err(ToolFailure::BadOutput(format!(
                "stdout is not JSON ({e}): {}",
                self.capabilities.values().redact_cut(text, 200)
            ))),
        }
    }
}

/// Room in a pipe past what it is for: whitespace around a result, and the
/// part of a write refused at the cap.
const OUTPUT_SLACK: usize = 64 << 10;

/// Why a command that failed did, when it filled stdout (its result is too
/// large) or stderr up to (nearly) their capacity. A refused write leaves the
/// pipe at most one write short of full.
fn overflow(stdout: &MemoryOutputPipe, stderr: &MemoryOutputPipe, limits: Limits) -> Option<ToolFailure> {
    if stdout.contents().len() >= limits.max_result_bytes {
        return Some(ToolFailure::ResultTooLarge { limit: limits.max_result_bytes });
    }
    (stderr.contents().len() + OUTPUT_SLACK >= limits.output_bytes)
        .then(|| ToolFailure::Failed(format!("the tool wrote more than {} bytes of output", limits.output_bytes)))
}

fn request_json(name: &str, arguments: &str, context: &CallContext, limits: Limits) -> Result<Vec<u8>, ToolFailure> {
    let bad = |e: serde_json::Error| ToolFailure::InvalidArguments(format!("arguments are not JSON: {e}"));
    let arguments: &RawValue = serde_json::from_str(arguments).map_err(bad)?;
    let metadata: Option<&RawValue> = match context.assistant_metadata.as_deref() {
        Some(m) => serde_json::from_str(m).ok(),
        None => None,
    };
    let request = Request {
        name,
        arguments,
        call: CallInfo {
            id: &context.call_id,
            call_type: &context.call_type,
            tool_call_id: &context.tool_call_id,
            customer_number: context.customer_number.as_deref(),
            phone_number: context.phone_number.as_deref(),
            assistant_metadata: metadata,
            deadline_ms: limits.timeout.as_millis(),
        },
    };
    Ok(serde_json::to_vec(&request).expect("a request always serializes"))
}
