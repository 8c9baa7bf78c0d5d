//! Which plugin answers which tool: an immutable snapshot, swapped atomically.
//!
//! Loading builds a complete new [`Registry`] off to the side and swaps it in
//! with one pointer store; a call holds the `Arc` of the snapshot (and of the
//! plugin version) it started with, so a reload never changes a call in flight.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use crate::capabilities::Capabilities;
use crate::manifest::Manifest;
use crate::runtime::{Limits, LoadError, Loaded, Plugin, Runtime, ToolDefinition};
use crate::schema::ArgumentValidator;

/// One loaded version of one plugin file.
pub struct LoadedPlugin {
    /// The file stem: `lookup_contact` for `lookup_contact.wasm`.
    pub name: String,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// First 12 hex digits of the SHA-256 of the wasm bytes.
    pub version: String,
    /// When this version was loaded.
    pub loaded_at: SystemTime,
    /// The tools it offers.
    pub tools: Vec<ToolDefinition>,
    /// Webhook events it handles: `assistant-request`, `status-update`, `end-of-call-report`.
    pub subscriptions: Vec<String>,
    /// The compiled parameter schema of each tool, by tool name.
    pub validators: HashMap<String, ArgumentValidator>,
    /// Limits for each call.
    pub limits: Limits,
    /// What its manifest grants (outbound hosts, config values, secrets).
    pub capabilities: Arc<Capabilities>,
    /// The compiled code.
    pub plugin: Plugin,
}

/// A failure to load one plugin file, kept for `GET /plugins`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadFailure {
    /// The file that failed.
    pub path: PathBuf,
    /// What went wrong.
    pub error: String,
    /// When it was tried.
    #[serde(skip)]
    pub at: SystemTime,
}

/// An immutable view of the loaded plugins. Cloning is shallow (the plugins
/// themselves are shared), which is how a reload builds the next snapshot.
#[derive(Default, Clone)]
pub struct Registry {
    plugins: BTreeMap<String, Arc<LoadedPlugin>>,
    tools: HashMap<String, Arc<LoadedPlugin>>,
    failures: BTreeMap<String, LoadFailure>,
}

impl Registry {
    /// The plugin that owns tool `name`.
    pub fn lookup(&self, tool: &str) -> Option<&Arc<LoadedPlugin>> {
        self.tools.get(tool)
    }

    /// Loaded plugins by name.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.plugins.values()
    }

    /// Loaded plugins that handle webhook event `event`, by name.
    pub fn subscribers(&self, event: &str) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.plugins.values().filter(move |p| p.subscriptions.iter().any(|s| s == event))
    }

    /// Files that failed to load, by plugin name.
    pub fn failures(&self) -> &BTreeMap<String, LoadFailure> {
        &self.failures
    }

    /// All tools, sorted by name, with the plugin that owns each.
    pub fn tools(&self) -> Vec<(&ToolDefinition, &LoadedPlugin)> {
        let mut tools: Vec<_> = self.plugins.values().flat_map(|p| p.tools.iter().map(move |t| (t, &**p))).collect();
        tools.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        tools
    }

    /// Builds a registry from load results. A tool claimed by two plugins is
    /// an error naming both, and neither of them is loaded.
    fn build(results: Vec<(String, Result<LoadedPlugin, LoadFailure>)>) -> Self {
        let mut registry = Registry::default();
        let mut claims: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut loaded = BTreeMap::new();
        for (name, result) in results {
            match result {
                Ok(plugin) => {
                    for tool in &plugin.tools {
                        claims.entry(tool.name.clone()).or_default().push(name.clone());
                    }
                    loaded.insert(name, plugin);
                }
                Err(failure) => {
                    registry.failures.insert(name, failure);
                }
            }
        }
        for (tool, owners) in claims.iter().filter(|(_, owners)| owners.len() > 1) {
            for owner in owners {
                if let Some(plugin) = loaded.remove(owner) {
                    registry.failures.insert(
                        owner.clone(),
                        LoadFailure {
                            path: plugin.path.clone(),
                            error: format!(
                                "tool {tool:?} is claimed by more than one plugin: {}",
                                owners.join(" and ")
                            ),
                            at: SystemTime::now(),
                        },
                    );
                }
            }
        }
        for (name, plugin) in loaded {
            registry.insert(name, Arc::new(plugin));
        }
        registry
    }

    fn insert(&mut self, name: String, plugin: Arc<LoadedPlugin>) {
        self.remove(&name);
        for tool in &plugin.tools {
            self.tools.insert(tool.name.clone(), plugin.clone());
        }
        self.plugins.insert(name, plugin);
    }

    fn remove(&mut self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.failures.remove(name);
        let old = self.plugins.remove(name)?;
        for tool in &old.tools {
            self.tools.remove(&tool.name);
        }
        Some(old)
    }

    /// The first tool of `plugin` that another loaded plugin already owns.
    fn conflict(&self, plugin: &LoadedPlugin) -> Option<(String, String)> {
        plugin.tools.iter().find_map(|tool| {
            let owner = self.tools.get(&tool.name)?;
            (owner.name != plugin.name).then(|| (tool.name.clone(), owner.name.clone()))
        })
    }
}

