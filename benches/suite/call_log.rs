//! The call log's figures (issue 18): throughput with the log on and off,
//! how soon a tool call can be read back after its answer, and reading a
//! log of a million tool calls from `switchboard calls` and the dashboard.
//!
//! The million tool calls are made quickly: a server logs two real calls
//! (status updates, ten tool calls each, an end-of-call report; one call
//! with a failed tool call), then the rows of those two are copied in SQL,
//! in the server's own tables, into 100,000 calls with random ids, spread
//! over the last day, with each call's summary row as the server keeps it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use rusqlite::{Connection, OpenFlags, params};
use serde::{Deserialize, Serialize};

use crate::client::{self, Conn, Endpoint, Expect};
use crate::servers::{ServerProc, free_port};
use crate::{Args, Durations, Server, ServerResults, TARGET_CONCURRENCY};

/// This section's plugins folder (echo), in the work folder.
pub const PLUGINS: &str = "plugins-call-log";
/// The data folder of the log-on server of the throughput runs.
pub const ON_DATA: &str = "call-log-on";
/// The data folder of the server the visibility figure is taken on.
const VISIBLE_DATA: &str = "call-log-visible";
/// The data folder of the large log.
const BIG_DATA: &str = "call-log-big";

/// The two servers measured in turns: the same binary and plugin, the log
/// on (default settings) and off.
pub const SERVERS: [Server; 2] = [
    ("switchboard-echo-log-on", "Switchboard, echo, call log on (SQLite)", "echo", false),
    ("switchboard-echo-log-off", "Switchboard, echo, call log off", "echo", false),
];

/// The throughput figure's measure, as a multiple of the other sections'.
const THROUGHPUT_LONGER: u32 = 3;
/// The throughput figure's turns (windows per server).
const THROUGHPUT_ROUNDS: u32 = 6;

/// Tool calls per generated call, as in the two real ones.
const TOOL_CALLS_PER_CALL: u64 = 10;
/// Every tenth call has one failed tool call (echo with arguments that are
/// not an object: `invalid_arguments`).
pub const FAILED_EVERY: u64 = 10;
/// Generated calls start over this long, the newest ending about now (the
/// server prunes what is older than 7 days).
const SPREAD_MS: i64 = 24 * 3600 * 1000;
/// Each generated call lasts this long, its webhooks and tool calls evenly
/// spaced, so that calls overlap and their rows interleave as in a real log.
const CALL_MS: i64 = 180_000;
/// A tool call not readable within this long counts as not visible.
const VISIBLE_WITHIN: Duration = Duration::from_secs(10);

/// Samples: their median, 99th percentile and maximum (nearest rank).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Spread {
    pub samples_ms: Vec<f64>,
    pub median_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Spread {
    fn of(samples: Vec<Duration>) -> Self {
        let samples_ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        let mut sorted = samples_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| match sorted.len() {
            0 => f64::NAN,
            n => sorted[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1],
        };
        Self { median_ms: rank(50.0), p99_ms: rank(99.0), max_ms: rank(100.0), samples_ms }
    }
}

/// How soon a tool call can be read back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Visibility {
    /// From having read the webhook's answer to the first `GET
    /// /api/calls/{call_id}` that shows the tool call.
    pub delay: Spread,
    /// Tool calls not visible within [`VISIBLE_WITHIN`].
    pub not_visible: usize,
}

/// The large log and what reading it took.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BigLog {
    pub calls: u64,
    pub tool_calls: u64,
    pub webhooks: u64,
    /// Calls with a failed tool call.
    pub failed_calls: u64,
    /// Seconds to make it: the two real calls through a server, then the copies.
    pub build_s: f64,
    /// `calls.sqlite3` (with its `-wal`, checkpointed), bytes.
    pub file_bytes: u64,
    /// `switchboard --version`: a fresh process of the same binary doing nothing.
    pub version: Spread,
    /// `switchboard calls --call ID` (a different random call each time).
    pub cli_call: Spread,
    /// `switchboard calls` (the 20 most recent).
    pub cli_list: Spread,
    /// `switchboard calls --errors`.
    pub cli_errors: Spread,
    /// `switchboard calls --tool echo --errors`.
    pub cli_tool_errors: Spread,
    /// `serve` on the log, from spawning to `/readyz` answering 200.
    pub serve_ready_ms: f64,
    /// The dashboard's first load, as [`first_load`] makes it.
    pub first_load: Spread,
    /// `GET /api/calls/{id}` (a call's view), a random call each time.
    pub call_view: Spread,
    /// Visibility on this log.
    pub visibility: Visibility,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CallLogResult {
    /// The log-on and log-off servers at [`TARGET_CONCURRENCY`], measured in turns.
    pub throughput: Vec<ServerResults>,
    /// Tool calls in the log-on server's database after its runs, and those
    /// it answered (every answer of the load, warm-ups included, and its
    /// readiness check).
    pub logged_tool_calls: u64,
    pub answered_tool_calls: u64,
    pub visibility: Visibility,
    pub big: BigLog,
}

