//! The load generator: N workers, each with one keep-alive connection, send
//! signed tool calls back to back (closed loop) or on a fixed schedule
//! (rate-limited), for a warm-up and then a measured window.
//!
//! In a rate-limited run a pacer thread releases the requests: request k is
//! due at `start + k / rate`; the pacer wakes when two more are due, but at
//! most every 0.1 ms (see [`pacer`]), and adds the requests that have become
//! due as permits to a fair (FIFO) semaphore; the workers take one permit
//! before each request. Latency is still measured from each request's actual
//! send. tokio timers (1 ms resolution) would release a whole millisecond's
//! requests at once (20 at 20,000 req/s), and the queueing those bursts cause
//! in the server would show in p99 as if the server made it.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

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
    /// Where to write every measured request as CSV (`sent_ms,latency_ms,worker`,
    /// sent relative to the start of the run), to see when slow ones happen.
    pub timeline: Option<std::path::PathBuf>,
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
    /// Rate-limited runs: CPU of the pacer thread in cores (CPU seconds per
    /// second, over its whole life: warm-up and measured window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacer_cores: Option<f64>,
    /// Measured windows this result adds up (see [`LoadResult::merge`]).
    #[serde(default = "one")]
    pub windows: usize,
    /// Every measured latency in ns, sorted: kept in memory to merge windows.
    #[serde(skip)]
    pub latencies_ns: Vec<u64>,
}

fn one() -> usize {
    1
}

impl LoadResult {
    /// One result from several measured windows of the same load on the same
    /// server (taken in turns with other servers, so that a slow spell of a
    /// shared machine falls on all of them): counts and times add up,
    /// percentiles come from all the latencies, CPU per request is the total
    /// CPU over the total answers.
    pub fn merge(windows: Vec<LoadResult>) -> LoadResult {
        let Some(first) = windows.first() else { panic!("merge needs at least one window") };
        let (concurrency, target_rate) = (first.concurrency, first.target_rate);
        let requests: u64 = windows.iter().map(|w| w.requests).sum();
        let seconds: f64 = windows.iter().map(|w| w.seconds).sum();
        // Each window's CPU per request times its answers is its CPU.
        let cpu_us = |per_req: fn(&LoadResult) -> f64| {
            windows.iter().filter(|w| w.requests > 0).map(|w| per_req(w) * w.requests as f64).sum::<f64>()
        };
        let per_req = |us: f64| if requests > 0 { us / requests as f64 } else { f64::NAN };
        let server_us = cpu_us(|w| w.server_cpu_us_per_req);
        let client_us = cpu_us(|w| w.client_cpu_us_per_req);
        let time_weighted =
            |value: fn(&LoadResult) -> f64| windows.iter().map(|w| value(w) * w.seconds).sum::<f64>() / seconds;
        let pacer_cores = windows.iter().map(|w| w.pacer_cores).collect::<Option<Vec<f64>>>();
        let mut latencies: Vec<u64> = windows.iter().flat_map(|w| w.latencies_ns.iter().copied()).collect();
        latencies.sort_unstable();
        let (p50_us, p90_us, p99_us, p999_us, max_us) = latency_summary(&latencies);
        LoadResult {
            concurrency,
            target_rate,
            requests,
            seconds,
            rps: requests as f64 / seconds,
            p50_us,
            p90_us,
            p99_us,
            p999_us,
            max_us,
            server_cpu_us_per_req: per_req(server_us),
            server_cores: server_us / 1e6 / seconds,
            client_cpu_us_per_req: per_req(client_us),
            other_cores: time_weighted(|w| w.other_cores),
            errors: windows.iter().map(|w| w.errors).sum(),
            total_requests: windows.iter().map(|w| w.total_requests).sum(),
            connects: windows.iter().map(|w| w.connects).sum(),
            first_error: windows.iter().find_map(|w| w.first_error.clone()),
            pacer_cores: pacer_cores.map(|c| c.iter().sum::<f64>() / c.len() as f64),
            windows: windows.iter().map(|w| w.windows).sum(),
            latencies_ns: latencies,
        }
    }
}

/// Shortest step of the pacer. Each step costs the pacer a wake-up (about
/// 15-25 µs of CPU on the 2-core VM the figures come from), so at high rates
/// the pacer releases the requests due every 0.1 ms (about 0.15 cores).
const PACER_MIN_STEP: Duration = Duration::from_micros(100);

/// At lower rates the pacer wakes when this many requests are due, and
/// releases them together: about one request per core, which makes little
/// queueing in the server while costing fewer wake-ups.
const PACER_BATCH: u64 = 2;

/// Longest step, so that the pacer sees the end of the run promptly.
const PACER_MAX_STEP: Duration = Duration::from_millis(5);

/// A wake-up this much later than planned counts as late (the pacer was not
/// scheduled on time, so the requests due meanwhile went out in a burst).
const PACER_LATE: Duration = Duration::from_millis(1);

