//! Who may use a door that is not for the voice platform: the rules, as
//! plain functions of the peer's address and the request's headers.
//!
//! The MCP door ([`AccessRule`]):
//! - with tokens configured, every request needs `Authorization: Bearer
//!   <token>` (else 401 with `WWW-Authenticate: Bearer`);
//! - with none, only loopback peers whose `Host` is `localhost`, `127.0.0.1`
//!   or `[::1]` (any port): the DNS-rebinding protection the MCP
//!   specification asks of local servers (else 403);
//! - an `Origin` that is not allowed gets 403, token or not; the localhost
//!   forms are always allowed, and `[mcp] allowed_origins` adds others.
//!
//! The operator endpoints ([`OperatorRule`]): loopback peers, or anyone with
//! the admin token.

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode, header};

/// Who may use the operator endpoints (`/metrics`, `/tools`, `/plugins`).
#[derive(Debug, Clone, Default)]
pub(crate) struct OperatorRule {
    /// `SWITCHBOARD_ADMIN_TOKEN`: lets a client off this machine in.
    pub token: Option<String>,
}

impl OperatorRule {
    /// Checks one request from `peer` (when known) with `headers`.
    pub fn check(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Result<(), Refusal> {
        if peer.is_some_and(is_loopback) {
            return Ok(());
        }
        match (&self.token, bearer(headers)) {
            (Some(token), Some(presented)) if constant_time_eq(token.as_bytes(), presented.as_bytes()) => Ok(()),
            (Some(_), _) => Err(Refusal {
                status: StatusCode::UNAUTHORIZED,
                message: "operator endpoints answer local clients, or `Authorization: Bearer <SWITCHBOARD_ADMIN_TOKEN>`",
            }),
            (None, _) => Err(Refusal {
                status: StatusCode::FORBIDDEN,
                message: "operator endpoints answer local clients only (set SWITCHBOARD_ADMIN_TOKEN, or serve them on --admin-listen)",
            }),
        }
    }
}

/// Who may use the MCP door over HTTP.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessRule {
    /// Bearer tokens; empty means "loopback only".
    pub tokens: Vec<String>,
    /// Origins allowed besides the localhost forms, as `scheme://host[:port]`.
    pub allowed_origins: Vec<String>,
}

/// Why a request was refused, with the status and a plain message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub message: &'static str,
}

impl axum::response::IntoResponse for Refusal {
    /// `{"error": message}` with the status; a 401 also says `WWW-Authenticate: Bearer`.
    fn into_response(self) -> axum::response::Response {
        let body = axum::Json(serde_json::json!({ "error": self.message }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl AccessRule {
    /// Checks one request from `peer` (when known) with `headers`.
    pub fn check(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Result<(), Refusal> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            if !is_local_origin(origin) && !self.allowed_origins.iter().any(|allowed| same_origin(allowed, origin)) {
                return Err(Refusal {
                    status: StatusCode::FORBIDDEN,
                    message: "this Origin may not use the MCP endpoint (see [mcp] allowed_origins)",
                });
            }
        }
        if !self.tokens.is_empty() {
            return match bearer(headers) {
                Some(token) if self.tokens.iter().any(|t| constant_time_eq(t.as_bytes(), token.as_bytes())) => Ok(()),
                _ => Err(Refusal {
                    status: StatusCode::UNAUTHORIZED,
                    message: "a valid `Authorization: Bearer <token>` header is required",
                }),
            };
        }
        let loopback = peer.is_some_and(is_loopback);
        let local_host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).is_some_and(is_local_host);
        if loopback && local_host {
            Ok(())
        } else {
            Err(Refusal {
                status: StatusCode::FORBIDDEN,
                message: "without MCP tokens (SWITCHBOARD_MCP_TOKENS), only local clients may connect, to a localhost Host",
            })
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(str::trim)
}

/// A peer on this machine: a loopback address (`::ffff:127.0.0.1` too).
fn is_loopback(peer: SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// `localhost`, `127.0.0.1` or `[::1]`, with any port.
fn is_local_host(host: &str) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, port)) if port.is_empty() || is_port_suffix(port) => return inside == "::1",
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port_suffix(&format!(":{port}")) => name.to_owned(),
            Some(_) => return false,
            None => host,
        },
    };
    matches!(name.as_str(), "localhost" | "127.0.0.1")
}

