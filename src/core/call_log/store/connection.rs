//! A PostgreSQL connection string, as an operator copies it from their
//! provider, made into a connection: libpq's TLS options, which
//! tokio-postgres does not read in full, are taken out here and applied.
//!
//! - `sslmode=disable`, `allow`, `prefer` (the default): no TLS, as before
//!   TLS was supported. (libpq's `prefer` tries TLS first; here it never
//!   does, so a server with a self-signed certificate that used to accept
//!   plain connections still does.)
//! - `sslmode=require`, `verify-ca`, `verify-full`: TLS or no connection,
//!   and the server's certificate is always verified, for its name too,
//!   against the public roots and the PEM file of `sslrootcert=PATH`
//!   (a private CA, such as a cloud provider's database CA).
//!
//! Both forms of connection string are read: a URL
//! (`postgres://user@host/db?sslmode=require&sslrootcert=/etc/ca.pem`) and
//! key-value pairs (`host=db sslmode=verify-full sslrootcert=/etc/ca.pem`).

use std::path::PathBuf;
use std::str::FromStr;

use tokio_postgres::config::{Config, SslMode};
use tokio_postgres::{Client, Connection};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::sandbox::capabilities::TrustedRoots;
use crate::sandbox::capabilities::tls::tls_config;

/// What a connection string asks for.
pub(super) struct ConnectionSettings {
    config: Config,
    /// `Some` with TLS required: the connector, trusting the public roots
    /// and those of `sslrootcert` (built once, used by every reconnect).
    tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the configuration: it may hold a password.
        f.debug_struct("ConnectionSettings").field("tls", &self.uses_tls()).finish_non_exhaustive()
    }
}

impl ConnectionSettings {
    /// Reads `url`. Fails, saying why, on an unknown `sslmode`, an
    /// `sslrootcert` that cannot be read or holds no certificate, or what
    /// tokio-postgres refuses (its message, without the string: it may hold
    /// a password).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (rest, options) = take_tls_options(url);
        let mut config = Config::from_str(&rest)
            .map_err(|e| format!("the call log's database_url is not a PostgreSQL connection string: {e}"))?;
        let required = match options.mode.as_deref() {
            None | Some("disable" | "allow" | "prefer") => false,
            Some("require" | "verify-ca" | "verify-full") => true,
            Some(other) => {
                return Err(format!(
                    "the call log's database_url has sslmode={other}; use disable, prefer, require, verify-ca or verify-full"
                ));
            }
        };
        let roots = match (&options.root_cert, required) {
            (Some(path), true) => {
                let path = PathBuf::from(path);
                let pem = std::fs::read(&path)
                    .map_err(|e| format!("cannot read the database's CA file (sslrootcert) {}: {e}", path.display()))?;
                Some(TrustedRoots::from_pem(&pem, &path)?)
            }
            (None, true) => Some(TrustedRoots::default()),
            (Some(_), false) => {
                return Err(
                    "the call log's database_url names an sslrootcert but no TLS: add sslmode=verify-full".into()
                );
            }
            (None, false) => None,
        };
        config.ssl_mode(if roots.is_some() { SslMode::Require } else { SslMode::Disable });
        let tls = roots.map(|roots| MakeRustlsConnect::new(tls_config(&roots).as_ref().clone()));
        Ok(Self { config, tls })
    }

    /// Opens a connection and drives it in a task of its own.
    pub async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        Ok(match &self.tls {
            None => driven(self.config.connect(tokio_postgres::NoTls).await?),
            Some(tls) => driven(self.config.connect(tls.clone()).await?),
        })
    }

    /// Whether connections use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// The client, its connection driven in a task of its own.
fn driven<S, T>((client, connection): (Client, Connection<S, T>)) -> Client
where
    Connection<S, T>: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "call log database connection ended");
        }
    });
    client
}

/// libpq's TLS options found in a connection string.
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsOptions {
    mode: Option<String>,
    root_cert: Option<String>,
}

/// The connection string without `sslmode` and `sslrootcert`, and their
/// values (the last of each, as libpq reads them).
fn take_tls_options(url: &str) -> (String, TlsOptions) {
    let mut options = TlsOptions::default();
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            options.mode = Some(value);
            true
        }
        "sslrootcert" => {
            options.root_cert = Some(value);
            true
        }
        _ => false,
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else { return (url.to_owned(), options) };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                !take(key, percent_decode(value))
            })
            .collect();
        if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
    } else {
        let mut rest = String::with_capacity(url.len());
        for (start, end, key, value) in key_value_pairs(url) {
            if !take(key, value) {
                rest.push_str(&url[start..end]);
                rest.push(' ');
            }
        }
        rest
    };
    (rest, options)
}

