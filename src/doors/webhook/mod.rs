//! The voice platform's door: signed webhooks in, answers out.
//!
//! `POST /webhook` reads the raw body under a size limit, verifies its
//! [`signature`], decodes the [`event`], and hands it to the core: tool calls
//! to dispatch, an assistant-request to assistant routing, status updates and
//! end-of-call reports to event fan-out. The answers take the platform's
//! shapes here; a refused request becomes an [`error::ApiError`].

pub(crate) mod error;
pub(crate) mod event;
pub(crate) mod signature;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::core::Core;
use crate::core::call_log::WebhookRecord;
use crate::core::dispatch::{Door, ToolCallOutcome, ToolCallRequest, Unusable};
use crate::types::{CallContext, EventKind};
use error::ApiError;
use event::{Arguments, Event, ToolCalls};
use signature::{EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, Verifier};

/// The webhook door: how requests are checked, and the core they reach.
pub(crate) struct WebhookDoor {
    /// The core that runs what the platform asks.
    pub core: Arc<Core>,
    /// Checks signatures; `None` only with `insecure_no_verify`.
    pub verifier: Option<Verifier>,
    /// Largest accepted body, in bytes.
    pub max_body_bytes: usize,
    /// Time from a tool-calls request's arrival to its answer.
    pub tool_calls_budget: Duration,
}

/// `POST /webhook`.
pub(crate) fn routes(door: Arc<WebhookDoor>) -> Router {
    Router::new().route("/webhook", post(receive)).with_state(door)
}

/// `POST /webhook`: every event the platform sends. The request is taken
/// whole, so that its headers are read where they are (axum's `HeaderMap`
/// extractor would copy them).
async fn receive(State(app): State<Arc<WebhookDoor>>, request: Request) -> Response {
    let arrived = Instant::now();
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    if app.verifier.is_none() {
        tracing::warn!("INSECURE: webhook signature NOT verified (--insecure-no-verify)");
    }
    let (event, body) = match authenticate_and_decode(&app, headers, body).await {
        Ok(decoded) => decoded,
        Err(e) => {
            tracing::warn!(status = e.status().as_u16(), error = %e, "webhook rejected");
            app.core.metrics().record_webhook("rejected", e.status().as_u16());
            return e.into_response();
        }
    };
    app.core.metrics().record_webhook(event.kind().as_str(), 200);
    // A tool-calls webhook is logged as its tool calls (each with its
    // time, numbers, outcome and duration): a row of its own would say
    // again what they say, at a cost on every call.
    let mut record = (app.core.call_log().is_on() && !matches!(event, Event::ToolCalls(_)))
        .then(|| webhook_record(&event, SystemTime::now()));
    let report = matches!(event, Event::EndOfCallReport(_));
    let response = match event {
        Event::ToolCalls(calls) => {
            let deadline = arrived + app.tool_calls_budget;
            let outcomes = app.core.tool_calls(tool_call_requests(calls), deadline).await;
            let mut response = json_response(&ToolCallsResponse::new(&outcomes));
            if outcomes.iter().any(|o| o.replayed) {
                response.headers_mut().insert(REPLAYED_HEADER, header::HeaderValue::from_static("true"));
            }
            response
        }
        Event::AssistantRequest(request) => {
            let common = &request.common;
            let message = message_json(&body);
            // Boxed: routing an assistant-request is a large future (a
            // plugin's hook, a fallback over HTTP), which inline would make
            // the handler's future, and every tool call's, as large.
            let (answer, source) = Box::pin(app.core.assistant_request(
                &message,
                common.phone_number(),
                common.customer_number(),
                arrived,
            ))
            .await;
            tracing::info!(call_id = %common.call.id, source = source.label(), "assistant-request answered");
            if let Some(record) = &mut record {
                record.detail = Some(serde_json::json!({ "source": source.label() }).to_string());
            }
            json_response(&answer)
        }
        Event::StatusUpdate(update) => {
            tracing::info!(
                call_id = %update.common.call.id,
                status = ?update.common.call.status,
                error = ?update.error,
                end_reason = ?update.end_reason,
                "status-update"
            );
            app.core.publish(EventKind::StatusUpdate, || message_json(&body));
            empty_object()
        }
        Event::EndOfCallReport(report) => {
            tracing::info!(
                call_id = %report.common.call.id,
                duration_seconds = ?report.duration_seconds,
                end_reason = ?report.end_reason,
                "end-of-call-report"
            );
            app.core.publish(EventKind::EndOfCallReport, || message_json(&body));
            empty_object()
        }
    };
    if let Some(mut record) = record {
        record.http_status = response.status().as_u16();
        record.duration = arrived.elapsed();
        app.core.call_log().webhook(record, || report.then(|| report_details(&body)).flatten());
    }
    response
}

