//! The plain types every layer shares: what a call is, what a tool is, how a
//! call can fail, which events there are, and the limits of one call.
//!
//! This module imports nothing else of the crate, so the doors, the core, the
//! plugin set and the sandbox can all speak in these terms without depending
//! on one another.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Where a tool call comes from, as the plugin sees it.
///
/// ```
/// let context = switchboard::CallContext {
///     call_id: "call-1".into(),
///     call_type: "inbound_phone_call".into(),
///     tool_call_id: "tc-1".into(),
///     customer_number: Some("+14155550100".into()),
///     ..Default::default()
/// };
/// assert_eq!(context.phone_number, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallContext {
    /// The platform's call id.
    pub call_id: String,
    /// `inbound_phone_call`, `outbound_phone_call`, `web_call`, ...
    pub call_type: String,
    /// The id of this tool call.
    pub tool_call_id: String,
    /// The caller's number, when known.
    pub customer_number: Option<String>,
    /// The platform number, when known.
    pub phone_number: Option<String>,
    /// The assistant's metadata as JSON text, when sent.
    pub assistant_metadata: Option<String>,
}

/// One tool a plugin offers, as the LLM will see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ToolDefinition {
    /// Function name.
    pub name: String,
    /// What it does, for the LLM.
    pub description: String,
    /// JSON Schema of the arguments object, as JSON text.
    pub parameters_schema: String,
    /// Answered at once with `async_response`, run in the background (set by the manifest).
    pub is_async: bool,
    /// What the platform hears at once for an async tool.
    pub async_response: Option<String>,
}

/// Longest tool name the platform accepts.
pub(crate) const MAX_TOOL_NAME: usize = 64;

/// Checks a tool name against the platform's rule, the same for every tool
/// whoever names it (a component listing its tools, a manifest declaring a
/// command plugin's): a letter or `_` first, then letters, digits, `_` and
/// `-`, at most [`MAX_TOOL_NAME`] in all. The error quotes the name escaped
/// and shortened, so it is safe to log and show.
pub(crate) fn check_tool_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= MAX_TOOL_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        return Ok(());
    }
    let count = name.chars().count();
    let shown = match count > MAX_TOOL_NAME {
        true => format!("{:?}… ({count} characters)", name.chars().take(MAX_TOOL_NAME).collect::<String>()),
        false => format!("{name:?}"),
    };
    Err(format!(
        "tool name {shown} must start with a letter or `_` and use only letters, digits, `_` and `-` (at most {MAX_TOOL_NAME})"
    ))
}

/// Why a tool call produced no result. Messages are worded for the LLM.
///
/// ```
/// use switchboard::ToolFailure;
/// let failure = ToolFailure::InvalidArguments("\"date\" is a required property".into());
/// assert_eq!(failure.to_string(), "invalid arguments: \"date\" is a required property");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolFailure {
    /// The arguments do not fit the tool's schema, or the plugin rejected them.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// No loaded plugin offers the tool, or the plugin found nothing.
    #[error("{0}")]
    NotFound(String),
    /// The plugin reported an error.
    #[error("{0}")]
    Failed(String),
    /// The plugin crashed (a WebAssembly trap).
    #[error("the tool crashed: {0}")]
    Crashed(String),
    /// The plugin ran past its memory limit.
    #[error("the tool ran out of memory (limit {limit_mib} MiB)")]
    OutOfMemory {
        /// The limit, in MiB.
        limit_mib: usize,
    },
    /// The plugin did not finish within its time limit.
    #[error("the tool did not answer within {0:?}")]
    TimedOut(Duration),
    /// The plugin burnt all the fuel its manifest gives a call.
    #[error("the tool used up its fuel ({fuel} units)")]
    OutOfFuel {
        /// The limit.
        fuel: u64,
    },
    /// The plugin answered with something that is not a valid result.
    #[error("the tool returned an invalid result: {0}")]
    BadOutput(String),
    /// The plugin's result (or its error message) is larger than it may return.
    #[error("the tool's result is larger than the limit of {limit} bytes")]
    ResultTooLarge {
        /// The limit, in bytes ([`Limits::max_result_bytes`]).
        limit: usize,
    },
    /// The plugin made the host hold more on its behalf than one call may
    /// (resources, HTTP header fields or request bodies at once).
    #[error("the tool went over a host limit: {0}")]
    HostLimit(String),
    /// No place to run the call came free within its time: the plugin's
    /// `max_concurrent_calls` were all running, or the instance pool was full.
    #[error("{0}")]
    Busy(String),
}