/// `%XX` escapes decoded (a URL's query value); invalid ones kept as they are.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `key=value` pairs of a key-value connection string: each pair's
/// span, its key and its value (unquoted: `'...'` with `\'` and `\\`).
/// Stops at text that is not a pair; tokio-postgres then says what is wrong.
fn key_value_pairs(text: &str) -> Vec<(usize, usize, &str, String)> {
    let bytes = text.as_bytes();
    let mut pairs = Vec::new();
    let mut i = 0;
    let skip_spaces = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_spaces(i);
        if i >= bytes.len() {
            return pairs;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &text[start..i];
        i = skip_spaces(i);
        if i >= bytes.len() || bytes[i] != b'=' || key.is_empty() {
            // Not a pair: keep the rest whole for tokio-postgres to judge.
            pairs.push((start, bytes.len(), "", String::new()));
            return pairs;
        }
        i = skip_spaces(i + 1);
        let mut value = String::new();
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
            let mut chars = text[i..].char_indices();
            let mut closed = false;
            while let Some((offset, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            value.push(next);
                        }
                    }
                    '\'' => {
                        i += offset + 1;
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                pairs.push((start, bytes.len(), "", String::new()));
                return pairs;
            }
        } else {
            let from = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            value.push_str(&text[from..i]);
        }
        pairs.push((start, i, key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(url: &str) -> (String, Option<String>, Option<String>) {
        let (rest, options) = take_tls_options(url);
        (rest, options.mode, options.root_cert)
    }

    #[test]
    fn tls_options_are_taken_out_of_a_url() {
        assert_eq!(
            taken("postgres://u:p@db:5432/calls?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=sb"),
            (
                "postgres://u:p@db:5432/calls?application_name=sb".into(),
                Some("verify-full".into()),
                Some("/etc/ca.pem".into())
            )
        );
        assert_eq!(
            taken("postgresql://db/calls?sslmode=require"),
            ("postgresql://db/calls".into(), Some("require".into()), None)
        );
        assert_eq!(taken("postgres://db/calls"), ("postgres://db/calls".into(), None, None));
    }

    #[test]
    fn tls_options_are_taken_out_of_key_value_pairs() {
        let (rest, mode, root) =
            taken("host=db user=sb sslmode = verify-full sslrootcert='/etc/my ca\\'s.pem' dbname=calls");
        assert_eq!((mode.as_deref(), root.as_deref()), (Some("verify-full"), Some("/etc/my ca's.pem")));
        assert_eq!(rest.split_whitespace().collect::<Vec<_>>(), ["host=db", "user=sb", "dbname=calls"]);
        let (rest, mode, _) = taken("host=db password='a b' sslmode=disable");
        assert_eq!((rest.trim(), mode.as_deref()), ("host=db password='a b'", Some("disable")));
    }

    #[test]
    fn only_an_explicit_sslmode_of_require_or_stricter_turns_tls_on() {
        for (url, tls) in [
            ("postgres://db/calls", false),
            ("postgres://db/calls?sslmode=prefer", false),
            ("host=db sslmode=disable", false),
            ("postgres://db/calls?sslmode=require", true),
            ("host=db sslmode=verify-ca", true),
            ("postgres://db/calls?sslmode=verify-full", true),
        ] {
            assert_eq!(ConnectionSettings::parse(url).unwrap().uses_tls(), tls, "{url}");
        }
    }

    #[test]
    fn bad_tls_options_are_refused_with_what_to_do() {
        let error = ConnectionSettings::parse("postgres://db/calls?sslmode=always").unwrap_err();
        assert!(error.contains("sslmode=always") && error.contains("verify-full"), "{error}");
        let error = ConnectionSettings::parse("postgres://db/calls?sslrootcert=/etc/ca.pem").unwrap_err();
        assert!(error.contains("sslmode=verify-full"), "{error}");
        let error =
            ConnectionSettings::parse("postgres://db/calls?sslmode=verify-full&sslrootcert=/no/such.pem").unwrap_err();
        assert!(error.contains("/no/such.pem"), "{error}");
        let error = ConnectionSettings::parse("postgres://u:secret@db/calls?nonsense=1").unwrap_err();
        assert!(!error.contains("secret"), "{error}");
    }
}
