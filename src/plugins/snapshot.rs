//! Which plugin answers which tool: an immutable [`Snapshot`] of the loaded
//! plugins, built whole and swapped in atomically by the
//! [`PluginSet`](super::PluginSet).
//!
//! A call holds the `Arc` of the snapshot (and of the plugin version) it
//! started with, so a reload never changes a call in flight.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::schema::ArgumentValidator;
use crate::sandbox::capabilities::Capabilities;
use crate::sandbox::{Guest, Reuse, Tier};
use crate::types::{CallContext, EventKind, Limits, ToolDefinition, ToolFailure};

/// One loaded version of one plugin file.
pub(crate) struct Plugin {
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
    /// Webhook events it handles: assistant-request, status-update, end-of-call-report.
    pub subscriptions: Vec<EventKind>,
    /// The compiled parameter schema of each tool, by tool name.
    pub validators: Arc<HashMap<String, ArgumentValidator>>,
    /// Limits for each call; `max_concurrent_calls` is always set (resolved at load).
    pub limits: Limits,
    /// Places for the plugin's calls running at once (`max_concurrent_calls`).
    pub calls: tokio::sync::Semaphore,
    /// What its manifest grants (outbound hosts, config values, secrets).
    pub capabilities: Arc<Capabilities>,
    /// Files besides the plugin and its manifest that loading it read (an
    /// `[http] ca_file`): hot reload watches them.
    pub files_read: Vec<PathBuf>,
    /// The compiled code.
    pub guest: Guest,
    /// The compiler that made it: a large plugin first serves on the
    /// baseline tier, then on optimised code swapped in behind it.
    pub tier: Tier,
    /// Whether its instances serve several calls (its manifest's
    /// `max_instance_reuse`), for the code of another tier.
    pub reuse: Reuse,
}

impl Plugin {
    /// This version running `guest`, compiled on `tier`: the same bytes, so
    /// the same tools, limits and grants. Its calls get places of their own
    /// (calls in flight on `self` keep theirs until they finish).
    pub fn on_tier(&self, guest: Guest, tier: Tier) -> Plugin {
        let places = self.limits.max_concurrent_calls.unwrap_or(1).min(tokio::sync::Semaphore::MAX_PERMITS);
        Plugin {
            name: self.name.clone(),
            path: self.path.clone(),
            version: self.version.clone(),
            loaded_at: self.loaded_at,
            tools: self.tools.clone(),
            subscriptions: self.subscriptions.clone(),
            validators: self.validators.clone(),
            limits: self.limits,
            calls: tokio::sync::Semaphore::new(places),
            capabilities: self.capabilities.clone(),
            files_read: self.files_read.clone(),
            guest,
            tier,
            reuse: self.reuse,
        }
    }

    /// Checks `arguments` (JSON object text) against the schema of `tool`.
    pub fn check_arguments(&self, tool: &str, arguments: &str) -> Result<(), ToolFailure> {
        match self.validators.get(tool) {
            Some(validator) => validator.check(arguments).map_err(ToolFailure::InvalidArguments),
            None => Ok(()),
        }
    }

    /// `text` with this plugin's secret values replaced, as in its logs.
    pub fn redact(&self, text: String) -> String {
        self.capabilities.values().redact(text)
    }

    /// Whether the plugin has secret values to redact.
    pub fn has_secrets(&self) -> bool {
        self.capabilities.values().has_secrets()
    }

    /// The definition of `tool`, when this plugin offers it.
    pub fn tool(&self, tool: &str) -> Option<&ToolDefinition> {
        self.tools.iter().find(|t| t.name == tool)
    }

    /// Runs `tool` in a fresh instance under `limits`, once one of the
    /// plugin's `max_concurrent_calls` places is free: a call waits for one
    /// within its time (and has the rest of its time to run).
    pub async fn call(
        &self,
        tool: &str,
        arguments: &str,
        context: &CallContext,
        mut limits: Limits,
    ) -> Result<String, ToolFailure> {
        let _place = match self.calls.try_acquire() {
            Ok(place) => place,
            Err(_) => {
                let started = tokio::time::Instant::now();
                let Ok(place) = tokio::time::timeout(limits.timeout, self.calls.acquire()).await else {
                    let most = self.limits.max_concurrent_calls.unwrap_or_default();
                    tracing::warn!(plugin = %self.name, max_concurrent_calls = most, "a call found no free place in time");
                    return Err(ToolFailure::Busy(format!(
                        "the tool is busy: {most} calls of it are running, the most it may run at once, and none finished within {:?}",
                        limits.timeout
                    )));
                };
                limits.timeout = limits.timeout.saturating_sub(started.elapsed());
                place.expect("a plugin's semaphore is never closed")
            }
        };
        self.guest.call(tool, arguments, context, limits).await
    }
}

