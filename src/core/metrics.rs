//! Prometheus metrics, rendered by `GET /metrics`.
//!
//! Each [`Metrics`] owns its own registry (no globals), so several
//! Switchboards can live in one process, as they do in tests.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use std::fmt::Write;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label value that comes from outside (a tool or plugin name, which
/// start as a manifest's text or a file name), escaped as the text
/// exposition requires (`\\`, `\"`, `\n`): prometheus-client writes label
/// values as they are, so a name with a quote or a newline could otherwise
/// end its label, or its line, and write samples of its own.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct LabelText(String);

impl LabelText {
    fn new(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl EncodeLabelValue for LabelText {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    event: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: LabelText,
    door: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimeoutLabels {
    listener: &'static str,
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    plugin: LabelText,
    event: &'static str,
    outcome: &'static str,
}

/// One series of `tool_calls` for a tool: its door and outcome, and its counter.
struct ToolCounter {
    door: &'static str,
    outcome: &'static str,
    counter: Counter,
}

/// The server's counters and histograms.
pub struct Metrics {
    registry: Registry,
    webhooks: Family<WebhookLabels, Counter>,
    tool_calls: Family<ToolLabels, Counter>,
    /// The counters of `tool_calls` by tool, then door and outcome, each
    /// looked up in the family once: a call then counts without building a
    /// label set, which would copy the tool's name every time.
    tool_call_counters: RwLock<HashMap<String, Vec<ToolCounter>>>,
    tool_call_seconds: Histogram,
    assistant_requests: Family<SourceLabels, Counter>,
    events_dropped: Family<EventLabels, Counter>,
    event_deliveries: Family<DeliveryLabels, Counter>,
    duplicates: Counter,
    shutdown_unfinished: Family<KindLabels, Counter>,
    call_log_written: Counter,
    call_log_dropped: Family<ReasonLabels, Counter>,
    connections_open: Family<ListenerLabels, Gauge>,
    connections_accepted: Family<ListenerLabels, Counter>,
    connections_timed_out: Family<TimeoutLabels, Counter>,
    connection_cap_reached: Family<ListenerLabels, Counter>,
}

/// One listener's connection figures, their handles looked up once when it
/// starts serving (the accept loop and every connection use them as they are).
#[derive(Clone)]
pub struct ConnectionMetrics {
    open: Gauge,
    accepted: Counter,
    header_timeouts: Counter,
    idle_timeouts: Counter,
    cap_reached: Counter,
}

impl ConnectionMetrics {
    /// A connection was accepted; it counts as open until [`Self::closed`].
    pub fn accepted(&self) {
        self.accepted.inc();
        self.open.inc();
    }

    /// A connection accepted earlier has ended, however it ended.
    pub fn closed(&self) {
        self.open.dec();
    }

    /// The server closed a connection that did not send its headers in time.
    pub fn header_timeout(&self) {
        self.header_timeouts.inc();
    }

    /// The server closed a kept-alive connection idle for too long.
    pub fn idle_timeout(&self) {
        self.idle_timeouts.inc();
    }

    /// The accept loop paused: the connection cap is reached.
    pub fn cap_reached(&self) {
        self.cap_reached.inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register("webhook_requests", "Webhook requests by event and HTTP status", webhooks.clone());
        let tool_calls = Family::<ToolLabels, Counter>::default();
        registry.register(
            "tool_calls",
            "Tool calls by tool, door (webhook, mcp, embedded) and outcome",
            tool_calls.clone(),
        );
        let tool_call_seconds = Histogram::new(exponential_buckets(0.0001, 4.0, 10));
        registry.register("tool_call_duration_seconds", "Time to run one tool call", tool_call_seconds.clone());
        let assistant_requests = Family::<SourceLabels, Counter>::default();
        registry.register(
            "assistant_requests",
            "assistant-request answers by source (route, plugin, default, fallback)",
            assistant_requests.clone(),
        );
        let events_dropped = Family::<EventLabels, Counter>::default();
        registry.register(
            "events_dropped",
            "Events dropped because the delivery queue was full",
            events_dropped.clone(),
        );
        let event_deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register("event_deliveries", "Events delivered to subscribing plugins", event_deliveries.clone());
        let duplicates = Counter::default();
        registry.register(
            "duplicate_tool_calls",
            "Tool calls answered from an earlier call with the same id",
            duplicates.clone(),
        );
        let shutdown_unfinished = Family::<KindLabels, Counter>::default();
        registry.register(
            "shutdown_unfinished",
            "Background work (async_tool, event_delivery, queued_event) still unfinished when the shutdown grace period ended",
            shutdown_unfinished.clone(),
        );
        let call_log_written = Counter::default();
        registry.register("call_log_written", "Records written to the call log", call_log_written.clone());
        let call_log_dropped = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "call_log_dropped",
            "Call log records dropped: queue_full (the writer is behind) or write_failed (the database refused or is gone)",
            call_log_dropped.clone(),
        );
        let connections_open = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "connections_open",
            "Connections open now, by listener (main, admin)",
            connections_open.clone(),
        );
        let connections_accepted = Family::<ListenerLabels, Counter>::default();
        registry.register("connections_accepted", "Connections accepted, by listener", connections_accepted.clone());
        let connections_timed_out = Family::<TimeoutLabels, Counter>::default();
        registry.register(
            "connections_timed_out",
            "Connections the server closed because they were too slow: phase headers (a request's headers not in within header_read_timeout) or idle (no next request within idle_timeout)",
            connections_timed_out.clone(),
        );
        let connection_cap_reached = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "connection_cap_reached",
            "Times the listener stopped accepting because max_connections were open (new connections waited in the listen backlog)",
            connection_cap_reached.clone(),
        );
        Self {
            registry,
            webhooks,
            tool_calls,
            tool_call_counters: RwLock::default(),
            tool_call_seconds,
            assistant_requests,
            events_dropped,
            event_deliveries,
            duplicates,
            shutdown_unfinished,
            call_log_written,
            call_log_dropped,
            connections_open,
            connections_accepted,
            connections_timed_out,
            connection_cap_reached,
        }
    }
}