/// Measures the section.
pub async fn call_log_section(args: &Args, d: Durations) -> anyhow::Result<CallLogResult> {
    crate::extras::plugins_dir(args, PLUGINS, &[&args.root.join("plugins/echo.wasm")])?;
    let (samples, visible_samples, tool_calls) = if args.quick { (5, 10, 100_000) } else { (20, 50, 1_000_000) };

    eprintln!("  throughput, call log on and off, {TARGET_CONCURRENCY} connections");
    let on_data = args.work.join(ON_DATA);
    let _ = std::fs::remove_dir_all(&on_data);
    // The goal is a ratio within a few per cent of 1, closer than a 10 s
    // measure on this shared machine can tell apart: three times as long,
    // in twice as many turns.
    let d = Durations { measure: d.measure * THROUGHPUT_LONGER, rounds: THROUGHPUT_ROUNDS, ..d };
    let throughput = crate::bench_servers(SERVERS.to_vec(), args, d, &[TARGET_CONCURRENCY]).await;
    if let Some(failed) = throughput.iter().find(|s| s.failure.is_some()) {
        bail!("{}: {}", failed.label, failed.failure.as_deref().unwrap_or_default());
    }
    let on = &throughput[0];
    let answered_tool_calls = on.runs.iter().map(|r| r.total_requests - r.errors).sum::<u64>() + 1;
    let logged_tool_calls = count(&on_data, "SELECT count(*) FROM tool_calls")?;

    eprintln!("  visibility: {visible_samples} tool calls, one at a time, on an idle server");
    let data = args.work.join(VISIBLE_DATA);
    let _ = std::fs::remove_dir_all(&data);
    let mut server = serve(args, &data, "call-log-visible")?;
    server.wait_ready("echo", Expect::Echo, Duration::from_secs(60)).await?;
    let visibility = visibility(&server.endpoint, visible_samples).await?;
    server.stop();
    eprintln!("  visible after: median {:.1} ms, max {:.1} ms", visibility.delay.median_ms, visibility.delay.max_ms);

    let big = big_log(args, tool_calls, samples, visible_samples).await?;
    Ok(CallLogResult { throughput, logged_tool_calls, answered_tool_calls, visibility, big })
}

/// `switchboard serve` with the call log on, in `data`.
fn serve(args: &Args, data: &Path, name: &str) -> anyhow::Result<ServerProc> {
    let port = free_port();
    let mut command = Command::new(&args.switchboard);
    command.arg("serve").arg("--listen").arg(format!("127.0.0.1:{port}"));
    command.arg("--plugins").arg(args.work.join(PLUGINS)).arg("--data-dir").arg(data);
    ServerProc::spawn(name, &mut command, port, &args.work.join(format!("{name}.log")))
}

/// One value from the log in `data` (opened read-only).
fn count(data: &Path, query: &str) -> anyhow::Result<u64> {
    let path = data.join("calls.sqlite3");
    let db = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("open {}", path.display()))?;
    Ok(db.query_row(query, [], |row| row.get::<_, i64>(0))? as u64)
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

/// `GET path`, which must answer 200; its body.
async fn get_ok(conn: &mut Conn, ep: &Endpoint, path: &str) -> anyhow::Result<bytes::Bytes> {
    let (status, body) = conn.get(ep, path).await.map_err(|e| anyhow::anyhow!("GET {path}: {e}"))?;
    ensure!(status == 200, "GET {path}: status {status}: {}", text(&body));
    Ok(body)
}