/// The call log's record of `event`, before it is answered.
fn webhook_record(event: &Event, at: SystemTime) -> WebhookRecord {
    let common = event.common();
    let (status, ended_reason, duration_seconds, detail) = match event {
        Event::StatusUpdate(update) => {
            let detail = present(&[
                ("status", common.call.status.clone().map(Value::from)),
                ("ended_reason", update.end_reason.clone().map(Value::from)),
                ("error", update.error.clone().map(Value::from)),
            ]);
            (common.call.status.clone(), update.end_reason.clone(), None, detail)
        }
        Event::EndOfCallReport(report) => {
            let detail = present(&[
                ("ended_reason", report.end_reason.clone().map(Value::from)),
                ("duration_seconds", report.duration_seconds.map(Value::from)),
            ]);
            (common.call.status.clone(), report.end_reason.clone(), report.duration_seconds, detail)
        }
        Event::AssistantRequest(_) | Event::ToolCalls(_) => (None, None, None, None),
    };
    WebhookRecord {
        at,
        event: event.kind().as_str(),
        call_id: common.call.id.clone(),
        customer_number: common.customer_number().map(str::to_owned),
        phone_number: common.phone_number().map(str::to_owned),
        http_status: 200,
        duration: Duration::ZERO,
        status,
        ended_reason,
        duration_seconds,
        detail,
    }
}

/// The fields that are present, as a JSON object's text; `None` when none is.
fn present(fields: &[(&str, Option<Value>)]) -> Option<String> {
    let object: Map<String, Value> =
        fields.iter().filter_map(|(key, value)| Some(((*key).to_owned(), value.clone()?))).collect();
    (!object.is_empty()).then(|| Value::Object(object).to_string())
}

/// The end-of-call report's fields the spec documents (summary, analysis,
/// transcript, recording, times), as a JSON object, for the call log.
fn report_details(body: &[u8]) -> Option<String> {
    const FIELDS: [&str; 8] = [
        "end_reason",
        "duration_seconds",
        "summary",
        "analysis",
        "messages",
        "recording_url",
        "started_at",
        "ended_at",
    ];
    let message: Map<String, Value> = serde_json::from_str(&message_json(body)).ok()?;
    let details: Map<String, Value> = message.into_iter().filter(|(key, _)| FIELDS.contains(&key.as_str())).collect();
    Some(Value::Object(details).to_string())
}

/// The `message` object of an already decoded body, as JSON text.
fn message_json(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        message: &'a RawValue,
    }
    serde_json::from_slice::<Envelope>(body).map(|e| e.message.get().to_owned()).unwrap_or_else(|_| "{}".to_owned())
}

