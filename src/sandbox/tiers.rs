//! Compile tiers: a large plugin first runs on code that compiles fast, then
//! on optimised code compiled in the background.
//!
//! Cranelift, wasmtime's optimising compiler, takes about 20 s of CPU and
//! over 400 MB to compile the 13-18 MB JavaScript and Python example
//! components. Winch, wasmtime's baseline compiler, translates each function
//! in one pass, several times faster and in a fraction of the memory, into
//! code that runs slower. So a plugin of at least
//! [`TierOptions::baseline_min_bytes`] whose optimised code is not in the
//! code cache is loaded on the [`Tier::Baseline`] first; the plugin set
//! (`plugins/`) then asks for the [`Tier::Optimized`] code, which is compiled
//! on a [`CompilePool`] of one thread of low priority, one plugin at a time,
//! and swaps it in. Both tiers go to the code cache, each under its own
//! engine's key.
//!
//! Every compile runs on such a pool, so that compiling never competes with
//! request handling on equal terms: the pool for plugins that are waited for
//! (loads and reloads) has a thread per core at a slightly lower priority
//! than the rest of the process ([`FOREGROUND_NICE`]), the background pool
//! one thread at a much lower one ([`BACKGROUND_NICE`]).
//!
//! Winch does not compile every proposal (GC, tail calls, exceptions); a
//! plugin that uses one is compiled with Cranelift straight away.

use std::sync::Arc;

/// Which compiler made the code a plugin version runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Tier {
    /// Winch: compiled in one pass, so soon ready; slower to run.
    Baseline,
    /// Cranelift: optimised; what a plugin runs on once compiled.
    Optimized,
}

impl Tier {
    /// `baseline` or `optimized`, as `GET /plugins` and `switchboard check` show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Baseline => "baseline",
            Tier::Optimized => "optimized",
        }
    }
}

/// When plugins start on the baseline tier, and how the optimised code is
/// compiled behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TierOptions {
    /// Plugins at least this large, whose optimised code is not cached,
    /// start on the baseline tier. Smaller ones compile with Cranelift
    /// straight away (a 100 KB Rust component takes about 100 ms).
    pub baseline_min_bytes: usize,
    /// Threads compiling optimised code in the background, at low priority;
    /// 0: none, so a plugin stays on the baseline tier until its optimised
    /// code is in the code cache (`switchboard compile`) and it is loaded again.
    pub background_threads: usize,
}

/// How much nicer (Linux `nice` steps, up to 19) than the thread that
/// starts it a thread compiling a plugin that is waited for is: calls being
/// answered go first, the compile gets the rest of the cores.
pub(crate) const FOREGROUND_NICE: i32 = 5;

/// How much nicer a background compile thread is: it gets what request
/// handling and other compiles leave.
pub(crate) const BACKGROUND_NICE: i32 = 10;

/// Threads of lowered priority that compiles run on; wasmtime's parallel
/// compilation of a plugin inside it uses the pool's threads only. Cheap to
/// clone.
#[derive(Clone)]
pub(crate) struct CompilePool {
    pool: Arc<rayon::ThreadPool>,
}

impl CompilePool {
    /// A pool of `threads` threads (at least one) named `name-N`, each
    /// `nice` steps nicer than the thread that builds the pool.
    pub fn new(name: &'static str, threads: usize, nice: i32) -> anyhow::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(move |i| format!("{name}-{i}"))
            .start_handler(move |_| lower_this_thread_priority(nice))
            .build()?;
        Ok(Self { pool: Arc::new(pool) })
    }

    /// A pool with a thread per core, for compiles that are waited for.
    pub fn foreground() -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new("switchboard-compile", cores, FOREGROUND_NICE)
    }

    /// Runs `work` on the pool. The caller waits without holding a thread,
    /// and a process exiting does not wait for the work.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            let _ = tx.send(work());
        });
        rx.await.ok()
    }
}

/// Lowers the scheduling priority of the calling thread by `steps` (Linux:
/// a thread has its own nice value). Elsewhere, nothing.
fn lower_this_thread_priority(steps: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread's own id; a
        // failure leaves the priority as it was.
        let result = unsafe {
            let thread = libc::gettid() as libc::id_t;
            let nice = libc::getpriority(libc::PRIO_PROCESS, thread);
            libc::setpriority(libc::PRIO_PROCESS, thread, (nice + steps).min(19))
        };
        if result != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a background compile thread's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn compiles_run_on_threads_of_their_own_with_lower_priority() {
        let compiler = CompilePool::new("switchboard-optimize", 1, BACKGROUND_NICE).unwrap();
        let name = compiler.run(|| std::thread::current().name().map(str::to_owned)).await.unwrap();
        assert_eq!(name.as_deref(), Some("switchboard-optimize-0"));
        #[cfg(target_os = "linux")]
        {
            // SAFETY: reads the calling thread's own nice value.
            let nice = compiler
                .run(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) })
                .await
                .unwrap();
            // SAFETY: as above, for the test's thread.
            let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            assert!(nice > ours || ours == 19, "background thread nice {nice}, test thread {ours}");
        }
    }
}
