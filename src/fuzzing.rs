//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): each takes raw
//! bytes and runs, on them, code that reads untrusted input. Compiled only
//! with the `fuzzing` feature, and not part of the public API.
//!
//! Every entry point returns normally for every input. A panic is a bug: in
//! the code it calls, or a promise of that code that does not hold (checked
//! here, each with a comment saying which).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use crate::doors::webhook::event::{self, Arguments, Event};
use crate::doors::webhook::signature::{SignatureError, Verifier, sign};
use crate::plugins::manifest::Manifest;
use crate::sandbox::capabilities::addresses::non_public_reason;
use crate::sandbox::capabilities::{AllowedHost, Host, HostDecision, HttpGrants, Scheme};
use crate::types::{EventKind, Limits, ToolDefinition};

/// The secret of the spec's signature test vectors.
const SECRET: &[u8] = b"whsec_test_secret_12345";
/// The time the signature target verifies at: the test vectors' timestamp.
const NOW: u64 = 1_700_000_000;
/// The default window, in seconds either side of [`NOW`].
const TOLERANCE: u64 = 300;

/// The signature check: `TIMESTAMP\nSIGNATURE\nBODY`, each header the raw
/// value of its line (`-` for a missing header, as is a missing line).
/// A signature line of exactly `auto` is replaced by the right signature of
/// the body for the timestamp (when it is a number), so that the accepting
/// path is reached too.
pub fn signature(data: &[u8]) {
    let (timestamp, rest) = split_line(data);
    let (signature, body) = rest.map(split_line).unwrap_or((None, None));
    let body = body.unwrap_or_default();
    let timestamp = present(timestamp);
    let automatic = signature == Some(b"auto".as_slice());
    let signed_at = timestamp.and_then(|t| std::str::from_utf8(t).ok()).and_then(|t| t.parse::<u64>().ok());
    let computed;
    let signature = match (automatic, signed_at) {
        (true, Some(t)) => {
            computed = sign(SECRET, t, body);
            Some(computed.as_bytes())
        }
        _ => present(signature),
    };

    let now = UNIX_EPOCH + Duration::from_secs(NOW);
    let one = Verifier::new(&[SECRET], Duration::from_secs(TOLERANCE));
    let verdict = one.verify(timestamp, signature, body, now);
    let _ = verdict.as_ref().map_err(ToString::to_string);
    // Refusing on the headers alone refuses for the same reason the whole check does.
    match one.check_headers(timestamp, signature, now) {
        Err(e) => assert_eq!(verdict, Err(e), "check_headers and verify disagree"),
        Ok(()) => assert!(
            matches!(verdict, Ok(()) | Err(SignatureError::Mismatch)),
            "headers pass but verify says {verdict:?}"
        ),
    }
    // Any configured secret passes: one more secret changes nothing.
    let two = Verifier::new(&[b"whsec_other".as_slice(), SECRET], Duration::from_secs(TOLERANCE));
    assert_eq!(two.verify(timestamp, signature, body, now), verdict, "a second secret changed the verdict");
    // What `sign` produces, with the timestamp as the platform writes it, inside the window, passes.
    if let (true, Some(t)) = (automatic, signed_at) {
        let canonical = timestamp == Some(t.to_string().as_bytes());
        if canonical && t.abs_diff(NOW) <= TOLERANCE {
            assert_eq!(verdict, Ok(()), "a body signed by `sign` is refused");
        }
    }
}

/// The event decoder (`POST /webhook` bodies), and what the doors read of an event.
pub fn decode(data: &[u8]) {
    let event = match event::decode(data) {
        Ok(event) => event,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let kind = event.kind();
    // The kind's name is the `message.type` that decodes to it.
    assert_eq!(kind.as_str().parse::<EventKind>().ok(), Some(kind));
    let common = match &event {
        Event::AssistantRequest(e) => &e.common,
        Event::ToolCalls(e) => &e.common,
        Event::StatusUpdate(e) => &e.common,
        Event::EndOfCallReport(e) => &e.common,
    };
    let _ = (common.assistant_metadata(), common.customer_number(), common.phone_number());
    if let Event::ToolCalls(calls) = &event {
        for call in &calls.tool_call_list {
            // Dispatch takes `Json` arguments as a JSON object's text.
            if let Arguments::Json(text) = &call.function.arguments {
                let parsed = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text);
                assert!(parsed.is_ok(), "arguments {text:?} are not a JSON object: {parsed:?}");
            }
        }
    }
}

