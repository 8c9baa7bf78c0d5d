//! The benchmark suite behind `benches/run.sh`: starts each server under
//! test, drives it with the load generator, measures the extra figures
//! (in-process calls, hot reload, memory, start-up, compile tiers, the call
//! log) and writes BENCHMARKS.md.
//!
//! Built as a `harness = false` bench target; `benches/run.sh` installs the
//! baselines, builds everything and passes the paths. Run it through that
//! script (`benches/run.sh --help`).

mod call_log;
mod client;
mod extras;
mod load;
mod mcp;
mod procfs;
mod report;
mod servers;
mod soak;
mod tiers;

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};

use client::Expect;
use load::{LoadResult, LoadSpec};
use servers::{ServerProc, free_port};

/// Benchmark suite; see benches/run.sh.
#[derive(Debug, Parser)]
struct Args {
    /// Short durations and few samples: a smoke test.
    #[arg(long)]
    quick: bool,
    /// The repository root.
    #[arg(long)]
    root: PathBuf,
    /// The release `switchboard` binary.
    #[arg(long)]
    switchboard: PathBuf,
    /// The same, built with the `bench-no-plugin-call` feature: the edge alone.
    #[arg(long)]
    switchboard_edge: Option<PathBuf>,
    /// The native axum baseline binary.
    #[arg(long)]
    native: PathBuf,
    /// `node`.
    #[arg(long, default_value = "node")]
    node: PathBuf,
    /// node_modules folder holding express.
    #[arg(long)]
    node_modules: PathBuf,
    /// Python virtual environment with fastapi, uvicorn, flask, gunicorn.
    #[arg(long)]
    venv: PathBuf,
    /// misbehave.wasm (its `http_get` tool, on a slow local HTTP server, for the memory figure).
    #[arg(long)]
    misbehave: PathBuf,
    /// The two reload-probe builds.
    #[arg(long)]
    probe_a: PathBuf,
    #[arg(long)]
    probe_b: PathBuf,
    /// Scratch folder (plugin folders, server logs, results.json).
    #[arg(long)]
    work: PathBuf,
    /// Where to write the report.
    #[arg(long)]
    out: PathBuf,
    /// The command line to quote in the report.
    #[arg(long, default_value = "benches/run.sh")]
    command_line: String,
    /// Only these sections: http, instantiation, reload, memory, startup, tiers, call-log.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Only these servers in the http section.
    #[arg(long, value_delimiter = ',')]
    servers: Vec<String>,
    /// Override the warm-up of each http figure, in seconds (this and the
    /// next two are for benches/profile.sh).
    #[arg(long)]
    warmup_secs: Option<f64>,
    /// Override the measured window of each http figure, in seconds.
    #[arg(long)]
    measure_secs: Option<f64>,
    /// Measure nothing: rewrite the report from the results.json of the
    /// last run in --work (after changing the report's wording).
    #[arg(long)]
    render_only: bool,
    /// Override the closed-loop concurrency levels.
    #[arg(long, value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Run the soak for this many minutes instead of the sections
    /// (benches/soak.sh).
    #[arg(long)]
    soak_minutes: Option<f64>,
    /// How often the soak restarts Redis, in seconds.
    #[arg(long, default_value_t = 300.0)]
    soak_redis_every_secs: f64,
    /// How often the soak replaces its plugin, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    soak_reload_every_ms: u64,
    /// `redis-server`, for the soak.
    #[arg(long)]
    redis_server: Option<PathBuf>,
}

/// Closed-loop concurrency levels.
const CONCURRENCY: [usize; 3] = [1, 16, 64];
/// Concurrency (connections) of the rate-limited runs.
const RATE_CONCURRENCY: usize = 64;
/// Concurrency the targets are judged at.
pub const TARGET_CONCURRENCY: usize = 16;

#[derive(Debug, Clone, Copy)]
pub struct Durations {
    pub warmup: Duration,
    pub measure: Duration,
    /// Windows the measure is cut into, taken in turns with the other
    /// servers ([`ROUNDS`] unless a section needs more).
    pub rounds: u32,
}

