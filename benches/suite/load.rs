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
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::client::{self, Conn, Door, Endpoint, Expect};
use crate::procfs::{CpuSnapshot, clk_tck};

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub tool: String,
    /// The door the calls go through (MCP: echo answers only).
    pub door: Door,
    /// What a correct answer looks like.
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

/// What one measured window of a load run counted.
#[derive(Debug, Clone)]
pub struct Window {
    concurrency: usize,
    target_rate: Option<f64>,
    /// Correct answers completed in the window, and their latencies in ns.
    latencies_ns: Vec<u64>,
    seconds: f64,
    /// CPU of the server's process tree, of the load generator, and of
    /// everything else on the machine (noise), in µs.
    server_us: f64,
    client_us: f64,
    other_us: f64,
    /// Failed or wrong answers, and all requests sent, warm-up included.
    errors: u64,
    total: u64,
    first_error: Option<String>,
}

impl Window {
    pub fn rps(&self) -> f64 {
        self.latencies_ns.len() as f64 / self.seconds
    }
}

/// The figures of one load on one server: the sum of its measured windows
/// (taken in turns with other servers, so that a slow spell of a shared
/// machine falls on all of them). Percentiles are over all the windows'
/// latencies, CPU per request is their CPU over their correct answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    pub concurrency: usize,
    pub target_rate: Option<f64>,
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub server_cpu_us_per_req: f64,
    pub client_cpu_us_per_req: f64,
    /// CPU used on the machine by everything else, in cores: noise.
    pub other_cores: f64,
    pub errors: u64,
    pub total_requests: u64,
    pub first_error: Option<String>,
    pub windows: usize,
}

