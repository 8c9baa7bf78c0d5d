//! Background delivery of `status-update` and `end-of-call-report` to the
//! plugins that subscribe to them (CRM sync, logging, analytics).
//!
//! The webhook is acknowledged first; the event then waits in a bounded queue.
//! When the queue is full the event is dropped, with a log line and a metric:
//! the acknowledgement is never delayed by slow subscribers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};

use super::metrics::Metrics;
use super::shutdown::{Shutdown, Work};
use crate::plugins::PluginSet;
use crate::types::EventKind;

/// Longest a subscriber may take over one event.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries running at once.
const CONCURRENT_DELIVERIES: usize = 16;

/// An event waiting for delivery.
struct QueuedEvent {
    kind: EventKind,
    message: Arc<str>,
}

/// The sending side of the event queue. Cheap to clone.
#[derive(Clone)]
pub(crate) struct EventQueue {
    tx: mpsc::Sender<QueuedEvent>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
}

impl EventQueue {
    /// Starts the delivery task with a queue of `capacity` events.
    /// Deliveries run as `shutdown`'s background work.
    pub fn start(plugins: Arc<PluginSet>, metrics: Arc<Metrics>, capacity: usize, shutdown: Shutdown) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(deliver_all(plugins, metrics.clone(), rx, shutdown.clone()));
        Self { tx, metrics, shutdown }
    }

    /// Queues `message` (the webhook's `message` object as JSON) of type
    /// `kind` without waiting; drops it when the queue is full.
    pub fn publish(&self, kind: EventKind, message: String) {
        // Counted before it is sent, so the delivery task never sees it uncounted.
        self.shutdown.event_queued();
        let Err(error) = self.tx.try_send(QueuedEvent { kind, message: message.into() }) else { return };
        self.shutdown.event_dequeued();
        let (event, why) = match error {
            mpsc::error::TrySendError::Full(event) => (event, "event queue full; event dropped"),
            mpsc::error::TrySendError::Closed(event) => (event, "event queue closed; event dropped"),
        };
        tracing::warn!(event = event.kind.as_str(), "{why}");
        self.metrics.record_event_dropped(event.kind.as_str());
    }
}

async fn deliver_all(
    plugins: Arc<PluginSet>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<QueuedEvent>,
    shutdown: Shutdown,
) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    while let Some(event) = rx.recv().await {
        // Counts as queued until its deliveries have started.
        let _queued = Dequeue(&shutdown);
        let registry = plugins.snapshot();
        for plugin in registry.subscribers(event.kind) {
            // Waiting for a slot here is what lets the queue fill up, and drop,
            // when subscribers are slow.
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            let (plugin, metrics, message, kind) = (plugin.clone(), metrics.clone(), event.message.clone(), event.kind);
            shutdown.spawn(Work::EventDelivery, async move {
                let mut limits = plugin.limits;
                limits.timeout = limits.timeout.min(DELIVERY_TIMEOUT);
                let outcome = plugin.guest.on_event(&message, limits).await;
                if let Err(error) = &outcome {
                    tracing::warn!(plugin = %plugin.name, event = kind.as_str(), %error, "event delivery failed");
                }
                metrics.record_event_delivery(&plugin.name, kind.as_str(), outcome.is_ok());
                drop(permit);
            });
        }
    }
}

/// Counts a queued event out when its deliveries have started.
struct Dequeue<'a>(&'a Shutdown);

impl Drop for Dequeue<'_> {
    fn drop(&mut self) {
        self.0.event_dequeued();
    }
}
