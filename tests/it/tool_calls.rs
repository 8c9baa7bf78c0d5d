//! Tool calls through real plugins: order, concurrency, and failures that stay
//! confined to their own call.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{TestServer, fixture, results, tool_calls};

/// Asserts a failed entry carries its message in both places.
fn assert_error(entry: &Value, id: &str, needle: &str) -> String {
    assert_eq!(entry["tool_call_id"], id);
    let message = entry["error"].as_str().unwrap_or_else(|| panic!("{entry} has no error")).to_owned();
    assert_eq!(entry["result"], json!({ "error": message }), "error also travels in result");
    assert!(message.contains(needle), "{message:?} should contain {needle:?}");
    message
}

#[tokio::test]
async fn several_calls_answer_in_request_order() {
    let server = TestServer::start(&["echo", "lookup_contact", "misbehave"]).await;
    let body = tool_calls(&[
        ("slow", "sleep", json!({"ms": 300})),
        ("echo", "echo", json!({"hello": "world"})),
        ("who", "lookup_contact", json!({"query": "+31 6 1234 5678"})),
    ]);
    let results = results(&server, &body).await;
    assert_eq!(results.len(), 3);
    assert_eq!(results[0], json!({"tool_call_id": "slow", "result": {"slept_ms": 300}}));
    assert_eq!(results[1], json!({"tool_call_id": "echo", "result": {"echo": {"hello": "world"}}}));
    assert_eq!(results[2]["tool_call_id"], "who");
    assert_eq!(results[2]["result"]["name"], "John Smith");
}

