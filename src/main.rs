//! The `switchboard` binary: parse the command line, set up logging, run.
//!
//! Exit status: 0 success, 1 failure at run time, 2 usage or configuration error.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

/// Each call allocates and frees many small objects on several threads;
/// mimalloc does that with far less CPU than glibc malloc (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(&cli);
    if !matches!(cli.command, cli::Command::Serve(_) | cli::Command::Mcp(_)) {
        end_quietly_on_closed_pipe();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::commands::run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Has mimalloc hand memory back to the system sooner. By default mimalloc
/// 3 keeps freed pages for a second (`purge_delay` 1000 ms), in arenas whose
/// memory it commits up front. Compiling a large plugin allocates and frees
/// hundreds of MB within that second, so the server's resident memory rose
/// to 530 MB while the 13 MB JavaScript example compiled. Purging after
/// 10 ms (mimalloc 2's default) and committing arena memory only as it is
/// used brought that to about 355 MB (BENCHMARKS.md). The environment
/// (`MIMALLOC_PURGE_DELAY`, `MIMALLOC_ARENA_EAGER_COMMIT`) still overrides
/// either.
///
/// It runs before `main`, from the ELF initialisers: the first allocation
/// makes mimalloc's first arena (1 GiB, the one a compile fills), and an
/// option set afterwards would not apply to it.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

#[cfg(target_os = "linux")]
extern "C" fn tune_allocator() {
    use std::ffi::{c_int, c_long};
    // mimalloc 3's `mi_option_t` (include/mimalloc.h).
    const ARENA_EAGER_COMMIT: c_int = 4;
    const PURGE_DELAY: c_int = 15;
    unsafe extern "C" {
        /// Sets an option's value unless the environment set it.
        fn mi_option_set_default(option: c_int, value: c_long);
    }
    // SAFETY: plain stores into mimalloc's option table, for options that
    // exist in the mimalloc the `mimalloc` crate links (version 3).
    unsafe {
        mi_option_set_default(ARENA_EAGER_COMMIT, 0);
        mi_option_set_default(PURGE_DELAY, 10);
    }
}

/// Logs to stderr, as text (coloured only on a terminal) or JSON lines.
///
/// The server logs what it loads and serves, and what plugins log (target
/// `plugin`); `call` shows the plugin's log lines too, as the author's
/// console; the other one-shot commands keep stdout clean and log only
/// problems. RUST_LOG overrides these.
fn init_logging(cli: &cli::Cli) {
    let default_filter = match cli.command {
        cli::Command::Serve(_) | cli::Command::Mcp(_) => "switchboard=info,plugin=info,warn",
        cli::Command::Call(_) => "plugin=trace,warn",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        cli::LogFormat::Json => builder.json().init(),
        // `call`'s log is the plugin's console: no timestamps.
        cli::LogFormat::Text if matches!(cli.command, cli::Command::Call(_)) => {
            builder.with_ansi(std::io::stderr().is_terminal()).without_time().init()
        }
        cli::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// A one-shot command whose reader goes away (`switchboard calls | head`)
/// ends there, as Unix tools do, instead of panicking on the failed write:
/// Rust ignores SIGPIPE unless told otherwise. The servers keep ignoring it
/// (a client that hangs up is theirs to handle).
fn end_quietly_on_closed_pipe() {
    // SAFETY: restores the default disposition of one signal at start,
    // before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
