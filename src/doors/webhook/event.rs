//! The platform's webhook envelope, decoded into typed events.
//!
//! Decoding is tolerant where the platform is loose (unknown fields, null phone
//! fields, arguments as an object or as a JSON string, the legacy camelCase
//! names) and precise where a request is wrong: every error names the field.

use serde::Deserialize;
use serde::de::Deserializer;
use serde_json::value::RawValue;

use crate::types::{EventKind, UnknownEvent};

/// One decoded webhook.
#[derive(Debug, Clone)]
pub enum Event {
    /// The platform asks which assistant should answer an inbound call.
    AssistantRequest(AssistantRequest),
    /// The LLM calls one or more tools.
    ToolCalls(ToolCalls),
    /// The call changed status.
    StatusUpdate(StatusUpdate),
    /// The call ended; summary and analysis.
    EndOfCallReport(EndOfCallReport),
}

impl Event {
    /// The event's name as the platform spells it.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::AssistantRequest(_) => EventKind::AssistantRequest,
            Event::ToolCalls(_) => EventKind::ToolCalls,
            Event::StatusUpdate(_) => EventKind::StatusUpdate,
            Event::EndOfCallReport(_) => EventKind::EndOfCallReport,
        }
    }

    /// Fields common to every event.
    pub fn common(&self) -> &Common {
        match self {
            Event::AssistantRequest(e) => &e.common,
            Event::ToolCalls(e) => &e.common,
            Event::StatusUpdate(e) => &e.common,
            Event::EndOfCallReport(e) => &e.common,
        }
    }
}

/// Why a body is not a webhook we understand. Messages are meant for the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON at all.
    #[error("body is not valid JSON: {0}")]
    Json(String),
    /// JSON, but not `{"message": {"type": ...}}`.
    #[error("body is not a webhook envelope: {0}")]
    Envelope(String),
    /// `message.type` is not one of the four events.
    #[error(transparent)]
    UnknownType(#[from] UnknownEvent),
    /// A field of a known event is missing or has the wrong type.
    #[error("invalid {event} event: {detail}")]
    Field {
        /// The event type.
        event: EventKind,
        /// Which field and what is wrong with it.
        detail: String,
    },
}

/// Fields every event carries.
#[derive(Debug, Clone)]
pub struct Common {
    /// ISO-8601 time the platform created the event.
    #[allow(dead_code, reason = "decoded as the spec documents it; read by tests, and by no log or answer yet")]
    pub timestamp: Option<String>,
    /// The phone call this event belongs to.
    pub call: Call,
    /// The platform number; absent or null on web calls.
    pub phone_number: Option<PhoneNumber>,
    /// The caller or callee; absent or null on web calls.
    pub customer: Option<Customer>,
    /// The resolved assistant configuration, including custom `metadata`.
    pub assistant: Option<Box<RawValue>>,
}

impl Common {
    /// The assistant's `metadata` object as JSON text, when present.
    pub fn assistant_metadata(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Assistant<'a> {
            #[serde(borrow, default)]
            metadata: Option<&'a RawValue>,
        }
        let assistant = self.assistant.as_deref()?;
        let parsed: Assistant = serde_json::from_str(assistant.get()).ok()?;
        parsed.metadata.map(|m| m.get().to_owned()).filter(|m| m != "null")
    }

    /// The customer's number, when known.
    pub fn customer_number(&self) -> Option<&str> {
        self.customer.as_ref()?.number.as_deref()
    }

    /// The platform number the call is on, when known.
    pub fn phone_number(&self) -> Option<&str> {
        self.phone_number.as_ref()?.number.as_deref()
    }
}

/// `message.call`.
#[derive(Debug, Clone, Deserialize)]
pub struct Call {
    /// The platform's call id; not necessarily a UUID.
    pub id: String,
    /// `inbound_phone_call`, `outbound_phone_call`, `web_call`, or anything newer.
    #[serde(rename = "type", default)]
    pub call_type: String,
    /// `ringing`, `in-progress`, `ended`, ... (any string is accepted).
    #[serde(default)]
    pub status: Option<String>,
}

/// `message.phone_number`.
#[derive(Debug, Clone, Deserialize)]
pub struct PhoneNumber {
    /// E.164 number, or null on web calls.
    #[serde(default)]
    pub number: Option<String>,
    /// Display name.
    #[allow(dead_code, reason = "decoded as the spec documents it; read by tests, and by no log or answer yet")]
    #[serde(default)]
    pub name: Option<String>,
    /// Platform id of the number.
    #[allow(dead_code, reason = "decoded as the spec documents it; read by tests, and by no log or answer yet")]
    #[serde(default)]
    pub id: Option<String>,
}

