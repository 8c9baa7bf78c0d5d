//! Fan-out of tool calls to plugins, under one deadline.
//!
//! A request's only call runs on the request's own task; several calls run
//! as tasks of their own, concurrently. Results come back in request order.
//! A call that names no loaded tool, has invalid arguments, fails, crashes or
//! runs out of time fails alone: the others still answer, and the whole
//! answer is ready by the deadline even when a plugin never returns.
//! Duplicate calls (same id) are answered once, see [`super::dedup`]; async
//! tools answer at once and run in the background.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;

use serde_json::value::RawValue;

use super::call_log::{CallLog, NewToolCall, Outcome, ToolCallText};
use super::dedup::{Answer, Dedup, DedupKey};
use super::metrics::Metrics;
use super::shutdown::{Shutdown, Work};
use crate::plugins::{Plugin, PluginSet, Snapshot};
use crate::types::{CallContext, ToolFailure};

/// Time kept back from the deadline to build and send the response.
const RESPONSE_MARGIN: Duration = Duration::from_millis(50);

/// The way a call came in, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Door {
    /// A platform's tool-calls webhook.
    Webhook,
    /// An MCP client's `tools/call`.
    Mcp,
    /// [`Switchboard::call_tool`](crate::Switchboard::call_tool), in-process (the CLI's `call`).
    Embedded,
    /// The dashboard's "try a tool".
    Dashboard,
}

impl Door {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Door::Webhook => "webhook",
            Door::Mcp => "mcp",
            Door::Embedded => "embedded",
            Door::Dashboard => "dashboard",
        }
    }
}

/// One tool call to run.
#[derive(Debug, Clone)]
pub(crate) struct ToolCallRequest {
    /// The tool name.
    pub name: String,
    /// Arguments as JSON object text, or why they are unusable.
    pub arguments: Result<String, Unusable>,
    /// Where the call comes from; its `tool_call_id` is the platform's id
    /// for this call, echoed back.
    pub context: CallContext,
    /// The door it came in by.
    pub door: Door,
}

/// Arguments that cannot be used.
#[derive(Debug, Clone)]
pub(crate) struct Unusable {
    /// Why, for the LLM.
    pub why: String,
    /// What was sent, for the call log.
    pub sent: String,
}

/// The outcome of one tool call.
#[derive(Debug)]
pub(crate) struct ToolCallOutcome {
    /// The platform's id for this call.
    pub id: String,
    /// The result as JSON, or a message for the LLM.
    pub result: Answer,
    /// The answer is the first one to the same call, replayed from the
    /// duplicate store: the plugin did not run again.
    pub replayed: bool,
}

/// Runs tool calls against the loaded plugins.
#[derive(Clone)]
pub(crate) struct Dispatcher {
    plugins: Arc<PluginSet>,
    services: Services,
    /// Most calls of one request that run.
    max_calls: usize,
}

/// What every call uses besides its plugin: cheap to clone into a task.
#[derive(Clone)]
pub(crate) struct Services {
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Answers to repeat for duplicates; `None`: every call runs.
    pub dedup: Option<Arc<Dedup>>,
    /// Where async tools run, so shutdown waits for them.
    pub shutdown: Shutdown,
    /// Where each call's record goes.
    pub log: CallLog,
}

/// Default of [`Dispatcher::max_calls`].
const DEFAULT_MAX_CALLS: usize = 64;

impl Dispatcher {
    /// A dispatcher over `plugins`, with `services` for counting, duplicates,
    /// background work and the call log.
    pub fn new(plugins: Arc<PluginSet>, services: Services) -> Self {
        Self { plugins, services, max_calls: DEFAULT_MAX_CALLS }
    }

    /// Runs at most `most` calls of one request (at least one); each call
    /// past them gets an error of its own and runs nothing, so one request
    /// cannot take every plugin's places.
    pub fn max_calls(mut self, most: usize) -> Self {
        self.max_calls = most.max(1);
        self
    }