/// Everything that can refuse a request, in order: media type, signature
/// headers (before the body is read), size, signature, envelope, event header.
async fn authenticate_and_decode(
    app: &WebhookDoor,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Event, Bytes), ApiError> {
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let get = |name| headers.get(name).map(|v| v.as_bytes());
    if let Some(verifier) = &app.verifier {
        verifier.check_headers(get(TIMESTAMP_HEADER), get(SIGNATURE_HEADER), SystemTime::now())?;
    }
    let body = read_body(body, headers, app.max_body_bytes).await?;
    if let Some(verifier) = &app.verifier {
        verifier.verify(get(TIMESTAMP_HEADER), get(SIGNATURE_HEADER), &body, SystemTime::now())?;
    }
    let event = event::decode(&body)?;
    if let Some(header) = headers.get(EVENT_HEADER) {
        let header = String::from_utf8_lossy(header.as_bytes()).trim().to_owned();
        if header != event.kind().as_str() {
            return Err(ApiError::EventMismatch { header, body: event.kind() });
        }
    }
    Ok((event, body))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next()).is_some_and(
        |mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.len() > 5
                    && mime[..mime.len() - 5].contains('/')
                    && mime.to_ascii_lowercase().ends_with("+json"))
        },
    )
}

async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large { ApiError::PayloadTooLarge { limit } } else { ApiError::Body(e.to_string()) }
    })
}

fn tool_call_requests(calls: ToolCalls) -> Vec<ToolCallRequest> {
    let common = calls.common;
    let assistant_metadata = common.assistant_metadata();
    let mut context = CallContext {
        call_id: common.call.id,
        call_type: common.call.call_type,
        tool_call_id: String::new(),
        customer_number: common.customer.and_then(|customer| customer.number),
        phone_number: common.phone_number.and_then(|number| number.number),
        assistant_metadata,
    };
    let mut items = calls.tool_call_list.into_iter().peekable();
    let mut requests = Vec::with_capacity(items.len());
    while let Some(item) = items.next() {
        // The last call takes the context; the others get copies of it.
        let context = if items.peek().is_some() { context.clone() } else { std::mem::take(&mut context) };
        requests.push(ToolCallRequest {
            name: item.function.name,
            arguments: match item.function.arguments {
                Arguments::Json(text) => Ok(text),
                Arguments::Invalid { why, sent } => Err(Unusable { why, sent }),
            },
            context: CallContext { tool_call_id: item.id, ..context },
            door: Door::Webhook,
        });
    }
    requests
}

/// `{"results": [...]}`, one entry per call, in request order.
#[derive(Serialize)]
struct ToolCallsResponse<'a> {
    results: Vec<ResultEntry<'a>>,
}

/// A successful entry has `result`; a failed one has `error` and, since the
/// platform documents no per-entry error field, `result: {"error": ...}` too.
#[derive(Serialize)]
#[serde(untagged)]
enum ResultEntry<'a> {
    Ok { tool_call_id: &'a str, result: &'a RawValue },
    Err { tool_call_id: &'a str, result: ErrorResult<'a>, error: &'a str },
}

#[derive(Serialize)]
struct ErrorResult<'a> {
    error: &'a str,
}

impl<'a> ToolCallsResponse<'a> {
    fn new(outcomes: &'a [ToolCallOutcome]) -> Self {
        let results = outcomes
            .iter()
            .map(|o| match &o.result {
                Ok(result) => ResultEntry::Ok { tool_call_id: &o.id, result },
                Err(error) => ResultEntry::Err { tool_call_id: &o.id, result: ErrorResult { error }, error },
            })
            .collect();
        Self { results }
    }
}

/// Set on a tool-calls answer when one of its results is replayed from the
/// duplicate store (the same call was answered before; its plugin did not
/// run again).
pub(crate) const REPLAYED_HEADER: header::HeaderName = header::HeaderName::from_static("switchboard-replayed");

/// `Content-Type: application/json`, made once (a header value made from a
/// `&str` is copied for every answer).
pub(crate) const JSON: header::HeaderValue = header::HeaderValue::from_static("application/json");

fn json_response<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, JSON)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize response");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

fn empty_object() -> Response {
    ([(header::CONTENT_TYPE, JSON)], "{}").into_response()
}
