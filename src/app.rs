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
use tokio_util::sync::CancellationToken;

use crate::core::Core;
use crate::core::assistant::AssistantSettings;
use crate::core::call_log::{CallLogReader, CallLogSettings};
use crate::core::dedup::{Dedup, DedupSettings};
use crate::core::dispatch::Door;
use crate::doors::access::OperatorRule;
use crate::doors::http::ServerOptions;
use crate::doors::mcp::{AccessRule, McpDoor};
use crate::doors::webhook::WebhookDoor;
use crate::doors::webhook::signature::Verifier;
use crate::plugins::watcher::{self, WatchGuard};
use crate::plugins::{self, PluginSet, optimizer};
use crate::sandbox::{Runtime, RuntimeOptions, TierOptions};
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
    /// How plugin code is compiled: large plugins first on a fast tier.
    pub compile: CompileSettings,
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
    /// Most tool calls of one request that run; each call past them gets an
    /// error entry of its own, in order. Default 64.
    pub max_tool_calls_per_request: usize,
    /// The call log (every webhook and tool call, for `/api/calls`, the
    /// dashboard and `switchboard calls`); `None` (the default) keeps none.
    pub call_log: Option<CallLogSettings>,
    /// The MCP door (`/mcp`, and [`Switchboard::serve_mcp`]).
    pub mcp: McpSettings,
    /// Lets clients off this machine use the operator endpoints (`/metrics`,
    /// `/tools`, `/plugins`) with `Authorization: Bearer <token>`; without
    /// it they answer loopback clients only.
    pub admin_token: Option<String>,
    /// Leave the operator endpoints out of [`Switchboard::router`]: they are
    /// served by [`Switchboard::admin_router`] on a listener of their own
    /// (`--admin-listen`). `/healthz` and `/readyz` stay on both.
    pub separate_admin: bool,
    /// Time a client of [`serve`] gets to send a request's headers: from
    /// connecting, or from the first byte of a later request on a kept-alive
    /// connection. The body then gets as long again. Slower clients are
    /// disconnected. Not zero.
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection of [`serve`] may wait for its next
    /// request. Not zero.
    pub idle_timeout: Duration,
    /// Most connections [`serve`] keeps open at once; more wait in the listen
    /// backlog until one closes. Lowered to fit the open-file limit.
    pub max_connections: usize,
    /// How long [`serve`] keeps accepting connections after its shutdown
    /// future completes, with `/readyz` already answering 503, so a load
    /// balancer sees it before connections are refused. Default zero: the
    /// listener closes at once.
    pub shutdown_delay: Duration,
    /// After [`serve`] has finished the requests in flight: how long async
    /// tools still running and queued event deliveries may take before it
    /// returns anyway. What is left is logged and counted
    /// (`switchboard_shutdown_unfinished_total`). Default 10 s.
    pub shutdown_grace: Duration,
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
            compile: CompileSettings::default(),
            plugin_defaults: Limits::default(),
            watch: true,
            public_url: None,
            assistant: AssistantSettings::default(),
            dedup: Some(DedupSettings::default()),
            event_queue_capacity: 1024,
            max_tool_calls_per_request: 64,
            call_log: None,
            mcp: McpSettings::default(),
            admin_token: None,
            separate_admin: false,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_connections: 20_000,
            shutdown_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// How plugin code is compiled.
///
/// Wasmtime's optimising compiler (Cranelift) takes seconds of CPU for a
/// large plugin (about 10 s on 2 cores for a 13 MB JavaScript component).
/// With `tiered`, a plugin of at least `baseline_min_bytes` whose optimised
/// code is not in the code cache first serves on code from the baseline
/// compiler (Winch: ready in a fraction of the time and memory, runs slower),
/// while its optimised code compiles in the background, on
/// `background_threads` low-priority threads, one plugin at a time; it is
/// then swapped in like a reload. The code cache keeps both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileSettings {
    /// Start large plugins on the baseline tier (default on). Off: every
    /// plugin compiles optimised before it serves.
    pub tiered: bool,
    /// Plugins at least this large start on the baseline tier (default 1 MiB;
    /// smaller ones compile optimised in well under a second).
    pub baseline_min_bytes: usize,
    /// Threads compiling optimised code in the background (default 1). 0:
    /// none; a plugin then stays on the baseline tier until its optimised
    /// code is in the code cache (`switchboard compile`) when it is loaded.
    pub background_threads: usize,
}

