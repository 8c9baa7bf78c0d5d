//! What the call log keeps: a [`WebhookRecord`] per webhook and a
//! [`ToolCallRecord`] per tool call,
//! built on the request path (cheap: text copied into a reused buffer, no
//! I/O) and written by the writer task off it.

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

/// A tool call as the request path hands it to the log: borrowed, copied
/// into the queue's [`Pending`] buffer in one piece.
#[derive(Clone, Copy)]
pub(crate) struct NewToolCall<'a> {
    /// When it started.
    pub at: SystemTime,
    /// The plugin version that ran it; `None` when none did.
    pub plugin: Option<&'a Arc<Plugin>>,
    /// The door it came in by.
    pub door: &'static str,
    /// How it ended.
    pub outcome: Outcome,
    /// From its start to its answer.
    pub duration: Duration,
    /// The text fields (the plugin's name and version are taken from `plugin`).
    pub text: ToolCallText<'a>,
}

/// One tool call, queued or in a batch. Its text is kept in the buffer of
/// the [`Pending`] it was pushed to, [`Pending::text_of`]: a record is made
/// on every call and read on the writer's thread, and text appended to a
/// buffer that is reused batch after batch costs neither side an
/// allocation (nor the writer a free of memory another thread allocated).
pub(crate) struct ToolCallRecord {
    /// When it started.
    pub at: SystemTime,
    /// The plugin version that ran it, kept only when it has secrets to
    /// redact from what is stored.
    pub secrets: Option<Arc<Plugin>>,
    /// The door it came in by.
    pub door: &'static str,
    /// How it ended.
    pub outcome: Outcome,
    /// From its start to its answer.
    pub duration: Duration,
    /// Where each [`Field`] is in the buffer.
    spans: [Span; FIELDS],
}

/// A tool call's text fields, borrowed.
#[derive(Clone, Copy, Default)]
pub(crate) struct ToolCallText<'a> {
    /// The platform's call id (`mcp` for MCP calls, `dashboard` for tries).
    pub call_id: &'a str,
    /// The id of this tool call.
    pub tool_call_id: &'a str,
    /// The tool asked for.
    pub tool: &'a str,
    /// The plugin that ran it, when one did.
    pub plugin: Option<&'a str>,
    /// That plugin's version.
    pub version: Option<&'a str>,
    /// The caller's number, when known.
    pub customer_number: Option<&'a str>,
    /// The number called, when known.
    pub phone_number: Option<&'a str>,
    /// The arguments as sent (JSON text).
    pub arguments: Option<&'a str>,
    /// The result (JSON text) on success.
    pub result: Option<&'a str>,
    /// The message the caller got on failure.
    pub error: Option<&'a str>,
}

/// The text fields a record may have replaced before it is stored.
#[derive(Clone, Copy)]
pub(crate) enum Field {
    Arguments = 7,
    Result = 8,
    Error = 9,
}

const FIELDS: usize = 10;

/// Where one field is in a [`Pending`] buffer; `start == ABSENT` when the
/// field is absent.
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

const ABSENT: u32 = u32::MAX;

/// Records waiting for the writer (or being written): tool calls with their
/// text in one buffer, and webhooks. Emptied and reused, batch after batch.
#[derive(Default)]
pub(crate) struct Pending {
    text: String,
    /// Tool calls, in the order they ended.
    pub tool_calls: Vec<ToolCallRecord>,
    /// Webhooks, in the order they were answered.
    pub webhooks: Vec<WebhookRecord>,
}

impl Pending {
    /// Adds a tool call, its text copied in.
    pub fn push_tool_call(&mut self, call: NewToolCall<'_>) {
        let t = call.text;
        let plugin = call.plugin.map(|p| &**p);
        let fields = [
            Some(t.call_id),
            Some(t.tool_call_id),
            Some(t.tool),
            plugin.map(|p| p.name.as_str()),
            plugin.map(|p| p.version.as_str()),
            t.customer_number,
            t.phone_number,
            t.arguments,
            t.result,
            t.error,
        ];
        let spans = fields.map(|field| self.append(field));
        self.tool_calls.push(ToolCallRecord {
            at: call.at,
            secrets: call.plugin.filter(|p| p.has_secrets()).cloned(),
            door: call.door,
            outcome: call.outcome,
            duration: call.duration,
            spans,
        });
    }

    fn append(&mut self, field: Option<&str>) -> Span {
        match field {
            Some(text) => {
                let start = self.text.len();
                self.text.push_str(text);
                Span { start: start as u32, end: self.text.len() as u32 }
            }
            None => Span { start: ABSENT, end: ABSENT },
        }
    }

    fn get(&self, span: Span) -> Option<&str> {
        (span.start != ABSENT).then(|| &self.text[span.start as usize..span.end as usize])
    }

    /// The text fields of `record` (one of this buffer's).
    pub fn text_of(&self, record: &ToolCallRecord) -> ToolCallText<'_> {
        let [call_id, tool_call_id, tool, plugin, version, customer, phone, arguments, result, error] =
            record.spans.map(|span| self.get(span));
        ToolCallText {
            call_id: call_id.unwrap_or_default(),
            tool_call_id: tool_call_id.unwrap_or_default(),
            tool: tool.unwrap_or_default(),
            plugin,
            version,
            customer_number: customer,
            phone_number: phone,
            arguments,
            result,
            error,
        }
    }

    /// Replaces a field of tool call `index` (the old text stays in the
    /// buffer until it is emptied).
    pub fn replace(&mut self, index: usize, field: Field, value: Option<&str>) {
        let span = self.append(value);
        self.tool_calls[index].spans[field as usize] = span;
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.tool_calls.len() + self.webhooks.len()
    }

    /// Bytes of tool-call text held.
    pub fn text_bytes(&self) -> usize {
        self.text.len()
    }

    /// Empties it, keeping its memory.
    pub fn clear(&mut self) {
        self.text.clear();
        self.tool_calls.clear();
        self.webhooks.clear();
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
    fn a_pending_buffer_gives_back_each_field_present_absent_or_replaced() {
        let mut pending = Pending::default();
        let text = ToolCallText {
            call_id: "call-1",
            tool: "echo",
            phone_number: Some("+3185"),
            arguments: Some("{}"),
            result: Some("{\"é\":1}"),
            ..ToolCallText::default()
        };
        let call = NewToolCall {
            at: UNIX_EPOCH,
            plugin: None,
            door: "webhook",
            outcome: Outcome::Ok,
            duration: Duration::ZERO,
            text,
        };
        pending.push_tool_call(call);
        pending.push_tool_call(NewToolCall { text: ToolCallText { call_id: "call-2", ..text }, ..call });
        pending.replace(0, Field::Result, None);
        pending.replace(0, Field::Error, Some("boom"));
        let first = pending.text_of(&pending.tool_calls[0]);
        assert_eq!((first.call_id, first.tool_call_id, first.tool), ("call-1", "", "echo"));
        assert_eq!((first.plugin, first.customer_number, first.phone_number), (None, None, Some("+3185")));
        assert_eq!((first.arguments, first.result, first.error), (Some("{}"), None, Some("boom")));
        let second = pending.text_of(&pending.tool_calls[1]);
        assert_eq!((second.call_id, second.result, second.error), ("call-2", Some("{\"é\":1}"), None));
        assert_eq!(pending.len(), 2);
        pending.clear();
        assert_eq!((pending.len(), pending.text_bytes()), (0, 0));
    }
}
