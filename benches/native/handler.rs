//! The native baseline's handler: the echo tool as a plain axum handler, with
//! no WebAssembly. Served over HTTP by `native_baseline.rs`, and run
//! in-process beside Switchboard's router by `allocations.rs`.
//!
//! It does what Switchboard does for one tool-calls webhook, the same way:
//! reads the raw body, checks `X-Webhook-Signature` (HMAC-SHA256 over
//! `timestamp + "." + body`, constant-time compare, ±300 s window), parses the
//! envelope with serde and answers
//! `{"results":[{"tool_call_id": ID, "result": {"echo": <arguments>}}]}`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const TOLERANCE_SECS: u64 = 300;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    message: Message<'a>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow, default)]
    tool_call_list: Vec<ToolCall<'a>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    id: &'a str,
    #[serde(borrow)]
    function: Function<'a>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[allow(dead_code)]
    name: &'a str,
    #[serde(borrow)]
    arguments: &'a RawValue,
}

#[derive(Serialize)]
struct Answer<'a> {
    results: Vec<ResultEntry<'a>>,
}

#[derive(Serialize)]
struct ResultEntry<'a> {
    tool_call_id: &'a str,
    result: Echo<'a>,
}

#[derive(Serialize)]
struct Echo<'a> {
    echo: &'a RawValue,
}

fn verify(key: &HmacSha256, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let timestamp = headers.get("x-webhook-timestamp").ok_or("missing timestamp")?.as_bytes();
    let signature = headers.get("x-webhook-signature").ok_or("missing signature")?.as_bytes();
    let signed_at: u64 =
        std::str::from_utf8(timestamp).ok().and_then(|s| s.trim().parse().ok()).ok_or("malformed timestamp")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    if now.abs_diff(signed_at) > TOLERANCE_SECS {
        return Err("stale timestamp");
    }
    let signature = signature.trim_ascii();
    let hex_digits = signature.strip_prefix(b"sha256=").unwrap_or(signature);
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_digits, &mut digest).map_err(|_| "malformed signature")?;
    let mut mac = key.clone();
    mac.update(timestamp);
    mac.update(b".");
    mac.update(body);
    // Constant-time comparison.
    mac.verify_slice(&digest).map_err(|_| "signature mismatch")
}

async fn webhook(State(key): State<Arc<HmacSha256>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(why) = verify(&key, &headers, &body) {
        return (StatusCode::UNAUTHORIZED, why).into_response();
    }
    let envelope: Envelope = match serde_json::from_slice(&body) {
        Ok(envelope) => envelope,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    if envelope.message.kind != "tool-calls" {
        return ([(header::CONTENT_TYPE, "application/json")], "{}").into_response();
    }
    let answer = Answer {
        results: envelope
            .message
            .tool_call_list
            .iter()
            .map(|call| ResultEntry { tool_call_id: call.id, result: Echo { echo: call.function.arguments } })
            .collect(),
    };
    match serde_json::to_vec(&answer) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `POST /webhook` and `GET /healthz`, verifying with `secret`.
pub fn router(secret: &str) -> Router {
    let key = Arc::new(HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size"));
    Router::new().route("/webhook", post(webhook)).route("/healthz", get(|| async { "ok" })).with_state(key)
}