impl LoadResult {
    pub fn merge(windows: Vec<Window>) -> LoadResult {
        let first = windows.first().expect("merge needs at least one window");
        let (concurrency, target_rate) = (first.concurrency, first.target_rate);
        let mut latencies: Vec<u64> = windows.iter().flat_map(|w| w.latencies_ns.iter().copied()).collect();
        latencies.sort_unstable();
        let requests = latencies.len() as u64;
        let seconds: f64 = windows.iter().map(|w| w.seconds).sum();
        let sum = |field: fn(&Window) -> f64| windows.iter().map(field).sum::<f64>();
        let per_req = |us: f64| if requests > 0 { us / requests as f64 } else { f64::NAN };
        LoadResult {
            concurrency,
            target_rate,
            requests,
            seconds,
            rps: requests as f64 / seconds,
            p50_us: percentile_us(&latencies, 50.0),
            p99_us: percentile_us(&latencies, 99.0),
            p999_us: percentile_us(&latencies, 99.9),
            server_cpu_us_per_req: per_req(sum(|w| w.server_us)),
            client_cpu_us_per_req: per_req(sum(|w| w.client_us)),
            other_cores: sum(|w| w.other_us) / 1e6 / seconds,
            errors: windows.iter().map(|w| w.errors).sum(),
            total_requests: windows.iter().map(|w| w.total).sum(),
            first_error: windows.iter().find_map(|w| w.first_error.clone()),
            windows: windows.len(),
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

/// Timer slack of the pacer thread if it cannot run real-time. Linux lets a
/// sleep overrun by the thread's slack (50 µs by default) so that wake-ups can
/// be merged; the pacer's steps are short, so it asks for less.
const PACER_TIMER_SLACK_NS: u64 = 1_000;

/// Closes the semaphore when dropped, so that the workers waiting on it stop
/// even if the pacer panics.
struct CloseOnDrop(Arc<Semaphore>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Makes the calling thread real-time (`SCHED_FIFO`, lowest priority) so that
/// it runs as soon as its timer fires instead of waiting for the server's and
/// the workers' threads to give up a core; otherwise (no permission) lowers
/// its timer slack. The pacer sleeps most of the time, so this cannot starve
/// anything.
fn pacer_priority() {
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
    if unsafe { sched_setscheduler(0, SCHED_FIFO, &param) } != 0 {
        // SAFETY: PR_SET_TIMERSLACK takes one unsigned long and only changes
        // the calling thread's timer slack.
        unsafe {
            prctl(PR_SET_TIMERSLACK, PACER_TIMER_SLACK_NS as c_ulong);
        }
    }
}

/// The pacer thread. Request k is due at `start + k / rate`; until the phase
/// is [`STOP`], the pacer adds the requests due by now to `permits`, then
/// sleeps until [`PACER_BATCH`] more are due, but at least [`PACER_MIN_STEP`]
/// and at most [`PACER_MAX_STEP`]; then it closes `permits`. Requests the
/// workers could not send on time (all busy) stay as permits and go out as
/// soon as workers are free, as they would with per-request deadlines.
fn pacer(rate: f64, start: Instant, permits: Arc<Semaphore>, phase: Arc<AtomicU8>) {
    let _close = CloseOnDrop(permits.clone());
    pacer_priority();
    let mut released = 0u64;
    while phase.load(Ordering::Relaxed) != STOP {
        let now = Instant::now();
        let due = (now.duration_since(start).as_secs_f64() * rate) as u64 + 1;
        if due > released {
            permits.add_permits((due - released) as usize);
            released = due;
        }
        // Request `released + PACER_BATCH - 1` is the PACER_BATCH-th not yet released.
        let next = start + Duration::from_secs_f64((released + PACER_BATCH - 1) as f64 / rate);
        std::thread::sleep(next.saturating_duration_since(now).clamp(PACER_MIN_STEP, PACER_MAX_STEP));
    }
}

#[derive(Default)]
struct WorkerStats {
    latencies_ns: Vec<u64>,
    /// When each measured request was sent, from the start of the run.
    sent_ns: Vec<u64>,
    errors: u64,
    total: u64,
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
    let mut mcp_session = None;
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
        let outcome = match spec.door {
            Door::Webhook => client::call_tool(&mut conn, &ep, &spec.tool, &id, seq, spec.expect).await.map(|_| ()),
            Door::Mcp => client::mcp_call_tool(&mut conn, &ep, &mut mcp_session, &spec.tool, seq).await,
        };
        let elapsed = sent.elapsed();
        stats.total += 1;
        match outcome {
            Ok(_) if phase.load(Ordering::Relaxed) == MEASURE => {
                stats.latencies_ns.push(elapsed.as_nanos() as u64);
                stats.sent_ns.push(sent.duration_since(start).as_nanos() as u64);
            }
            Ok(_) => {}
            Err(e) => {
                stats.errors += 1;
                stats.first_error.get_or_insert(e);
                // Do not spin on a dead server.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    stats
}

/// The `p`th percentile of `sorted` (ns), in µs.
pub fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// Runs `spec` against `ep` for one window, measuring the CPU of
/// `server_pid`'s process tree.
pub async fn run(ep: &Endpoint, server_pid: u32, spec: &LoadSpec) -> Window {
    let ep = Arc::new(ep.clone());
    let spec = Arc::new(spec.clone());
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let permits = spec.rate.map(|_| Arc::new(Semaphore::new(0)));
    let start = Instant::now();
    let workers: Vec<_> = (0..spec.concurrency)
        .map(|i| tokio::spawn(worker(i, ep.clone(), spec.clone(), phase.clone(), permits.clone(), start)))
        .collect();
    let pacer = spec.rate.zip(permits).map(|(rate, permits)| {
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

    let mut window = Window {
        concurrency: spec.concurrency,
        target_rate: spec.rate,
        latencies_ns: Vec::new(),
        seconds,
        server_us: 0.0,
        client_us: 0.0,
        other_us: 0.0,
        errors: 0,
        total: 0,
        first_error: None,
    };
    let mut timeline = String::from("sent_ms,latency_ms,worker\n");
    for (index, w) in workers.into_iter().enumerate() {
        let s = w.await.expect("load worker panicked");
        for (sent, latency) in s.sent_ns.iter().zip(&s.latencies_ns) {
            let _ = writeln!(timeline, "{:.3},{:.3},{index}", *sent as f64 / 1e6, *latency as f64 / 1e6);
        }
        window.latencies_ns.extend(s.latencies_ns);
        window.errors += s.errors;
        window.total += s.total;
        window.first_error = window.first_error.or(s.first_error);
    }
    if let Some(pacer) = pacer {
        // The workers have stopped, so the pacer has seen STOP or is about to.
        tokio::task::spawn_blocking(move || pacer.join()).await.expect("joining the pacer thread").expect("pacer");
    }
    if let Some(path) = &spec.timeline
        && let Err(e) = std::fs::write(path, timeline)
    {
        eprintln!("  (cannot write the timeline {}: {e})", path.display());
    }
    let tick_us = 1e6 / clk_tck() as f64;
    window.server_us = (after.server - before.server) as f64 * tick_us;
    window.client_us = (after.client - before.client) as f64 * tick_us;
    let machine_us = after.machine.saturating_sub(before.machine) as f64 * tick_us;
    window.other_us = (machine_us - window.server_us - window.client_us).max(0.0);
    window
}
