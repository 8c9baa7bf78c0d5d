//! The embedding API: build a [`Switchboard`] from [`Settings`], get an axum
//! [`Router`], serve it. This is the one place that wires the layers
//! together: the sandbox under the plugin set, the core over it, the doors
//! over the core.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::TcpListener;

use crate::core::Core;
use crate::core::assistant::AssistantSettings;
use crate::core::dedup::{Dedup, DedupSettings};
use crate::doors::webhook::WebhookDoor;
use crate::doors::webhook::signature::Verifier;
use crate::plugins::PluginSet;
use crate::plugins::watcher::{self, WatchGuard};
use crate::sandbox::{Runtime, RuntimeOptions};
use crate::types::{CallContext, Limits, ToolDefinition, ToolFailure};

/// Everything a Switchboard needs to start. `Default` gives the documented
/// defaults, with no secret.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Folder of `NAME.wasm` plugins (and `NAME.toml` manifests).
    pub plugins_dir: PathBuf,
    /// Webhook secrets; a request signed with any of them is accepted.
    pub secrets: Vec<String>,
    /// Accept unsigned requests. Only for local experiments.
    pub insecure_no_verify: bool,
    /// Largest accepted body, in bytes.
    pub max_body_bytes: usize,
    /// How far `X-Webhook-Timestamp` may be from now.
    pub timestamp_tolerance: Duration,
    /// Time from arrival to the tool-calls answer (the platform waits 10 s).
    pub tool_calls_budget: Duration,
    /// Folder for precompiled plugin code; `None` for no cache.
    pub cache_dir: Option<PathBuf>,
    /// Limits for plugins whose manifest does not set them. A `fuel` here
    /// turns fuel metering on (slower guest code; off by default).
    pub plugin_defaults: Limits,
    /// Watch the plugins folder and reload changed plugins.
    pub watch: bool,
    /// Where the platform reaches this server (e.g. `https://voice.example.com`);
    /// tool definitions then carry `url`.
    pub public_url: Option<String>,
    /// How `assistant-request` is answered.
    pub assistant: AssistantSettings,
    /// Duplicate tool-call detection; `None` turns it off.
    pub dedup: Option<DedupSettings>,
    /// Events waiting for delivery to subscribing plugins; more are dropped.
    pub event_queue_capacity: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from("plugins"),
            secrets: Vec::new(),
            insecure_no_verify: false,
            max_body_bytes: 1 << 20,
            timestamp_tolerance: Duration::from_secs(300),
            tool_calls_budget: Duration::from_secs(9),
            cache_dir: None,
            plugin_defaults: Limits::default(),
            watch: true,
            public_url: None,
            assistant: AssistantSettings::default(),
            dedup: Some(DedupSettings::default()),
            event_queue_capacity: 1024,
        }
    }
}

/// Why a Switchboard could not start. Each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No secret and no explicit opt-out.
    #[error(
        "no webhook secret configured: set SWITCHBOARD_SECRET (comma-separated for several), or pass --insecure-no-verify for local experiments"
    )]
    NoSecret,
    /// The plugins folder cannot be read.
    #[error("cannot read plugins folder {path}: {source}")]
    PluginsDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The plugins folder cannot be watched.
    #[error("cannot watch plugins folder: {0}")]
    Watch(String),
    /// The duplicate store (Redis) is unreachable.
    #[error("cannot connect to the dedup store: {0}")]
    Dedup(String),
    /// The WebAssembly engine could not be built.
    #[error("cannot start the WebAssembly runtime: {0}")]
    Runtime(String),
}

/// A running Switchboard: loaded plugins, the core that runs calls on them,
/// and the doors in front of it. Cheap to clone.
///
/// ```no_run
/// # async fn run() -> anyhow::Result<()> {
/// use switchboard::{Settings, Switchboard};
///
/// let settings = Settings {
///     plugins_dir: "plugins".into(),
///     secrets: vec![std::env::var("SWITCHBOARD_SECRET")?],
///     ..Settings::default()
/// };
/// let switchboard = Switchboard::start(settings).await?;
/// // Mount it in a bigger app, or serve it alone:
/// let app = axum::Router::new().nest("/voice", switchboard.router());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Switchboard {
    core: Arc<Core>,
    webhook: Option<Arc<WebhookDoor>>,
    tool_calls_budget: Duration,
    _watch: Option<Arc<WatchGuard>>,
}

impl Switchboard {
    /// Builds the runtime, loads every plugin in `settings.plugins_dir`, and
    /// opens the webhook door. Refuses to start without a webhook secret,
    /// unless `settings.insecure_no_verify` says to accept unsigned requests.
    pub async fn start(settings: Settings) -> Result<Self, StartError> {
        if settings.secrets.is_empty() && !settings.insecure_no_verify {
            return Err(StartError::NoSecret);
        }
        let verifier =
            (!settings.insecure_no_verify).then(|| Verifier::new(&settings.secrets, settings.timestamp_tolerance));
        let (max_body_bytes, tool_calls_budget) = (settings.max_body_bytes, settings.tool_calls_budget);
        let mut switchboard = Self::start_local(settings).await?;
        switchboard.webhook =
            Some(Arc::new(WebhookDoor { core: switchboard.core.clone(), verifier, max_body_bytes, tool_calls_budget }));
        Ok(switchboard)
    }