    /// Runs one call by name, without duplicate suppression, by `deadline`.
    pub async fn call(
        &self,
        tool: &str,
        arguments: &str,
        context: &CallContext,
        deadline: Instant,
        door: Door,
    ) -> Result<String, ToolFailure> {
        let call = ToolCallRequest {
            name: tool.to_owned(),
            arguments: Ok(arguments.to_owned()),
            context: context.clone(),
            door,
        };
        let cutoff = deadline.checked_sub(RESPONSE_MARGIN).unwrap_or(deadline);
        let run = async {
            let target = match Target::of(&self.plugins.snapshot(), &self.plugins, tool).plugin(tool, cutoff).await {
                Ok(plugin) => Some(plugin),
                Err(failure) => return Err(refuse(&call, None, failure, &self.services)),
            };
            match prepare(&call, target.as_ref()) {
                Ok((plugin, arguments)) => execute(&call, plugin, arguments, cutoff, &self.services).await,
                Err(failure) => Err(refuse(&call, target.as_ref(), failure, &self.services)),
            }
        };
        let waited = time_left(deadline);
        match tokio::time::timeout(waited, run).await {
            Ok(result) => result.map(|json| json.get().to_owned()),
            Err(_) => Err(ToolFailure::TimedOut(waited)),
        }
    }

    /// Runs all `calls` concurrently and returns their outcomes in order, by
    /// `deadline` at the latest.
    pub async fn dispatch(&self, mut calls: Vec<ToolCallRequest>, deadline: Instant) -> Vec<ToolCallOutcome> {
        if calls.len() > self.max_calls {
            let not_run = calls.split_off(self.max_calls);
            let total = calls.len() + not_run.len();
            tracing::warn!(
                calls = total,
                max_tool_calls_per_request = self.max_calls,
                "the calls past the most one request runs fail without running"
            );
            let mut outcomes = Box::pin(self.dispatch(calls, deadline)).await;
            outcomes.extend(not_run.into_iter().map(|call| self.not_run(call, total)));
            return outcomes;
        }
        let registry = self.plugins.snapshot();
        let cutoff = deadline.checked_sub(RESPONSE_MARGIN).unwrap_or(deadline);
        let answer_call = |call: ToolCallRequest| {
            let target = Target::of(&registry, &self.plugins, &call.name);
            answer(call, target, cutoff, self.services.clone())
        };
        if calls.len() == 1 {
            // One call (the usual case) runs on the request's own task: no
            // spawn, no hand-over between threads.
            let call = calls.into_iter().next().expect("one call");
            let id = call.context.tool_call_id.clone();
            let run = AssertUnwindSafe(answer_call(call)).catch_unwind().map(|r| r.map_err(panic_message));
            let waited = time_left(deadline);
            let finished = tokio::time::timeout(waited, run).await;
            let replayed = matches!(finished, Ok(Ok((_, true))));
            let result = outcome(&id, finished.map(|r| r.map(|(answer, _)| answer)), waited);
            return vec![ToolCallOutcome { id, result, replayed }];
        }
        // Several calls run as tasks of their own, in parallel across threads.
        let tasks: Vec<_> = calls
            .into_iter()
            .map(|call| (call.context.tool_call_id.clone(), tokio::spawn(answer_call(call))))
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for (id, handle) in tasks {
            let waited = time_left(deadline);
            let finished = tokio::time::timeout(waited, handle).await;
            let replayed = matches!(finished, Ok(Ok((_, true))));
            let finished = finished.map(|joined| joined.map(|(answer, _)| answer).map_err(|e| e.to_string()));
            let result = outcome(&id, finished, waited);
            outcomes.push(ToolCallOutcome { id, result, replayed });
        }
        outcomes
    }
}

impl Dispatcher {
    /// The outcome of a call past [`Self::max_calls`] of a request of `total` calls.
    fn not_run(&self, call: ToolCallRequest, total: usize) -> ToolCallOutcome {
        // Only loaded tool names go into metric labels: any string can arrive here.
        let known = self.plugins.snapshot().lookup(&call.name).is_some();
        let tool = if known { call.name.as_str() } else { "<unknown>" };
        self.services.metrics.record_tool_call(tool, call.door.label(), "error", Duration::ZERO);
        let message = format!(
            "not run: the request has {total} tool calls, and only the first {} of a request run (max_tool_calls_per_request)",
            self.max_calls
        );
        Logged::start(&self.services.log, &call, None, "".into()).finish(Outcome::Error, None, Some(&message));
        ToolCallOutcome { id: call.context.tool_call_id, result: Err(message), replayed: false }
    }
}

/// Time from now to `deadline`.
fn time_left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// What a panic said, for the log.
fn panic_message(panic: Box<dyn Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(message) => *message,
        Err(panic) => panic.downcast_ref::<&str>().map_or("?", |m| m).to_owned(),
    }
}

/// The answer of a call that finished, failed as a task (`why`: a panic, a
/// bug of ours, contained to the call) or was still running after `waited`,
/// at the deadline.
fn outcome(
    id: &str,
    finished: Result<Result<Answer, String>, tokio::time::error::Elapsed>,
    waited: Duration,
) -> Answer {
    match finished {
        Ok(Ok(answer)) => answer,
        Ok(Err(why)) => {
            tracing::error!(tool_call_id = %id, error = %why, "tool call task failed");
            Err("the tool failed unexpectedly".to_owned())
        }
        Err(_) => Err(ToolFailure::TimedOut(waited).to_string()),
    }
}

