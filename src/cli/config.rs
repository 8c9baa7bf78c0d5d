//! Configuration: defaults, then the TOML file, then environment and flags.
//!
//! Only the binary reads configuration; the library takes a finished
//! [`Settings`]. Names of environment variables live here, in one place.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use switchboard::{
    AssistantRoute, AssistantSettings, CallLogSettings, CompileSettings, DedupSettings, McpSettings, Settings,
};

/// `SWITCHBOARD_LISTEN`: address to listen on.
pub const ENV_LISTEN: &str = "SWITCHBOARD_LISTEN";
/// `SWITCHBOARD_PLUGINS`: the plugins folder.
pub const ENV_PLUGINS: &str = "SWITCHBOARD_PLUGINS";
/// `SWITCHBOARD_CONFIG`: the TOML configuration file.
pub const ENV_CONFIG: &str = "SWITCHBOARD_CONFIG";
/// `SWITCHBOARD_SECRET`: webhook secret(s), comma-separated.
pub const ENV_SECRET: &str = "SWITCHBOARD_SECRET";
/// `SWITCHBOARD_ADMIN_TOKEN`: lets clients off the machine use the operator endpoints.
pub const ENV_ADMIN_TOKEN: &str = "SWITCHBOARD_ADMIN_TOKEN";
/// `SWITCHBOARD_ADMIN_LISTEN`: a separate address for the operator endpoints.
pub const ENV_ADMIN_LISTEN: &str = "SWITCHBOARD_ADMIN_LISTEN";
/// `SWITCHBOARD_MCP_TOKENS`: bearer tokens of the MCP door, comma-separated.
pub const ENV_MCP_TOKENS: &str = "SWITCHBOARD_MCP_TOKENS";
/// The look of log lines, `text` or `json` (`--log-format`).
pub const ENV_LOG_FORMAT: &str = "SWITCHBOARD_LOG_FORMAT";
/// The data folder (the call log's SQLite file).
pub const ENV_DATA: &str = "SWITCHBOARD_DATA";
/// The data folder when none is given, beside the config file.
pub const DEFAULT_DATA_DIR: &str = "data";

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The configuration file. Every key is optional; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// Plugins folder, relative to the file's folder.
    pub plugins: Option<PathBuf>,
    /// Webhook secrets.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Largest accepted body in bytes (default 1 MiB).
    pub max_body_bytes: Option<usize>,
    /// Allowed clock difference for `X-Webhook-Timestamp`, in seconds (default 300).
    pub timestamp_tolerance_secs: Option<u64>,
    /// Budget for a tool-calls answer, in milliseconds (default 9000).
    pub tool_calls_budget_ms: Option<u64>,
    /// Folder for precompiled plugin code (default `PLUGINS/.cache`).
    pub cache_dir: Option<PathBuf>,
    /// Default per-call timeout for plugins, in milliseconds.
    pub plugin_timeout_ms: Option<u64>,
    /// Default memory cap for plugins, in MiB (default 128).
    pub plugin_memory_mib: Option<usize>,
    /// Default fuel per call; setting it turns fuel metering on, so plugin
    /// manifests may set their own `fuel` (default: off).
    pub plugin_fuel: Option<u64>,
    /// Default for the most calls of one plugin running at once (default: a
    /// quarter of the instance pool).
    pub plugin_max_concurrent_calls: Option<usize>,
    /// Largest result of a tool call, in bytes (default 1 MiB); a manifest may set its own.
    pub max_result_bytes: Option<usize>,
    /// Most tool calls of one request that run; the rest fail (default 64).
    pub max_tool_calls_per_request: Option<usize>,
    /// Where the platform reaches this server; tool definitions then carry `url`.
    pub public_url: Option<String>,
    /// Events waiting for subscribing plugins before new ones are dropped (default 1024).
    pub event_queue_capacity: Option<usize>,
    /// Time for a request's headers, and again for its body, in milliseconds (default 10000).
    pub header_read_timeout_ms: Option<u64>,
    /// Time a kept-alive connection may wait for its next request, in seconds (default 75).
    pub idle_timeout_secs: Option<u64>,
    /// Most connections open at once (default 20000).
    pub max_connections: Option<usize>,
    /// After SIGTERM, how long new connections are still accepted while
    /// `/readyz` answers 503, in milliseconds (default 0).
    pub shutdown_delay_ms: Option<u64>,
    /// After SIGTERM and the requests in flight: time left to async tools
    /// and queued event deliveries, in milliseconds (default 10000).
    pub shutdown_grace_ms: Option<u64>,
    /// `[assistant_request]`: how assistant-request is answered.
    #[serde(default)]
    pub assistant_request: AssistantRequestConfig,
    /// `[dedup]`: duplicate tool-call detection.
    #[serde(default)]
    pub dedup: DedupConfig,
    /// `[mcp]`: the MCP door.
    #[serde(default)]
    pub mcp: McpConfig,
    /// `[compile]`: compile tiers.
    #[serde(default)]
    pub compile: CompileConfig,
    /// Folder for data Switchboard keeps (the call log's SQLite file);
    /// relative to the config file. Default `data`.
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub call_log: CallLogConfig,
}

