//! The command line: clap types (no logic: the doc comments are the help),
//! [`config`] for the configuration file, and [`commands`] for what each
//! subcommand does. All of it is the binary's; the library sees none of it.

pub mod calls;
pub mod commands;
pub mod config;
pub mod new;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use config::{
    ENV_ADMIN_LISTEN, ENV_ADMIN_TOKEN, ENV_CONFIG, ENV_DATA, ENV_LISTEN, ENV_LOG_FORMAT, ENV_MCP_TOKENS, ENV_PLUGINS,
    ENV_SECRET,
};

/// Switchboard: verified voice-AI webhooks in, sandboxed WebAssembly plugin results out.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// How log lines (on stderr) look: `text` for people, `json` (one
    /// object a line) for log collectors. Colour only when stderr is a
    /// terminal. RUST_LOG chooses what is logged.
    #[arg(long, global = true, env = ENV_LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The look of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line per event, for people.
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve webhooks, with the plugins of a folder.
    Serve(ServeArgs),
    /// Serve the plugins' tools to an MCP client over stdin and stdout.
    ///
    /// For clients that launch their servers (desktop assistants, IDEs): the
    /// same tools as `serve`, hot-reloaded. Logs go to stderr only.
    Mcp(McpArgs),
    /// Run one tool call locally, without HTTP: for testing a plugin.
    Call(CallArgs),
    /// Print the loaded tools in the platform's `llm_config.tools` shape.
    Tools(PluginArgs),
    /// Load the configuration and every plugin, report problems, and exit.
    ///
    /// Exit status 0 when everything loads, 1 when a plugin fails, 2 on a
    /// configuration error.
    Check(PluginArgs),
    /// Compile every plugin's optimised code into the code cache, and exit.
    ///
    /// For building an image or a release directory: a server started on the
    /// same cache then loads every plugin optimised at once, and never
    /// compiles on the request path. The cache must be made by the same
    /// Switchboard build on a machine with the same CPU features, or the
    /// server compiles again. Exit status as for `check`.
    Compile(CompileArgs),
    /// Print the headers that sign a body as the platform would.
    Sign(SignArgs),
    /// Sign a body as the platform would and POST it to a Switchboard.
    Send(SendArgs),
    /// Show the call log: recent calls, or one call's whole story.
    ///
    /// Reads the database the server writes (the data folder's SQLite file,
    /// or `[call_log] database_url`); the server may be running.
    Calls(CallsArgs),
    /// Create a plugin project in a folder of its own: a working tool, its
    /// JSON Schema, a manifest, `build.sh`, unit tests and a README.
    ///
    /// The tool, named NAME, answers `{"name": "Ada"}` with
    /// `{"message": "Hello, Ada!"}`. `./build.sh` installs the language's
    /// pinned toolchain inside the project and writes `dist/NAME.wasm` and
    /// `dist/NAME.toml`; `switchboard call NAME '{"name": "Ada"}' --plugins
    /// NAME/dist` calls it.
    New(NewArgs),
}

/// `switchboard new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's language.
    pub lang: Lang,
    /// The plugin's name: the tool's, the folder's and the package's
    /// (lower-case letters, digits and underscores).
    pub name: String,
    /// Create NAME/ in this folder [default: the current one].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The languages `switchboard new` writes projects in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust, with the plugin SDK (a component).
    Rust,
    /// JavaScript, with componentize-js (a component).
    #[value(alias = "javascript")]
    Js,
    /// TypeScript, with tsc and componentize-js (a component).
    #[value(alias = "typescript")]
    Ts,
    /// Python, with componentize-py (a component).
    #[value(alias = "py")]
    Python,
    /// Go, as a WASI command (GOOS=wasip1).
    Go,
}