/// The plugin a call goes to.
enum Target {
    /// Serving the tool when the request arrived.
    Found(Arc<Plugin>),
    /// None served it then: perhaps one of the plugins found at start that
    /// are still being compiled will (see [`loaded_later`]).
    Later(Arc<PluginSet>),
}

impl Target {
    /// Where a call for `tool` goes, as `registry` (a snapshot of `plugins`) says.
    fn of(registry: &Snapshot, plugins: &Arc<PluginSet>, tool: &str) -> Self {
        match registry.lookup(tool) {
            Some(plugin) => Target::Found(plugin.clone()),
            None => Target::Later(plugins.clone()),
        }
    }

    /// The plugin, once there is one (see [`loaded_later`]).
    async fn plugin(self, tool: &str, cutoff: Instant) -> Result<Arc<Plugin>, ToolFailure> {
        match self {
            Target::Found(plugin) => Ok(plugin),
            // Boxed: a rare wait (at start), kept out of every call's future.
            Target::Later(plugins) => Box::pin(loaded_later(&plugins, tool, cutoff)).await,
        }
    }
}

/// The plugin serving `tool` once the plugins found at start that are still
/// being compiled have loaded, waiting until `cutoff` at most; a call for a
/// tool that none serves fails at once.
async fn loaded_later(plugins: &PluginSet, tool: &str, cutoff: Instant) -> Result<Arc<Plugin>, ToolFailure> {
    if let Ok(Some(plugin)) = tokio::time::timeout_at(cutoff.into(), plugins.plugin_for(tool)).await {
        return Ok(plugin);
    }
    let loading = plugins.loading();
    Err(ToolFailure::NotFound(match loading.is_empty() {
        true => format!("unknown tool {tool:?}: no loaded plugin provides it"),
        false => format!(
            "unknown tool {tool:?}: no loaded plugin provides it yet, and plugins found at start are still compiling ({})",
            loading.join(", ")
        ),
    }))
}

/// Answers one call: checks it, runs it once (duplicates share the first
/// answer), and records its outcome; `true` with an answer replayed from
/// the duplicate store.
async fn answer(call: ToolCallRequest, target: Target, cutoff: Instant, services: Services) -> (Answer, bool) {
    let target = match target.plugin(&call.name, cutoff).await {
        Ok(plugin) => Some(plugin),
        Err(failure) => return (Err(refuse(&call, None, failure, &services).to_string()), false),
    };
    // Only calls that reach a plugin are de-duplicated: an unknown tool or
    // invalid arguments ran nothing, so a retry may succeed.
    let (plugin, arguments) = match prepare(&call, target.as_ref()) {
        Ok(prepared) => prepared,
        Err(failure) => return (Err(refuse(&call, target.as_ref(), failure, &services).to_string()), false),
    };
    let Some(dedup) = services.dedup.clone() else {
        return (execute(&call, plugin, arguments, cutoff, &services).await.map_err(|f| f.to_string()), false);
    };
    let key = DedupKey::new(&call.context.call_id, &call.context.tool_call_id, &call.name, &arguments);
    // A replayed answer is logged with the arguments it answered (shared, not copied).
    let replay = services.log.is_on().then(|| (Instant::now(), plugin.clone(), arguments.clone()));
    // Boxed: the duplicate store's once-only cell wraps this future in
    // layers that each hold it inline, which made every call's future about
    // 5 KB, copied whole each time it moved (memmove was 5 % of a request's
    // CPU). Boxed, each layer holds a pointer.
    let run = Box::pin(async { execute(&call, plugin, arguments, cutoff, &services).await.map_err(|f| f.to_string()) });
    let (answer, duplicate) = dedup.once(key, cutoff, run).await;
    if duplicate {
        tracing::info!(
            tool = %call.name, tool_call_id = %call.context.tool_call_id, call_id = %call.context.call_id,
            "duplicate tool call: the first answer to this call is replayed from the duplicate store, \
             the plugin does not run (serve --dev turns this off)"
        );
        services.metrics.record_duplicate();
        if let Some((started, plugin, arguments)) = replay {
            let mut logged = Logged::start(&services.log, &call, Some(&plugin), arguments);
            logged.started = started;
            match &answer {
                Ok(result) => logged.finish(Outcome::Duplicate, Some(result.get()), None),
                Err(error) => logged.finish(Outcome::Duplicate, None, Some(error)),
            }
        }
    }
    (answer, duplicate)
}

