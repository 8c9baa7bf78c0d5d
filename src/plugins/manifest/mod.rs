//! The optional manifest `NAME.toml` beside a plugin's `NAME.wasm`.
//!
//! A manifest sets the plugin's limits, grants its capabilities (outbound
//! HTTP hosts, configuration values, secrets), and sets per-tool options
//! (for a command plugin, which cannot describe itself, it declares the
//! tools). Without one a plugin gets safe defaults and no capabilities.
//! Unknown keys are errors, so a typo never silently grants or drops
//! anything; errors name the line and the reason.
//!
//! ```toml
//! timeout_ms = 3000
//! memory_mib = 64
//! max_result_bytes = 65536      # largest result (default: the config's, 1 MiB)
//! max_concurrent_calls = 32     # calls of this plugin at once; more wait
//! max_instance_reuse = 256      # calls one instance serves (default 1: a fresh one each)
//! instance_idle_ms = 10000      # how long an idle instance is kept for reuse
//!
//! [http]
//! allowed_hosts = [
//!     "https://api.cal.example",
//!     { host = "http://calendar.internal:8080", allow_private = true },
//! ]
//! max_response_bytes = 262144
//! max_concurrent_requests = 4   # per call; more wait for a place
//! ca_file = "internal-ca.pem"   # trusted for https besides the public CAs
//!
//! [config]
//! base_url = "https://api.cal.example/v2"
//! region = { env = "CALENDAR_REGION", default = "eu" }
//!
//! [secrets]
//! api_key = { env = "CALENDAR_API_KEY" }
//!
//! [[tools]]
//! name = "book_appointment"
//! description = "Book a slot (overrides the description the plugin gives)"
//! ```

//!
//! This module is the TOML schema and the limits; [`grants`] resolves what a
//! manifest grants (reading environment variables and files), and [`tools`]
//! builds the tool definitions it declares or adjusts.

mod files;
mod grants;
mod tools;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::sandbox::Reuse;
use crate::sandbox::capabilities::{AllowedHost, ValueSource};
use crate::types::Limits;

/// A parsed manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    /// Longest a call may take, in milliseconds (still capped by the request's budget).
    pub timeout_ms: Option<u64>,
    /// Linear memory for the whole instance, in MiB.
    pub memory_mib: Option<usize>,
    /// Fuel per call (about one unit per WebAssembly instruction); needs the
    /// runtime's fuel metering.
    pub fuel: Option<u64>,
    /// Largest result (or error message) of a call, in bytes.
    pub max_result_bytes: Option<usize>,
    /// Most calls of this plugin running at once; more wait for a place.
    pub max_concurrent_calls: Option<usize>,
    /// Calls one instance may serve, one after another (default 1: a fresh
    /// instance per call). Above 1, the plugin's memory and globals carry
    /// over from one call, and one caller, to the next.
    pub max_instance_reuse: Option<NonZeroU32>,
    /// How long an instance kept for reuse may wait idle, in milliseconds
    /// (default 10,000).
    pub instance_idle_ms: Option<u64>,
    /// `[http]`: outbound HTTP grants.
    #[serde(default)]
    pub http: HttpSection,
    /// `[config]`: configuration values the plugin reads through `wasi:config`.
    #[serde(default)]
    pub config: BTreeMap<ValueKey, ValueSource>,
    /// `[secrets]`: like `[config]`, but never logged or shown.
    #[serde(default)]
    pub secrets: BTreeMap<ValueKey, ValueSource>,
    /// `[[tools]]`: per-tool options; for a command plugin also its tool list.
    #[serde(default)]
    pub tools: Vec<ManifestTool>,
}

/// The `[http]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpSection {
    /// Where the plugin may send requests: `"scheme://host[:port]"` or
    /// `{ host = "scheme://host[:port]", allow_private = true }`.
    #[serde(default)]
    pub allowed_hosts: Vec<AllowedHost>,
    /// Largest response body, in bytes (default 1 MiB).
    pub max_response_bytes: Option<usize>,
    /// Most requests one call may have open at once (default 8, at most
    /// 256); more wait for a place.
    pub max_concurrent_requests: Option<usize>,
    /// PEM file of certificate authorities trusted for `https` besides the
    /// public ones (an internal CA): a regular file of at most 1 MiB inside
    /// the plugins folder, named relative to it.
    pub ca_file: Option<PathBuf>,
}

