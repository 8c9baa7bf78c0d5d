//! WASI-command plugins: JSON on stdin, JSON on stdout, stderr on failure.

use std::time::Duration;

use serde_json::json;

use crate::common::{TestServer, plugin_wasm, plugins_dir, results, tool_calls};

/// A folder with `command_misbehave.wasm` under several names (each name is
/// the tool it answers) and the example `echo_command`.
fn command_dir() -> tempfile::TempDir {
    let dir = plugins_dir(&["echo_command"]);
    for name in ["fail", "silent_fail", "loop", "flood", "garbage", "greet"] {
        std::fs::copy(plugin_wasm("command_misbehave"), dir.path().join(format!("{name}.wasm"))).unwrap();
    }
    dir
}

#[tokio::test]
async fn command_plugins_answer_and_fail_like_components() {
    let server = TestServer::serve_dir(command_dir(), |s| s.tool_calls_budget = Duration::from_millis(1500)).await;
    let body = tool_calls(&[
        ("echo", "echo_command", json!({"x": [1, 2]})),
        ("greet", "greet", json!({"who": "Jan"})),
        ("fail", "fail", json!({})),
        ("silent", "silent_fail", json!({})),
        ("garbage", "garbage", json!({})),
        ("loop", "loop", json!({})),
        ("flood", "flood", json!({})),
        ("asked", "echo_command", json!({"fail": "because"})),
    ]);
    let results = results(&server, &body).await;
    assert_eq!(results[0]["result"], json!({"echo": {"x": [1, 2]}}));
    assert_eq!(results[1]["result"], json!({"tool": "greet", "arguments": {"who": "Jan"}, "call_id": "call-1"}));
    assert_eq!(results[2]["error"], "the command failed on purpose", "stderr is the message");
    assert_eq!(results[3]["error"], "the tool exited with status 7");
    assert!(results[4]["error"].as_str().unwrap().contains("not JSON"), "{}", results[4]);
    assert!(results[5]["error"].as_str().unwrap().contains("did not answer within"), "{}", results[5]);
    // stdout is the result: flooding it is a result over max_result_bytes.
    assert_eq!(results[6]["error"], "the tool's result is larger than the limit of 1048576 bytes", "{}", results[6]);
    assert_eq!(results[7]["error"], "asked to fail: \"because\"");
}

#[tokio::test]
async fn a_manifest_names_the_tools_of_a_command_plugin() {
    let dir = plugins_dir(&[]);
    std::fs::copy(plugin_wasm("command_misbehave"), dir.path().join("multi.wasm")).unwrap();
    std::fs::write(
        dir.path().join("multi.toml"),
        r#"
timeout_ms = 2000
[[tools]]
name = "say_hello"
description = "Says hello"
parameters = { type = "object", properties = { name = { type = "string" } }, required = ["name"] }
[[tools]]
name = "say_bye"
"#,
    )
    .unwrap();
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let tools = server.get_json("/tools").await;
    let names: Vec<&str> =
        tools["llm_config"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["say_bye", "say_hello"]);
    assert_eq!(tools["llm_config"]["tools"][1]["parameters"]["required"], json!(["name"]));
    let results = results(&server, &tool_calls(&[("1", "say_hello", json!({"name": "Ann"}))])).await;
    assert_eq!(results[0]["result"]["tool"], "say_hello");
    let plugins = server.get_json("/plugins").await;
    assert_eq!(plugins["plugins"][0]["kind"], "command");
    assert_eq!(plugins["plugins"][0]["timeout_ms"], 2000);
}

#[tokio::test]
async fn a_manifest_that_does_not_parse_is_a_load_error_with_its_line() {
    let dir = plugins_dir(&["echo"]);
    std::fs::write(dir.path().join("echo.toml"), "timeout_ms = 100\nmemory_mb = 5\n").unwrap();
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let plugins = server.get_json("/plugins").await;
    let error = plugins["errors"][0]["error"].as_str().unwrap();
    assert!(error.contains("echo.toml") && error.contains("line 2") && error.contains("memory_mb"), "{error}");
}