/// Runs one call on its plugin (or starts it, for an async tool) and records its outcome.
async fn execute(
    call: &ToolCallRequest,
    plugin: Arc<Plugin>,
    arguments: Arc<str>,
    cutoff: Instant,
    services: &Services,
) -> Result<Box<RawValue>, ToolFailure> {
    let logged = Logged::start(&services.log, call, Some(&plugin), arguments);
    let tool = plugin.tool(&call.name).expect("lookup found this tool");
    let result = if tool.is_async {
        let accepted = tool.async_response.clone();
        run_in_background(call.clone(), plugin.clone(), logged.arguments.clone(), services);
        Ok(async_answer(accepted))
    } else {
        let mut limits = plugin.limits;
        limits.timeout = limits.timeout.min(cutoff.saturating_duration_since(Instant::now()));
        plugin.call(&call.name, &logged.arguments, &call.context, limits).await.map(into_json)
    };
    services.metrics.record_tool_call(&call.name, call.door.label(), outcome_label(&result), logged.started.elapsed());
    if let Err(failure) = &result {
        tracing::info!(tool = %call.name, tool_call_id = %call.context.tool_call_id, call_id = %call.context.call_id, error = %failure, "tool call failed");
    }
    logged.finish_with(&result, tool.is_async);
    result
}

/// Records and logs a call that never reached a plugin, and says why.
fn refuse(
    call: &ToolCallRequest,
    target: Option<&Arc<Plugin>>,
    failure: ToolFailure,
    services: &Services,
) -> ToolFailure {
    let known = !matches!(failure, ToolFailure::NotFound(_));
    // Unknown names stay out of metric labels: any string can arrive here.
    services.metrics.record_tool_call(
        if known { &call.name } else { "<unknown>" },
        call.door.label(),
        "error",
        Duration::ZERO,
    );
    tracing::info!(tool = %call.name, tool_call_id = %call.context.tool_call_id, call_id = %call.context.call_id, error = %failure, "tool call refused");
    let arguments: Arc<str> = match &call.arguments {
        Ok(text) => text.as_str().into(),
        Err(unusable) => unusable.sent.as_str().into(),
    };
    Logged::start(&services.log, call, target, arguments).finish_with::<Box<RawValue>>(&Err(failure.clone()), false);
    failure
}

/// Finds the plugin and checks the arguments against the tool's schema.
fn prepare(call: &ToolCallRequest, target: Option<&Arc<Plugin>>) -> Result<(Arc<Plugin>, Arc<str>), ToolFailure> {
    let Some(plugin) = target else {
        return Err(ToolFailure::NotFound(format!("unknown tool {:?}: no loaded plugin provides it", call.name)));
    };
    let arguments = call.arguments.as_deref().map_err(|bad| ToolFailure::InvalidArguments(bad.why.clone()))?;
    plugin.check_arguments(&call.name, arguments)?;
    Ok((plugin.clone(), arguments.into()))
}

/// A tool call's record in the making. Finished with how the call ended;
/// dropped unfinished (its future cancelled at the deadline), it is logged
/// as a timeout. The record is made once the call has ended, its text
/// copied from the call in one piece.
struct Logged<'a> {
    log: &'a CallLog,
    call: &'a ToolCallRequest,
    plugin: Option<&'a Arc<Plugin>>,
    /// When the call started (wall clock, for the log): `None` when the
    /// call log is off.
    at: Option<SystemTime>,
    /// When the call started: its duration, for the log and the metrics.
    started: Instant,
    /// The call's arguments, held here so a timeout can log them too.
    arguments: Arc<str>,
    /// Logged already (finished).
    sent: bool,
}

impl<'a> Logged<'a> {
    fn start(
        log: &'a CallLog,
        call: &'a ToolCallRequest,
        plugin: Option<&'a Arc<Plugin>>,
        arguments: Arc<str>,
    ) -> Self {
        Self {
            log,
            call,
            plugin,
            at: log.is_on().then(SystemTime::now),
            started: Instant::now(),
            arguments,
            sent: false,
        }
    }

    /// Logs the call as ended with `result` (`accepted`: an async tool's
    /// immediate answer).
    fn finish_with<T: AsRef<RawValue>>(self, result: &Result<T, ToolFailure>, accepted: bool) {
        match result {
            Ok(json) => {
                self.finish(if accepted { Outcome::Async } else { Outcome::Ok }, Some(json.as_ref().get()), None)
            }
            Err(failure) => {
                let outcome = match failure {
                    ToolFailure::TimedOut(_) => Outcome::Timeout,
                    ToolFailure::InvalidArguments(_) => Outcome::InvalidArguments,
                    _ => Outcome::Error,
                };
                self.finish(outcome, None, Some(&failure.to_string()))
            }
        }
    }