impl Metrics {
    /// Counts one webhook request (`event`: the event's name, or `rejected`).
    pub fn record_webhook(&self, event: &'static str, status: u16) {
        self.webhooks.get_or_create(&WebhookLabels { event, status }).inc();
    }

    /// Counts one tool call (by tool, door and outcome) and its duration.
    pub fn record_tool_call(&self, tool: &str, door: &'static str, outcome: &'static str, elapsed: Duration) {
        self.count_tool_call(tool, door, outcome);
        self.tool_call_seconds.observe(elapsed.as_secs_f64());
    }

    /// Adds one to the counter of `tool`'s calls by `door` with `outcome`.
    fn count_tool_call(&self, tool: &str, door: &'static str, outcome: &'static str) {
        let of_tool = |counters: &[ToolCounter]| {
            counters.iter().find(|c| c.door == door && c.outcome == outcome).map(|c| c.counter.inc()).is_some()
        };
        let known = self.tool_call_counters.read().unwrap_or_else(|e| e.into_inner());
        if known.get(tool).is_some_and(|counters| of_tool(counters)) {
            return;
        }
        drop(known);
        let mut known = self.tool_call_counters.write().unwrap_or_else(|e| e.into_inner());
        let counters = known.entry(tool.to_owned()).or_default();
        if !of_tool(counters) {
            let counter =
                self.tool_calls.get_or_create(&ToolLabels { tool: LabelText::new(tool), door, outcome }).clone();
            counter.inc();
            counters.push(ToolCounter { door, outcome, counter });
        }
    }

    /// Counts one assistant-request answer by where it came from.
    pub fn record_assistant_request(&self, source: &'static str) {
        self.assistant_requests.get_or_create(&SourceLabels { source }).inc();
    }

