//! Outbound HTTP from a plugin, through `wasi:http`: a blocking client that
//! makes a call a line or two.
//!
//! ```no_run
//! use switchboard_sdk::{http, prelude::*};
//!
//! #[derive(Deserialize)]
//! struct Slots { slots: Vec<String> }
//!
//! fn free_slots(date: &str) -> Result<Vec<String>, ToolError> {
//!     let response = http::get(&format!("https://api.cal.example/slots?date={date}"))?;
//!     if !response.is_success() {
//!         return Err(ToolError::failed(format!("the calendar answered {}", response.status)));
//!     }
//!     Ok(response.json::<Slots>()?.slots)
//! }
//! ```
//!
//! Switchboard lets a request out only to a host in the plugin's manifest
//! (`[http] allowed_hosts`); anything else fails with [`HttpError::Denied`],
//! and a host that resolves to a loopback, private or link-local address
//! with [`HttpError::PrivateAddress`] unless the manifest grants that. Each
//! request gets at most the call's remaining time, and the response body is
//! capped (`max_response_bytes`, 1 MiB by default). `?` turns every
//! [`HttpError`] into a [`ToolError::Failed`] worded for the LLM.
//!
//! Errors name the request's `scheme://host:port`, never its path or query,
//! so they cannot leak a key passed in the URL.
//!
//! Outside WebAssembly (native unit tests) there is no host to send through:
//! every request fails with [`HttpError::Unavailable`].

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{CallContext, ToolError};

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
}

/// A request to send; build it with [`Request::get`], [`Request::post`], ...
///
/// ```
/// use switchboard_sdk::http::Request;
///
/// let request = Request::post("https://api.cal.example/bookings")
///     .bearer_auth("token")
///     .json(&serde_json::json!({"slot": "10:00"}))
///     .unwrap();
/// assert_eq!(request.url(), "https://api.cal.example/bookings");
/// ```
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

/// A response: status, headers and the whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The host is not in the plugin's `[http] allowed_hosts`.
    Denied {
        /// `scheme://host:port` of the request.
        origin: String,
    },
    /// The host resolves to a loopback, private or link-local address, which
    /// its `allowed_hosts` entry does not grant.
    PrivateAddress {
        /// `scheme://host:port` of the request.
        origin: String,
    },
    /// The URL is not an absolute `http` or `https` URL.
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// No answer in time (connecting, or waiting for the response).
    Timeout {
        /// `scheme://host:port` of the request.
        origin: String,
    },
    /// The response body is larger than the plugin may receive.
    TooLarge {
        /// `scheme://host:port` of the request.
        origin: String,
    },
    /// Any other failure: DNS, connection, TLS, protocol.
    Failed {
        /// `scheme://host:port` of the request.
        origin: String,
        /// What went wrong.
        reason: String,
    },
    /// The body is not what the caller expected (see [`Response::json`]).
    Body {
        /// What is wrong with it.
        reason: String,
    },
    /// There is no Switchboard host to send through (a native build).
    Unavailable,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied { origin } => {
                write!(f, "HTTP request to {origin} denied: it is not in this plugin's allowed hosts")
            }
            HttpError::PrivateAddress { origin } => write!(
                f,
                "HTTP request to {origin} refused: it resolves to a private or local address this plugin may not reach"
            ),
            HttpError::InvalidUrl { reason } => write!(f, "invalid URL: {reason}"),
            HttpError::Timeout { origin } => write!(f, "HTTP request to {origin} timed out"),
            HttpError::TooLarge { origin } => write!(f, "the response from {origin} is too large"),
            HttpError::Failed { origin, reason } => write!(f, "HTTP request to {origin} failed: {reason}"),
            HttpError::Body { reason } => write!(f, "unexpected response body: {reason}"),
            HttpError::Unavailable => f.write_str("outbound HTTP is only available inside Switchboard"),
        }
    }
}

impl std::error::Error for HttpError {}

