//! The ceiling for the benchmarks: the echo tool as a native Rust axum handler
//! (`native/handler.rs`), with no WebAssembly, served over HTTP.
//!
//! Run by `benches/run.sh` (built as a `harness = false` bench target):
//!
//! ```text
//! SWITCHBOARD_SECRET=... native_baseline --listen 127.0.0.1:PORT
//! ```

#[path = "native/handler.rs"]
mod handler;

/// The same allocator as the `switchboard` binary, so the ratios compare
/// the sandbox, not the allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::io::Result<()> {
    let mut listen = "127.0.0.1:8090".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().expect("--listen ADDR"),
            // `cargo bench` passes `--bench`; ignore it.
            "--bench" => {}
            other => {
                eprintln!("usage: native_baseline [--listen ADDR]   (unknown argument {other:?})");
                std::process::exit(2);
            }
        }
    }
    let secret = std::env::var("SWITCHBOARD_SECRET").expect("set SWITCHBOARD_SECRET");
    // The same runtime as the switchboard binary: multi-threaded, one worker per core.
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        eprintln!("native_baseline listening on {}", listener.local_addr()?);
        axum::serve(listener, handler::router(&secret)).await
    })
}
