//! Configuration values and secrets of one plugin: literal in its manifest,
//! or read from a named host environment variable when the plugin is loaded.
//!
//! A [`Secret`] never shows its value through `Debug` (it prints `***`), has
//! no `Display`, and is handed to the plugin only through `wasi:config` (or
//! the environment of a command plugin). The host never logs it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};

use super::redaction::Redactor;

/// A secret value. `Debug` prints `***`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value. Call this only to hand it to the plugin.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a value comes from, as written in the manifest: `"text"` or
/// `{ env = "NAME" }` (optionally with `default = "text"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    /// The value itself.
    Literal(String),
    /// A host environment variable, read when the plugin is loaded.
    Env {
        /// The variable's name.
        var: String,
        /// Used when the variable is not set.
        default: Option<String>,
    },
}

impl ValueSource {
    /// The value, reading the environment through `env`; `what` names the
    /// value in the error (``secret `api_key` ``).
    pub fn resolve(&self, what: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        match self {
            ValueSource::Literal(value) => Ok(value.clone()),
            ValueSource::Env { var, default } => env(var).or_else(|| default.clone()).ok_or_else(|| {
                format!("{what} reads the environment variable {var}, which is not set (or not valid UTF-8)")
            }),
        }
    }
}

/// A plugin's resolved configuration values and secrets. Keys are unique
/// across both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    /// `[config]`.
    pub config: BTreeMap<String, String>,
    /// `[secrets]`.
    pub secrets: BTreeMap<String, Secret>,
}

/// Secrets shorter than this are not redacted from output: replacing every
/// `abc` in a log line would garble it, and such a secret protects nothing.
const MIN_REDACTED_LEN: usize = 4;

impl Values {
    /// Resolves `config` and `secrets` sources; the first failure is the error.
    pub fn resolve(
        config: &BTreeMap<String, ValueSource>,
        secrets: &BTreeMap<String, ValueSource>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let mut values = Values::default();
        for (key, source) in config {
            values.config.insert(key.clone(), source.resolve(&format!("config value `{key}`"), env)?);
        }
        for (key, source) in secrets {
            if values.config.contains_key(key) {
                return Err(format!("`{key}` is both in [config] and in [secrets]; a key can only be one of them"));
            }
            values.secrets.insert(key.clone(), Secret::new(source.resolve(&format!("secret `{key}`"), env)?));
        }
        Ok(values)
    }

    /// Every key and value, secrets included, as the plugin sees them.
    pub fn exposed(&self) -> impl Iterator<Item = (&str, &str)> {
        let config = self.config.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        config.chain(self.secrets.iter().map(|(k, v)| (k.as_str(), v.expose())))
    }

    /// `text` with every secret value replaced by `***`, in every form it
    /// may take (as written, JSON-escaped, percent-encoded; in a JSON
    /// document, however escaped): see [`Redactor`].
    pub fn redact(&self, text: String) -> String {
        self.redactor().redact(text)
    }

    /// `text` redacted and cut to about `limit` bytes (`…` marks a cut); the
    /// cut is chosen before redacting and never falls inside a secret.
    pub fn redact_cut(&self, text: &str, limit: usize) -> String {
        self.redactor().redact_cut(text, limit)
    }

    /// What looks for this plugin's secret values (those of
    /// `MIN_REDACTED_LEN` characters or more).
    pub(crate) fn redactor(&self) -> Redactor {
        Redactor::new(self.secrets.values().map(Secret::expose).filter(|s| s.len() >= MIN_REDACTED_LEN))
    }

    /// Whether there is anything to redact.
    pub fn has_secrets(&self) -> bool {
        self.secrets.values().any(|s| s.expose().len() >= MIN_REDACTED_LEN)
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

    fn env(name: &str) -> Option<String> {
        match name {
            "CAL_KEY" => Some("sk_live_123456".into()),
            "REGION" => Some("eu".into()),
            _ => None,
        }
    }

    fn sources(pairs: &[(&str, ValueSource)]) -> BTreeMap<String, ValueSource> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn resolves_literals_and_environment() {
        let config = sources(&[
            ("base_url", ValueSource::Literal("https://cal.example.com".into())),
            ("region", ValueSource::Env { var: "REGION".into(), default: None }),
            ("tier", ValueSource::Env { var: "UNSET".into(), default: Some("free".into()) }),
        ]);
        let secrets = sources(&[("api_key", ValueSource::Env { var: "CAL_KEY".into(), default: None })]);
        let values = Values::resolve(&config, &secrets, &env).unwrap();
        assert_eq!(values.config["region"], "eu");
        assert_eq!(values.config["tier"], "free");
        assert_eq!(values.secrets["api_key"].expose(), "sk_live_123456");
        let all: Vec<_> = values.exposed().collect();
        assert!(all.contains(&("api_key", "sk_live_123456")) && all.contains(&("base_url", "https://cal.example.com")));
    }

    #[test]
    fn missing_variables_and_duplicate_keys_are_errors() {
        let secrets = sources(&[("api_key", ValueSource::Env { var: "NOPE".into(), default: None })]);
        let err = Values::resolve(&BTreeMap::new(), &secrets, &env).unwrap_err();
        assert_eq!(err, "secret `api_key` reads the environment variable NOPE, which is not set (or not valid UTF-8)");
        let both = sources(&[("k", ValueSource::Literal("v".into()))]);
        let err = Values::resolve(&both, &both, &env).unwrap_err();
        assert!(err.contains("both in [config] and in [secrets]"), "{err}");
    }

    #[test]
    fn secrets_never_show_through_debug_and_are_redacted() {
        let secrets = sources(&[
            ("api_key", ValueSource::Literal("sk_live_123456".into())),
            ("pin", ValueSource::Literal("42".into())),
        ]);
        let values = Values::resolve(&BTreeMap::new(), &secrets, &env).unwrap();
        let debug = format!("{values:?}");
        assert!(!debug.contains("sk_live_123456") && debug.contains("***"), "{debug}");
        assert_eq!(values.redact("key=sk_live_123456&x=sk_live_123456".into()), "key=***&x=***");
        assert_eq!(values.redact("answer 42".into()), "answer 42", "too short to redact");
    }
}
