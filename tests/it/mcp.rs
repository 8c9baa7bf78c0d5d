//! The MCP door, driven by an official MCP client: the MCP Python SDK (PyPI
//! `mcp`, pinned in tests/mcp/requirements.txt and installed by ./test.sh
//! into target/mcp-venv), through tests/mcp/client.py, over streamable HTTP
//! against a real server on loopback and over stdio against the real binary.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::{Settings, Switchboard};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::{SECRET, TestServer, code_cache, plugin_wasm, plugins_dir};
use crate::languages::{example, precompile};

/// The Python of the venv holding the MCP SDK; panics with the command that
/// makes it when it is missing.
fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/mcp-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./test.sh (or: python3 -m venv target/mcp-venv && target/mcp-venv/bin/pip install -r tests/mcp/requirements.txt)",
        python.display()
    );
    python
}

fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py")
}

/// A running MCP client: its output lines, one JSON value each.
struct Client {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Client {
    /// Starts the client over HTTP at `url` with `extra` arguments (`--token T`).
    fn http(url: &str, extra: &[&str], ops: Value) -> Self {
        let mut args = vec!["http".to_owned(), format!("{url}/mcp")];
        args.extend(extra.iter().map(|a| a.to_string()));
        args.push(ops.to_string());
        Self::spawn(&args)
    }

    /// Starts the client over stdio, launching `switchboard mcp --plugins DIR`.
    fn stdio(plugins: &Path, ops: Value) -> Self {
        let binary = env!("CARGO_BIN_EXE_switchboard");
        let args = [
            "stdio".to_owned(),
            ops.to_string(),
            "--".to_owned(),
            binary.to_owned(),
            "mcp".to_owned(),
            "--plugins".to_owned(),
            plugins.display().to_string(),
        ];
        Self::spawn(&args)
    }

    fn spawn(args: &[String]) -> Self {
        let mut child = tokio::process::Command::new(python())
            .arg(client_script())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the MCP client");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, lines }
    }