impl HttpSection {
    /// The keys this table sets, in the order they are documented; empty
    /// when the manifest has no `[http]` table or an empty one.
    pub fn keys_set(&self) -> Vec<&'static str> {
        let Self { allowed_hosts, max_response_bytes, max_concurrent_requests, ca_file } = self;
        [
            ("allowed_hosts", !allowed_hosts.is_empty()),
            ("max_response_bytes", max_response_bytes.is_some()),
            ("max_concurrent_requests", max_concurrent_requests.is_some()),
            ("ca_file", ca_file.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }
}

/// One `[[tools]]` entry. For a command plugin the entries are its tools;
/// for a component they set options of tools it offers. Further per-tool
/// options are further optional fields here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ManifestTool {
    /// Function name.
    pub name: String,
    /// What it does, for the LLM. For a component, replaces the plugin's own description.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema of the arguments (a TOML table); an open object by
    /// default. Command plugins only: a component's schema is its own.
    #[serde(default)]
    pub parameters: Option<toml::Table>,
    /// Answer the platform at once with `async_response` and run the tool in
    /// the background, under the plugin's own timeout.
    #[serde(default, rename = "async")]
    pub is_async: bool,
    /// What the platform hears at once for an async tool.
    #[serde(default)]
    pub async_response: Option<String>,
}

/// A key of `[config]` or `[secrets]`: letters, digits, `_`, `-` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct ValueKey(String);

impl TryFrom<String> for ValueKey {
    type Error = String;

    fn try_from(key: String) -> Result<Self, String> {
        let ok = (1..=128).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok { Ok(Self(key)) } else { Err(format!("invalid key {key:?}: use letters, digits, `_`, `-` and `.`")) }
    }
}

impl Manifest {
    /// Parses manifest text; errors name the line, the column and the
    /// reason, and never quote the manifest (a line may hold a secret).
    pub fn parse(text: &str) -> Result<Self, String> {
        let manifest: Self = toml::from_str(text).map_err(|e| parse_error(text, &e))?;
        manifest.check_parameter_depth()?;
        Ok(manifest)
    }

    /// How the plugin's instances serve calls.
    pub fn reuse(&self) -> Reuse {
        let default = Reuse::default();
        Reuse {
            max_calls: self.max_instance_reuse.map_or(default.max_calls, NonZeroU32::get),
            idle_timeout: self.instance_idle_ms.map_or(default.idle_timeout, Duration::from_millis),
        }
    }

    /// The limits for calls to this plugin, starting from `defaults`.
    pub fn limits(&self, defaults: Limits) -> Limits {
        Limits {
            timeout: self.timeout_ms.map(Duration::from_millis).unwrap_or(defaults.timeout),
            // Saturating: shifted, 2^44 MiB and more wrapped (2^44 MiB to 0 bytes).
            memory_bytes: self.memory_mib.map(|m| m.saturating_mul(1 << 20)).unwrap_or(defaults.memory_bytes),
            fuel: self.fuel.or(defaults.fuel),
            max_result_bytes: self.max_result_bytes.unwrap_or(defaults.max_result_bytes),
            max_concurrent_calls: self.max_concurrent_calls.or(defaults.max_concurrent_calls),
            ..defaults
        }
    }
}

/// `line L, column C: reason`. toml's own rendering of an error quotes the
/// source line, and serde's reasons quote the value found (``invalid type:
/// string "sk_live_...", expected u64``); a manifest holds literal secrets,
/// and its errors are shown by `GET /plugins` and logged. So: the position,
/// and the reason without the values it quotes.
fn parse_error(text: &str, error: &toml::de::Error) -> String {
    let reason = unquote_values(error.message().trim());
    let Some(span) = error.span() else { return reason };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
    format!("line {line}, column {column}: {reason}")
}

