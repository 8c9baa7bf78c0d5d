//! Signature verification: the platform's HMAC over `timestamp + "." + raw body`.
//!
//! This is the only place that knows how a webhook is authenticated. It works on
//! raw header values and raw bytes, before anything is parsed, because the
//! signature covers the exact bytes the platform sent.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the Unix timestamp (seconds) the platform signed.
pub const TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
/// Header carrying `sha256=<hex>` (or the bare hex digest).
pub const SIGNATURE_HEADER: &str = "x-webhook-signature";
/// Header carrying the event type, which must agree with `message.type`.
pub const EVENT_HEADER: &str = "x-webhook-event";

/// Why a request is not authentic. Each variant's message is safe to send back:
/// it never contains the expected signature or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Webhook-Signature` header.
    #[error("missing X-Webhook-Signature header")]
    MissingSignature,
    /// No `X-Webhook-Timestamp` header.
    #[error("missing X-Webhook-Timestamp header")]
    MissingTimestamp,
    /// The timestamp is not a Unix time in seconds.
    #[error("X-Webhook-Timestamp is not a Unix time in seconds")]
    MalformedTimestamp,
    /// The timestamp is too far from the server's clock.
    #[error("X-Webhook-Timestamp is outside the allowed window of {tolerance_secs} s")]
    StaleTimestamp {
        /// The configured window, in seconds either side of now.
        tolerance_secs: u64,
    },
    /// The signature is not 64 hex digits (after an optional `sha256=` prefix).
    #[error("X-Webhook-Signature is not a hex SHA-256 digest")]
    MalformedSignature,
    /// The signature is well-formed but no configured secret produces it.
    #[error("signature mismatch")]
    Mismatch,
}

/// Checks webhook signatures against one or more secrets.
///
/// Several secrets allow rotation and several assistants on one endpoint: a
/// request passes when any of them produced its signature.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<HmacSha256>,
    tolerance: Duration,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("secrets", &format_args!("{} configured", self.keys.len()))
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl Verifier {
    /// A verifier for `secrets`, accepting timestamps within `tolerance` of now.
    pub fn new<S: AsRef<[u8]>>(secrets: &[S], tolerance: Duration) -> Self {
        let keys = secrets
            .iter()
            .map(|s| HmacSha256::new_from_slice(s.as_ref()).expect("HMAC takes keys of any size"))
            .collect();
        Self { keys, tolerance }
    }

    /// Verifies a request given its raw header values and body, at time `now`.
    pub fn verify(
        &self,
        timestamp: Option<&[u8]>,
        signature: Option<&[u8]>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        let (timestamp, digest) = self.parse_headers(timestamp, signature, now)?;
        let matched = self.keys.iter().any(|key| {
            let mut mac = key.clone();
            mac.update(timestamp);
            mac.update(b".");
            mac.update(body);
            // `verify_slice` compares in constant time.
            mac.verify_slice(&digest).is_ok()
        });
        if matched { Ok(()) } else { Err(SignatureError::Mismatch) }
    }

    /// The checks that need no body: both headers present and well-formed,
    /// the timestamp inside the window. [`verify`](Self::verify) makes them
    /// too; making them first refuses a request before its body is read.
    pub fn check_headers(
        &self,
        timestamp: Option<&[u8]>,
        signature: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        self.parse_headers(timestamp, signature, now).map(|_| ())
    }

    fn parse_headers<'a>(
        &self,
        timestamp: Option<&'a [u8]>,
        signature: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<(&'a [u8], [u8; 32]), SignatureError> {
        let signature = signature.ok_or(SignatureError::MissingSignature)?;
        let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
        let signed_at = parse_timestamp(timestamp)?;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if now.abs_diff(signed_at) > self.tolerance.as_secs() {
            return Err(SignatureError::StaleTimestamp { tolerance_secs: self.tolerance.as_secs() });
        }
        Ok((timestamp, parse_signature(signature)?))
    }
}

fn parse_timestamp(raw: &[u8]) -> Result<u64, SignatureError> {
    std::str::from_utf8(raw)
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or(SignatureError::MalformedTimestamp)
}

fn parse_signature(raw: &[u8]) -> Result<[u8; 32], SignatureError> {
    let raw = raw.trim_ascii();
    let hex_digits = raw.strip_prefix(b"sha256=").unwrap_or(raw);
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_digits, &mut digest).map_err(|_| SignatureError::MalformedSignature)?;
    Ok(digest)
}