    /// The next line of output, within 60 s.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("the MCP client answers within 60 s")
            .unwrap()
            .expect("the MCP client printed another line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Every remaining line, once the client exits successfully.
    async fn finish(mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(Some(line)) = self.lines.next_line().await {
            out.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")));
        }
        let status = self.child.wait().await.unwrap();
        assert!(status.success(), "the MCP client failed: {status}; printed {out:?}");
        out
    }
}

/// Runs `ops` over HTTP and returns the lines after the initialize line.
async fn run_http(url: &str, extra: &[&str], ops: Value) -> (Value, Vec<Value>) {
    let mut client = Client::http(url, extra, ops);
    let init = client.next().await;
    (init, client.finish().await)
}

/// Deploys built plugin `name` into `dir` as a deploy would: a temporary
/// file renamed into place.
fn drop_in(dir: &Path, name: &str) {
    let tmp = dir.join(format!(".{name}.wasm.tmp"));
    std::fs::copy(plugin_wasm(name), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{name}.wasm"))).unwrap();
}

fn tool_names(listed: &Value) -> Vec<String> {
    listed["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn an_mcp_client_lists_and_calls_tools_of_every_plugin_style() {
    let dir = plugins_dir(&["echo", "echo_command", "misbehave"]);
    let faq = example("py_faq", "python");
    precompile(&faq);
    std::fs::copy(&faq, dir.path().join("py_faq.wasm")).unwrap();
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let ops = json!([
        {"op": "list"},
        {"op": "call", "tool": "echo", "args": {"text": "hi", "n": 1}},
        {"op": "call", "tool": "echo_command", "args": {"x": [1, 2]}},
        {"op": "call", "tool": "list_faq_topics", "args": {}},
        {"op": "call", "tool": "alloc_churn", "args": {"rounds": "many"}},
        {"op": "call", "tool": "fail", "args": {}},
        {"op": "call", "tool": "trap", "args": {}},
        {"op": "call", "tool": "no_such_tool", "args": {}},
    ]);
    let (init, out) = run_http(&server.url, &[], ops).await;
    assert_eq!(init["protocolVersion"], "2025-11-25");
    assert_eq!(init["serverInfo"]["name"], "switchboard");

    // Every loaded tool, with its schema as inputSchema.
    let names = tool_names(&out[0]);
    for expected in ["echo", "echo_command", "answer_faq", "list_faq_topics", "sleep", "trap"] {
        assert!(names.contains(&expected.to_owned()), "{expected} missing from {names:?}");
    }
    let webhook_tools = server.get_json("/tools").await;
    assert_eq!(names.len(), webhook_tools["llm_config"]["tools"].as_array().unwrap().len(), "the same tools as /tools");
    let faq = out[0]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "answer_faq").unwrap();
    assert_eq!(faq["inputSchema"]["required"], json!(["question"]), "{faq}");

    // A component, a WASI command, a Python component.
    assert_eq!(out[1]["structuredContent"], json!({"echo": {"text": "hi", "n": 1}}));
    let text: Value = serde_json::from_str(out[1]["content"][0].as_str().unwrap()).unwrap();
    assert_eq!(text, json!({"echo": {"text": "hi", "n": 1}}), "the same JSON as text content");
    assert_eq!(out[1]["isError"], false);
    assert_eq!(out[2]["structuredContent"], json!({"echo": {"x": [1, 2]}}));
    assert_eq!(out[3]["isError"], false, "{}", out[3]);
    assert_eq!(out[3]["structuredContent"]["topics"][1], "parking", "{}", out[3]);

    // Failures carry the same message the webhook door gives.
    let webhook = crate::common::call(&server, "alloc_churn", json!({"rounds": "many"})).await;
    assert_eq!(out[4]["isError"], true);
    assert_eq!(out[4]["content"][0], webhook["error"], "invalid arguments, as the webhook says them");
    assert!(out[4]["content"][0].as_str().unwrap().starts_with("invalid arguments: "), "{}", out[4]);
    assert_eq!(out[5]["isError"], true);
    assert_eq!(out[5]["content"][0], crate::common::call(&server, "fail", json!({})).await["error"]);
    assert!(out[6]["content"][0].as_str().unwrap().starts_with("the tool crashed"), "{}", out[6]);
    // An unknown tool is a JSON-RPC error, not a result.
    assert_eq!(out[7]["rpcError"]["code"], -32602, "{}", out[7]);

    // Counted per door.
    let metrics = server.client.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"switchboard_tool_calls_total{tool="echo",door="mcp",outcome="ok"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"tool="fail",door="webhook",outcome="error"} 1"#), "{metrics}");
}

#[tokio::test]
async fn an_mcp_call_is_cut_at_its_deadline_and_a_cancelled_call_stops() {
    let server = TestServer::start_with(&["echo", "misbehave"], |s| {
        s.mcp.call_timeout = Some(Duration::from_millis(500));
    })
    .await;
    let started = Instant::now();
    let ops = json!([
        {"op": "call", "tool": "sleep", "args": {"ms": 5000}},
        {"op": "cancel", "tool": "spin", "args": {"ms": 400}, "after_ms": 100},
        {"op": "call", "tool": "echo", "args": {"after": "cancel"}},
    ]);
    let (_, out) = run_http(&server.url, &[], ops).await;
    let took = started.elapsed();
    assert_eq!(out[0]["isError"], true);
    assert!(out[0]["content"][0].as_str().unwrap().contains("did not answer within"), "{}", out[0]);
    assert_eq!(out[1]["cancelled"], true);
    assert_eq!(out[2]["structuredContent"], json!({"echo": {"after": "cancel"}}), "the session goes on");
    assert!(took < Duration::from_secs(4), "a 5 s sleep was cut at 500 ms, yet the client took {took:?}");

    // The cancelled call never finished: no outcome was recorded for it
    // (a finished spin would count as ok, a cut one as timeout).
    let metrics = server.client.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"tool="sleep",door="mcp",outcome="timeout"} 1"#), "{metrics}");
    assert!(!metrics.contains(r#"tool="spin""#), "the cancelled call was recorded as finished: {metrics}");
}

#[tokio::test]
async fn a_plugin_dropped_in_mid_session_is_announced_over_http() {
    let server = TestServer::start(&["echo"]).await;
    let mut client = Client::http(
        &server.url,
        &[],
        json!([{"op": "list"}, {"op": "ready"}, {"op": "wait_list_changed", "timeout": 20}, {"op": "list"}]),
    );
    client.next().await; // initialize
    assert_eq!(tool_names(&client.next().await), ["echo"]);
    assert_eq!(client.next().await["ready"], true);
    drop_in(server.plugins_path(), "echo_command");
    assert_eq!(client.next().await["listChanged"], true, "notifications/tools/list_changed arrived");
    assert_eq!(tool_names(&client.next().await), ["echo", "echo_command"]);
    client.finish().await;
}

#[tokio::test]
async fn switchboard_mcp_serves_the_same_tools_over_stdio_and_hot_reloads() {
    let dir = plugins_dir(&["echo"]);
    let mut client = Client::stdio(
        dir.path(),
        json!([
            {"op": "list"},
            {"op": "call", "tool": "echo", "args": {"over": "stdio"}},
            {"op": "ready"},
            {"op": "wait_list_changed", "timeout": 30},
            {"op": "call", "tool": "echo_command", "args": {"new": true}},
        ]),
    );
    let init = client.next().await;
    assert_eq!(init["protocolVersion"], "2025-11-25");
    assert_eq!(tool_names(&client.next().await), ["echo"]);
    assert_eq!(client.next().await["structuredContent"], json!({"echo": {"over": "stdio"}}));
    assert_eq!(client.next().await["ready"], true);
    drop_in(dir.path(), "echo_command");
    assert_eq!(client.next().await["listChanged"], true);
    assert_eq!(client.next().await["structuredContent"], json!({"echo": {"new": true}}));
    client.finish().await;
}

/// An `initialize` request as raw JSON-RPC over HTTP.
fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})
}

async fn post_initialize(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/mcp"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .json(&initialize_body());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn with_tokens_every_request_needs_one_and_a_foreign_origin_never_passes() {
    let server = TestServer::start_with(&["echo"], |s| s.mcp.tokens = vec!["tok-1".into(), "tok-2".into()]).await;
    let refused = post_initialize(&server.url, &[]).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    assert_eq!(post_initialize(&server.url, &[("Authorization", "Bearer nope")]).await.status(), 401);
    assert_eq!(post_initialize(&server.url, &[("Authorization", "Bearer tok-2")]).await.status(), 200);
    let foreign = [("Authorization", "Bearer tok-1"), ("Origin", "https://evil.example")];
    assert_eq!(post_initialize(&server.url, &foreign).await.status(), 403, "a foreign Origin, token or not");
    let (_, out) = run_http(&server.url, &["--token", "tok-1"], json!([{"op": "list"}])).await;
    assert_eq!(tool_names(&out[0]), ["echo"]);
}

/// An address of this machine that is not loopback, if it has one.
pub(crate) fn non_loopback_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").or_else(|_| socket.connect("10.255.255.1:9")).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn without_tokens_only_local_clients_with_a_localhost_host_may_connect() {
    let dir = plugins_dir(&["echo"]);
    let settings = Settings {
        plugins_dir: dir.path().to_owned(),
        secrets: vec![SECRET.into()],
        cache_dir: Some(code_cache()),
        ..Settings::default()
    };
    let switchboard = Switchboard::start(settings).await.unwrap();
    // Listening on every address, as a careless deployment would.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        switchboard::serve(listener, &switchboard, async {
            let _ = stopped.await;
        })
        .await
    });
    let local = format!("http://127.0.0.1:{port}");
    assert_eq!(post_initialize(&local, &[]).await.status(), 200);
    assert_eq!(post_initialize(&local, &[("Host", &format!("localhost:{port}"))]).await.status(), 200);
    // DNS rebinding: a page of evil.example resolving to 127.0.0.1.
    assert_eq!(post_initialize(&local, &[("Host", "evil.example")]).await.status(), 403);
    assert_eq!(post_initialize(&local, &[("Origin", "https://evil.example")]).await.status(), 403);
    match non_loopback_address() {
        Some(ip) => {
            let remote = format!("http://{ip}:{port}");
            let refused = post_initialize(&remote, &[("Host", "localhost")]).await;
            assert_eq!(refused.status(), 403, "a client off loopback ({ip}), even claiming Host: localhost");
        }
        None => eprintln!("this machine has no non-loopback address; the off-machine case was not exercised"),
    }
}

