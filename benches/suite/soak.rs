//! The soak run (`benches/soak.sh`): one Switchboard sharing duplicates
//! through a real Redis, held at half of its maximum throughput for a long
//! time while its plugin is replaced every second and Redis is restarted
//! every few minutes. Every answer is checked (the right echo, from one of
//! the two versions); the server's resident memory is sampled throughout.
//!
//! The figures it is judged by: no failed or wrong answer, and resident
//! memory growing by less than 10 % after the first sixth of the run (the
//! first 5 minutes of 30): the median of the last sixth's samples against
//! the median of the second sixth's. Medians, since every reload compiles
//! and a sample taken during a compile shows its transient peak (reported
//! too, as the most seen after the first sixth).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Args;
use crate::client::{Door, Expect};
use crate::extras::{ProbeVersions, plugins_dir, replace_file};
use crate::load::{self, LoadResult, LoadSpec};
use crate::procfs::tree_rss_kib;
use crate::servers::{ServerProc, free_port};

/// How a soak run is shaped.
#[derive(Debug, Clone, Copy)]
pub struct SoakPlan {
    pub duration: Duration,
    pub reload_every: Duration,
    pub redis_restart_every: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct SoakResult {
    pub minutes: f64,
    /// The closed-loop maximum found first, and the rate held (half of it).
    pub max_rps: f64,
    pub rate: f64,
    pub requests: u64,
    pub answered: u64,
    /// Failed or wrong answers (transport errors, non-200, a wrong echo).
    pub errors: u64,
    pub first_error: Option<String>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub reloads: u64,
    pub redis_restarts: u64,
    /// Resident memory of the server (KiB): the median of the second
    /// sixth's samples, the most seen after the first sixth, and the median
    /// of the last sixth's samples.
    pub rss_warm_kib: u64,
    pub rss_max_after_kib: u64,
    pub rss_end_kib: u64,
    pub rss_growth_pct: f64,
    /// (seconds into the run, KiB), every 5 s.
    pub rss_samples: Vec<(f64, u64)>,
}

/// A `redis-server` on a loopback port, restartable on the same port.
struct Redis {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl Redis {
    fn start(binary: &Path, dir: &Path) -> anyhow::Result<Self> {
        let port = free_port();
        let child = Self::spawn(binary, port, dir)?;
        Ok(Self { binary: binary.to_owned(), port, dir: dir.to_owned(), child })
    }

    fn spawn(binary: &Path, port: u16, dir: &Path) -> anyhow::Result<Child> {
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e} (apt-get install redis-server)", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "redis-server did not listen on port {port} within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(child)
    }

