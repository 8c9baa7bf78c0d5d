//! The figures besides throughput: one tool call and one webhook in-process,
//! hot reload, memory under 1,000 waiting calls, start-up with 20 plugins.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use switchboard::{CallContext, Settings, Switchboard};

use crate::Args;
use crate::client::{self, Conn, Expect};
use crate::load::percentile_us;
use crate::procfs;
use crate::servers::ServerProc;

/// Appends a custom section (id 0, LEB128 size, LEB128 name length, name,
/// payload) to a module or component: same code, different bytes and hash.
pub fn with_custom_section(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut content = Vec::new();
    leb128(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    let mut out = wasm.to_vec();
    out.push(0);
    leb128(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

/// The version Switchboard shows for these bytes (first 12 hex digits of SHA-256).
fn version_of(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..6])
}

/// Writes `bytes` to `path` as deploy tools do: a temporary file, then rename.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_file_name(format!(".{}.tmp", path.file_name().unwrap().to_string_lossy()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// An empty folder `WORK/name` holding copies of `plugins`.
pub fn plugins_dir(args: &Args, name: &str, plugins: &[&Path]) -> std::io::Result<std::path::PathBuf> {
    let dir = args.work.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    for plugin in plugins {
        std::fs::copy(plugin, dir.join(plugin.file_name().unwrap()))?;
    }
    Ok(dir)
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

// ---------------------------------------------------------------------------
// In-process: one tool call, one webhook

/// Timings of calls made one at a time in-process, after a warm-up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timings {
    pub plugin: String,
    pub count: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub max_us: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InProcessResult {
    /// `Switchboard::call_tool`, per plugin.
    pub tool_calls: Vec<Timings>,
    /// A signed webhook through `Switchboard::router()`.
    pub webhook: Timings,
    /// An MCP `tools/call` of the same tool through the same router (`/mcp`).
    #[serde(default)]
    pub mcp: Option<Timings>,
}

/// Runs `once(seq)` `warmup + count` times in turn; each returns the time to
/// count. Times the last `count`.
async fn timed<F: Future<Output = anyhow::Result<Duration>>>(
    plugin: &Path,
    warmup: usize,
    count: usize,
    mut once: impl FnMut(u64) -> F,
) -> anyhow::Result<Timings> {
    let mut ns = Vec::with_capacity(count);
    for seq in 0..(warmup + count) as u64 {
        let took = once(seq).await?;
        if seq >= warmup as u64 {
            ns.push(took.as_nanos() as u64);
        }
    }
    ns.sort_unstable();
    Ok(Timings {
        plugin: plugin.file_name().unwrap().to_string_lossy().into_owned(),
        count,
        p50_us: percentile_us(&ns, 50.0),
        p99_us: percentile_us(&ns, 99.0),
        mean_us: ns.iter().sum::<u64>() as f64 / count as f64 / 1e3,
        max_us: percentile_us(&ns, 100.0),
    })
}

pub async fn in_process(args: &Args, plugins: &[(&Path, &str)]) -> anyhow::Result<InProcessResult> {
    let count = if args.quick { 2_000 } else { 20_000 };
    let mut tool_calls = Vec::new();
    for &(wasm, tool) in plugins {
        tool_calls.push(tool_call(args, wasm, tool, count).await?);
    }
    let webhook = webhook(args, plugins[0].0, count).await?;
    let mcp = Some(mcp_call(args, plugins[0].0, count).await?);
    Ok(InProcessResult { tool_calls, webhook, mcp })
}

/// `Switchboard::call_tool` on a Switchboard with just this plugin: the
/// schema check, a fresh instance, the call, metrics. Every answer is checked.
async fn tool_call(args: &Args, wasm: &Path, tool: &str, calls: usize) -> anyhow::Result<Timings> {
    let plugins_dir = plugins_dir(args, &format!("plugins-call-{tool}"), &[wasm])?;
    let settings = Settings { plugins_dir, cache_dir: None, watch: false, dedup: None, ..Default::default() };
    let switchboard = Switchboard::start_local(settings).await?;
    if let Some(Err(e)) = switchboard.plugins().into_iter().next().map(|p| p.loaded) {
        anyhow::bail!("{tool} did not load: {e}");
    }
    let (switchboard, context) = (&switchboard, &CallContext::default());
    let expected = &serde_json::json!({"echo": {"query": "John Smith"}});
    timed(wasm, calls.min(1000), calls, |_| async move {
        let t = Instant::now();
        let out = switchboard.call_tool(tool, r#"{"query":"John Smith"}"#, context).await;
        let took = t.elapsed();
        let out = out?;
        anyhow::ensure!(&serde_json::from_str::<serde_json::Value>(&out)? == expected, "wrong answer: {out}");
        Ok(took)
    })
    .await
}

/// One tool-calls webhook through Switchboard's axum `Router`, in-process:
/// signature check, decode, dedup, schema check, the plugin call and the JSON
/// answer, without sockets or a second process. Each is signed and built
/// before its timer starts; every answer is checked.
async fn webhook(args: &Args, wasm: &Path, requests: usize) -> anyhow::Result<Timings> {
    use tower::ServiceExt;

    let plugins_dir = plugins_dir(args, "plugins-in-process", &[wasm])?;
    let settings = Settings { plugins_dir, secrets: vec![client::SECRET.into()], ..Default::default() };
    let router = &Switchboard::start(settings).await?.router();
    timed(wasm, requests.min(2_000), requests, |seq| async move {
        let id = client::unique_id("inproc");
        let body = client::tool_calls_body(&id, "echo", &client::echo_arguments(seq));
        let request = client::signed_webhook(&body).body(axum::body::Body::from(body))?;
        let t = Instant::now();
        let response = router.clone().oneshot(request).await?;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
        let took = t.elapsed();
        client::check(status, &body, &id, seq, Expect::Echo).map_err(|e| anyhow::anyhow!("in-process webhook: {e}"))?;
        Ok(took)
    })
    .await
}

/// One MCP `tools/call` of `echo` through the same router, in-process, in
/// one session opened first (`initialize`, `notifications/initialized`): the
/// bearer-token check, the door's JSON-RPC handling (the short way for a
/// call in a session), the core's call, the JSON answer. Every answer is checked.
async fn mcp_call(args: &Args, wasm: &Path, requests: usize) -> anyhow::Result<Timings> {
    use tower::ServiceExt;

    const TOKEN: &str = "bench-token";
    let plugins_dir = plugins_dir(args, "plugins-in-process-mcp", &[wasm])?;
    let mut settings = Settings { plugins_dir, secrets: vec![client::SECRET.into()], ..Default::default() };
    settings.mcp.tokens = vec![TOKEN.into()];
    let router = &Switchboard::start(settings).await?.router();
    let post = |session: Option<&str>, body: serde_json::Value| {
        let mut request = axum::http::Request::post("/mcp")
            .header("Host", "localhost")
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2025-11-25");
        if let Some(session) = session {
            request = request.header("Mcp-Session-Id", session);
        }
        request.body(axum::body::Body::from(body.to_string())).expect("a valid request")
    };
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}});
    let response = router.clone().oneshot(post(None, init)).await?;
    anyhow::ensure!(response.status() == 200, "MCP initialize: HTTP {}", response.status());
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("MCP initialize gave no session id"))?;
    let _ = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    let initialized = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let response = router.clone().oneshot(post(Some(&session), initialized)).await?;
    anyhow::ensure!(response.status() == 202, "MCP initialized: HTTP {}", response.status());
    let (session, post) = (&session, &post);
    timed(wasm, requests.min(2_000), requests, |seq| async move {
        let arguments: serde_json::Value = serde_json::from_str(&client::echo_arguments(seq))?;
        let call = serde_json::json!({"jsonrpc": "2.0", "id": seq + 1, "method": "tools/call",
            "params": {"name": "echo", "arguments": arguments}});
        let request = post(Some(session), call);
        let t = Instant::now();
        let response = router.clone().oneshot(request).await?;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
        let took = t.elapsed();
        anyhow::ensure!(status == 200, "MCP tools/call: HTTP {status}");
        // The answer: the JSON-RPC response (the short way for a call in a
        // session), or a server-sent event carrying it.
        let text = std::str::from_utf8(&body)?;
        let whole = serde_json::from_str::<serde_json::Value>(text).ok().into_iter();
        let events = text
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<serde_json::Value>(data.trim()).ok());
        let message = whole
            .chain(events)
            .find(|m| m["id"] == seq + 1)
            .ok_or_else(|| anyhow::anyhow!("no answer to call {seq} in {text:?}"))?;
        anyhow::ensure!(
            message["result"]["structuredContent"]["echo"] == arguments,
            "wrong MCP answer to call {seq}: {message}"
        );
        Ok(took)
    })
    .await
}