impl Default for CompileSettings {
    fn default() -> Self {
        Self { tiered: true, baseline_min_bytes: 1 << 20, background_threads: 1 }
    }
}

/// Who may use the MCP door, and how long a call may take.
#[derive(Debug, Clone)]
pub struct McpSettings {
    /// Serve MCP at `/mcp` (on by default; off: 404).
    pub enabled: bool,
    /// Bearer tokens. With any, every request needs `Authorization: Bearer
    /// <token>`; with none, only loopback clients with a localhost `Host`.
    pub tokens: Vec<String>,
    /// Browser origins allowed besides the localhost forms, as
    /// `scheme://host[:port]`; a request with any other `Origin` gets 403.
    pub allowed_origins: Vec<String>,
    /// The deadline of one `tools/call`; `None`: the tool-calls budget.
    pub call_timeout: Option<Duration>,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self { enabled: true, tokens: Vec::new(), allowed_origins: Vec::new(), call_timeout: None }
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
    /// The call log's database cannot be opened or set up.
    #[error("cannot open the call log: {0}")]
    CallLog(String),
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
/// use axum::serve::ListenerExt;
/// let app = axum::Router::new().nest("/voice", switchboard.router());
/// // TCP_NODELAY: an MCP answer sent as an event stream would otherwise
/// // wait for the client's delayed ACK (about 40 ms).
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080")
///     .await?
///     .tap_io(|tcp| {
///         let _ = tcp.set_nodelay(true);
///     });
/// axum::serve(listener, app).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Switchboard {
    core: Arc<Core>,
    webhook: Option<Arc<WebhookDoor>>,
    mcp: Arc<McpDoor>,
    mcp_enabled: bool,
    /// Who may use the operator endpoints of [`Self::router`]; `None` when
    /// they are served on the admin listener instead.
    operators: Option<Arc<OperatorRule>>,
    tool_calls_budget: Duration,
    server: ServerOptions,
    shutdown_delay: Duration,
    shutdown_grace: Duration,
    _watch: Option<Arc<WatchGuard>>,
}

