//! Reading the call log: which calls to list ([`CallQuery`]), and the shapes
//! the API, the dashboard and `switchboard calls` show ([`CallSummary`],
//! [`CallStory`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

/// Which calls to list, newest first. Every filter is optional.
///
/// ```
/// let query = switchboard::CallQuery { number: Some("+15551234567".into()), ..Default::default() };
/// assert_eq!(query.limit, 50);
/// ```
#[derive(Debug, Clone)]
pub struct CallQuery {
    /// Calls from or to this number (exactly as the platform sent it).
    pub number: Option<String>,
    /// Calls with a tool call of this tool.
    pub tool: Option<String>,
    /// Calls with a tool call of this outcome: `ok`, `error`, `timeout`,
    /// `invalid_arguments`, `duplicate`, `async`, or `failed` (any of error,
    /// timeout, invalid_arguments).
    pub outcome: Option<String>,
    /// Calls active at or after this time.
    pub from: Option<SystemTime>,
    /// Calls that began at or before this time.
    pub to: Option<SystemTime>,
    /// Most calls on a page (at most 500).
    pub limit: usize,
    /// The previous page's [`CallPage::next_before`].
    pub before: Option<String>,
}

impl Default for CallQuery {
    fn default() -> Self {
        Self { number: None, tool: None, outcome: None, from: None, to: None, limit: 50, before: None }
    }
}

/// Why [`CallLogReader::calls`](crate::CallLogReader::calls) gave no page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallsError {
    /// The query cannot be answered as written (an unknown outcome, a
    /// cursor that is not one); the message says what to send instead.
    #[error("{0}")]
    BadQuery(String),
    /// The database cannot be read now.
    #[error("{0}")]
    Unavailable(String),
}

/// Most calls one page holds.
pub(crate) const MAX_PAGE: usize = 500;

/// One page of calls.
#[derive(Debug, Clone, Serialize)]
pub struct CallPage {
    /// The calls, the most recently active first.
    pub calls: Vec<CallSummary>,
    /// Pass as [`CallQuery::before`] for the next page; `None` on the last.
    pub next_before: Option<String>,
}

/// One phone call (or the calls of one MCP or dashboard door), summed up.
#[derive(Debug, Clone, Serialize)]
pub struct CallSummary {
    /// The platform's call id (`mcp` for MCP clients' calls, `dashboard`
    /// for the dashboard's tries).
    pub call_id: String,
    /// When the first record of the call was made (RFC 3339, UTC).
    pub first_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub first_at_ms: i64,
    /// When the latest record was made.
    pub last_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub last_at_ms: i64,
    /// The caller's number.
    pub customer_number: Option<String>,
    /// The number called.
    pub phone_number: Option<String>,
    /// Tool calls logged.
    pub tool_calls: i64,
    /// Of them, how many failed (error, timeout, invalid arguments).
    pub failed: i64,
    /// The latest status the platform reported.
    pub status: Option<String>,
    /// Why the call ended, once it has.
    pub ended_reason: Option<String>,
    /// Its length, from the end-of-call report.
    pub duration_seconds: Option<f64>,
}

/// Everything logged about one call, in time order.
#[derive(Debug, Clone, Serialize)]
pub struct CallStory {
    /// The call, summed up.
    pub call: CallSummary,
    /// Its webhooks and tool calls, oldest first.
    pub entries: Vec<CallEntry>,
}

/// One line of a [`CallStory`].
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallEntry {
    /// A webhook the platform sent.
    Webhook {
        /// When it arrived (RFC 3339, UTC).
        at: String,
        /// The same, in milliseconds since the Unix epoch.
        at_ms: i64,
        /// `tool-calls`, `assistant-request`, `status-update` or `end-of-call-report`.
        event: String,
        /// The status of Switchboard's answer.
        http_status: i64,
        /// From arrival to answer.
        duration_ms: f64,
        /// What else it said: a status update's status and error, the
        /// report's fields, the source of an assistant.
        detail: Option<Value>,
    },
    /// A tool call.
    ToolCall {
        /// When it started (RFC 3339, UTC).
        at: String,
        /// The same, in milliseconds since the Unix epoch.
        at_ms: i64,
        /// The tool asked for.
        tool: String,
        /// The id of this tool call.
        tool_call_id: String,
        /// The plugin that ran it.
        plugin: Option<String>,
        /// The plugin's version (first 12 hex digits of its SHA-256).
        version: Option<String>,
        /// `webhook`, `mcp`, `embedded` or `dashboard`.
        door: String,
        /// `ok`, `error`, `timeout`, `invalid_arguments`, `duplicate` or `async`.
        outcome: String,
        /// From start to answer.
        duration_ms: f64,
        /// The arguments (`None` with `capture_arguments` off).
        arguments: Option<Value>,
        /// The result (`None` on failure, or with `capture_results` off).
        result: Option<Value>,
        /// The message the caller got on failure.
        error: Option<String>,
    },
}

/// `ms` since the Unix epoch as RFC 3339 (UTC, milliseconds).
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A time as a query gives it: RFC 3339, or milliseconds since the epoch.
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(UNIX_EPOCH + Duration::from_millis(ms));
    }
    let time = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
        format!("{text:?} is not a time: give RFC 3339 (2026-12-03T10:00:00Z) or milliseconds since the epoch ({e})")
    })?;
    let ms = u64::try_from(time.timestamp_millis()).map_err(|_| format!("{text:?} is before 1970"))?;
    Ok(UNIX_EPOCH + Duration::from_millis(ms))
}

/// The page cursor after `call`: its last activity and id.
pub(crate) fn cursor_after(call: &CallSummary) -> String {
    format!("{}:{}", call.last_at_ms, call.call_id)
}

/// A cursor read back: `(last_at_ms, call_id)`.
pub(crate) fn parse_cursor(cursor: &str) -> Result<(i64, String), String> {
    cursor
        .split_once(':')
        .and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_owned())))
        .ok_or_else(|| format!("{cursor:?} is not a page cursor: pass next_before from the previous page"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc3339_or_milliseconds_and_show_as_rfc3339() {
        let t = parse_time("2026-12-03T10:00:00.250Z").unwrap();
        assert_eq!(t, parse_time("1796292000250").unwrap());
        assert_eq!(rfc3339(1796292000250), "2026-12-03T10:00:00.250Z");
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn a_cursor_round_trips_even_with_a_colon_in_the_id() {
        let (ms, id) = parse_cursor("1796292000250:call:7").unwrap();
        assert_eq!((ms, id.as_str()), (1796292000250, "call:7"));
        assert!(parse_cursor("x").is_err());
    }
}
