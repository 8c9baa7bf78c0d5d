//! Shutting down without losing work silently.
//!
//! When the server is told to stop, [`Shutdown::begin`] turns on *draining*
//! (`/readyz` then answers 503, so the load balancer stops sending). After
//! the HTTP server has finished the requests in flight, [`Shutdown::finish`]
//! gives the background work (async tools still running, event deliveries
//! running or queued) a grace period. What is still unfinished at its end is
//! logged, by kind, and counted (`switchboard_shutdown_unfinished_total`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::metrics::Metrics;

/// A kind of background work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
    /// An async tool, running after its call was answered.
    AsyncTool,
    /// An event being delivered to one subscribing plugin.
    EventDelivery,
}

/// What was still unfinished when the grace period ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unfinished {
    pub async_tools: usize,
    pub event_deliveries: usize,
    /// Events still waiting in the queue (each for one or more subscribers).
    pub queued_events: usize,
}

impl Unfinished {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The draining flag and the background work to wait for. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Shutdown(Arc<Inner>);

#[derive(Default)]
struct Inner {
    draining: AtomicBool,
    tasks: TaskTracker,
    async_tools: AtomicUsize,
    event_deliveries: AtomicUsize,
    queued_events: AtomicUsize,
}

impl Shutdown {
    /// Turns draining on; `true` the first time.
    pub fn begin(&self) -> bool {
        !self.0.draining.swap(true, Ordering::SeqCst)
    }

    /// The server is shutting down: not ready for new work.
    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::SeqCst)
    }

    /// Runs `task` in the background, as work of kind `work` to wait for.
    pub fn spawn(&self, work: Work, task: impl Future<Output = ()> + Send + 'static) {
        self.counter(work).fetch_add(1, Ordering::SeqCst);
        let running = Running(self.clone(), work);
        self.0.tasks.spawn(async move {
            let _running = running;
            task.await;
        });
    }

    /// An event went into the delivery queue.
    pub fn event_queued(&self) {
        self.0.queued_events.fetch_add(1, Ordering::SeqCst);
    }

    /// A queued event's deliveries have started (or it had no subscriber left).
    pub fn event_dequeued(&self) {
        self.0.queued_events.fetch_sub(1, Ordering::SeqCst);
    }

    fn counter(&self, work: Work) -> &AtomicUsize {
        match work {
            Work::AsyncTool => &self.0.async_tools,
            Work::EventDelivery => &self.0.event_deliveries,
        }
    }

    fn pending(&self) -> Unfinished {
        Unfinished {
            async_tools: self.0.async_tools.load(Ordering::SeqCst),
            event_deliveries: self.0.event_deliveries.load(Ordering::SeqCst),
            queued_events: self.0.queued_events.load(Ordering::SeqCst),
        }
    }

    /// Waits up to `grace` for the background work; logs and counts (in
    /// `metrics`) what is left, and returns it.
    pub async fn finish(&self, grace: Duration, metrics: &Metrics) -> Unfinished {
        let pending = self.pending();
        if pending.is_empty() {
            return pending;
        }
        tracing::info!(
            async_tools = pending.async_tools,
            event_deliveries = pending.event_deliveries,
            queued_events = pending.queued_events,
            grace_ms = grace.as_millis() as u64,
            "shutting down: waiting for background work"
        );
        self.0.tasks.close();
        let all_done = async {
            loop {
                // Empty and closed: nothing runs. Events still queued are
                // about to start; look again shortly.
                self.0.tasks.wait().await;
                if self.0.queued_events.load(Ordering::SeqCst) == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let _ = tokio::time::timeout_at(Instant::now() + grace, all_done).await;
        let left = self.pending();
        if left.is_empty() {
            tracing::info!("background work finished");
            return left;
        }
        tracing::warn!(
            async_tools = left.async_tools,
            event_deliveries = left.event_deliveries,
            queued_events = left.queued_events,
            grace_ms = grace.as_millis() as u64,
            "shutdown grace period over: background work left unfinished"
        );
        metrics.record_shutdown_unfinished("async_tool", left.async_tools);
        metrics.record_shutdown_unfinished("event_delivery", left.event_deliveries);
        metrics.record_shutdown_unfinished("queued_event", left.queued_events);
        left
    }
}

/// Held by a running background task; counts it out when it ends or is dropped.
struct Running(Shutdown, Work);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.counter(self.1).fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_that_outlives_the_grace_period_is_counted_by_kind() {
        let (shutdown, metrics) = (Shutdown::default(), Metrics::default());
        assert!(shutdown.begin() && shutdown.is_draining() && !shutdown.begin());
        shutdown.spawn(Work::AsyncTool, tokio::time::sleep(Duration::from_millis(20)));
        shutdown.spawn(Work::EventDelivery, std::future::pending());
        shutdown.event_queued();
        let left = shutdown.finish(Duration::from_millis(200), &metrics).await;
        assert_eq!(left, Unfinished { async_tools: 0, event_deliveries: 1, queued_events: 1 });
        let text = metrics.render();
        assert!(text.contains(r#"switchboard_shutdown_unfinished_total{kind="event_delivery"} 1"#), "{text}");
        assert!(text.contains(r#"switchboard_shutdown_unfinished_total{kind="queued_event"} 1"#), "{text}");
        assert!(!text.contains(r#"kind="async_tool""#), "{text}");
    }

    #[tokio::test]
    async fn finished_work_ends_the_wait_early() {
        let (shutdown, metrics) = (Shutdown::default(), Metrics::default());
        shutdown.spawn(Work::AsyncTool, tokio::time::sleep(Duration::from_millis(20)));
        let started = std::time::Instant::now();
        assert_eq!(shutdown.finish(Duration::from_secs(5), &metrics).await, Unfinished::default());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