/// `[compile]` in the configuration file (see [`CompileSettings`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompileConfig {
    /// Start large plugins on the fast baseline tier (default true).
    pub tiered: Option<bool>,
    /// Plugins at least this large, in KiB, start on the baseline tier (default 1024).
    pub baseline_min_kib: Option<usize>,
    /// Threads compiling optimised code in the background (default 1; 0: none).
    pub background_threads: Option<usize>,
}

/// `[mcp]` in the configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// Serve MCP at `/mcp` (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Bearer tokens; with any, every request needs one. Without: loopback only.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Browser origins allowed besides the localhost forms.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Deadline of one `tools/call`, in milliseconds (default: the tool-calls budget).
    pub call_timeout_ms: Option<u64>,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self { enabled: true, tokens: Vec::new(), allowed_origins: Vec::new(), call_timeout_ms: None }
    }
}

/// `[call_log]` in the configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallLogConfig {
    /// On by default (for `serve`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// PostgreSQL instead of SQLite in the data folder, e.g.
    /// `postgres://switchboard:secret@db:5432/switchboard`: replicas share it.
    pub database_url: Option<String>,
    /// Days records are kept (default 7; 0 keeps them forever).
    pub retention_days: Option<u32>,
    /// Keep tool calls' arguments (default true).
    pub capture_arguments: Option<bool>,
    /// Keep tool calls' results (default true).
    pub capture_results: Option<bool>,
    /// Keep end-of-call reports' summary, analysis and transcript (default true).
    pub capture_reports: Option<bool>,
    /// Longest argument, result or error kept, in bytes (default 16384).
    pub max_value_bytes: Option<usize>,
    /// Records waiting to be written; more are dropped (default 10000).
    pub queue_capacity: Option<usize>,
}

impl Default for CallLogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            database_url: None,
            retention_days: None,
            capture_arguments: None,
            capture_results: None,
            capture_reports: None,
            max_value_bytes: None,
            queue_capacity: None,
        }
    }
}

/// `[assistant_request]` in the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssistantRequestConfig {
    /// Time to answer, in milliseconds (default 4000; the platform waits 5 s).
    pub budget_ms: Option<u64>,
    /// Add the loaded tools to `llm_config.tools` of answers that set `llm_config`.
    #[serde(default)]
    pub inject_tools: bool,
    /// Static answers keyed by called and/or calling number.
    #[serde(default)]
    pub routes: Vec<AssistantRoute>,
}

/// `[dedup]` in the configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// On by default.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long an answer is remembered, in seconds (default 600).
    pub ttl_secs: Option<u64>,
    /// Most answers kept in memory (default 100000).
    pub max_entries: Option<usize>,
    /// Most bytes of answers kept in memory (default 64 MiB).
    pub max_bytes: Option<usize>,
    /// Share answers between replicas through Redis, e.g. `redis://127.0.0.1:6379/0`.
    pub redis_url: Option<String>,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self { enabled: true, ttl_secs: None, max_entries: None, max_bytes: None, redis_url: None }
    }
}

fn yes() -> bool {
    true
}

impl FileConfig {
    /// Reads and parses `path`; errors name the file, line and reason.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }
}

