//! Configuration: defaults, then the TOML file, then environment and flags.
//!
//! Only the binary reads configuration; the library takes a finished
//! [`Settings`]. Names of environment variables live here, in one place.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use switchboard::{AssistantRoute, AssistantSettings, DedupSettings, Settings};

/// `SWITCHBOARD_LISTEN`: address to listen on.
pub const ENV_LISTEN: &str = "SWITCHBOARD_LISTEN";
/// `SWITCHBOARD_PLUGINS`: the plugins folder.
pub const ENV_PLUGINS: &str = "SWITCHBOARD_PLUGINS";
/// `SWITCHBOARD_CONFIG`: the TOML configuration file.
pub const ENV_CONFIG: &str = "SWITCHBOARD_CONFIG";
/// `SWITCHBOARD_SECRET`: webhook secret(s), comma-separated.
pub const ENV_SECRET: &str = "SWITCHBOARD_SECRET";

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
    /// Where the platform reaches this server; tool definitions then carry `url`.
    pub public_url: Option<String>,
    /// Events waiting for subscribing plugins before new ones are dropped (default 1024).
    pub event_queue_capacity: Option<usize>,
    /// `[assistant_request]`: how assistant-request is answered.
    #[serde(default)]
    pub assistant_request: AssistantRequestConfig,
    /// `[dedup]`: duplicate tool-call detection.
    #[serde(default)]
    pub dedup: DedupConfig,
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
    /// Share answers between replicas through Redis, e.g. `redis://127.0.0.1:6379/0`.
    pub redis_url: Option<String>,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self { enabled: true, ttl_secs: None, max_entries: None, redis_url: None }
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
        redis_url: file.dedup.redis_url.clone(),
    });
    let mut plugin_defaults = defaults.plugin_defaults;
    if let Some(ms) = file.plugin_timeout_ms {
        plugin_defaults.timeout = Duration::from_millis(ms);
    }
    plugin_defaults.fuel = file.plugin_fuel.or(plugin_defaults.fuel);
    if let Some(mib) = file.plugin_memory_mib {
        plugin_defaults.memory_bytes = mib << 20;
    }
    let settings = Settings {
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
    };
    Ok((listen, settings))
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
    fn unknown_keys_are_errors_with_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nsecret = \"x\"\n").unwrap();
        let err = resolve(&Overrides { config: Some(path), ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("unknown field `secret`"), "{err}");
    }
}