/// A failure to load one plugin file, kept for `GET /plugins`.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct LoadFailure {
    /// The file that failed.
    pub path: PathBuf,
    /// What went wrong.
    pub error: String,
    /// Files besides the plugin and its manifest that the failed load read
    /// (or tried to): a change to one of them may fix it.
    #[serde(skip)]
    pub files_read: Vec<PathBuf>,
}

/// An immutable view of the loaded plugins. Cloning is shallow (the plugins
/// themselves are shared), which is how a reload builds the next snapshot.
#[derive(Default, Clone)]
pub(crate) struct Snapshot {
    plugins: BTreeMap<String, Arc<Plugin>>,
    tools: HashMap<String, Arc<Plugin>>,
    failures: BTreeMap<String, LoadFailure>,
}

impl Snapshot {
    /// The plugin that owns tool `name`.
    pub fn lookup(&self, tool: &str) -> Option<&Arc<Plugin>> {
        self.tools.get(tool)
    }

    /// Loaded plugins by name.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins.values()
    }

    /// Loaded plugins that handle webhook event `event`, by name.
    pub fn subscribers(&self, event: EventKind) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins.values().filter(move |p| p.subscriptions.contains(&event))
    }

    /// Files that failed to load, by plugin name.
    pub fn failures(&self) -> &BTreeMap<String, LoadFailure> {
        &self.failures
    }

    /// All tools, sorted by name, with the plugin that owns each.
    pub fn tools(&self) -> Vec<(&ToolDefinition, &Plugin)> {
        let mut tools: Vec<_> = self.plugins.values().flat_map(|p| p.tools.iter().map(move |t| (t, &**p))).collect();
        tools.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        tools
    }

    /// Builds a registry from load results. A tool claimed by two plugins is
    /// an error naming both, and neither of them is loaded.
    pub(super) fn build(results: Vec<(String, Result<Plugin, LoadFailure>)>) -> Self {
        let mut registry = Snapshot::default();
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
                            files_read: plugin.files_read.clone(),
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

    pub(super) fn insert(&mut self, name: String, plugin: Arc<Plugin>) {
        self.remove(&name);
        for tool in &plugin.tools {
            self.tools.insert(tool.name.clone(), plugin.clone());
        }
        self.plugins.insert(name, plugin);
    }

    pub(super) fn remove(&mut self, name: &str) -> Option<Arc<Plugin>> {
        self.failures.remove(name);
        let old = self.plugins.remove(name)?;
        for tool in &old.tools {
            self.tools.remove(&tool.name);
        }
        Some(old)
    }

    /// Records that plugin `name` failed to load (its previous version, if
    /// any, keeps serving).
    pub(super) fn record_failure(&mut self, name: String, failure: LoadFailure) {
        self.failures.insert(name, failure);
    }

    /// Forgets a failure of plugin `name`; whether there was one.
    pub(super) fn forget_failure(&mut self, name: &str) -> bool {
        self.failures.remove(name).is_some()
    }

    /// The loaded version of plugin `name`.
    pub fn plugin(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.get(name)
    }

    /// Files besides plugins and manifests that loading read, each with the
    /// plugins (loaded or failed) that read it.
    pub fn files_read(&self) -> impl Iterator<Item = (&str, &PathBuf)> {
        let loaded = self.plugins.iter().flat_map(|(name, p)| p.files_read.iter().map(move |f| (name.as_str(), f)));
        let failed = self.failures.iter().flat_map(|(name, f)| f.files_read.iter().map(move |f| (name.as_str(), f)));
        loaded.chain(failed)
    }

    /// The first tool of `plugin` that another loaded plugin already owns.
    pub(super) fn conflict(&self, plugin: &Plugin) -> Option<(String, String)> {
        plugin.tools.iter().find_map(|tool| {
            let owner = self.tools.get(&tool.name)?;
            (owner.name != plugin.name).then(|| (tool.name.clone(), owner.name.clone()))
        })
    }
}
