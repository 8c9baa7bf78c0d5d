//! What one plugin call, or one request, may make the server hold or take:
//! host memory on a plugin's behalf (HTTP header fields, resource-table
//! entries, request bodies), the size of a result, and the instance pool.
//! Each test makes the attack through a real server and a real plugin
//! (`misbehave`), and checks it fails cleanly while the server keeps
//! answering. The memory tests run the `switchboard serve` binary, so that
//! its resident memory is the server's alone.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{SECRET, TestServer, code_cache, fresh_id, plugins_dir, signed_webhook, tool_calls};

const MIB: u64 = 1 << 20;

/// `switchboard serve` in a child process, on a free loopback port, killed
/// when dropped.
struct ServedBinary {
    child: Child,
    url: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl ServedBinary {
    /// Serves the named plugins, each `(name, manifest)` manifest beside its plugin.
    fn start(plugins: &[&str], manifests: &[(&str, &str)]) -> Self {
        let dir = plugins_dir(plugins);
        for (name, manifest) in manifests {
            std::fs::write(dir.path().join(format!("{name}.toml")), manifest).unwrap();
        }
        let config = dir.path().join("switchboard.toml");
        // The config file is beside the plugins, so `plugins = "."`.
        std::fs::write(&config, format!("plugins = \".\"\ncache_dir = {:?}\n", code_cache().display().to_string()))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["serve", "--listen", "127.0.0.1:0", "--no-watch", "--config"])
            .arg(&config)
            .env("SWITCHBOARD_SECRET", SECRET)
            .env("RUST_LOG", "warn,switchboard=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the switchboard binary starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let address = loop {
            let line = lines.next().expect("switchboard exited before listening").unwrap();
            if line.contains("switchboard listening")
                && let Some(rest) = line.split("address=").nth(1)
            {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep reading its log, so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Self { child, url: format!("http://{address}"), client, _dir: dir }
    }

    /// `(VmRSS, VmHWM)` of the server process, in bytes: resident now, and the peak.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
            line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Sends a signed tool-calls body and returns its results.
    async fn results(&self, body: &[u8]) -> Vec<Value> {
        let response = signed_webhook(&self.client, &self.url, body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let json: Value = response.json().await.unwrap();
        json["results"].as_array().expect("results").clone()
    }

    /// Asserts `echo` still answers, correctly.
    async fn assert_echo_answers(&self) {
        let results = self.results(&tool_calls(&[(&fresh_id(), "echo", json!({"still": "here"}))])).await;
        assert_eq!(results[0]["result"], json!({"echo": {"still": "here"}}), "{}", results[0]);
    }
}

impl Drop for ServedBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The error message of an entry; panics on a result.
fn error_of(entry: &Value) -> &str {
    entry["error"].as_str().unwrap_or_else(|| panic!("expected an error, got {}", truncated(entry)))
}

fn truncated(entry: &Value) -> String {
    let text = entry.to_string();
    if text.len() > 300 { format!("{}...", &text[..300]) } else { text }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// The probe's attack: with `memory_mib = 16`, tens of thousands of 120 KiB
/// header fields per call, a million pollables, and thousands of filled
/// request bodies took the host's memory without bound (4.1 GB from two
/// calls). Each now fails at the per-call host limit, and the server's peak
/// resident memory grows by less than the calls' limits plus the documented
/// host overhead (16 MiB + 8 MiB per call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_memory_a_plugin_makes_the_server_hold_is_bounded_per_call() {
    let server = ServedBinary::start(&["misbehave", "echo"], &[("misbehave", "memory_mib = 16\ntimeout_ms = 8000\n")]);
    // Warm up: the first calls of each plugin (code, pools, buffers).
    server.assert_echo_answers().await;
    let warm = server.results(&tool_calls(&[(&fresh_id(), "resource_flood", json!({"count": 10}))])).await;
    assert_eq!(warm[0]["result"], json!({"created": 10}), "{}", warm[0]);
    let (rss_before, peak_before) = server.memory();

    let attacks: [(&str, Value, &str); 4] = [
        // The probe's: each field over the cap of one set of fields...
        ("header_flood", json!({"fields": 16_000, "value_bytes": 120 << 10}), "HTTP header"),
        // ... and each under it, many of them.
        ("header_flood", json!({"fields": 16_000, "value_bytes": 60 << 10}), "HTTP header"),
        ("resource_flood", json!({"count": 1_000_000}), "resources"),
        ("body_flood", json!({"requests": 4_000}), "request bodies"),
    ];
    let mut calls = 0;
    for (tool, arguments, needle) in attacks {
        // Two calls at once, as the probe sent them.
        let body = tool_calls(&[(&fresh_id(), tool, arguments.clone()), (&fresh_id(), tool, arguments)]);
        let started = Instant::now();
        let results = server.results(&body).await;
        calls += results.len() as u64;
        let (rss, peak) = server.memory();
        eprintln!(
            "{tool}: answered in {:?}; VmRSS {:.1} -> {:.1} MiB, VmHWM {:.1} -> {:.1} MiB",
            started.elapsed(),
            mib(rss_before),
            mib(rss),
            mib(peak_before),
            mib(peak)
        );
        for entry in &results {
            let error = error_of(entry);
            eprintln!("  {error}");
            assert!(error.contains("host limit") && error.contains(needle), "{tool}: {error}");
        }
        server.assert_echo_answers().await;
    }
    let (rss_after, peak_after) = server.memory();
    let bound = calls * (16 + 8) * MIB;
    assert!(
        peak_after - peak_before < bound,
        "peak resident memory grew by {:.1} MiB over {calls} calls (bound {:.0} MiB)",
        mib(peak_after - peak_before),
        mib(bound)
    );
    assert!(rss_after < rss_before + bound, "resident memory {:.1} -> {:.1} MiB", mib(rss_before), mib(rss_after));
}

/// The probe's second finding: a 24 MiB result was kept whole by the
/// duplicate store for ten minutes, per call. A result over
/// `max_result_bytes` (default 1 MiB) now fails its call, and the server's
/// memory does not grow by the result's size per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_over_max_result_bytes_fail_and_are_not_kept() {
    const RESULT: u64 = 24 * MIB;
    let server = ServedBinary::start(&["misbehave", "echo"], &[]);
    server.assert_echo_answers().await;
    let warm = server.results(&tool_calls(&[(&fresh_id(), "big_result", json!({"count": 1000}))])).await;
    assert_eq!(warm[0]["result"].as_str().map(str::len), Some(1000), "a small result passes");
    let (rss_before, peak_before) = server.memory();
    let calls = 6;
    let mut rss_after_first = 0;
    for call in 0..calls {
        let results = server.results(&tool_calls(&[(&fresh_id(), "big_result", json!({"count": RESULT}))])).await;
        assert_eq!(error_of(&results[0]), "the tool's result is larger than the limit of 1048576 bytes");
        if call == 0 {
            rss_after_first = server.memory().0;
        }
    }
    let (rss_after, peak_after) = server.memory();
    eprintln!(
        "{calls} results of {} MiB: VmRSS {:.1} -> {:.1} MiB, VmHWM {:.1} -> {:.1} MiB",
        RESULT / MIB,
        mib(rss_before),
        mib(rss_after),
        mib(peak_before),
        mib(peak_after)
    );
    // Each call's result passes through once (and the plugin's own memory
    // holds it while it runs); none of them stays. The allocator may keep
    // the pages of the first, but the calls after it add nothing like a
    // result each.
    assert!(
        rss_after < rss_after_first + RESULT / 2,
        "resident memory grew from {:.1} to {:.1} MiB over {} more results of {} MiB",
        mib(rss_after_first),
        mib(rss_after),
        calls - 1,
        RESULT / MIB
    );
    assert!(
        rss_after < rss_before + 2 * RESULT,
        "resident memory grew by {:.1} MiB over {calls} results of {} MiB",
        mib(rss_after.saturating_sub(rss_before)),
        RESULT / MIB
    );
    server.assert_echo_answers().await;
}

/// `max_result_bytes` from a manifest, for components and command plugins
/// (whose result is their stdout), counted on the result as returned.
#[tokio::test]
async fn a_manifest_sets_max_result_bytes_for_components_and_commands() {
    let dir = plugins_dir(&["misbehave", "command_misbehave"]);
    std::fs::write(dir.path().join("misbehave.toml"), "max_result_bytes = 1000\n").unwrap();
    std::fs::rename(dir.path().join("command_misbehave.wasm"), dir.path().join("greet.wasm")).unwrap();
    std::fs::write(dir.path().join("greet.toml"), "max_result_bytes = 1000\n[[tools]]\nname = \"greet\"\n").unwrap();
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let too_large = "the tool's result is larger than the limit of 1000 bytes";
    let results = crate::common::results(
        &server,
        &tool_calls(&[
            // A JSON string of 998 characters is 1000 bytes; of 999, 1001.
            ("fits", "big_result", json!({"count": 998})),
            ("over", "big_result", json!({"count": 999})),
            ("small", "greet", json!({"who": "Jan"})),
            ("large", "greet", json!({"who": "x".repeat(1000)})),
        ]),
    )
    .await;
    assert_eq!(results[0]["result"].as_str().map(str::len), Some(998), "{}", truncated(&results[0]));
    assert_eq!(error_of(&results[1]), too_large);
    assert_eq!(results[2]["result"]["arguments"], json!({"who": "Jan"}), "{}", results[2]);
    assert_eq!(error_of(&results[3]), too_large);
}

/// The outcomes of a request's entries: how many results, how many errors
/// containing each of `kinds`, and the other errors.
fn count_outcomes(results: &[Value], kinds: &[&str]) -> (usize, Vec<usize>, Vec<String>) {
    let mut ok = 0;
    let mut counted = vec![0; kinds.len()];
    let mut other = Vec::new();
    for entry in results {
        match entry["error"].as_str() {
            None => ok += 1,
            Some(error) => match kinds.iter().position(|kind| error.contains(kind)) {
                Some(i) => counted[i] += 1,
                None => other.push(error.to_owned()),
            },
        }
    }
    (ok, counted, other)
}

/// Sends `sleepers` calls of `sleep` in one request and, while they run,
/// an `echo` call in another; returns the big request's results in order
/// (checked against their ids) and how long echo took.
async fn sleepers_and_an_echo(server: &TestServer, sleepers: usize, ms: u64) -> (Vec<Value>, Duration) {
    let ids: Vec<String> = (0..sleepers).map(|_| fresh_id()).collect();
    let calls: Vec<_> = ids.iter().map(|id| (id.as_str(), "sleep", json!({ "ms": ms }))).collect();
    let body = tool_calls(&calls);
    let (url, client) = (server.url.clone(), server.client.clone());
    let big = tokio::spawn(async move {
        let response = signed_webhook(&client, &url, &body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["results"].as_array().unwrap().clone()
    });
    // Let the big request fill what it can, then ask something else.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let echo = crate::common::call(server, "echo", json!({"unrelated": true})).await;
    let echo_took = started.elapsed();
    assert_eq!(echo["result"], json!({"echo": {"unrelated": true}}), "{echo}");
    let results = big.await.unwrap();
    assert_eq!(results.len(), sleepers, "one entry per call");
    assert!(results.iter().zip(&ids).all(|(entry, id)| entry["tool_call_id"] == id.as_str()), "in request order");
    (results, echo_took)
}

/// The probe's third finding: one signed webhook with 1,700 calls of a
/// sleeping tool exhausted the instance pool, failing 700 of its own calls
/// and an unrelated `echo` call ("maximum concurrent limit of 3000 for core
/// instances reached"). Now a request runs at most `max_tool_calls_per_request`
/// calls (the rest get an error entry each), a plugin at most
/// `max_concurrent_calls` at once (by default a quarter of the pool), and a
/// call that finds the pool full waits for room within its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_cannot_starve_other_calls_of_the_instance_pool() {
    let not_run = "not run: the request has 1700 tool calls";
    let no_slot = "maximum concurrent limit";

    // Defaults: the first 64 calls run, the other 1,636 are refused, each in its place.
    let server = TestServer::start(&["misbehave", "echo"]).await;
    let (results, echo_took) = sleepers_and_an_echo(&server, 1_700, 100).await;
    let (ok, counted, other) = count_outcomes(&results, &[not_run, no_slot]);
    eprintln!(
        "defaults: {ok} ok, {} not run, {} no slot, other {other:?}; echo in {echo_took:?}",
        counted[0], counted[1]
    );
    assert_eq!((ok, counted[0], other.len()), (64, 1_636, 0), "{other:?}");
    assert!(results[..64].iter().all(|r| r["result"] == json!({"slept_ms": 100})));

    // All 1,700 allowed to run: the plugin's own cap (a quarter of the pool)
    // makes them run in turns, and echo never waits behind them.
    let server = TestServer::start_with(&["misbehave", "echo"], |s| s.max_tool_calls_per_request = 2_000).await;
    let (results, echo_took) = sleepers_and_an_echo(&server, 1_700, 100).await;
    let (ok, counted, other) = count_outcomes(&results, &[no_slot]);
    eprintln!("plugin cap: {ok} ok, {} no slot, other {other:?}; echo in {echo_took:?}", counted[0]);
    assert_eq!((ok, other.len()), (1_700, 0), "{other:?}");
    // Not behind them in any queue (on a busy test machine, still well inside the budget).
    assert!(echo_took < Duration::from_secs(5), "echo took {echo_took:?}");

    // A manifest lifting the plugin's cap: the pool fills, and calls wait for
    // room (echo's too) instead of failing.
    let dir = plugins_dir(&["misbehave", "echo"]);
    std::fs::write(dir.path().join("misbehave.toml"), "max_concurrent_calls = 2000\n").unwrap();
    let server = TestServer::serve_dir(dir, |s| s.max_tool_calls_per_request = 2_000).await;
    let (results, echo_took) = sleepers_and_an_echo(&server, 1_700, 100).await;
    let (ok, counted, other) = count_outcomes(&results, &[no_slot]);
    eprintln!("pool full: {ok} ok, {} no slot, other {other:?}; echo in {echo_took:?}", counted[0]);
    assert_eq!((ok, other.len()), (1_700, 0), "{other:?}");
}