    /// Counts an event dropped from a full queue.
    pub fn record_event_dropped(&self, event: &'static str) {
        self.events_dropped.get_or_create(&EventLabels { event }).inc();
    }

    /// Counts one delivery of an event to a plugin.
    pub fn record_event_delivery(&self, plugin: &str, event: &'static str, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.event_deliveries.get_or_create(&DeliveryLabels { plugin: LabelText::new(plugin), event, outcome }).inc();
    }

    /// Counts a tool call answered as a duplicate.
    pub fn record_duplicate(&self) {
        self.duplicates.inc();
    }

    /// Counts `rows` records written to the call log.
    pub fn record_call_log_written(&self, rows: usize) {
        self.call_log_written.inc_by(rows as u64);
    }

    /// Counts `rows` call log records dropped, and why.
    pub fn record_call_log_dropped(&self, reason: &'static str, rows: usize) {
        self.call_log_dropped.get_or_create(&ReasonLabels { reason }).inc_by(rows as u64);
    }

    /// Counts `count` pieces of background work of `kind` left unfinished at shutdown.
    pub fn record_shutdown_unfinished(&self, kind: &'static str, count: usize) {
        if count > 0 {
            self.shutdown_unfinished.get_or_create(&KindLabels { kind }).inc_by(count as u64);
        }
    }

    /// The connection figures of one listener (`main`, or `admin` for
    /// `--admin-listen`).
    pub fn connections(&self, listener: &'static str) -> ConnectionMetrics {
        let labels = ListenerLabels { listener };
        let timeouts = |phase| self.connections_timed_out.get_or_create(&TimeoutLabels { listener, phase }).clone();
        ConnectionMetrics {
            open: self.connections_open.get_or_create(&labels).clone(),
            accepted: self.connections_accepted.get_or_create(&labels).clone(),
            header_timeouts: timeouts("headers"),
            idle_timeouts: timeouts("idle"),
            cap_reached: self.connection_cap_reached.get_or_create(&labels).clone(),
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_cannot_break_the_exposition() {
        let metrics = Metrics::default();
        let name = "a\"} 1\nswitchboard_injected_total 7\n\\x";
        metrics.record_tool_call(name, "webhook", "ok", Duration::ZERO);
        metrics.record_event_delivery(name, "status-update", true);
        let text = metrics.render();
        assert!(!text.lines().any(|l| l.starts_with("switchboard_injected")), "{text}");
        let escaped = r#"a\"} 1\nswitchboard_injected_total 7\n\\x"#;
        assert!(
            text.contains(&format!(
                "switchboard_tool_calls_total{{tool=\"{escaped}\",door=\"webhook\",outcome=\"ok\"}} 1"
            )),
            "{text}"
        );
        assert!(text.contains(&format!("plugin=\"{escaped}\"")), "{text}");
    }

    #[test]
    fn each_tool_door_and_outcome_counts_on_its_own() {
        let metrics = Metrics::default();
        for (tool, door, outcome, times) in [
            ("echo", "webhook", "ok", 3),
            ("echo", "mcp", "ok", 1),
            ("echo", "webhook", "error", 2),
            ("other", "webhook", "ok", 1),
        ] {
            for _ in 0..times {
                metrics.record_tool_call(tool, door, outcome, Duration::ZERO);
            }
        }
        let text = metrics.render();
        for line in [
            r#"switchboard_tool_calls_total{tool="echo",door="webhook",outcome="ok"} 3"#,
            r#"switchboard_tool_calls_total{tool="echo",door="mcp",outcome="ok"} 1"#,
            r#"switchboard_tool_calls_total{tool="echo",door="webhook",outcome="error"} 2"#,
            r#"switchboard_tool_calls_total{tool="other",door="webhook",outcome="ok"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        assert!(text.contains("switchboard_tool_call_duration_seconds_count 7"), "{text}");
    }
}
