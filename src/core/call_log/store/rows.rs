//! Rows as the tables take them ([`Batch`], made from records) and as they
//! come back (summaries and entries, made from columns): shared by both
//! databases.

use std::collections::BTreeMap;

use crate::core::call_log::query::{CallEntry, CallSummary, rfc3339};
use crate::core::call_log::record::{Record, ToolCallRecord, ToolCallText, WebhookRecord, epoch_ms, epoch_us, micros};

/// What one write adds: rows as the tables take them. Made by moving the
/// records' text, not copying it: the writer takes thousands of records a
/// second, and each copy would cost every one of them.
#[derive(Default)]
pub(crate) struct Batch {
    pub tool_calls: Vec<ToolCallRow>,
    pub webhooks: Vec<WebhookRow>,
    /// One per call id, in id order (so concurrent writers lock rows in
    /// the same order).
    pub calls: BTreeMap<String, CallRow>,
}

/// A tool call as stored: its record with its values redacted, captured
/// and cut as configured.
pub(crate) struct ToolCallRow {
    /// Microseconds since the epoch.
    pub at: i64,
    pub record: ToolCallRecord,
}

impl ToolCallRow {
    /// The ids, tool, result and error.
    pub fn text(&self) -> ToolCallText<'_> {
        self.record.text()
    }

    /// The stored plugin name.
    pub fn plugin_name(&self) -> Option<&str> {
        self.record.plugin.as_deref().map(|p| p.name.as_str())
    }

    /// The stored plugin version.
    pub fn version(&self) -> Option<&str> {
        self.record.plugin.as_deref().map(|p| p.version.as_str())
    }

    pub fn outcome(&self) -> &'static str {
        self.record.outcome.as_str()
    }

    pub fn duration_us(&self) -> i64 {
        micros(self.record.duration)
    }

    pub fn arguments(&self) -> Option<&str> {
        self.record.arguments.as_deref()
    }
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

impl CallRow {
    fn new(at: i64) -> Self {
        CallRow {
            first_at: at,
            last_at: at,
            customer_number: None,
            phone_number: None,
            tool_calls: 0,
            failed: 0,
            status: None,
            ended_reason: None,
            duration_seconds: None,
        }
    }
}

/// `value` when it is there, else what `kept` held: a later record's
/// number or status replaces an earlier one's.
fn later(kept: &mut Option<String>, value: Option<String>) {
    if value.is_some() {
        *kept = value;
    }
}

/// [`later`] for borrowed text: copied only when it differs (a call's
/// tool calls all carry the same numbers).
fn same_or_later(kept: &mut Option<String>, value: Option<&str>) {
    if let Some(value) = value
        && kept.as_deref() != Some(value)
    {
        *kept = Some(value.to_owned());
    }
}

impl Batch {
    /// Makes this the rows of `records`, in order, taking their text (the
    /// buffers of the last batch are kept: a writer at thousands of rows a
    /// second would otherwise take fresh memory for each); `shape` turns
    /// each tool call into what is stored.
    pub fn fill(
        &mut self,
        records: impl Iterator<Item = Record>,
        mut shape: impl FnMut(ToolCallRecord) -> ToolCallRow,
    ) {
        self.tool_calls.clear();
        self.webhooks.clear();
        self.calls.clear();
        for record in records {
            let when = match &record {
                Record::Webhook(w) => w.at,
                Record::ToolCall(t) => t.at,
            };
            // Rows in microseconds, summaries in milliseconds.
            let at = epoch_ms(when);
            if !self.calls.contains_key(record.call_id()) {
                self.calls.insert(record.call_id().to_owned(), CallRow::new(at));
            }
            let call = self.calls.get_mut(record.call_id()).expect("just inserted");
            call.first_at = call.first_at.min(at);
            call.last_at = call.last_at.max(at);
            match record {
                Record::Webhook(w) => {
                    let WebhookRecord {
                        at: _,
                        event,
                        call_id,
                        customer_number,
                        phone_number,
                        http_status,
                        duration,
                        status,
                        ended_reason,
                        duration_seconds,
                        detail,
                    } = w;
                    later(&mut call.customer_number, customer_number);
                    later(&mut call.phone_number, phone_number);
                    later(&mut call.status, status);
                    later(&mut call.ended_reason, ended_reason);
                    call.duration_seconds = duration_seconds.or(call.duration_seconds);
                    self.webhooks.push(WebhookRow {
                        at: epoch_us(when),
                        call_id,
                        event,
                        http_status: i64::from(http_status),
                        duration_us: micros(duration),
                        detail,
                    });
                }
                Record::ToolCall(t) => {
                    let text = t.text();
                    same_or_later(&mut call.customer_number, text.customer_number);
                    same_or_later(&mut call.phone_number, text.phone_number);
                    call.tool_calls += 1;
                    call.failed += i64::from(t.outcome.failed());
                    self.tool_calls.push(shape(t));
                }
            }
        }
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
