//! The figures besides throughput: instantiation per call, hot reload,
//! memory under 1,000 waiting calls, start-up with 20 plugins.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use switchboard::registry::Plugins;
use switchboard::runtime::{CallContext, Limits, Runtime, RuntimeOptions};

use crate::client::{self, Conn, Expect};
use crate::procfs;
use crate::servers::{ServerProc, free_port};

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
pub fn version_of(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..6])
}

/// Writes `bytes` to `path` as deploy tools do: a temporary file, then rename.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_file_name(format!(".{}.tmp", path.file_name().unwrap().to_string_lossy()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn fresh_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)
}

fn stats_us(mut samples: Vec<f64>) -> (f64, f64, f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let pick = |p: f64| {
        let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        samples[rank.clamp(1, samples.len()) - 1]
    };
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    (pick(50.0), pick(99.0), mean, *samples.last().unwrap())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

// ---------------------------------------------------------------------------
// Instantiation per call

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstantiationResult {
    pub plugin: String,
    pub pooling: bool,
    pub calls: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub max_us: f64,
}

/// Times `calls` sequential calls of the plugin's tool in-process (fresh
/// instance per call, as Switchboard runs them), after a warm-up.
pub async fn instantiation(
    work: &Path,
    wasm: &Path,
    tool: &str,
    pooling: bool,
    calls: usize,
) -> anyhow::Result<InstantiationResult> {
    let runtime = Runtime::new(&RuntimeOptions { cache_dir: None, disable_pooling: !pooling, ..Default::default() })?;
    // Loaded as the server loads it: a folder with just this plugin.
    let dir = work.join(format!("plugins-instantiation-{tool}"));
    fresh_dir(&dir)?;
    std::fs::copy(wasm, dir.join(format!("{tool}.wasm")))?;
    let plugins = Plugins::load_dir(runtime, &dir, Limits::default()).await?;
    let registry = plugins.snapshot();
    let loaded = registry.lookup(tool).ok_or_else(|| anyhow::anyhow!("{tool} did not load: see its errors"))?;
    let plugin = &loaded.plugin;
    let context = CallContext {
        call_id: "5c4d030f-43e3-4e65-899e-8148521e660f".into(),
        call_type: "inbound_phone_call".into(),
        tool_call_id: "tool_abc123def456".into(),
        customer_number: Some("+31612345678".into()),
        phone_number: Some("+31850835037".into()),
        assistant_metadata: None,
    };
    let limits = loaded.limits;
    let arguments = r#"{"query":"John Smith"}"#;
    let expected: serde_json::Value = serde_json::json!({"echo": {"query": "John Smith"}});
    for _ in 0..calls.min(1000) {
        plugin.call(tool, arguments, &context, limits).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let out = plugin.call(tool, arguments, &context, limits).await;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        let out = out.map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(serde_json::from_str::<serde_json::Value>(&out)? == expected, "wrong answer: {out}");
    }
    let (p50_us, p99_us, mean_us, max_us) = stats_us(samples);
    Ok(InstantiationResult {
        plugin: wasm.file_name().unwrap().to_string_lossy().into_owned(),
        pooling,
        calls,
        p50_us,
        p99_us,
        mean_us,
        max_us,
    })
}

/// One tool-calls webhook through Switchboard's axum `Router`, in-process:
/// signature check, decode, dedup, schema check, the plugin call and the JSON
/// answer, without sockets or a second process. Steadier than the HTTP
/// figures on a shared machine, so it shows changes to the edge itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestResult {
    pub plugin: String,
    pub requests: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
}

/// Times `requests` sequential webhooks through the router (each signed and
/// built before its timer starts), after a warm-up; every answer is checked.
pub async fn in_process_request(work: &Path, wasm: &Path, requests: usize) -> anyhow::Result<RequestResult> {
    use tower::ServiceExt;

    let dir = work.join("plugins-in-process");
    fresh_dir(&dir)?;
    std::fs::copy(wasm, dir.join("echo.wasm"))?;
    let settings =
        switchboard::Settings { plugins_dir: dir, secrets: vec![client::SECRET.into()], ..Default::default() };
    let router = switchboard::Switchboard::start(settings).await?.router();
    let mut samples = Vec::with_capacity(requests);
    let warmup = requests.min(2_000) as u64;
    for seq in 0..warmup + requests as u64 {
        let id = client::unique_id("inproc");
        let body = client::tool_calls_body(&id, "echo", &client::echo_arguments(seq));
        let request = client::signed_webhook(&body).body(axum::body::Body::from(body))?;
        let t = Instant::now();
        let response = router.clone().oneshot(request).await?;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
        let elapsed = t.elapsed();
        client::check(status, &body, &id, seq, Expect::Echo).map_err(|e| anyhow::anyhow!("in-process webhook: {e}"))?;
        if seq >= warmup {
            samples.push(elapsed.as_secs_f64() * 1e6);
        }
    }
    let (p50_us, p99_us, mean_us, _) = stats_us(samples);
    Ok(RequestResult {
        plugin: wasm.file_name().unwrap().to_string_lossy().into_owned(),
        requests,
        p50_us,
        p99_us,
        mean_us,
    })
}