fn is_port_suffix(suffix: &str) -> bool {
    suffix.strip_prefix(':').is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// An origin of a page served from this machine: `http(s)://` one of the
/// local hosts.
fn is_local_origin(origin: &str) -> bool {
    let origin = origin.to_ascii_lowercase();
    ["http://", "https://"].iter().any(|scheme| origin.strip_prefix(scheme).is_some_and(is_local_host))
}

/// Whether `origin` is the configured `allowed` one (case-insensitive; a
/// trailing slash in the configuration is ignored).
fn same_origin(allowed: &str, origin: &str) -> bool {
    allowed.trim_end_matches('/').eq_ignore_ascii_case(origin.trim_end_matches('/'))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    const LOCAL: Option<SocketAddr> = Some(SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5000));
    const REMOTE: Option<SocketAddr> =
        Some(SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)), 5000));

    #[test]
    fn without_tokens_only_loopback_peers_with_a_local_host() {
        let rule = AccessRule::default();
        for host in ["localhost", "localhost:8080", "127.0.0.1:1", "[::1]", "[::1]:8080", "LOCALHOST:9"] {
            assert_eq!(rule.check(LOCAL, &headers(&[("host", host)])), Ok(()), "{host}");
        }
        for host in ["evil.example", "localhost.evil.example", "127.0.0.1.nip.io", "[::2]:80", "localhost:x", ""] {
            assert_eq!(rule.check(LOCAL, &headers(&[("host", host)])).unwrap_err().status, StatusCode::FORBIDDEN);
        }
        assert_eq!(rule.check(REMOTE, &headers(&[("host", "localhost")])).unwrap_err().status, StatusCode::FORBIDDEN);
        assert_eq!(rule.check(None, &headers(&[("host", "localhost")])).unwrap_err().status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn with_tokens_a_bearer_token_is_needed_from_anywhere() {
        let rule = AccessRule { tokens: vec!["s3cret".into(), "other".into()], ..Default::default() };
        let ok = headers(&[("host", "mcp.example.com"), ("authorization", "Bearer other")]);
        assert_eq!(rule.check(REMOTE, &ok), Ok(()));
        for bad in [vec![], vec![("authorization", "Bearer wrong")], vec![("authorization", "Basic s3cret")]] {
            let refused = rule.check(LOCAL, &headers(&bad)).unwrap_err();
            assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{bad:?}");
        }
    }

    #[test]
    fn operators_are_local_or_hold_the_admin_token() {
        let open = OperatorRule::default();
        assert_eq!(open.check(LOCAL, &headers(&[])), Ok(()));
        assert_eq!(open.check(REMOTE, &headers(&[])).unwrap_err().status, StatusCode::FORBIDDEN);
        assert_eq!(open.check(None, &headers(&[])).unwrap_err().status, StatusCode::FORBIDDEN);
        let with_token = OperatorRule { token: Some("adm".into()) };
        assert_eq!(with_token.check(REMOTE, &headers(&[("authorization", "Bearer adm")])), Ok(()));
        let wrong = with_token.check(REMOTE, &headers(&[("authorization", "Bearer nope")])).unwrap_err();
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn a_foreign_origin_is_refused_token_or_not() {
        let rule = AccessRule { tokens: vec!["t".into()], allowed_origins: vec!["https://copilot.example.com".into()] };
        let with = |origin: &str| headers(&[("authorization", "Bearer t"), ("origin", origin)]);
        assert_eq!(rule.check(REMOTE, &with("https://copilot.example.com")), Ok(()));
        assert_eq!(rule.check(REMOTE, &with("http://localhost:5173")), Ok(()));
        assert_eq!(rule.check(REMOTE, &with("https://evil.example")).unwrap_err().status, StatusCode::FORBIDDEN);
        let local = AccessRule::default();
        let foreign = headers(&[("host", "localhost"), ("origin", "https://evil.example")]);
        assert_eq!(local.check(LOCAL, &foreign).unwrap_err().status, StatusCode::FORBIDDEN);
    }
}
