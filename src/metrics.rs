//! Prometheus metrics, rendered by `GET /metrics`.
//!
//! Each [`Metrics`] owns its own registry (no globals), so several
//! Switchboards can live in one process, as they do in tests.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    event: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
    outcome: &'static str,
}

/// The server's counters and histograms.
pub struct Metrics {
    registry: Registry,
    webhooks: Family<WebhookLabels, Counter>,
    tool_calls: Family<ToolLabels, Counter>,
    tool_call_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register("webhook_requests", "Webhook requests by event and HTTP status", webhooks.clone());
        let tool_calls = Family::<ToolLabels, Counter>::default();
        registry.register("tool_calls", "Tool calls by tool and outcome", tool_calls.clone());
        let tool_call_seconds = Histogram::new(exponential_buckets(0.0001, 4.0, 10));
        registry.register("tool_call_duration_seconds", "Time to run one tool call", tool_call_seconds.clone());
        Self { registry, webhooks, tool_calls, tool_call_seconds }
    }
}

impl Metrics {
    /// Counts one webhook request.
    pub fn record_webhook(&self, event: &str, status: u16) {
        self.webhooks.get_or_create(&WebhookLabels { event: event.to_owned(), status }).inc();
    }

    /// Counts one tool call and its duration.
    pub fn record_tool_call(&self, tool: &str, outcome: &'static str, elapsed: Duration) {
        self.tool_calls.get_or_create(&ToolLabels { tool: tool.to_owned(), outcome }).inc();
        self.tool_call_seconds.observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
