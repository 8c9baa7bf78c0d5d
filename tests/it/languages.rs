//! Plugins in other languages, built from source by `plugins/build.sh`
//! (JavaScript, Python, Go, C, Zig), served by a real Switchboard and called
//! with signed tool-calls on loopback: proof that the WIT world and the
//! command contract work from each language's own toolchain.
//!
//! Every example is built on every run by `./test.sh` (`plugins/toolchains.sh
//! all && plugins/build.sh all`); a test fails, never skips, when its
//! artifact is missing or older than its sources, and says how to build it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};
use switchboard::{CompileSettings, Settings, Switchboard};

use crate::common::{TestServer, cache_entries, call, code_cache, plugins_dir};

/// `plugins/NAME.wasm`, built by `plugins/build.sh LANG`; panics with the
/// commands that build it when it is missing or older than its sources.
pub(crate) fn example(name: &str, lang: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let wasm = root.join("plugins").join(format!("{name}.wasm"));
    let build = format!("plugins/toolchains.sh {lang} && plugins/build.sh {lang}");
    let built = std::fs::metadata(&wasm)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("plugins/{name}.wasm is missing. Build it with:  {build}   (./test.sh does this)"));
    for source in std::fs::read_dir(root.join("plugins").join(name)).unwrap() {
        let source = source.unwrap().path();
        let changed = std::fs::metadata(&source).and_then(|m| m.modified()).unwrap();
        assert!(
            changed <= built,
            "plugins/{name}.wasm is older than {}. Rebuild it with:  {build}",
            source.strip_prefix(root).unwrap().display()
        );
    }
    wasm
}

/// Compiles `wasm` into the shared code cache once per test process, so that
/// tests starting servers with the same 13-18 MB component at the same time
/// wait for one compilation instead of each running their own.
pub(crate) fn precompile(wasm: &Path) {
    static DONE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if done.iter().any(|p| p == wasm) {
        return;
    }
    // Loading it once, alone, compiles it into the cache.
    let dir = plugins_dir(&[]);
    std::fs::copy(wasm, dir.path().join(wasm.file_name().unwrap())).unwrap();
    // On a runtime of its own: the calling test's may have one thread only.
    let plugins = std::thread::scope(|scope| {
        let load = || tokio::runtime::Runtime::new().unwrap().block_on(load_local(dir.path())).plugins();
        scope.spawn(load).join().unwrap()
    });
    assert!(plugins.iter().all(|p| p.loaded.is_ok()), "{plugins:?}");
    done.push(wasm.to_owned());
}

/// The plugins of `dir` loaded into this process, through the shared code cache.
async fn load_local(dir: &Path) -> Switchboard {
    let settings = Settings {
        plugins_dir: dir.to_owned(),
        cache_dir: Some(code_cache()),
        watch: false,
        dedup: None,
        // As TestServer: no background compiles of optimised code.
        compile: CompileSettings { background_threads: 0, ..CompileSettings::default() },
        ..Settings::default()
    };
    let switchboard = Switchboard::start_local(settings).await.unwrap();
    switchboard.plugins_loaded().await;
    switchboard
}

/// A plugins folder holding `plugins/NAME.wasm` and, when given, a manifest.
fn dir_with(name: &str, lang: &str, manifest: Option<&str>) -> tempfile::TempDir {
    let dir = plugins_dir(&[]);
    let wasm = example(name, lang);
    precompile(&wasm);
    std::fs::copy(&wasm, dir.path().join(format!("{name}.wasm"))).unwrap();
    if let Some(manifest) = manifest {
        std::fs::write(dir.path().join(format!("{name}.toml")), manifest).unwrap();
    }
    dir
}