    /// Kills Redis (everything it held is lost) and starts it again.
    fn restart(&mut self) -> anyhow::Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(&self.binary, self.port, &self.dir)?;
        Ok(())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn soak(args: &Args, plan: SoakPlan) -> anyhow::Result<SoakResult> {
    let redis_binary = args.redis_server.clone().unwrap_or_else(|| "redis-server".into());
    let mut redis = Redis::start(&redis_binary, &args.work)?;
    let dir = plugins_dir(args, "plugins-soak", &[])?;
    let target = dir.join("probe.wasm");
    // Every version written is new, so every reload compiles.
    let versions = ProbeVersions::read(args)?;
    replace_file(&target, &versions.next(0))?;
    let config = args.work.join("soak.toml");
    std::fs::write(&config, format!("[dedup]\nredis_url = \"redis://127.0.0.1:{}/0\"\n", redis.port))?;
    let port = free_port();
    let mut command = Command::new(&args.switchboard);
    command.arg("serve").arg("--listen").arg(format!("127.0.0.1:{port}")).arg("--plugins").arg(&dir);
    command.arg("--config").arg(&config);
    let mut server = ServerProc::spawn("soak", &mut command, port, &args.work.join("soak.log"))?;
    server.wait_ready("probe", Expect::Probe, Duration::from_secs(60)).await?;

    // The maximum, closed loop, then half of it for the run.
    let probe = |concurrency, measure, rate| LoadSpec {
        tool: "probe".into(),
        door: Door::Webhook,
        expect: Expect::Probe,
        concurrency,
        warmup: Duration::from_secs(1),
        measure,
        rate,
        timeline: None,
    };
    let max = load::run(&server.endpoint, server.pid, &probe(16, Duration::from_secs(5), None)).await.rps();
    anyhow::ensure!(max > 0.0, "the server answered nothing correctly while its maximum was measured");
    let rate = max / 2.0;
    eprintln!("== soak: maximum {max:.0} req/s; holding {rate:.0} req/s for {:?}", plan.duration);

    let run = {
        let (endpoint, pid, spec) = (server.endpoint.clone(), server.pid, probe(64, plan.duration, Some(rate)));
        tokio::spawn(async move { load::run(&endpoint, pid, &spec).await })
    };
    // The load's warm-up, then the measured window starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let warm_at = plan.duration / 6;
    let (mut reloads, mut redis_restarts, mut current) = (0u64, 0u64, 0usize);
    let (mut next_reload, mut next_restart, mut next_sample) =
        (plan.reload_every, plan.redis_restart_every, Duration::ZERO);
    let mut result = SoakResult { max_rps: max, rate, ..Default::default() };
    while started.elapsed() < plan.duration {
        let now = started.elapsed();
        if now >= next_sample {
            let rss = tree_rss_kib(server.pid);
            result.rss_samples.push((now.as_secs_f64(), rss));
            next_sample += Duration::from_secs(5);
        }
        if now >= next_reload {
            current = 1 - current;
            replace_file(&target, &versions.next(current))?;
            reloads += 1;
            next_reload += plan.reload_every;
        }
        if now >= next_restart {
            eprintln!("  {:>6.0} s: restarting Redis", now.as_secs_f64());
            redis.restart()?;
            redis_restarts += 1;
            next_restart += plan.redis_restart_every;
        }
        if server.exited() {
            anyhow::bail!("the server exited during the soak; see {}", args.work.join("soak.log").display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let window = run.await?;
    result.rss_samples.push((started.elapsed().as_secs_f64(), tree_rss_kib(server.pid)));
    server.stop();

    let figures = LoadResult::merge(vec![window]);
    result.minutes = plan.duration.as_secs_f64() / 60.0;
    result.requests = figures.total_requests;
    result.answered = figures.requests;
    result.errors = figures.errors;
    result.first_error = figures.first_error;
    result.p50_ms = figures.p50_us / 1e3;
    result.p99_ms = figures.p99_us / 1e3;
    result.reloads = reloads;
    result.redis_restarts = redis_restarts;
    let sixth = warm_at.as_secs_f64();
    let median_between = |from: f64, to: f64| {
        let mut kib: Vec<u64> =
            result.rss_samples.iter().filter(|(t, _)| (from..to).contains(t)).map(|s| s.1).collect();
        kib.sort_unstable();
        kib.get(kib.len() / 2).copied().unwrap_or(0)
    };
    let end = plan.duration.as_secs_f64() + 1.0;
    let warm = median_between(sixth, 2.0 * sixth);
    result.rss_warm_kib = warm;
    result.rss_max_after_kib =
        result.rss_samples.iter().filter(|(t, _)| *t >= sixth).map(|s| s.1).max().unwrap_or(warm);
    result.rss_end_kib = median_between(end - 1.0 - sixth, end);
    result.rss_growth_pct = if warm > 0 { (result.rss_end_kib as f64 / warm as f64 - 1.0) * 100.0 } else { 0.0 };
    Ok(result)
}

/// The soak's figures as a Markdown section, with whether each meets its goal.
pub fn render(r: &SoakResult, plan: SoakPlan) -> String {
    let met = |ok: bool| if ok { "yes" } else { "**NO**" };
    format!(
        "## Soak\n\n\
         `benches/soak.sh --minutes {minutes}`: one Switchboard sharing duplicates through a real Redis, held at \
         half of its maximum ({max:.0} req/s closed loop, 16 connections) for {minutes} minutes at 64 connections, \
         its plugin replaced every {reload:?} ({reloads} reloads, each a new version that compiles) and Redis \
         killed and restarted every {restart:?} ({restarts} restarts). Every answer was checked.\n\n\
         | figure | goal | measured | met |\n|---|---|---|---|\n\
         | failed or wrong answers | 0 | {errors} of {requests} requests{first} | {errors_met} |\n\
         | resident memory growth after the first sixth of the run (median of the last sixth ÷ median of the second) | < 10 % | {growth:.1} % ({warm} → {end} KiB; the most seen after the first sixth: {after} KiB) | {growth_met} |\n\
         | latency at {rate:.0} req/s | – | p50 {p50:.3} ms, p99 {p99:.3} ms | |\n",
        minutes = r.minutes,
        max = r.max_rps,
        reload = plan.reload_every,
        reloads = r.reloads,
        restart = plan.redis_restart_every,
        restarts = r.redis_restarts,
        errors = r.errors,
        requests = r.requests,
        first = r.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default(),
        errors_met = met(r.errors == 0 && r.answered > 0),
        growth = r.rss_growth_pct,
        warm = r.rss_warm_kib,
        after = r.rss_max_after_kib,
        end = r.rss_end_kib,
        growth_met = met(r.rss_growth_pct < 10.0),
        rate = r.rate,
        p50 = r.p50_ms,
        p99 = r.p99_ms,
    )
}