/// What the command line and environment say, before the file is applied.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen` / `SWITCHBOARD_LISTEN`.
    pub listen: Option<SocketAddr>,
    /// `--plugins` / `SWITCHBOARD_PLUGINS`.
    pub plugins: Option<PathBuf>,
    /// `--config` / `SWITCHBOARD_CONFIG`.
    pub config: Option<PathBuf>,
    /// `SWITCHBOARD_SECRET`, comma-separated.
    pub secret: Option<String>,
    /// `--insecure-no-verify`.
    pub insecure_no_verify: bool,
    /// `--tool-calls-budget-ms`.
    pub tool_calls_budget_ms: Option<u64>,
    /// `--max-body-bytes`.
    pub max_body_bytes: Option<usize>,
    /// `--no-watch`.
    pub no_watch: bool,
    /// `SWITCHBOARD_MCP_TOKENS`, comma-separated.
    pub mcp_tokens: Option<String>,
    /// `SWITCHBOARD_ADMIN_TOKEN`.
    pub admin_token: Option<String>,
    /// `--admin-listen` was given.
    pub separate_admin: bool,
    /// `--header-read-timeout-ms`.
    pub header_read_timeout_ms: Option<u64>,
    /// `--idle-timeout-secs`.
    pub idle_timeout_secs: Option<u64>,
    /// `--max-connections`.
    pub max_connections: Option<usize>,
    /// `--data-dir` / `SWITCHBOARD_DATA`.
    pub data_dir: Option<PathBuf>,
}

/// Applies defaults < file < environment and flags.
pub fn resolve(overrides: &Overrides) -> anyhow::Result<(SocketAddr, Settings)> {
    let file = match &overrides.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let base_dir = overrides.config.as_deref().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    let listen =
        overrides.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default address"));
    let plugins_dir = match (&overrides.plugins, &file.plugins) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => base_dir.join(dir),
        (None, None) => base_dir.join("plugins"),
    };
    let call_log = call_log_settings(&file, overrides, &base_dir)?;
    let mut secrets = file.secrets;
    if let Some(env) = &overrides.secret {
        secrets.extend(env.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned));
    }
    let defaults = Settings::default();
    let assistant = AssistantSettings {
        budget: file.assistant_request.budget_ms.map(Duration::from_millis).unwrap_or(defaults.assistant.budget),
        routes: file.assistant_request.routes,
        inject_tools: file.assistant_request.inject_tools,
    };
    assistant.validate().map_err(|e| anyhow::anyhow!("config: {e}"))?;
    let dedup_defaults = DedupSettings::default();
    let dedup = file.dedup.enabled.then(|| DedupSettings {
        ttl: file.dedup.ttl_secs.map(Duration::from_secs).unwrap_or(dedup_defaults.ttl),
        max_entries: file.dedup.max_entries.unwrap_or(dedup_defaults.max_entries),
        max_bytes: file.dedup.max_bytes.unwrap_or(dedup_defaults.max_bytes),
        redis_url: file.dedup.redis_url.clone(),
    });
    let mut plugin_defaults = defaults.plugin_defaults;
    if let Some(ms) = file.plugin_timeout_ms {
        plugin_defaults.timeout = Duration::from_millis(ms);
    }
    plugin_defaults.fuel = file.plugin_fuel.or(plugin_defaults.fuel);
    if let Some(mib) = file.plugin_memory_mib {
        // Saturating: shifted, 2^44 MiB and more wrapped (2^44 MiB to 0 bytes).
        plugin_defaults.memory_bytes = mib.saturating_mul(1 << 20);
    }
    plugin_defaults.max_result_bytes = file.max_result_bytes.unwrap_or(plugin_defaults.max_result_bytes);
    plugin_defaults.max_concurrent_calls = file.plugin_max_concurrent_calls.or(plugin_defaults.max_concurrent_calls);
    for (name, value) in [
        ("plugin_max_concurrent_calls", file.plugin_max_concurrent_calls),
        ("max_tool_calls_per_request", file.max_tool_calls_per_request),
    ] {
        anyhow::ensure!(value != Some(0), "config: {name} must be at least 1");
    }
    let header_read_timeout_ms = overrides.header_read_timeout_ms.or(file.header_read_timeout_ms);
    let idle_timeout_secs = overrides.idle_timeout_secs.or(file.idle_timeout_secs);
    let max_connections = overrides.max_connections.or(file.max_connections);
    for (name, value) in [
        ("header_read_timeout_ms", header_read_timeout_ms),
        ("idle_timeout_secs", idle_timeout_secs),
        ("max_connections", max_connections.map(|n| n as u64)),
    ] {
        anyhow::ensure!(value != Some(0), "config: {name} must be at least 1");
    }
    let mut mcp_tokens = file.mcp.tokens;
    if let Some(env) = &overrides.mcp_tokens {
        mcp_tokens.extend(env.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned));
    }
    anyhow::ensure!(file.mcp.call_timeout_ms != Some(0), "config: [mcp] call_timeout_ms must be at least 1");
    let mcp = McpSettings {
        enabled: file.mcp.enabled,
        tokens: mcp_tokens,
        allowed_origins: file.mcp.allowed_origins,
        call_timeout: file.mcp.call_timeout_ms.map(Duration::from_millis),
    };
    let compile_defaults = defaults.compile;
    let compile = CompileSettings {
        tiered: file.compile.tiered.unwrap_or(compile_defaults.tiered),
        baseline_min_bytes: file
            .compile
            .baseline_min_kib
            .map(|kib| kib.saturating_mul(1 << 10))
            .unwrap_or(compile_defaults.baseline_min_bytes),
        background_threads: file.compile.background_threads.unwrap_or(compile_defaults.background_threads),
    };
    let settings = Settings {
        call_log,
        compile,
        cache_dir: Some(file.cache_dir.map(|d| base_dir.join(d)).unwrap_or_else(|| plugins_dir.join(".cache"))),
        plugins_dir,
        secrets,
        insecure_no_verify: overrides.insecure_no_verify,
        max_body_bytes: overrides.max_body_bytes.or(file.max_body_bytes).unwrap_or(defaults.max_body_bytes),
        timestamp_tolerance: file
            .timestamp_tolerance_secs
            .map(Duration::from_secs)
            .unwrap_or(defaults.timestamp_tolerance),
        tool_calls_budget: overrides
            .tool_calls_budget_ms
            .or(file.tool_calls_budget_ms)
            .map(Duration::from_millis)
            .unwrap_or(defaults.tool_calls_budget),
        plugin_defaults,
        watch: !overrides.no_watch,
        public_url: file.public_url,
        assistant,
        dedup,
        event_queue_capacity: file.event_queue_capacity.unwrap_or(defaults.event_queue_capacity),
        max_tool_calls_per_request: file.max_tool_calls_per_request.unwrap_or(defaults.max_tool_calls_per_request),
        mcp,
        admin_token: overrides.admin_token.clone().filter(|t| !t.trim().is_empty()),
        separate_admin: overrides.separate_admin,
        header_read_timeout: header_read_timeout_ms.map(Duration::from_millis).unwrap_or(defaults.header_read_timeout),
        idle_timeout: idle_timeout_secs.map(Duration::from_secs).unwrap_or(defaults.idle_timeout),
        max_connections: max_connections.unwrap_or(defaults.max_connections),
        shutdown_delay: file.shutdown_delay_ms.map(Duration::from_millis).unwrap_or(defaults.shutdown_delay),
        shutdown_grace: file.shutdown_grace_ms.map(Duration::from_millis).unwrap_or(defaults.shutdown_grace),
    };
    Ok((listen, settings))
}