/// The platform's webhook events, as `message.type` and `X-Webhook-Event` name them.
///
/// ```
/// use switchboard::EventKind;
/// let kind: EventKind = "status-update".parse().unwrap();
/// assert_eq!(kind, EventKind::StatusUpdate);
/// assert_eq!(kind.as_str(), "status-update");
/// assert!("call-started".parse::<EventKind>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// The platform asks which assistant should answer an inbound call.
    AssistantRequest,
    /// The LLM calls one or more tools.
    ToolCalls,
    /// The call changed status.
    StatusUpdate,
    /// The call ended; summary and analysis.
    EndOfCallReport,
}

impl EventKind {
    /// Every event, in the order the platform's documentation lists them.
    pub const ALL: [EventKind; 4] =
        [EventKind::AssistantRequest, EventKind::ToolCalls, EventKind::StatusUpdate, EventKind::EndOfCallReport];

    /// The name as the platform spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AssistantRequest => "assistant-request",
            EventKind::ToolCalls => "tool-calls",
            EventKind::StatusUpdate => "status-update",
            EventKind::EndOfCallReport => "end-of-call-report",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the four events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}; expected one of: assistant-request, tool-calls, status-update, end-of-call-report")]
pub struct UnknownEvent(pub String);

impl FromStr for EventKind {
    type Err = UnknownEvent;

    fn from_str(name: &str) -> Result<Self, UnknownEvent> {
        EventKind::ALL.into_iter().find(|kind| kind.as_str() == name).ok_or_else(|| UnknownEvent(name.to_owned()))
    }
}

impl serde::Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Resource limits for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time the call may take, guest and host time together.
    pub timeout: Duration,
    /// Linear memory the whole instance may use, summed over its memories.
    pub memory_bytes: usize,
    /// Bytes of stdout/stderr kept from a command plugin.
    pub output_bytes: usize,
    /// Fuel (about one unit per WebAssembly instruction) a call may burn;
    /// `None` for no cap. Setting it in [`Settings::plugin_defaults`](crate::Settings)
    /// turns fuel metering on.
    pub fuel: Option<u64>,
    /// Largest result (or error message) a call may return, in bytes; a
    /// larger one fails the call. Default 1 MiB.
    pub max_result_bytes: usize,
    /// Most calls of one plugin running at once (a limit of the plugin, not
    /// of one call); more wait for a place within their time. `None`: as
    /// many as fill a quarter of the instance pool, so that no one plugin
    /// can take it all.
    pub max_concurrent_calls: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(9),
            memory_bytes: 128 << 20,
            output_bytes: 1 << 20,
            fuel: None,
            max_result_bytes: 1 << 20,
            max_concurrent_calls: None,
        }
    }
}

/// Whether `text` is JSON that every JSON reader takes. The webhook door
/// checks with it arguments that the raw reader took as an object, and so
/// does the schema check of a tool that takes any object. The raw reader
/// checks the grammar without reading values, so an unpaired surrogate
/// escape (`"\udfaa"`) or a number no double holds (`2e308`) gets through
/// it; the plugin's own reader, or the tool's schema check, would then
/// refuse the arguments. This reads every string and number, keeping none
/// (no allocation).
pub(crate) fn strictly_json(text: &str) -> Result<(), serde_json::Error> {
    serde_json::from_str::<Strict>(text).map(|_| ())
}

/// Any JSON value, read whole and kept not at all: see [`strictly_json`].
struct Strict;

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Strict)
    }
}

impl<'de> serde::de::Visitor<'de> for Strict {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<Strict, A::Error> {
        while items.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut entries: A) -> Result<Strict, A::Error> {
        while entries.next_entry::<Strict, Strict>()?.is_some() {}
        Ok(Strict)
    }
}
