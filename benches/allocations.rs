//! Allocations per webhook: how many heap allocations (and bytes) one signed
//! `tool-calls` webhook with one `echo` call costs through
//! `Switchboard::router()`, in-process, beside the native baseline's handler
//! (`native/handler.rs`) in the same harness.
//!
//! Unlike a timing, this count does not drift with the machine, so it shows
//! what a change to the edge saves even when the throughput runs cannot
//! (benches/PROFILE.md). Built with `--features bench-no-plugin-call` it
//! counts the edge alone (no sandbox); without it, the whole call. Neither
//! counts the HTTP server's side (hyper, the connection's guards): this is the
//! router and what it calls.
//!
//! ```text
//! cargo bench --bench allocations -- plugins/echo.wasm
//! cargo bench --bench allocations --features bench-no-plugin-call -- plugins/echo.wasm
//! ```
//!
//! `WEBHOOKS=N` sends N webhooks to each (default 10,000), for a profile;
//! `REUSE=N` gives echo `max_instance_reuse = N`.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Body;
use switchboard::{Settings, Switchboard};
use tower::ServiceExt;

#[path = "native/handler.rs"]
mod native;

/// The load generator's request builders (this bench uses a few of them).
#[path = "suite/client.rs"]
#[allow(dead_code)]
mod client;

/// mimalloc (as the `switchboard` binary), counting every allocation.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const WARMUP: usize = 2_000;

/// Webhook `seq` of the load generator's kind (the spec fixture's shape,
/// one `echo` call with id `alloc_SEQ`), signed.
fn request(seq: usize) -> axum::http::Request<Body> {
    let body = client::tool_calls_body(&format!("alloc_{seq}"), "echo", &client::echo_arguments(seq as u64));
    client::signed_webhook(&body).body(Body::from(body)).expect("a valid request")
}

/// Sends `WARMUP + counted` webhooks through `router` one at a time, checks
/// every answer, and prints what the last `counted` allocated.
async fn measure(label: &str, router: axum::Router, counted: usize) -> anyhow::Result<()> {
    let (mut allocations, mut bytes, mut nanos) = (0, 0, Vec::with_capacity(counted));
    for seq in 0..WARMUP + counted {
        // Built and signed before the count starts.
        let request = request(seq);
        let (a0, b0, t0) = (ALLOCATIONS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed), Instant::now());
        let response = router.clone().oneshot(request).await?;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
        let took = t0.elapsed();
        let (a1, b1) = (ALLOCATIONS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
        let expected = format!(
            r#"{{"results":[{{"tool_call_id":"alloc_{seq}","result":{{"echo":{{"query":"John Smith","seq":{seq}}}}}}}]}}"#
        );
        anyhow::ensure!(
            status == 200 && body == expected.as_bytes(),
            "{label}: wrong answer: {status} {}",
            String::from_utf8_lossy(&body)
        );
        if seq >= WARMUP {
            allocations += a1 - a0;
            bytes += b1 - b0;
            nanos.push(took.as_nanos() as u64);
        }
    }
    nanos.sort_unstable();
    println!(
        "{label}: {:.1} allocations, {:.0} bytes per webhook; p50 {:.1} µs ({counted} webhooks, one at a time)",
        allocations as f64 / counted as f64,
        bytes as f64 / counted as f64,
        nanos[counted / 2] as f64 / 1e3,
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let wasm = std::env::args().skip(1).find(|a| !a.starts_with("--")).unwrap_or_else(|| "plugins/echo.wasm".into());
    // More for a profile (`perf record`), so that start-up is a small part of it.
    let counted = std::env::var("WEBHOOKS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir()?;
    std::fs::copy(&wasm, dir.path().join("echo.wasm"))?;
    // `REUSE=N`: echo with `max_instance_reuse = N` in its manifest.
    let reuse = std::env::var("REUSE").ok().filter(|n| !n.is_empty());
    if let Some(n) = &reuse {
        std::fs::write(dir.path().join("echo.toml"), format!("max_instance_reuse = {n}\n"))?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let settings = Settings {
            plugins_dir: dir.path().to_owned(),
            secrets: vec![client::SECRET.into()],
            watch: false,
            ..Default::default()
        };
        let switchboard = Switchboard::start(settings).await?;
        let label = match (cfg!(feature = "bench-no-plugin-call"), &reuse) {
            (true, _) => "Switchboard, the edge alone (no plugin call)".to_owned(),
            (false, None) => "Switchboard, echo (a fresh instance per call)".to_owned(),
            (false, Some(n)) => format!("Switchboard, echo with max_instance_reuse = {n}"),
        };
        measure(&label, switchboard.router(), counted).await?;
        measure("native axum handler", native::router(client::SECRET), counted).await
    })
}
