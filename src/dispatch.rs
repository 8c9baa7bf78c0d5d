//! Fan-out of tool calls to plugins, under one deadline.
//!
//! Each call of a request runs as its own task, concurrently; results come
//! back in request order. A call that names no loaded tool, fails, crashes or
//! runs out of time fails alone: the others still answer, and the whole answer
//! is ready by the deadline even when a plugin never returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use crate::metrics::Metrics;
use crate::registry::Plugins;
use crate::runtime::{CallContext, ToolFailure};

/// Time kept back from the deadline to build and send the response.
const RESPONSE_MARGIN: Duration = Duration::from_millis(50);

/// One tool call to run.
#[derive(Debug, Clone)]
pub struct ToolCallRequest {
    /// The platform's id for this call, echoed back.
    pub id: String,
    /// The tool name.
    pub name: String,
    /// Arguments as JSON object text, or why they are unusable.
    pub arguments: Result<String, String>,
    /// Where the call comes from.
    pub context: CallContext,
}

/// The outcome of one tool call.
#[derive(Debug)]
pub struct ToolCallOutcome {
    /// The platform's id for this call.
    pub id: String,
    /// The result as JSON, or a message for the LLM.
    pub result: Result<Box<RawValue>, String>,
}

/// Runs tool calls against the loaded plugins.
#[derive(Clone)]
pub struct Dispatcher {
    plugins: Arc<Plugins>,
    metrics: Arc<Metrics>,
}

impl Dispatcher {
    /// A dispatcher over `plugins`, recording into `metrics`.
    pub fn new(plugins: Arc<Plugins>, metrics: Arc<Metrics>) -> Self {
        Self { plugins, metrics }
    }

    /// Runs all `calls` concurrently and returns their outcomes in order, by
    /// `deadline` at the latest.
    pub async fn dispatch(&self, calls: Vec<ToolCallRequest>, deadline: Instant) -> Vec<ToolCallOutcome> {
        let registry = self.plugins.snapshot();
        let cutoff = deadline.checked_sub(RESPONSE_MARGIN).unwrap_or(deadline);
        let tasks: Vec<_> = calls
            .into_iter()
            .map(|call| {
                let target = registry.lookup(&call.name).cloned();
                // Unknown names stay out of metric labels: any string can arrive here.
                let label = if target.is_some() { call.name.clone() } else { "<unknown>".to_owned() };
                let metrics = self.metrics.clone();
                let id = call.id.clone();
                let handle = tokio::spawn(async move {
                    let started = Instant::now();
                    let result = run_one(&call, target, cutoff).await;
                    let outcome = match &result {
                        Ok(_) => "ok",
                        Err(ToolFailure::TimedOut(_)) => "timeout",
                        Err(ToolFailure::Crashed(_) | ToolFailure::OutOfMemory { .. }) => "crash",
                        Err(_) => "error",
                    };
                    metrics.record_tool_call(&label, outcome, started.elapsed());
                    if let Err(e) = &result {
                        tracing::info!(tool = %call.name, tool_call_id = %call.id, call_id = %call.context.call_id, error = %e, "tool call failed");
                    }
                    result
                });
                (id, handle)
            })
            .collect();

        let mut outcomes = Vec::with_capacity(tasks.len());
        for (id, handle) in tasks {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let result = match tokio::time::timeout(remaining, handle).await {
                Ok(Ok(result)) => result.map_err(|e| e.to_string()),
                Ok(Err(join_error)) => {
                    tracing::error!(tool_call_id = %id, error = %join_error, "tool call task failed");
                    Err("the tool failed unexpectedly".to_owned())
                }
                Err(_) => Err(ToolFailure::TimedOut(remaining).to_string()),
            };
            outcomes.push(ToolCallOutcome { id, result });
        }
        outcomes
    }
}

async fn run_one(
    call: &ToolCallRequest,
    target: Option<Arc<crate::registry::LoadedPlugin>>,
    cutoff: Instant,
) -> Result<Box<RawValue>, ToolFailure> {
    let Some(plugin) = target else {
        return Err(ToolFailure::NotFound(format!("unknown tool {:?}: no loaded plugin provides it", call.name)));
    };
    let arguments = call.arguments.as_deref().map_err(|why| ToolFailure::InvalidArguments(why.clone()))?;
    let mut limits = plugin.limits;
    limits.timeout = limits.timeout.min(cutoff.saturating_duration_since(Instant::now()));
    let output = plugin.plugin.call(&call.name, arguments, &call.context, limits).await?;
    // A plugin's result is JSON; plain text from a lenient plugin becomes a string.
    Ok(RawValue::from_string(output.clone()).unwrap_or_else(|_| {
        RawValue::from_string(serde_json::to_string(&output).expect("strings serialize")).expect("valid JSON")
    }))
}
