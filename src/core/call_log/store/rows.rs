//! Rows as the tables take them ([`Batch`], made from records) and as they
//! come back (summaries and entries, made from columns): shared by both
//! databases.

use std::collections::BTreeMap;

use crate::core::call_log::query::{CallEntry, CallSummary, rfc3339};
use crate::core::call_log::record::{Record, ToolCallRecord, epoch_ms, epoch_us, micros};

/// What one write adds: rows as the tables take them.
#[derive(Default)]
pub(crate) struct Batch {
    pub tool_calls: Vec<ToolCallRow>,
    pub webhooks: Vec<WebhookRow>,
    /// One per call id, sorted by id (so concurrent writers lock rows in
    /// the same order).
    pub calls: Vec<CallRow>,
}

pub(crate) struct ToolCallRow {
    /// Microseconds since the epoch.
    pub at: i64,
    pub call_id: String,
    pub tool_call_id: String,
    pub tool: String,
    pub plugin: Option<String>,
    pub version: Option<String>,
    pub door: &'static str,
    pub outcome: &'static str,
    pub duration_us: i64,
    pub arguments: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
}

pub(crate) struct WebhookRow {
    /// Microseconds since the epoch.
    pub at: i64,
    pub call_id: String,
    pub event: &'static str,
    pub http_status: i64,
    pub duration_us: i64,
    pub detail: Option<String>,
}

/// A call's summary as one batch changes it: merged into the stored row.
pub(crate) struct CallRow {
    pub call_id: String,
    pub first_at: i64,
    pub last_at: i64,
    pub customer_number: Option<String>,
    pub phone_number: Option<String>,
    pub tool_calls: i64,
    pub failed: i64,
    pub status: Option<String>,
    pub ended_reason: Option<String>,
    pub duration_seconds: Option<f64>,
}

impl Batch {
    /// Makes this the rows of `records`, in order (the buffers of the last
    /// batch are kept: a writer at thousands of rows a second would
    /// otherwise take fresh memory for each); `shape` turns each tool
    /// call's plugin, arguments and result into what is stored.
    pub fn fill(&mut self, records: &[Record], mut shape: impl FnMut(&ToolCallRecord) -> ToolCallRow) {
        let batch = self;
        batch.tool_calls.clear();
        batch.webhooks.clear();
        batch.calls.clear();
        let mut calls: BTreeMap<&str, CallRow> = BTreeMap::new();
        for record in records {
            let when = match record {
                Record::Webhook(w) => w.at,
                Record::ToolCall(t) => t.at,
            };
            // Rows in microseconds, summaries in milliseconds.
            let (at, at_us) = (epoch_ms(when), epoch_us(when));
            let call = calls.entry(record.call_id()).or_insert_with(|| CallRow {
                call_id: record.call_id().to_owned(),
                first_at: at,
                last_at: at,
                customer_number: None,
                phone_number: None,
                tool_calls: 0,
                failed: 0,
                status: None,
                ended_reason: None,
                duration_seconds: None,
            });
            call.first_at = call.first_at.min(at);
            call.last_at = call.last_at.max(at);
            match record {
                Record::Webhook(w) => {
                    call.customer_number = w.customer_number.clone().or(call.customer_number.take());
                    call.phone_number = w.phone_number.clone().or(call.phone_number.take());
                    call.status = w.status.clone().or(call.status.take());
                    call.ended_reason = w.ended_reason.clone().or(call.ended_reason.take());
                    call.duration_seconds = w.duration_seconds.or(call.duration_seconds);
                    batch.webhooks.push(WebhookRow {
                        at: at_us,
                        call_id: w.call_id.clone(),
                        event: w.event,
                        http_status: i64::from(w.http_status),
                        duration_us: micros(w.duration),
                        detail: w.detail.clone(),
                    });
                }
                Record::ToolCall(t) => {
                    call.customer_number = t.customer_number.clone().or(call.customer_number.take());
                    call.phone_number = t.phone_number.clone().or(call.phone_number.take());
                    call.tool_calls += 1;
                    call.failed += i64::from(t.outcome.failed());
                    batch.tool_calls.push(shape(t));
                }
            }
        }
        batch.calls.extend(calls.into_values());
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.tool_calls.len() + self.webhooks.len()
    }
}

/// A stored summary row as shown.
#[allow(clippy::too_many_arguments, reason = "one argument per column")]
pub(crate) fn summary(
    call_id: String,
    first_at_ms: i64,
    last_at_ms: i64,
    customer_number: Option<String>,
    phone_number: Option<String>,
    tool_calls: i64,
    failed: i64,
    status: Option<String>,
    ended_reason: Option<String>,
    duration_seconds: Option<f64>,
) -> CallSummary {
    CallSummary {
        call_id,
        first_at: rfc3339(first_at_ms),
        first_at_ms,
        last_at: rfc3339(last_at_ms),
        last_at_ms,
        customer_number,
        phone_number,
        tool_calls,
        failed,
        status,
        ended_reason,
        duration_seconds,
    }
}

/// Stored JSON text as a value (text that is not JSON shows as a string).
pub(crate) fn json(text: Option<String>) -> Option<serde_json::Value> {
    text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
}

/// A stored tool call row as shown, with its time in microseconds (to sort by).
#[allow(clippy::too_many_arguments, reason = "one argument per column")]
pub(crate) fn tool_call_entry(
    at_us: i64,
    tool: String,
    tool_call_id: String,
    plugin: Option<String>,
    version: Option<String>,
    door: String,
    outcome: String,
    duration_us: i64,
    arguments: Option<String>,
    result: Option<String>,
    error: Option<String>,
) -> (i64, CallEntry) {
    let at_ms = at_us.div_euclid(1000);
    (
        at_us,
        CallEntry::ToolCall {
            at: rfc3339(at_ms),
            at_ms,
            tool,
            tool_call_id,
            plugin,
            version,
            door,
            outcome,
            duration_ms: duration_us as f64 / 1000.0,
            arguments: json(arguments),
            result: json(result),
            error,
        },
    )
}

/// A stored webhook row as shown, with its time in microseconds (to sort by).
pub(crate) fn webhook_entry(
    at_us: i64,
    event: String,
    http_status: i64,
    duration_us: i64,
    detail: Option<String>,
) -> (i64, CallEntry) {
    let at_ms = at_us.div_euclid(1000);
    (
        at_us,
        CallEntry::Webhook {
            at: rfc3339(at_ms),
            at_ms,
            event,
            http_status,
            duration_ms: duration_us as f64 / 1000.0,
            detail: json(detail),
        },
    )
}
