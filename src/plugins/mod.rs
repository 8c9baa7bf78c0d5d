//! The plugin set: the plugins loaded from one folder, and how they change.
//!
//! - [`loader`]: what a plugin folder holds, and loading one plugin from it;
//! - [`manifest`]: a plugin's optional `NAME.toml` (limits, grants, tool options);
//! - [`schema`]: each tool's compiled argument schema;
//! - [`snapshot`]: the immutable view calls read, swapped whole on reload;
//! - [`watcher`]: hot reload, from file events to [`PluginSet::reload`];
//! - [`optimizer`]: optimised code swapped in behind plugins that started on
//!   the baseline compile tier.
//!
//! Loading builds a complete new [`Snapshot`] off to the side and swaps it in
//! with one pointer store; readers never wait, and a call keeps the version it
//! started with.

pub(crate) mod loader;
pub(crate) mod manifest;
pub(crate) mod optimizer;
pub(crate) mod schema;
pub(crate) mod snapshot;
pub(crate) mod watcher;

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::sandbox::{Runtime, Tier};
use crate::types::Limits;
use loader::{PluginFolder, file_stamp};
pub(crate) use snapshot::{LoadFailure, Plugin, Snapshot};

/// What a reload did, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReloadOutcome {
    /// A new version now serves.
    Loaded {
        /// The new version.
        version: String,
    },
    /// The file is gone; its tools are gone with it.
    Removed,
    /// The file could not be used; the previous version (if any) still serves.
    Failed(String),
    /// The file changed while it was read; a later event will load it.
    Incomplete,
    /// Nothing to do.
    Unchanged,
}

/// The live set of plugins loaded from one folder.
pub(crate) struct PluginSet {
    runtime: Runtime,
    folder: PluginFolder,
    defaults: Limits,
    current: ArcSwap<Snapshot>,
    /// Serialises writers; readers never wait.
    write: tokio::sync::Mutex<()>,
    /// Counts the snapshots swapped in, for those who follow changes.
    changes: tokio::sync::watch::Sender<u64>,
    /// Plugins serving on the baseline tier, waiting for optimised code.
    optimize: OptimizeQueue,
    /// Plugins found at start whose code had to be compiled, in the order
    /// they load (smallest first), after the others already serve.
    loading: tokio::sync::watch::Sender<Vec<String>>,
}

impl PluginSet {
    /// Loads the plugins in `dir` that load quickly: those whose code is in
    /// the code cache, and small ones. A file that fails is recorded (see
    /// [`Snapshot::failures`]); the others still load. The plugins whose
    /// code must be compiled first (large, not cached) are left
    /// [`loading`](Self::loading), for [`load_the_rest`] once the set serves.
    pub async fn load(runtime: Runtime, dir: &Path, defaults: Limits) -> std::io::Result<Self> {
        let folder = PluginFolder::new(dir);
        let (mut now, mut later) = (Vec::new(), Vec::new());
        for name in folder.names()? {
            match folder.read(&name) {
                Ok(wasm) if !runtime.loads_quickly(&wasm) => later.push((wasm.len(), name)),
                read => now.push((name, read)),
            }
        }
        later.sort();
        let loads = now.into_iter().map(|(name, read)| {
            let (runtime, folder) = (&runtime, &folder);
            async move {
                let result = folder.load_read(runtime, &name, read, defaults).await;
                (name, result)
            }
        });
        let results = futures::future::join_all(loads).await;
        let snapshot = Snapshot::build(results);
        for (name, failure) in snapshot.failures() {
            tracing::error!(plugin = %name, error = %failure.error, "plugin not loaded");
        }
        let optimize = OptimizeQueue::new();
        for plugin in snapshot.plugins() {
            let tools: Vec<&str> = plugin.tools.iter().map(|t| t.name.as_str()).collect();
            tracing::info!(plugin = %plugin.name, kind = plugin.guest.kind(), version = %plugin.version, tier = plugin.tier.as_str(), ?tools, "plugin loaded");
            if plugin.tier == Tier::Baseline {
                optimize.push(&plugin.name);
            }
        }
        Ok(Self {
            runtime,
            folder,
            defaults,
            current: ArcSwap::from_pointee(snapshot),
            write: tokio::sync::Mutex::new(()),
            changes: tokio::sync::watch::Sender::new(0),
            optimize,
            loading: tokio::sync::watch::Sender::new(later.into_iter().map(|(_, name)| name).collect()),
        })
    }