#[tokio::test]
async fn results_keep_the_plugins_key_order() {
    // lookup_contact answers {"name", "email", "phone"}: not in alphabetical order.
    let server = TestServer::start(&["lookup_contact"]).await;
    let response = server.send(&tool_calls(&[("who", "lookup_contact", json!({"query": "John"}))])).await;
    let body = response.text().await.unwrap();
    let (name, email, phone) = (body.find(r#""name""#), body.find(r#""email""#), body.find(r#""phone""#));
    assert!(name.is_some() && name < email && email < phone, "{body}");
}

#[tokio::test]
async fn calls_in_one_request_run_concurrently() {
    // Three 600 ms calls under a 1.5 s budget only all succeed if they overlap.
    let server = TestServer::start_with(&["misbehave"], |s| s.tool_calls_budget = Duration::from_millis(1500)).await;
    let body = tool_calls(&[
        ("a", "sleep", json!({"ms": 600})),
        ("b", "sleep", json!({"ms": 600})),
        ("c", "sleep", json!({"ms": 600})),
    ]);
    for entry in results(&server, &body).await {
        assert_eq!(entry["result"], json!({"slept_ms": 600}), "{entry}");
    }
}

#[tokio::test]
async fn unknown_function_fails_only_that_call() {
    let server = TestServer::start(&["echo"]).await;
    let body = tool_calls(&[("1", "transfer_to_mars", json!({})), ("2", "echo", json!({"x": 1}))]);
    let results = results(&server, &body).await;
    assert_error(&results[0], "1", "unknown tool \"transfer_to_mars\"");
    assert_eq!(results[1]["result"], json!({"echo": {"x": 1}}));
}

#[tokio::test]
async fn plugin_errors_are_readable_entries() {
    let server = TestServer::start(&["misbehave", "lookup_contact"]).await;
    let body = tool_calls(&[
        ("fail", "fail", json!({})),
        ("nf", "not_found", json!({})),
        ("nobody", "lookup_contact", json!({"query": "Zaphod Beeblebrox"})),
        ("badargs", "lookup_contact", json!({"name": "John"})),
    ]);
    let results = results(&server, &body).await;
    assert_error(&results[0], "fail", "this tool always fails");
    assert_error(&results[1], "nf", "nothing here");
    assert_error(&results[2], "nobody", "Zaphod Beeblebrox");
    assert_error(&results[3], "badargs", "query");
}

#[tokio::test]
async fn a_trap_fails_its_call_and_the_server_carries_on() {
    let server = TestServer::start(&["misbehave", "echo"]).await;
    let body = tool_calls(&[("boom", "trap", json!({})), ("fine", "echo", json!({"still": "here"}))]);
    let results = results(&server, &body).await;
    assert_error(&results[0], "boom", "the tool crashed");
    assert_eq!(results[1]["result"], json!({"echo": {"still": "here"}}));
    // The same plugin answers the next call normally: nothing leaked from the trap.
    let next = crate::common::results(&server, &tool_calls(&[("ok", "ok", json!({"n": 1}))])).await;
    assert_eq!(next[0]["result"], json!({"ok": true, "args": {"n": 1}}));
}

#[tokio::test]
async fn a_plugin_that_never_returns_is_cut_within_the_budget() {
    let budget = Duration::from_millis(1000);
    let server = TestServer::start_with(&["misbehave", "echo"], |s| s.tool_calls_budget = budget).await;
    let body = tool_calls(&[
        ("loop", "loop_forever", json!({})),
        ("sleep", "sleep", json!({"ms": 60_000})),
        ("quick", "echo", json!({"a": 1})),
    ]);
    let started = Instant::now();
    let results = results(&server, &body).await;
    let elapsed = started.elapsed();
    assert_error(&results[0], "loop", "did not answer within");
    assert_error(&results[1], "sleep", "did not answer within");
    assert_eq!(results[2]["result"], json!({"echo": {"a": 1}}));
    // The whole answer left within the budget (plus scheduling slack on a shared machine).
    assert!(elapsed < budget + Duration::from_millis(500), "answered after {elapsed:?}");
}

#[tokio::test]
async fn a_looping_plugin_does_not_block_other_requests() {
    let server = TestServer::start_with(&["misbehave", "echo"], |s| s.tool_calls_budget = Duration::from_secs(3)).await;
    // Distinct ids: the same id would be answered as a duplicate of the first.
    let looping: Vec<_> = (0..4).map(|i| tool_calls(&[(&format!("loop-{i}"), "loop_forever", json!({}))])).collect();
    let loops: Vec<_> = looping.iter().map(|body| server.send(body)).collect();
    let loops = futures::future::join_all(loops);
    let quick = async {
        // While four loops hold the machine's cores, a normal call still answers.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let results = results(&server, &tool_calls(&[("q", "echo", json!({}))])).await;
        (results, started.elapsed())
    };
    let (loop_responses, (quick_results, quick_elapsed)) = tokio::join!(loops, quick);
    assert_eq!(quick_results[0]["result"], json!({"echo": {}}));
    assert!(quick_elapsed < Duration::from_secs(2), "a normal call waited {quick_elapsed:?} behind looping plugins");
    for response in loop_responses {
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn memory_bomb_and_deep_recursion_are_contained() {
    let server = TestServer::start_with(&["misbehave"], |s| s.plugin_defaults.memory_bytes = 32 << 20).await;
    let body = tool_calls(&[("mem", "memory_bomb", json!({})), ("rec", "recurse", json!({})), ("ok", "ok", json!({}))]);
    let results = results(&server, &body).await;
    assert_error(&results[0], "mem", "ran out of memory (limit 32 MiB)");
    assert_error(&results[1], "rec", "the tool crashed");
    assert_eq!(results[2]["result"]["ok"], true);
}

#[tokio::test]
async fn arguments_arrive_the_same_as_object_or_string() {
    let server = TestServer::start(&["echo"]).await;
    let args = json!({"name": "Jan", "n": 2, "nested": {"ok": true}});
    let body = tool_calls(&[("obj", "echo", args.clone()), ("str", "echo", Value::String(args.to_string()))]);
    let results = results(&server, &body).await;
    assert_eq!(results[0]["result"], json!({ "echo": args }));
    assert_eq!(results[1]["result"], json!({ "echo": args }));
    // A string that is not JSON fails that call with a reason.
    let bad = crate::common::results(&server, &tool_calls(&[("bad", "echo", json!("{oops"))])).await;
    assert_error(&bad[0], "bad", "not valid JSON");
}

#[tokio::test]
async fn the_call_context_reaches_the_plugin() {
    let server = TestServer::start(&["misbehave"]).await;
    let mut body: Value = serde_json::from_slice(&fixture("tool-calls.request.with-assistant.json")).unwrap();
    body["message"]["tool_call_list"][0]["function"]["name"] = json!("context");
    let results = results(&server, &serde_json::to_vec(&body).unwrap()).await;
    let context = &results[0]["result"];
    assert_eq!(context["call_id"], "5c4d030f-43e3-4e65-899e-8148521e660f");
    assert_eq!(context["call_type"], "inbound_phone_call");
    assert_eq!(context["tool_call_id"], "tool_abc123def456");
    assert_eq!(context["customer_number"], "+31612345678");
    assert_eq!(context["phone_number"], "+31850835037");
    assert_eq!(context["assistant_metadata"]["crm_id"], "12345");
    assert!(context["deadline_ms"].as_u64().unwrap() > 8000);
}

#[tokio::test]
async fn web_calls_without_numbers_still_dispatch() {
    let server = TestServer::start(&["misbehave"]).await;
    let body = json!({"message": {"type": "tool-calls", "call": {"id": "web-1", "type": "web_call"},
        "phone_number": null, "customer": {"number": null},
        "tool_call_list": [{"id": "t1", "type": "function", "function": {"name": "context", "arguments": {}}}]}});
    let results = results(&server, &serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(results[0]["result"]["customer_number"], Value::Null);
    assert_eq!(results[0]["result"]["phone_number"], Value::Null);
    assert_eq!(results[0]["result"]["assistant_metadata"], Value::Null);
}