/// `message.customer`.
#[derive(Debug, Clone, Deserialize)]
pub struct Customer {
    /// E.164 number, or null on web calls.
    #[serde(default)]
    pub number: Option<String>,
}

/// `assistant-request`: sent before an inbound call is answered.
#[derive(Debug, Clone)]
pub struct AssistantRequest {
    /// Envelope fields.
    pub common: Common,
}

/// `tool-calls`: the LLM invokes tools.
#[derive(Debug, Clone)]
pub struct ToolCalls {
    /// Envelope fields.
    pub common: Common,
    /// The calls, answered in this order.
    pub tool_call_list: Vec<ToolCallItem>,
}

/// One entry of `tool_call_list`.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolCallItem {
    /// Echoed back as `tool_call_id`.
    pub id: String,
    /// The function to call.
    pub function: FunctionCall,
}

/// `tool_call_list[].function`.
#[derive(Debug, Clone, Deserialize)]
pub struct FunctionCall {
    /// The tool name.
    pub name: String,
    /// The arguments object (sent as an object, or as a JSON string).
    #[serde(default)]
    pub arguments: Arguments,
}

/// A tool call's arguments, normalised to the text of a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arguments {
    /// The arguments as JSON object text.
    Json(String),
    /// The arguments could not be used: why (for the LLM), and the JSON
    /// text that was sent (for the call log).
    Invalid {
        /// Why they cannot be used.
        why: String,
        /// The `arguments` value as sent.
        sent: String,
    },
}

impl Default for Arguments {
    fn default() -> Self {
        Arguments::Json("{}".to_owned())
    }
}

impl<'de> Deserialize<'de> for Arguments {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Borrowed from the body (it is always read from a slice): the
        // text is copied once, into the arguments.
        let raw = <&RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        let invalid = |why| Arguments::Invalid { why, sent: text.to_owned() };
        Ok(match text.as_bytes().first() {
            Some(b'{') => match crate::types::strictly_json(text) {
                Ok(()) => Arguments::Json(text.to_owned()),
                Err(e) => invalid(format!("arguments are not valid JSON: {e}")),
            },
            Some(b'n') => Arguments::default(),
            Some(b'"') => {
                let inner: String = serde_json::from_str(text).map_err(serde::de::Error::custom)?;
                match serde_json::from_str::<serde_json::Value>(&inner) {
                    Ok(value) if value.is_object() => Arguments::Json(inner),
                    Ok(_) => invalid("arguments must be a JSON object".to_owned()),
                    Err(e) => invalid(format!("arguments are a string that is not valid JSON: {e}")),
                }
            }
            _ => invalid("arguments must be a JSON object".to_owned()),
        })
    }
}

/// `status-update`: the call's status changed.
#[derive(Debug, Clone)]
pub struct StatusUpdate {
    /// Envelope fields (`call.status` holds the new status).
    pub common: Common,
    /// Set on `ended-with-error`.
    pub error: Option<String>,
    /// Why the call ended, once it has.
    pub end_reason: Option<String>,
}

/// `end-of-call-report`: sent after the call ends.
#[derive(Debug, Clone)]
pub struct EndOfCallReport {
    /// Envelope fields.
    pub common: Common,
    /// Length of the call.
    pub duration_seconds: Option<f64>,
    /// The AI summary.
    #[allow(dead_code, reason = "decoded as the spec documents it; read by tests, and by no log or answer yet")]
    pub summary: Option<String>,
    /// Structured analysis, when an analysis plan is configured.
    #[allow(dead_code, reason = "decoded as the spec documents it; read by tests, and by no log or answer yet")]
    pub analysis: Option<Box<RawValue>>,
    /// Why the call ended.
    pub end_reason: Option<String>,
}

/// Every field any event may carry, read in one pass over the body.
#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    call: Option<Call>,
    #[serde(default, alias = "phoneNumber")]
    phone_number: Option<PhoneNumber>,
    #[serde(default)]
    customer: Option<Customer>,
    #[serde(default)]
    assistant: Option<Box<RawValue>>,
    #[serde(default, alias = "toolCallList")]
    tool_call_list: Option<Vec<ToolCallItem>>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, alias = "endReason")]
    end_reason: Option<String>,
    #[serde(default, alias = "durationSeconds")]
    duration_seconds: Option<f64>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    analysis: Option<Box<RawValue>>,
}

