//! Hot reload: files added, replaced, corrupted, half-written and removed
//! while the server answers calls.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard::{Settings, Switchboard};

use crate::common::{
    KeepCalling, TestServer, cache_entries, eventually, fresh_id, plugin_wasm, plugins_dir, tool_calls,
};

/// v1 of tool `greet` answers `{"echo": args}`; v2 answers `{"tool": "greet", ...}`.
fn v1() -> Vec<u8> {
    std::fs::read(plugin_wasm("echo_command")).unwrap()
}
fn v2() -> Vec<u8> {
    std::fs::read(plugin_wasm("command_misbehave")).unwrap()
}

/// Writes a hidden temporary file and renames it over `NAME.wasm`, as deploy tools do.
fn replace(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.wasm.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{name}.wasm"))).unwrap();
}

/// Which version answered `greet` with `{"i": i}`; panics on a wrong answer.
fn version_of(entry: &Value, i: u64) -> u8 {
    if entry["result"] == json!({"echo": {"i": i}}) {
        1
    } else if entry["result"] == json!({"tool": "greet", "arguments": {"i": i}, "call_id": "call-1"}) {
        2
    } else {
        panic!("wrong answer for {i}: {entry}")
    }
}

async fn greet(server: &TestServer, i: u64) -> Value {
    let response = server.send(&tool_calls(&[(&fresh_id(), "greet", json!({"i": i}))])).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["results"][0].clone()
}

#[tokio::test]
async fn replacing_a_plugin_under_load_never_fails_or_mixes_answers() {
    let dir = plugins_dir(&[]);
    replace(dir.path(), "greet", &v1());
    let server = Arc::new(TestServer::serve_dir(dir, |_| {}).await);
    let load = KeepCalling::start(&server, 3, |server, i| async move {
        let entry = greet(&server, i).await;
        assert!(entry.get("error").is_none(), "a call failed during reload: {entry}");
        version_of(&entry, i);
    });
    for round in 0..6u64 {
        let (bytes, want) = if round % 2 == 0 { (v2(), 2) } else { (v1(), 1) };
        replace(server.plugins_path(), "greet", &bytes);
        eventually("the new version to answer", async || version_of(&greet(&server, 7).await, 7) == want).await;
    }
    let answered = load.finish("no worker saw a failed or wrong answer").await;
    assert!(answered > 10, "the load kept running during the reloads");
}