/// The servers of the HTTP table: key, label, tool, and whether to also run
/// at 50% of its best throughput.
pub type Server = (&'static str, &'static str, &'static str, bool);
const SERVERS: [Server; 9] = [
    ("switchboard-echo", "Switchboard, echo (component, a fresh instance per call)", "echo", true),
    ("switchboard-echo-reuse", "Switchboard, echo with max_instance_reuse = 256", "echo", true),
    ("switchboard-edge", "Switchboard's edge alone (no plugin call; bench-no-plugin-call build)", "echo", false),
    ("switchboard-echo_command", "Switchboard, echo_command (WASI command)", "echo_command", true),
    ("native", "native Rust axum (ceiling)", "echo", true),
    ("express", "Express, 1 process", "echo", false),
    ("express-cluster", "Express, cluster (1 worker per core)", "echo", false),
    ("fastapi", "FastAPI, uvicorn 2 workers", "echo", false),
    ("flask", "Flask, gunicorn sync workers", "echo", false),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerResults {
    pub key: String,
    pub label: String,
    pub how: String,
    pub runs: Vec<LoadResult>,
    pub half_rate: Option<LoadResult>,
    pub failure: Option<String>,
}

impl ServerResults {
    pub fn at(&self, concurrency: usize) -> Option<&LoadResult> {
        self.runs.iter().find(|r| r.concurrency == concurrency)
    }
}

/// A figure, or why it could not be measured; `None` when its section did not run.
pub type Figure<T> = Option<Result<T, String>>;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Results {
    pub quick: bool,
    pub durations: (f64, f64),
    pub machine: Vec<(String, String)>,
    pub command_line: String,
    /// Empty when the http section did not run.
    pub http: Vec<ServerResults>,
    pub in_process: Figure<extras::InProcessResult>,
    pub reload: Figure<extras::ReloadResult>,
    pub memory: Figure<extras::MemoryResult>,
    pub startup: Figure<extras::StartupResult>,
    /// Compile tiers per example language (absent in older results.json).
    #[serde(default)]
    pub tiers: Figure<tiers::TiersResult>,
    /// The call log's figures (absent in older results.json).
    #[serde(default)]
    pub call_log: Figure<call_log::CallLogResult>,
    /// The MCP door against the webhook door (absent in older results.json).
    #[serde(default)]
    pub mcp: Figure<mcp::McpResult>,
    /// Waits for the machine to be quiet before each block: (block, seconds waited, other load then).
    pub quiet_waits: Vec<(String, f64, f64)>,
}

/// Other processes' CPU use (cores) below which the machine counts as quiet.
pub const QUIET_CORES: f64 = 0.3;
/// Longest wait for quiet before one block, and over the whole run.
const QUIET_WAIT_BLOCK: Duration = Duration::from_secs(60);
const QUIET_WAIT_TOTAL: Duration = Duration::from_secs(300);

/// On a shared machine, waits (within limits) until other processes use
/// less than [`QUIET_CORES`] before a block of measurements starts. Only
/// waits; it never slows anything else down.
async fn wait_for_quiet(results: &mut Results, block: &str) {
    if results.quick {
        // A smoke test: no waiting.
        return;
    }
    let waited_so_far: f64 = results.quiet_waits.iter().map(|w| w.1).sum();
    let budget = QUIET_WAIT_BLOCK.min(QUIET_WAIT_TOTAL.saturating_sub(Duration::from_secs_f64(waited_so_far)));
    let started = std::time::Instant::now();
    let tick = 1e6 / procfs::clk_tck() as f64;
    let other = loop {
        let (m0, s0) = (procfs::machine_busy_ticks(), procfs::self_cpu_ticks());
        let t0 = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let (m1, s1) = (procfs::machine_busy_ticks(), procfs::self_cpu_ticks());
        let other = ((m1 - m0).saturating_sub(s1 - s0)) as f64 * tick / 1e6 / t0.elapsed().as_secs_f64();
        if other < QUIET_CORES || started.elapsed() >= budget {
            break other;
        }
    };
    let waited = started.elapsed().as_secs_f64() - 1.0;
    if waited > 0.5 {
        eprintln!("  (waited {waited:.0} s for other load to drop; now {other:.2} cores)");
    }
    results.quiet_waits.push((block.to_owned(), waited.max(0.0), other));
}

fn output(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

fn machine(args: &Args) -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "?".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_else(|| "?".into());
    let root = args.root.to_string_lossy().into_owned();
    let commit = output("git", &["-C", &root, "rev-parse", "--short=12", "HEAD"]);
    let dirty = !output("git", &["-C", &root, "status", "--porcelain", "--untracked-files=no"]).is_empty();
    let express = std::fs::read_to_string(args.node_modules.join("express/package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let python = args.venv.join("bin/python");
    let py_versions = output(
        &python,
        &[
            "-c",
            "import sys, importlib.metadata as m\n\
             print('Python ' + sys.version.split()[0] + ', ' + ', '.join(p + ' ' + m.version(p) for p in \
             ['fastapi', 'uvicorn', 'uvloop', 'httptools', 'flask', 'gunicorn']))",
        ],
    );
    vec![
        ("nproc".into(), std::thread::available_parallelism().map(|n| n.to_string()).unwrap_or_default()),
        ("CPU".into(), model),
        ("memory".into(), memory),
        ("kernel".into(), output("uname", &["-sr"])),
        ("date".into(), output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])),
        ("git commit".into(), if dirty { format!("{commit} (with uncommitted changes)") } else { commit }),
        ("rustc".into(), output("rustc", &["--version"])),
        ("node".into(), format!("{}, express {express}", output(&args.node, &["--version"]))),
        ("python".into(), py_versions),
    ]
}

/// The command that starts server `key` on 127.0.0.1:PORT, and how the
/// report says it was started.
///
/// Switchboard's servers run with the call log off (`--config` with
/// `[call_log] enabled = false`), as every figure before the call log was
/// measured, except `switchboard-echo-log-on`, the call log section's.
fn server_command(args: &Args, key: &str, port: u16) -> (Command, String) {
    let baselines = args.root.join("benches/baselines");
    let address = format!("127.0.0.1:{port}");
    let serve = |binary: &std::path::Path, plugins: &str| {
        let mut c = Command::new(binary);
        c.arg("serve").arg("--plugins").arg(args.work.join(plugins)).args(["--listen", &address]);
        c.arg("--config").arg(servers::call_log_off_config(args));
        c
    };
    const OFF: &str = "`switchboard serve --config call-log-off.toml`";
    const OFF_FILE: &str = "(`call-log-off.toml`: `[call_log] enabled = false`)";
    match key {
        "switchboard-echo" | "switchboard-echo_command" => {
            (serve(&args.switchboard, "plugins-http"), format!("{OFF} (release build) {OFF_FILE}"))
        }
        "switchboard-echo-reuse" => (
            serve(&args.switchboard, "plugins-http-reuse"),
            format!("{OFF} {OFF_FILE}, `echo.toml`: `max_instance_reuse = 256`"),
        ),
        "switchboard-edge" => {
            // Without the edge-only build the server fails to start, and the report says so.
            let binary = args.switchboard_edge.clone().unwrap_or_else(|| args.work.join("no-switchboard-edge-build"));
            (serve(&binary, "plugins-http"), format!("{OFF} {OFF_FILE}, built with `--features bench-no-plugin-call`"))
        }
        "switchboard-echo-webhook-door" | mcp::MCP_KEY => {
            let mut c = serve(&args.switchboard, mcp::PLUGINS);
            c.env("SWITCHBOARD_MCP_TOKENS", client::MCP_TOKEN);
            (c, format!("{OFF} (release build) {OFF_FILE}, `SWITCHBOARD_MCP_TOKENS` set (the MCP door needs a token)"))
        }
        "switchboard-echo-log-off" => {
            (serve(&args.switchboard, call_log::PLUGINS), format!("{OFF} (release build) {OFF_FILE}"))
        }
        "switchboard-echo-log-on" => {
            let mut c = Command::new(&args.switchboard);
            c.arg("serve").arg("--plugins").arg(args.work.join(call_log::PLUGINS)).args(["--listen", &address]);
            c.arg("--data-dir").arg(args.work.join(call_log::ON_DATA));
            let how = format!(
                "`switchboard serve --data-dir {}` (release build, default settings: the call log on, in SQLite; \
                 emptied before the run)",
                call_log::ON_DATA
            );
            (c, how)
        }
        "native" => {
            let mut c = Command::new(&args.native);
            c.args(["--listen", &address]);
            (c, "`benches/native_baseline.rs` (release), tokio multi-threaded runtime".into())
        }
        "express" | "express-cluster" => {
            let cluster = if key == "express-cluster" { " --cluster" } else { "" };
            let mut c = Command::new(&args.node);
            c.arg(baselines.join("express_server.js")).arg(port.to_string()).args(cluster.split_whitespace());
            c.env("NODE_PATH", &args.node_modules).env("NODE_ENV", "production");
            (c, format!("`NODE_ENV=production node benches/baselines/express_server.js{cluster}`"))
        }
        "fastapi" => {
            let mut c = Command::new(args.venv.join("bin/uvicorn"));
            c.args(["fastapi_app:app", "--app-dir"]).arg(&baselines);
            c.args(["--workers", "2", "--no-access-log", "--log-level", "warning"]);
            c.args(["--host", "127.0.0.1", "--port", &port.to_string()]);
            (c, "`uvicorn fastapi_app:app --workers 2 --no-access-log` (uvloop + httptools)".into())
        }
        "flask" => {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
            let workers = (2 * cores + 1).to_string();
            let mut c = Command::new(args.venv.join("bin/gunicorn"));
            c.arg("--chdir").arg(&baselines).args(["--workers", &workers, "--worker-class", "sync"]);
            c.args(["--bind", &address, "flask_app:app"]);
            (c, format!("`gunicorn --workers {workers} --worker-class sync flask_app:app` (2 × cores + 1)"))
        }
        _ => unreachable!("no server {key}"),
    }
}

/// Measured windows per figure in a full run. Each server's figure at one
/// load is the sum of this many windows, taken in turns with the other
/// servers, so that a slow spell of the shared machine falls on all of them
/// rather than on whichever server was being measured then.
const ROUNDS: u32 = 3;
/// Warm-up before the windows after a server's first one at a load (its
/// connections and caches are warm by then).
pub const REWARM: Duration = Duration::from_secs(1);

/// A server of the table, started, and what was measured of it so far.
struct Running {
    key: &'static str,
    tool: &'static str,
    half_rate: bool,
    results: ServerResults,
    server: Option<ServerProc>,
}

/// Starts every server in `servers` (one at a time, each ready before the next
/// starts), then measures them in turns: at each load, round after round,
/// one window per server. Returns each server's figures, the windows of a
/// load merged.
async fn bench_servers(servers: Vec<Server>, args: &Args, d: Durations, levels: &[usize]) -> Vec<ServerResults> {
    let mut running: Vec<Running> = Vec::new();
    for (key, label, tool, half_rate) in servers {
        eprintln!("== starting {label}");
        let port = free_port();
        let (mut command, how) = server_command(args, key, port);
        command.current_dir(&args.root);
        let log = args.work.join(format!("{key}.log"));
        let started = match ServerProc::spawn(key, &mut command, port, &log) {
            Ok(mut server) => server.wait_ready(tool, Expect::Echo, Duration::from_secs(90)).await.map(|()| server),
            Err(e) => Err(e),
        };
        let (server, failure) = match started {
            Ok(server) => (Some(server), None),
            Err(e) => {
                eprintln!("  FAILED: {e}");
                (None, Some(e.to_string()))
            }
        };
        let (label, runs) = (label.into(), Vec::new());
        let results = ServerResults { key: key.into(), label, how, runs, half_rate: None, failure };
        running.push(Running { key, tool, half_rate, results, server });
    }

    let rounds = if args.quick { 1 } else { d.rounds };
    let window = |round: u32| Durations {
        warmup: if round == 0 { d.warmup } else { d.warmup.min(REWARM) },
        measure: d.measure / rounds,
        rounds: 1,
    };
    for &concurrency in levels {
        eprintln!("== {concurrency} connections, closed loop ({rounds} round(s), servers in turns)");
        let merged = measure_in_turns(&mut running, rounds, |entry, round| {
            let w = window(round);
            Some(LoadSpec {
                tool: entry.tool.into(),
                door: mcp::door_of(entry.key),
                expect: Expect::Echo,
                concurrency,
                warmup: w.warmup,
                measure: w.measure,
                rate: None,
                timeline: None,
            })
        })
        .await;
        for (entry, result) in running.iter_mut().zip(merged) {
            if let Some(r) = result {
                eprintln!(
                    "  {:<26} c={:<3} {:>9.0} req/s  p50 {:>8.3} ms  p99 {:>8.3} ms  server {:>7.1} µs/req  \
                     client {:>6.1} µs/req  other {:.2} cores  errors {}{}",
                    entry.key,
                    r.concurrency,
                    r.rps,
                    r.p50_us / 1e3,
                    r.p99_us / 1e3,
                    r.server_cpu_us_per_req,
                    r.client_cpu_us_per_req,
                    r.other_cores,
                    r.errors,
                    r.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default()
                );
                entry.results.runs.push(r);
            }
        }
    }

    // Half of each server's best throughput, at a fixed rate.
    if !running.iter().any(|entry| entry.half_rate) {
        return stop_servers(args, running);
    }
    eprintln!("== half of each server's best throughput, fixed rate ({rounds} round(s), servers in turns)");
    let merged = measure_in_turns(&mut running, rounds, |entry, round| {
        let max = entry.results.runs.iter().map(|r| r.rps).fold(0.0, f64::max);
        let w = window(round);
        (entry.half_rate && max > 0.0).then(|| LoadSpec {
            tool: entry.tool.into(),
            door: mcp::door_of(entry.key),
            expect: Expect::Echo,
            concurrency: RATE_CONCURRENCY,
            warmup: w.warmup,
            measure: w.measure,
            rate: Some(max / 2.0),
            timeline: Some(args.work.join(format!("timeline-{}-half-rate-{}.csv", entry.key, round + 1))),
        })
    })
    .await;
    for (entry, result) in running.iter_mut().zip(merged) {
        if let Some(r) = result {
            eprintln!(
                "  {:<26} 50% ({:.0} req/s target): {:.0} req/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
                entry.key,
                r.target_rate.unwrap_or(f64::NAN),
                r.rps,
                r.p50_us / 1e3,
                r.p99_us / 1e3,
                r.errors
            );
            entry.results.half_rate = Some(r);
        }
    }

    stop_servers(args, running)
}

/// Stops the servers of [`bench_servers`]; their figures, each marked failed
/// if the server had exited by then.
fn stop_servers(args: &Args, running: Vec<Running>) -> Vec<ServerResults> {
    running
        .into_iter()
        .map(|mut entry| {
            if let Some(mut server) = entry.server.take() {
                if server.exited() {
                    let log = args.work.join(format!("{}.log", entry.key));
                    entry.results.failure = Some(format!("the server exited during the runs; see {}", log.display()));
                }
                server.stop();
            }
            entry.results
        })
        .collect()
}

/// Runs `spec(server, round)` (where it gives one) for every live server in
/// turn, `rounds` times over, and merges each server's windows.
async fn measure_in_turns(
    running: &mut [Running],
    rounds: u32,
    spec: impl Fn(&Running, u32) -> Option<LoadSpec>,
) -> Vec<Option<LoadResult>> {
    let mut windows: Vec<Vec<load::Window>> = running.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (entry, windows) in running.iter_mut().zip(&mut windows) {
            let Some(server) = &entry.server else { continue };
            let Some(spec) = spec(entry, round) else { continue };
            let w = load::run(&server.endpoint, server.pid, &spec).await;
            if rounds > 1 {
                eprintln!("  {:<26} round {}/{rounds}: {:.0} req/s", entry.key, round + 1, w.rps());
            }
            windows.push(w);
        }
    }
    windows.into_iter().map(|w| (!w.is_empty()).then(|| LoadResult::merge(w))).collect()
}

fn section_on(args: &Args, name: &str) -> bool {
    args.only.is_empty() || args.only.iter().any(|s| s == name)
}

/// Measures one section, if it is on: waits for a quiet machine, then runs
/// `measure`.
async fn section<T: std::fmt::Debug>(
    args: &Args,
    results: &mut Results,
    name: &str,
    measure: impl Future<Output = anyhow::Result<T>>,
) -> Figure<T> {
    if !section_on(args, name) {
        return None;
    }
    eprintln!("== {name}");
    wait_for_quiet(results, name).await;
    let outcome = measure.await;
    match &outcome {
        Ok(figure) => eprintln!("  {figure:?}"),
        Err(e) => eprintln!("  {name} failed: {e:#}"),
    }
    Some(outcome.map_err(|e| format!("{e:#}")))
}

/// Memory growth is judged in soak runs at least this long: a shorter run is
/// still warming up after its first sixth.
const SOAK_MEMORY_JUDGED_FROM_MINUTES: f64 = 10.0;

/// The soak run: writes its figures, and fails when an answer failed or was
/// wrong (or, in a long run, memory grew by 10 % or more).
async fn run_soak(args: &Args, minutes: f64) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.work)?;
    let plan = soak::SoakPlan {
        duration: Duration::from_secs_f64(minutes * 60.0),
        reload_every: Duration::from_millis(args.soak_reload_every_ms),
        redis_restart_every: Duration::from_secs_f64(args.soak_redis_every_secs),
    };
    let result = soak::soak(args, plan).await?;
    std::fs::write(args.work.join("soak.json"), serde_json::to_string_pretty(&result)?)?;
    let text = soak::render(&result, plan);
    std::fs::write(&args.out, &text)?;
    println!("{text}");
    anyhow::ensure!(
        result.answered > 0 && result.errors == 0,
        "the soak saw {} failed or wrong answers",
        result.errors
    );
    anyhow::ensure!(
        minutes < SOAK_MEMORY_JUDGED_FROM_MINUTES || result.rss_growth_pct < 10.0,
        "resident memory grew by {:.1} % after the first sixth of the soak",
        result.rss_growth_pct
    );
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(minutes) = args.soak_minutes {
        return run_soak(&args, minutes).await;
    }
    std::fs::create_dir_all(&args.work)?;
    let results_json = args.work.join("results.json");
    if args.render_only {
        let results: Results = serde_json::from_str(&std::fs::read_to_string(&results_json)?).map_err(|e| {
            anyhow::anyhow!("cannot read {} (NaN figures are written as null): {e}", results_json.display())
        })?;
        std::fs::write(&args.out, report::render(&results))?;
        eprintln!("rewrote {} from {}", args.out.display(), results_json.display());
        return Ok(());
    }
    let (warmup, measure) = if args.quick { (0.5, 1.5) } else { (3.0, 10.0) };
    let durations = Durations {
        warmup: Duration::from_secs_f64(args.warmup_secs.unwrap_or(warmup)),
        measure: Duration::from_secs_f64(args.measure_secs.unwrap_or(measure)),
        rounds: ROUNDS,
    };
    let echo = args.root.join("plugins/echo.wasm");
    let echo_command = args.root.join("plugins/echo_command.wasm");
    let mut results = Results {
        quick: args.quick,
        durations: (durations.warmup.as_secs_f64(), durations.measure.as_secs_f64()),
        machine: machine(&args),
        command_line: args.command_line.clone(),
        ..Default::default()
    };

    let plugins = [(echo.as_path(), "echo"), (echo_command.as_path(), "echo_command")];
    results.in_process = section(&args, &mut results, "instantiation", extras::in_process(&args, &plugins)).await;
    if section_on(&args, "http") {
        extras::plugins_dir(&args, "plugins-http", &[&echo, &echo_command])?;
        let reuse = extras::plugins_dir(&args, "plugins-http-reuse", &[&echo])?;
        std::fs::write(reuse.join("echo.toml"), "max_instance_reuse = 256\n")?;
        // The call log and MCP sections' servers only when named (benches/profile.sh).
        let named = |s: &Server| args.servers.iter().any(|k| k == s.0);
        let mut servers: Vec<Server> = SERVERS.into_iter().filter(|s| args.servers.is_empty() || named(s)).collect();
        servers.extend(call_log::SERVERS.into_iter().filter(named));
        servers.extend(mcp::SERVERS.into_iter().filter(named));
        if servers.iter().any(|s| call_log::SERVERS.iter().any(|l| l.0 == s.0)) {
            extras::plugins_dir(&args, call_log::PLUGINS, &[&echo])?;
        }
        if servers.iter().any(|s| mcp::SERVERS.iter().any(|l| l.0 == s.0)) {
            extras::plugins_dir(&args, mcp::PLUGINS, &[&echo])?;
        }
        wait_for_quiet(&mut results, "http").await;
        let levels = if args.concurrency.is_empty() { CONCURRENCY.to_vec() } else { args.concurrency.clone() };
        results.http = bench_servers(servers, &args, durations, &levels).await;
    }
    results.reload = section(&args, &mut results, "reload", extras::reload(&args)).await;
    results.memory = section(&args, &mut results, "memory", extras::memory(&args)).await;
    results.startup = section(&args, &mut results, "startup", extras::startup(&args)).await;
    results.tiers = section(&args, &mut results, "tiers", tiers::tiers_section(&args)).await;
    results.call_log = section(&args, &mut results, "call-log", call_log::call_log_section(&args, durations)).await;
    results.mcp = section(&args, &mut results, "mcp", mcp::mcp_section(&args, durations)).await;

    // With --only, the sections not run keep the figures of the last run.
    let last = || std::fs::read_to_string(&results_json).ok().and_then(|t| serde_json::from_str::<Results>(&t).ok());
    if !args.only.is_empty()
        && let Some(last) = last()
    {
        keep_unmeasured(&mut results, last);
    }
    std::fs::write(&results_json, serde_json::to_string_pretty(&results)?)?;
    std::fs::write(&args.out, report::render(&results))?;
    eprintln!("wrote {} (raw figures: {})", args.out.display(), results_json.display());
    Ok(())
}

/// Takes from `last` every section this run did not measure.
fn keep_unmeasured(results: &mut Results, last: Results) {
    if results.http.is_empty() {
        results.http = last.http;
    }
    results.in_process = results.in_process.take().or(last.in_process);
    results.reload = results.reload.take().or(last.reload);
    results.memory = results.memory.take().or(last.memory);
    results.startup = results.startup.take().or(last.startup);
    results.tiers = results.tiers.take().or(last.tiers);
    results.call_log = results.call_log.take().or(last.call_log);
    results.mcp = results.mcp.take().or(last.mcp);
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        // Ctrl-C or SIGTERM: stop the servers (each in a process group of its own) before exiting.
        tokio::spawn(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("install a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("interrupted: stopping the servers");
            servers::stop_all();
            std::process::exit(130);
        });
        run(args).await
    })
}
