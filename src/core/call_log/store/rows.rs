//! Rows as the tables take them ([`Batch`], made from records) and as they
//! come back (summaries and entries, made from columns): shared by both
//! databases.

use std::collections::BTreeMap;

use crate::core::call_log::query::{CallEntry, CallSummary, rfc3339};
use crate::core::call_log::record::{Pending, ToolCallText, WebhookRecord, epoch_ms, epoch_us, micros};

/// What one write adds: the records taken from the queue (tool calls are
/// stored from them as they are, their text borrowed) and the rows made
/// from them. Its buffers are kept from one write to the next: the writer
/// takes thousands of records a second, and fresh memory for each batch
/// would cost every one of them.
#[derive(Default)]
pub(crate) struct Batch {
    /// The records, as taken from the queue and shaped for storing.
    pub records: Pending,
    pub webhooks: Vec<WebhookRow>,
    /// One per call id, in id order (so concurrent writers lock rows in
    /// the same order).
    pub calls: BTreeMap<String, CallRow>,
}

/// A tool call as stored, borrowed from its batch.
pub(crate) struct ToolCallRow<'a> {
    /// Microseconds since the epoch.
    pub at: i64,
    pub door: &'static str,
    pub outcome: &'static str,
    pub duration_us: i64,
    pub text: ToolCallText<'a>,
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
    /// Makes the rows of the records taken: each call's summary, and the
    /// webhooks' rows (their text moved, not copied).
    pub fn prepare(&mut self) {
        self.webhooks.clear();
        self.calls.clear();
        let records = &mut self.records;
        for record in &records.tool_calls {
            let text = records.text_of(record);
            let call = summary_of(&mut self.calls, text.call_id, record.at);
            same_or_later(&mut call.customer_number, text.customer_number);
            same_or_later(&mut call.phone_number, text.phone_number);
            call.tool_calls += 1;
            call.failed += i64::from(record.outcome.failed());
        }
        // After the tool calls: a webhook's numbers and status are the later word.
        for webhook in records.webhooks.drain(..) {
            let WebhookRecord {
                at,
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
            } = webhook;
            let call = summary_of(&mut self.calls, &call_id, at);
            later(&mut call.customer_number, customer_number);
            later(&mut call.phone_number, phone_number);
            later(&mut call.status, status);
            later(&mut call.ended_reason, ended_reason);
            call.duration_seconds = duration_seconds.or(call.duration_seconds);
            self.webhooks.push(WebhookRow {
                at: epoch_us(at),
                call_id,
                event,
                http_status: i64::from(http_status),
                duration_us: micros(duration),
                detail,
            });
        }
    }

    /// The tool calls' rows.
    pub fn tool_calls(&self) -> impl ExactSizeIterator<Item = ToolCallRow<'_>> {
        self.records.tool_calls.iter().map(|record| ToolCallRow {
            at: epoch_us(record.at),
            door: record.door,
            outcome: record.outcome.as_str(),
            duration_us: micros(record.duration),
            text: self.records.text_of(record),
        })
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.records.tool_calls.len() + self.webhooks.len()
    }
}

/// The summary of `call_id` in `calls`, made when missing; its first and
/// last times widened to `at` (summaries are in milliseconds).
fn summary_of<'c>(
    calls: &'c mut BTreeMap<String, CallRow>,
    call_id: &str,
    at: std::time::SystemTime,
) -> &'c mut CallRow {
    let at = epoch_ms(at);
    if !calls.contains_key(call_id) {
        calls.insert(call_id.to_owned(), CallRow::new(at));
    }
    let call = calls.get_mut(call_id).expect("just inserted");
    call.first_at = call.first_at.min(at);
    call.last_at = call.last_at.max(at);
    call
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
