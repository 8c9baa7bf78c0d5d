//! The benchmark suite behind `benches/run.sh`: starts each server under
//! test, drives it with the load generator, measures the extra figures
//! (instantiation, hot reload, memory, start-up) and writes BENCHMARKS.md.
//!
//! Built as a `harness = false` bench target; `benches/run.sh` installs the
//! baselines, builds everything and passes the paths. Run it through that
//! script (`benches/run.sh --help`).

mod client;
mod extras;
mod load;
mod procfs;
mod report;
mod servers;

use std::path::{Path, PathBuf};
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
    /// Only these sections: http, instantiation, reload, memory, startup.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Only these servers in the http section.
    #[arg(long, value_delimiter = ',')]
    servers: Vec<String>,
    /// Override the warm-up of each http figure, in seconds.
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
}

/// One server of the HTTP table.
pub struct ServerDef {
    pub key: &'static str,
    pub label: &'static str,
    pub tool: &'static str,
    /// Whether to also run at 50% of its max throughput.
    pub half_rate: bool,
    pub command: Command,
    /// How it was started, for the report.
    pub how: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerResults {
    pub key: String,
    pub label: String,
    pub how: String,
    pub ready_s: f64,
    pub runs: Vec<LoadResult>,
    pub half_rate: Option<LoadResult>,
    pub failure: Option<String>,
}

impl ServerResults {
    pub fn at(&self, concurrency: usize) -> Option<&LoadResult> {
        self.runs.iter().find(|r| r.concurrency == concurrency)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Results {
    pub quick: bool,
    pub durations: (f64, f64),
    pub machine: Vec<(String, String)>,
    pub command_line: String,
    pub http: Vec<ServerResults>,
    pub instantiation: Vec<extras::InstantiationResult>,
    pub instantiation_error: Option<String>,
    /// One webhook through the router, in-process (absent in older results).
    #[serde(default)]
    pub request: Option<extras::RequestResult>,
    #[serde(default)]
    pub request_error: Option<String>,
    pub reload: Option<extras::ReloadResult>,
    pub reload_error: Option<String>,
    pub memory: Option<extras::MemoryResult>,
    pub memory_error: Option<String>,
    pub startup: Option<extras::StartupResult>,
    pub startup_error: Option<String>,
    pub sections: Vec<String>,
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

fn server_defs(args: &Args, plugins_dir: &Path) -> Vec<ServerDef> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let baselines = args.root.join("benches/baselines");
    let mut defs = Vec::new();
    for (key, label, tool) in [
        ("switchboard-echo", "Switchboard, echo (component)", "echo"),
        ("switchboard-echo_command", "Switchboard, echo_command (WASI command)", "echo_command"),
    ] {
        let mut command = Command::new(&args.switchboard);
        command.arg("serve").arg("--plugins").arg(plugins_dir);
        defs.push(ServerDef {
            key,
            label,
            tool,
            half_rate: true,
            command,
            how: "`switchboard serve` (release build, default settings)".into(),
        });
    }
    defs.push(ServerDef {
        key: "native",
        label: "native Rust axum (ceiling)",
        tool: "echo",
        half_rate: true,
        command: Command::new(&args.native),
        how: "`benches/native_baseline.rs` (release), tokio multi-threaded runtime".into(),
    });
    for (key, label, cluster) in
        [("express", "Express, 1 process", false), ("express-cluster", "Express, cluster (1 worker per core)", true)]
    {
        let mut command = Command::new(&args.node);
        command
            .arg(baselines.join("express_server.js"))
            .env("NODE_PATH", &args.node_modules)
            .env("NODE_ENV", "production");
        if cluster {
            command.arg("--cluster");
        }
        defs.push(ServerDef {
            key,
            label,
            tool: "echo",
            half_rate: false,
            command,
            how: format!(
                "`NODE_ENV=production node benches/baselines/express_server.js{}`",
                if cluster { " --cluster" } else { "" }
            ),
        });
    }
    let mut fastapi = Command::new(args.venv.join("bin/uvicorn"));
    fastapi.args(["fastapi_app:app", "--app-dir"]).arg(&baselines).args([
        "--workers",
        "2",
        "--no-access-log",
        "--log-level",
        "warning",
        "--host",
        "127.0.0.1",
    ]);
    defs.push(ServerDef {
        key: "fastapi",
        label: "FastAPI, uvicorn 2 workers",
        tool: "echo",
        half_rate: false,
        command: fastapi,
        how: "`uvicorn fastapi_app:app --workers 2 --no-access-log` (uvloop + httptools)".into(),
    });
    let workers = 2 * cores + 1;
    let mut flask = Command::new(args.venv.join("bin/gunicorn"));
    flask.arg("--chdir").arg(&baselines).args(["--workers", &workers.to_string(), "--worker-class", "sync"]);
    flask.arg("flask_app:app");
    defs.push(ServerDef {
        key: "flask",
        label: "Flask, gunicorn sync workers",
        tool: "echo",
        half_rate: false,
        command: flask,
        how: format!("`gunicorn --workers {workers} --worker-class sync flask_app:app` (2 × cores + 1)"),
    });
    defs
}

/// Adds the listen address to a server's command line.
fn with_port(def: &ServerDef, port: u16, args: &Args) -> Command {
    let program = def.command.get_program().to_owned();
    let mut command = Command::new(&program);
    command.args(def.command.get_args());
    for (k, v) in def.command.get_envs() {
        match v {
            Some(v) => command.env(k, v),
            None => command.env_remove(k),
        };
    }
    let addr = format!("127.0.0.1:{port}");
    match def.key {
        "switchboard-echo" | "switchboard-echo_command" | "native" => {
            command.arg("--listen").arg(&addr);
        }
        "express" | "express-cluster" => {
            command.arg(port.to_string());
        }
        "fastapi" => {
            command.arg("--port").arg(port.to_string());
        }
        "flask" => {
            command.arg("--bind").arg(&addr);
        }
        _ => unreachable!(),
    }
    command.current_dir(&args.root);
    command
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
    def: ServerDef,
    results: ServerResults,
    server: Option<ServerProc>,
}

/// Starts every server in `defs` (one at a time, each ready before the next
/// starts), then measures them in turns: at each load, round after round,
/// one window per server. Returns each server's figures, the windows of a
/// load merged.
async fn bench_servers(defs: Vec<ServerDef>, args: &Args, d: Durations) -> Vec<ServerResults> {
    let mut running: Vec<Running> = Vec::new();
    for def in defs {
        eprintln!("== starting {}", def.label);
        let results = ServerResults {
            key: def.key.into(),
            label: def.label.into(),
            how: def.how.clone(),
            ready_s: f64::NAN,
            runs: Vec::new(),
            half_rate: None,
            failure: None,
        };
        let mut entry = Running { def, results, server: None };
        let port = free_port();
        let log = args.work.join(format!("{}.log", entry.def.key));
        match ServerProc::spawn(entry.def.key, with_port(&entry.def, port, args), port, &log) {
            Ok(mut server) => match server.wait_ready(entry.def.tool, Expect::Echo, Duration::from_secs(90)).await {
                Ok(ready) => {
                    entry.results.ready_s = ready.as_secs_f64();
                    entry.server = Some(server);
                }
                Err(e) => entry.results.failure = Some(e.to_string()),
            },
            Err(e) => entry.results.failure = Some(e.to_string()),
        }
        if let Some(f) = &entry.results.failure {
            eprintln!("  FAILED: {f}");
        }
        running.push(entry);
    }

    let rounds = if args.quick { 1 } else { ROUNDS };
    let window = |round: u32| Durations {
        warmup: if round == 0 { d.warmup } else { d.warmup.min(REWARM) },
        measure: d.measure / rounds,
    };
    let levels = if args.concurrency.is_empty() { CONCURRENCY.to_vec() } else { args.concurrency.clone() };
    for concurrency in levels {
        eprintln!("== {concurrency} connections, closed loop ({}, servers in turns)", plural(rounds, "round"));
        let spec = |w: Durations, def: &ServerDef| LoadSpec {
            tool: def.tool.into(),
            expect: Expect::Echo,
            concurrency,
            warmup: w.warmup,
            measure: w.measure,
            rate: None,
            timeline: None,
        };
        let merged = measure_in_turns(&mut running, rounds, |entry, round| Some(spec(window(round), &entry.def))).await;
        for (entry, result) in running.iter_mut().zip(merged) {
            if let Some(r) = result {
                print_closed_loop(entry.def.key, &r, "");
                entry.results.runs.push(r);
            }
        }
    }

    // Half of each server's best throughput, at a fixed rate.
    let half_rate = |entry: &Running| {
        let max = entry.results.runs.iter().map(|r| r.rps).fold(0.0, f64::max);
        (entry.def.half_rate && max > 0.0).then_some(max / 2.0)
    };
    if running.iter().any(|e| e.server.is_some() && half_rate(e).is_some()) {
        eprintln!(
            "== half of each server's best throughput, fixed rate ({}, servers in turns)",
            plural(rounds, "round")
        );
        let merged = measure_in_turns(&mut running, rounds, |entry, round| {
            let w = window(round);
            half_rate(entry).map(|rate| LoadSpec {
                tool: entry.def.tool.into(),
                expect: Expect::Echo,
                concurrency: RATE_CONCURRENCY,
                warmup: w.warmup,
                measure: w.measure,
                rate: Some(rate),
                timeline: Some(args.work.join(format!("timeline-{}-half-rate-{}.csv", entry.def.key, round + 1))),
            })
        })
        .await;
        for (entry, result) in running.iter_mut().zip(merged) {
            if let Some(r) = result {
                eprintln!(
                    "  {:<26} 50% ({:.0} req/s target): {:.0} req/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
                    entry.def.key,
                    r.target_rate.unwrap_or(f64::NAN),
                    r.rps,
                    r.p50_us / 1e3,
                    r.p99_us / 1e3,
                    r.errors
                );
                entry.results.half_rate = Some(r);
            }
        }
    }

    running
        .into_iter()
        .map(|mut entry| {
            if let Some(mut server) = entry.server.take() {
                if server.exited() {
                    let log = args.work.join(format!("{}.log", entry.def.key));
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
    let mut windows: Vec<Vec<LoadResult>> = running.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (entry, windows) in running.iter_mut().zip(&mut windows) {
            let Some(server) = &entry.server else { continue };
            let Some(spec) = spec(entry, round) else { continue };
            let r = load::run(&server.endpoint, server.pid, &spec).await;
            if rounds > 1 && spec.rate.is_none() {
                print_closed_loop(entry.def.key, &r, &format!("  (round {}/{rounds})", round + 1));
            }
            windows.push(r);
        }
    }
    windows.into_iter().map(|w| (!w.is_empty()).then(|| LoadResult::merge(w))).collect()
}

fn plural(n: u32, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

fn print_closed_loop(key: &str, r: &LoadResult, note: &str) {
    eprintln!(
        "  {:<26} c={:<3} {:>9.0} req/s  p50 {:>8.3} ms  p99 {:>8.3} ms  server {:>7.1} µs/req  client {:>6.1} µs/req  other {:.2} cores  errors {}{}{note}",
        key,
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
}

fn section_on(args: &Args, name: &str) -> bool {
    args.only.is_empty() || args.only.iter().any(|s| s == name)
}

async fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.work)?;
    if args.render_only {
        let path = args.work.join("results.json");
        let text = std::fs::read_to_string(&path)?;
        let results: Results = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "cannot read {} (a run with failed figures has nulls and cannot be re-rendered): {e}",
                path.display()
            )
        })?;
        std::fs::write(&args.out, report::render(&results))?;
        eprintln!("rewrote {} from {}", args.out.display(), path.display());
        return Ok(());
    }
    let mut durations = if args.quick {
        Durations { warmup: Duration::from_millis(500), measure: Duration::from_millis(1500) }
    } else {
        Durations { warmup: Duration::from_secs(3), measure: Duration::from_secs(10) }
    };
    if let Some(s) = args.warmup_secs {
        durations.warmup = Duration::from_secs_f64(s);
    }
    if let Some(s) = args.measure_secs {
        durations.measure = Duration::from_secs_f64(s);
    }
    let plugins = args.root.join("plugins");
    let echo = plugins.join("echo.wasm");
    let echo_command = plugins.join("echo_command.wasm");
    let mut results = Results {
        quick: args.quick,
        durations: (durations.warmup.as_secs_f64(), durations.measure.as_secs_f64()),
        machine: machine(&args),
        command_line: args.command_line.clone(),
        ..Default::default()
    };

    if section_on(&args, "instantiation") {
        results.sections.push("instantiation".into());
        eprintln!("== instantiation per call (in-process)");
        wait_for_quiet(&mut results, "instantiation").await;
        let calls = if args.quick { 2_000 } else { 20_000 };
        for (wasm, tool) in [(&echo, "echo"), (&echo_command, "echo_command")] {
            for pooling in [true, false] {
                match extras::instantiation(&args.work, wasm, tool, pooling, calls).await {
                    Ok(r) => {
                        eprintln!(
                            "  {:<18} pooling={:<5} p50 {:>7.1} µs  p99 {:>7.1} µs  mean {:>7.1} µs",
                            r.plugin, r.pooling, r.p50_us, r.p99_us, r.mean_us
                        );
                        results.instantiation.push(r);
                    }
                    Err(e) => {
                        eprintln!("  instantiation failed: {e:#}");
                        results.instantiation_error = Some(format!("{e:#}"));
                    }
                }
            }
        }
        match extras::in_process_request(&args.work, &echo, calls).await {
            Ok(r) => {
                eprintln!(
                    "  webhook via Router  {:<9} p50 {:>7.1} µs  p99 {:>7.1} µs  mean {:>7.1} µs",
                    r.plugin, r.p50_us, r.p99_us, r.mean_us
                );
                results.request = Some(r);
            }
            Err(e) => {
                eprintln!("  in-process webhook failed: {e:#}");
                results.request_error = Some(format!("{e:#}"));
            }
        }
    }

    if section_on(&args, "http") {
        results.sections.push("http".into());
        let dir = args.work.join("plugins-http");
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(&echo, dir.join("echo.wasm"))?;
        std::fs::copy(&echo_command, dir.join("echo_command.wasm"))?;
        let defs: Vec<ServerDef> = server_defs(&args, &dir)
            .into_iter()
            .filter(|def| args.servers.is_empty() || args.servers.iter().any(|s| s == def.key))
            .collect();
        wait_for_quiet(&mut results, "http").await;
        results.http = bench_servers(defs, &args, durations).await;
    }

    if section_on(&args, "reload") {
        results.sections.push("reload".into());
        eprintln!("== hot reload");
        wait_for_quiet(&mut results, "reload").await;
        let cfg = extras::ReloadConfig {
            switchboard: &args.switchboard,
            work: &args.work,
            probe_a: &args.probe_a,
            probe_b: &args.probe_b,
            latency_samples: if args.quick { 6 } else { 20 },
            reloads_under_load: if args.quick { 10 } else { 100 },
            load_concurrency: 8,
        };
        match extras::reload(&cfg).await {
            Ok(r) => {
                eprintln!("  available={} median {:.1} ms max {:.1} ms {}", r.available, r.median_ms, r.max_ms, r.note);
                if let Some(l) = &r.under_load {
                    eprintln!(
                        "  under load: {}/{} reloads, {} requests, {} failed, {} wrong ({:?})",
                        l.reloads_seen, l.reloads_requested, l.requests, l.failed, l.wrong, l.first_problem
                    );
                }
                results.reload = Some(r);
            }
            Err(e) => {
                eprintln!("  reload failed: {e:#}");
                results.reload_error = Some(format!("{e:#}"));
            }
        }
    }

    if section_on(&args, "memory") {
        results.sections.push("memory".into());
        eprintln!("== memory");
        wait_for_quiet(&mut results, "memory").await;
        let cfg = extras::MemoryConfig {
            switchboard: &args.switchboard,
            work: &args.work,
            echo: &echo,
            misbehave: &args.misbehave,
            calls: 1_000,
            // The slow server's delay: well under the 9 s default call timeout.
            sleep_ms: 2_000,
        };
        match extras::memory(&cfg).await {
            Ok(r) => {
                eprintln!(
                    "  idle {:.1} MiB, peak {:.1} MiB, {}/{} ok in {:.2} s (slowest call {:.0} ms); \
                     slow server: {} requests, at most {} waiting at once",
                    r.idle_rss_mib,
                    r.peak_rss_mib,
                    r.completed_ok,
                    r.calls,
                    r.seconds,
                    r.slowest_call_ms,
                    r.upstream_requests,
                    r.upstream_max_concurrent
                );
                if let Some(e) = &r.first_error {
                    eprintln!("  first error: {e}");
                }
                results.memory = Some(r);
            }
            Err(e) => {
                eprintln!("  memory failed: {e:#}");
                results.memory_error = Some(format!("{e:#}"));
            }
        }
    }

    if section_on(&args, "startup") {
        results.sections.push("startup".into());
        eprintln!("== start-up with 20 plugins");
        wait_for_quiet(&mut results, "startup").await;
        let cfg = extras::StartupConfig {
            switchboard: &args.switchboard,
            work: &args.work,
            echo_command: &echo_command,
            plugins: 20,
            repetitions: if args.quick { 2 } else { 5 },
        };
        match extras::startup(&cfg).await {
            Ok(r) => {
                eprintln!("  cold {:?} ms, warm {:?} ms", r.cold_ms, r.warm_ms);
                results.startup = Some(r);
            }
            Err(e) => {
                eprintln!("  start-up failed: {e:#}");
                results.startup_error = Some(format!("{e:#}"));
            }
        }
    }

    std::fs::write(args.work.join("results.json"), serde_json::to_string_pretty(&results)?)?;
    std::fs::write(&args.out, report::render(&results))?;
    eprintln!("wrote {} (raw figures: {})", args.out.display(), args.work.join("results.json").display());
    Ok(())
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
