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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};

use crate::capabilities::{
    AllowedHost, DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_MAX_RESPONSE_BYTES, Grants, HttpGrants, TrustedRoots,
    ValueSource, Values,
};
use crate::runtime::{Limits, ToolDefinition};

/// Highest `[http] max_concurrent_requests` a manifest may set.
const MAX_CONCURRENT_REQUESTS: usize = 256;

/// A parsed manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Longest a call may take, in milliseconds (still capped by the request's budget).
    pub timeout_ms: Option<u64>,
    /// Linear memory for the whole instance, in MiB.
    pub memory_mib: Option<usize>,
    /// Fuel per call (about one unit per WebAssembly instruction); needs the
    /// runtime's fuel metering.
    pub fuel: Option<u64>,
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
pub struct HttpSection {
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
    /// public ones (an internal CA), relative to the plugins folder.
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
pub struct ManifestTool {
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
pub struct ValueKey(String);

impl TryFrom<String> for ValueKey {
    type Error = String;

    fn try_from(key: String) -> Result<Self, String> {
        let ok = (1..=128).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok { Ok(Self(key)) } else { Err(format!("invalid key {key:?}: use letters, digits, `_`, `-` and `.`")) }
    }
}

impl Manifest {
    /// Parses manifest text; errors name the line and the reason.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// The limits for calls to this plugin, starting from `defaults`.
    pub fn limits(&self, defaults: Limits) -> Limits {
        Limits {
            timeout: self.timeout_ms.map(Duration::from_millis).unwrap_or(defaults.timeout),
            memory_bytes: self.memory_mib.map(|m| m << 20).unwrap_or(defaults.memory_bytes),
            fuel: self.fuel.or(defaults.fuel),
            ..defaults
        }
    }

