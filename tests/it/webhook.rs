//! The webhook edge: signatures, decoding, and the plain errors of bad requests.

use serde_json::{Value, json};
use switchboard::{sign, unix_now};

use crate::common::{SECRET, TestServer, fixture};

async fn error_of(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    body["error"].as_str().expect("an error message").to_owned()
}

#[tokio::test]
async fn spec_tool_calls_fixture_answers_like_the_spec() {
    let server = TestServer::start(&["lookup_contact"]).await;
    for name in ["tool-calls.request.json", "tool-calls.request.with-assistant.json"] {
        let response = server.send(&fixture(name)).await;
        assert_eq!(response.status(), 200, "{name}");
        let body: Value = response.json().await.unwrap();
        let expected: Value = serde_json::from_slice(&fixture("tool-calls.response.results.json")).unwrap();
        assert_eq!(body, expected, "{name}");
    }
}

#[tokio::test]
async fn signature_with_and_without_prefix_is_accepted() {
    let server = TestServer::start(&["echo"]).await;
    let body = fixture("status-update.request.in-progress.json");
    let ts = unix_now();
    let prefixed = sign(SECRET.as_bytes(), ts, &body);
    let bare = prefixed.strip_prefix("sha256=").unwrap().to_owned();
    for signature in [prefixed, bare] {
        let response = server
            .webhook()
            .header("X-Webhook-Timestamp", ts.to_string())
            .header("X-Webhook-Signature", signature)
            .header("X-Webhook-Event", "status-update")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
    }
}

#[tokio::test]
async fn wrong_secret_is_401_and_second_secret_passes() {
    let server = TestServer::start_with(&["echo"], |s| s.secrets.push("whsec_second_assistant".into())).await;
    let body = fixture("status-update.request.ended.json");
    let wrong = server.send_signed(&body, "whsec_wrong", unix_now()).await;
    assert_eq!(error_of(wrong, 401).await, "signature mismatch");
    let second = server.send_signed(&body, "whsec_second_assistant", unix_now()).await;
    assert_eq!(second.status(), 200);
}

#[tokio::test]
async fn stale_and_future_timestamps_are_401() {
    let server = TestServer::start(&["echo"]).await;
    let body = fixture("status-update.request.ended.json");
    for ts in [unix_now() - 301, unix_now() + 301] {
        let message = error_of(server.send_signed(&body, SECRET, ts).await, 401).await;
        assert!(message.contains("outside the allowed window of 300 s"), "{message}");
    }
    // Inside the window either way is fine.
    for ts in [unix_now() - 250, unix_now() + 250] {
        assert_eq!(server.send_signed(&body, SECRET, ts).await.status(), 200);
    }
}

#[tokio::test]
async fn missing_and_garbled_headers_are_401_with_a_reason() {
    let server = TestServer::start(&["echo"]).await;
    let body = fixture("status-update.request.ended.json");
    let ts = unix_now().to_string();
    let signature = sign(SECRET.as_bytes(), unix_now(), &body);

    let no_signature = server.webhook().header("X-Webhook-Timestamp", &ts).body(body.clone()).send().await.unwrap();
    assert_eq!(error_of(no_signature, 401).await, "missing X-Webhook-Signature header");

    let no_timestamp =
        server.webhook().header("X-Webhook-Signature", &signature).body(body.clone()).send().await.unwrap();
    assert_eq!(error_of(no_timestamp, 401).await, "missing X-Webhook-Timestamp header");

    let garbled_ts = server
        .webhook()
        .header("X-Webhook-Timestamp", "yesterday")
        .header("X-Webhook-Signature", &signature)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(garbled_ts, 401).await, "X-Webhook-Timestamp is not a Unix time in seconds");

    let garbled_sig = server
        .webhook()
        .header("X-Webhook-Timestamp", &ts)
        .header("X-Webhook-Signature", "sha256=not-hex")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(garbled_sig, 401).await, "X-Webhook-Signature is not a hex SHA-256 digest");
}