/// The call log as the file and flags set it: `None` when `[call_log]
/// enabled = false`.
fn call_log_settings(
    file: &FileConfig,
    overrides: &Overrides,
    base_dir: &Path,
) -> anyhow::Result<Option<CallLogSettings>> {
    let config = &file.call_log;
    if !config.enabled {
        return Ok(None);
    }
    let mut settings = match &config.database_url {
        Some(url) => CallLogSettings::postgres(url.clone()),
        None => CallLogSettings::sqlite(match (&overrides.data_dir, &file.data_dir) {
            (Some(dir), _) => dir.clone(),
            (None, Some(dir)) => base_dir.join(dir),
            (None, None) => base_dir.join(DEFAULT_DATA_DIR),
        }),
    };
    anyhow::ensure!(config.queue_capacity != Some(0), "config: [call_log] queue_capacity must be at least 1");
    settings.retention_days = config.retention_days.unwrap_or(settings.retention_days);
    settings.capture_arguments = config.capture_arguments.unwrap_or(settings.capture_arguments);
    settings.capture_results = config.capture_results.unwrap_or(settings.capture_results);
    settings.capture_reports = config.capture_reports.unwrap_or(settings.capture_reports);
    settings.max_value_bytes = config.max_value_bytes.unwrap_or(settings.max_value_bytes);
    settings.queue_capacity = config.queue_capacity.unwrap_or(settings.queue_capacity);
    Ok(Some(settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nplugins = \"tools\"\nsecrets = [\"a\"]\ntool_calls_budget_ms = 5000\n",
        )
        .unwrap();
        let (listen, settings) = resolve(&Overrides {
            config: Some(path.clone()),
            secret: Some("b, c".into()),
            tool_calls_budget_ms: Some(2000),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(listen.port(), 9000);
        assert_eq!(settings.plugins_dir, dir.path().join("tools"));
        assert_eq!(settings.secrets, ["a", "b", "c"]);
        assert_eq!(settings.tool_calls_budget, Duration::from_secs(2));
        assert_eq!(settings.max_body_bytes, 1 << 20);
    }

    #[test]
    fn shutdown_times_come_from_the_file_or_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, "shutdown_grace_ms = 2500\nshutdown_delay_ms = 300\n").unwrap();
        let (_, defaults) = resolve(&Overrides::default()).unwrap();
        assert_eq!((defaults.shutdown_grace, defaults.shutdown_delay), (Duration::from_secs(10), Duration::ZERO));
        let (_, from_file) = resolve(&Overrides { config: Some(path), ..Default::default() }).unwrap();
        assert_eq!(from_file.shutdown_grace, Duration::from_millis(2500));
        assert_eq!(from_file.shutdown_delay, Duration::from_millis(300));
    }

    #[test]
    fn compile_tiers_come_from_the_file_or_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, "[compile]\ntiered = false\nbaseline_min_kib = 4096\nbackground_threads = 0\n").unwrap();
        let (_, defaults) = resolve(&Overrides::default()).unwrap();
        assert_eq!(
            defaults.compile,
            CompileSettings { tiered: true, baseline_min_bytes: 1 << 20, background_threads: 1 }
        );
        let (_, from_file) = resolve(&Overrides { config: Some(path.clone()), ..Default::default() }).unwrap();
        assert_eq!(
            from_file.compile,
            CompileSettings { tiered: false, baseline_min_bytes: 4 << 20, background_threads: 0 }
        );
        std::fs::write(&path, "[compile]\nbaseline_min_mib = 4\n").unwrap();
        let error = resolve(&Overrides { config: Some(path), ..Default::default() }).unwrap_err();
        assert!(format!("{error:#}").contains("unknown field `baseline_min_mib`"), "{error:#}");
    }

    #[test]
    fn connection_limits_come_from_flags_file_or_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, "header_read_timeout_ms = 2500\nidle_timeout_secs = 30\nmax_connections = 500\n")
            .unwrap();
        let (_, defaults) = resolve(&Overrides::default()).unwrap();
        assert_eq!(defaults.header_read_timeout, Duration::from_secs(10));
        assert_eq!(defaults.idle_timeout, Duration::from_secs(75));
        assert_eq!(defaults.max_connections, 20_000);
        let (_, from_file) = resolve(&Overrides { config: Some(path.clone()), ..Default::default() }).unwrap();
        assert_eq!(from_file.header_read_timeout, Duration::from_millis(2500));
        assert_eq!(from_file.idle_timeout, Duration::from_secs(30));
        assert_eq!(from_file.max_connections, 500);
        let (_, flagged) = resolve(&Overrides {
            config: Some(path.clone()),
            header_read_timeout_ms: Some(700),
            idle_timeout_secs: Some(5),
            max_connections: Some(64),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            (flagged.header_read_timeout, flagged.idle_timeout, flagged.max_connections),
            (Duration::from_millis(700), Duration::from_secs(5), 64)
        );
        let zero = resolve(&Overrides { max_connections: Some(0), ..Default::default() }).unwrap_err().to_string();
        assert!(zero.contains("max_connections must be at least 1"), "{zero}");
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nsecret = \"x\"\n").unwrap();
        let err = resolve(&Overrides { config: Some(path), ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("unknown field `secret`"), "{err}");
    }

    #[test]
    fn a_huge_plugin_memory_mib_saturates_instead_of_wrapping() {
        // Found by fuzz/ (the config target): `plugin_memory_mib << 20`
        // wrapped 2^44 MiB to 0 bytes.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, "plugin_memory_mib = 17592186044416\n").unwrap();
        let (_, settings) = resolve(&Overrides { config: Some(path), ..Default::default() }).unwrap();
        assert_eq!(settings.plugin_defaults.memory_bytes, usize::MAX);
    }
}
