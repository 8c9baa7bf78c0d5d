//! Compile tiers, per example language: from the plugin file landing in a
//! served folder to its first correct answer (cold: empty code cache; warm:
//! both tiers cached), until its optimised code serves, per-call latency on
//! each tier, and peak memory; echo calls while ten large plugins compile,
//! landed in a running server and found at its start; and a restart with
//! every example cached by `switchboard compile`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Args;
use crate::client::{self, Conn, Expect};
use crate::extras::{Timings, plugins_dir, replace_file, with_custom_section};
use crate::load::percentile_us;
use crate::procfs;
use crate::servers::{ServerProc, free_port};

/// One example plugin: what it is called with and how its answer is told correct.
struct Example {
    language: &'static str,
    name: &'static str,
    tool: &'static str,
    arguments: &'static str,
    /// The answer's `result` must contain this (as compact JSON text).
    expect: &'static str,
}

const EXAMPLES: [Example; 6] = [
    Example { language: "Rust", name: "echo", tool: "echo", arguments: r#"{"q":1}"#, expect: r#"{"echo":{"q":1}}"# },
    Example {
        language: "JavaScript",
        name: "js_weather",
        tool: "get_weather",
        arguments: r#"{"city":"Utrecht"}"#,
        expect: r#""temperature""#,
    },
    Example { language: "Python", name: "py_faq", tool: "list_faq_topics", arguments: "{}", expect: r#""parking""# },
    Example {
        language: "Go",
        name: "go_world_clock",
        tool: "local_time",
        arguments: r#"{"place":"Tokyo"}"#,
        expect: r#""Asia/Tokyo""#,
    },
    Example {
        language: "C",
        name: "c_phonetic",
        tool: "spell_phonetic",
        arguments: r#"{"text":"b7"}"#,
        expect: "Bravo",
    },
    Example {
        language: "Zig",
        name: "zig_payment_plan",
        tool: "payment_plan",
        arguments: r#"{"amount":1200,"months":24,"annual_rate_percent":6.9}"#,
        expect: "monthly_payment",
    },
];

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct LanguageTiers {
    pub language: String,
    pub plugin: String,
    pub bytes: usize,
    /// Empty code cache: from the rename into the folder to the first correct answer.
    pub cold_first_answer_ms: f64,
    /// The tier of that first answer.
    pub cold_tier: String,
    /// From the rename until GET /plugins showed the optimised tier (background compile on).
    pub optimized_after_ms: Option<f64>,
    /// Both tiers cached: from the rename to the first correct answer.
    pub warm_first_answer_ms: f64,
    pub warm_tier: String,
    /// Calls one at a time, over HTTP, on each tier.
    pub baseline_calls: Option<Timings>,
    pub optimized_calls: Option<Timings>,
    /// Server RSS before the file landed, MiB.
    pub idle_rss_mib: f64,
    /// Peak RSS (VmHWM) of the server up to its first answer, background compiles off, MiB.
    pub peak_first_answer_mib: f64,
    /// Peak RSS up to the optimised code serving, MiB.
    pub peak_until_optimized_mib: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct EchoWhileCompiling {
    pub plugins: usize,
    pub plugin_bytes: usize,
    /// Echo calls (one at a time) while the baseline compiles ran (until every plugin answered).
    pub baseline_phase: Option<Timings>,
    pub baseline_phase_s: f64,
    /// Echo calls while the optimised code compiled in the background.
    pub background_phase: Option<Timings>,
    pub background_phase_s: f64,
    /// How many of the plugins were optimised when the measurement stopped.
    pub optimized: usize,
    pub failed: u64,
    pub peak_rss_mib: f64,
}

/// A server started on a folder of `echo` (its code cached) and large
/// plugins whose code is not: echo serves first, the others compile after.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct StartWithColdPlugins {
    pub plugins: usize,
    /// From spawning `switchboard serve` to echo's first correct answer.
    pub echo_first_answer_ms: f64,
    /// From spawning it to GET /readyz 200 (every plugin loaded).
    pub all_ready_ms: f64,
    /// Echo calls (one at a time, 5 ms apart) between the two.
    pub echo_calls: Option<Timings>,
    pub failed: u64,
    /// Peak RSS (VmHWM) of the server until every plugin was loaded, MiB.
    pub peak_rss_mib: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TiersResult {
    pub languages: Vec<LanguageTiers>,
    pub under_compile: EchoWhileCompiling,
    #[serde(default)]
    pub start_cold: StartWithColdPlugins,
    /// `switchboard compile` of every example into an empty cache, s.
    pub compile_all_s: f64,
    pub restart_plugins: usize,
    /// From spawning `switchboard serve` to /readyz with every example loaded, all cached.
    pub restart_ms: Vec<f64>,
    pub restart_median_ms: f64,
    /// Tiers /plugins showed right after those restarts.
    pub restart_tiers: Vec<String>,
}

/// A config file for `serve`: the code cache, and `background_threads`.
fn config(dir: &Path, cache: &Path, background_threads: usize) -> anyhow::Result<PathBuf> {
    let path = dir.with_extension("toml");
    std::fs::write(
        &path,
        // The call log off, as before it existed (see servers::call_log_off_config).
        format!(
            "cache_dir = {:?}\n[compile]\nbackground_threads = {background_threads}\n[call_log]\nenabled = false\n",
            cache.display()
        ),
    )?;
    Ok(path)
}

fn serve(args: &Args, dir: &Path, config: &Path, name: &str) -> anyhow::Result<ServerProc> {
    let port = free_port();
    let mut command = Command::new(&args.switchboard);
    command
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--plugins")
        .arg(dir)
        .arg("--config")
        .arg(config);
    ServerProc::spawn(name, &mut command, port, &args.work.join(format!("{name}.log")))
}

async fn wait_ready(server: &mut ServerProc, plugins: usize) -> anyhow::Result<Duration> {
    let want = format!("\"plugins\":{plugins},");
    loop {
        if let Ok((status, body)) = Conn::default().get(&server.endpoint, "/readyz").await
            && status == 200
            && String::from_utf8_lossy(&body).replace(' ', "").contains(&want)
        {
            return Ok(server.started.elapsed());
        }
        anyhow::ensure!(!server.exited(), "switchboard exited; see {}", server.log.display());
        anyhow::ensure!(server.started.elapsed() < Duration::from_secs(300), "not ready; see {}", server.log.display());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Calls the example's tool once; Ok when the answer is correct.
async fn call_once(conn: &mut Conn, server: &ServerProc, example: &Example) -> Result<(), String> {
    let id = client::unique_id("tier");
    let body = client::tool_calls_body(&id, example.tool, example.arguments);
    let (status, bytes) = conn.post_webhook(&server.endpoint, body).await?;
    let result = client::one_result(status, &bytes, &id)?;
    if result.contains(example.expect) { Ok(()) } else { Err(format!("wrong answer: {result}")) }
}

/// Polls the tool until it answers correctly; the time from `t0`.
async fn first_answer(server: &mut ServerProc, example: &Example, t0: Instant) -> anyhow::Result<Duration> {
    let mut conn = Conn::default();
    loop {
        if call_once(&mut conn, server, example).await.is_ok() {
            return Ok(t0.elapsed());
        }
        anyhow::ensure!(!server.exited(), "switchboard exited; see {}", server.log.display());
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(120),
            "no correct answer from {} within 120 s",
            example.name
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The tiers GET /plugins shows, by plugin name.
async fn tiers(server: &ServerProc) -> Vec<(String, String)> {
    let Ok((_, body)) = Conn::default().get(&server.endpoint, "/plugins").await else { return Vec::new() };
    let plugins: Value = serde_json::from_slice(&body).unwrap_or_default();
    plugins["plugins"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|p| (p["name"].as_str().unwrap_or("").to_owned(), p["tier"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn tier_of(server: &ServerProc, name: &str) -> String {
    tiers(server).await.into_iter().find(|(n, _)| n == name).map(|(_, t)| t).unwrap_or_default()
}

/// `count` calls one at a time, after 10 untimed ones.
async fn timed_calls(server: &ServerProc, example: &Example, count: usize) -> anyhow::Result<Timings> {
    let mut conn = Conn::default();
    let mut ns = Vec::with_capacity(count);
    for i in 0..count + 10 {
        let t = Instant::now();
        call_once(&mut conn, server, example).await.map_err(anyhow::Error::msg)?;
        if i >= 10 {
            ns.push(t.elapsed().as_nanos() as u64);
        }
    }
    Ok(timings(example.name, ns))
}

fn timings(plugin: &str, mut ns: Vec<u64>) -> Timings {
    ns.sort_unstable();
    let count = ns.len();
    Timings {
        plugin: plugin.to_owned(),
        count,
        p50_us: percentile_us(&ns, 50.0),
        p99_us: percentile_us(&ns, 99.0),
        mean_us: ns.iter().sum::<u64>() as f64 / count.max(1) as f64 / 1e3,
        max_us: percentile_us(&ns, 100.0),
    }
}

fn mib(kib: Option<u64>) -> f64 {
    kib.unwrap_or(0) as f64 / 1024.0
}

/// A fake Open-Meteo for js_weather (no network here).
async fn fake_meteo() -> anyhow::Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let app = axum::Router::new()
        .route(
            "/v1/search",
            axum::routing::get(async || {
                axum::Json(json!({"results": [{"name": "Utrecht", "country": "Netherlands",
                    "latitude": 52.09, "longitude": 5.12, "timezone": "Europe/Amsterdam"}]}))
            }),
        )
        .route(
            "/v1/forecast",
            axum::routing::get(async || {
                axum::Json(json!({"current": {"time": "2026-11-28T14:00", "temperature_2m": 7.6,
                    "apparent_temperature": 4.1, "weather_code": 61, "wind_speed_10m": 22.3}}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok((url, tx))
}

/// The manifest an example is served with: the committed one, with
/// js_weather pointed at `meteo`.
fn manifest(args: &Args, name: &str, meteo: &str) -> Option<String> {
    if name == "js_weather" {
        return Some(format!(
            "timeout_ms = 5000\n[http]\nallowed_hosts = [\"{meteo}\"]\n\
             [config]\ngeocoding_url = \"{meteo}\"\nforecast_url = \"{meteo}/\"\n"
        ));
    }
    std::fs::read_to_string(args.root.join(format!("plugins/{name}.toml"))).ok()
}

/// Lands `example` in `dir` (its manifest first, then the code, renamed in);
/// returns when the code landed.
fn land(args: &Args, dir: &Path, example: &Example, meteo: &str) -> anyhow::Result<Instant> {
    if let Some(manifest) = manifest(args, example.name, meteo) {
        std::fs::write(dir.join(format!("{}.toml", example.name)), manifest)?;
    }
    let bytes = std::fs::read(args.root.join(format!("plugins/{}.wasm", example.name)))?;
    let t0 = Instant::now();
    replace_file(&dir.join(format!("{}.wasm", example.name)), &bytes)?;
    Ok(t0)
}

async fn language(args: &Args, example: &Example, meteo: &str, calls: usize) -> anyhow::Result<LanguageTiers> {
    let name = example.name;
    let bytes = std::fs::metadata(args.root.join(format!("plugins/{name}.wasm")))?.len() as usize;
    let mut r = LanguageTiers { language: example.language.into(), plugin: name.into(), bytes, ..Default::default() };
    let cache = args.work.join(format!("tiers-{name}-cache"));
    let _ = std::fs::remove_dir_all(&cache);

    // 1. Cold, background compiles off: the first answer, and calls on that tier.
    let dir = plugins_dir(args, &format!("tiers-{name}"), &[])?;
    let mut server = serve(args, &dir, &config(&dir, &cache, 0)?, &format!("tiers-{name}-cold"))?;
    wait_ready(&mut server, 0).await?;
    r.idle_rss_mib = mib(procfs::status_kib(server.pid, "VmRSS"));
    let t0 = land(args, &dir, example, meteo)?;
    r.cold_first_answer_ms = first_answer(&mut server, example, t0).await?.as_secs_f64() * 1e3;
    r.cold_tier = tier_of(&server, name).await;
    r.peak_first_answer_mib = mib(procfs::status_kib(server.pid, "VmHWM"));
    if r.cold_tier == "baseline" {
        r.baseline_calls = Some(timed_calls(&server, example, calls).await?);
    }
    server.stop();

    // 2. Cold, background compile on: until the optimised code serves.
    let _ = std::fs::remove_dir_all(&cache);
    let dir = plugins_dir(args, &format!("tiers-{name}"), &[])?;
    let mut server = serve(args, &dir, &config(&dir, &cache, 1)?, &format!("tiers-{name}-optimize"))?;
    wait_ready(&mut server, 0).await?;
    let t0 = land(args, &dir, example, meteo)?;
    first_answer(&mut server, example, t0).await?;
    loop {
        if tier_of(&server, name).await == "optimized" {
            r.optimized_after_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
            break;
        }
        anyhow::ensure!(!server.exited(), "switchboard exited; see {}", server.log.display());
        if t0.elapsed() > Duration::from_secs(600) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.peak_until_optimized_mib = mib(procfs::status_kib(server.pid, "VmHWM"));
    r.optimized_calls = Some(timed_calls(&server, example, calls).await?);
    server.stop();

    // 3. Warm: both tiers in the cache, the file lands again.
    let dir = plugins_dir(args, &format!("tiers-{name}"), &[])?;
    let mut server = serve(args, &dir, &config(&dir, &cache, 1)?, &format!("tiers-{name}-warm"))?;
    wait_ready(&mut server, 0).await?;
    let t0 = land(args, &dir, example, meteo)?;
    r.warm_first_answer_ms = first_answer(&mut server, example, t0).await?.as_secs_f64() * 1e3;
    r.warm_tier = tier_of(&server, name).await;
    server.stop();
    Ok(r)
}

/// Echo calls, one at a time, while `plugins` large plugins
/// ([`large_plugins`]) land at once in an empty cache.
async fn echo_while_compiling(args: &Args, plugins: usize, limit: Duration) -> anyhow::Result<EchoWhileCompiling> {
    let echo = args.root.join("plugins/echo.wasm");
    let dir = plugins_dir(args, "tiers-under-compile", &[&echo])?;
    let cache = args.work.join("tiers-under-compile-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let mut server = serve(args, &dir, &config(&dir, &cache, 1)?, "tiers-under-compile")?;
    server.wait_ready("echo", Expect::Echo, Duration::from_secs(60)).await?;
    let files = large_plugins(args, &dir, plugins)?;
    let mut result = EchoWhileCompiling { plugins, ..Default::default() };
    result.plugin_bytes = files.iter().map(|(_, b)| b.len()).sum::<usize>() / plugins.max(1);
    for (name, bytes) in &files {
        replace_file(&dir.join(format!("{name}.wasm")), bytes)?;
    }
    let t0 = Instant::now();
    let mut conn = Conn::default();
    let (mut baseline_ns, mut background_ns) = (Vec::new(), Vec::new());
    let mut all_loaded = false;
    let mut last_poll = Instant::now();
    let mut seq = 0;
    while t0.elapsed() < limit {
        seq += 1;
        let t = Instant::now();
        match client::call_tool(&mut conn, &server.endpoint, "echo", &client::unique_id("busy"), seq, Expect::Echo)
            .await
        {
            Ok(_) => {
                let took = t.elapsed().as_nanos() as u64;
                if all_loaded { background_ns.push(took) } else { baseline_ns.push(took) }
            }
            Err(_) => result.failed += 1,
        }
        if last_poll.elapsed() > Duration::from_millis(250) {
            last_poll = Instant::now();
            let tiers = tiers(&server).await;
            let large: Vec<&String> = tiers.iter().filter(|(n, _)| n.starts_with("large")).map(|(_, t)| t).collect();
            anyhow::ensure!(large.len() <= plugins, "unexpected plugins: {tiers:?}");
            if !all_loaded && large.len() == plugins {
                all_loaded = true;
                result.baseline_phase_s = t0.elapsed().as_secs_f64();
            }
            result.optimized = large.iter().filter(|t| t.as_str() == "optimized").count();
            if result.optimized == plugins {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    result.background_phase_s = t0.elapsed().as_secs_f64() - result.baseline_phase_s;
    result.peak_rss_mib = mib(procfs::status_kib(server.pid, "VmHWM"));
    result.baseline_phase = (!baseline_ns.is_empty()).then(|| timings("echo", baseline_ns));
    result.background_phase = (!background_ns.is_empty()).then(|| timings("echo", background_ns));
    server.stop();
    Ok(result)
}

/// `plugins` large plugins for `dir`, named `largeNN`: js_weather, py_faq,
/// and copies of go_world_clock (a WASI command, whose tools its manifest
/// names, so each copy can offer its own; two copies of a component would
/// claim the same tools and one would be refused). The copies' manifests
/// are written to `dir`; the code is returned, for the caller to land.
fn large_plugins(args: &Args, dir: &Path, plugins: usize) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let read = |name: &str| std::fs::read(args.root.join(format!("plugins/{name}")));
    let (go, go_manifest) = (read("go_world_clock.wasm")?, String::from_utf8(read("go_world_clock.toml")?)?);
    let mut files =
        vec![("large00".to_owned(), read("js_weather.wasm")?), ("large01".to_owned(), read("py_faq.wasm")?)];
    for i in 2..plugins {
        let name = format!("large{i:02}");
        let manifest = go_manifest.replace("name = \"local_time\"", &format!("name = \"local_time_{i}\""));
        std::fs::write(dir.join(format!("{name}.toml")), manifest)?;
        files.push((name, with_custom_section(&go, "switchboard-bench", format!("large {i}").as_bytes())));
    }
    files.truncate(plugins);
    Ok(files)
}

/// Runs `switchboard compile` on `dir` with `config` (whose cache it fills).
fn compile_into_cache(args: &Args, dir: &Path, config: &Path) -> anyhow::Result<()> {
    let status = Command::new(&args.switchboard)
        .args(["compile", "--plugins"])
        .arg(dir)
        .arg("--config")
        .arg(config)
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "switchboard compile failed");
    Ok(())
}

/// `switchboard serve` started on `echo` (its code in the cache, put there
/// by `switchboard compile`) and `plugins` large plugins whose code is not:
/// echo answers while they compile; then /readyz once all have loaded.
async fn start_with_cold_plugins(args: &Args, plugins: usize) -> anyhow::Result<StartWithColdPlugins> {
    let echo = args.root.join("plugins/echo.wasm");
    let dir = plugins_dir(args, "tiers-start-cold", &[&echo])?;
    let cache = args.work.join("tiers-start-cold-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let config = config(&dir, &cache, 1)?;
    compile_into_cache(args, &dir, &config)?;
    for (name, bytes) in large_plugins(args, &dir, plugins)? {
        std::fs::write(dir.join(format!("{name}.wasm")), bytes)?;
    }
    let mut server = serve(args, &dir, &config, "tiers-start-cold")?;
    let mut result = StartWithColdPlugins { plugins, ..Default::default() };
    let mut conn = Conn::default();
    let (mut echo_ns, mut seq) = (Vec::new(), 0);
    let mut last_poll = Instant::now();
    loop {
        anyhow::ensure!(!server.exited(), "switchboard exited; see {}", server.log.display());
        anyhow::ensure!(server.started.elapsed() < Duration::from_secs(300), "not ready; see {}", server.log.display());
        seq += 1;
        let t = Instant::now();
        let id = client::unique_id("start");
        match client::call_tool(&mut conn, &server.endpoint, "echo", &id, seq, Expect::Echo).await {
            Ok(_) if result.echo_first_answer_ms == 0.0 => {
                result.echo_first_answer_ms = server.started.elapsed().as_secs_f64() * 1e3;
            }
            Ok(_) => echo_ns.push(t.elapsed().as_nanos() as u64),
            // Not listening yet.
            Err(_) if result.echo_first_answer_ms == 0.0 => conn = Conn::default(),
            Err(_) => result.failed += 1,
        }
        if result.echo_first_answer_ms > 0.0 && last_poll.elapsed() > Duration::from_millis(50) {
            last_poll = Instant::now();
            if let Ok((status, _)) = Conn::default().get(&server.endpoint, "/readyz").await
                && status == 200
            {
                result.all_ready_ms = server.started.elapsed().as_secs_f64() * 1e3;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(if result.echo_first_answer_ms == 0.0 { 1 } else { 5 })).await;
    }
    let loaded = tiers(&server).await.len();
    anyhow::ensure!(loaded == plugins + 1, "{loaded} plugins loaded of {}; see {}", plugins + 1, server.log.display());
    result.peak_rss_mib = mib(procfs::status_kib(server.pid, "VmHWM"));
    result.echo_calls = (!echo_ns.is_empty()).then(|| timings("echo", echo_ns));
    server.stop();
    Ok(result)
}

/// Every example in one folder, compiled by `switchboard compile`, then
/// restarts timed to /readyz.
async fn restart_all_cached(args: &Args, meteo: &str, result: &mut TiersResult) -> anyhow::Result<()> {
    let dir = plugins_dir(args, "tiers-all", &[])?;
    for example in &EXAMPLES {
        land(args, &dir, example, meteo)?;
    }
    let cache = args.work.join("tiers-all-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let config = config(&dir, &cache, 1)?;
    let t = Instant::now();
    compile_into_cache(args, &dir, &config)?;
    result.compile_all_s = t.elapsed().as_secs_f64();
    result.restart_plugins = EXAMPLES.len();
    for i in 0..6 {
        let mut server = serve(args, &dir, &config, "tiers-restart")?;
        let ready = wait_ready(&mut server, EXAMPLES.len()).await?;
        if i > 0 {
            // The first one is untimed: binary and files into the page cache.
            result.restart_ms.push(ready.as_secs_f64() * 1e3);
        }
        result.restart_tiers = tiers(&server).await.into_iter().map(|(n, t)| format!("{n}: {t}")).collect();
        server.stop();
    }
    result.restart_median_ms = crate::extras::median(&result.restart_ms);
    Ok(())
}

pub async fn tiers_section(args: &Args) -> anyhow::Result<TiersResult> {
    let (meteo, _stop) = fake_meteo().await?;
    let mut result = TiersResult::default();
    let calls = if args.quick { 50 } else { 300 };
    for example in &EXAMPLES {
        eprintln!("  {} ({})", example.language, example.name);
        result.languages.push(language(args, example, &meteo, calls).await?);
    }
    restart_all_cached(args, &meteo, &mut result).await?;
    let (plugins, limit) = if args.quick { (4, 60) } else { (10, 240) };
    result.under_compile = echo_while_compiling(args, plugins, Duration::from_secs(limit)).await?;
    result.start_cold = start_with_cold_plugins(args, plugins).await?;
    Ok(result)
}