/// What a reload did, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
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
pub struct Plugins {
    runtime: Runtime,
    dir: PathBuf,
    defaults: Limits,
    current: ArcSwap<Registry>,
    /// Serialises writers; readers never wait.
    write: tokio::sync::Mutex<()>,
}

impl Plugins {
    /// Loads every `*.wasm` in `dir`, compiling them in parallel. A file that
    /// fails is recorded (see [`Registry::failures`]); the others still load.
    pub async fn load_dir(runtime: Runtime, dir: &Path, defaults: Limits) -> std::io::Result<Self> {
        let names = plugin_names(dir)?;
        let loads = names.into_iter().map(|name| {
            let runtime = runtime.clone();
            let dir = dir.to_owned();
            async move {
                let result = load_plugin(&runtime, &dir, &name, defaults).await;
                (name, result)
            }
        });
        let results = futures::future::join_all(loads).await;
        let registry = Registry::build(results);
        for (name, failure) in registry.failures() {
            tracing::error!(plugin = %name, error = %failure.error, "plugin not loaded");
        }
        for plugin in registry.plugins() {
            let tools: Vec<&str> = plugin.tools.iter().map(|t| t.name.as_str()).collect();
            tracing::info!(plugin = %plugin.name, kind = plugin.plugin.kind(), version = %plugin.version, ?tools, "plugin loaded");
        }
        Ok(Self {
            runtime,
            dir: dir.to_owned(),
            defaults,
            current: ArcSwap::from_pointee(registry),
            write: tokio::sync::Mutex::new(()),
        })
    }

    /// Reloads plugin `name` from disk: loads a new version of `NAME.wasm`
    /// (with its manifest), or drops the plugin when the file is gone. The
    /// new snapshot is swapped in only when the load succeeds; calls in flight
    /// keep the version they started with.
    pub async fn reload(&self, name: &str) -> ReloadOutcome {
        let _writer = self.write.lock().await;
        let path = self.dir.join(format!("{name}.wasm"));
        let before = file_stamp(&path);
        if before.is_none() {
            let mut next = Registry::clone(&self.current.load());
            let had_failure = next.failures.remove(name).is_some();
            if next.remove(name).is_none() && !had_failure {
                return ReloadOutcome::Unchanged;
            }
            self.current.store(Arc::new(next));
            tracing::info!(plugin = %name, "plugin removed");
            return ReloadOutcome::Removed;
        }
        let current = self.current.load_full();
        let loaded = load_plugin(&self.runtime, &self.dir, name, self.defaults).await;
        let mut next = Registry::clone(&current);
        let error = match loaded {
            Ok(plugin) => {
                if let Some(old) = current.plugins.get(name)
                    && old.version == plugin.version
                    && old.limits == plugin.limits
                    && old.tools == plugin.tools
                    && old.capabilities.grants() == plugin.capabilities.grants()
                    && !current.failures.contains_key(name)
                {
                    return ReloadOutcome::Unchanged;
                }
                match next.conflict(&plugin) {
                    Some((tool, owner)) => {
                        format!(
                            "tool {tool:?} is claimed by more than one plugin: {owner} and {name}; {owner} keeps it"
                        )
                    }
                    None => {
                        let version = plugin.version.clone();
                        tracing::info!(plugin = %name, kind = plugin.plugin.kind(), %version, "plugin loaded");
                        next.insert(name.to_owned(), Arc::new(plugin));
                        self.current.store(Arc::new(next));
                        return ReloadOutcome::Loaded { version };
                    }
                }
            }
            // A file still being written in place fails to compile; it changes
            // again, and its next event loads it whole.
            Err(_) if file_stamp(&path) != before => return ReloadOutcome::Incomplete,
            Err(failure) => failure.error,
        };
        let serving = next.plugins.get(name).map(|p| p.version.clone());
        tracing::error!(plugin = %name, %error, previous_version_serving = ?serving, "plugin reload failed");
        next.failures.insert(name.to_owned(), LoadFailure { path, error: error.clone(), at: SystemTime::now() });
        self.current.store(Arc::new(next));
        ReloadOutcome::Failed(error)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Registry> {
        self.current.load_full()
    }

    /// The folder plugins are loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The runtime plugins run in.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Default limits for plugins without a manifest.
    pub fn defaults(&self) -> Limits {
        self.defaults
    }
}

/// Size and modification time, to tell whether a file changed under us.
fn file_stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
}

