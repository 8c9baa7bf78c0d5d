//! Swapping optimised code in behind a plugin that serves on the baseline
//! tier (see `sandbox/tiers.rs`).
//!
//! A plugin version loaded on the baseline tier is queued here; one task
//! takes the queue in order (plugins loaded at start first, from the cache
//! before those compiled), has the sandbox compile the optimised code in the
//! background, and swaps the plugin version in the snapshot for the same
//! version on the optimised code. The swap is the one a reload makes: calls
//! in flight finish on the code they started on, later calls run on the new
//! code, and none is lost or run twice. A version replaced or removed in the
//! meantime is not swapped back in.

use std::sync::{Arc, Weak};

use super::PluginSet;
use crate::sandbox::{Tier, Wasm};

/// What came of optimising one plugin, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OptimizeOutcome {
    /// The plugin now runs on optimised code.
    Swapped,
    /// Nothing to do: the plugin is gone, already optimised, or its file
    /// changed (the reload that follows queues the new version).
    Skipped,
    /// The optimising compile failed; the baseline code keeps serving.
    Failed(String),
}

/// Starts the task that optimises the plugins serving on the baseline tier,
/// now and after each reload, one at a time, in the order they were loaded;
/// it ends when the plugin set is dropped. Without background compile
/// threads (they stay on the baseline tier), or once started, nothing.
pub(crate) fn start(plugins: &Arc<PluginSet>) {
    if !plugins.runtime.optimizes_in_background() {
        return;
    }
    let Some(mut rx) = plugins.optimize.take_receiver() else { return };
    let plugins: Weak<PluginSet> = Arc::downgrade(plugins);
    tokio::spawn(async move {
        while let Some(name) = rx.recv().await {
            let Some(plugins) = plugins.upgrade() else { return };
            let outcome = optimize(&plugins, &name).await;
            tracing::debug!(plugin = %name, ?outcome, "optimise");
        }
    });
}

/// Compiles the optimised code of plugin `name`'s current version and swaps
/// it in, unless that version is no longer the one serving.
pub(super) async fn optimize(plugins: &PluginSet, name: &str) -> OptimizeOutcome {
    let Some(plugin) = plugins.snapshot().plugin(name).cloned() else { return OptimizeOutcome::Skipped };
    if plugin.tier != Tier::Baseline {
        return OptimizeOutcome::Skipped;
    }
    // The bytes again, from the file: kept in memory, every large plugin
    // would hold its bytes for as long as it serves.
    let bytes = match std::fs::read(&plugin.path).map(Wasm::new) {
        Ok(wasm) if wasm.version() == plugin.version => wasm,
        // Replaced or gone since: a reload of the file takes over.
        _ => return OptimizeOutcome::Skipped,
    };
    let started = std::time::Instant::now();
    let guest = match plugins.runtime.optimize(bytes, plugin.capabilities.clone(), plugin.reuse).await {
        Ok(guest) => guest,
        Err(e) => {
            tracing::warn!(plugin = %name, error = %e, "cannot compile optimised code; the baseline code keeps serving");
            return OptimizeOutcome::Failed(e.to_string());
        }
    };
    let _writer = plugins.write.lock().await;
    let current = plugins.snapshot();
    if !current.plugin(name).is_some_and(|serving| Arc::ptr_eq(serving, &plugin)) {
        return OptimizeOutcome::Skipped;
    }
    let mut next = super::Snapshot::clone(&current);
    let failure = current.failures().get(name).cloned();
    next.insert(name.to_owned(), Arc::new(plugin.on_tier(guest, Tier::Optimized)));
    if let Some(failure) = failure {
        next.record_failure(name.to_owned(), failure);
    }
    plugins.swap(next);
    tracing::info!(plugin = %name, version = %plugin.version, compile_ms = started.elapsed().as_millis() as u64, "plugin now runs on optimised code");
    OptimizeOutcome::Swapped
}