/// An [`HttpError`] is a [`ToolError::Failed`] with its message.
impl From<HttpError> for ToolError {
    fn from(error: HttpError) -> Self {
        ToolError::failed(error.to_string())
    }
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    Request::get(url).send()
}

/// `POST url` with `body` as JSON (`Content-Type: application/json`).
pub fn post_json<T: Serialize + ?Sized>(url: &str, body: &T) -> Result<Response, HttpError> {
    Request::post(url).json(body)?.send()
}

/// Sends all `requests` at once and reads every response: a call waits about
/// as long as the slowest of them, not their sum. Results come back in the
/// order of `requests`, and one failing does not fail the others.
///
/// Switchboard keeps at most the manifest's `[http] max_concurrent_requests`
/// (8 by default) of a call's requests open at once; the others wait for a
/// place, within the call's time. Bodies are written and answers read as
/// each is ready, so an answer that has come frees its place even while
/// later request bodies are still going out.
///
/// ```no_run
/// use switchboard_sdk::http::{self, Request};
///
/// let [contact, slots] = http::send_all(vec![
///     Request::get("https://crm.example.com/contacts?phone=%2B31612345678"),
///     Request::get("https://api.cal.example/slots?date=2026-12-01"),
/// ])
/// .try_into()
/// .expect("one result per request");
/// # let _ = (contact, slots);
/// ```
pub fn send_all(requests: Vec<Request>) -> Vec<Result<Response, HttpError>> {
    #[cfg(target_arch = "wasm32")]
    {
        wasi::send_all(&requests)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        requests.iter().map(|r| Url::parse(&r.url).and(Err(HttpError::Unavailable))).collect()
    }
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self { method, url: url.into(), headers: Vec::new(), body: Vec::new(), timeout: None }
    }

    /// `GET url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// `POST url`.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// `PUT url`.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new(Method::Put, url)
    }

    /// `PATCH url`.
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new(Method::Patch, url)
    }

    /// `DELETE url`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::Delete, url)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds `Authorization: Bearer TOKEN`.
    pub fn bearer_auth(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Adds `Idempotency-Key` naming this tool call
    /// ([`CallContext::idempotency_key`]: the same when the platform retries
    /// the call), so an upstream that honours the header does a retried
    /// call's work once. Nothing is added for a call without such a key (an
    /// MCP client's).
    ///
    /// ```
    /// use switchboard_sdk::{CallContext, http::Request};
    ///
    /// let ctx = CallContext { call_id: "c1".into(), tool_call_id: "tool_abc".into(), ..CallContext::default() };
    /// let request = Request::post("https://api.cal.example/bookings").idempotency_key(&ctx);
    /// assert_eq!(request.headers(), [("idempotency-key".to_owned(), "c1:tool_abc".to_owned())]);
    /// ```
    pub fn idempotency_key(self, ctx: &CallContext) -> Self {
        match ctx.idempotency_key() {
            Some(key) => self.header("idempotency-key", key),
            None => self,
        }
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets `value` as the JSON body, with `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, HttpError> {
        let body = serde_json::to_vec(value).map_err(|e| HttpError::Body { reason: e.to_string() })?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Gives up connecting, or waiting for the response, after `timeout`
    /// (the call's deadline applies anyway).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The headers added so far, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        #[cfg(target_arch = "wasm32")]
        {
            let mut results = wasi::send_all(std::slice::from_ref(&self));
            results.pop().unwrap_or(Err(HttpError::Unavailable))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            Url::parse(&self.url).and(Err(HttpError::Unavailable))
        }
    }
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| HttpError::Body { reason: format!("not the expected JSON: {e}") })
    }
}

/// The parts of an absolute `http(s)://` URL a request needs.
#[derive(Debug, PartialEq, Eq)]
struct Url<'a> {
    https: bool,
    authority: &'a str,
    path_and_query: &'a str,
}

impl<'a> Url<'a> {
    fn parse(url: &'a str) -> Result<Self, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl { reason: reason.to_owned() };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("it must start with http:// or https://"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(invalid("the scheme must be http or https")),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(end);
        if authority.is_empty() {
            return Err(invalid("the host is missing"));
        }
        if authority.contains('@') {
            return Err(invalid("user info (user@host) is not supported; send credentials in a header"));
        }
        if authority.chars().any(|c| c.is_whitespace() || c.is_control())
            || path_and_query.contains(char::is_whitespace)
        {
            return Err(invalid("it contains spaces; percent-encode them"));
        }
        let path_and_query = if path_and_query.is_empty() { "/" } else { path_and_query };
        Ok(Self { https, authority, path_and_query })
    }

    /// `scheme://host:port`, for messages: never the path or query.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let has_port = match self.authority.rfind(':') {
            Some(i) => !self.authority[i..].contains(']'),
            None => false,
        };
        let default_port = if self.https { 443 } else { 80 };
        if has_port {
            format!("{scheme}://{}", self.authority)
        } else {
            format!("{scheme}://{}:{default_port}", self.authority)
        }
    }
}