#[tokio::test]
async fn the_mcp_door_can_be_turned_off() {
    let server = TestServer::start_with(&["echo"], |s| s.mcp.enabled = false).await;
    assert_eq!(post_initialize(&server.url, &[]).await.status(), 404);
}

/// What the short way for `tools/call` answers, read as raw HTTP: in an open
/// session a call is answered as one JSON response (number and string ids,
/// errors as the SDK words them); a call carrying `_meta`, or one outside a
/// session, is left to the SDK, which answers as before.
#[tokio::test]
async fn a_tools_call_in_a_session_is_answered_as_plain_json_and_the_rest_by_the_sdk() {
    let server = TestServer::start(&["echo", "misbehave"]).await;
    let post = |session: Option<&str>, body: Value| {
        let mut request = server
            .client
            .post(format!("{}/mcp", server.url))
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json")
            .header("MCP-Protocol-Version", "2025-11-25");
        if let Some(session) = session {
            request = request.header("Mcp-Session-Id", session);
        }
        request.body(body.to_string()).send()
    };
    let content_type = |r: &reqwest::Response| r.headers()["content-type"].to_str().unwrap().to_owned();
    // The JSON-RPC response with `id` in a body that is JSON or server-sent events.
    let answer = |body: &str, id: &Value| -> Value {
        let whole = serde_json::from_str::<Value>(body).ok().into_iter();
        let events =
            body.lines().filter_map(|l| l.strip_prefix("data:")).filter_map(|d| serde_json::from_str(d.trim()).ok());
        whole.chain(events).find(|m: &Value| &m["id"] == id).unwrap_or_else(|| panic!("no answer to {id} in {body:?}"))
    };

    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}});
    let response = post(None, init).await.unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(Some(&session), initialized).await.unwrap().status(), 202);

    for id in [json!(7), json!("call-a")] {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"n": 1}}});
        let response = post(Some(&session), call).await.unwrap();
        assert_eq!((response.status().as_u16(), content_type(&response)), (200, "application/json".to_owned()));
        let message: Value = response.json().await.unwrap();
        assert_eq!(message["id"], id);
        assert_eq!(message["result"]["structuredContent"], json!({"echo": {"n": 1}}), "{message}");
        assert_eq!(message["result"]["content"][0]["text"], r#"{"echo":{"n":1}}"#);
    }

    let unknown =
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "nope", "arguments": {}}});
    let message: Value = post(Some(&session), unknown).await.unwrap().json().await.unwrap();
    assert_eq!(message["error"]["code"], -32602, "{message}");
    assert!(message["error"]["message"].as_str().unwrap().starts_with("unknown tool \"nope\""), "{message}");

    // With a progress token: the SDK's way, an event stream, the same result.
    let with_meta = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"n": 2}, "_meta": {"progressToken": "p"}}});
    let response = post(Some(&session), with_meta).await.unwrap();
    assert_eq!((response.status().as_u16(), content_type(&response)), (200, "text/event-stream".to_owned()));
    let message = answer(&response.text().await.unwrap(), &json!(9));
    assert_eq!(message["result"]["structuredContent"], json!({"echo": {"n": 2}}), "{message}");

    // Cancelled: the call stops, and its answer says so (a sleep of 5 s
    // left alone would answer `slept_ms`).
    let sleep = json!({"jsonrpc": "2.0", "id": 11, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": 5000}}});
    let running = tokio::spawn(post(Some(&session), sleep));
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 11}});
    loop {
        // Until the call is running: before, the cancellation is not ours and goes to the SDK (202 too).
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(post(Some(&session), cancel.clone()).await.unwrap().status(), 202);
        if running.is_finished() {
            break;
        }
    }
    let message: Value = running.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(message["error"]["message"], "the call was cancelled", "{message}");

    // No such session: the SDK refuses it, as it did before the short way.
    let call = json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"name": "echo", "arguments": {}}});
    let response = post(Some("no-such-session"), call).await.unwrap();
    assert_eq!(response.status(), 404, "{:?}", response.text().await);
}
