//! `switchboard serve --dev`, the real binary: duplicate suppression off
//! (the same request sent again runs the plugin again, with no replay
//! header), and each reload logged as it starts and as it ends, with its
//! time, in a log without colour codes (stderr is not a terminal here).

use std::time::Duration;

use serde_json::json;

use crate::common::{SECRET, code_cache, eventually, metric, plugin_wasm, plugins_dir, signed_webhook, tool_calls};

#[tokio::test]
async fn serve_dev_runs_repeated_requests_again_and_logs_reloads() {
    let plugins = plugins_dir(&["echo"]);
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("switchboard.toml");
    std::fs::write(&config, format!("cache_dir = {:?}\n", code_cache().display().to_string())).unwrap();
    let log_path = config_dir.path().join("stderr.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let _child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--plugins")
        .arg(plugins.path())
        .arg("--config")
        .arg(&config)
        .env("SWITCHBOARD_SECRET", SECRET)
        .env_remove("RUST_LOG")
        .env_remove("SWITCHBOARD_LOG_FORMAT")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    eventually("the server is ready", async || {
        client.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;

    let body = tool_calls(&[("dev-1", "echo", json!({"n": 1}))]);
    for _ in 0..2 {
        let response = signed_webhook(&client, &url, &body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("switchboard-replayed").is_none(), "{:?}", response.headers());
    }
    let metrics = client.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    let ran = metric(&metrics, r#"switchboard_tool_calls_total{tool="echo",door="webhook",outcome="ok"}"#);
    assert_eq!(ran, 2.0, "the plugin ran twice");

    // A new version of the file: its reload is logged as it starts and ends.
    let replacement = plugins.path().join(".echo.wasm.tmp");
    std::fs::copy(plugin_wasm("misbehave"), &replacement).unwrap();
    std::fs::rename(&replacement, plugins.path().join("echo.wasm")).unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    eventually("the reload is logged", async || log().contains("plugin loaded") && log().contains("elapsed_ms")).await;
    let log = log();
    let started = log.find("plugin changed: reloading").expect("the reload's start is logged");
    assert!(started < log.rfind("plugin loaded").unwrap(), "{log}");
    assert!(log.contains("development mode (--dev)"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log that is not a terminal: {log:?}");
}
