//! Compile tiers: a plugin first serves on baseline (Winch) code, then on
//! optimised (Cranelift) code compiled in the background and swapped in;
//! the code cache keeps both, and `switchboard compile` fills it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::{Value, json};
use switchboard::CompileSettings;

use crate::common::{KeepCalling, TestServer, cache_entries, call, eventually, plugins_dir};
use crate::languages::example;

/// Every plugin, however small, starts on the baseline tier unless its
/// optimised code is cached; `background_threads` compile the optimised code.
fn every_plugin_tiered(background_threads: usize) -> CompileSettings {
    CompileSettings { tiered: true, baseline_min_bytes: 0, background_threads }
}

/// The tier `/plugins` shows for plugin `name`, and its version.
async fn tier_of(server: &TestServer, name: &str) -> (String, String) {
    let plugins = server.get_json("/plugins").await;
    let plugin = plugins["plugins"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned();
    let plugin = plugin.unwrap_or_else(|| panic!("{name} is not loaded: {plugins}"));
    (plugin["tier"].as_str().unwrap().to_owned(), plugin["version"].as_str().unwrap().to_owned())
}

/// A server on `cache` serving `echo` with `compile`.
async fn echo_server(cache: &Path, compile: CompileSettings) -> TestServer {
    let cache = cache.to_owned();
    TestServer::start_with(&["echo"], move |s| {
        s.cache_dir = Some(cache);
        s.compile = compile;
    })
    .await
}

#[tokio::test]
async fn a_plugin_serves_on_the_baseline_tier_then_optimized_and_a_restart_serves_optimized_at_once() {
    let cache = tempfile::tempdir().unwrap();

    // No background compiles: the plugin serves, and stays, on baseline code.
    let server = echo_server(cache.path(), every_plugin_tiered(0)).await;
    let (tier, version) = tier_of(&server, "echo").await;
    assert_eq!(tier, "baseline");
    assert_eq!(call(&server, "echo", json!({"i": 1})).await["result"], json!({"echo": {"i": 1}}));
    assert_eq!(cache_entries(cache.path()).len(), 1, "the baseline code is cached");
    drop(server);

    // With a background compile thread, the optimised code is compiled and
    // swapped in while calls keep coming: every one answered, correctly.
    let server = Arc::new(echo_server(cache.path(), every_plugin_tiered(1)).await);
    let load = KeepCalling::start(&server, 4, |server, i| async move {
        let entry = call(&server, "echo", json!({"i": i})).await;
        assert_eq!(entry["result"], json!({"echo": {"i": i}}), "a call across the swap: {entry}");
        assert!(entry.get("error").is_none(), "{entry}");
    });
    eventually("the optimised code to serve", async || tier_of(&server, "echo").await.0 == "optimized").await;
    let before_stop = load.answered();
    eventually("calls on the optimised code", async || load.answered() > before_stop + 20).await;
    load.finish("no call failed or was answered wrongly across the swap").await;
    assert_eq!(tier_of(&server, "echo").await.1, version, "the same version, on another tier");
    let entries = cache_entries(cache.path());
    assert_eq!(entries.len(), 2, "both tiers are cached: {entries:?}");
    let server = Arc::into_inner(server).expect("workers are done");
    drop(server);

    // A restart finds the optimised code in the cache: optimised at once,
    // with nothing compiled (no entry written).
    let server = echo_server(cache.path(), every_plugin_tiered(0)).await;
    assert_eq!(tier_of(&server, "echo").await, ("optimized".to_owned(), version));
    assert_eq!(call(&server, "echo", json!({"i": 2})).await["result"], json!({"echo": {"i": 2}}));
    assert_eq!(cache_entries(cache.path()), entries, "nothing compiled on restart");
}

#[tokio::test]
async fn small_plugins_compile_optimized_and_tiers_can_be_turned_off() {
    let cache = tempfile::tempdir().unwrap();
    // Below the size threshold (echo is ~150 KB, the default is 1 MiB).
    let server = echo_server(cache.path(), CompileSettings::default()).await;
    assert_eq!(tier_of(&server, "echo").await.0, "optimized");
    drop(server);
    let cache = tempfile::tempdir().unwrap();
    let off = CompileSettings { tiered: false, ..every_plugin_tiered(1) };
    let server = echo_server(cache.path(), off).await;
    assert_eq!(tier_of(&server, "echo").await.0, "optimized");
    assert_eq!(cache_entries(cache.path()).len(), 1, "only optimised code compiled");
}

#[tokio::test]
async fn the_python_example_answers_on_baseline_code_compiled_from_an_empty_cache() {
    // py_faq (18.7 MB, CPython inside) on Winch's code: what a new version
    // serves on while its optimised code compiles.
    let cache = tempfile::tempdir().unwrap();
    let dir = plugins_dir(&[]);
    std::fs::copy(example("py_faq", "python"), dir.path().join("py_faq.wasm")).unwrap();
    let cache_path = cache.path().to_owned();
    let server = TestServer::serve_dir(dir, move |s| {
        s.cache_dir = Some(cache_path);
        s.compile = CompileSettings { background_threads: 0, ..CompileSettings::default() };
    })
    .await;
    assert_eq!(tier_of(&server, "py_faq").await.0, "baseline");
    let topics = call(&server, "list_faq_topics", json!({})).await;
    let listed = topics["result"]["topics"].as_array().unwrap_or_else(|| panic!("{topics}"));
    assert!(!listed.is_empty(), "{topics}");
}

/// Runs the binary with `args`; its exit code and what it printed.
fn run_binary(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env_remove("SWITCHBOARD_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code(), text)
}

#[tokio::test]
async fn switchboard_compile_fills_the_cache_so_a_server_starts_optimized() {
    let (dir, cache) = (plugins_dir(&["echo", "echo_command"]), tempfile::tempdir().unwrap());
    let config = dir.path().join("switchboard.toml");
    // Every plugin would start on the baseline tier, without a warm cache.
    std::fs::write(&config, "[compile]\nbaseline_min_kib = 0\nbackground_threads = 0\n").unwrap();
    let (plugins, config, cache_dir) = (dir.path().to_str().unwrap(), config.to_str().unwrap(), cache.path());
    let (code, printed) = run_binary(&["check", "--plugins", plugins, "--config", config]);
    assert_eq!(code, Some(0), "{printed}");
    assert!(printed.contains("echo (component, v") && printed.contains(", baseline): echo"), "{printed}");

    let compile = ["compile", "--plugins", plugins, "--config", config, "--cache-dir", cache_dir.to_str().unwrap()];
    let (code, printed) = run_binary(&compile);
    assert_eq!(code, Some(0), "{printed}");
    assert_eq!(cache_entries(cache_dir).len(), 2, "one optimised entry per plugin: {printed}");

    let cache_dir = cache_dir.to_owned();
    let server = TestServer::serve_dir(dir, move |s| {
        s.cache_dir = Some(cache_dir);
        s.compile = every_plugin_tiered(0);
    })
    .await;
    let plugins = server.get_json("/plugins").await;
    let tiers: Vec<&Value> = plugins["plugins"].as_array().unwrap().iter().map(|p| &p["tier"]).collect();
    assert_eq!(tiers, [&json!("optimized"), &json!("optimized")], "{plugins}");
}

/// A server started, as `configure` adjusts it, on echo and go_world_clock
/// (5 MB) with an empty code cache (returned, to keep): echo serves at once,
/// go_world_clock is still compiling. No background compiles.
async fn beside_a_large_plugin_compiling(
    configure: impl FnOnce(&mut switchboard::Settings),
) -> (TestServer, Arc<switchboard::Switchboard>, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let dir = plugins_dir(&["echo"]);
    std::fs::copy(example("go_world_clock", "go"), dir.path().join("go_world_clock.wasm")).unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/go_world_clock.toml");
    std::fs::copy(manifest, dir.path().join("go_world_clock.toml")).unwrap();
    let cache_dir = cache.path().to_owned();
    let (server, switchboard) = TestServer::serve_dir_at_once(dir, move |s| {
        s.cache_dir = Some(cache_dir);
        s.compile = CompileSettings { background_threads: 0, ..CompileSettings::default() };
        configure(s);
    })
    .await;
    (server, switchboard, cache)
}

/// At start, the plugins whose code loads quickly (from the code cache, or
/// small) serve at once; a large one that must be compiled loads after
/// them, `/readyz` says so until it has, and a call for its tool waits for
/// it rather than failing.
#[tokio::test]
async fn at_start_quick_plugins_serve_while_a_large_one_compiles_and_its_calls_wait_for_it() {
    let (server, switchboard, _cache) = beside_a_large_plugin_compiling(|_| {}).await;
    assert_eq!(switchboard.plugins_loading(), ["go_world_clock"], "{:?}", switchboard.plugins());

    // The small plugin answers while the large one compiles.
    let readyz = server.client.get(format!("{}/readyz", server.url)).send().await.unwrap();
    assert_eq!(readyz.status(), 503);
    let body: Value = readyz.json().await.unwrap();
    assert_eq!((&body["ready"], &body["loading"]), (&json!(false), &json!(["go_world_clock"])), "{body}");
    assert_eq!(call(&server, "echo", json!({"i": 1})).await["result"], json!({"echo": {"i": 1}}));
    let plugins = server.get_json("/plugins").await;
    assert_eq!(plugins["loading"], json!(["go_world_clock"]), "{plugins}");
    assert_eq!(switchboard.plugins_loading(), ["go_world_clock"], "echo answered before the compile ended");

    // A call for the large plugin's tool, sent now, waits for it.
    let tokyo = call(&server, "local_time", json!({"place": "Tokyo"})).await;
    assert_eq!(tokyo["result"]["time_zone"], "Asia/Tokyo", "{tokyo}");
    assert!(switchboard.plugins_loading().is_empty());
    let readyz = server.client.get(format!("{}/readyz", server.url)).send().await.unwrap();
    assert_eq!(readyz.status(), 200);
    assert_eq!(tier_of(&server, "go_world_clock").await.0, "baseline");

    // Once nothing is left loading, an unknown tool fails at once.
    let unknown = call(&server, "no_such_tool", json!({})).await;
    assert!(unknown["error"].as_str().unwrap().contains("no loaded plugin provides it"), "{unknown}");
}

/// A call for a tool no plugin serves waits for the plugins still compiling
/// from start only until its deadline, then fails naming them.
#[tokio::test]
async fn a_call_waiting_for_plugins_still_compiling_fails_at_its_deadline_naming_them() {
    let (server, switchboard, _cache) = beside_a_large_plugin_compiling(|s| {
        // A compile of 5 MB takes longer than this.
        s.tool_calls_budget = std::time::Duration::from_millis(250);
    })
    .await;
    assert_eq!(switchboard.plugins_loading(), ["go_world_clock"]);
    // Had it waited for the compile to end, it would say only that no
    // loaded plugin provides it.
    let unknown = call(&server, "no_such_tool", json!({})).await;
    let error = unknown["error"].as_str().unwrap();
    assert!(error.contains("still compiling (go_world_clock)"), "{unknown}");
    switchboard.plugins_loaded().await;
}
