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
    assert_eq!(
        server.get_json("/readyz").await,
        json!({"ready": true, "draining": false, "plugins": 1, "failed": 0, "loading": []})
    );
    results(&server, &tool_calls(&[("1", "echo", json!({})), ("2", "nope", json!({}))])).await;
    let metrics = server.client.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"switchboard_webhook_requests_total{event="tool-calls",status="200"} 1"#), "{metrics}");
    assert!(
        metrics.contains(r#"switchboard_tool_calls_total{tool="echo",door="webhook",outcome="ok"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"switchboard_tool_calls_total{tool="<unknown>",door="webhook",outcome="error"} 1"#),
        "{metrics}"
    );
    let _: Value = server.get_json("/plugins").await;
}

/// A Switchboard serving `settings` on every address (port 0), as a
/// deployment behind a load balancer does; stopped when the sender drops.
pub(crate) async fn serve_everywhere(
    settings: switchboard::Settings,
) -> (switchboard::Switchboard, u16, tokio::sync::oneshot::Sender<()>) {
    let switchboard = switchboard::Switchboard::start(settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = switchboard.clone();
    tokio::spawn(async move {
        switchboard::serve(listener, &serving, async {
            let _ = stopped.await;
        })
        .await
    });
    (switchboard, port, stop)
}

async fn status(url: String, token: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn operator_endpoints_answer_local_clients_or_the_admin_token() {
    let dir = plugins_dir(&["echo"]);
    let settings = switchboard::Settings {
        plugins_dir: dir.path().to_owned(),
        secrets: vec![crate::common::SECRET.into()],
        cache_dir: Some(crate::common::code_cache()),
        admin_token: Some("adm-token".into()),
        ..Default::default()
    };
    let (_switchboard, port, _stop) = serve_everywhere(settings).await;
    for path in ["/metrics", "/tools", "/plugins", "/healthz", "/readyz"] {
        assert_eq!(status(format!("http://127.0.0.1:{port}{path}"), None).await, 200, "{path} from loopback");
    }
    let Some(ip) = crate::mcp::non_loopback_address() else {
        eprintln!("this machine has no non-loopback address; the off-machine case was not exercised");
        return;
    };
    for path in ["/metrics", "/tools", "/plugins"] {
        let url = format!("http://{ip}:{port}{path}");
        assert_eq!(status(url.clone(), None).await, 401, "{path} from {ip} without the token");
        assert_eq!(status(url.clone(), Some("wrong")).await, 401, "{path} with a wrong token");
        assert_eq!(status(url, Some("adm-token")).await, 200, "{path} with the admin token");
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(status(format!("http://{ip}:{port}{path}"), None).await, 200, "{path} stays open");
    }
    // The dashboard's page holds no data: it loads for anyone, and what it
    // reads asks for the token (tests/it/dashboard.rs).
    assert_eq!(status(format!("http://{ip}:{port}/ui/"), None).await, 200, "the dashboard's page");
}

#[tokio::test]
async fn operator_endpoints_can_move_to_a_listener_of_their_own() {
    let dir = plugins_dir(&["echo"]);
    let settings = switchboard::Settings {
        plugins_dir: dir.path().to_owned(),
        secrets: vec![crate::common::SECRET.into()],
        cache_dir: Some(crate::common::code_cache()),
        separate_admin: true,
        header_read_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let (switchboard, port, _stop) = serve_everywhere(settings).await;
    assert_eq!(status(format!("http://127.0.0.1:{port}/plugins"), None).await, 404, "not on the main listener");
    assert_eq!(status(format!("http://127.0.0.1:{port}/ui/"), None).await, 404, "nor the dashboard that reads them");
    assert_eq!(status(format!("http://127.0.0.1:{port}/readyz"), None).await, 200);
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_port = admin.local_addr().unwrap().port();
    let served = switchboard.clone();
    tokio::spawn(async move { switchboard::serve_admin(admin, &served, std::future::pending()).await });
    let plugins: Value =
        reqwest::get(format!("http://127.0.0.1:{admin_port}/plugins")).await.unwrap().json().await.unwrap();
    assert_eq!(plugins["plugins"][0]["name"], "echo");
    assert_eq!(status(format!("http://127.0.0.1:{admin_port}/metrics"), None).await, 200);
    assert_eq!(status(format!("http://127.0.0.1:{admin_port}/ui/"), None).await, 200, "the dashboard is with them");

    // It has the main listener's timeouts: half a request, then nothing,
    // and the connection is closed, not held.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut half_sent = tokio::net::TcpStream::connect(("127.0.0.1", admin_port)).await.unwrap();
    half_sent.write_all(b"GET /plugins HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), half_sent.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the admin listener kept a half-sent request open for 10 s");
    // Counted as the admin listener's, not the main one's.
    let metrics = reqwest::get(format!("http://127.0.0.1:{admin_port}/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"switchboard_connections_timed_out_total{listener="admin",phase="headers"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"listener="main",phase="headers"} 1"#), "{metrics}");
}

#[tokio::test]
async fn the_binary_serves_operator_endpoints_on_admin_listen() {
    let dir = plugins_dir(&["echo"]);
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (main, admin) = (free_port(), free_port());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--no-watch", "--listen", &format!("127.0.0.1:{main}"), "--admin-listen"])
        .arg(format!("127.0.0.1:{admin}"))
        .arg("--plugins")
        .arg(dir.path())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("SWITCHBOARD_SECRET", crate::common::SECRET)
        .env_remove("SWITCHBOARD_ADMIN_TOKEN")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    crate::common::eventually("the admin listener answers", async || {
        reqwest::get(format!("http://127.0.0.1:{admin}/plugins")).await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert_eq!(status(format!("http://127.0.0.1:{main}/plugins"), None).await, 404);
    assert_eq!(status(format!("http://127.0.0.1:{main}/healthz"), None).await, 200);
    child.kill().await.unwrap();
}