/// Timer slack of the pacer thread if it cannot run real-time. Linux lets a
/// sleep overrun by the thread's slack (50 µs by default) so that wake-ups can
/// be merged; the pacer's steps are short, so it asks for less.
const PACER_TIMER_SLACK_NS: u64 = 1_000;

/// What the pacer thread did, for the run's figures.
struct PacerStats {
    /// Whether it ran with a real-time priority (`SCHED_FIFO`).
    realtime: bool,
    /// CPU time of the pacer thread, if `/proc/thread-self/schedstat` exists.
    cpu: Option<Duration>,
    wall: Duration,
    steps: u64,
    released: u64,
    /// Most requests released in one step.
    max_batch: u64,
    /// Latest wake-up (after the planned time), and wake-ups later than
    /// [`PACER_LATE`].
    max_late: Duration,
    late_steps: u64,
}

/// Closes the semaphore when dropped, so that the workers waiting on it stop
/// even if the pacer panics.
struct CloseOnDrop(Arc<Semaphore>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// CPU time used by the calling thread so far (`/proc/thread-self/schedstat`:
/// nanoseconds on the CPU, then waiting to run, then timeslices).
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(text.split_whitespace().next()?.parse().ok()?))
}

/// Makes the calling thread real-time (`SCHED_FIFO`, lowest priority) so that
/// it runs as soon as its timer fires instead of waiting for the server's and
/// the workers' threads to give up a core; otherwise (no permission, not
/// Linux) lowers its timer slack. Returns whether it is real-time. The pacer
/// sleeps most of the time, so this cannot starve anything.
#[cfg(target_os = "linux")]
fn pacer_priority() -> bool {
    use std::ffi::{c_int, c_ulong};
    const SCHED_FIFO: c_int = 1;
    const PR_SET_TIMERSLACK: c_int = 29;
    #[repr(C)]
    struct SchedParam {
        sched_priority: c_int,
    }
    unsafe extern "C" {
        fn sched_setscheduler(pid: c_int, policy: c_int, param: *const SchedParam) -> c_int;
        fn prctl(option: c_int, ...) -> c_int;
    }
    let param = SchedParam { sched_priority: 1 };
    // SAFETY: pid 0 is the calling thread; `param` outlives the call.
    if unsafe { sched_setscheduler(0, SCHED_FIFO, &param) } == 0 {
        return true;
    }
    // SAFETY: PR_SET_TIMERSLACK takes one unsigned long and only changes the
    // calling thread's timer slack.
    unsafe {
        prctl(PR_SET_TIMERSLACK, PACER_TIMER_SLACK_NS as c_ulong);
    }
    false
}

#[cfg(not(target_os = "linux"))]
fn pacer_priority() -> bool {
    false
}

/// The pacer thread. Request k is due at `start + k / rate`; until the phase
/// is [`STOP`], the pacer adds the requests due by now to `permits`, then
/// sleeps until [`PACER_BATCH`] more are due, but at least [`PACER_MIN_STEP`]
/// and at most [`PACER_MAX_STEP`]; then it closes `permits`. Requests the
/// workers could not send on time (all busy) stay as permits and go out as
/// soon as workers are free, as they would with per-request deadlines.
fn pacer(rate: f64, start: Instant, permits: Arc<Semaphore>, phase: Arc<AtomicU8>) -> PacerStats {
    let _close = CloseOnDrop(permits.clone());
    let realtime = pacer_priority();
    let cpu_before = thread_cpu();
    let began = Instant::now();
    let (mut released, mut steps, mut max_batch, mut late_steps) = (0u64, 0u64, 0u64, 0u64);
    let (mut wake_at, mut max_late) = (began, Duration::ZERO);
    while phase.load(Ordering::Relaxed) != STOP {
        let now = Instant::now();
        let late = now.saturating_duration_since(wake_at);
        max_late = max_late.max(late);
        late_steps += u64::from(late > PACER_LATE);
        let due = (now.duration_since(start).as_secs_f64() * rate) as u64 + 1;
        if due > released {
            let batch = due - released;
            permits.add_permits(batch as usize);
            released = due;
            max_batch = max_batch.max(batch);
        }
        steps += 1;
        // Request `released + PACER_BATCH - 1` is the PACER_BATCH-th not yet released.
        let next = start + Duration::from_secs_f64((released + PACER_BATCH - 1) as f64 / rate);
        let step = next.saturating_duration_since(now).clamp(PACER_MIN_STEP, PACER_MAX_STEP);
        wake_at = now + step;
        std::thread::sleep(step);
    }
    permits.close();
    let cpu = thread_cpu().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
    PacerStats { realtime, cpu, wall: began.elapsed(), steps, released, max_batch, max_late, late_steps }
}