/// Where the plugins and configuration are.
#[derive(Debug, Args, Clone)]
pub struct PluginArgs {
    /// Plugins folder [default: `plugins` beside the config file, or ./plugins].
    #[arg(long, env = ENV_PLUGINS, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// Configuration file (TOML).
    #[arg(long, env = ENV_CONFIG, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `switchboard compile`.
#[derive(Debug, Args)]
pub struct CompileArgs {
    #[command(flatten)]
    pub plugins: PluginArgs,
    /// Code cache folder to fill [default: the configuration's `cache_dir`, or PLUGINS/.cache].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// `switchboard serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = ENV_LISTEN, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub plugins: PluginArgs,
    /// Accept webhooks without checking their signature.
    ///
    /// WARNING: anyone who can reach the port can then call your tools. Only
    /// for local experiments; Switchboard says so at start and on every request.
    #[arg(long)]
    pub insecure_no_verify: bool,
    /// Time from a tool-calls request's arrival to its answer, in ms [default: 9000].
    #[arg(long, value_name = "MS")]
    pub tool_calls_budget_ms: Option<u64>,
    /// Do not watch the plugins folder; load plugins once at start.
    #[arg(long)]
    pub no_watch: bool,
    /// Development: no duplicate suppression (the same request sent again
    /// runs the new plugin version instead of replaying the first answer).
    /// Reloads are logged as they start and end in every mode.
    #[arg(long, conflicts_with = "no_watch")]
    pub dev: bool,
    /// Largest accepted webhook body, in bytes [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Webhook secret(s), comma-separated. Prefer the environment variable.
    #[arg(long, env = ENV_SECRET, hide_env_values = true, value_name = "SECRET")]
    pub secret: Option<String>,
    /// Bearer tokens for the MCP door at /mcp, comma-separated. Without any,
    /// only local clients may use it. Prefer the environment variable.
    #[arg(long, env = ENV_MCP_TOKENS, hide_env_values = true, value_name = "TOKENS")]
    pub mcp_tokens: Option<String>,
    /// Serve the operator endpoints (/metrics, /tools, /plugins) on this
    /// address instead of the main one (/healthz and /readyz stay on both).
    #[arg(long, env = ENV_ADMIN_LISTEN, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Token that lets clients off this machine use the operator endpoints
    /// (`Authorization: Bearer <token>`); without it they answer local
    /// clients only. Prefer the environment variable.
    #[arg(long, env = ENV_ADMIN_TOKEN, hide_env_values = true, value_name = "TOKEN")]
    pub admin_token: Option<String>,
    /// Time a client gets to send a request's headers, and then again its body, in ms [default: 10000].
    #[arg(long, value_name = "MS")]
    pub header_read_timeout_ms: Option<u64>,
    /// Time a kept-alive connection may wait for its next request, in seconds [default: 75].
    #[arg(long, value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Most connections open at once; more wait until one closes [default: 20000].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Folder for the call log's database [default: the configuration's `data_dir`, or ./data].
    #[arg(long, env = ENV_DATA, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `switchboard calls`.
#[derive(Debug, Args)]
pub struct CallsArgs {
    /// Show this call's story: every webhook and tool call, in order.
    #[arg(long, value_name = "ID")]
    pub call: Option<String>,
    /// Calls with a tool call of this tool.
    #[arg(long, value_name = "NAME")]
    pub tool: Option<String>,
    /// Calls with a failed tool call (error, timeout, invalid arguments).
    #[arg(long, conflicts_with = "outcome")]
    pub errors: bool,
    /// Calls with a tool call of this outcome: ok, error, timeout,
    /// invalid_arguments, duplicate, async, failed.
    #[arg(long, value_name = "OUTCOME")]
    pub outcome: Option<String>,
    /// Calls from or to this number.
    #[arg(long, value_name = "NUMBER")]
    pub number: Option<String>,
    /// Calls active since this time (RFC 3339, or ms since the epoch).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Most calls to list [default: 20].
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Print JSON (the API's shapes) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The server's data folder [default: the configuration's `data_dir`, or ./data].
    #[arg(long, env = ENV_DATA, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (TOML), for `data_dir` or `[call_log] database_url`.
    #[arg(long, env = ENV_CONFIG, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `switchboard mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    #[command(flatten)]
    pub plugins: PluginArgs,
    /// Do not watch the plugins folder; load plugins once at start.
    #[arg(long)]
    pub no_watch: bool,
}

/// `switchboard call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The tool to call.
    pub tool: String,
    /// Arguments as a JSON object.
    #[arg(default_value = "{}")]
    pub arguments: String,
    #[command(flatten)]
    pub plugins: PluginArgs,
    /// The caller's number to put in the call context.
    #[arg(long, value_name = "E164")]
    pub customer_number: Option<String>,
    /// The assistant metadata (JSON) to put in the call context.
    #[arg(long, value_name = "JSON")]
    pub metadata: Option<String>,
}

/// `switchboard sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// File holding the exact body to sign; `-` for stdin.
    pub body: PathBuf,
    /// The webhook secret.
    #[arg(long, env = ENV_SECRET, hide_env_values = true)]
    pub secret: String,
    /// Unix timestamp to sign with [default: now].
    #[arg(long)]
    pub timestamp: Option<u64>,
    /// Print `-H 'Name: value'` arguments for curl instead of header lines.
    #[arg(long)]
    pub curl: bool,
}

/// `switchboard send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// File holding the body to send (for example a spec fixture); `-` for stdin.
    pub body: PathBuf,
    /// The webhook secret (the first one, when several are comma-separated).
    #[arg(long, env = ENV_SECRET, hide_env_values = true)]
    pub secret: String,
    /// Where to send it.
    #[arg(long, default_value = "http://127.0.0.1:8080/webhook")]
    pub url: String,
}