/// `reason` with the values serde quotes (`string "..."`, ``integer `...` ``,
/// ``floating point `...` ``, ``character `...` ``) reduced to their kind.
fn unquote_values(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut rest = reason;
    loop {
        let found = [("string \"", '"'), ("integer `", '`'), ("floating point `", '`'), ("character `", '`')]
            .into_iter()
            .filter_map(|(opening, close)| rest.find(opening).map(|at| (at, opening, close)))
            .min_by_key(|&(at, ..)| at);
        let Some((at, opening, close)) = found else { break };
        out.push_str(&rest[..at]);
        out.push_str(opening[..opening.len() - 2].trim_end());
        let value = &rest[at + opening.len()..];
        // The value ends at its closing mark; a `"` inside a string is escaped (`\"`).
        let mut end = None;
        let mut escaped = false;
        for (i, c) in value.char_indices() {
            match c {
                '\\' if close == '"' && !escaped => escaped = true,
                c if c == close && !escaped => {
                    end = Some(i + 1);
                    break;
                }
                _ => escaped = false,
            }
        }
        match end {
            Some(end) => rest = &value[end..],
            // No closing mark: drop the rest rather than show part of a value.
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits_and_tools() {
        let m = Manifest::parse(
            r#"
            timeout_ms = 1500
            memory_mib = 32
            max_result_bytes = 4096
            max_concurrent_calls = 3
            [[tools]]
            name = "add"
            description = "Adds"
            parameters = { type = "object", properties = { a = { type = "number" } } }
            "#,
        )
        .unwrap();
        let limits = m.limits(Limits::default());
        assert_eq!(limits.timeout, Duration::from_millis(1500));
        assert_eq!(limits.memory_bytes, 32 << 20);
        assert_eq!((limits.max_result_bytes, limits.max_concurrent_calls), (4096, Some(3)));
        assert_eq!(m.tools[0].name, "add");
    }

    #[test]
    fn instance_reuse_is_opt_in() {
        assert_eq!(Manifest::parse("").unwrap().reuse(), Reuse::default());
        assert!(!Reuse::default().enabled(), "a fresh instance per call by default");
        let m = Manifest::parse("max_instance_reuse = 256\ninstance_idle_ms = 50\n").unwrap();
        assert_eq!(m.reuse(), Reuse { max_calls: 256, idle_timeout: Duration::from_millis(50) });
        let err = Manifest::parse("max_instance_reuse = 0\n").unwrap_err();
        assert!(err.starts_with("line 1, column 22: "), "{err}");
    }

    #[test]
    fn defaults_and_errors() {
        let m = Manifest::parse("").unwrap();
        assert_eq!(m.limits(Limits::default()), Limits::default());
        let err = Manifest::parse("timeout_ms = 10\nallowed = 3\n").unwrap_err();
        assert!(err.starts_with("line 2, column 1: unknown field `allowed`"), "{err}");
    }

    #[test]
    fn parse_errors_never_quote_the_manifest() {
        let secret = "sk_live_Q1w2E3r4T5y6";
        // (manifest, where the error is, part of the reason)
        let cases: &[(String, &str, &str)] = &[
            (format!("[secrets]\napi_key = \"{secret}\" trailing\n"), "line 2, column 34:", ""),
            (format!("timeout_ms = \"{secret}\"\n"), "line 1, column 14:", "invalid type: string, expected u64"),
            ("[secrets]\npin = 123456789012\n".to_owned(), "line 2, column 7:", "invalid type: integer, expected"),
            ("memory_mib = 1234567.5\n".to_owned(), "line 1, column 14:", "invalid type: floating point, expected"),
            (format!("[secrets]\n\"{secret}\" = 1\n"), "line 2, column", "invalid type: integer, expected"),
            (format!("[secrets]\nk = \"\"\"\n{secret}\n"), "line 4, column 1:", "invalid multiline basic string"),
        ];
        for (text, position, reason) in cases {
            let err = Manifest::parse(text).unwrap_err();
            assert!(err.starts_with(position) && err.contains(reason), "{text:?}: {err}");
            for secret in [secret, "123456789012", "1234567.5"] {
                assert!(!err.contains(&secret[..8]), "{text:?}: {err}");
            }
        }
        assert_eq!(unquote_values(r#"a string "x\"y" and integer `5`, then `z`"#), "a string and integer, then `z`");
    }

    #[test]
    fn keys_set_names_each_http_key_present() {
        assert!(Manifest::parse("").unwrap().http.keys_set().is_empty());
        assert!(Manifest::parse("[http]\n").unwrap().http.keys_set().is_empty());
        let all = Manifest::parse(
            "[http]\nca_file = \"ca.pem\"\nallowed_hosts = [\"https://a.example\"]\nmax_response_bytes = 1\nmax_concurrent_requests = 1\n",
        )
        .unwrap();
        assert_eq!(all.http.keys_set(), ["allowed_hosts", "max_response_bytes", "max_concurrent_requests", "ca_file"]);
    }

    #[test]
    fn a_huge_memory_mib_saturates_instead_of_wrapping() {
        // Found by fuzz/ (the manifest target): 2^44 MiB is 2^64 bytes, and
        // `memory_mib << 20` wrapped it to 0, so every call ran out of memory.
        for mib in [1 << 44, (1 << 44) + 1, i64::MAX as usize] {
            let m = Manifest::parse(&format!("memory_mib = {mib}\n")).unwrap();
            assert_eq!(m.limits(Limits::default()).memory_bytes, usize::MAX, "memory_mib = {mib}");
        }
        let m = Manifest::parse(&format!("memory_mib = {}\n", (1usize << 44) - 1)).unwrap();
        assert_eq!(m.limits(Limits::default()).memory_bytes, usize::MAX - ((1 << 20) - 1));
    }
}
