//! Outbound HTTP for plugins (`wasi:http/outgoing-handler`): the one place a
//! request is allowed or refused.
//!
//! [`OutboundHttp`] is the `WasiHttpHooks` of every component call. For each
//! request it
//!
//! 1. matches scheme, host and port against the plugin's `allowed_hosts`
//!    (nothing matches: `HTTP-request-denied`);
//! 2. resolves the host once and drops loopback, private, link-local and
//!    other non-public addresses unless the matching entry grants them (none
//!    left: `destination-IP-prohibited`);
//! 3. connects to an address it checked (never resolving again, so DNS
//!    rebinding cannot swap it), with TLS for `https` verified against the
//!    host name and the public root certificates (plus the plugin's own
//!    `[http] ca_file`, for an internal CA);
//! 4. bounds connecting and waiting by the call's remaining time, the
//!    response body by `max_response_bytes`, and the call's requests open at
//!    once by `max_concurrent_requests` (more wait for a place);
//! 5. keeps what the call's requests hold in the host bounded: each request
//!    sent counts against the call's caps of `host_limits` until its
//!    connection is done, request bodies are taken in small chunks, and a
//!    connection buffers at most [`CONNECTION_BUFFER_BYTES`].
//!
//! The target comes only from the plugin's own request, checked against its
//! own manifest; nothing from the inbound webhook chooses it. Logs name the
//! plugin, scheme, host and port, never the path or query (they may carry
//! secrets).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep, timeout_at};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::addresses::non_public_reason;
use super::{Capabilities, Host, HostDecision, Scheme};
use crate::sandbox::host_limits::{self, HeldOutside, HeldRequest};

/// Most bytes one connection buffers, reading or writing (hyper's default is
/// about 400 KiB); a response head must fit in it.
pub const CONNECTION_BUFFER_BYTES: usize = 64 << 10;

/// The future `send_request` gives back: the response head, and a task that
/// drives the connection while the body is read.
type SendFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)>> + Send>;
type IoFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;

/// The outbound-HTTP hooks of one call.
pub struct OutboundHttp {
    capabilities: Arc<Capabilities>,
    deadline: Instant,
    /// Places for the call's open requests (`max_concurrent_requests`),
    /// made at its first request.
    open: Option<Arc<Semaphore>>,
    /// Counts the requests the call has sent and not yet had answered.
    held: HeldOutside,
}

impl OutboundHttp {
    /// Hooks for a call of the plugin with `capabilities`; every request
    /// must be done by `deadline`; requests sent count in `held`.
    pub fn new(capabilities: Arc<Capabilities>, deadline: Instant, held: HeldOutside) -> Self {
        Self { capabilities, deadline, open: None, held }
    }
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: IoFuture,
    ) -> SendFuture {
        let Some(held) = self.held.send(&request) else {
            tracing::warn!(plugin = %self.capabilities.plugin(), limit = host_limits::MAX_OPEN_REQUESTS,
                "outbound HTTP request refused: the call has too many requests out");
            let refused = format!("more than {} requests out at once", host_limits::MAX_OPEN_REQUESTS);
            return Box::new(async move { Err(Error::InternalError(Some(refused))) });
        };
        let capabilities = self.capabilities.clone();
        let deadline = self.deadline;
        let limit = capabilities.http().max_concurrent_requests;
        let open = self.open.get_or_insert_with(|| Arc::new(Semaphore::new(limit))).clone();
        Box::new(async move { send(&capabilities, deadline, open, held, request, options).await })
    }

    // A request body is taken from the plugin a small chunk at a time, with
    // one more queued: what a body not yet sent holds in the host.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        host_limits::BODY_CHUNK_BYTES
    }
}

/// Where a request goes.
struct Target {
    scheme: Scheme,
    host: Host,
    port: u16,
}

impl Target {
    fn of(uri: &http::Uri) -> Result<Self, Error> {
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => return Err(Error::HttpProtocolError),
        };
        let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
        if authority.as_str().contains('@') {
            return Err(Error::HttpRequestUriInvalid);
        }
        let host = Host::parse(authority.host()).map_err(|_| Error::HttpRequestUriInvalid)?;
        let port = authority.port_u16().unwrap_or(scheme.default_port());
        Ok(Self { scheme, host, port })
    }
}