    /// What the manifest grants, reading `{ env = ... }` values through `env`
    /// (the host environment, in production) and files it names (`ca_file`)
    /// relative to `dir`, the plugins folder.
    pub fn grants(&self, dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Grants, String> {
        let keys = |map: &BTreeMap<ValueKey, ValueSource>| -> BTreeMap<String, ValueSource> {
            map.iter().map(|(k, v)| (k.0.clone(), v.clone())).collect()
        };
        let max_concurrent_requests = self.http.max_concurrent_requests.unwrap_or(DEFAULT_MAX_CONCURRENT_REQUESTS);
        if !(1..=MAX_CONCURRENT_REQUESTS).contains(&max_concurrent_requests) {
            return Err(format!(
                "[http] max_concurrent_requests = {max_concurrent_requests}: use 1 to {MAX_CONCURRENT_REQUESTS}"
            ));
        }
        let extra_roots = match &self.http.ca_file {
            Some(file) => TrustedRoots::from_pem_file(&dir.join(file)).map_err(|e| format!("[http] ca_file: {e}"))?,
            None => TrustedRoots::default(),
        };
        Ok(Grants {
            http: HttpGrants {
                allowed_hosts: self.http.allowed_hosts.clone(),
                max_response_bytes: self.http.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
                max_concurrent_requests,
                extra_roots,
            },
            values: Values::resolve(&keys(&self.config), &keys(&self.secrets), env)?,
        })
    }

    /// Files besides the plugin and this manifest that loading the plugin
    /// reads (the `[http] ca_file`), resolved against `dir`, the plugins
    /// folder. Hot reload watches them.
    pub fn files_read(&self, dir: &Path) -> Vec<PathBuf> {
        self.http.ca_file.iter().map(|file| dir.join(file)).collect()
    }

    /// Tool definitions for a command plugin named `plugin`: the manifest's
    /// list, or one tool named after the plugin.
    pub fn command_tools(&self, plugin: &str) -> Vec<ToolDefinition> {
        if self.tools.is_empty() {
            return vec![ToolDefinition {
                name: plugin.to_owned(),
                description: String::new(),
                parameters_schema: r#"{"type":"object"}"#.to_owned(),
                is_async: false,
                async_response: None,
            }];
        }
        self.tools
            .iter()
            .map(|t| ToolDefinition {
                name: t.name.clone(),
                description: t.description.clone().unwrap_or_default(),
                parameters_schema: match &t.parameters {
                    Some(table) => serde_json::to_string(table).expect("TOML tables serialize to JSON"),
                    None => r#"{"type":"object"}"#.to_owned(),
                },
                is_async: t.is_async,
                async_response: t.async_response.clone(),
            })
            .collect()
    }

    /// Applies `[[tools]]` options to the tools a component listed. Every
    /// entry must name one of them.
    pub fn apply_to_component_tools(&self, tools: &mut [ToolDefinition]) -> Result<(), String> {
        for option in &self.tools {
            let offered = tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
            let Some(tool) = tools.iter_mut().find(|t| t.name == option.name) else {
                return Err(format!(
                    "[[tools]] names {:?}, which this plugin does not offer (it offers: {offered})",
                    option.name,
                ));
            };
            if option.parameters.is_some() {
                return Err(format!(
                    "[[tools]] {:?}: `parameters` is only for command plugins; a component describes its own",
                    option.name
                ));
            }
            if let Some(description) = &option.description {
                tool.description = description.clone();
            }
            tool.is_async = option.is_async;
            tool.async_response = option.async_response.clone();
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for AllowedHost {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// `{ host = "...", allow_private = true }`.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            host: String,
            #[serde(default)]
            allow_private: bool,
        }

        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = AllowedHost;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#""scheme://host[:port]" or { host = "scheme://host[:port]", allow_private = true }"#)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<AllowedHost, E> {
                AllowedHost::parse(text, false).map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AllowedHost, A::Error> {
                let entry = Entry::deserialize(MapAccessDeserializer::new(map))?;
                AllowedHost::parse(&entry.host, entry.allow_private).map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

impl<'de> Deserialize<'de> for ValueSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// `{ env = "NAME", default = "..." }`.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FromEnv {
            env: String,
            default: Option<String>,
        }

        struct SourceVisitor;
        impl<'de> Visitor<'de> for SourceVisitor {
            type Value = ValueSource;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a string, or { env = "VARIABLE" } (optionally with default = "...")"#)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ValueSource, E> {
                Ok(ValueSource::Literal(text.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ValueSource, A::Error> {
                let FromEnv { env, default } = FromEnv::deserialize(MapAccessDeserializer::new(map))?;
                if env.is_empty() || env.contains('=') || env.contains('\0') {
                    return Err(de::Error::custom(format!("{env:?} is not an environment variable name")));
                }
                Ok(ValueSource::Env { var: env, default })
            }
        }

        deserializer.deserialize_any(SourceVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::{Host, HostDecision, Scheme};

    #[test]
    fn parses_limits_and_tools() {
        let m = Manifest::parse(
            r#"
            timeout_ms = 1500
            memory_mib = 32
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
        let tools = m.command_tools("calc");
        assert_eq!(tools[0].name, "add");
        assert_eq!(tools[0].parameters_schema, r#"{"properties":{"a":{"type":"number"}},"type":"object"}"#);
    }

    #[test]
    fn defaults_and_errors() {
        let m = Manifest::parse("").unwrap();
        assert_eq!(m.limits(Limits::default()), Limits::default());
        assert_eq!(m.command_tools("greet")[0].name, "greet");
        assert_eq!(m.grants(Path::new("."), &|_| None).unwrap(), Grants::default(), "no manifest, no capabilities");
        let err = Manifest::parse("timeout_ms = 10\nallowed = 3\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("unknown field `allowed`"), "{err}");
    }

    #[test]
    fn parses_every_grant() {
        let m = Manifest::parse(
            r#"
            [http]
            allowed_hosts = [
                "https://api.cal.example",
                { host = "http://calendar.internal:8080", allow_private = true },
            ]
            max_response_bytes = 4096
            max_concurrent_requests = 3

            [config]
            base_url = "https://api.cal.example/v2"
            region = { env = "REGION", default = "eu" }

            [secrets]
            api_key = { env = "CAL_KEY" }
            "#,
        )
        .unwrap();
        let env = |name: &str| (name == "CAL_KEY").then(|| "sk_123456".to_owned());
        let grants = m.grants(Path::new("."), &env).unwrap();
        assert_eq!(grants.http.max_response_bytes, 4096);
        assert_eq!(grants.http.max_concurrent_requests, 3);
        let host = |n: &str| Host::Name(n.into());
        assert_eq!(grants.http.decide(Scheme::Https, &host("api.cal.example"), 443), HostDecision::Public);
        assert_eq!(grants.http.decide(Scheme::Http, &host("calendar.internal"), 8080), HostDecision::AnyAddress);
        assert_eq!(grants.http.decide(Scheme::Http, &host("api.cal.example"), 80), HostDecision::Denied);
        assert_eq!(grants.values.config["base_url"], "https://api.cal.example/v2");
        assert_eq!(grants.values.config["region"], "eu");
        assert_eq!(grants.values.secrets["api_key"].expose(), "sk_123456");
        let err = m.grants(Path::new("."), &|_| None).unwrap_err();
        assert!(err.contains("secret `api_key`") && err.contains("CAL_KEY"), "{err}");

        let none = Manifest::parse("[http]\nmax_concurrent_requests = 0\n").unwrap();
        let err = none.grants(Path::new("."), &|_| None).unwrap_err();
        assert_eq!(err, "[http] max_concurrent_requests = 0: use 1 to 256");
        let default = Manifest::parse("[http]\n").unwrap().grants(Path::new("."), &|_| None).unwrap();
        assert_eq!(default.http.max_concurrent_requests, DEFAULT_MAX_CONCURRENT_REQUESTS);
    }

    #[test]
    fn grant_errors_name_the_line_and_the_reason() {
        // (manifest, line, part of the error)
        let cases: &[(&str, usize, &str)] = &[
            ("[http]\nallowed_hosts = [\"api.example.com\"]\n", 2, "scheme://host[:port]"),
            ("[http]\nallowed_hosts = [\"https://a.example.com/path\"]\n", 2, "without a path"),
            ("[http]\nallowed_hosts = [{ host = \"https://a.b\", private = true }]\n", 2, "unknown field `private`"),
            ("[http]\nallowed_hosts = [42]\n", 2, "scheme://host[:port]"),
            ("[http]\nallow = []\n", 2, "unknown field `allow`"),
            ("[config]\nurl = { var = \"X\" }\n", 2, "unknown field `var`"),
            ("[config]\nurl = 3\n", 2, "a string, or { env"),
            ("[secrets]\n\"bad key\" = \"x\"\n", 2, "invalid key"),
            ("\n\n[secrets]\nk = { env = \"\" }\n", 4, "not an environment variable name"),
        ];
        for (text, line, needle) in cases {
            let err = Manifest::parse(text).unwrap_err();
            assert!(err.contains(&format!("line {line}")) && err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn tool_options_apply_to_component_tools() {
        let tool = |name: &str| ToolDefinition {
            name: name.into(),
            description: "own".into(),
            parameters_schema: "{}".into(),
            is_async: false,
            async_response: None,
        };
        let mut tools = vec![tool("book"), tool("cancel")];
        let m = Manifest::parse("[[tools]]\nname = \"book\"\ndescription = \"Book a slot\"\nasync = true\n").unwrap();
        m.apply_to_component_tools(&mut tools).unwrap();
        assert_eq!((tools[0].description.as_str(), tools[1].description.as_str()), ("Book a slot", "own"));
        assert!(tools[0].is_async && !tools[1].is_async);
        let unknown = Manifest::parse("[[tools]]\nname = \"nope\"\n").unwrap();
        let err = unknown.apply_to_component_tools(&mut tools).unwrap_err();
        assert!(err.contains("\"nope\"") && err.contains("book, cancel"), "{err}");
        let schema = Manifest::parse("[[tools]]\nname = \"book\"\nparameters = {}\n").unwrap();
        assert!(schema.apply_to_component_tools(&mut tools).unwrap_err().contains("only for command plugins"));
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
}
