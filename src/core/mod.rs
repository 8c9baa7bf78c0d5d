//! The core: what Switchboard does with a call, whichever door it came in by.
//! It knows no HTTP and no wasmtime.
//!
//! - [`dispatch`]: tool calls, run concurrently under one deadline, each
//!   checked against its tool's schema, answered once per id ([`dedup`]),
//!   async tools answered at once and run in the background;
//! - [`assistant`]: which assistant answers an inbound call;
//! - [`events`]: status updates and end-of-call reports, delivered in the
//!   background to the plugins that subscribe;
//! - [`catalog`]: the loaded tools, in the shapes the platforms want;
//! - [`call_log`]: every webhook and tool call, kept in a database off the
//!   request path, and read back for the API, the dashboard and the CLI;
//! - [`metrics`]: counters and histograms for `GET /metrics`;
//! - [`shutdown`]: the draining flag, and a grace period for background work.
//!
//! [`Core`] is the one value the doors hold.

pub(crate) mod assistant;
pub(crate) mod call_log;
pub(crate) mod catalog;
pub(crate) mod dedup;
pub(crate) mod dispatch;
pub(crate) mod events;
pub(crate) mod metrics;
pub(crate) mod shutdown;

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::plugins::{PluginSet, Snapshot};
use crate::types::{CallContext, EventKind, ToolDefinition, ToolFailure};
use assistant::{AnswerSource, AssistantSettings};
use call_log::{CallLog, CallLogSettings};
use dedup::Dedup;
use dispatch::{Dispatcher, Door, Services, ToolCallOutcome, ToolCallRequest};
use events::EventQueue;
use metrics::Metrics;
use shutdown::Shutdown;

/// The plugins, and everything that runs calls on them.
pub(crate) struct Core {
    plugins: Arc<PluginSet>,
    dispatcher: Dispatcher,
    metrics: Arc<Metrics>,
    assistant: AssistantSettings,
    events: EventQueue,
    public_url: Option<String>,
    shutdown: Shutdown,
    call_log: CallLog,
    /// The deadline of a tool call that sets none (the dashboard's tries).
    tool_calls_budget: std::time::Duration,
}

impl Core {
    /// A core over `plugins`; duplicates are answered from `dedup` when
    /// given, and calls logged to `call_log` (its database opened here).
    pub async fn new(
        plugins: Arc<PluginSet>,
        dedup: Option<Dedup>,
        assistant: AssistantSettings,
        event_queue_capacity: usize,
        public_url: Option<String>,
        call_log: Option<CallLogSettings>,
    ) -> Result<Self, String> {
        let metrics = Arc::new(Metrics::default());
        let shutdown = Shutdown::default();
        let call_log = match call_log {
            Some(settings) => CallLog::start(settings, metrics.clone()).await?,
            None => CallLog::default(),
        };
        let events = EventQueue::start(plugins.clone(), metrics.clone(), event_queue_capacity, shutdown.clone());
        let services = Services {
            metrics: metrics.clone(),
            dedup: dedup.map(Arc::new),
            shutdown: shutdown.clone(),
            log: call_log.clone(),
        };
        let dispatcher = Dispatcher::new(plugins.clone(), services);
        let tool_calls_budget = std::time::Duration::from_secs(9);
        Ok(Self { plugins, dispatcher, metrics, assistant, events, public_url, shutdown, call_log, tool_calls_budget })
    }

    /// Runs at most `most` tool calls of one request (see [`Dispatcher::max_calls`]).
    pub fn max_tool_calls_per_request(mut self, most: usize) -> Self {
        self.dispatcher = self.dispatcher.max_calls(most);
        self
    }

    /// Gives tool calls that set no deadline of their own `budget`.
    pub fn tool_calls_budget_of(mut self, budget: std::time::Duration) -> Self {
        self.tool_calls_budget = budget;
        self
    }

    /// The deadline of a tool call that sets none of its own.
    pub fn tool_calls_budget(&self) -> std::time::Duration {
        self.tool_calls_budget
    }

    /// Runs one request's tool calls; outcomes in request order, by `deadline`.
    pub async fn tool_calls(&self, calls: Vec<ToolCallRequest>, deadline: Instant) -> Vec<ToolCallOutcome> {
        self.dispatcher.dispatch(calls, deadline).await
    }

    /// Runs one tool call as a tool-calls request would (schema check,
    /// limits, `deadline`, metrics), without duplicate suppression: the
    /// result as JSON text.
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: &str,
        context: &CallContext,
        deadline: Instant,
        door: Door,
    ) -> Result<String, ToolFailure> {
        self.dispatcher.call(tool, arguments, context, deadline, door).await
    }

    /// Changes whenever a new snapshot of the plugins is swapped in (a
    /// plugin loaded, replaced, removed or failed).
    pub fn plugin_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.plugins.changes()
    }

    /// Every loaded tool, sorted by name.
    pub fn tools(&self) -> Vec<ToolDefinition> {
        self.plugins.snapshot().tools().into_iter().map(|(tool, _)| tool.clone()).collect()
    }

    /// Answers an assistant-request whose `message` object is `message`
    /// (JSON text), arrived at `arrived`: a static route, a plugin, or `{}`.
    pub async fn assistant_request(
        &self,
        message: &str,
        phone: Option<&str>,
        customer: Option<&str>,
        arrived: Instant,
    ) -> (Value, AnswerSource) {
        let snapshot = self.plugins.snapshot();
        let tools = || catalog::platform_tools(&snapshot, self.public_url.as_deref());
        let (answer, source) =
            assistant::answer(&self.assistant, &snapshot, message, phone, customer, arrived, tools).await;
        self.metrics.record_assistant_request(source.label());
        (answer, source)
    }

    /// Queues an event for the plugins that subscribe to it, without
    /// waiting; `message` (JSON text) is only made when one does.
    pub fn publish(&self, kind: EventKind, message: impl FnOnce() -> String) {
        if self.plugins.snapshot().subscribers(kind).next().is_some() {
            self.events.publish(kind, message());
        }
    }

    /// The loaded tools in the platform's `llm_config.tools` shape.
    pub fn platform_tools(&self) -> Vec<Value> {
        catalog::platform_tools(&self.plugins.snapshot(), self.public_url.as_deref())
    }

    /// The loaded plugins, now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.plugins.snapshot()
    }

    /// The plugins found at start that are still being compiled.
    pub fn plugins_loading(&self) -> Vec<String> {
        self.plugins.loading()
    }

    /// Waits until every plugin found at start has loaded or failed.
    pub async fn plugins_loaded(&self) {
        self.plugins.loaded().await
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Where webhooks and tool calls are logged (a no-op when the log is off).
    pub fn call_log(&self) -> &CallLog {
        &self.call_log
    }

    /// Starts draining: `/readyz` fails from now on. `true` the first time.
    pub fn begin_shutdown(&self) -> bool {
        self.shutdown.begin()
    }

    /// Whether the server is shutting down.
    pub fn is_draining(&self) -> bool {
        self.shutdown.is_draining()
    }

    /// Gives async tools and event deliveries up to `grace` to finish;
    /// logs and counts what does not.
    pub async fn finish_background_work(&self, grace: std::time::Duration) {
        let started = Instant::now();
        self.shutdown.finish(grace, &self.metrics).await;
        // What the background work logged, and everything before it.
        self.call_log.flush(grace.saturating_sub(started.elapsed()).max(std::time::Duration::from_secs(1))).await;
    }
}
