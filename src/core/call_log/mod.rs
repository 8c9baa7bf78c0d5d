//! The call log: every webhook and tool call, kept in a database so an
//! operator can see what happened on a call (which tools ran, with which
//! arguments, what they answered or why they failed, how long it took).
//!
//! Records are made on the request path and handed to a bounded [`queue`]
//! without waiting ([`CallLog::tool_call`], [`CallLog::webhook`]); the
//! [`writer`] task writes them in batches to the [`store`] (SQLite in the
//! data folder, or a shared PostgreSQL). When the queue is full, or the
//! database does not take a batch, records are dropped with a warning and
//! `switchboard_call_log_dropped_total` counts them: an answer never waits
//! for the log. [`CallLogReader`] reads it back (the API, `switchboard calls`).

mod query;
mod queue;
mod record;
mod settings;
mod stats;
mod store;
mod writer;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;

use super::metrics::Metrics;
pub use query::{CallEntry, CallPage, CallQuery, CallStory, CallSummary, CallsError, parse_time};
use queue::Queue;
pub(crate) use record::{NewToolCall, Outcome, ToolCallText, WebhookRecord};
pub use settings::CallLogSettings;
use stats::Stats;
pub use stats::ToolStats;
pub use store::CallLogDatabase;
use store::Store;

/// Where records go: a queue to the writer task, or nowhere when the log is
/// off. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct CallLog {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    queue: Arc<Queue>,
    settings: Arc<CallLogSettings>,
    stats: Arc<Mutex<Stats>>,
    metrics: Arc<Metrics>,
    reader: CallLogReader,
}

impl CallLog {
    /// Opens the database (creating its tables) and starts the writer.
    pub async fn start(settings: CallLogSettings, metrics: Arc<Metrics>) -> Result<Self, String> {
        let store = Arc::new(Store::open(&settings.database).await?);
        let queue = Arc::new(Queue::new(settings.queue_capacity));
        let settings = Arc::new(settings);
        let stats = Arc::new(Mutex::new(Stats::default()));
        tokio::spawn(writer::run(store.clone(), queue.clone(), settings.clone(), stats.clone(), metrics.clone()));
        let reader = CallLogReader { store };
        Ok(Self { inner: Some(Arc::new(Inner { queue, settings, stats, metrics, reader })) })
    }

    /// Whether records are kept (build none when not).
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// Logs a tool call.
    pub fn tool_call(&self, call: NewToolCall<'_>) {
        self.send(|pending| pending.push_tool_call(call));
    }

    /// Logs a webhook; with `capture_reports`, `full_report` (an
    /// end-of-call report's every documented field: summary, analysis,
    /// transcript) replaces its detail.
    pub fn webhook(&self, mut webhook: WebhookRecord, full_report: impl FnOnce() -> Option<String>) {
        if let Some(inner) = &self.inner {
            if inner.settings.capture_reports
                && let Some(report) = full_report()
            {
                webhook.detail = Some(report);
            }
            self.send(|pending| pending.webhooks.push(webhook));
        }
    }

    fn send(&self, add: impl FnOnce(&mut record::Pending)) {
        let Some(inner) = &self.inner else { return };
        if !inner.queue.push(add) {
            inner.metrics.record_call_log_dropped("queue_full", 1);
            tracing::debug!("call log: queue full, a record was dropped");
        }
    }

    /// Waits (up to `within`) until everything logged so far is written.
    pub async fn flush(&self, within: Duration) {
        let Some(inner) = &self.inner else { return };
        let (done, written) = oneshot::channel();
        inner.queue.flush(done);
        if tokio::time::timeout(within, written).await.is_err() {
            tracing::warn!("call log: records still unwritten at shutdown");
        }
    }

    /// Reads the log; `None` when it is off.
    pub fn reader(&self) -> Option<&CallLogReader> {
        self.inner.as_ref().map(|inner| &inner.reader)
    }

    /// Per-tool figures for the last hour, from this replica's calls.
    pub fn stats(&self) -> Vec<ToolStats> {
        match &self.inner {
            Some(inner) => inner.stats.lock().unwrap_or_else(|p| p.into_inner()).figures(SystemTime::now()),
            None => Vec::new(),
        }
    }
}

impl Drop for Inner {
    /// The last handle is gone: the writer writes what is queued and ends.
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// Reads a call log: recent calls by filter, and one call's whole story.
///
/// ```no_run
/// # async fn run() -> anyhow::Result<()> {
/// use switchboard::{CallLogReader, CallLogSettings, CallQuery};
///
/// let log = CallLogReader::open(&CallLogSettings::sqlite("data")).await.map_err(anyhow::Error::msg)?;
/// let failed = log.calls(&CallQuery { outcome: Some("failed".into()), ..Default::default() }).await?;
/// for call in failed.calls {
///     println!("{} {:?}: {} of {} tool calls failed", call.call_id, call.customer_number, call.failed, call.tool_calls);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CallLogReader {
    store: Arc<Store>,
}

impl CallLogReader {
    /// Opens an existing log (one a server has written) to read it.
    pub async fn open(settings: &CallLogSettings) -> Result<Self, String> {
        Ok(Self { store: Arc::new(Store::open_existing(&settings.database).await?) })
    }

    /// One page of calls matching `query`, the most recently active first.
    pub async fn calls(&self, query: &CallQuery) -> Result<CallPage, CallsError> {
        let mut calls = self.store.calls(query).await?;
        let page = query.limit.clamp(1, query::MAX_PAGE);
        let next_before = (calls.len() > page).then(|| {
            calls.truncate(page);
            query::cursor_after(calls.last().expect("a full page"))
        });
        Ok(CallPage { calls, next_before })
    }

    /// Everything logged about `call_id`, in time order; `None` when nothing is.
    pub async fn story(&self, call_id: &str) -> Result<Option<CallStory>, String> {
        self.store.story(call_id).await
    }
}