impl Switchboard {
    /// Builds the runtime, loads the plugins in `settings.plugins_dir`, and
    /// opens the webhook door. Refuses to start without a webhook secret,
    /// unless `settings.insecure_no_verify` says to accept unsigned requests.
    ///
    /// It returns once the plugins whose code is in the code cache, and the
    /// small ones, serve; large plugins that must be compiled first load
    /// after ([`plugins_loading`](Self::plugins_loading)).
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
        let compile = settings.compile;
        let runtime = Runtime::new(&RuntimeOptions {
            cache_dir: settings.cache_dir.clone(),
            fuel_metering: settings.plugin_defaults.fuel.is_some(),
            tiers: compile.tiered.then_some(TierOptions {
                baseline_min_bytes: compile.baseline_min_bytes,
                background_threads: compile.background_threads,
            }),
        })
        .map_err(|e| StartError::Runtime(format!("{e:#}")))?;
        let plugins = PluginSet::load(runtime, &settings.plugins_dir, settings.plugin_defaults)
            .await
            .map_err(|source| StartError::PluginsDir { path: settings.plugins_dir.clone(), source })?;
        let plugins = Arc::new(plugins);
        plugins::load_the_rest(&plugins);
        optimizer::start(&plugins);
        let watch = match settings.watch {
            true => Some(Arc::new(watcher::watch(plugins.clone()).map_err(|e| StartError::Watch(e.to_string()))?)),
            false => None,
        };
        let dedup = match &settings.dedup {
            Some(dedup) => Some(Dedup::new(dedup).await.map_err(|e| StartError::Dedup(e.to_string()))?),
            None => None,
        };
        let server = ServerOptions {
            header_read_timeout: settings.header_read_timeout,
            idle_timeout: settings.idle_timeout,
            max_connections: settings.max_connections,
            // A body over the limit is read and discarded after the 413, up to
            // 4 times the limit (at least 16 MiB), so the client reads the 413.
            drain_bytes: (settings.max_body_bytes as u64).saturating_mul(4).max(16 << 20),
        };
        let core = Core::new(
            plugins,
            dedup,
            settings.assistant,
            settings.event_queue_capacity,
            settings.public_url,
            settings.call_log,
        )
        .await
        .map_err(StartError::CallLog)?;
        let core = Arc::new(
            core.max_tool_calls_per_request(settings.max_tool_calls_per_request)
                .tool_calls_budget_of(settings.tool_calls_budget),
        );
        let mcp = Arc::new(McpDoor {
            core: core.clone(),
            call_timeout: settings.mcp.call_timeout.unwrap_or(settings.tool_calls_budget),
            access: AccessRule { tokens: settings.mcp.tokens, allowed_origins: settings.mcp.allowed_origins },
            shutdown: CancellationToken::new(),
        });
        Ok(Self {
            core,
            webhook: None,
            mcp,
            mcp_enabled: settings.mcp.enabled,
            operators: (!settings.separate_admin).then(|| Arc::new(OperatorRule { token: settings.admin_token })),
            tool_calls_budget: settings.tool_calls_budget,
            server,
            shutdown_delay: settings.shutdown_delay,
            shutdown_grace: settings.shutdown_grace,
            _watch: watch,
        })
    }

    /// The routes: `POST /webhook` (unless started with
    /// [`start_local`](Self::start_local)), `/mcp` (unless turned off in
    /// [`McpSettings`]), `GET /healthz`, `/readyz`, and, for loopback clients
    /// or the admin token, `/metrics`, `/tools`, `/plugins` (unless
    /// [`Settings::separate_admin`]), and with them the dashboard at `/ui/`
    /// (its page is open to all; the endpoints it reads are not).
    ///
    /// The MCP door without tokens, and the operator endpoints without the
    /// admin token, answer loopback clients only, which they tell by the
    /// peer address: serve the router with
    /// `into_make_service_with_connect_info::<SocketAddr>()` when you mount
    /// it yourself ([`serve`] does).
    pub fn router(&self) -> Router {
        let mcp = self.mcp_enabled.then_some(&self.mcp);
        crate::doors::router(&self.core, self.webhook.as_ref(), mcp, self.operators.as_ref())
    }

    /// The operator endpoints, `GET /healthz`, `/readyz`, `/metrics`,
    /// `/tools`, `/plugins`, and the dashboard at `/ui/`, open to whoever
    /// reaches them: for a listener that only operators reach
    /// (`--admin-listen`; see [`Settings::separate_admin`]).
    pub fn admin_router(&self) -> Router {
        crate::doors::ops::health_routes(self.core.clone())
            .merge(crate::doors::ops::operator_routes(self.core.clone(), None))
            .merge(crate::doors::ui::routes())
    }

    /// Serves MCP over a byte stream (stdin and stdout for `switchboard
    /// mcp`) until the client closes it: the same tools, and a
    /// `notifications/tools/list_changed` when hot reload changes them. No
    /// access rule applies: whoever holds the stream is the client.
    pub async fn serve_mcp<R, W>(&self, reader: R, writer: W) -> std::io::Result<()>
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
        W: tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        crate::doors::mcp::serve_stream(self.mcp.clone(), reader, writer).await
    }

    /// Ends every MCP session and its open stream (part of shutting down:
    /// an open stream would otherwise keep its connection, and the server,
    /// alive).
    pub(crate) fn close_mcp_sessions(&self) {
        self.mcp.shutdown.cancel();
    }

    /// Runs one tool call as a tool-calls webhook would (the tool's schema
    /// checked first, the plugin's limits and grants, the tool-calls budget
    /// as deadline, metrics), without duplicate suppression. The result is
    /// the plugin's JSON text.
    pub async fn call_tool(&self, tool: &str, arguments: &str, context: &CallContext) -> Result<String, ToolFailure> {
        let deadline = Instant::now() + self.tool_calls_budget;
        self.core.call_tool(tool, arguments, context, deadline, Door::Embedded).await
    }

    /// Every loaded tool, sorted by name.
    pub fn tools(&self) -> Vec<ToolDefinition> {
        self.core.tools()
    }

    /// The plugins found at start that are still being compiled, in the
    /// order they will load. Starting returns once the plugins whose code is
    /// in the code cache (and the small ones) serve; the others compile
    /// after, one at a time, smallest first. A call for a tool that none
    /// serves yet waits for them, within its deadline.
    pub fn plugins_loading(&self) -> Vec<String> {
        self.core.plugins_loading()
    }

    /// Waits until every plugin found at start has loaded or failed to
    /// (see [`plugins_loading`](Self::plugins_loading)).
    ///
    /// ```no_run
    /// # async fn run() -> anyhow::Result<()> {
    /// use switchboard::{Settings, Switchboard};
    ///
    /// let switchboard = Switchboard::start_local(Settings::default()).await?;
    /// switchboard.plugins_loaded().await;
    /// assert!(switchboard.plugins_loading().is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn plugins_loaded(&self) {
        self.core.plugins_loaded().await
    }

    /// Reads this Switchboard's call log; `None` when it keeps none.
    pub fn call_log(&self) -> Option<CallLogReader> {
        self.core.call_log().reader().cloned()
    }

    /// The loaded plugins and the files that failed to load, now.
    pub fn plugins(&self) -> Vec<PluginStatus> {
        let snapshot = self.core.snapshot();
        let loaded = snapshot.plugins().map(|p| PluginStatus {
            name: p.name.clone(),
            path: p.path.clone(),
            loaded: Ok(LoadedPlugin {
                kind: p.guest.kind(),
                tier: p.tier.as_str(),
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
    /// The compile tier its code comes from: `baseline` (fast to compile,
    /// while the optimised code compiles in the background) or `optimized`.
    pub tier: &'static str,
    /// First 12 hex digits of the SHA-256 of the wasm bytes.
    pub version: String,
    /// The tools it offers.
    pub tools: Vec<String>,
}

/// Serves `switchboard` on `listener` until `shutdown` completes, then shuts
/// down gracefully:
///
/// 1. `/readyz` answers 503 at once (draining), so the load balancer stops
///    sending; new connections are still accepted for
///    [`Settings::shutdown_delay`] (default zero);
/// 2. the listener closes (new connections are refused), idle connections
///    close, and requests in flight finish within their budgets;
/// 3. async tools still running and queued event deliveries get
///    [`Settings::shutdown_grace`]; what is left then is logged and counted
///    (`switchboard_shutdown_unfinished_total`), and `serve` returns.
///
/// Unlike `axum::serve` with [`Switchboard::router`], it caps open
/// connections ([`Settings::max_connections`]), closes those slow to send a
/// request ([`Settings::header_read_timeout`]) or idle too long
/// ([`Settings::idle_timeout`]), and reads the rest of a body it refused
/// early (over the size limit, unsigned) so the client gets the answer;
/// every connection has TCP_NODELAY set.
pub async fn serve(
    listener: TcpListener,
    switchboard: &Switchboard,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let draining = switchboard.clone();
    let shutdown = async move {
        shutdown.await;
        if draining.core.begin_shutdown() {
            tracing::info!(
                delay_ms = draining.shutdown_delay.as_millis() as u64,
                "draining: /readyz answers 503; the listener closes after the delay"
            );
        }
        tokio::time::sleep(draining.shutdown_delay).await;
        // Open MCP streams would keep their connections, and the server, alive.
        draining.close_mcp_sessions();
    };
    let metrics = switchboard.core.metrics().connections("main");
    let served = crate::doors::http::serve(listener, switchboard.router(), switchboard.server, metrics, shutdown).await;
    switchboard.core.finish_background_work(switchboard.shutdown_grace).await;
    served
}

/// Serves the operator endpoints ([`Switchboard::admin_router`]) on a
/// listener of their own (`--admin-listen`) until `shutdown` completes,
/// with the same connection cap and timeouts as [`serve`]: a slow or idle
/// client holds an operator's port no longer than it would the webhook's.
///
/// ```no_run
/// # async fn run(switchboard: switchboard::Switchboard) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9090").await?;
/// switchboard::serve_admin(listener, &switchboard, std::future::pending()).await
/// # }
/// ```
pub async fn serve_admin(
    listener: TcpListener,
    switchboard: &Switchboard,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = switchboard.core.metrics().connections("admin");
    crate::doors::http::serve(listener, switchboard.admin_router(), switchboard.server, metrics, shutdown).await
}
