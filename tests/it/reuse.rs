//! Instance reuse (`max_instance_reuse`): by default no call ever sees what a
//! previous caller left in the plugin's memory; a plugin that opts in keeps
//! its globals from one call to the next, for at most N calls per instance,
//! and never after a call that trapped or timed out, past its idle time, or
//! across a reload.
//!
//! The `misbehave` test plugin's `remember_caller` keeps the caller's number
//! in a global and answers the number it kept before, and how many calls its
//! instance has served.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::common::*;

/// A tool-calls webhook from `caller` with `count` calls of `remember_caller`
/// (`then` passed on), each with a fresh id.
fn from_caller(caller: &str, count: usize, then: Option<&str>) -> Vec<u8> {
    let arguments = match then {
        Some(then) => json!({ "then": then }),
        None => json!({}),
    };
    let list: Vec<Value> = (0..count)
        .map(|_| {
            json!({"id": fresh_id(), "type": "function", "function": {"name": "remember_caller", "arguments": arguments}})
        })
        .collect();
    serde_json::to_vec(&json!({
        "message": {
            "type": "tool-calls",
            "call": {"id": format!("call-{caller}"), "type": "inbound_phone_call"},
            "phone_number": {"number": "+31850835037"},
            "customer": {"number": caller},
            "tool_call_list": list,
        }
    }))
    .unwrap()
}

/// One `remember_caller` call from `caller`: its result, or its error.
async fn remember(server: &TestServer, caller: &str) -> Value {
    results(server, &from_caller(caller, 1, None)).await.remove(0)["result"].clone()
}

/// A server with `misbehave` and, beside it, `manifest`.
async fn serve_misbehave(manifest: &str) -> TestServer {
    let dir = plugins_dir(&["misbehave"]);
    std::fs::write(dir.path().join("misbehave.toml"), manifest).unwrap();
    TestServer::serve_dir(dir, |_| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_no_call_sees_a_previous_caller_across_10000_calls_under_load() {
    const TASKS: usize = 16;
    const WEBHOOKS_PER_TASK: usize = 25;
    const CALLS_PER_WEBHOOK: usize = 25;
    let server = Arc::new(TestServer::start(&["misbehave"]).await);
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let server = server.clone();
            tokio::spawn(async move {
                let mut calls = 0;
                for webhook in 0..WEBHOOKS_PER_TASK {
                    let caller = format!("+1555{task:03}{webhook:04}");
                    for entry in results(&server, &from_caller(&caller, CALLS_PER_WEBHOOK, None)).await {
                        assert_eq!(entry["result"], json!({"previous": null, "calls": 1}), "{entry}");
                        calls += 1;
                    }
                }
                calls
            })
        })
        .collect();
    let mut calls = 0;
    for task in tasks {
        calls += task.await.unwrap();
    }
    assert_eq!(calls, TASKS * WEBHOOKS_PER_TASK * CALLS_PER_WEBHOOK);
    assert_eq!(calls, 10_000);
}

#[tokio::test]
async fn with_reuse_an_instance_serves_n_calls_and_carries_the_previous_callers_number() {
    let server = serve_misbehave("max_instance_reuse = 3\n").await;
    let mut answers = Vec::new();
    for i in 0..7 {
        answers.push(remember(&server, &format!("+1555000{i}")).await);
    }
    assert_eq!(
        answers,
        [
            json!({"previous": null, "calls": 1}),
            json!({"previous": "+15550000", "calls": 2}),
            json!({"previous": "+15550001", "calls": 3}),
            // The first instance served its 3 calls and was dropped.
            json!({"previous": null, "calls": 1}),
            json!({"previous": "+15550003", "calls": 2}),
            json!({"previous": "+15550004", "calls": 3}),
            json!({"previous": null, "calls": 1}),
        ]
    );
}