async fn send(
    capabilities: &Capabilities,
    deadline: Instant,
    open: Arc<Semaphore>,
    held: HeldRequest,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)> {
    let started = Instant::now();
    let target = Target::of(request.uri())?;
    let plugin = capabilities.plugin();
    let (scheme, host, port) = (target.scheme, &target.host, target.port);
    // The host name is the plugin's to choose: redacted in the log like everything else it emits.
    let shown = capabilities.values().redact(host.to_string());
    let decision = capabilities.http().decide(scheme, host, port);
    if decision == HostDecision::Denied {
        tracing::warn!(%plugin, %scheme, host = %shown, port, "outbound HTTP request denied: not in the plugin's [http] allowed_hosts");
        return Err(Error::HttpRequestDenied);
    }

    let addresses = resolve(&target, deadline).await?;
    let mut refused = None;
    let checked: Vec<SocketAddr> = addresses
        .into_iter()
        .filter(|address| match non_public_reason(address.ip()) {
            Some(reason) if decision != HostDecision::AnyAddress => {
                refused.get_or_insert((address.ip(), reason));
                false
            }
            _ => true,
        })
        .collect();
    if checked.is_empty() {
        return Err(match refused {
            Some((address, reason)) => {
                tracing::warn!(%plugin, %scheme, host = %shown, port, %address, reason,
                    "outbound HTTP request refused: the host resolves to a non-public address, and its allowed_hosts entry does not grant that (allow_private = true, or name the address itself)");
                Error::DestinationIpProhibited
            }
            None => Error::DnsError { rcode: Some("no addresses".into()), info_code: None },
        });
    }

    let connect_deadline = earlier(deadline, options.and_then(|o| o.connect_timeout));
    // A place among the call's open requests, held until this one's
    // connection is done (so a plugin cannot open sockets without bound).
    if open.available_permits() == 0 {
        tracing::debug!(%plugin, %scheme, host = %shown, port, "outbound HTTP request waits: max_concurrent_requests are open");
    }
    let place = timeout_at(connect_deadline, open.acquire_owned())
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .expect("the semaphore is never closed");
    let tcp = connect(&checked, connect_deadline).await?;
    let stream: Box<dyn Io> = match scheme {
        Scheme::Http => Box::new(tcp),
        Scheme::Https => {
            let name = match host {
                Host::Name(name) => {
                    rustls::pki_types::ServerName::try_from(name.clone()).map_err(|_| Error::HttpRequestUriInvalid)?
                }
                Host::Ip(ip) => rustls::pki_types::ServerName::from(*ip),
            };
            let connector = tokio_rustls::TlsConnector::from(capabilities.tls().clone());
            let tls = timeout_at(connect_deadline, connector.connect(name, tcp))
                .await
                .map_err(|_| Error::ConnectionTimeout)?
                .map_err(|e| match untrusted_certificate(&e) {
                    Some(why) => {
                        tracing::warn!(%plugin, %scheme, host = %shown, port, reason = ?why,
                            "outbound HTTPS refused: the server's certificate is not trusted (for an internal CA, name it in the manifest's [http] ca_file)");
                        Error::TlsCertificateError
                    }
                    None => Error::Tls(e),
                })?;
            Box::new(tls)
        }
    };
    let handshake = hyper::client::conn::http1::Builder::new()
        .max_buf_size(CONNECTION_BUFFER_BYTES)
        .handshake(TokioIo::new(stream));
    let (mut sender, connection) =
        timeout_at(connect_deadline, handshake).await.map_err(|_| Error::ConnectionTimeout)??;

    let method = request.method().clone();
    // The request line carries only the path; the host is in the Host header.
    let path = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    *request.uri_mut() = http::Uri::builder().path_and_query(path).build().map_err(|_| Error::HttpRequestUriInvalid)?;

    let first_byte_deadline = earlier(deadline, options.and_then(|o| o.first_byte_timeout));
    let mut response = pin!(timeout_at(first_byte_deadline, sender.send_request(request)));
    let mut connection = Some(connection);
    // Wait for the response head while driving the connection.
    let response = std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = response.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        if let Some(conn) = connection.as_mut()
            && let Poll::Ready(result) = Pin::new(conn).poll(cx)
        {
            connection = None;
            if let Err(e) = result {
                return Poll::Ready(Ok(Err(e)));
            }
            return response.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await
    .map_err(|_| Error::ConnectionReadTimeout)??;

    let limit = capabilities.http().max_response_bytes;
    let declared =
        response.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        tracing::warn!(%plugin, %scheme, host = %shown, port, limit, "outbound HTTP response refused: its body is over max_response_bytes");
        return Err(Error::HttpResponseBodySize(declared));
    }
    tracing::debug!(%plugin, %method, %scheme, host = %shown, port,
        status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "outbound HTTP response");
    let response = response.map(|incoming| CappedBody::new(incoming, limit, deadline).boxed_unsync());
    let io: IoFuture = Box::new(async move {
        // The place, and the request's count, are held until the answer is read.
        let (_place, _held) = (place, held);
        match connection {
            Some(connection) => connection.await.map_err(Error::from),
            None => Ok(()),
        }
    });
    Ok((response, io))
}

/// The earlier of `deadline` and `now + timeout`.
fn earlier(deadline: Instant, timeout: Option<Duration>) -> Instant {
    match timeout.and_then(|t| Instant::now().checked_add(t)) {
        Some(at) => at.min(deadline),
        None => deadline,
    }
}

/// Every address of the target, looked up once.
async fn resolve(target: &Target, deadline: Instant) -> Result<Vec<SocketAddr>, Error> {
    match &target.host {
        Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, target.port)]),
        Host::Name(name) => {
            let found = timeout_at(deadline, tokio::net::lookup_host((name.as_str(), target.port)))
                .await
                .map_err(|_| Error::DnsTimeout)?
                .map_err(|e| Error::DnsError { rcode: Some(e.to_string()), info_code: None })?;
            Ok(found.collect())
        }
    }
}

/// Connects to the first of `addresses` that answers.
async fn connect(addresses: &[SocketAddr], deadline: Instant) -> Result<TcpStream, Error> {
    let mut last = Error::ConnectionRefused;
    for address in addresses {
        match timeout_at(deadline, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = Error::Connect(e),
            Err(_) => return Err(Error::ConnectionTimeout),
        }
    }
    Err(last)
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Why the server's certificate was refused, when that is why the TLS
/// handshake failed.
fn untrusted_certificate(error: &std::io::Error) -> Option<&rustls::CertificateError> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(why) => Some(why),
        _ => None,
    }
}

/// A response body that fails past `limit` bytes or past the call's deadline.
struct CappedBody {
    inner: hyper::body::Incoming,
    limit: usize,
    remaining: usize,
    deadline: Pin<Box<Sleep>>,
}

impl CappedBody {
    fn new(inner: hyper::body::Incoming, limit: usize, deadline: Instant) -> Self {
        Self { inner, limit, remaining: limit, deadline: Box::pin(tokio::time::sleep_until(deadline)) }
    }
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if data.len() > this.remaining {
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(this.limit as u64)))));
                    }
                    this.remaining -= data.len();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