    /// Builds the runtime and loads the plugins, with no webhook door: for
    /// running tools in this process ([`call_tool`](Self::call_tool)) or
    /// through another door. No secret is needed; [`router`](Self::router)
    /// then serves the operational endpoints only.
    ///
    /// ```no_run
    /// # async fn run() -> anyhow::Result<()> {
    /// use switchboard::{CallContext, Settings, Switchboard};
    ///
    /// let switchboard = Switchboard::start_local(Settings { watch: false, ..Settings::default() }).await?;
    /// let result = switchboard.call_tool("echo", r#"{"text": "hi"}"#, &CallContext::default()).await?;
    /// assert_eq!(result, r#"{"echo":{"text":"hi"}}"#);
    /// # Ok(()) }
    /// ```
    pub async fn start_local(settings: Settings) -> Result<Self, StartError> {
        let runtime = Runtime::new(&RuntimeOptions {
            cache_dir: settings.cache_dir.clone(),
            fuel_metering: settings.plugin_defaults.fuel.is_some(),
        })
        .map_err(|e| StartError::Runtime(format!("{e:#}")))?;
        let plugins = PluginSet::load(runtime, &settings.plugins_dir, settings.plugin_defaults)
            .await
            .map_err(|source| StartError::PluginsDir { path: settings.plugins_dir.clone(), source })?;
        let plugins = Arc::new(plugins);
        let watch = match settings.watch {
            true => Some(Arc::new(watcher::watch(plugins.clone()).map_err(|e| StartError::Watch(e.to_string()))?)),
            false => None,
        };
        let dedup = match &settings.dedup {
            Some(dedup) => Some(Dedup::new(dedup).await.map_err(|e| StartError::Dedup(e.to_string()))?),
            None => None,
        };
        let core = Core::new(plugins, dedup, settings.assistant, settings.event_queue_capacity, settings.public_url);
        Ok(Self { core: Arc::new(core), webhook: None, tool_calls_budget: settings.tool_calls_budget, _watch: watch })
    }

    /// The routes: `POST /webhook` (unless started with
    /// [`start_local`](Self::start_local)), `GET /healthz`, `/readyz`,
    /// `/metrics`, `/tools`, `/plugins`.
    pub fn router(&self) -> Router {
        crate::doors::router(&self.core, self.webhook.as_ref())
    }

    /// Runs one tool call as a tool-calls webhook would (the tool's schema
    /// checked first, the plugin's limits and grants, the tool-calls budget
    /// as deadline, metrics), without duplicate suppression. The result is
    /// the plugin's JSON text.
    pub async fn call_tool(&self, tool: &str, arguments: &str, context: &CallContext) -> Result<String, ToolFailure> {
        let deadline = Instant::now() + self.tool_calls_budget;
        self.core.call_tool(tool, arguments, context, deadline).await
    }

    /// Every loaded tool, sorted by name.
    pub fn tools(&self) -> Vec<ToolDefinition> {
        self.core.snapshot().tools().into_iter().map(|(tool, _)| tool.clone()).collect()
    }

    /// The loaded plugins and the files that failed to load, now.
    pub fn plugins(&self) -> Vec<PluginStatus> {
        let snapshot = self.core.snapshot();
        let loaded = snapshot.plugins().map(|p| PluginStatus {
            name: p.name.clone(),
            path: p.path.clone(),
            loaded: Ok(LoadedPlugin {
                kind: p.guest.kind(),
                version: p.version.clone(),
                tools: p.tools.iter().map(|t| t.name.clone()).collect(),
            }),
        });
        let failed = snapshot.failures().iter().map(|(name, failure)| PluginStatus {
            name: name.clone(),
            path: failure.path.clone(),
            loaded: Err(failure.error.clone()),
        });
        let mut all: Vec<PluginStatus> = loaded.chain(failed).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The platform's `llm_config.tools` list for every loaded tool (what
    /// `GET /tools` serves).
    pub fn platform_tools(&self) -> Vec<serde_json::Value> {
        self.core.platform_tools()
    }
}

/// One plugin of the folder, as [`Switchboard::plugins`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginStatus {
    /// The file stem: `lookup_contact` for `lookup_contact.wasm`.
    pub name: String,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// What serves, or why it does not load (a previous version may still serve).
    pub loaded: Result<LoadedPlugin, String>,
}

/// A loaded plugin version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedPlugin {
    /// `component` or `command`.
    pub kind: &'static str,
    /// First 12 hex digits of the SHA-256 of the wasm bytes.
    pub version: String,
    /// The tools it offers.
    pub tools: Vec<String>,
}

/// Serves `switchboard` on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    switchboard: &Switchboard,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, switchboard.router()).with_graceful_shutdown(shutdown).await
}
