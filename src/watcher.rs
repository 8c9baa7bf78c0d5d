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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::manifest::Manifest;
use crate::registry::{Plugins, plugin_name};

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
            let names: Vec<String> = event.paths.iter().flat_map(|path| plugins_changed_by(&dir, path)).collect();
            // A folder event that concerns no plugin is still sent (empty): it
            // may be a folder that a manifest reads from, now created. Other
            // files (a deploy's temporary ones) need no more work.
            if !names.is_empty() || event.paths.iter().any(|path| path.is_dir()) {
                let _ = tx.send(names);
            }
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
        Some(name) if path.parent().is_some_and(|folder| same_folder(folder, dir)) => vec![name],
        _ => plugins_reading(dir, path),
    }
}

/// The plugins whose manifests in `dir` name `changed` among the files their
/// load reads (an `[http] ca_file`), so that a change to it reloads them.
/// Manifests are read afresh, so a plugin that failed to load because the
/// file was missing is found too.
fn plugins_reading(dir: &Path, changed: &Path) -> Vec<String> {
    manifests(dir)
        .into_iter()
        .filter(|(_, manifest)| manifest.files_read(dir).iter().any(|file| same_file(file, changed)))
        .map(|(name, _)| name)
        .collect()
}

/// The folders, other than `dir` itself, that hold files the manifests in
/// `dir` read, each with the plugins reading from it: hot reload watches
/// them as well.
fn folders_read(dir: &Path) -> BTreeMap<PathBuf, BTreeSet<String>> {
    let dir_itself = std::fs::canonicalize(dir).ok();
    let mut folders: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    for (name, manifest) in manifests(dir) {
        for file in manifest.files_read(dir) {
            if let Some(folder) = file.parent()
                && std::fs::canonicalize(folder).ok() != dir_itself
            {
                folders.entry(folder.to_owned()).or_default().insert(name.clone());
            }
        }
    }
    folders
}

/// Every manifest in `dir` that parses, with its plugin's name.
fn manifests(dir: &Path) -> Vec<(String, Manifest)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = plugin_name(&path).filter(|_| path.extension().is_some_and(|e| e == "toml"))?;
            let manifest = Manifest::parse(&std::fs::read_to_string(&path).ok()?).ok()?;
            Some((name, manifest))
        })
        .collect()
}

/// Whether two paths name the same file: equal, or the same name in the same
/// folder (compared canonically, so `./certs` and `certs` agree; the file
/// itself may be gone).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b || (a.file_name() == b.file_name() && a.parent().zip(b.parent()).is_some_and(|(a, b)| same_folder(a, b)))
}

/// Whether two paths name the same folder: equal, or equal once canonical
/// (a watcher may report events under the canonical path).
fn same_folder(a: &Path, b: &Path) -> bool {
    a == b || std::fs::canonicalize(a).is_ok_and(|a| std::fs::canonicalize(b).is_ok_and(|b| a == b))
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
                    // Empty: a folder appeared or changed; it may be one to watch.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_manifests_read_lead_back_to_their_plugins() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        std::fs::create_dir(dir.join("certs")).unwrap();
        for (name, manifest) in [
            ("a", "[http]\nca_file = \"certs/ca.pem\"\n"),
            ("b", "[http]\nca_file = \"ca.pem\"\n"),
            ("c", "timeout_ms = 100\n"),
            ("d", "[http]\nca_file = \"./certs/ca.pem\"\n"),
            ("broken", "[http\n"),
        ] {
            std::fs::write(dir.join(format!("{name}.toml")), manifest).unwrap();
        }
        let mut readers = plugins_reading(dir, &dir.join("certs/ca.pem"));
        readers.sort();
        assert_eq!(readers, ["a", "d"]);
        assert_eq!(plugins_reading(dir, &dir.join("ca.pem")), ["b"]);
        assert!(plugins_reading(dir, &dir.join("certs/other.pem")).is_empty());
        // Folders besides the plugins folder itself, each with its readers.
        // A plugin file counts only in the plugins folder itself, however named.
        let canonical = std::fs::canonicalize(dir).unwrap();
        assert_eq!(plugins_changed_by(dir, &canonical.join("a.toml")), ["a"]);
        assert_eq!(plugins_changed_by(dir, &dir.join("certs/./../ca.pem")), ["b"]);
        assert!(plugins_changed_by(dir, &dir.join("certs/a.toml")).is_empty());
        let readers_of_certs = BTreeSet::from(["a".to_owned(), "d".to_owned()]);
        assert_eq!(folders_read(dir), BTreeMap::from([(dir.join("certs"), readers_of_certs)]));
    }
}