    /// The plugins found at start that are still being compiled, in the
    /// order they will load.
    pub fn loading(&self) -> Vec<String> {
        self.loading.borrow().clone()
    }

    /// Waits until every plugin found at start has loaded or failed.
    pub async fn loaded(&self) {
        let mut loading = self.loading.subscribe();
        let _ = loading.wait_for(Vec::is_empty).await;
    }

    /// The plugin serving `tool`; while plugins found at start are still
    /// being compiled, waits for them, since one may provide it. `None`
    /// once none is left that could.
    pub async fn plugin_for(&self, tool: &str) -> Option<Arc<Plugin>> {
        let mut loading = self.loading.subscribe();
        loop {
            if let Some(plugin) = self.snapshot().lookup(tool) {
                return Some(plugin.clone());
            }
            let none_left = loading.borrow_and_update().is_empty();
            if none_left || loading.changed().await.is_err() {
                return self.snapshot().lookup(tool).cloned();
            }
        }
    }

    /// Loads plugin `name`, found at start and left [`loading`](Self::loading),
    /// unless a reload has taken it over meanwhile.
    async fn load_found_at_start(&self, name: &str) {
        if !self.is_loading(name) {
            return;
        }
        let started = std::time::Instant::now();
        tracing::info!(plugin = %name, "compiling a plugin found at start; the others already serve");
        let loaded = self.folder.load(&self.runtime, name, self.defaults).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let _writer = self.write.lock().await;
        if !self.is_loading(name) {
            return;
        }
        let mut next = Snapshot::clone(&self.current.load());
        let plugin = loaded.and_then(|plugin| match next.conflict(&plugin) {
            Some((tool, owner)) => Err(conflict(&plugin, &tool, &owner)),
            None => Ok(plugin),
        });
        match plugin {
            Ok(plugin) => {
                let tools: Vec<&str> = plugin.tools.iter().map(|t| t.name.as_str()).collect();
                tracing::info!(plugin = %name, kind = plugin.guest.kind(), version = %plugin.version, tier = plugin.tier.as_str(), ?tools, elapsed_ms, "plugin loaded");
                let tier = plugin.tier;
                next.insert(name.to_owned(), Arc::new(plugin));
                if tier == Tier::Baseline {
                    self.optimize.push(name);
                }
            }
            Err(failure) => {
                tracing::error!(plugin = %name, error = %failure.error, elapsed_ms, "plugin not loaded");
                next.record_failure(name.to_owned(), failure);
            }
        }
        self.swap(next);
        self.no_longer_loading(name);
    }

    /// Whether `name` is among the plugins still loading from start.
    fn is_loading(&self, name: &str) -> bool {
        self.loading.borrow().iter().any(|n| n == name)
    }

    /// Takes `name` off the plugins still loading from start.
    fn no_longer_loading(&self, name: &str) {
        self.loading.send_if_modified(|names| {
            let before = names.len();
            names.retain(|n| n != name);
            names.len() != before
        });
    }

    /// Reloads plugin `name` from disk: loads a new version of `NAME.wasm`
    /// (with its manifest), or drops the plugin when the file is gone. The
    /// new snapshot is swapped in only when the load succeeds; calls in flight
    /// keep the version they started with.
    pub async fn reload(&self, name: &str) -> ReloadOutcome {
        let _writer = self.write.lock().await;
        let outcome = self.reload_holding_the_lock(name).await;
        // A plugin found at start and changed before it loaded: this load
        // of the file as it is now took over.
        self.no_longer_loading(name);
        outcome
    }