#[derive(Default)]
struct WorkerStats {
    latencies_ns: Vec<u64>,
    /// When each measured request was sent, from the start of the run.
    sent_ns: Vec<u64>,
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
    permits: Option<Arc<Semaphore>>,
    start: Instant,
) -> WorkerStats {
    let mut stats = WorkerStats {
        latencies_ns: Vec::with_capacity(1 << 16),
        sent_ns: Vec::with_capacity(1 << 16),
        ..Default::default()
    };
    let mut conn = Conn::default();
    let mut seq = 0u64;
    let prefix = client::unique_id(&format!("tc_{index}"));
    loop {
        if let Some(permits) = &permits {
            match permits.acquire().await {
                Ok(permit) => permit.forget(),
                // Closed by the pacer: the run is over.
                Err(_) => break,
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
                    stats.sent_ns.push(sent.duration_since(start).as_nanos() as u64);
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

/// p50, p90, p99, p99.9 and the maximum of `sorted` (ns), in µs.
fn latency_summary(sorted: &[u64]) -> (f64, f64, f64, f64, f64) {
    let max = sorted.last().map(|&ns| ns as f64 / 1000.0).unwrap_or(f64::NAN);
    (percentile(sorted, 50.0), percentile(sorted, 90.0), percentile(sorted, 99.0), percentile(sorted, 99.9), max)
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
    let permits = spec.rate.map(|_| Arc::new(Semaphore::new(0)));
    let start = Instant::now();
    let workers: Vec<_> = (0..spec.concurrency)
        .map(|i| tokio::spawn(worker(i, ep.clone(), spec.clone(), phase.clone(), permits.clone(), start)))
        .collect();
    let pacer: Option<JoinHandle<PacerStats>> = spec.rate.zip(permits).map(|(rate, permits)| {
        let phase = phase.clone();
        std::thread::Builder::new()
            .name("loadgen-pacer".into())
            .spawn(move || pacer(rate, start, permits, phase))
            .expect("starting the pacer thread")
    });
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
    let mut timeline = String::from("sent_ms,latency_ms,worker\n");
    for (index, w) in workers.into_iter().enumerate() {
        let s = w.await.expect("load worker panicked");
        if spec.timeline.is_some() {
            for (sent, latency) in s.sent_ns.iter().zip(&s.latencies_ns) {
                let _ = writeln!(timeline, "{:.3},{:.3},{index}", *sent as f64 / 1e6, *latency as f64 / 1e6);
            }
        }
        latencies.extend(s.latencies_ns);
        ok += s.measured_ok;
        errors += s.errors;
        total += s.total;
        connects += s.connects;
        if first_error.is_none() {
            first_error = s.first_error;
        }
    }
    let mut pacer_cores = None;
    if let Some(pacer) = pacer {
        // The workers have stopped, so the pacer has seen STOP or is about to.
        let stats = tokio::task::spawn_blocking(move || pacer.join())
            .await
            .expect("joining the pacer thread")
            .expect("the pacer thread panicked");
        let wall = stats.wall.as_secs_f64();
        pacer_cores = stats.cpu.map(|cpu| cpu.as_secs_f64() / wall);
        eprintln!(
            "  (pacer{}: {} over {:.1} s; {} steps of {:.0} µs on average, {:.1} requests per step on average, \
             at most {}; latest wake-up {:.2} ms late, {} over {} ms late; {} released, {} sent)",
            if stats.realtime { ", real-time" } else { ", not real-time" },
            stats.cpu.map_or("CPU unknown".into(), |cpu| format!(
                "{:.0} ms CPU = {:.3} cores",
                cpu.as_secs_f64() * 1e3,
                cpu.as_secs_f64() / wall
            )),
            wall,
            stats.steps,
            wall * 1e6 / stats.steps.max(1) as f64,
            stats.released as f64 / stats.steps.max(1) as f64,
            stats.max_batch,
            stats.max_late.as_secs_f64() * 1e3,
            stats.late_steps,
            PACER_LATE.as_millis(),
            stats.released,
            total,
        );
    }
    if let Some(path) = &spec.timeline
        && let Err(e) = std::fs::write(path, timeline)
    {
        eprintln!("  (cannot write the timeline {}: {e})", path.display());
    }
    latencies.sort_unstable();
    let (p50_us, p90_us, p99_us, p999_us, max_us) = latency_summary(&latencies);
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
        p50_us,
        p90_us,
        p99_us,
        p999_us,
        max_us,
        server_cpu_us_per_req: per_req(server_us),
        server_cores: server_us / 1e6 / seconds,
        client_cpu_us_per_req: per_req(client_us),
        other_cores: ((machine_us - server_us - client_us) / 1e6 / seconds).max(0.0),
        errors,
        total_requests: total,
        connects,
        first_error,
        pacer_cores,
        windows: 1,
        latencies_ns: latencies,
    }
}
