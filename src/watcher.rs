//! Hot reload: watch the plugins folder and reload what changes.
//!
//! File events are debounced per plugin (editors and deploy tools write in
//! bursts: truncate, write, rename), then each changed plugin is reloaded off
//! the request path by [`Plugins::reload`], which swaps the registry entry
//! atomically or keeps the previous version when the new file is bad.
//!
//! A plugin changes when its `NAME.wasm` or `NAME.toml` does, and also when a
//! file its manifest reads does (an `[http] ca_file`, so a rotated CA takes
//! effect). Such a file may sit in another folder; that folder is watched too.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::registry::{Plugins, folders_read, plugin_name, plugins_reading};

/// Quiet time after the last event for a plugin before it is reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(40);

/// Keeps the folder watched; dropping it stops the watcher and its task.
pub struct WatchGuard {
    _watcher: Arc<Mutex<RecommendedWatcher>>,
}

/// Starts watching `plugins.dir()`, and the folders of files its manifests
/// read.
pub fn watch(plugins: Arc<Plugins>) -> notify::Result<WatchGuard> {
    let (tx, rx) = mpsc::unbounded_channel::<Vec<String>>();
    let dir = plugins.dir().to_owned();
    // Runs on the watcher's own thread, so reading manifests here keeps file
    // work off the runtime.
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
        Ok(event) => {
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            // An event that concerns no plugin is still sent (empty): it may
            // be a folder that a manifest reads from, now created.
            let _ = tx.send(event.paths.iter().flat_map(|path| plugins_changed_by(&dir, path)).collect());
        }
        Err(e) => tracing::warn!(error = %e, "plugin folder watcher error"),
    })?;
    watcher.watch(plugins.dir(), RecursiveMode::NonRecursive)?;
    tracing::info!(dir = %plugins.dir().display(), "watching plugins folder for changes");
    let watcher = Arc::new(Mutex::new(watcher));
    // The task holds the watcher weakly: dropping the guard drops the
    // watcher, which closes the channel and ends the task.
    let mut folders = OtherFolders { watcher: Arc::downgrade(&watcher), watched: BTreeSet::new() };
    folders.refresh(plugins.dir()); // the plugins reading from them were just loaded
    tokio::spawn(reload_loop(plugins, rx, folders));
    Ok(WatchGuard { _watcher: watcher })
}

/// The plugins a change to `path` concerns: the plugin whose `.wasm` or
/// `.toml` it is, else those whose manifest reads it.
fn plugins_changed_by(dir: &Path, path: &Path) -> Vec<String> {
    match plugin_name(path) {
        Some(name) if path.parent() == Some(dir) => vec![name],
        _ => plugins_reading(dir, path),
    }
}

/// Watches the folders outside the plugins folder that hold files its
/// manifests read, as manifests come to name them.
struct OtherFolders {
    watcher: Weak<Mutex<RecommendedWatcher>>,
    watched: BTreeSet<PathBuf>,
}

impl OtherFolders {
    /// Starts watching folders that manifests in `dir` now read and that are
    /// not watched yet, and returns the plugins reading from those: their
    /// files may have changed before the watch began. A folder that does not
    /// exist yet is tried again at the next event. (Folders no longer read
    /// stay watched: harmless.)
    fn refresh(&mut self, dir: &Path) -> Vec<String> {
        let Some(watcher) = self.watcher.upgrade() else { return Vec::new() };
        let mut watcher = watcher.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut readers = Vec::new();
        for (folder, plugins) in folders_read(dir) {
            if self.watched.contains(&folder) {
                continue;
            }
            match watcher.watch(&folder, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::info!(folder = %folder.display(), "watching a folder of files that manifests read");
                    self.watched.insert(folder);
                    readers.extend(plugins);
                }
                Err(e) => {
                    tracing::debug!(folder = %folder.display(), error = %e, "cannot watch (yet) a folder that a manifest reads from")
                }
            }
        }
        readers
    }
}

/// Collects changed plugin names and reloads each once its events go quiet.
async fn reload_loop(
    plugins: Arc<Plugins>,
    mut changes: mpsc::UnboundedReceiver<Vec<String>>,
    mut folders: OtherFolders,
) {
    let mut pending: HashMap<String, Instant> = HashMap::new();
    loop {
        let next_due = pending.values().min().copied();
        tokio::select! {
            change = changes.recv() => match change {
                Some(names) => {
                    let names = if names.is_empty() { folders.refresh(plugins.dir()) } else { names };
                    for name in names {
                        pending.insert(name, Instant::now() + DEBOUNCE);
                    }
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
                // A reloaded manifest may name a file in a folder not yet watched.
                for name in folders.refresh(plugins.dir()) {
                    pending.insert(name, Instant::now() + DEBOUNCE);
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