/// Sends `samples` tool calls one at a time, each on a call of its own, and
/// after each answer polls `GET /api/calls/{call_id}` (every ~1 ms, on
/// another connection) until the tool call is there.
async fn visibility(ep: &Endpoint, samples: usize) -> anyhow::Result<Visibility> {
    let (mut send, mut poll) = (Conn::default(), Conn::default());
    let mut delays = Vec::new();
    let mut not_visible = 0;
    for seq in 0..samples as u64 {
        let call_id = client::unique_id("visible");
        let id = client::unique_id("tc_visible");
        let body = client::tool_calls_body_of_call(&call_id, &id, "echo", &client::echo_arguments(seq));
        let (status, answer) = send.post_webhook(ep, body).await.map_err(anyhow::Error::msg)?;
        client::check(status, &answer, &id, seq, Expect::Echo).map_err(anyhow::Error::msg)?;
        let answered = Instant::now();
        let path = format!("/api/calls/{call_id}");
        loop {
            let (status, body) = poll.get(ep, &path).await.map_err(|e| anyhow::anyhow!("GET {path}: {e}"))?;
            if status == 200 && String::from_utf8_lossy(&body).contains(&format!("\"tool_call_id\":\"{id}\"")) {
                delays.push(answered.elapsed());
                break;
            }
            ensure!(status == 200 || status == 404, "GET {path}: status {status}: {}", text(&body));
            if answered.elapsed() > VISIBLE_WITHIN {
                not_visible += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Ok(Visibility { delay: Spread::of(delays), not_visible })
}

/// A spec fixture's webhook, on the call `call_id`.
fn fixture(args: &Args, name: &str, call_id: &str) -> anyhow::Result<String> {
    let path = args.root.join("tests/fixtures/spec").join(name);
    let body = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    Ok(body.replace(client::FIXTURE_CALL_ID, call_id))
}

/// One real call through `ep`: a status update, ten tool calls of echo (one
/// webhook each; with `fail`, the last with arguments that are not an
/// object), the call ending, its end-of-call report.
async fn real_call(args: &Args, ep: &Endpoint, call_id: &str, fail: bool) -> anyhow::Result<()> {
    let mut conn = Conn::default();
    let mut post = async |event: &str, body: String| -> anyhow::Result<bytes::Bytes> {
        let (status, answer) = conn.post_event(ep, event, body).await.map_err(anyhow::Error::msg)?;
        ensure!(status == 200, "{event} webhook: status {status}: {}", text(&answer));
        Ok(answer)
    };
    post("status-update", fixture(args, "status-update.request.in-progress.json", call_id)?).await?;
    for seq in 0..TOOL_CALLS_PER_CALL {
        let id = client::unique_id("tc_seed");
        let failing = fail && seq + 1 == TOOL_CALLS_PER_CALL;
        let arguments = if failing { "[1]".to_owned() } else { client::echo_arguments(seq) };
        let answer = post("tool-calls", client::tool_calls_body_of_call(call_id, &id, "echo", &arguments)).await?;
        if !failing {
            client::check(http::StatusCode::OK, &answer, &id, seq, Expect::Echo).map_err(anyhow::Error::msg)?;
        }
    }
    post("status-update", fixture(args, "status-update.request.ended.json", call_id)?).await?;
    post("end-of-call-report", fixture(args, "end-of-call-report.request.json", call_id)?).await?;
    Ok(())
}

/// Times `switchboard ARGS` (a fresh process, as a user runs it) `samples`
/// times, after one untimed run; `check` sees each run's output.
fn time_cli(
    args: &Args,
    samples: usize,
    cli_args: impl Fn(usize) -> Vec<String>,
    check: impl Fn(&str) -> bool,
) -> anyhow::Result<Spread> {
    let mut times = Vec::new();
    // One untimed run first: the binary and the log in the page cache.
    for i in std::iter::once(0).chain(0..samples) {
        let argv = cli_args(i);
        let mut command = Command::new(&args.switchboard);
        command.args(&argv).current_dir(&args.work).stdin(Stdio::null());
        for var in ["SWITCHBOARD_DATA", "SWITCHBOARD_CONFIG", "RUST_LOG", "RUST_BACKTRACE", "RUST_LIB_BACKTRACE"] {
            command.env_remove(var);
        }
        let started = Instant::now();
        let output = command.output().with_context(|| format!("run switchboard {}", argv.join(" ")))?;
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&output.stdout);
        ensure!(
            output.status.success() && check(&stdout),
            "switchboard {} ({}): {}{}",
            argv.join(" "),
            output.status,
            text(stdout.as_bytes()),
            text(&output.stderr)
        );
        times.push(elapsed);
    }
    // The first was the untimed run.
    times.remove(0);
    Ok(Spread::of(times))
}

/// The dashboard's first load, as its page makes it (`index.html` loads
/// `style.css` and `app.js`; the script's first poll asks for `/plugins` and
/// `/api/stats` together, then for the first page of calls): on two fresh
/// connections, as a browser opens them, each answer read whole and checked.
/// Rendering is not included.
pub const FIRST_LOAD: &str = "`GET /ui/`; then `/ui/style.css` and `/ui/app.js` at once; then `/plugins` and \
                              `/api/stats` at once; then `/api/calls?limit=50` (50 calls)";

async fn first_load(ep: &Endpoint) -> anyhow::Result<Duration> {
    let (mut a, mut b) = (Conn::default(), Conn::default());
    let started = Instant::now();
    get_ok(&mut a, ep, "/ui/").await?;
    let (css, js) = tokio::join!(get_ok(&mut a, ep, "/ui/style.css"), get_ok(&mut b, ep, "/ui/app.js"));
    css?;
    js?;
    let (plugins, stats) = tokio::join!(get_ok(&mut a, ep, "/plugins"), get_ok(&mut b, ep, "/api/stats"));
    plugins?;
    stats?;
    let page = get_ok(&mut a, ep, "/api/calls?limit=50").await?;
    let elapsed = started.elapsed();
    let page: serde_json::Value = serde_json::from_slice(&page)?;
    let calls = page["calls"].as_array().map_or(0, Vec::len);
    ensure!(calls == 50, "GET /api/calls?limit=50 listed {calls} calls");
    Ok(elapsed)
}

/// Builds a log of `tool_calls` tool calls and times reading it.
async fn big_log(args: &Args, tool_calls: u64, samples: usize, visible_samples: usize) -> anyhow::Result<BigLog> {
    let data = args.work.join(BIG_DATA);
    let _ = std::fs::remove_dir_all(&data);
    let calls = tool_calls / TOOL_CALLS_PER_CALL;
    eprintln!("  a log of {tool_calls} tool calls in {calls} calls");
    let started = Instant::now();
    let (ok, failed) = (uuid(), uuid());
    {
        let mut server = serve(args, &data, "call-log-seed")?;
        wait_readyz(&mut server).await?;
        real_call(args, &server.endpoint, &ok, false).await?;
        real_call(args, &server.endpoint, &failed, true).await?;
        // SIGTERM: the server writes what it has queued before it exits.
        server.stop();
    }
    let file = data.join("calls.sqlite3");
    let (file2, ok2, failed2) = (file.clone(), ok.clone(), failed.clone());
    let mut big = tokio::task::spawn_blocking(move || multiply(&file2, &ok2, &failed2, calls)).await??;
    big.build_s = started.elapsed().as_secs_f64();
    big.file_bytes = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", file.display())).ok())
        .map(|m| m.len())
        .sum();
    eprintln!(
        "  built in {:.1} s: {} calls, {} tool calls, {} webhooks, {:.0} MB",
        big.build_s,
        big.calls,
        big.tool_calls,
        big.webhooks,
        big.file_bytes as f64 / 1e6
    );
    let ids = random_calls(&file, samples)?;

    let dir = data.to_string_lossy().into_owned();
    let argv = |extra: &[&str]| {
        let mut v: Vec<String> = vec!["calls".into()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(["--data-dir".into(), dir.clone()]);
        v
    };
    big.version = time_cli(args, samples, |_| vec!["--version".into()], |out| out.contains("switchboard"))?;
    big.cli_call = time_cli(
        args,
        samples,
        |i| argv(&["--call", &ids[i % ids.len()]]),
        |out| out.contains(&format!("{TOOL_CALLS_PER_CALL} tool calls")),
    )?;
    let listed = |out: &str| out.lines().count() == 21;
    big.cli_list = time_cli(args, samples, |_| argv(&[]), listed)?;
    big.cli_errors = time_cli(args, samples, |_| argv(&["--errors"]), listed)?;
    big.cli_tool_errors = time_cli(args, samples, |_| argv(&["--tool", "echo", "--errors"]), listed)?;
    eprintln!(
        "  calls --call: median {:.1} ms; calls: {:.1} ms; --errors: {:.1} ms; --tool echo --errors: {:.1} ms",
        big.cli_call.median_ms, big.cli_list.median_ms, big.cli_errors.median_ms, big.cli_tool_errors.median_ms
    );

    let mut server = serve(args, &data, "call-log-big")?;
    big.serve_ready_ms = wait_readyz(&mut server).await?.as_secs_f64() * 1e3;
    let mut loads = Vec::new();
    for _ in 0..samples {
        loads.push(first_load(&server.endpoint).await?);
    }
    big.first_load = Spread::of(loads);
    let mut views = Vec::new();
    for id in &ids {
        let mut conn = Conn::default();
        let started = Instant::now();
        let body = get_ok(&mut conn, &server.endpoint, &format!("/api/calls/{id}")).await?;
        views.push(started.elapsed());
        let story: serde_json::Value = serde_json::from_slice(&body)?;
        let entries = story["entries"].as_array().map_or(0, Vec::len);
        ensure!(entries > TOOL_CALLS_PER_CALL as usize, "call {id}: {entries} entries");
    }
    big.call_view = Spread::of(views);
    big.visibility = visibility(&server.endpoint, visible_samples).await?;
    server.stop();
    eprintln!(
        "  dashboard first load: median {:.1} ms, max {:.1} ms; visible after: median {:.1} ms",
        big.first_load.median_ms, big.first_load.max_ms, big.visibility.delay.median_ms
    );
    Ok(big)
}

/// A random id shaped like the platform's call ids (a UUID v4).
fn uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let part = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
        h.finish()
    };
    let hex = format!("{:016x}{:016x}", part(), part());
    format!("{}-{}-4{}-a{}-{}", &hex[..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

/// Waits until `/readyz` answers 200 with the plugin loaded; the time since
/// the server was spawned.
async fn wait_readyz(server: &mut ServerProc) -> anyhow::Result<Duration> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((status, body)) = Conn::default().get(&server.endpoint, "/readyz").await
            && status == 200
            && String::from_utf8_lossy(&body).replace(' ', "").contains("\"plugins\":1,")
        {
            return Ok(server.started.elapsed());
        }
        ensure!(!server.exited(), "{} exited during start-up; see {}", server.name, server.log.display());
        ensure!(Instant::now() < deadline, "{} not ready within 60 s; see {}", server.name, server.log.display());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `samples` random calls of the log at `file`.
fn random_calls(file: &Path, samples: usize) -> anyhow::Result<Vec<String>> {
    let db = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut statement = db.prepare("SELECT call_id FROM calls ORDER BY random() LIMIT ?1")?;
    let ids = statement.query_map([samples as i64], |row| row.get(0))?.collect::<Result<Vec<String>, _>>()?;
    ensure!(!ids.is_empty(), "no calls in {}", file.display());
    Ok(ids)
}

/// Turns the log at `file`, holding the two real calls `ok` and `failed`,
/// into `calls` calls: `calls - 2` copies of them (every
/// [`FAILED_EVERY`]th a copy of `failed`) with random ids, their rows
/// inserted in time order into the server's tables with its indexes in
/// place, and a summary row each. Checks that the summaries add up.
fn multiply(file: &PathBuf, ok: &str, failed: &str, calls: u64) -> anyhow::Result<BigLog> {
    let db = Connection::open(file).with_context(|| format!("open {}", file.display()))?;
    // Only for building it: the copies need no crash safety.
    db.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -262144; PRAGMA temp_store = MEMORY;")?;
    let real: Vec<(String, i64, i64, i64)> = db
        .prepare(
            "SELECT c.call_id, c.tool_calls, c.failed, (SELECT count(*) FROM webhooks w WHERE w.call_id = c.call_id) \
             FROM calls c WHERE c.call_id IN (?1, ?2) ORDER BY c.call_id = ?1 DESC",
        )?
        .query_map(params![ok, failed], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    ensure!(
        real.len() == 2
            && real.iter().all(|r| r.1 == TOOL_CALLS_PER_CALL as i64 && r.3 == 3)
            && real[0].2 == 0
            && real[1].2 == 1,
        "the server logged the two real calls as {real:?} (call id, tool calls, failed, webhooks), not 10 tool \
         calls and 3 webhooks each with one failure in the second"
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let copies = calls.saturating_sub(2) as i64;
    let start = now - SPREAD_MS - CALL_MS;
    let spacing = SPREAD_MS as f64 / copies.max(1) as f64;
    let tx = db.unchecked_transaction()?;
    // Each real call's rows, webhooks and tool calls, in the order they came.
    tx.execute("CREATE TEMP TABLE template (kind TEXT, id INTEGER, call_id TEXT, pos INTEGER)", [])?;
    tx.execute(
        "INSERT INTO template SELECT kind, id, call_id, \
           row_number() OVER (PARTITION BY call_id ORDER BY at, kind, id) - 1 AS pos FROM ( \
             SELECT 'hook' AS kind, id, call_id, at FROM webhooks WHERE call_id IN (?1, ?2) \
             UNION ALL SELECT 'tool', id, call_id, at FROM tool_calls WHERE call_id IN (?1, ?2))",
        params![ok, failed],
    )?;
    let last_pos: i64 = tx.query_row("SELECT max(pos) FROM template", [], |r| r.get(0))?;
    let step = CALL_MS / last_pos.max(1);
    tx.execute(
        "CREATE TEMP TABLE copies (i INTEGER PRIMARY KEY, call_id TEXT NOT NULL, template TEXT NOT NULL, \
           start INTEGER NOT NULL)",
        [],
    )?;
    tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1) \
         INSERT INTO copies SELECT i, \
           lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-a' \
             || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))), \
           CASE WHEN i % ?2 = ?2 - 1 THEN ?4 ELSE ?3 END, \
           ?5 + CAST(i * ?6 AS INTEGER) \
         FROM n",
        params![copies, FAILED_EVERY as i64, ok, failed, start, spacing],
    )?;
    // Rows are timed in microseconds, summaries in milliseconds.
    tx.execute(
        "INSERT INTO tool_calls (at, call_id, tool_call_id, tool, plugin, version, door, outcome, duration_us, \
           arguments, result, error) \
         SELECT (c.start + p.pos * ?1) * 1000, c.call_id, t.tool_call_id || '_' || c.i, t.tool, t.plugin, t.version, t.door, \
           t.outcome, t.duration_us, t.arguments, t.result, t.error \
         FROM copies c JOIN template p ON p.call_id = c.template AND p.kind = 'tool' JOIN tool_calls t ON t.id = p.id \
         ORDER BY 1",
        [step],
    )?;
    tx.execute(
        "INSERT INTO webhooks (at, call_id, event, http_status, duration_us, detail) \
         SELECT (c.start + p.pos * ?1) * 1000, c.call_id, w.event, w.http_status, w.duration_us, w.detail \
         FROM copies c JOIN template p ON p.call_id = c.template AND p.kind = 'hook' JOIN webhooks w ON w.id = p.id \
         ORDER BY 1",
        [step],
    )?;
    tx.execute(
        "INSERT INTO calls (call_id, first_at, last_at, customer_number, phone_number, tool_calls, failed, status, \
           ended_reason, duration_seconds) \
         SELECT c.call_id, c.start, c.start + ?1, s.customer_number, s.phone_number, s.tool_calls, s.failed, \
           s.status, s.ended_reason, s.duration_seconds \
         FROM copies c JOIN calls s ON s.call_id = c.template ORDER BY c.start",
        [last_pos * step],
    )?;
    tx.execute_batch("DROP TABLE temp.copies; DROP TABLE temp.template;")?;
    tx.commit()?;

    let one = |query: &str| db.query_row(query, [], |r| r.get::<_, i64>(0)).map(|v| v as u64);
    let big = BigLog {
        calls: one("SELECT count(*) FROM calls")?,
        tool_calls: one("SELECT count(*) FROM tool_calls")?,
        webhooks: one("SELECT count(*) FROM webhooks")?,
        failed_calls: one("SELECT count(*) FROM calls WHERE failed > 0")?,
        ..BigLog::default()
    };
    let summed = (one("SELECT sum(tool_calls) FROM calls")?, one("SELECT sum(failed) FROM calls")?);
    let failed_rows =
        one("SELECT count(*) FROM tool_calls WHERE outcome IN ('error', 'timeout', 'invalid_arguments')")?;
    let ids =
        (one("SELECT count(DISTINCT call_id) FROM tool_calls")?, one("SELECT count(DISTINCT call_id) FROM webhooks")?);
    ensure!(
        big.calls == calls && big.tool_calls == calls * TOOL_CALLS_PER_CALL && summed == (big.tool_calls, failed_rows),
        "the log does not add up: {} calls, {} tool calls ({failed_rows} failed); the summaries count {} and {}",
        big.calls,
        big.tool_calls,
        summed.0,
        summed.1
    );
    ensure!(ids == (calls, calls), "tool calls and webhooks of {ids:?} calls, not {calls}");
    db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(big)
}
