//! The time bound every target keeps: an input may take 1 ms per KiB, and
//! 10 ms whatever its size (libFuzzer's own `-timeout` counts whole seconds).
//!
//! A shared machine can pause a process at any moment, so one slow run
//! proves nothing: an input over the bound is run three more times, and
//! only one that is over it every time fails (a panic, so libFuzzer keeps
//! it as a crash). `SWITCHBOARD_FUZZ_TIME_CHECK=0` turns the check off.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Runs `target` on `data` within the bound.
pub fn run(data: &[u8], target: fn(&[u8])) {
    let started = Instant::now();
    target(data);
    let took = started.elapsed();
    let bound = Duration::from_millis(10) + Duration::from_micros(data.len() as u64 * 1000 / 1024);
    if took <= bound || !enabled() {
        return;
    }
    let best = (0..3)
        .map(|_| {
            let started = Instant::now();
            target(data);
            started.elapsed()
        })
        .min()
        .unwrap_or(took);
    assert!(
        best <= bound,
        "slow input: {} bytes took {best:?} (the best of 3 more runs; the first took {took:?}), over the bound of {bound:?} (1 ms per KiB, 10 ms at least)",
        data.len()
    );
}

fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var_os("SWITCHBOARD_FUZZ_TIME_CHECK").is_none_or(|v| v != "0"))
}