#[tokio::test]
async fn malformed_json_and_unknown_events_are_400() {
    let server = TestServer::start(&["echo"]).await;
    let message = error_of(server.send(b"{\"message\": {\"type\": ").await, 400).await;
    assert!(message.starts_with("body is not valid JSON"), "{message}");

    let message = error_of(server.send(br#"{"message":{"type":"call-started","call":{"id":"c"}}}"#).await, 400).await;
    assert!(message.starts_with("unknown event type \"call-started\""), "{message}");

    let message = error_of(server.send(br#"{"hello":"world"}"#).await, 400).await;
    assert!(message.contains("missing field `message`"), "{message}");

    let message = error_of(
        server
            .send(br#"{"message":{"type":"tool-calls","call":{"id":"c"},"tool_call_list":[{"id":"t","function":{"arguments":{}}}]}}"#)
            .await,
        400,
    )
    .await;
    assert!(message.contains("tool_call_list[0].function") && message.contains("`name`"), "{message}");
}

#[tokio::test]
async fn mismatched_event_header_is_400() {
    let server = TestServer::start(&["echo"]).await;
    let body = fixture("status-update.request.ended.json");
    let ts = unix_now();
    let response = server
        .webhook()
        .header("X-Webhook-Timestamp", ts.to_string())
        .header("X-Webhook-Signature", sign(SECRET.as_bytes(), ts, &body))
        .header("X-Webhook-Event", "tool-calls")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(response, 400).await,
        "X-Webhook-Event header \"tool-calls\" does not match message.type \"status-update\""
    );
}

#[tokio::test]
async fn oversize_body_is_413_and_non_json_is_415() {
    let server = TestServer::start_with(&["echo"], |s| s.max_body_bytes = 1024).await;
    let big = serde_json::to_vec(&json!({"message": {"type": "status-update", "pad": "x".repeat(2000)}})).unwrap();
    let message = error_of(server.send(&big).await, 413).await;
    assert_eq!(message, "body is larger than the limit of 1024 bytes");

    // Without a Content-Length (chunked), the limit still holds while reading.
    // (Signed: a request without signature headers is refused before its body is read.)
    let chunks = futures::stream::iter(vec![Ok::<_, std::io::Error>(big.clone())]);
    let ts = unix_now();
    let chunked = server
        .webhook()
        .header("X-Webhook-Timestamp", ts.to_string())
        .header("X-Webhook-Signature", sign(SECRET.as_bytes(), ts, &big))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(chunked, 413).await, "body is larger than the limit of 1024 bytes");

    let form = server
        .client
        .post(format!("{}/webhook", server.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("a=b")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(form, 415).await, "expected Content-Type: application/json");
}

#[tokio::test]
async fn every_event_fixture_is_answered() {
    let server = TestServer::start(&["lookup_contact"]).await;
    for name in [
        "assistant-request.request.json",
        "assistant-request.request.api-ref.json",
        "status-update.request.in-progress.json",
        "status-update.request.ended.json",
        "status-update.request.ended-with-error.json",
        "end-of-call-report.request.json",
    ] {
        let response = server.send(&fixture(name)).await;
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(response.json::<Value>().await.unwrap(), json!({}), "{name}");
    }
}

#[tokio::test]
async fn legacy_camel_case_payload_is_understood() {
    let server = TestServer::start(&["lookup_contact"]).await;
    let results = crate::common::results(&server, &fixture("legacy-flireo/tool-calls.request.json")).await;
    assert_eq!(results[0]["tool_call_id"], "tool_abc123def456");
    assert!(results[0]["result"].is_object());
}

#[tokio::test]
async fn insecure_mode_accepts_unsigned_requests_and_no_secret_refuses_to_start() {
    let server = TestServer::start_with(&["echo"], |s| {
        s.secrets.clear();
        s.insecure_no_verify = true;
    })
    .await;
    let response = server.webhook().body(fixture("status-update.request.ended.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let dir = crate::common::plugins_dir(&[]);
    let settings = switchboard::Settings { plugins_dir: dir.path().to_owned(), ..Default::default() };
    let err = switchboard::Switchboard::start(settings).await.err().expect("no secret must refuse to start");
    assert!(err.to_string().contains("SWITCHBOARD_SECRET"), "{err}");
}