/// Names of the plugins in `dir`: stems of visible `*.wasm` files, sorted.
pub fn plugin_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if let Some(name) = plugin_name(&path)
            && path.extension().is_some_and(|e| e == "wasm")
            && path.is_file()
        {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The plugin a path belongs to (`NAME.wasm` or `NAME.toml`), or `None` for
/// hidden, temporary and unrelated files.
pub fn plugin_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    if file.starts_with('.') || file.starts_with('#') || file.ends_with('~') {
        return None;
    }
    let (stem, ext) = file.rsplit_once('.')?;
    (matches!(ext, "wasm" | "toml") && !stem.is_empty() && !stem.contains('.')).then(|| stem.to_owned())
}

/// Reads, compiles and describes `dir/NAME.wasm` with its manifest.
pub async fn load_plugin(
    runtime: &Runtime,
    dir: &Path,
    name: &str,
    defaults: Limits,
) -> Result<LoadedPlugin, LoadFailure> {
    let path = dir.join(format!("{name}.wasm"));
    let fail = |error: String| LoadFailure { path: path.clone(), error, at: SystemTime::now() };
    let manifest_path = dir.join(format!("{name}.toml"));
    let manifest = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => Manifest::parse(&text).map_err(|e| fail(format!("{}: {e}", manifest_path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
        Err(e) => return Err(fail(format!("cannot read {}: {e}", manifest_path.display()))),
    };
    if manifest.fuel.is_some() && !runtime.fuel_metering() {
        return Err(fail(format!(
            "{}: `fuel` is set, but fuel metering is off; set `plugin_fuel` in the Switchboard config to turn it on, or rely on timeout_ms",
            manifest_path.display()
        )));
    }
    let grants = manifest
        .grants(dir, &|var| std::env::var(var).ok())
        .map_err(|e| fail(format!("{}: {e}", manifest_path.display())))?;
    let capabilities = Arc::new(Capabilities::new(name, grants));
    let bytes = std::fs::read(&path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let version = hex::encode(&Sha256::digest(&bytes)[..6]);
    let Loaded { plugin, mut tools, subscriptions } = runtime
        .load(Arc::new(bytes), manifest.command_tools(name), capabilities.clone())
        .await
        .map_err(|e: LoadError| fail(e.to_string()))?;
    let http_keys = manifest.http.keys_set();
    if matches!(plugin, Plugin::Command(_)) && !http_keys.is_empty() {
        return Err(fail(format!(
            "{}: [http] {} set, but a command plugin (WASI preview 1) cannot make HTTP requests; remove the [http] table, or build a component to use outbound HTTP",
            manifest_path.display(),
            match http_keys.as_slice() {
                [one] => format!("{one} is"),
                many => format!("{} are", many.join(", ")),
            }
        )));
    }
    if tools.is_empty() && subscriptions.is_empty() {
        return Err(fail("it offers no tools and handles no events".into()));
    }
    if matches!(plugin, Plugin::Component(_)) {
        manifest.apply_to_component_tools(&mut tools).map_err(|e| fail(format!("{}: {e}", manifest_path.display())))?;
    }
    let validators = tools
        .iter()
        .map(|tool| {
            ArgumentValidator::new(&tool.parameters_schema)
                .map(|v| (tool.name.clone(), v))
                .map_err(|e| fail(format!("tool {:?}: parameters {e}", tool.name)))
        })
        .collect::<Result<HashMap<_, _>, _>>()?;
    Ok(LoadedPlugin {
        name: name.to_owned(),
        path,
        version,
        loaded_at: SystemTime::now(),
        tools,
        subscriptions,
        validators,
        limits: manifest.limits(defaults),
        capabilities,
        plugin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_ignore_hidden_and_temporary_files() {
        assert_eq!(plugin_name(Path::new("/p/echo.wasm")).as_deref(), Some("echo"));
        assert_eq!(plugin_name(Path::new("/p/echo.toml")).as_deref(), Some("echo"));
        for ignored in [".echo.wasm", "echo.wasm.tmp", "echo.wasm~", "#echo.wasm", "echo.txt", ".wasm", "a.b.wasm"] {
            assert_eq!(plugin_name(&Path::new("/p").join(ignored)), None, "{ignored}");
        }
    }
}