// ---------------------------------------------------------------------------
// Hot reload

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ReloadResult {
    pub plugin_bytes: usize,
    /// From the write until a call answered with the new version, in ms.
    pub latencies_ms: Vec<f64>,
    pub median_ms: f64,
    pub max_ms: f64,
    /// From the write until GET /plugins showed the new version (median).
    pub plugins_median_ms: f64,
    pub under_load: ReloadUnderLoad,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ReloadUnderLoad {
    pub reloads_requested: usize,
    pub reloads_seen: usize,
    pub concurrency: usize,
    pub requests: u64,
    /// Transport errors, non-200, error results.
    pub failed: u64,
    /// 200 with a malformed answer, or the old version after the new one was live.
    pub wrong: u64,
    pub answers_a: u64,
    pub answers_b: u64,
    pub median_reload_ms: f64,
    pub max_reload_ms: f64,
    pub seconds: f64,
    pub first_problem: Option<String>,
}

/// Whether GET /plugins shows `hash` now.
async fn plugins_show(server: &ServerProc, conn: &mut Conn, hash: &str) -> bool {
    matches!(conn.get(&server.endpoint, "/plugins").await, Ok((_, body)) if String::from_utf8_lossy(&body).contains(hash))
}

/// Polls until the tool answers with `version` and GET /plugins shows
/// `hash`; returns (call latency, /plugins latency) from `t0`.
async fn await_version(
    server: &ServerProc,
    conn: &mut Conn,
    version: char,
    hash: &str,
    t0: Instant,
) -> Option<(Duration, Duration)> {
    let (mut call_at, mut plugins_at) = (None, None);
    let mut seq = 0;
    while t0.elapsed() < Duration::from_secs(5) {
        if call_at.is_none() {
            seq += 1;
            if let Ok(Some(v)) =
                client::call_tool(conn, &server.endpoint, "probe", &client::unique_id("poll"), seq, Expect::Probe).await
                && v == version
            {
                call_at = Some(t0.elapsed());
            }
        }
        if plugins_at.is_none() && plugins_show(server, conn, hash).await {
            plugins_at = Some(t0.elapsed());
        }
        if let (Some(c), Some(p)) = (call_at, plugins_at) {
            return Some((c, p));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// New versions of the reload probe: build `a` (0) or `b` (1), each time with
/// a custom section holding a counter, so that every file written is new and
/// every reload compiles, as a real deploy of a new version does.
pub struct ProbeVersions {
    base: [Vec<u8>; 2],
    written: AtomicU64,
}

impl ProbeVersions {
    pub fn read(args: &Args) -> std::io::Result<Self> {
        Ok(Self { base: [std::fs::read(&args.probe_a)?, std::fs::read(&args.probe_b)?], written: AtomicU64::new(0) })
    }

    /// A new version of build `which` (0: a, 1: b).
    pub fn next(&self, which: usize) -> Vec<u8> {
        let n = self.written.fetch_add(1, Ordering::Relaxed);
        with_custom_section(&self.base[which], "switchboard-bench", format!("version {n}").as_bytes())
    }
}

pub async fn reload(args: &Args) -> anyhow::Result<ReloadResult> {
    let dir = plugins_dir(args, "plugins-reload", &[])?;
    let target = dir.join("probe.wasm");
    let versions = ProbeVersions::read(args)?;
    let first = versions.next(0);
    replace_file(&target, &first)?;
    let mut server = ServerProc::switchboard(args, &dir, "reload")?;
    server.wait_ready("probe", Expect::Probe, Duration::from_secs(60)).await?;
    let mut result = ReloadResult { plugin_bytes: first.len(), ..Default::default() };

    // 1. Latency: replace the file, poll until the new version answers.
    let mut conn = Conn::default();
    let mut current = 0usize;
    let mut plugins_latencies = Vec::new();
    for i in 0..if args.quick { 6 } else { 20 } {
        let next = 1 - current;
        let bytes = versions.next(next);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let t0 = Instant::now();
        replace_file(&target, &bytes)?;
        let version = if next == 0 { 'a' } else { 'b' };
        let Some((call, plugins)) = await_version(&server, &mut conn, version, &version_of(&bytes), t0).await else {
            anyhow::bail!("reload {i} was not seen within 5 s");
        };
        result.latencies_ms.push(call.as_secs_f64() * 1e3);
        plugins_latencies.push(plugins.as_secs_f64() * 1e3);
        current = next;
    }
    result.median_ms = median(&result.latencies_ms);
    result.max_ms = max(&result.latencies_ms);
    result.plugins_median_ms = median(&plugins_latencies);

    // 2. Reloads under continuous load.
    result.under_load = reload_under_load(args, &server, &target, current, &versions).await?;
    server.stop();
    Ok(result)
}

// Live state shared with the load workers: bit 0 the version now served
// (0 = a, 1 = b), bit 1 set while a swap is in progress, the rest a
// generation counter bumped at every change.
const IN_PROGRESS: u64 = 2;

async fn reload_under_load(
    args: &Args,
    server: &ServerProc,
    target: &Path,
    mut current: usize,
    versions: &ProbeVersions,
) -> anyhow::Result<ReloadUnderLoad> {
    let state = Arc::new(AtomicU64::new(current as u64));
    let stop = Arc::new(AtomicBool::new(false));
    let (reloads, concurrency) = (if args.quick { 10 } else { 100 }, 8);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (state, stop, ep) = (state.clone(), stop.clone(), server.endpoint.clone());
            tokio::spawn(async move {
                let mut conn = Conn::default();
                // This worker's counts.
                let mut tally = ReloadUnderLoad::default();
                let prefix = client::unique_id(&format!("rl_{w}"));
                for seq in 1.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("{prefix}_{seq}");
                    let before = state.load(Ordering::SeqCst);
                    let outcome = client::call_tool(&mut conn, &ep, "probe", &id, seq, Expect::Probe).await;
                    let after = state.load(Ordering::SeqCst);
                    tally.requests += 1;
                    let problem = match outcome {
                        Ok(v) => {
                            let v = v.expect("probe answers carry a version");
                            let served = u64::from(v == 'b');
                            *if served == 0 { &mut tally.answers_a } else { &mut tally.answers_b } += 1;
                            // Settled the whole time: only the live version may answer.
                            let settled = before == after && before & IN_PROGRESS == 0;
                            (settled && served != before & 1).then(|| {
                                tally.wrong += 1;
                                format!("version {v} answered after the swap to the other one had been seen")
                            })
                        }
                        Err(e) => {
                            if e.starts_with("wrong") || e.starts_with("bad answer") || e.starts_with("unknown") {
                                tally.wrong += 1;
                            } else {
                                tally.failed += 1;
                            }
                            Some(e)
                        }
                    };
                    tally.first_problem = tally.first_problem.or(problem);
                }
                tally
            })
        })
        .collect();

    let mut conn = Conn::default();
    let mut latencies = Vec::new();
    for i in 0..reloads {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let next = 1 - current;
        let bytes = versions.next(next);
        let hash = version_of(&bytes);
        let generation = (i as u64 + 1) * 8;
        state.store(generation | IN_PROGRESS | current as u64, Ordering::SeqCst);
        let t0 = Instant::now();
        replace_file(target, &bytes)?;
        loop {
            if plugins_show(server, &mut conn, &hash).await {
                break;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                stop.store(true, Ordering::Relaxed);
                anyhow::bail!("reload {i} under load was not seen within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(t0.elapsed().as_secs_f64() * 1e3);
        current = next;
        state.store((generation + 4) | current as u64, Ordering::SeqCst);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut out = ReloadUnderLoad {
        reloads_requested: reloads,
        reloads_seen: latencies.len(),
        concurrency,
        seconds: started.elapsed().as_secs_f64(),
        median_reload_ms: median(&latencies),
        max_reload_ms: max(&latencies),
        ..Default::default()
    };
    for w in workers {
        let w = w.await?;
        out.requests += w.requests;
        out.failed += w.failed;
        out.wrong += w.wrong;
        out.answers_a += w.answers_a;
        out.answers_b += w.answers_b;
        out.first_problem = out.first_problem.or(w.first_problem);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Memory

/// Calls in the memory figure, and how long the slow server holds each (well
/// under the 9 s default call timeout).
const MEMORY_CALLS: usize = 1_000;
const SLOW_MS: u64 = 2_000;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct MemoryResult {
    pub idle_rss_mib: f64,
    pub peak_rss_mib: f64,
    pub hwm_mib: f64,
    pub calls: usize,
    /// How long the slow HTTP server waits before it answers each request.
    pub sleep_ms: u64,
    pub completed_ok: usize,
    /// From sending the first webhook until the last answer was read.
    pub seconds: f64,
    pub slowest_call_ms: f64,
    pub first_error: Option<String>,
    /// Requests the slow HTTP server received during the calls (each call's
    /// plugin makes one, so this must equal `calls`), and most it held
    /// waiting at one time.
    pub upstream_requests: u64,
    pub upstream_max_concurrent: u64,
}

/// The slow upstream API of the memory figure: `GET /slow?i=N` answers
/// `{"i": N, "delay_ms": D}` after D ms; `GET /ready` answers at once and is
/// not counted. Runs in the suite's own runtime on 127.0.0.1.
struct SlowServer {
    addr: std::net::SocketAddr,
    counters: Arc<SlowCounters>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct SlowCounters {
    received: AtomicU64,
    waiting: AtomicU64,
    max_waiting: AtomicU64,
}

#[derive(Deserialize)]
struct SlowQuery {
    i: u64,
}

impl SlowServer {
    async fn start(delay: Duration) -> std::io::Result<Self> {
        use axum::extract::{Query, State};
        use axum::routing::get;

        let counters = Arc::new(SlowCounters::default());
        async fn slow(
            State((counters, delay)): State<(Arc<SlowCounters>, Duration)>,
            Query(q): Query<SlowQuery>,
        ) -> axum::Json<serde_json::Value> {
            counters.received.fetch_add(1, Ordering::Relaxed);
            let now = counters.waiting.fetch_add(1, Ordering::Relaxed) + 1;
            counters.max_waiting.fetch_max(now, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
            counters.waiting.fetch_sub(1, Ordering::Relaxed);
            axum::Json(serde_json::json!({ "i": q.i, "delay_ms": delay.as_millis() as u64 }))
        }
        let app = axum::Router::new()
            .route("/slow", get(slow))
            .route("/ready", get(|| async { axum::Json(serde_json::json!({ "ready": true })) }))
            .with_state((counters.clone(), delay));
        // A backlog well above the 1,000 connections that arrive at once.
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let listener = socket.listen(4096)?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("  slow HTTP server failed: {e}");
            }
        });
        Ok(Self { addr, counters, task })
    }
}

impl Drop for SlowServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// misbehave's `http_get` result.
#[derive(Deserialize)]
struct Fetched {
    status: u16,
    body: String,
}

/// Sends one webhook calling misbehave's `http_get` on `url` and checks the
/// answer: upstream status 200 and the upstream body `want` (compared as JSON).
async fn call_http_get(
    conn: &mut Conn,
    ep: &client::Endpoint,
    id: &str,
    url: &str,
    want: &serde_json::Value,
) -> Result<(), String> {
    let arguments = serde_json::json!({ "url": url }).to_string();
    let (status, body) = conn.post_webhook(ep, client::tool_calls_body(id, "http_get", &arguments)).await?;
    let result = client::one_result(status, &body, id)?;
    let fetched: Fetched = serde_json::from_str(result).map_err(|e| format!("wrong result ({e}): {result}"))?;
    match serde_json::from_str::<serde_json::Value>(&fetched.body) {
        Ok(upstream) if fetched.status == 200 && &upstream == want => Ok(()),
        _ => Err(format!("wrong upstream answer: {result}")),
    }
}

pub async fn memory(args: &Args) -> anyhow::Result<MemoryResult> {
    let upstream = SlowServer::start(Duration::from_millis(SLOW_MS)).await?;
    let base = format!("http://{}", upstream.addr);
    let echo = args.root.join("plugins/echo.wasm");
    let dir = plugins_dir(args, "plugins-memory", &[&echo, &args.misbehave])?;
    // All the calls at once (the default is a quarter of the instance pool);
    // loopback is a private address, so the grant must opt in explicitly.
    std::fs::write(
        dir.join("misbehave.toml"),
        format!(
            "max_concurrent_calls = {MEMORY_CALLS}\n[http]\n\
             allowed_hosts = [{{ host = \"{base}\", allow_private = true }}]\n"
        ),
    )?;
    let mut server = ServerProc::switchboard(args, &dir, "memory")?;
    server.wait_ready("echo", Expect::Echo, Duration::from_secs(60)).await?;
    // One outbound call that does not wait (and is not counted): misbehave
    // loaded, the grant works, and a misconfiguration fails here rather than
    // 1,000 times.
    call_http_get(
        &mut Conn::default(),
        &server.endpoint,
        &client::unique_id("mem_preflight"),
        &format!("{base}/ready"),
        &serde_json::json!({ "ready": true }),
    )
    .await
    .map_err(|e| anyhow::anyhow!("outbound HTTP preflight failed: {e}; see {}", server.log.display()))?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = server.pid;
    let idle_kib = procfs::tree_rss_kib(pid);
    let received_before = upstream.counters.received.load(Ordering::Relaxed);

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0u64;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(procfs::tree_rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak.max(procfs::tree_rss_kib(pid))
        })
    };
    let started = Instant::now();
    let calls: Vec<_> = (0..MEMORY_CALLS)
        .map(|i| {
            let ep = server.endpoint.clone();
            let url = format!("{base}/slow?i={i}");
            let want = serde_json::json!({ "i": i, "delay_ms": SLOW_MS });
            tokio::spawn(async move {
                let sent = Instant::now();
                let id = client::unique_id(&format!("mem_{i}"));
                call_http_get(&mut Conn::default(), &ep, &id, &url, &want).await.map(|()| sent.elapsed())
            })
        })
        .collect();
    let mut result = MemoryResult {
        calls: MEMORY_CALLS,
        sleep_ms: SLOW_MS,
        idle_rss_mib: idle_kib as f64 / 1024.0,
        ..Default::default()
    };
    for call in calls {
        match call.await? {
            Ok(took) => {
                result.completed_ok += 1;
                result.slowest_call_ms = result.slowest_call_ms.max(took.as_secs_f64() * 1e3);
            }
            Err(e) => {
                result.first_error.get_or_insert(e);
            }
        }
    }
    result.seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    result.peak_rss_mib = sampler.await? as f64 / 1024.0;
    result.hwm_mib = procfs::status_kib(pid, "VmHWM").unwrap_or(0) as f64 / 1024.0;
    result.upstream_requests = upstream.counters.received.load(Ordering::Relaxed) - received_before;
    result.upstream_max_concurrent = upstream.counters.max_waiting.load(Ordering::Relaxed);
    server.stop();
    Ok(result)
}

// ---------------------------------------------------------------------------
// Start-up

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct StartupResult {
    pub plugins: usize,
    pub cold_ms: Vec<f64>,
    pub warm_ms: Vec<f64>,
    pub cold_median_ms: f64,
    pub warm_median_ms: f64,
    pub plugin_bytes: usize,
}

/// Spawns `switchboard serve` and times until GET /readyz answers 200 with
/// all `plugins` loaded.
async fn time_to_ready(args: &Args, dir: &Path, plugins: usize) -> anyhow::Result<f64> {
    let mut server = ServerProc::switchboard(args, dir, "startup")?;
    let want = format!("\"plugins\":{plugins}");
    loop {
        if let Ok((status, body)) = Conn::default().get(&server.endpoint, "/readyz").await
            && status == 200
        {
            let elapsed = server.started.elapsed().as_secs_f64() * 1e3;
            let body = String::from_utf8_lossy(&body).replace(' ', "");
            anyhow::ensure!(body.contains(&want), "/readyz answered {body}, expected {want}");
            server.stop();
            return Ok(elapsed);
        }
        if server.exited() || server.started.elapsed() > Duration::from_secs(120) {
            anyhow::bail!("switchboard did not become ready; see {}", server.log.display());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub async fn startup(args: &Args) -> anyhow::Result<StartupResult> {
    let plugins = 20;
    let dir = plugins_dir(args, "plugins-startup", &[])?;
    let base = std::fs::read(args.root.join("plugins/echo_command.wasm"))?;
    let mut result = StartupResult { plugins, ..Default::default() };
    for i in 1..=plugins {
        let bytes = with_custom_section(&base, "switchboard-bench", format!("plugin {i}").as_bytes());
        result.plugin_bytes = bytes.len();
        std::fs::write(dir.join(format!("cmd{i:02}.wasm")), bytes)?;
    }
    let cache = dir.join(".cache");
    // Once untimed, so the binary and plugin files are in the page cache.
    let _ = std::fs::remove_dir_all(&cache);
    time_to_ready(args, &dir, plugins).await?;
    for _ in 0..if args.quick { 2 } else { 5 } {
        let _ = std::fs::remove_dir_all(&cache);
        result.cold_ms.push(time_to_ready(args, &dir, plugins).await?);
        result.warm_ms.push(time_to_ready(args, &dir, plugins).await?);
    }
    result.cold_median_ms = median(&result.cold_ms);
    result.warm_median_ms = median(&result.warm_ms);
    Ok(result)
}