#[tokio::test]
async fn an_instance_whose_call_trapped_or_timed_out_is_never_reused_but_a_tool_error_keeps_it() {
    let server = serve_misbehave("max_instance_reuse = 100\ntimeout_ms = 500\n").await;
    assert_eq!(remember(&server, "+1").await, json!({"previous": null, "calls": 1}));

    let trapped = results(&server, &from_caller("+2", 1, Some("trap"))).await.remove(0);
    assert!(trapped["error"].as_str().unwrap().starts_with("the tool crashed"), "{trapped}");
    assert_eq!(remember(&server, "+3").await, json!({"previous": null, "calls": 1}), "the trapped instance is gone");

    let timed_out = results(&server, &from_caller("+4", 1, Some("loop"))).await.remove(0);
    assert_eq!(timed_out["error"], "the tool did not answer within 500ms");
    assert_eq!(remember(&server, "+5").await, json!({"previous": null, "calls": 1}), "the cut instance is gone");

    // A tool that answers an error has returned normally: its instance serves on.
    let failed = call(&server, "fail", json!({})).await;
    assert_eq!(failed["error"], "this tool always fails");
    assert_eq!(remember(&server, "+6").await, json!({"previous": "+5", "calls": 2}));
}

#[tokio::test]
async fn idle_instances_are_dropped_after_their_idle_time() {
    let server = serve_misbehave("max_instance_reuse = 100\ninstance_idle_ms = 1000\n").await;
    assert_eq!(remember(&server, "+1").await, json!({"previous": null, "calls": 1}));
    assert_eq!(remember(&server, "+2").await, json!({"previous": "+1", "calls": 2}), "within its idle time");
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(remember(&server, "+3").await, json!({"previous": null, "calls": 1}), "past its idle time");
}

#[tokio::test]
async fn a_reload_never_hands_a_call_to_the_old_versions_instance() {
    let server = serve_misbehave("max_instance_reuse = 100\n").await;
    assert_eq!(remember(&server, "+1").await, json!({"previous": null, "calls": 1}));
    assert_eq!(remember(&server, "+2").await, json!({"previous": "+1", "calls": 2}));
    let old_version = server.get_json("/plugins").await["plugins"][0]["version"].clone();

    // The same code with a custom section appended: a new version.
    let path = server.plugins_path().join("misbehave.wasm");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0, 6, 5, b'r', b'e', b'l', b'o', b'a']);
    let staged = server.plugins_path().join("misbehave.wasm.tmp");
    std::fs::write(&staged, &bytes).unwrap();
    std::fs::rename(&staged, &path).unwrap();
    eventually("the new version to load", async || {
        server.get_json("/plugins").await["plugins"][0]["version"] != old_version
    })
    .await;

    assert_eq!(remember(&server, "+3").await, json!({"previous": null, "calls": 1}), "a new version, a new instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_instances_serve_one_call_at_a_time_under_load() {
    let server = Arc::new(serve_misbehave("max_instance_reuse = 256\n").await);
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let server = server.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for webhook in 0..10 {
                    let caller = format!("+1666{task:03}{webhook:04}");
                    for entry in results(&server, &from_caller(&caller, 10, None)).await {
                        seen.push(entry["result"].clone());
                    }
                }
                seen
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.unwrap());
    }
    assert_eq!(answers.len(), 1_600);
    // Every answer is well formed: a number this test sent (or none) and a
    // count within the instance's calls. Two calls running in one instance
    // at once would trip the plugin's own lock or tear its state.
    for answer in &answers {
        let calls = answer["calls"].as_u64().unwrap_or_else(|| panic!("{answer}"));
        assert!((1..=256).contains(&calls), "{answer}");
        match &answer["previous"] {
            Value::Null => assert_eq!(calls, 1, "only an instance's first call finds no number: {answer}"),
            Value::String(number) => assert!(number.starts_with("+1666"), "{answer}"),
            other => panic!("{other}"),
        }
    }
    let reused = answers.iter().filter(|a| a["calls"].as_u64() > Some(1)).count();
    assert!(reused > 1_000, "most calls ran in a reused instance: {reused} of 1600");
}
