//! The outbound allow-list: `scheme://host[:port]` patterns parsed once, at
//! load, into typed matchers (after Spin's `allowed_hosts.rs`), so a request
//! is matched on its parts and never as a string.
//!
//! | pattern                         | allows                                                   |
//! |---------------------------------|----------------------------------------------------------|
//! | `https://api.example.com`       | that host on port 443                                    |
//! | `http://api.example.com`        | that host on port 80                                     |
//! | `https://api.example.com:8443`  | that host on port 8443 only                              |
//! | `https://*.example.com`         | any subdomain (`a.example.com`, `a.b.example.com`), not `example.com` |
//! | `https://*`                     | any host on port 443 (private addresses are still refused) |
//! | `http://127.0.0.1:8080`         | that address; naming it literally also grants it if private |
//! | `http://[::1]:8080`             | the same for IPv6                                        |
//! | `https://api.example.com:*`     | that host on any port                                    |
//!
//! Host names are case-insensitive and a trailing dot is ignored. A pattern
//! has no path, query, fragment or user info.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The port used when none is given.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The host of a request: a (lowercase) name or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, lowercase, without a trailing dot.
    Name(String),
    /// An IP literal.
    Ip(IpAddr),
}

impl Host {
    /// Parses a URI host (`example.com`, `127.0.0.1`, `[::1]`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(inner) = text.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or_else(|| format!("unclosed `[` in host {text:?}"))?;
            return inner
                .parse::<Ipv6Addr>()
                .map(|ip| Host::Ip(IpAddr::V6(ip)))
                .map_err(|_| format!("{inner:?} is not an IPv6 address"));
        }
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            return Ok(Host::Ip(IpAddr::V4(ip)));
        }
        if text.contains(':') {
            return Err(format!("IPv6 addresses are written in brackets: [{text}]"));
        }
        let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        validate_dns_name(&name)?;
        Ok(Host::Name(name))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// Which hosts a pattern allows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `*`: every host.
    Any,
    /// `api.example.com`.
    Exact(String),
    /// `*.example.com`, stored as `example.com`: strict subdomains only.
    Subdomain(String),
    /// `127.0.0.1`, `[::1]`.
    Ip(IpAddr),
}

/// Which ports a pattern allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    /// `:*`.
    Any,
    /// `:8080`, or the scheme's default port when none is given.
    Exact(u16),
}

/// One parsed entry of `[http] allowed_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Scheme,
    host: HostPattern,
    port: PortPattern,
    allow_private: bool,
    text: String,
}

impl AllowedHost {
    /// Parses `scheme://host[:port]`. `allow_private` lets the host resolve
    /// to loopback, private and link-local addresses (see
    /// [`crate::sandbox::capabilities::addresses`]).
    pub fn parse(text: &str, allow_private: bool) -> Result<Self, String> {
        let bad = |why: String| format!("invalid allowed host {text:?}: {why}");
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("write it as scheme://host[:port], e.g. https://api.example.com".into()))?;
        let scheme =
            Scheme::parse(scheme).ok_or_else(|| bad(format!("the scheme must be http or https, not {scheme:?}")))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if let Some(c) = rest.chars().find(|c| matches!(c, '/' | '?' | '#' | '@')) {
            return Err(bad(format!(
                "only scheme://host[:port] is allowed, without a path, query, fragment or user info (found {c:?})"
            )));
        }
        let (host, port) = split_host_port(rest).map_err(bad)?;
        let port = match port {
            None => PortPattern::Exact(scheme.default_port()),
            Some("*") => PortPattern::Any,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => PortPattern::Exact(n),
                _ => return Err(bad(format!("the port must be 1-65535 or *, not {p:?}"))),
            },
        };
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            match Host::parse(suffix).map_err(bad)? {
                Host::Name(name) => HostPattern::Subdomain(name),
                Host::Ip(_) => return Err(bad("a wildcard goes before a domain name, not an address".into())),
            }
        } else if host.contains('*') {
            return Err(bad(
                "a wildcard is only allowed as the whole host (*) or the first label (*.example.com)".into()
            ));
        } else {
            match Host::parse(host).map_err(bad)? {
                Host::Name(name) => HostPattern::Exact(name),
                Host::Ip(ip) => HostPattern::Ip(ip),
            }
        };
        Ok(Self { scheme, host, port, allow_private, text: text.to_owned() })
    }

    /// Whether a request to `scheme://host:port` matches this entry.
    pub fn allows(&self, scheme: Scheme, host: &Host, port: u16) -> bool {
        let host_ok = match (&self.host, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Exact(pattern), Host::Name(name)) => pattern == name,
            (HostPattern::Subdomain(suffix), Host::Name(name)) => {
                name.len() > suffix.len() + 1
                    && name.ends_with(suffix.as_str())
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
            }
            (HostPattern::Ip(pattern), Host::Ip(ip)) => pattern == ip,
            _ => false,
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(p) => p == port,
        };
        self.scheme == scheme && host_ok && port_ok
    }

    /// Whether this entry lets a request reach loopback, private or
    /// link-local addresses: it says so (`allow_private = true`), or it names
    /// the address literally (`http://127.0.0.1:8080`).
    pub fn allows_private(&self) -> bool {
        self.allow_private || matches!(self.host, HostPattern::Ip(_))
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        if self.allow_private { f.write_str(" (private addresses allowed)") } else { Ok(()) }
    }
}

