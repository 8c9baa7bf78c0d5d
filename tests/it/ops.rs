//! Loading and the operational endpoints: /tools, /plugins, /healthz, /metrics.

use serde_json::{Value, json};

use crate::common::{TestServer, plugin_wasm, plugins_dir, results, tool_calls};

#[tokio::test]
async fn tools_endpoint_lists_definitions_in_the_platform_shape() {
    let server = TestServer::start(&["lookup_contact", "echo"]).await;
    let tools = server.get_json("/tools").await;
    let list = tools["llm_config"]["tools"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["echo", "lookup_contact"]);
    let lookup = &list[1];
    assert_eq!(lookup["description"], "Look up contact information by name or phone number");
    assert_eq!(lookup["async"], false);
    assert_eq!(lookup["parameters"]["type"], "object");
    assert_eq!(lookup["parameters"]["properties"]["query"]["type"], "string");
    assert_eq!(lookup["parameters"]["required"], json!(["query"]));
}

#[tokio::test]
async fn a_broken_file_is_reported_and_the_others_serve() {
    let dir = plugins_dir(&["echo"]);
    std::fs::write(dir.path().join("broken.wasm"), b"\0asm\x0d\0\x01\0garbage").unwrap();
    std::fs::write(dir.path().join("notwasm.wasm"), b"hello").unwrap();
    std::fs::write(dir.path().join(".hidden.wasm"), b"ignored").unwrap();
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let plugins = server.get_json("/plugins").await;
    let errors = plugins["errors"].as_array().unwrap();
    let failed: Vec<&str> = errors.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(failed, ["broken", "notwasm"]);
    assert!(errors[0]["error"].as_str().unwrap().starts_with("cannot compile"), "{}", errors[0]);
    assert!(errors[1]["error"].as_str().unwrap().contains("not a WebAssembly"), "{}", errors[1]);
    assert_eq!(plugins["plugins"][0]["name"], "echo");
    assert_eq!(plugins["plugins"][0]["kind"], "component");
    let results = results(&server, &tool_calls(&[("1", "echo", json!({}))])).await;
    assert_eq!(results[0]["result"], json!({"echo": {}}));
}

#[tokio::test]
async fn two_plugins_claiming_one_tool_are_both_refused_by_name() {
    let dir = plugins_dir(&["echo", "lookup_contact"]);
    std::fs::copy(plugin_wasm("echo"), dir.path().join("echo_copy.wasm")).unwrap();
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let plugins = server.get_json("/plugins").await;
    let errors = plugins["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    for error in errors {
        let message = error["error"].as_str().unwrap();
        assert!(message.contains("\"echo\"") && message.contains("echo and echo_copy"), "{message}");
    }
    let results =
        results(&server, &tool_calls(&[("1", "echo", json!({})), ("2", "lookup_contact", json!({"query": "John"}))]))
            .await;
    assert!(results[0]["error"].as_str().unwrap().contains("unknown tool"), "neither claimant wins");
    assert_eq!(results[1]["result"]["name"], "John Smith");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = TestServer::start(&["echo"]).await;
    let health = server.client.get(format!("{}/healthz", server.url)).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    assert_eq!(server.get_json("/readyz").await, json!({"ready": true, "plugins": 1, "failed": 0}));
    results(&server, &tool_calls(&[("1", "echo", json!({})), ("2", "nope", json!({}))])).await;
    let metrics = server.client.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"switchboard_webhook_requests_total{event="tool-calls",status="200"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"switchboard_tool_calls_total{tool="echo",outcome="ok"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"switchboard_tool_calls_total{tool="<unknown>",outcome="error"} 1"#), "{metrics}");
    let _: Value = server.get_json("/plugins").await;
}