// ---------------------------------------------------------------------------
// Hot reload

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ReloadResult {
    /// Whether the server picked up a replaced file at all.
    pub available: bool,
    pub note: String,
    pub plugin_bytes: usize,
    /// From the write until a call answered with the new version, in ms.
    pub latencies_ms: Vec<f64>,
    /// From the write until GET /plugins showed the new version, in ms.
    pub plugins_latencies_ms: Vec<f64>,
    pub median_ms: f64,
    pub max_ms: f64,
    /// The run under continuous load.
    pub under_load: Option<ReloadUnderLoad>,
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

/// Polls until the tool answers with `version` (and GET /plugins shows
/// `hash`); returns (call latency, /plugins latency) from `t0`.
async fn await_version(
    server: &ServerProc,
    conn: &mut Conn,
    version: char,
    hash: &str,
    t0: Instant,
    timeout: Duration,
) -> Option<(Duration, Duration)> {
    let (mut call_at, mut plugins_at) = (None, None);
    let mut seq = 0;
    while t0.elapsed() < timeout {
        if call_at.is_none() {
            seq += 1;
            if let Ok(Some(v)) =
                client::call_tool(conn, &server.endpoint, "probe", &client::unique_id("poll"), seq, Expect::Probe).await
                && v == version
            {
                call_at = Some(t0.elapsed());
            }
        }
        if plugins_at.is_none()
            && let Ok((_, body)) = conn.get(&server.endpoint, "/plugins").await
            && String::from_utf8_lossy(&body).contains(hash)
        {
            plugins_at = Some(t0.elapsed());
        }
        if let (Some(c), Some(p)) = (call_at, plugins_at) {
            return Some((c, p));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// Whether GET /plugins shows `hash` now.
async fn plugins_show(server: &ServerProc, conn: &mut Conn, hash: &str) -> bool {
    matches!(conn.get(&server.endpoint, "/plugins").await, Ok((_, body)) if String::from_utf8_lossy(&body).contains(hash))
}

pub struct ReloadConfig<'a> {
    pub switchboard: &'a Path,
    pub work: &'a Path,
    pub probe_a: &'a Path,
    pub probe_b: &'a Path,
    pub latency_samples: usize,
    pub reloads_under_load: usize,
    pub load_concurrency: usize,
}

pub async fn reload(cfg: &ReloadConfig<'_>) -> anyhow::Result<ReloadResult> {
    let dir = cfg.work.join("plugins-reload");
    fresh_dir(&dir)?;
    let base = [std::fs::read(cfg.probe_a)?, std::fs::read(cfg.probe_b)?];
    let target = dir.join("probe.wasm");
    // Every file written is new (a custom section with a counter), so every
    // reload compiles, as a real deploy of a new version does.
    let nonce = Arc::new(AtomicU64::new(0));
    let variant = |which: usize| {
        let n = nonce.fetch_add(1, Ordering::Relaxed);
        with_custom_section(&base[which], "switchboard-bench", format!("reload {n}").as_bytes())
    };
    let first = variant(0);
    let plugin_bytes = first.len();
    replace_file(&target, &first)?;
    let port = free_port();
    let mut command = Command::new(cfg.switchboard);
    command.arg("serve").arg("--listen").arg(format!("127.0.0.1:{port}")).arg("--plugins").arg(&dir);
    let mut server = ServerProc::spawn("switchboard (reload)", command, port, &cfg.work.join("reload.log"))?;
    server.wait_ready("probe", Expect::Probe, Duration::from_secs(60)).await?;
    let mut result = ReloadResult { plugin_bytes, ..Default::default() };

    // 1. Latency: replace the file, poll until the new version answers.
    let mut conn = Conn::default();
    let mut current = 0usize;
    for i in 0..cfg.latency_samples {
        let next = 1 - current;
        let bytes = variant(next);
        let hash = version_of(&bytes);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let t0 = Instant::now();
        replace_file(&target, &bytes)?;
        let version = if next == 0 { 'a' } else { 'b' };
        match await_version(&server, &mut conn, version, &hash, t0, Duration::from_secs(5)).await {
            Some((call, plugins)) => {
                result.latencies_ms.push(call.as_secs_f64() * 1e3);
                result.plugins_latencies_ms.push(plugins.as_secs_f64() * 1e3);
                current = next;
            }
            None if i == 0 => {
                result.note = "the new version was not served within 5 s of replacing the file: \
                               hot reload is not available in this build"
                    .into();
                return Ok(result);
            }
            None => anyhow::bail!("reload {i} was not seen within 5 s"),
        }
    }
    result.available = true;
    result.median_ms = median(result.latencies_ms.clone());
    result.max_ms = result.latencies_ms.iter().copied().fold(0.0, f64::max);

    // 2. Reloads under continuous load.
    result.under_load = Some(reload_under_load(cfg, &server, &target, current, &variant).await?);
    server.stop();
    Ok(result)
}

// Live state shared with the load workers: bit 0 the version now served
// (0 = a, 1 = b), bit 1 set while a swap is in progress, the rest a
// generation counter bumped at every change.
const IN_PROGRESS: u64 = 2;

async fn reload_under_load(
    cfg: &ReloadConfig<'_>,
    server: &ServerProc,
    target: &Path,
    mut current: usize,
    variant: &dyn Fn(usize) -> Vec<u8>,
) -> anyhow::Result<ReloadUnderLoad> {
    let state = Arc::new(AtomicU64::new(current as u64));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..cfg.load_concurrency)
        .map(|w| {
            let (state, stop, ep) = (state.clone(), stop.clone(), server.endpoint.clone());
            tokio::spawn(async move {
                let mut conn = Conn::default();
                let (mut requests, mut failed, mut wrong, mut a, mut b) = (0u64, 0u64, 0u64, 0u64, 0u64);
                let mut first_problem = None;
                let mut seq = 0;
                let prefix = client::unique_id(&format!("rl_{w}"));
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let id = format!("{prefix}_{seq}");
                    let before = state.load(Ordering::SeqCst);
                    let outcome = client::call_tool(&mut conn, &ep, "probe", &id, seq, Expect::Probe).await;
                    let after = state.load(Ordering::SeqCst);
                    requests += 1;
                    match outcome {
                        Ok(Some(v)) => {
                            if v == 'a' {
                                a += 1
                            } else {
                                b += 1
                            }
                            let served = if v == 'a' { 0 } else { 1 };
                            // Settled the whole time: only the live version may answer.
                            if before == after && before & IN_PROGRESS == 0 && served != before & 1 {
                                wrong += 1;
                                first_problem.get_or_insert(format!(
                                    "version {v} answered after the swap to the other one had been seen"
                                ));
                            }
                        }
                        Ok(None) => unreachable!("probe answers carry a version"),
                        Err(e) => {
                            if e.starts_with("wrong") || e.starts_with("bad answer") || e.starts_with("unknown") {
                                wrong += 1;
                            } else {
                                failed += 1;
                            }
                            first_problem.get_or_insert(e);
                        }
                    }
                }
                (requests, failed, wrong, a, b, first_problem)
            })
        })
        .collect();

    let mut conn = Conn::default();
    let mut latencies = Vec::new();
    for i in 0..cfg.reloads_under_load {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let next = 1 - current;
        let bytes = variant(next);
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
        reloads_requested: cfg.reloads_under_load,
        reloads_seen: latencies.len(),
        concurrency: cfg.load_concurrency,
        seconds: started.elapsed().as_secs_f64(),
        median_reload_ms: median(latencies.clone()),
        max_reload_ms: latencies.iter().copied().fold(0.0, f64::max),
        ..Default::default()
    };
    for w in workers {
        let (requests, failed, wrong, a, b, problem) = w.await?;
        out.requests += requests;
        out.failed += failed;
        out.wrong += wrong;
        out.answers_a += a;
        out.answers_b += b;
        if out.first_problem.is_none() {
            out.first_problem = problem;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Memory

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct MemoryResult {
    pub idle_rss_mib: f64,
    pub peak_rss_mib: f64,
    pub hwm_mib: f64,
    pub calls: usize,
    /// How long the slow HTTP server waits before it answers each request.
    pub sleep_ms: u64,
    pub completed_ok: usize,
    pub failed: usize,
    /// From sending the first webhook until the last answer was read.
    pub seconds: f64,
    pub max_in_flight_seen: u64,
    pub first_error: Option<String>,
    /// Requests the slow HTTP server received during the calls (each call's
    /// plugin makes one, so this must equal `calls`).
    #[serde(default)]
    pub upstream_requests: u64,
    /// Most requests the slow server held waiting at one time.
    #[serde(default)]
    pub upstream_max_concurrent: u64,
    /// Fastest and slowest single call, webhook sent to answer read.
    #[serde(default)]
    pub fastest_call_ms: f64,
    #[serde(default)]
    pub slowest_call_ms: f64,
}

pub struct MemoryConfig<'a> {
    pub switchboard: &'a Path,
    pub work: &'a Path,
    pub echo: &'a Path,
    pub misbehave: &'a Path,
    pub calls: usize,
    /// The slow server's delay per request; well under the plugin's call
    /// timeout (9 s by default), which also bounds its outbound requests.
    pub sleep_ms: u64,
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

/// Sends one webhook calling misbehave's `http_get` on `url` and checks the
/// answer: one result for `id`, upstream status 200, and the upstream body
/// `want` (compared as JSON).
async fn call_http_get(
    conn: &mut Conn,
    ep: &client::Endpoint,
    id: &str,
    url: &str,
    want: &serde_json::Value,
) -> Result<(), String> {
    let arguments = serde_json::json!({ "url": url }).to_string();
    let (status, body) = conn.post_webhook(ep, client::tool_calls_body(id, "http_get", &arguments)).await?;
    let text = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if status != http::StatusCode::OK {
        return Err(format!("status {status}: {}", text()));
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("bad answer ({e}): {}", text()))?;
    let [entry] = answer["results"].as_array().map(Vec::as_slice).unwrap_or_default() else {
        return Err(format!("expected one result: {}", text()));
    };
    if entry["tool_call_id"] != id {
        return Err(format!("wrong tool_call_id: {}", text()));
    }
    if let Some(error) = entry.get("error") {
        return Err(format!("tool error: {error}"));
    }
    let result = &entry["result"];
    if result["status"] != 200 {
        return Err(format!("upstream status is not 200: {result}"));
    }
    let upstream: serde_json::Value = result["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .ok_or_else(|| format!("upstream body is not JSON: {result}"))?;
    if &upstream != want {
        return Err(format!("wrong upstream body: {result}"));
    }
    Ok(())
}

pub async fn memory(cfg: &MemoryConfig<'_>) -> anyhow::Result<MemoryResult> {
    let delay = Duration::from_millis(cfg.sleep_ms);
    let upstream = SlowServer::start(delay).await?;
    let base = format!("http://{}", upstream.addr);

    let dir = cfg.work.join("plugins-memory");
    fresh_dir(&dir)?;
    std::fs::copy(cfg.echo, dir.join("echo.wasm"))?;
    std::fs::copy(cfg.misbehave, dir.join("misbehave.wasm"))?;
    // Loopback is a private address: the grant must opt in explicitly.
    std::fs::write(
        dir.join("misbehave.toml"),
        format!("[http]\nallowed_hosts = [\n    {{ host = \"{base}\", allow_private = true }},\n]\n"),
    )?;
    let port = free_port();
    let mut command = Command::new(cfg.switchboard);
    command.arg("serve").arg("--listen").arg(format!("127.0.0.1:{port}")).arg("--plugins").arg(&dir);
    let mut server = ServerProc::spawn("switchboard (memory)", command, port, &cfg.work.join("memory.log"))?;
    server.wait_ready("echo", Expect::Echo, Duration::from_secs(60)).await?;
    server.wait_ready("sleep", Expect::Slept(0), Duration::from_secs(60)).await?;
    // One outbound call that does not wait (and is not counted): the grant
    // works, and a misconfiguration fails here rather than 1,000 times.
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

    let in_flight = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (done, in_flight) = (done.clone(), in_flight.clone());
        tokio::spawn(async move {
            let (mut peak, mut max_in_flight) = (0u64, 0u64);
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(procfs::tree_rss_kib(pid));
                max_in_flight = max_in_flight.max(in_flight.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (peak.max(procfs::tree_rss_kib(pid)), max_in_flight)
        })
    };
    let started = Instant::now();
    let calls: Vec<_> = (0..cfg.calls)
        .map(|i| {
            let ep = server.endpoint.clone();
            let in_flight = in_flight.clone();
            let url = format!("{base}/slow?i={i}");
            let want = serde_json::json!({ "i": i, "delay_ms": cfg.sleep_ms });
            tokio::spawn(async move {
                let mut conn = Conn::default();
                in_flight.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let r = call_http_get(&mut conn, &ep, &client::unique_id(&format!("mem_{i}")), &url, &want).await;
                r.map(|()| sent.elapsed())
            })
        })
        .collect();
    let mut result = MemoryResult {
        calls: cfg.calls,
        sleep_ms: cfg.sleep_ms,
        idle_rss_mib: idle_kib as f64 / 1024.0,
        fastest_call_ms: f64::INFINITY,
        ..Default::default()
    };
    for call in calls {
        match call.await? {
            Ok(took) => {
                result.completed_ok += 1;
                let ms = took.as_secs_f64() * 1e3;
                result.fastest_call_ms = result.fastest_call_ms.min(ms);
                result.slowest_call_ms = result.slowest_call_ms.max(ms);
            }
            Err(e) => {
                result.failed += 1;
                result.first_error.get_or_insert(e);
            }
        }
    }
    result.seconds = started.elapsed().as_secs_f64();
    if result.completed_ok == 0 {
        // No call completed (JSON has no infinity).
        result.fastest_call_ms = 0.0;
    }
    done.store(true, Ordering::Relaxed);
    let (peak, max_in_flight) = sampler.await?;
    result.peak_rss_mib = peak as f64 / 1024.0;
    result.max_in_flight_seen = max_in_flight;
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

pub struct StartupConfig<'a> {
    pub switchboard: &'a Path,
    pub work: &'a Path,
    pub echo_command: &'a Path,
    pub plugins: usize,
    pub repetitions: usize,
}

/// Spawns `switchboard serve` and times until GET /readyz answers 200 with
/// all plugins loaded.
async fn time_to_ready(cfg: &StartupConfig<'_>, dir: &Path) -> anyhow::Result<f64> {
    let port = free_port();
    let mut command = Command::new(cfg.switchboard);
    command.arg("serve").arg("--listen").arg(format!("127.0.0.1:{port}")).arg("--plugins").arg(dir);
    let mut server = ServerProc::spawn("switchboard (start-up)", command, port, &cfg.work.join("startup.log"))?;
    let want = format!("\"plugins\":{}", cfg.plugins);
    loop {
        let mut conn = Conn::default();
        if let Ok((status, body)) = conn.get(&server.endpoint, "/readyz").await
            && status == 200
        {
            let elapsed = server.started().elapsed().as_secs_f64() * 1e3;
            let body = String::from_utf8_lossy(&body).replace(' ', "");
            anyhow::ensure!(body.contains(&want), "/readyz answered {body}, expected {want}");
            server.stop();
            return Ok(elapsed);
        }
        if server.exited() || server.started().elapsed() > Duration::from_secs(120) {
            anyhow::bail!("switchboard did not become ready; see {}", server.log.display());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub async fn startup(cfg: &StartupConfig<'_>) -> anyhow::Result<StartupResult> {
    let dir = cfg.work.join("plugins-startup");
    fresh_dir(&dir)?;
    let base = std::fs::read(cfg.echo_command)?;
    let mut plugin_bytes = 0;
    for i in 1..=cfg.plugins {
        let bytes = with_custom_section(&base, "switchboard-bench", format!("plugin {i}").as_bytes());
        plugin_bytes = bytes.len();
        std::fs::write(dir.join(format!("cmd{i:02}.wasm")), bytes)?;
    }
    let cache: PathBuf = dir.join(".cache");
    // Once untimed, so the binary and plugin files are in the page cache.
    let _ = std::fs::remove_dir_all(&cache);
    time_to_ready(cfg, &dir).await?;
    let mut result = StartupResult { plugins: cfg.plugins, plugin_bytes, ..Default::default() };
    for _ in 0..cfg.repetitions {
        let _ = std::fs::remove_dir_all(&cache);
        result.cold_ms.push(time_to_ready(cfg, &dir).await?);
        result.warm_ms.push(time_to_ready(cfg, &dir).await?);
    }
    result.cold_median_ms = median(result.cold_ms.clone());
    result.warm_median_ms = median(result.warm_ms.clone());
    Ok(result)
}