/// Signs `body` as the platform does, returning the `X-Webhook-Signature`
/// value (`sha256=<lowercase hex>`) for `timestamp` (Unix seconds).
///
/// ```
/// let sig = switchboard::sign(b"whsec_test_secret_12345", 1700000000, br#"{"message":{"type":"status-update"}}"#);
/// assert_eq!(sig, "sha256=09a6634fdc9688fdc77b1b2997e7d4abbeef50439bee0292c555d21be39b1675");
/// ```
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any size");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The current Unix time in seconds, as the platform puts in `X-Webhook-Timestamp`.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret_12345";
    const BODY: &[u8] = br#"{"message":{"type":"status-update"}}"#;
    const HEX: &str = "09a6634fdc9688fdc77b1b2997e7d4abbeef50439bee0292c555d21be39b1675";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn verifier() -> Verifier {
        Verifier::new(&[SECRET], Duration::from_secs(300))
    }

    #[test]
    fn spec_vector_signs_and_verifies_in_both_forms() {
        assert_eq!(sign(SECRET.as_bytes(), 1_700_000_000, BODY), format!("sha256={HEX}"));
        let v = verifier();
        let prefixed = format!("sha256={HEX}");
        assert_eq!(v.verify(Some(b"1700000000"), Some(prefixed.as_bytes()), BODY, at(1_700_000_000)), Ok(()));
        assert_eq!(v.verify(Some(b"1700000000"), Some(HEX.as_bytes()), BODY, at(1_700_000_000)), Ok(()));
    }

    #[test]
    fn fixture_file_vector_matches() {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/spec/status-update.request.in-progress.json"
        ))
        .unwrap();
        assert_eq!(
            sign(SECRET.as_bytes(), 1_700_000_000, &body),
            "sha256=13b76f1481e444b908e898e539eedbf767edd724184ff9ae18e4b24a00829e42"
        );
    }

    #[test]
    fn rejects_tampering_wrong_secret_and_bad_input() {
        let v = verifier();
        let now = at(1_700_000_000);
        let sig = format!("sha256={HEX}");
        let ts = Some(&b"1700000000"[..]);
        assert_eq!(v.verify(ts, Some(sig.as_bytes()), b"{}", now), Err(SignatureError::Mismatch));
        assert_eq!(v.verify(Some(b"1700000001"), Some(sig.as_bytes()), BODY, now), Err(SignatureError::Mismatch));
        let other = Verifier::new(&["other"], Duration::from_secs(300));
        assert_eq!(other.verify(ts, Some(sig.as_bytes()), BODY, now), Err(SignatureError::Mismatch));
        assert_eq!(v.verify(ts, None, BODY, now), Err(SignatureError::MissingSignature));
        assert_eq!(v.verify(None, Some(sig.as_bytes()), BODY, now), Err(SignatureError::MissingTimestamp));
        assert_eq!(v.verify(Some(b"17e8"), Some(sig.as_bytes()), BODY, now), Err(SignatureError::MalformedTimestamp));
        assert_eq!(v.verify(Some(b"-5"), Some(sig.as_bytes()), BODY, now), Err(SignatureError::MalformedTimestamp));
        assert_eq!(v.verify(ts, Some(b"sha256=zz"), BODY, now), Err(SignatureError::MalformedSignature));
        assert_eq!(v.verify(ts, Some(&sig.as_bytes()[..40]), BODY, now), Err(SignatureError::MalformedSignature));
    }

    #[test]
    fn header_checks_need_no_body_and_match_verify() {
        let v = verifier();
        let now = at(1_700_000_000);
        let sig = format!("sha256={HEX}");
        let ts = Some(&b"1700000000"[..]);
        // Well-formed headers pass, whatever the body turns out to be.
        assert_eq!(v.check_headers(ts, Some(sig.as_bytes()), now), Ok(()));
        assert_eq!(v.check_headers(ts, None, now), Err(SignatureError::MissingSignature));
        assert_eq!(v.check_headers(None, Some(sig.as_bytes()), now), Err(SignatureError::MissingTimestamp));
        assert_eq!(v.check_headers(ts, Some(b"sha256=zz"), now), Err(SignatureError::MalformedSignature));
        assert_eq!(
            v.check_headers(ts, Some(sig.as_bytes()), at(1_700_000_301)),
            Err(SignatureError::StaleTimestamp { tolerance_secs: 300 })
        );
    }

    #[test]
    fn any_configured_secret_passes() {
        let v = Verifier::new(&["old-secret", SECRET], Duration::from_secs(300));
        let sig = format!("sha256={HEX}");
        assert_eq!(v.verify(Some(b"1700000000"), Some(sig.as_bytes()), BODY, at(1_700_000_000)), Ok(()));
    }

    #[test]
    fn timestamp_window_applies_both_ways() {
        let v = verifier();
        let sig = format!("sha256={HEX}");
        let check = |now| v.verify(Some(b"1700000000"), Some(sig.as_bytes()), BODY, at(now));
        assert_eq!(check(1_700_000_300), Ok(()));
        assert_eq!(check(1_699_999_700), Ok(()));
        let stale = Err(SignatureError::StaleTimestamp { tolerance_secs: 300 });
        assert_eq!(check(1_700_000_301), stale);
        assert_eq!(check(1_699_999_699), stale);
    }
}