/// A plugin manifest (`NAME.toml`): parsed, then everything loading a plugin
/// reads from it, with its grants resolved against an empty folder (but for
/// a `ca.pem` that is no certificate) with no environment, and with one where
/// every variable is set.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(manifest) = Manifest::parse(text) else { return };
    let dir = manifest_dir();
    let limits = manifest.limits(Limits::default());
    // A limit is never less than what the manifest asks for (the largest a `usize` holds, at most).
    if let Some(mib) = manifest.memory_mib {
        assert!(limits.memory_bytes >> 20 >= mib.min(usize::MAX >> 20), "memory_mib = {mib} gives {limits:?}");
    }
    let _ = manifest.http.keys_set();
    // Hot reload watches only files inside the plugins folder.
    for file in manifest.files_read(dir) {
        assert!(file.starts_with(dir), "{} is outside the plugins folder", file.display());
    }
    // (Not compiling the tools' JSON Schemas: that is jsonschema's and regex's
    // work, at load, and a `pattern` alone may take milliseconds.)
    let _ = manifest.check_command_tools("fuzz");
    // A declared tool's parameters are JSON, for the schema compiler.
    for tool in manifest.command_tools("fuzz") {
        assert!(serde_json::from_str::<serde_json::Value>(&tool.parameters_schema).is_ok());
    }
    let mut offered = vec![ToolDefinition {
        name: "lookup_contact".to_owned(),
        description: String::new(),
        parameters_schema: r#"{"type":"object"}"#.to_owned(),
        is_async: false,
        async_response: None,
    }];
    let _ = manifest.apply_to_component_tools(&mut offered);
    let _ = manifest.grants(dir, &|_| None);
    let _ = manifest.grants(dir, &|name| Some(format!("value of {name}")));
}

/// An `[http] allowed_hosts` pattern on the first line, then request URLs,
/// one a line, matched against it as outbound HTTP matches a plugin's request.
pub fn allowed_host(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (pattern, requests) = text.split_once('\n').unwrap_or((text, ""));
    for allow_private in [false, true] {
        let Ok(entry) = AllowedHost::parse(pattern, allow_private) else { continue };
        // Shown as written.
        assert!(entry.to_string().starts_with(pattern));
        let grants = HttpGrants { allowed_hosts: vec![entry.clone()], ..HttpGrants::default() };
        for request in requests.lines() {
            let Some((scheme, host_text, port)) = target(request) else { continue };
            let Ok(host) = Host::parse(&host_text) else { continue };
            let _ = host.to_string();
            if let Host::Ip(ip) = &host {
                let _ = non_public_reason(*ip);
            }
            let allowed = entry.allows(scheme, &host, port);
            let decision = grants.decide(scheme, &host, port);
            // The list decides as its one entry does, and only an entry that allows private addresses grants them.
            assert_eq!(decision != HostDecision::Denied, allowed, "decide and allows disagree");
            assert!(decision != HostDecision::AnyAddress || entry.allows_private());
            // An entry allows its own scheme only.
            if allowed {
                let (pattern_scheme, _) = pattern.split_once("://").unwrap_or_default();
                assert!(pattern_scheme.eq_ignore_ascii_case(scheme.as_str()), "{pattern} allows {scheme}");
            }
            // Host names are case-insensitive.
            let upper = Host::parse(&host_text.to_ascii_uppercase()).ok();
            assert_eq!(upper.as_ref(), Some(&host), "{host_text:?} parses differently in upper case");
        }
    }
}

/// Scheme, host text and port of a request URL, as outbound HTTP reads them
/// (`Target::of` in `sandbox/capabilities/outbound.rs`).
fn target(url: &str) -> Option<(Scheme, String, u16)> {
    let uri = http::Uri::try_from(url).ok()?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        _ => return None,
    };
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let port = authority.port_u16().unwrap_or(scheme.default_port());
    Some((scheme, authority.host().to_owned(), port))
}

/// A header field: `-` stands for a missing header.
fn present(field: Option<&[u8]>) -> Option<&[u8]> {
    field.filter(|f| *f != b"-")
}

/// `split_line(b"a\nb")` is `(Some(b"a"), Some(b"b"))`; without a newline the
/// rest is `None`.
fn split_line(data: &[u8]) -> (Option<&[u8]>, Option<&[u8]>) {
    match data.iter().position(|&b| b == b'\n') {
        Some(at) => (Some(&data[..at]), Some(&data[at + 1..])),
        None => (Some(data), None),
    }
}

/// The plugins folder manifests are resolved against: the same for every
/// process, holding only `ca.pem`, which is not a certificate.
fn manifest_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join("switchboard-fuzz-manifest");
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        // Written then renamed: another fuzzing process may be reading it.
        let partial = dir.join(format!(".ca.pem.{}", std::process::id()));
        std::fs::write(&partial, "not a certificate\n").expect("a temporary file");
        std::fs::rename(&partial, dir.join("ca.pem")).expect("a temporary file");
        dir
    })
}
