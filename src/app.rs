//! The embedding API: build a [`Switchboard`] from [`Settings`], get an axum
//! [`Router`], serve it.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::assistant::AssistantSettings;
use crate::dedup::{Dedup, DedupSettings};
use crate::dispatch::Dispatcher;
use crate::events::EventQueue;
use crate::metrics::Metrics;
use crate::registry::Plugins;
use crate::runtime::{Limits, Runtime, RuntimeOptions};
use crate::webhook::signature::Verifier;

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

/// Why a Switchboard could not start.
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
    Watch(#[from] notify::Error),
    /// The duplicate store (Redis) is unreachable.
    #[error("cannot connect to the dedup store: {0}")]
    Dedup(#[from] redis::RedisError),
    /// The WebAssembly engine could not be built.
    #[error("cannot start the WebAssembly runtime: {0}")]
    Runtime(#[source] anyhow::Error),
}

/// State shared by all handlers.
pub struct AppState {
    pub(crate) verifier: Option<Verifier>,
    pub(crate) insecure_no_verify: bool,
    pub(crate) max_body_bytes: usize,
    pub(crate) tool_calls_budget: Duration,
    pub(crate) plugins: Arc<Plugins>,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) assistant: AssistantSettings,
    pub(crate) public_url: Option<String>,
    pub(crate) events: EventQueue,
    _watch: Option<crate::watcher::WatchGuard>,
}

/// A running Switchboard: loaded plugins and the state behind its routes.
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
    state: Arc<AppState>,
}

impl Switchboard {
    /// Builds the runtime and loads every plugin in `settings.plugins_dir`.
    pub async fn start(settings: Settings) -> Result<Self, StartError> {
        if settings.secrets.is_empty() && !settings.insecure_no_verify {
            return Err(StartError::NoSecret);
        }
        let verifier =
            (!settings.insecure_no_verify).then(|| Verifier::new(&settings.secrets, settings.timestamp_tolerance));
        let runtime = Runtime::new(&RuntimeOptions {
            cache_dir: settings.cache_dir.clone(),
            fuel_metering: settings.plugin_defaults.fuel.is_some(),
            ..Default::default()
        })
        .map_err(StartError::Runtime)?;
        let plugins = Plugins::load_dir(runtime, &settings.plugins_dir, settings.plugin_defaults)
            .await
            .map_err(|source| StartError::PluginsDir { path: settings.plugins_dir.clone(), source })?;
        let plugins = Arc::new(plugins);
        let watch = if settings.watch { Some(crate::watcher::watch(plugins.clone())?) } else { None };
        let metrics = Arc::new(Metrics::default());
        let dedup = match &settings.dedup {
            Some(dedup) => Some(Arc::new(Dedup::new(dedup).await?)),
            None => None,
        };
        let events = EventQueue::start(plugins.clone(), metrics.clone(), settings.event_queue_capacity);
        let state = AppState {
            verifier,
            insecure_no_verify: settings.insecure_no_verify,
            max_body_bytes: settings.max_body_bytes,
            tool_calls_budget: settings.tool_calls_budget,
            dispatcher: Dispatcher::new(plugins.clone(), metrics.clone(), dedup),
            assistant: settings.assistant,
            public_url: settings.public_url,
            events,
            plugins,
            metrics,
            _watch: watch,
        };
        Ok(Self { state: Arc::new(state) })
    }

    /// The routes: `POST /webhook`, `GET /healthz`, `/readyz`, `/metrics`,
    /// `/tools`, `/plugins`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/webhook", post(crate::webhook::receive))
            .route("/healthz", get(crate::ops::healthz))
            .route("/readyz", get(crate::ops::readyz))
            .route("/metrics", get(crate::ops::metrics))
            .route("/tools", get(crate::ops::tools))
            .route("/plugins", get(crate::ops::plugins))
            .with_state(self.state.clone())
    }

    /// The loaded plugins.
    pub fn plugins(&self) -> &Arc<Plugins> {
        &self.state.plugins
    }
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