    /// [`Self::reload`], for the holder of the writer's lock.
    async fn reload_holding_the_lock(&self, name: &str) -> ReloadOutcome {
        let path = self.folder.wasm(name);
        let before = file_stamp(&path);
        if before.is_none() {
            let mut next = Snapshot::clone(&self.current.load());
            let had_failure = next.forget_failure(name);
            if next.remove(name).is_none() && !had_failure {
                return ReloadOutcome::Unchanged;
            }
            self.swap(next);
            tracing::info!(plugin = %name, "plugin removed");
            return ReloadOutcome::Removed;
        }
        let current = self.current.load_full();
        // A large component takes seconds to compile: say so as it starts.
        let started = std::time::Instant::now();
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        tracing::info!(plugin = %name, bytes, "plugin changed: reloading");
        let loaded = self.folder.load(&self.runtime, name, self.defaults).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let mut next = Snapshot::clone(&current);
        let failure = match loaded {
            Ok(plugin) => {
                if let Some(old) = current.plugin(name)
                    && old.version == plugin.version
                    && old.limits == plugin.limits
                    && old.tools == plugin.tools
                    && old.capabilities.grants() == plugin.capabilities.grants()
                    && !current.failures().contains_key(name)
                {
                    tracing::info!(plugin = %name, elapsed_ms, "plugin reloaded: unchanged");
                    return ReloadOutcome::Unchanged;
                }
                match next.conflict(&plugin) {
                    Some((tool, owner)) => conflict(&plugin, &tool, &owner),
                    None => {
                        let (version, tier) = (plugin.version.clone(), plugin.tier);
                        tracing::info!(plugin = %name, kind = plugin.guest.kind(), %version, tier = tier.as_str(), elapsed_ms, "plugin loaded");
                        next.insert(name.to_owned(), Arc::new(plugin));
                        self.swap(next);
                        if tier == Tier::Baseline {
                            self.optimize.push(name);
                        }
                        return ReloadOutcome::Loaded { version };
                    }
                }
            }
            // A file still being written in place fails to compile; it changes
            // again, and its next event loads it whole.
            Err(_) if file_stamp(&path) != before => return ReloadOutcome::Incomplete,
            Err(failure) => failure,
        };
        let error = failure.error.clone();
        let serving = next.plugin(name).map(|p| p.version.clone());
        tracing::error!(plugin = %name, %error, previous_version_serving = ?serving, elapsed_ms, "plugin reload failed");
        next.record_failure(name.to_owned(), failure);
        self.swap(next);
        ReloadOutcome::Failed(error)
    }

    /// Swaps `next` in, and tells those following changes.
    fn swap(&self, next: Snapshot) {
        self.current.store(Arc::new(next));
        self.changes.send_modify(|generation| *generation += 1);
    }

    /// A receiver that sees each swap of the snapshot.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The folder plugins are loaded from.
    pub fn folder(&self) -> &PluginFolder {
        &self.folder
    }
}

/// Plugin `plugin` not loaded: `owner`, already serving, keeps `tool`.
fn conflict(plugin: &Plugin, tool: &str, owner: &str) -> LoadFailure {
    LoadFailure {
        error: format!(
            "tool {tool:?} is claimed by more than one plugin: {owner} and {}; {owner} keeps it",
            plugin.name
        ),
        path: plugin.path.clone(),
        files_read: plugin.files_read.clone(),
    }
}

/// Loads the plugins found at start that had to be compiled
/// ([`PluginSet::loading`]), one after another, smallest first, each swapped
/// in as it is ready; it ends when they have, or the set is dropped.
pub(crate) fn load_the_rest(plugins: &Arc<PluginSet>) {
    let names = plugins.loading();
    if names.is_empty() {
        return;
    }
    let plugins = Arc::downgrade(plugins);
    tokio::spawn(async move {
        for name in names {
            let Some(plugins) = plugins.upgrade() else { return };
            plugins.load_found_at_start(&name).await;
        }
    });
}

/// Plugins serving on the baseline tier, waiting for [`optimizer`]: names,
/// in the order they were loaded.
struct OptimizeQueue {
    tx: tokio::sync::mpsc::UnboundedSender<String>,
    rx: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<String>>>,
}

impl OptimizeQueue {
    fn new() -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Self { tx, rx: std::sync::Mutex::new(Some(rx)) }
    }

    /// Queues plugin `name` (its version serving now).
    fn push(&self, name: &str) {
        let _ = self.tx.send(name.to_owned());
    }

    /// The receiving end, for the one task that takes the queue.
    fn take_receiver(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<String>> {
        self.rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}
