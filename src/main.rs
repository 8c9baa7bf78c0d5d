//! The `switchboard` binary: parse the command line, set up logging, run.
//!
//! Exit status: 0 success, 1 failure at run time, 2 usage or configuration error.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Each call allocates and frees many small objects on several threads;
/// mimalloc does that with far less CPU than glibc malloc (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's own setter, from the static library the `mimalloc` crate links.
unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (libmimalloc-sys
/// 0.1.49 builds v3; its Rust bindings do not name this option).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// mimalloc hands freed memory back to the kernel 10 ms after it is freed by
/// default. Compiling a large plugin frees and allocates hundreds of MB in
/// bursts, and handing pages back then faulting them in again cost 4 s of
/// kernel time (of 6 s) for the 13 MB JavaScript example. A second still
/// returns memory soon after a compile ends.
const PURGE_DELAY_MS: std::ffi::c_long = 1000;

fn main() -> ExitCode {
    // SAFETY: sets one of mimalloc's options (an atomic store in mimalloc),
    // before any other thread exists.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    let cli = cli::Cli::parse();
    // The server logs what it loads and serves, and what plugins log (target
    // `plugin`); the one-shot commands keep stdout clean and log only
    // problems. RUST_LOG overrides both.
    let default_filter = match cli.command {
        cli::Command::Serve(_) | cli::Command::Mcp(_) => "switchboard=info,plugin=info,warn",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
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