/// The request over `wasi:http/outgoing-handler`, blocking.
#[cfg(target_arch = "wasm32")]
mod wasi {
    use super::{HttpError, Method, Request, Response, Url};
    use crate::wasm::bindings::wasi::http::outgoing_handler;
    use crate::wasm::bindings::wasi::http::types::{
        ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, Method as WitMethod, OutgoingBody,
        OutgoingRequest, RequestOptions, Scheme, http_error_code,
    };
    use crate::wasm::bindings::wasi::io::poll::{Pollable, poll};
    use crate::wasm::bindings::wasi::io::streams::{InputStream, OutputStream, StreamError};

    /// Bytes asked for per read.
    const READ_CHUNK: u64 = 64 << 10;

    /// Sends every request and reads every response at once. One loop waits
    /// on whatever can move: a request body's stream taking bytes, a
    /// response arriving, a response body's bytes. So the answers of early
    /// requests are read while later bodies are still being written, which
    /// is what frees places for requests that wait for one (the host holds
    /// a place until its response has been read).
    pub(super) fn send_all(requests: &[Request]) -> Vec<Result<Response, HttpError>> {
        let mut exchanges: Vec<Exchange<'_>> = requests.iter().map(Exchange::start).collect();
        loop {
            // Pollables borrow their streams: all are dropped before any
            // exchange moves on (and may drop its streams).
            let waiting: Vec<(usize, Pollable)> =
                exchanges.iter().enumerate().filter_map(|(i, exchange)| Some((i, exchange.subscribe()?))).collect();
            if waiting.is_empty() {
                break;
            }
            let ready: Vec<usize> = {
                let pollables: Vec<&Pollable> = waiting.iter().map(|(_, pollable)| pollable).collect();
                poll(&pollables).into_iter().map(|k| waiting[k as usize].0).collect()
            };
            drop(waiting);
            for i in ready {
                exchanges[i].advance();
            }
        }
        exchanges.into_iter().map(Exchange::into_result).collect()
    }