/// Decodes a raw body into an [`Event`].
pub fn decode(body: &[u8]) -> Result<Event, DecodeError> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        message: RawMessage<'a>,
    }
    // The happy path decodes directly; only a body that fails is decoded
    // again with path tracking, which allocates for every field it passes.
    let raw = match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => envelope.message,
        Err(_) => {
            let de = &mut serde_json::Deserializer::from_slice(body);
            return Err(match serde_path_to_error::deserialize::<_, Envelope>(de) {
                Ok(_) => DecodeError::Envelope("the body could not be decoded".to_owned()),
                Err(e) => envelope_error(body, e),
            });
        }
    };
    let event: EventKind = raw.kind.parse()?;
    let missing = |field: &str| DecodeError::Field { event, detail: format!("message: missing field `{field}`") };
    let common = Common {
        timestamp: raw.timestamp,
        call: raw.call.ok_or_else(|| missing("call"))?,
        phone_number: raw.phone_number,
        customer: raw.customer,
        assistant: raw.assistant,
    };
    Ok(match event {
        EventKind::AssistantRequest => Event::AssistantRequest(AssistantRequest { common }),
        EventKind::ToolCalls => Event::ToolCalls(ToolCalls {
            common,
            tool_call_list: raw.tool_call_list.ok_or_else(|| missing("tool_call_list"))?,
        }),
        EventKind::StatusUpdate => {
            Event::StatusUpdate(StatusUpdate { common, error: raw.error, end_reason: raw.end_reason })
        }
        EventKind::EndOfCallReport => Event::EndOfCallReport(EndOfCallReport {
            common,
            duration_seconds: raw.duration_seconds,
            summary: raw.summary,
            analysis: raw.analysis,
            end_reason: raw.end_reason,
        }),
    })
}

/// Turns a failed decode into the clearest message we can give.
fn envelope_error(body: &[u8], e: serde_path_to_error::Error<serde_json::Error>) -> DecodeError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        return DecodeError::Json(inner.to_string());
    }
    // Fields of an event we could not read: name the event when we know it.
    #[derive(Deserialize)]
    struct Probe {
        message: ProbeMessage,
    }
    #[derive(Deserialize)]
    struct ProbeMessage {
        #[serde(rename = "type")]
        kind: String,
    }
    match serde_json::from_slice::<Probe>(body) {
        Ok(probe) => match probe.message.kind.parse::<EventKind>() {
            Ok(event) => DecodeError::Field { event, detail: format!("{path}: {inner}") },
            Err(unknown) => DecodeError::UnknownType(unknown),
        },
        Err(_) if path == "." || path.is_empty() => DecodeError::Envelope(inner.to_string()),
        Err(_) => DecodeError::Envelope(format!("{path}: {inner}")),
    }
}

