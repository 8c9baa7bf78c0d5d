//! The plugin's configuration values and secrets, through `wasi:config`.
//!
//! They come from the plugin's manifest (`[config]` and `[secrets]`, literal
//! or read by Switchboard from its environment when it loads the plugin). A
//! plugin sees its own values only, and nothing else of the host's
//! environment.
//!
//! ```no_run
//! use switchboard_sdk::{config, http, prelude::*};
//!
//! fn list_slots() -> Result<http::Response, ToolError> {
//!     let base = config::get("base_url")?;
//!     let key = config::secret("api_key")?;
//!     Ok(http::Request::get(format!("{base}/slots")).bearer_auth(key.expose()).send()?)
//! }
//! ```
//!
//! A missing key is [`ConfigError::Missing`]; `?` turns it into a
//! [`ToolError::Failed`]. Outside WebAssembly (native unit tests) there is no
//! host: every lookup fails with [`ConfigError::Unavailable`].

use std::fmt;

use crate::ToolError;

/// A secret value: `Debug` prints `***`, and it has no `Display`, so it does
/// not end up in a log or an error by accident. Read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value. Use it where it is needed (a header), not in messages.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a value could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The manifest does not set this key.
    Missing {
        /// The key asked for.
        key: String,
    },
    /// The host could not read it.
    Host(String),
    /// There is no Switchboard host (a native build).
    Unavailable,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing { key } => {
                write!(f, "the plugin is not configured: `{key}` is not set in its manifest")
            }
            ConfigError::Host(message) => write!(f, "cannot read the plugin's configuration: {message}"),
            ConfigError::Unavailable => f.write_str("configuration is only available inside Switchboard"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A [`ConfigError`] is a [`ToolError::Failed`] with its message.
impl From<ConfigError> for ToolError {
    fn from(error: ConfigError) -> Self {
        ToolError::failed(error.to_string())
    }
}

/// The configuration value `key`.
pub fn get(key: &str) -> Result<String, ConfigError> {
    try_get(key)?.ok_or_else(|| ConfigError::Missing { key: key.to_owned() })
}

/// The configuration value `key`, or `None` when the manifest does not set it.
pub fn try_get(key: &str) -> Result<Option<String>, ConfigError> {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::wasm::bindings::wasi::config::store;
        store::get(key).map_err(|e| match e {
            store::Error::Upstream(m) | store::Error::Io(m) => ConfigError::Host(m),
        })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = key;
        Err(ConfigError::Unavailable)
    }
}

/// The secret `key`.
pub fn secret(key: &str) -> Result<Secret, ConfigError> {
    get(key).map(Secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natively_there_is_no_host_and_secrets_stay_hidden() {
        assert_eq!(get("base_url"), Err(ConfigError::Unavailable));
        assert_eq!(format!("{:?}", Secret("sk_live".into())), "***");
        let missing: ToolError = ConfigError::Missing { key: "api_key".into() }.into();
        assert_eq!(missing, ToolError::failed("the plugin is not configured: `api_key` is not set in its manifest"));
    }
}