/// The committed manifest `plugins/NAME.toml`.
fn committed_manifest(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins").join(format!("{name}.toml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn error_of(entry: &Value) -> &str {
    entry["error"].as_str().unwrap_or_else(|| panic!("expected an error, got {entry}"))
}

// ---- JavaScript: js_weather, with fetch through wasi:http ----------------

/// A stand-in for Open-Meteo's geocoding and forecast APIs, on a free
/// loopback port, that records the queries it gets.
struct FakeMeteo {
    port: u16,
    queries: Queries,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The requests seen: which API (`search` or `forecast`) and the query.
type Queries = Arc<Mutex<Vec<(String, HashMap<String, String>)>>>;

impl FakeMeteo {
    async fn start() -> Self {
        let queries = Queries::default();
        let app = axum::Router::new()
            .route(
                "/v1/search",
                axum::routing::get(async |State(q): State<Queries>, Query(query): Query<HashMap<String, String>>| {
                    let name = query.get("name").cloned().unwrap_or_default();
                    q.lock().unwrap().push(("search".into(), query));
                    if name.eq_ignore_ascii_case("utrecht") {
                        Json(json!({"results": [{"name": "Utrecht", "country": "Netherlands",
                            "latitude": 52.09, "longitude": 5.12, "timezone": "Europe/Amsterdam"}]}))
                    } else {
                        Json(json!({"generationtime_ms": 0.2}))
                    }
                }),
            )
            .route(
                "/v1/forecast",
                axum::routing::get(async |State(q): State<Queries>, Query(query): Query<HashMap<String, String>>| {
                    let fahrenheit = query.get("temperature_unit").map(String::as_str) == Some("fahrenheit");
                    q.lock().unwrap().push(("forecast".into(), query));
                    let temperature = if fahrenheit { 45.7 } else { 7.6 };
                    Json(json!({"current": {"time": "2026-11-28T14:00", "temperature_2m": temperature,
                        "apparent_temperature": 4.1, "weather_code": 61, "wind_speed_10m": 22.3}}))
                }),
            )
            .with_state(queries.clone());
        let (addr, stop) = crate::common::serve_upstream(app).await;
        Self { port: addr.port(), queries, _stop: stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn queries(&self) -> Vec<(String, HashMap<String, String>)> {
        self.queries.lock().unwrap().clone()
    }
}

/// js_weather's manifest, pointed at `upstream` and granting `granted`.
fn weather_manifest(upstream: &str, granted: &str) -> String {
    format!(
        "timeout_ms = 5000\n[http]\nallowed_hosts = [\"{granted}\"]\n\
         [config]\ngeocoding_url = \"{upstream}\"\nforecast_url = \"{upstream}/\"\n"
    )
}

#[tokio::test]
async fn javascript_weather_plugin_fetches_from_the_granted_host_only() {
    let meteo = FakeMeteo::start().await;
    let dir = dir_with("js_weather", "js", Some(&weather_manifest(&meteo.url(), &meteo.url())));
    let server = TestServer::serve_dir(dir, |_| {}).await;

    // The tool as the LLM sees it: its own name, description and schema.
    let tools = server.get_json("/tools").await;
    let tool = &tools["llm_config"]["tools"][0];
    assert_eq!(tool["name"], "get_weather", "{tools}");
    assert_eq!(tool["parameters"]["required"], json!(["city"]), "{tools}");

    let weather = call(&server, "get_weather", json!({"city": "Utrecht"})).await;
    assert_eq!(
        weather["result"],
        json!({"city": "Utrecht", "country": "Netherlands", "temperature": 7.6, "feels_like": 4.1,
            "units": "celsius", "conditions": "light rain", "wind_kmh": 22.3, "observed_at": "2026-11-28T14:00",
            "summary": "It is 8 degrees with light rain in Utrecht right now."}),
        "{weather}"
    );
    // Two real requests went out through fetch, with the coordinates found by the first.
    let queries = meteo.queries();
    assert_eq!(queries.len(), 2, "{queries:?}");
    assert_eq!((queries[0].0.as_str(), queries[0].1["name"].as_str()), ("search", "Utrecht"));
    assert_eq!((queries[1].0.as_str(), queries[1].1["latitude"].as_str()), ("forecast", "52.09"));
    assert_eq!(queries[1].1["temperature_unit"], "celsius");

    let fahrenheit = call(&server, "get_weather", json!({"city": "utrecht", "units": "fahrenheit"})).await;
    assert_eq!(fahrenheit["result"]["temperature"], 45.7, "{fahrenheit}");
    assert_eq!(fahrenheit["result"]["summary"], "It is 46 degrees Fahrenheit with light rain in Utrecht right now.");

    // The plugin's own errors, as the variants of the WIT world's tool-error.
    let nowhere = call(&server, "get_weather", json!({"city": "Atlantis"})).await;
    assert_eq!(error_of(&nowhere), "no place called \"Atlantis\" was found");
    let blank = call(&server, "get_weather", json!({"city": "  "})).await;
    assert_eq!(error_of(&blank), "invalid arguments: \"city\" must be a non-empty string");
    // The server checks the plugin's schema before the plugin runs.
    let missing = call(&server, "get_weather", json!({"town": "Utrecht"})).await;
    assert!(error_of(&missing).starts_with("invalid arguments:"), "{missing}");
    assert_eq!(meteo.queries().len(), 5, "the blank and the schema violation sent nothing");
}

#[tokio::test]
async fn javascript_fetch_to_a_host_not_granted_never_leaves_the_host() {
    let meteo = FakeMeteo::start().await;
    let elsewhere = FakeMeteo::start().await;
    // The manifest points the plugin at `meteo` but grants only `elsewhere`.
    let dir = dir_with("js_weather", "js", Some(&weather_manifest(&meteo.url(), &elsewhere.url())));
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let denied = call(&server, "get_weather", json!({"city": "Utrecht"})).await;
    assert!(error_of(&denied).starts_with("the weather service cannot be reached right now (geocoding:"), "{denied}");
    assert!(meteo.queries().is_empty() && elsewhere.queries().is_empty());
}

#[tokio::test]
async fn the_committed_weather_manifest_grants_only_open_meteo() {
    let manifest = committed_manifest("js_weather");
    let parsed: toml::Table = toml::from_str(&manifest).unwrap();
    let hosts: Vec<&str> =
        parsed["http"]["allowed_hosts"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    assert_eq!(hosts, ["https://geocoding-api.open-meteo.com", "https://api.open-meteo.com"]);
    // And the plugin loads with it (no network needed to load).
    let server = TestServer::serve_dir(dir_with("js_weather", "js", Some(&manifest)), |_| {}).await;
    assert_eq!(server.get_json("/tools").await["llm_config"]["tools"][0]["name"], "get_weather");
}

// ---- Python: py_faq -------------------------------------------------------

#[tokio::test]
async fn python_faq_plugin_answers_from_its_faq_or_the_configured_one() {
    let server = TestServer::serve_dir(dir_with("py_faq", "python", None), |_| {}).await;
    let names = server.tool_names().await;
    assert_eq!(names, ["answer_faq", "list_faq_topics"]);

    // Speech-to-text spelling ("parkin") still finds the parking answer.
    let parking = call(&server, "answer_faq", json!({"question": "Is there parkin near you?"})).await;
    assert_eq!(parking["result"]["topic"], "parking", "{parking}");
    assert!(parking["result"]["answer"].as_str().unwrap().contains("free parking"), "{parking}");
    let hours = call(&server, "answer_faq", json!({"question": "When do you close on Saturday?"})).await;
    assert_eq!(hours["result"]["topic"], "opening hours", "{hours}");
    let unknown = call(&server, "answer_faq", json!({"question": "Do you sell bicycles?"})).await;
    assert_eq!(
        error_of(&unknown),
        "no FAQ entry answers that; the FAQ covers: opening hours, parking, address, cancellation, prices"
    );
    let stopwords = call(&server, "answer_faq", json!({"question": "what is it?"})).await;
    assert_eq!(error_of(&stopwords), "invalid arguments: \"question\" has no words to look up");
    let topics = call(&server, "list_faq_topics", json!({})).await;
    assert_eq!(topics["result"]["topics"][1], "parking");

    // An operator's own FAQ, through wasi:config, without rebuilding.
    let faq = json!([{"topic": "pets", "keywords": ["dog", "dogs", "pet", "cat"], "answer": "Dogs are welcome."}]);
    let manifest = format!("[config]\nfaq = '{faq}'\n");
    let custom = TestServer::serve_dir(dir_with("py_faq", "python", Some(&manifest)), |_| {}).await;
    let dogs = call(&custom, "answer_faq", json!({"question": "Can I bring my dog?"})).await;
    assert_eq!(dogs["result"], json!({"topic": "pets", "answer": "Dogs are welcome.", "score": 1.0}), "{dogs}");
    let broken =
        TestServer::serve_dir(dir_with("py_faq", "python", Some("[config]\nfaq = '[{\"topic\": 1}]'\n")), |_| {}).await;
    let failed = call(&broken, "list_faq_topics", json!({})).await;
    assert!(error_of(&failed).starts_with("the FAQ in the configuration is malformed"), "{failed}");
}

#[tokio::test]
async fn python_faq_plugin_fetches_its_faq_over_http_from_the_granted_host_only() {
    let served = Arc::new(Mutex::new(Vec::<String>::new()));
    let app = axum::Router::new()
        .route(
            "/faq.json",
            axum::routing::get(async |State(seen): State<Arc<Mutex<Vec<String>>>>, headers: axum::http::HeaderMap| {
                let accept = headers.get("accept").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                seen.lock().unwrap().push(accept);
                Json(json!([{"topic": "pets", "keywords": ["dog", "dogs", "pet"], "answer": "Dogs are welcome."}]))
            }),
        )
        .with_state(served.clone());
    let (addr, _stop) = crate::common::serve_upstream(app).await;
    let upstream = format!("http://127.0.0.1:{}", addr.port());
    let manifest = |granted: &str| {
        format!(
            "timeout_ms = 5000\n[http]\nallowed_hosts = [\"{granted}\"]\n[config]\nfaq_url = \"{upstream}/faq.json\"\n"
        )
    };

    let server = TestServer::serve_dir(dir_with("py_faq", "python", Some(&manifest(&upstream))), |_| {}).await;
    let dogs = call(&server, "answer_faq", json!({"question": "Can I bring my dog?"})).await;
    assert_eq!(dogs["result"], json!({"topic": "pets", "answer": "Dogs are welcome.", "score": 1.0}), "{dogs}");
    assert_eq!(*served.lock().unwrap(), ["application/json"], "one GET, with its header");

    // The same plugin, its manifest granting another host: the GET is refused.
    let denied =
        TestServer::serve_dir(dir_with("py_faq", "python", Some(&manifest("https://faq.example.com"))), |_| {}).await;
    let refused = call(&denied, "answer_faq", json!({"question": "Can I bring my dog?"})).await;
    let error = error_of(&refused);
    assert!(error.starts_with(&format!("GET {upstream}/faq.json ")), "{refused}");
    assert!(error.contains("HTTP-request-denied") || error.contains("HttpRequestDenied"), "{refused}");
    assert_eq!(served.lock().unwrap().len(), 1, "the denied request never left");
}

// ---- Host tolerance and the code cache ------------------------------------

/// The names a component exports at its top level, read from its binary.
fn export_names(wasm: &Path) -> Vec<String> {
    let bytes = std::fs::read(wasm).unwrap();
    let mut depth = 0;
    let mut names = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        match payload.unwrap() {
            // Every module and component, nested ones included, opens with
            // its version and closes with its end.
            wasmparser::Payload::Version { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            wasmparser::Payload::ComponentExportSection(exports) if depth == 1 => {
                names.extend(exports.into_iter().map(|e| e.unwrap().name.name.to_owned()));
            }
            _ => {}
        }
    }
    names
}

#[tokio::test]
async fn large_components_with_extra_exports_start_from_the_code_cache() {
    let dir = plugins_dir(&[]);
    for (name, lang) in [("js_weather", "js"), ("py_faq", "python")] {
        let wasm = example(name, lang);
        precompile(&wasm);
        std::fs::copy(wasm, dir.path().join(format!("{name}.wasm"))).unwrap();
    }
    // Both are in the shared cache now; loading them again must compile
    // nothing (a compile writes an entry) and take a fraction of the time.
    let before = cache_entries(&code_cache());
    let started = Instant::now();
    let switchboard = load_local(dir.path()).await;
    let took = started.elapsed();
    let tools: Vec<String> = switchboard.tools().into_iter().map(|t| t.name).collect();
    assert!(tools.contains(&"get_weather".to_owned()) && tools.contains(&"answer_faq".to_owned()), "{tools:?}");
    let after = cache_entries(&code_cache());
    let written: Vec<_> = after.iter().filter(|e| !before.contains(e)).collect();
    assert!(written.is_empty(), "both large components come from the cache, yet these were written: {written:?}");
    eprintln!("loading js_weather and py_faq from the code cache: {took:?}");
    // Compiling them takes 20 s or more of CPU even in release builds.
    assert!(took < Duration::from_secs(10), "loading from the code cache took {took:?}");

    // componentize-py leaves an `exports` interface of its own beside
    // Switchboard's (and imports WASI 0.2.9 and 0.2.12 side by side); the
    // host links what it knows and ignores exports it does not use.
    assert_eq!(export_names(&dir.path().join("py_faq.wasm")), ["exports", "switchboard:plugin/tools@0.1.0"]);
}

#[tokio::test]
async fn a_large_component_compiling_does_not_stall_calls_to_other_plugins() {
    // An empty code cache of its own, so that js_weather (13 MB) really compiles.
    let cache = tempfile::tempdir().unwrap();
    let server = TestServer::serve_dir(plugins_dir(&["echo"]), |s| s.cache_dir = Some(cache.path().to_owned())).await;
    assert_eq!(call(&server, "echo", json!({"i": 0})).await["result"], json!({"echo": {"i": 0}}));

    // Drop the big plugin in, as a deploy would, and keep calling echo while
    // it compiles.
    let tmp = server.plugins_path().join(".js_weather.wasm.tmp");
    std::fs::copy(example("js_weather", "js"), &tmp).unwrap();
    std::fs::rename(&tmp, server.plugins_path().join("js_weather.wasm")).unwrap();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut calls = 0;
    loop {
        let sent = Instant::now();
        let entry = call(&server, "echo", json!({"i": calls + 1})).await;
        slowest = slowest.max(sent.elapsed());
        calls += 1;
        assert_eq!(entry["result"], json!({"echo": {"i": calls}}), "{entry}");
        let tools = server.get_json("/tools").await;
        if tools["llm_config"]["tools"].as_array().unwrap().iter().any(|t| t["name"] == "get_weather") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "js_weather did not load within 2 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let compiling = started.elapsed();
    eprintln!("js_weather compiled and loaded in {compiling:?}; {calls} echo calls meanwhile, slowest {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "an echo call took {slowest:?} while js_weather compiled");
}

// ---- Go, C, Zig -----------------------------------------------------------

#[tokio::test]
async fn go_command_plugin_tells_the_time_elsewhere() {
    // Saturday 28 November 2026, 14:30 UTC, fixed through the manifest's [config].
    let manifest = format!("{}\n[config]\nfake_now = \"2026-11-28T14:30:00Z\"\n", committed_manifest("go_world_clock"));
    let server = TestServer::serve_dir(dir_with("go_world_clock", "go", Some(&manifest)), |_| {}).await;
    let tokyo = call(&server, "local_time", json!({"place": "Tokyo", "open_hours": "09:00-17:30"})).await;
    assert_eq!(
        tokyo["result"],
        json!({"place": "Tokyo", "time_zone": "Asia/Tokyo", "time": "23:30", "weekday": "Saturday",
            "date": "2026-11-28", "utc_offset": "+09:00", "open_now": false,
            "summary": "It is 11:30 PM on Saturday in Tokyo. That is outside business hours."}),
        "{tokyo}"
    );
    let new_york = call(&server, "local_time", json!({"place": "America/New_York"})).await;
    assert_eq!(new_york["result"]["time"], "09:30", "{new_york}");
    assert_eq!(new_york["result"]["utc_offset"], "-05:00", "{new_york}");
    let unknown = call(&server, "local_time", json!({"place": "Gotham"})).await;
    assert!(error_of(&unknown).starts_with("I do not know the time zone of \"Gotham\""), "{unknown}");
    let hours = call(&server, "local_time", json!({"place": "Paris", "open_hours": "9-5"})).await;
    assert!(error_of(&hours).starts_with("invalid arguments:"), "{hours}");
}

#[tokio::test]
async fn zig_command_plugin_computes_a_payment_plan() {
    let dir = dir_with("zig_payment_plan", "zig", Some(&committed_manifest("zig_payment_plan")));
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let plan = call(&server, "payment_plan", json!({"amount": 1200, "months": 24, "annual_rate_percent": 6.9})).await;
    assert_eq!(
        plan["result"],
        json!({"monthly_payment": 53.67, "months": 24, "total_paid": 1288.15, "total_interest": 88.15,
            "summary": "That is 53.67 per month for 24 months, 1288.15 in total, of which 88.15 is interest."}),
        "{plan}"
    );
    let free = call(&server, "payment_plan", json!({"amount": 1200, "months": 12})).await;
    assert_eq!(free["result"]["monthly_payment"], 100.0, "{free}");
    // Caught by the manifest's schema before the plugin runs, or by the plugin.
    let zero = call(&server, "payment_plan", json!({"amount": 1200, "months": 0})).await;
    assert!(error_of(&zero).starts_with("invalid arguments:"), "{zero}");
}

#[tokio::test]
async fn c_component_plugin_spells_codes_and_checks_numbers() {
    let server = TestServer::serve_dir(dir_with("c_phonetic", "c", None), |_| {}).await;
    let names = server.tool_names().await;
    assert_eq!(names, ["check_number", "spell_phonetic"], "/tools lists by name");
    let spelled = call(&server, "spell_phonetic", json!({"text": "b7-k\u{e9}"})).await;
    assert_eq!(
        spelled["result"],
        json!({"spoken": "B as in Bravo, 7, dash, K as in Kilo, é", "characters": 5}),
        "{spelled}"
    );
    let valid = call(&server, "check_number", json!({"number": "4539 1488 0343 6467"})).await;
    assert_eq!(valid["result"], json!({"valid": true, "digits": 16, "last_four": "6467"}), "{valid}");
    let typo = call(&server, "check_number", json!({"number": "4539 1488 0343 6468"})).await;
    assert_eq!(typo["result"]["valid"], false, "{typo}");
    let letters = call(&server, "check_number", json!({"number": "12ab"})).await;
    assert_eq!(error_of(&letters), "invalid arguments: \"number\" may hold only digits, spaces and dashes");
}

/// A component that uses the component-model async ABI (`task.cancel`), as
/// componentize-qjs emits by default: the smallest such component.
const ASYNC_ABI_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00\x08\x02\x01\x05";

#[tokio::test]
async fn a_component_built_for_the_async_abi_is_refused_with_the_way_out() {
    let dir = plugins_dir(&[]);
    std::fs::write(dir.path().join("qjs.wasm"), ASYNC_ABI_COMPONENT).unwrap();
    let plugins = load_local(dir.path()).await.plugins();
    let Err(message) = &plugins[0].loaded else {
        panic!("a component needing the async ABI loaded");
    };
    assert!(message.starts_with("cannot compile: "), "{message}");
    assert!(message.contains("requires the component model async feature"), "{message}");
    assert!(message.contains("build it synchronous (componentize-qjs --sync"), "{message}");
}