    fn finish(mut self, outcome: Outcome, result: Option<&str>, error: Option<&str>) {
        self.send(outcome, result, error);
    }

    fn send(&mut self, outcome: Outcome, result: Option<&str>, error: Option<&str>) {
        let Some(at) = self.at.filter(|_| !self.sent) else { return };
        self.sent = true;
        let call = self.call;
        self.log.tool_call(NewToolCall {
            at,
            plugin: self.plugin,
            door: call.door.label(),
            outcome,
            duration: self.started.elapsed(),
            text: ToolCallText {
                call_id: &call.context.call_id,
                tool_call_id: &call.context.tool_call_id,
                tool: &call.name,
                customer_number: call.context.customer_number.as_deref(),
                phone_number: call.context.phone_number.as_deref(),
                arguments: Some(&*self.arguments).filter(|a| !a.is_empty()),
                result,
                error,
                ..ToolCallText::default()
            },
        });
    }
}

impl Drop for Logged<'_> {
    /// Logs a call that never finished as a timeout.
    fn drop(&mut self) {
        if self.at.is_some() && !self.sent {
            let timed_out = ToolFailure::TimedOut(self.started.elapsed()).to_string();
            self.send(Outcome::Timeout, None, Some(&timed_out));
        }
    }
}

/// Runs an async tool after its call was answered, under the plugin's own
/// timeout; its outcome is logged as an entry of its own.
fn run_in_background(call: ToolCallRequest, plugin: Arc<Plugin>, arguments: Arc<str>, services: &Services) {
    let services = services.clone();
    services.shutdown.clone().spawn(Work::AsyncTool, async move {
        let logged = Logged::start(&services.log, &call, Some(&plugin), arguments);
        let result = plugin.call(&call.name, &logged.arguments, &call.context, plugin.limits).await.map(into_json);
        services.metrics.record_tool_call(
            &call.name,
            call.door.label(),
            outcome_label(&result),
            logged.started.elapsed(),
        );
        match &result {
            Ok(_) => tracing::info!(tool = %call.name, tool_call_id = %call.context.tool_call_id, "async tool finished"),
            Err(e) => tracing::warn!(tool = %call.name, tool_call_id = %call.context.tool_call_id, error = %e, "async tool failed"),
        }
        logged.finish_with(&result, false);
    });
}

/// What an async tool answers at once: its configured response, or an acknowledgement.
fn async_answer(accepted: Option<String>) -> Box<RawValue> {
    let value = match accepted {
        Some(text) => serde_json::Value::String(text),
        None => serde_json::json!({ "status": "accepted" }),
    };
    RawValue::from_string(value.to_string()).expect("valid JSON")
}

fn outcome_label<T>(result: &Result<T, ToolFailure>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(ToolFailure::TimedOut(_)) => "timeout",
        Err(ToolFailure::Crashed(_) | ToolFailure::OutOfMemory { .. } | ToolFailure::HostLimit(_)) => "crash",
        Err(_) => "error",
    }
}

/// A plugin's result is JSON; plain text from a lenient plugin becomes a string.
fn into_json(output: String) -> Box<RawValue> {
    RawValue::from_string(output.clone()).unwrap_or_else(|_| {
        RawValue::from_string(serde_json::to_string(&output).expect("strings serialize")).expect("valid JSON")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_failure_or_timeout_fails_only_its_call() {
        let finished = Ok(Ok(Ok(RawValue::from_string("{}".into()).unwrap())));
        assert_eq!(outcome("a", finished, Duration::ZERO).unwrap().get(), "{}");

        let panicked: Box<dyn Any + Send> = Box::new("index out of bounds");
        assert_eq!(panic_message(panicked), "index out of bounds");
        let failed = Ok(Err("index out of bounds".to_owned()));
        assert_eq!(outcome("b", failed, Duration::ZERO).unwrap_err(), "the tool failed unexpectedly");
    }

    #[tokio::test]
    async fn a_call_still_running_at_the_deadline_says_how_long_it_was_given() {
        let waited = Duration::from_millis(20);
        let never = std::future::pending::<Result<Answer, String>>();
        let finished = tokio::time::timeout(waited, never).await;
        assert_eq!(outcome("c", finished, waited).unwrap_err(), "the tool did not answer within 20ms");
    }
}