/// Splits `host[:port]`, where an IPv6 host is in brackets.
fn split_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if text.is_empty() {
        return Err("the host is missing".into());
    }
    if text.starts_with('[') {
        let end = text.find(']').ok_or("unclosed `[` in the host")?;
        let (host, rest) = text.split_at(end + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => match rest.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("unexpected {rest:?} after the host")),
            },
        };
    }
    match text.split_once(':') {
        Some((_, port)) if port.contains(':') => Err("IPv6 addresses are written in brackets: [::1]".into()),
        Some(("", port)) => Err(format!("the host is missing before :{port}")),
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((text, None)),
    }
}

fn validate_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err(format!("{name:?} is not a valid host name"));
    }
    for label in name.split('.') {
        let ok = (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("{name:?} is not a valid host name (label {label:?})"));
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> Host {
        Host::parse(text).unwrap()
    }

    #[test]
    fn patterns_match_what_the_docs_promise() {
        use Scheme::{Http, Https};
        // (pattern, scheme, host, port, allowed)
        let cases: &[(&str, Scheme, &str, u16, bool)] = &[
            ("https://api.example.com", Https, "api.example.com", 443, true),
            ("https://api.example.com", Https, "API.Example.COM", 443, true),
            ("https://api.example.com", Https, "api.example.com.", 443, true),
            ("https://api.example.com", Https, "api.example.com", 8443, false),
            ("https://api.example.com", Http, "api.example.com", 443, false),
            ("https://api.example.com", Http, "api.example.com", 80, false),
            ("https://api.example.com", Https, "example.com", 443, false),
            ("https://api.example.com", Https, "evil-api.example.com", 443, false),
            ("https://api.example.com", Https, "api.example.com.evil.net", 443, false),
            ("http://api.example.com", Http, "api.example.com", 80, true),
            ("http://api.example.com", Http, "api.example.com", 8080, false),
            ("HTTPS://API.example.com/", Https, "api.example.com", 443, true),
            ("https://api.example.com:8443", Https, "api.example.com", 8443, true),
            ("https://api.example.com:8443", Https, "api.example.com", 443, false),
            ("https://api.example.com:*", Https, "api.example.com", 1, true),
            ("https://api.example.com:*", Https, "api.example.com", 65535, true),
            ("https://*.example.com", Https, "a.example.com", 443, true),
            ("https://*.example.com", Https, "a.b.example.com", 443, true),
            ("https://*.example.com", Https, "example.com", 443, false),
            ("https://*.example.com", Https, "badexample.com", 443, false),
            ("https://*.example.com", Https, "a.example.com.evil.net", 443, false),
            ("https://*.example.com", Https, "a.example.com", 80, false),
            ("https://*", Https, "anything.at.all", 443, true),
            ("https://*", Https, "10.0.0.1", 443, true),
            ("https://*", Https, "anything.at.all", 444, false),
            ("http://*:*", Http, "x.y", 9, true),
            ("http://127.0.0.1:8080", Http, "127.0.0.1", 8080, true),
            ("http://127.0.0.1:8080", Http, "127.0.0.1", 8081, false),
            ("http://127.0.0.1:8080", Http, "localhost", 8080, false),
            ("http://127.0.0.1:8080", Http, "127.0.0.2", 8080, false),
            ("http://[::1]:8080", Http, "[::1]", 8080, true),
            ("http://[::1]:8080", Http, "[0:0:0:0:0:0:0:1]", 8080, true),
            ("http://[::1]:8080", Http, "127.0.0.1", 8080, false),
            ("http://[::1]", Http, "[::1]", 80, true),
            ("http://localhost:3000", Http, "localhost", 3000, true),
            ("http://localhost:3000", Http, "127.0.0.1", 3000, false),
        ];
        for (pattern, scheme, target, port, expected) in cases {
            let allowed = AllowedHost::parse(pattern, false).unwrap();
            assert_eq!(
                allowed.allows(*scheme, &host(target), *port),
                *expected,
                "{pattern} vs {scheme}://{target}:{port}"
            );
        }
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        // (pattern, part of the error)
        let cases: &[(&str, &str)] = &[
            ("api.example.com", "scheme://host[:port]"),
            ("ftp://api.example.com", "http or https"),
            ("*://api.example.com", "http or https"),
            ("https://api.example.com/v1", "without a path"),
            ("https://api.example.com?q=1", "without a path"),
            ("https://user@api.example.com", "user info"),
            ("https://", "host is missing"),
            ("https://:443", "host is missing"),
            ("https://api.example.com:0", "port must be"),
            ("https://api.example.com:99999", "port must be"),
            ("https://api.example.com:http", "port must be"),
            ("https://api.*.com", "wildcard"),
            ("https://*api.example.com", "wildcard"),
            ("https://*.127.0.0.1", "not an address"),
            ("http://::1", "brackets"),
            ("http://[::1", "unclosed"),
            ("http://[nope]", "not an IPv6 address"),
            ("https://exa mple.com", "not a valid host name"),
            ("https://-bad.example.com", "not a valid host name"),
        ];
        for (pattern, needle) in cases {
            let err = AllowedHost::parse(pattern, false).unwrap_err();
            assert!(err.contains(needle) && err.contains(pattern), "{pattern}: {err}");
        }
    }

    #[test]
    fn private_addresses_need_a_literal_address_or_the_flag() {
        assert!(!AllowedHost::parse("http://localhost:3000", false).unwrap().allows_private());
        assert!(AllowedHost::parse("http://localhost:3000", true).unwrap().allows_private());
        assert!(AllowedHost::parse("http://127.0.0.1:3000", false).unwrap().allows_private());
        assert!(AllowedHost::parse("http://[fd00:ec2::254]", false).unwrap().allows_private());
        assert!(!AllowedHost::parse("https://*", false).unwrap().allows_private());
    }
}