    /// One request and its response, as far as they have got.
    struct Exchange<'a> {
        /// `scheme://host:port`, what errors name.
        origin: String,
        stage: Stage<'a>,
    }

    /// Fields are in drop order: a stream before the body it belongs to.
    enum Stage<'a> {
        /// Writing the request body; `rest` is still to be handed over.
        Writing {
            stream: OutputStream,
            body: OutgoingBody,
            pending: FutureIncomingResponse,
            rest: &'a [u8],
        },
        /// The body is handed over; waiting for the response.
        Waiting {
            pending: FutureIncomingResponse,
            write_error: Option<HttpError>,
        },
        /// Reading the response body into `bytes`.
        Reading {
            stream: InputStream,
            body: IncomingBody,
            response: IncomingResponse,
            status: u16,
            headers: Vec<(String, String)>,
            bytes: Vec<u8>,
        },
        Done(Result<Response, HttpError>),
    }

    impl<'a> Exchange<'a> {
        /// Hands `request` to the host; the body is written as the host
        /// takes it.
        fn start(request: &'a Request) -> Self {
            match Url::parse(&request.url) {
                Ok(url) => {
                    let origin = url.origin();
                    let stage = begin(request, &url, &origin).unwrap_or_else(|e| Stage::Done(Err(e)));
                    Self { origin, stage }
                }
                Err(e) => Self { origin: String::new(), stage: Stage::Done(Err(e)) },
            }
        }

        /// What this exchange waits on; `None` once it is done.
        fn subscribe(&self) -> Option<Pollable> {
            match &self.stage {
                Stage::Writing { stream, .. } => Some(stream.subscribe()),
                Stage::Waiting { pending, .. } => Some(pending.subscribe()),
                Stage::Reading { stream, .. } => Some(stream.subscribe()),
                Stage::Done(_) => None,
            }
        }

        /// Moves on as far as it can without blocking.
        fn advance(&mut self) {
            let stage = std::mem::replace(&mut self.stage, Stage::Done(Err(HttpError::Unavailable)));
            self.stage = match stage {
                Stage::Writing { stream, body, pending, rest } => write_body(stream, body, pending, rest, &self.origin),
                Stage::Waiting { pending, write_error } => match pending.get() {
                    None => Stage::Waiting { pending, write_error },
                    Some(Ok(Ok(response))) => match write_error {
                        Some(e) => Stage::Done(Err(e)),
                        None => read_response(response, &self.origin),
                    },
                    Some(Ok(Err(code))) => Stage::Done(Err(error(code, &self.origin))),
                    Some(Err(())) => Stage::Done(Err(failed(&self.origin, "the response was taken twice"))),
                },
                Stage::Reading { stream, body, response, status, headers, bytes } => {
                    read_body(stream, body, response, status, headers, bytes, &self.origin)
                }
                done @ Stage::Done(_) => done,
            };
        }

        fn into_result(self) -> Result<Response, HttpError> {
            match self.stage {
                Stage::Done(result) => result,
                _ => Err(failed(&self.origin, "the exchange did not finish")),
            }
        }
    }

    /// Builds the request, hands it to the host and starts on its body.
    fn begin<'a>(request: &'a Request, url: &Url<'_>, origin: &str) -> Result<Stage<'a>, HttpError> {
        let entries: Vec<(String, Vec<u8>)> =
            request.headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.clone().into_bytes())).collect();
        let headers =
            Fields::from_list(&entries).map_err(|e| failed(origin, &format!("header not allowed ({e:?})")))?;
        let outgoing = OutgoingRequest::new(headers);
        let method = match request.method {
            Method::Get => WitMethod::Get,
            Method::Head => WitMethod::Head,
            Method::Post => WitMethod::Post,
            Method::Put => WitMethod::Put,
            Method::Patch => WitMethod::Patch,
            Method::Delete => WitMethod::Delete,
            Method::Options => WitMethod::Options,
        };
        let invalid = |what: &str| HttpError::InvalidUrl { reason: format!("the host refused its {what}") };
        outgoing.set_method(&method).map_err(|()| invalid("method"))?;
        outgoing
            .set_scheme(Some(if url.https { &Scheme::Https } else { &Scheme::Http }))
            .map_err(|()| invalid("scheme"))?;
        outgoing.set_authority(Some(url.authority)).map_err(|()| invalid("host"))?;
        outgoing.set_path_with_query(Some(url.path_and_query)).map_err(|()| invalid("path"))?;
        let body = outgoing.body().map_err(|()| failed(origin, "no request body"))?;

        let options = request.timeout.map(|timeout| {
            let options = RequestOptions::new();
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            let _ = options.set_between_bytes_timeout(Some(nanos));
            options
        });
        let pending = outgoing_handler::handle(outgoing, options).map_err(|code| error(code, origin))?;
        // The body is written after `handle`, while the host sends it.
        let stream = body.write().map_err(|()| failed(origin, "no request body stream"))?;
        Ok(write_body(stream, body, pending, &request.body, origin))
    }

    /// Hands over as much of the body as the host takes now; finishes the
    /// body once all of it is written. A refused request fails the write
    /// too; its own error, from the response, is the one to report.
    fn write_body<'a>(
        stream: OutputStream,
        body: OutgoingBody,
        pending: FutureIncomingResponse,
        mut rest: &'a [u8],
        origin: &str,
    ) -> Stage<'a> {
        let mut write_error = None;
        while !rest.is_empty() {
            let written = stream.check_write().and_then(|room| match usize::try_from(room).unwrap_or(usize::MAX) {
                0 => Ok(None),
                room => {
                    let (now, later) = rest.split_at(room.min(rest.len()));
                    stream.write(now).map(|()| Some(later))
                }
            });
            match written {
                Ok(None) => return Stage::Writing { stream, body, pending, rest },
                Ok(Some(later)) => rest = later,
                Err(e) => {
                    write_error = Some(stream_error(e, origin));
                    break;
                }
            }
        }
        drop(stream);
        if let Err(code) = OutgoingBody::finish(body, None) {
            write_error.get_or_insert(error(code, origin));
        }
        Stage::Waiting { pending, write_error }
    }

    /// Takes the status and headers of a response and starts on its body.
    fn read_response(response: IncomingResponse, origin: &str) -> Stage<'static> {
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let Ok(body) = response.consume() else {
            return Stage::Done(Err(failed(origin, "no response body")));
        };
        let Ok(stream) = body.stream() else {
            return Stage::Done(Err(failed(origin, "no response body stream")));
        };
        read_body(stream, body, response, status, headers, Vec::new(), origin)
    }

    /// Reads what has arrived of a response body; done at its end.
    fn read_body(
        stream: InputStream,
        body: IncomingBody,
        response: IncomingResponse,
        status: u16,
        headers: Vec<(String, String)>,
        mut bytes: Vec<u8>,
        origin: &str,
    ) -> Stage<'static> {
        let end = loop {
            match stream.read(READ_CHUNK) {
                Ok(chunk) if chunk.is_empty() => {
                    return Stage::Reading { stream, body, response, status, headers, bytes };
                }
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break Ok(Response { status, headers, body: bytes }),
                Err(e) => break Err(stream_error(e, origin)),
            }
        };
        drop(stream);
        drop(IncomingBody::finish(body));
        drop(response);
        Stage::Done(end)
    }

    fn failed(origin: &str, reason: &str) -> HttpError {
        HttpError::Failed { origin: origin.to_owned(), reason: reason.to_owned() }
    }

    fn stream_error(failure: StreamError, origin: &str) -> HttpError {
        match failure {
            StreamError::LastOperationFailed(e) => match http_error_code(&e) {
                Some(code) => error(code, origin),
                None => {
                    // wasmtime 48 reports errors in the middle of a response
                    // body without an error code; only their text says which.
                    let reason = e.to_debug_string();
                    if reason.contains("body size exceeds limit") {
                        HttpError::TooLarge { origin: origin.to_owned() }
                    } else if reason.contains("timeout") {
                        HttpError::Timeout { origin: origin.to_owned() }
                    } else {
                        HttpError::Failed { origin: origin.to_owned(), reason }
                    }
                }
            },
            StreamError::Closed => HttpError::Failed { origin: origin.to_owned(), reason: "connection closed".into() },
        }
    }

    fn error(code: ErrorCode, origin: &str) -> HttpError {
        let origin = origin.to_owned();
        match code {
            ErrorCode::HttpRequestDenied => HttpError::Denied { origin },
            ErrorCode::DestinationIpProhibited => HttpError::PrivateAddress { origin },
            ErrorCode::HttpRequestUriInvalid => HttpError::InvalidUrl { reason: format!("the host refused {origin}") },
            ErrorCode::DnsTimeout
            | ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::HttpResponseTimeout => HttpError::Timeout { origin },
            ErrorCode::HttpResponseBodySize(_) => HttpError::TooLarge { origin },
            ErrorCode::DnsError(_) => HttpError::Failed { origin, reason: "the host name did not resolve".into() },
            ErrorCode::ConnectionRefused => HttpError::Failed { origin, reason: "connection refused".into() },
            ErrorCode::TlsCertificateError => {
                HttpError::Failed { origin, reason: "the server's TLS certificate is not trusted".into() }
            }
            other => HttpError::Failed { origin, reason: format!("{other:?}") },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_the_parts_a_request_needs() {
        let url = Url::parse("https://api.cal.example/v1/slots?date=2025-12-15#top").unwrap();
        assert_eq!(url, Url { https: true, authority: "api.cal.example", path_and_query: "/v1/slots?date=2025-12-15" });
        assert_eq!(url.origin(), "https://api.cal.example:443");
        let url = Url::parse("http://127.0.0.1:8080?x=1").unwrap();
        assert_eq!((url.authority, url.path_and_query), ("127.0.0.1:8080", "?x=1"));
        assert_eq!(url.origin(), "http://127.0.0.1:8080");
        assert_eq!(Url::parse("HTTP://[::1]").unwrap().origin(), "http://[::1]:80");
        assert_eq!(Url::parse("http://[::1]:81/").unwrap().origin(), "http://[::1]:81");
        for (bad, reason) in [
            ("api.cal.example/v1", "http:// or https://"),
            ("ftp://x.example", "http or https"),
            ("https:///path", "host is missing"),
            ("https://user:pw@x.example/", "user info"),
            ("https://x.example/a b", "spaces"),
        ] {
            let err = Url::parse(bad).unwrap_err().to_string();
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }

    #[test]
    fn the_idempotency_key_names_the_tool_call_and_only_a_platforms() {
        let ctx = CallContext {
            call_id: "5c4d030f".into(),
            call_type: "inbound_phone_call".into(),
            tool_call_id: "call_0".into(),
            ..CallContext::default()
        };
        let keyed = |ctx: &CallContext| Request::post("https://x.example/bookings").idempotency_key(ctx).headers;
        assert_eq!(keyed(&ctx), [("idempotency-key".to_owned(), "5c4d030f:call_0".to_owned())]);
        let next_call = CallContext { call_id: "77aa".into(), ..ctx.clone() };
        assert_ne!(keyed(&next_call), keyed(&ctx), "a model's call_0 in another phone call is another key");
        let mcp = CallContext { call_id: "mcp".into(), call_type: "mcp".into(), ..ctx.clone() };
        assert!(keyed(&mcp).is_empty(), "MCP request ids repeat across sessions");
        assert!(keyed(&CallContext::default()).is_empty());
    }

    #[test]
    fn requests_build_and_errors_read_well() {
        let request =
            Request::post("https://x.example/a").bearer_auth("t0k").json(&serde_json::json!({"a": 1})).unwrap();
        assert_eq!(
            request.headers,
            [("authorization".into(), "Bearer t0k".into()), ("content-type".into(), "application/json".into())]
        );
        assert_eq!(request.body, br#"{"a":1}"#);
        assert_eq!(get("https://x.example/"), Err(HttpError::Unavailable), "natively there is no host");
        let denied: ToolError = HttpError::Denied { origin: "https://x.example:443".into() }.into();
        assert_eq!(
            denied,
            ToolError::failed("HTTP request to https://x.example:443 denied: it is not in this plugin's allowed hosts")
        );
        let response = Response {
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"id":7}"#.to_vec(),
        };
        assert!(response.is_success());
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        assert_eq!(response.json::<serde_json::Value>().unwrap()["id"], 7);
        assert!(response.json::<Vec<u8>>().unwrap_err().to_string().starts_with("unexpected response body"));
    }
}
