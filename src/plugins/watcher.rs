//! Hot reload: watch the plugins folder and reload what changes.
//!
//! File events are debounced per plugin (editors and deploy tools write in
//! bursts: truncate, write, rename), then each changed plugin is reloaded off
//! the request path by [`PluginSet::reload`], which swaps the registry entry
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

use super::loader::same_folder;
use super::{PluginSet, Snapshot};

/// Quiet time after the last event for a plugin before it is reloaded.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(40);

/// Keeps the folder watched; dropping it stops the watcher and its task.
pub(crate) struct WatchGuard {
    _watcher: Arc<Mutex<RecommendedWatcher>>,
}

/// Starts watching the plugins folder, and the folders of files its
/// manifests read.
pub(crate) fn watch(plugins: Arc<PluginSet>) -> notify::Result<WatchGuard> {
    let (tx, rx) = mpsc::unbounded_channel::<Vec<String>>();
    let dir = plugins.folder().path().to_owned();
    let on_event = plugins.clone();
    // Runs on the watcher's own thread, so the file-system work of telling
    // what changed stays off the runtime.
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
        Ok(event) => {
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            let names: Vec<String> = event.paths.iter().flat_map(|path| plugins_changed_by(&on_event, path)).collect();
            // A folder event that concerns no plugin is still sent (empty): it
            // may be a folder that a manifest reads from, now created. Other
            // files (a deploy's temporary ones) need no more work.
            if !names.is_empty() || event.paths.iter().any(|path| path.is_dir()) {
                let _ = tx.send(names);
            }
        }
        Err(e) => tracing::warn!(error = %e, "plugin folder watcher error"),
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tracing::info!(dir = %dir.display(), "watching plugins folder for changes");
    let watcher = Arc::new(Mutex::new(watcher));
    // The task holds the watcher weakly: dropping the guard drops the
    // watcher, which closes the channel and ends the task.
    let mut folders = OtherFolders { watcher: Arc::downgrade(&watcher), watched: BTreeSet::new() };
    folders.refresh(&plugins); // the plugins reading from them were just loaded
    tokio::spawn(reload_loop(plugins, rx, folders));
    Ok(WatchGuard { _watcher: watcher })
}

/// The plugins a change to `path` concerns: the plugin whose `.wasm` or
/// `.toml` it is, else those whose load read it (from the current snapshot,
/// which keeps what each load read, failed loads included).
fn plugins_changed_by(plugins: &PluginSet, path: &Path) -> Vec<String> {
    match plugins.folder().plugin_of(path) {
        Some(name) => vec![name],
        None => plugins_reading(&plugins.snapshot(), path),
    }
}

/// The plugins whose load read `changed` (an `[http] ca_file`), so that a
/// change to it reloads them.
fn plugins_reading(snapshot: &Snapshot, changed: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        snapshot.files_read().filter(|(_, file)| same_file(file, changed)).map(|(name, _)| name.to_owned()).collect();
    names.dedup();
    names
}

/// The folders, other than the plugins folder itself, that hold files the
/// plugins' loads read, each with the plugins reading from it: hot reload
/// watches them as well.
fn folders_read(snapshot: &Snapshot, dir: &Path) -> BTreeMap<PathBuf, BTreeSet<String>> {
    let dir_itself = std::fs::canonicalize(dir).ok();
    let mut folders: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    for (name, file) in snapshot.files_read() {
        if let Some(folder) = file.parent()
            && std::fs::canonicalize(folder).ok() != dir_itself
        {
            folders.entry(folder.to_owned()).or_default().insert(name.to_owned());
        }
    }
    folders
}

/// Whether two paths name the same file: equal, or the same name in the same
/// folder (compared canonically, so `./certs` and `certs` agree; the file
/// itself may be gone).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b || (a.file_name() == b.file_name() && a.parent().zip(b.parent()).is_some_and(|(a, b)| same_folder(a, b)))
}

/// Watches the folders outside the plugins folder that hold files its
/// manifests read, as manifests come to name them.
struct OtherFolders {
    watcher: Weak<Mutex<RecommendedWatcher>>,
    watched: BTreeSet<PathBuf>,
}

impl OtherFolders {
    /// Starts watching folders that plugins' loads now read and that are not
    /// watched yet, and returns the plugins reading from those: their files
    /// may have changed before the watch began. A folder that does not exist
    /// yet is tried again at the next event. (Folders no longer read stay
    /// watched: harmless.)
    fn refresh(&mut self, plugins: &PluginSet) -> Vec<String> {
        let Some(watcher) = self.watcher.upgrade() else { return Vec::new() };
        let mut watcher = watcher.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut readers = Vec::new();
        for (folder, readers_of_folder) in folders_read(&plugins.snapshot(), plugins.folder().path()) {
            if self.watched.contains(&folder) {
                continue;
            }
            match watcher.watch(&folder, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::info!(folder = %folder.display(), "watching a folder of files that manifests read");
                    self.watched.insert(folder);
                    readers.extend(readers_of_folder);
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
    plugins: Arc<PluginSet>,
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
                    let names = if names.is_empty() { folders.refresh(&plugins) } else { names };
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
                for name in folders.refresh(&plugins) {
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
    use crate::plugins::LoadFailure;

    /// A snapshot in which each plugin failed to load, having read `files`.
    fn failed_reading(dir: &Path, plugins: &[(&str, &[&str])]) -> Snapshot {
        let results = plugins
            .iter()
            .map(|(name, files)| {
                let failure = LoadFailure {
                    path: dir.join(format!("{name}.wasm")),
                    error: "cannot read: missing".into(),
                    files_read: files.iter().map(|f| dir.join(f)).collect(),
                };
                (name.to_string(), Err(failure))
            })
            .collect();
        Snapshot::build(results)
    }

    #[test]
    fn files_that_loads_read_lead_back_to_their_plugins() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        std::fs::create_dir(dir.join("certs")).unwrap();
        let snapshot = failed_reading(
            dir,
            &[("a", &["certs/ca.pem"]), ("b", &["ca.pem"]), ("c", &[]), ("d", &["./certs/ca.pem"])],
        );
        let mut readers = plugins_reading(&snapshot, &dir.join("certs/ca.pem"));
        readers.sort();
        assert_eq!(readers, ["a", "d"]);
        assert_eq!(plugins_reading(&snapshot, &dir.join("ca.pem")), ["b"]);
        assert_eq!(plugins_reading(&snapshot, &dir.join("certs/./../ca.pem")), ["b"]);
        assert!(plugins_reading(&snapshot, &dir.join("certs/other.pem")).is_empty());
        // Folders besides the plugins folder itself, each with its readers.
        let readers_of_certs = BTreeSet::from(["a".to_owned(), "d".to_owned()]);
        assert_eq!(folders_read(&snapshot, dir), BTreeMap::from([(dir.join("certs"), readers_of_certs)]));
    }
}
