//! The time bound every target keeps: an input may take 1 ms per KiB, and
//! 10 ms whatever its size (libFuzzer's own `-timeout` counts whole seconds).
//!
//! The time is the CPU time of the thread that runs the input: the work
//! the input costs, not how long a shared machine kept the process waiting
//! (a fuzzer run beside a build, or niced, waits for tens of milliseconds).
//! Even so one slow run proves little (a page fault, a cold cache): an
//! input over the bound is run three more times, and only one that is over
//! it every time fails (a panic, so libFuzzer keeps it as a crash).
//! `SWITCHBOARD_FUZZ_TIME_CHECK=0` turns the check off.

use std::sync::OnceLock;
use std::time::Duration;

/// Runs `target` on `data` within the bound.
pub fn run(data: &[u8], target: fn(&[u8])) {
    let took = cpu_time(|| target(data));
    let bound = Duration::from_millis(10) + Duration::from_micros(data.len() as u64 * 1000 / 1024);
    if took <= bound || !enabled() {
        return;
    }
    let best = (0..3)
        .map(|_| cpu_time(|| target(data)))
        .min()
        .unwrap_or(took);
    assert!(
        best <= bound,
        "slow input: {} bytes took {best:?} of CPU (the best of 3 more runs; the first took {took:?}), over the bound of {bound:?} (1 ms per KiB, 10 ms at least)",
        data.len()
    );
}

fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os("SWITCHBOARD_FUZZ_TIME_CHECK").is_none_or(|v| v != "0"))
}

/// The CPU time this thread spends in `work`.
fn cpu_time(work: impl FnOnce()) -> Duration {
    let started = thread_cpu();
    work();
    thread_cpu().saturating_sub(started)
}

fn thread_cpu() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let failed = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0;
    assert!(!failed, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}