impl std::fmt::Display for Arguments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arguments::Json(text) => f.write_str(text),
            Arguments::Invalid { why, .. } => write!(f, "<invalid: {why}>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_status_update() {
        let body = br#"{"message":{"type":"status-update","call":{"id":"c1","type":"web_call","status":"ended"}}}"#;
        let Event::StatusUpdate(update) = decode(body).unwrap() else { panic!("not a status-update") };
        assert_eq!(update.common.call.status.as_deref(), Some("ended"));
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/spec/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn decodes_every_spec_request_fixture() {
        let cases = [
            ("assistant-request.request.json", "assistant-request"),
            ("assistant-request.request.api-ref.json", "assistant-request"),
            ("tool-calls.request.json", "tool-calls"),
            ("tool-calls.request.with-assistant.json", "tool-calls"),
            ("status-update.request.in-progress.json", "status-update"),
            ("status-update.request.ended.json", "status-update"),
            ("status-update.request.ended-with-error.json", "status-update"),
            ("end-of-call-report.request.json", "end-of-call-report"),
            ("legacy-flireo/tool-calls.request.json", "tool-calls"),
        ];
        for (name, kind) in cases {
            let body = fixture(name);
            let event = decode(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(event.kind().as_str(), kind, "{name}");
            assert_eq!(event.common().call.id, "5c4d030f-43e3-4e65-899e-8148521e660f");
        }
    }

    #[test]
    fn tool_calls_carry_context() {
        let body = fixture("tool-calls.request.with-assistant.json");
        let Event::ToolCalls(calls) = decode(&body).unwrap() else { panic!("wrong kind") };
        let call = &calls.tool_call_list[0];
        assert_eq!(call.id, "tool_abc123def456");
        assert_eq!(call.function.name, "lookup_contact");
        assert_eq!(
            call.function.arguments,
            Arguments::Json(
                r#"{
            "query": "John Smith"
          }"#
                .to_owned()
            )
        );
        assert_eq!(calls.common.customer_number(), Some("+31612345678"));
        assert_eq!(calls.common.phone_number(), Some("+31850835037"));
        let metadata: serde_json::Value = serde_json::from_str(&calls.common.assistant_metadata().unwrap()).unwrap();
        assert_eq!(metadata["crm_id"], "12345");
    }

    fn tool_call_with(arguments: &str) -> Arguments {
        let body = format!(
            r#"{{"message":{{"type":"tool-calls","call":{{"id":"c"}},"phone_number":null,"customer":{{"number":null}},
            "tool_call_list":[{{"id":"t","type":"function","function":{{"name":"f","arguments":{arguments}}}}}]}}}}"#
        );
        let Event::ToolCalls(calls) = decode(body.as_bytes()).unwrap() else { panic!() };
        assert_eq!(calls.common.customer_number(), None);
        assert_eq!(calls.common.phone_number(), None);
        calls.tool_call_list[0].function.arguments.clone()
    }

    #[test]
    fn arguments_no_strict_reader_takes_are_unusable_not_passed_on() {
        // Found by the `decode` fuzz target: the raw reader let these through.
        let lone = tool_call_with(r#"{"name":"Jan \udfaa"}"#);
        let Arguments::Invalid { why, sent } = lone else { panic!("taken as JSON: {lone:?}") };
        assert!(why.starts_with("arguments are not valid JSON: "), "{why}");
        assert_eq!(sent, r#"{"name":"Jan \udfaa"}"#);
        // A pair, and other escapes, are fine.
        let pair = r#"{"name":"\ud83d\ude00 \u00e9"}"#;
        assert_eq!(tool_call_with(pair), Arguments::Json(pair.into()));
        // The same for a number no double holds (found the same way).
        let huge = tool_call_with(r#"{"n":[1, {"m": 2e308}]}"#);
        let Arguments::Invalid { why, .. } = huge else { panic!("taken as JSON: {huge:?}") };
        assert!(why.contains("number out of range"), "{why}");
        let fine = r#"{"n":[1e308, -0.5, 18446744073709551616, null, true, "x"], "o": {}}"#;
        assert_eq!(tool_call_with(fine), Arguments::Json(fine.into()));
    }

    #[test]
    fn arguments_as_object_or_string() {
        assert_eq!(tool_call_with(r#"{"a":1}"#), Arguments::Json(r#"{"a":1}"#.into()));
        assert_eq!(tool_call_with(r#""{\"a\":1}""#), Arguments::Json(r#"{"a":1}"#.into()));
        assert_eq!(tool_call_with("null"), Arguments::Json("{}".into()));
        assert!(
            matches!(tool_call_with(r#""not json""#), Arguments::Invalid { why, sent } if why.contains("not valid JSON") && sent == r#""not json""#)
        );
        assert!(
            matches!(tool_call_with("[1]"), Arguments::Invalid { why, sent } if why.contains("JSON object") && sent == "[1]")
        );
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert!(matches!(decode(b"{nope"), Err(DecodeError::Json(_))));
        let err = decode(b"{}").unwrap_err();
        assert!(matches!(&err, DecodeError::Envelope(m) if m.contains("missing field `message`")), "{err}");
        let err = decode(br#"{"message":{}}"#).unwrap_err();
        assert!(matches!(&err, DecodeError::Envelope(m) if m.contains("missing field `type`")), "{err}");
        let err = decode(br#"{"message":{"type":"tool-calls","call":{"id":"c"}}}"#).unwrap_err();
        assert_eq!(err.to_string(), "invalid tool-calls event: message: missing field `tool_call_list`");
        assert_eq!(
            decode(br#"{"message":{"type":"call-started"}}"#).unwrap_err().to_string(),
            "unknown event type \"call-started\"; expected one of: assistant-request, tool-calls, status-update, end-of-call-report"
        );
        let err = decode(
            br#"{"message":{"type":"tool-calls","call":{"id":"c"},"tool_call_list":[{"id":"t","function":{}}]}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tool_call_list[0].function") && err.contains("name"), "{err}");
    }
}
