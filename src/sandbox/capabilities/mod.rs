//! What a plugin may touch beyond its own memory and CPU, granted per plugin
//! by its manifest and enforced while it runs. Deny by default: a plugin
//! without grants can still call every capability interface (they are all
//! linked), and each use it is not granted fails that one request.
//!
//! One enforcement point per capability:
//!
//! - outbound HTTP (`wasi:http`): [`outbound::OutboundHttp`], the
//!   `WasiHttpHooks::send_request` of every call, checks the
//!   [`allowed_hosts`] list and the resolved address ([`addresses`]) and
//!   connects to the address it checked;
//! - configuration and secrets (`wasi:config`): [`Capabilities::wasi_config`]
//!   holds exactly this plugin's [`values`], nothing else;
//! - logging (`wasi:logging`, stdout, stderr): [`logging::CallLog`] tags,
//!   caps and redacts.
//!
//! [`redaction`] keeps a plugin's own secrets out of everything it emits
//! (results, errors, hook answers, log lines), in every form they take.
//!
//! Raw sockets (`wasi:sockets`) stay closed for every plugin; files and
//! environment variables are not granted at all.

pub mod addresses;
pub mod allowed_hosts;
pub mod logging;
pub mod outbound;
pub mod redaction;
pub mod tls;
pub mod values;

use std::fmt;
use std::sync::Arc;

use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

pub use allowed_hosts::{AllowedHost, Host, Scheme};
pub use tls::TrustedRoots;
pub use values::{ValueSource, Values};

/// Default cap on the body of one outbound HTTP response.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Default cap on one call's outbound HTTP requests open at once.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 8;

/// What a plugin may do with outbound HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGrants {
    /// Destinations; empty means no outbound HTTP at all.
    pub allowed_hosts: Vec<AllowedHost>,
    /// Largest response body a request may receive.
    pub max_response_bytes: usize,
    /// Most requests one call may have open at once (connecting, waiting or
    /// reading the response); more wait for a place.
    pub max_concurrent_requests: usize,
    /// Certificate authorities trusted for `https` besides the public ones
    /// (an internal CA); empty for the public ones only.
    pub extra_roots: TrustedRoots,
}

impl Default for HttpGrants {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            extra_roots: TrustedRoots::default(),
        }
    }
}

/// Whether a request may go out, as decided by the allow-list alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostDecision {
    /// No entry matches.
    Denied,
    /// Allowed, to public addresses only.
    Public,
    /// Allowed, to private addresses too (explicitly granted).
    AnyAddress,
}

impl HttpGrants {
    /// Checks `scheme://host:port` against the allow-list.
    pub fn decide(&self, scheme: Scheme, host: &Host, port: u16) -> HostDecision {
        let mut decision = HostDecision::Denied;
        for entry in self.allowed_hosts.iter().filter(|e| e.allows(scheme, host, port)) {
            if entry.allows_private() {
                return HostDecision::AnyAddress;
            }
            decision = HostDecision::Public;
        }
        decision
    }
}

/// Everything a manifest grants one plugin: pure data, compared on reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Outbound HTTP.
    pub http: HttpGrants,
    /// Configuration values and secrets.
    pub values: Values,
}

/// The grants of one plugin version, ready for its calls. Shared by all of
/// them (`Arc`); built once at load.
pub struct Capabilities {
    plugin: String,
    grants: Grants,
    wasi_config: WasiConfigVariables,
    tls: Arc<rustls::ClientConfig>,
}

impl Capabilities {
    /// `grants` for the plugin named `plugin`.
    pub fn new(plugin: &str, grants: Grants) -> Self {
        let wasi_config = grants.values.exposed().collect();
        let tls = tls::tls_config(&grants.http.extra_roots);
        Self { plugin: plugin.to_owned(), grants, wasi_config, tls }
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// What was granted.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// Outbound HTTP grants.
    pub fn http(&self) -> &HttpGrants {
        &self.grants.http
    }

    /// Configuration values and secrets.
    pub fn values(&self) -> &Values {
        &self.grants.values
    }

    /// The `wasi:config/store` view: this plugin's values and secrets only.
    pub fn wasi_config(&self) -> WasiConfig<'_> {
        WasiConfig::from(&self.wasi_config)
    }

    /// TLS for this plugin's `https` requests: the public roots, plus its
    /// [`HttpGrants::extra_roots`].
    pub(crate) fn tls(&self) -> &Arc<rustls::ClientConfig> {
        &self.tls
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capabilities").field("plugin", &self.plugin).field("grants", &self.grants).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use values::Secret;

    #[test]
    fn the_most_permissive_matching_entry_decides() {
        let http = HttpGrants {
            allowed_hosts: vec![
                AllowedHost::parse("http://*:8080", false).unwrap(),
                AllowedHost::parse("http://calendar.internal:8080", true).unwrap(),
            ],
            ..HttpGrants::default()
        };
        let name = |n: &str| Host::Name(n.into());
        assert_eq!(http.decide(Scheme::Http, &name("calendar.internal"), 8080), HostDecision::AnyAddress);
        assert_eq!(http.decide(Scheme::Http, &name("other.example"), 8080), HostDecision::Public);
        assert_eq!(http.decide(Scheme::Http, &name("other.example"), 80), HostDecision::Denied);
        assert_eq!(HttpGrants::default().decide(Scheme::Https, &name("a.b"), 443), HostDecision::Denied);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut grants = Grants::default();
        grants.values.secrets.insert("api_key".into(), Secret::new("sk_live_abcdef"));
        let debug = format!("{:?}", Capabilities::new("p", grants));
        assert!(debug.contains("api_key") && !debug.contains("sk_live_abcdef"), "{debug}");
    }
}
