//! The load generator: N workers, each with one keep-alive connection, send
//! signed tool calls back to back (closed loop) or on a fixed schedule
//! (rate-limited), for a warm-up and then a measured window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::client::{self, Conn, Endpoint, Expect};
use crate::procfs::{CpuSnapshot, clk_tck};

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub tool: String,
    pub expect: Expect,
    pub concurrency: usize,
    pub warmup: Duration,
    pub measure: Duration,
    /// Requests per second for a rate-limited run; `None` for closed loop.
    pub rate: Option<f64>,
}

/// What one load run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    pub concurrency: usize,
    pub target_rate: Option<f64>,
    /// Correct answers completed in the measured window.
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// Server CPU (user + system, whole process tree) per correct answer.
    pub server_cpu_us_per_req: f64,
    /// Server CPU in cores (CPU seconds per second) during the window.
    pub server_cores: f64,
    /// Load generator CPU per correct answer.
    pub client_cpu_us_per_req: f64,
    /// CPU used on the machine by everything else, in cores: noise.
    pub other_cores: f64,
    /// Failed or wrong answers, warm-up included.
    pub errors: u64,
    /// All requests sent, warm-up included.
    pub total_requests: u64,
    /// Connections opened.
    pub connects: u64,
    pub first_error: Option<String>,
}

#[derive(Default)]
struct WorkerStats {
    latencies_ns: Vec<u64>,
    measured_ok: u64,
    errors: u64,
    total: u64,
    connects: u64,
    first_error: Option<String>,
}

async fn worker(
    index: usize,
    ep: Arc<Endpoint>,
    spec: Arc<LoadSpec>,
    phase: Arc<AtomicU8>,
    tickets: Arc<AtomicU64>,
    start: Instant,
) -> WorkerStats {
    let mut stats = WorkerStats { latencies_ns: Vec::with_capacity(1 << 16), ..Default::default() };
    let mut conn = Conn::default();
    let mut seq = 0u64;
    let prefix = client::unique_id(&format!("tc_{index}"));
    let interval = spec.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    loop {
        if let Some(interval) = interval {
            let ticket = tickets.fetch_add(1, Ordering::Relaxed);
            let due = start + interval.mul_f64(ticket as f64);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        if phase.load(Ordering::Relaxed) == STOP {
            break;
        }
        seq += 1;
        let id = format!("{prefix}_{seq}");
        let sent = Instant::now();
        let outcome = client::call_tool(&mut conn, &ep, &spec.tool, &id, seq, spec.expect).await;
        let elapsed = sent.elapsed();
        stats.total += 1;
        let measuring = phase.load(Ordering::Relaxed) == MEASURE;
        match outcome {
            Ok(_) => {
                if measuring {
                    stats.measured_ok += 1;
                    stats.latencies_ns.push(elapsed.as_nanos() as u64);
                }
            }
            Err(e) => {
                stats.errors += 1;
                stats.first_error.get_or_insert(e);
                // Do not spin on a dead server.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    stats.connects = conn.connects;
    stats
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// Runs `spec` against `ep`, measuring the CPU of `server_pid`'s process tree.
pub async fn run(ep: &Endpoint, server_pid: u32, spec: &LoadSpec) -> LoadResult {
    let ep = Arc::new(ep.clone());
    let spec = Arc::new(spec.clone());
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let tickets = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..spec.concurrency)
        .map(|i| tokio::spawn(worker(i, ep.clone(), spec.clone(), phase.clone(), tickets.clone(), start)))
        .collect();
    tokio::time::sleep(spec.warmup).await;
    let before = CpuSnapshot::take(server_pid);
    phase.store(MEASURE, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(spec.measure).await;
    phase.store(STOP, Ordering::Relaxed);
    let seconds = t0.elapsed().as_secs_f64();
    let after = CpuSnapshot::take(server_pid);

    let mut latencies = Vec::new();
    let (mut ok, mut errors, mut total, mut connects, mut first_error) = (0, 0, 0, 0, None);
    for w in workers {
        let s = w.await.expect("load worker panicked");
        latencies.extend(s.latencies_ns);
        ok += s.measured_ok;
        errors += s.errors;
        total += s.total;
        connects += s.connects;
        if first_error.is_none() {
            first_error = s.first_error;
        }
    }
    latencies.sort_unstable();
    let tick_us = 1e6 / clk_tck() as f64;
    let server_us = (after.server - before.server) as f64 * tick_us;
    let client_us = (after.client - before.client) as f64 * tick_us;
    let machine_us = (after.machine.saturating_sub(before.machine)) as f64 * tick_us;
    let per_req = |us: f64| if ok > 0 { us / ok as f64 } else { f64::NAN };
    LoadResult {
        concurrency: spec.concurrency,
        target_rate: spec.rate,
        requests: ok,
        seconds,
        rps: ok as f64 / seconds,
        p50_us: percentile(&latencies, 50.0),
        p90_us: percentile(&latencies, 90.0),
        p99_us: percentile(&latencies, 99.0),
        p999_us: percentile(&latencies, 99.9),
        max_us: latencies.last().map(|&ns| ns as f64 / 1000.0).unwrap_or(f64::NAN),
        server_cpu_us_per_req: per_req(server_us),
        server_cores: server_us / 1e6 / seconds,
        client_cpu_us_per_req: per_req(client_us),
        other_cores: ((machine_us - server_us - client_us) / 1e6 / seconds).max(0.0),
        errors,
        total_requests: total,
        connects,
        first_error,
    }
}
