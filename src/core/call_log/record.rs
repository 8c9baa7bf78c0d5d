//! What the call log keeps: one [`Record`] per webhook and per tool call,
//! built on the request path (cheap: owned strings, no I/O) and written by
//! the writer task off it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::plugins::Plugin;

/// How a tool call ended, as the log and its filters name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Outcome {
    /// The plugin answered.
    Ok,
    /// The plugin failed, crashed or broke a limit; or the tool is unknown.
    Error,
    /// The call did not answer by its deadline.
    Timeout,
    /// The arguments were not JSON or broke the tool's schema; nothing ran.
    InvalidArguments,
    /// Answered from an earlier call with the same id; the plugin did not run.
    Duplicate,
    /// An async tool: answered at once, its plugin started in the background.
    Async,
}

impl Outcome {
    /// Every outcome, in the order filters list them.
    pub const ALL: [Outcome; 6] =
        [Outcome::Ok, Outcome::Error, Outcome::Timeout, Outcome::InvalidArguments, Outcome::Duplicate, Outcome::Async];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::InvalidArguments => "invalid_arguments",
            Outcome::Duplicate => "duplicate",
            Outcome::Async => "async",
        }
    }

    /// Whether the call failed (what `failed` counts and `--errors` shows).
    pub fn failed(self) -> bool {
        matches!(self, Outcome::Error | Outcome::Timeout | Outcome::InvalidArguments)
    }
}

/// One webhook the platform sent, as answered.
#[derive(Debug, Clone)]
pub(crate) struct WebhookRecord {
    /// When it arrived.
    pub at: SystemTime,
    /// The event's name (`tool-calls`, `status-update`, ...).
    pub event: &'static str,
    /// The platform's call id.
    pub call_id: String,
    /// The caller's number, when the platform sent it.
    pub customer_number: Option<String>,
    /// The number called (or calling out), when the platform sent it.
    pub phone_number: Option<String>,
    /// The HTTP status of the answer.
    pub http_status: u16,
    /// From arrival to the answer.
    pub duration: Duration,
    /// The call's new status (status-update, end-of-call-report).
    pub status: Option<String>,
    /// Why the call ended, once it has.
    pub ended_reason: Option<String>,
    /// The call's length (end-of-call-report).
    pub duration_seconds: Option<f64>,
    /// What else the event said, as a JSON object (the report's fields, a
    /// status update's error).
    pub detail: Option<String>,
}

/// One tool call, as answered. Its text (ids, tool, numbers, result,
/// error) is kept in one allocation, [`ToolCallText::pack`]: a record is
/// made on every call and freed on the writer's thread, where each
/// allocation costs more than on the request's own.
#[derive(Clone)]
pub(crate) struct ToolCallRecord {
    /// When it started.
    pub at: SystemTime,
    /// The plugin version that ran it (its secrets are redacted from what
    /// is stored); `None` when none did.
    pub plugin: Option<Arc<Plugin>>,
    /// The door it came in by.
    pub door: &'static str,
    /// The arguments as sent (JSON text), shared with the call.
    pub arguments: Option<Arc<str>>,
    /// How it ended.
    pub outcome: Outcome,
    /// From its start to its answer.
    pub duration: Duration,
    /// The text fields.
    pub text: PackedText,
}

/// A tool call's text fields, borrowed: what [`ToolCallText::pack`] keeps.
#[derive(Clone, Copy, Default)]
pub(crate) struct ToolCallText<'a> {
    /// The platform's call id (`mcp` for MCP calls, `dashboard` for tries).
    pub call_id: &'a str,
    /// The id of this tool call.
    pub tool_call_id: &'a str,
    /// The tool asked for.
    pub tool: &'a str,
    /// The caller's number, when known.
    pub customer_number: Option<&'a str>,
    /// The number called, when known.
    pub phone_number: Option<&'a str>,
    /// The result (JSON text) on success.
    pub result: Option<&'a str>,
    /// The message the caller got on failure.
    pub error: Option<&'a str>,
}

/// [`ToolCallText`]'s fields in one string.
#[derive(Clone, Default)]
pub(crate) struct PackedText {
    text: String,
    /// Where each field ends in `text` (each starts where the one before ends).
    ends: [usize; FIELDS],
    /// Bit `i` set: field `i` is present (an absent one is empty).
    present: u8,
}

const FIELDS: usize = 7;

impl<'a> ToolCallText<'a> {
    /// The fields copied into one string.
    pub fn pack(&self) -> PackedText {
        let fields = [
            Some(self.call_id),
            Some(self.tool_call_id),
            Some(self.tool),
            self.customer_number,
            self.phone_number,
            self.result,
            self.error,
        ];
        let mut packed = PackedText {
            text: String::with_capacity(fields.iter().flatten().map(|f| f.len()).sum()),
            ..PackedText::default()
        };
        for (i, field) in fields.into_iter().enumerate() {
            if let Some(field) = field {
                packed.text.push_str(field);
                packed.present |= 1 << i;
            }
            packed.ends[i] = packed.text.len();
        }
        packed
    }
}

impl PackedText {
    fn get(&self, i: usize) -> Option<&str> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        (self.present & (1 << i) != 0).then(|| &self.text[start..self.ends[i]])
    }

    /// The fields, borrowed.
    pub fn fields(&self) -> ToolCallText<'_> {
        ToolCallText {
            call_id: self.get(0).unwrap_or_default(),
            tool_call_id: self.get(1).unwrap_or_default(),
            tool: self.get(2).unwrap_or_default(),
            customer_number: self.get(3),
            phone_number: self.get(4),
            result: self.get(5),
            error: self.get(6),
        }
    }
}

impl ToolCallRecord {
    /// The record's text fields.
    pub fn text(&self) -> ToolCallText<'_> {
        self.text.fields()
    }
}

/// One entry for the writer.
#[derive(Clone)]
pub(crate) enum Record {
    /// A webhook.
    Webhook(WebhookRecord),
    /// A tool call.
    ToolCall(ToolCallRecord),
}

impl Record {
    /// The platform's call id this record belongs to.
    pub fn call_id(&self) -> &str {
        match self {
            Record::Webhook(w) => &w.call_id,
            Record::ToolCall(t) => t.text().call_id,
        }
    }
}

/// Milliseconds since the Unix epoch (what the database stores).
pub(crate) fn epoch_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Microseconds since the Unix epoch: when a row was made (fine enough to
/// keep a call's webhooks and tool calls in their order).
pub(crate) fn epoch_us(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Microseconds, for the stored durations.
pub(crate) fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_text_gives_back_each_field_present_or_absent() {
        let fields = ToolCallText {
            call_id: "call-1",
            tool_call_id: "",
            tool: "echo",
            customer_number: None,
            phone_number: Some("+3185"),
            result: Some("{\"é\":1}"),
            error: None,
        };
        let packed = fields.pack();
        let back = packed.fields();
        assert_eq!((back.call_id, back.tool_call_id, back.tool), ("call-1", "", "echo"));
        assert_eq!((back.customer_number, back.phone_number), (None, Some("+3185")));
        assert_eq!((back.result, back.error), (Some("{\"é\":1}"), None));
        assert_eq!(packed.text, "call-1echo+3185{\"é\":1}");
    }
}