#[tokio::test]
async fn a_corrupt_file_keeps_the_old_version_and_reports_the_error() {
    let dir = plugins_dir(&[]);
    replace(dir.path(), "greet", &v1());
    let server = TestServer::serve_dir(dir, |_| {}).await;
    assert_eq!(version_of(&greet(&server, 1).await, 1), 1);
    replace(server.plugins_path(), "greet", b"\0asm\x01\0\0\0this is not a module");
    eventually("the error to show in /plugins", async || {
        server.get_json("/plugins").await["errors"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await;
    let plugins = server.get_json("/plugins").await;
    assert_eq!(plugins["errors"][0]["name"], "greet");
    assert!(plugins["errors"][0]["error"].as_str().unwrap().starts_with("cannot compile"), "{plugins}");
    assert_eq!(plugins["plugins"][0]["name"], "greet", "the old version is still listed");
    assert_eq!(version_of(&greet(&server, 2).await, 2), 1, "the old version still answers");
    // A good file clears the error.
    replace(server.plugins_path(), "greet", &v2());
    eventually("v2", async || version_of(&greet(&server, 3).await, 3) == 2).await;
    assert_eq!(server.get_json("/plugins").await["errors"], json!([]));
}

#[tokio::test]
async fn adding_and_deleting_files_adds_and_removes_tools() {
    let server = TestServer::start(&["echo"]).await;
    std::fs::copy(plugin_wasm("lookup_contact"), server.plugins_path().join("lookup_contact.wasm")).unwrap();
    eventually("lookup_contact to load", async || {
        greet_tool(&server, "lookup_contact", json!({"query": "John"})).await["result"]["name"] == "John Smith"
    })
    .await;
    std::fs::remove_file(server.plugins_path().join("echo.wasm")).unwrap();
    eventually("echo to go", async || {
        greet_tool(&server, "echo", json!({})).await["error"].as_str().is_some_and(|e| e.contains("unknown tool"))
    })
    .await;
    let tools = server.get_json("/tools").await;
    assert_eq!(tools["llm_config"]["tools"].as_array().unwrap().len(), 1);
}

async fn greet_tool(server: &TestServer, tool: &str, args: Value) -> Value {
    let body: Value = server.send(&tool_calls(&[(&fresh_id(), tool, args)])).await.json().await.unwrap();
    body["results"][0].clone()
}

#[tokio::test]
async fn a_half_written_file_is_not_loaded_until_complete() {
    use std::io::Write;
    let dir = plugins_dir(&[]);
    replace(dir.path(), "greet", &v1());
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let new = v2();
    let path = server.plugins_path().join("greet.wasm");
    let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
    file.write_all(&new[..new.len() / 2]).unwrap();
    file.flush().unwrap();
    // Well past the debounce: the half file has been seen and refused.
    tokio::time::sleep(Duration::from_millis(400)).await;
    for i in 0..5 {
        assert_eq!(version_of(&greet(&server, i).await, i), 1, "the old version serves while the file is incomplete");
    }
    file.write_all(&new[new.len() / 2..]).unwrap();
    drop(file);
    eventually("the completed file to load", async || version_of(&greet(&server, 9).await, 9) == 2).await;
}

#[tokio::test]
async fn a_manifest_change_reloads_its_plugin() {
    let dir = plugins_dir(&[]);
    replace(dir.path(), "greet", &v2());
    let server = TestServer::serve_dir(dir, |_| {}).await;
    std::fs::write(server.plugins_path().join("greet.toml"), "[[tools]]\nname = \"hello\"\n").unwrap();
    eventually("tool hello", async || greet_tool(&server, "hello", json!({})).await["result"]["tool"] == "hello").await;
    assert!(greet_tool(&server, "greet", json!({})).await["error"].is_string(), "greet is no longer a tool");
}

/// `bytes` with a custom section appended: same code, different hash.
fn with_custom_section(mut bytes: Vec<u8>, payload: &[u8]) -> Vec<u8> {
    let name = b"switchboard-test";
    let content_len = 1 + name.len() + payload.len();
    assert!(content_len < 128 && name.len() < 128, "one-byte LEB128 sizes");
    bytes.push(0);
    bytes.push(content_len as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    bytes
}

#[tokio::test]
async fn the_code_cache_is_used_when_a_file_is_unchanged_and_not_when_it_changed() {
    let cache = tempfile::tempdir().unwrap();
    let dir = plugins_dir(&["echo", "echo_command"]);
    // A load compiles only what the cache lacks, and writes each compiled
    // file as a new entry: entries written are the cache's misses.
    let load = async |dir: &Path| {
        let settings = Settings {
            plugins_dir: dir.to_owned(),
            cache_dir: Some(cache.path().to_owned()),
            watch: false,
            dedup: None,
            ..Settings::default()
        };
        let switchboard = Switchboard::start_local(settings).await.unwrap();
        assert!(switchboard.plugins().iter().all(|p| p.loaded.is_ok()), "{:?}", switchboard.plugins());
        cache_entries(cache.path())
    };
    let cold = load(dir.path()).await;
    assert_eq!(cold.len(), 2, "each plugin compiled once and cached: {cold:?}");
    let warm = load(dir.path()).await;
    assert_eq!(warm, cold, "nothing compiled again: every entry the same file, unmodified");
    let changed = with_custom_section(std::fs::read(plugin_wasm("echo_command")).unwrap(), b"v2");
    std::fs::write(dir.path().join("echo_command.wasm"), changed).unwrap();
    let after_change = load(dir.path()).await;
    assert_eq!(after_change.len(), 3, "the changed file compiled anew: {after_change:?}");
    assert!(cold.iter().all(|entry| after_change.contains(entry)), "the unchanged entries untouched");
}
