//! Hot reload: watch the plugins folder and reload what changes.
//!
//! File events are debounced per plugin (editors and deploy tools write in
//! bursts: truncate, write, rename), then each changed plugin is reloaded off
//! the request path by [`Plugins::reload`], which swaps the registry entry
//! atomically or keeps the previous version when the new file is bad.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::registry::{Plugins, plugin_name};

/// Quiet time after the last event for a plugin before it is reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(40);

/// Keeps the folder watched; dropping it stops the watcher and its task.
pub struct WatchGuard {
    _watcher: notify::RecommendedWatcher,
}

/// Starts watching `plugins.dir()`.
pub fn watch(plugins: Arc<Plugins>) -> notify::Result<WatchGuard> {
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
        Ok(event) => {
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            for name in event.paths.iter().filter_map(|p| plugin_name(p)) {
                let _ = tx.send(name);
            }
        }
        Err(e) => tracing::warn!(error = %e, "plugin folder watcher error"),
    })?;
    watcher.watch(plugins.dir(), RecursiveMode::NonRecursive)?;
    tracing::info!(dir = %plugins.dir().display(), "watching plugins folder for changes");
    tokio::spawn(reload_loop(plugins, rx));
    Ok(WatchGuard { _watcher: watcher })
}

/// Collects changed plugin names and reloads each once its events go quiet.
async fn reload_loop(plugins: Arc<Plugins>, mut changes: mpsc::UnboundedReceiver<String>) {
    let mut pending: HashMap<String, Instant> = HashMap::new();
    loop {
        let next_due = pending.values().min().copied();
        tokio::select! {
            change = changes.recv() => match change {
                Some(name) => {
                    pending.insert(name, Instant::now() + DEBOUNCE);
                }
                None => return,
            },
            () = sleep_until(next_due) => {
                let now = Instant::now();
                let due: Vec<String> = pending.iter().filter(|(_, at)| **at <= now).map(|(n, _)| n.clone()).collect();
                for name in due {
                    pending.remove(&name);
                    let outcome = plugins.reload(&name).await;
                    tracing::debug!(plugin = %name, ?outcome, "reload");
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
