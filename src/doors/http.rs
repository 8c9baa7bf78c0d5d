//! The HTTP server in front of the doors, for [`serve`](crate::serve): an
//! accept loop with a cap on open connections, timeouts that free the slots
//! of slow and idle clients, and request bodies drained after an early answer.
//!
//! Each connection is in one of three phases, and the timeouts follow them:
//!
//! - **head**: from the accept, or from the first byte of a later request on
//!   a kept-alive connection, until the request's headers are in. It may last
//!   `header_read_timeout`; then the connection is closed without an answer.
//! - **busy**: from the headers until the answer is written and the request
//!   body is read (or drained). No connection timeout: the handler's budgets
//!   bound it, and the body must arrive within `header_read_timeout` of the
//!   headers (else the handler sees an error and answers 400).
//! - **idle**: between requests. It may last `idle_timeout`.
//!
//! When the cap is reached, the loop stops accepting: new connections wait in
//! the listen backlog until a slot frees. The cap is also kept below the
//! process's open-file limit, so that a full house still leaves descriptors
//! for plugin files, outbound HTTP and the rest.
//!
//! An answer sent before the body has arrived (413 over the limit, 401 on
//! missing headers, 415) would otherwise make the server close a socket that
//! still has the client's bytes arriving, and the kernel then resets the
//! connection: a client that writes its whole body before reading (Python
//! `requests`, Java `HttpURLConnection`) sees a broken pipe instead of the
//! answer. So what keeps arriving is read and discarded, up to [`DRAIN_TIME`]
//! and `drain_bytes`, before the connection closes or serves its next request.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{Request, Response, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::{Instant, Sleep};

use super::framing::FramingGuard;
use crate::core::metrics::ConnectionMetrics;

/// How the server treats connections. Built from the library's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerOptions {
    /// Time for a request's headers, and again for its body.
    pub header_read_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most bytes read and discarded after an answer sent before the body ended.
    pub drain_bytes: u64,
}

/// Longest time spent reading and discarding a body after an early answer.
pub(crate) const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Open-file descriptors kept out of the connection cap: at least this many,
/// or a tenth of the limit when that is more.
const RESERVED_FILES: u64 = 64;

/// Serves `router` on `listener` until `shutdown` completes; then stops
/// accepting, closes idle connections and those still sending their headers,
/// and waits for requests in flight. Counts its connections in `metrics`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServerOptions,
    metrics: ConnectionMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let cap = connection_cap(options.max_connections);
    let permits = Arc::new(Semaphore::new(cap));
    let mut builder = Builder::new(TokioExecutor::new());
    // Our own timers replace hyper's header-read timeout, which also counts
    // the idle time before a request on a kept-alive connection.
    builder.http1().header_read_timeout(None);
    let shared = Arc::new(Shared { builder, router, options, metrics });
    // Dropping the sender tells every connection to finish; every connection
    // holds a clone of `open`, so `closed()` completes when the last one ends.
    let (stop, stopping) = watch::channel(());
    let (open_tx, open) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut warned_full: Option<Instant> = None;
    let mut warned_accept: Option<Instant> = None;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                shared.metrics.cap_reached();
                if warned_full.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                    tracing::warn!(
                        max_connections = cap,
                        "connection cap reached: new connections wait in the listen backlog until one closes"
                    );
                    warned_full = Some(Instant::now());
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Most likely out of file descriptors (EMFILE, ENFILE):
                    // wait for connections to close rather than spin.
                    if warned_accept.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                        tracing::warn!(error = %e, "cannot accept connections; retrying");
                        warned_accept = Some(Instant::now());
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        // Answers streamed in parts (an MCP answer as server-sent events)
        // must not wait for the client's delayed ACK before their second
        // part: without this, every MCP call over HTTP took 40 ms more.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
        let shared = shared.clone();
        let (stopping, open) = (stopping.clone(), open.clone());
        let counted = Counted::new(&shared.metrics);
        tokio::spawn(async move {
            connection(stream, peer, &shared, stopping).await;
            drop((permit, open, counted));
        });
    }
    drop((listener, stop, open));
    open_tx.closed().await;
    Ok(())
}

/// What every connection task shares.
struct Shared {
    builder: Builder<TokioExecutor>,
    router: Router,
    options: ServerOptions,
    metrics: ConnectionMetrics,
}

/// An accepted connection, counted as open until this is dropped (whether
/// its task ends or unwinds).
struct Counted(ConnectionMetrics);

impl Counted {
    fn new(metrics: &ConnectionMetrics) -> Self {
        metrics.accepted();
        Self(metrics.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.closed();
    }
}

/// Errors of one connection that `accept` reports; the next accept works.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// `max_connections`, lowered when the open-file limit leaves less room.
fn connection_cap(max_connections: usize) -> usize {
    let max_connections = max_connections.clamp(1, Semaphore::MAX_PERMITS);
    #[cfg(unix)]
    if let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        let room = soft.saturating_sub(RESERVED_FILES.max(soft / 10)).max(1);
        if room < max_connections as u64 {
            tracing::warn!(
                max_connections,
                open_file_limit = soft,
                serving_at_most = room,
                "the open-file limit leaves room for fewer connections than max_connections; raise it (ulimit -n, LimitNOFILE=)"
            );
            return room as usize;
        }
    }
    max_connections
}

/// Serves one connection until it ends, a timeout closes it, or shutdown.
async fn connection(stream: TcpStream, peer: SocketAddr, shared: &Shared, mut stopping: watch::Receiver<()>) {
    let options = &shared.options;
    let state = Arc::new(ConnState::new(*options));
    let io = TokioIo::new(FramingGuard::new(TrackedIo { stream, state: state.clone() }));
    let service = ConnService { router: shared.router.clone(), state: state.clone(), options: *options, peer };
    let mut conn = std::pin::pin!(shared.builder.serve_connection(io, service));
    let mut timer = std::pin::pin!(tokio::time::sleep(options.header_read_timeout));
    let mut shutting_down = false;
    loop {
        let now = Instant::now();
        let (phase, deadline, wake) = state.next_wake(now, &timer);
        if deadline <= now {
            match phase {
                Phase::Head { .. } => {
                    shared.metrics.header_timeout();
                    tracing::debug!("closing a connection that did not send its headers in time");
                }
                _ => {
                    shared.metrics.idle_timeout();
                    tracing::debug!("closing an idle connection");
                }
            }
            return;
        }
        if wake != timer.deadline() {
            timer.as_mut().reset(wake);
        }
        tokio::select! {
            biased;
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = state.changed.notified() => {}
            () = timer.as_mut() => {}
            _ = stopping.changed(), if !shutting_down => {
                shutting_down = true;
                if matches!(state.phase(), Phase::Head { .. }) {
                    return;
                }
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Where a connection is; see the module's documentation.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Head { since: Instant },
    Busy { requests: usize },
    Idle { since: Instant },
}

/// One connection's phase, shared by its socket, its requests and its task.
struct ConnState {
    tracked: Mutex<Tracked>,
    /// Woken when a deadline appears sooner than the task's timer.
    changed: Notify,
    /// The timeouts.
    options: ServerOptions,
}

/// What [`ConnState`] guards.
struct Tracked {
    phase: Phase,
    /// When the connection's task wakes at the latest.
    sleeps_until: Instant,
}

/// How long a connection in `phase` may stay in it from now: `None` while busy.
fn phase_deadline(phase: Phase, options: &ServerOptions) -> Option<Instant> {
    match phase {
        Phase::Head { since } => Some(since + options.header_read_timeout),
        Phase::Idle { since } => Some(since + options.idle_timeout),
        Phase::Busy { .. } => None,
    }
}

impl ConnState {
    fn new(options: ServerOptions) -> Self {
        let phase = Phase::Head { since: Instant::now() };
        let sleeps_until = phase_deadline(phase, &options).expect("a head has a deadline");
        Self { tracked: Mutex::new(Tracked { phase, sleeps_until }), changed: Notify::new(), options }
    }

    fn tracked(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.tracked.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn phase(&self) -> Phase {
        self.tracked().phase
    }

    /// The phase, its deadline, and when the connection's task, whose timer
    /// is `timer`, is to wake next: the deadline when it is sooner than the
    /// timer or the timer has fired, else the timer's. So the timer only
    /// ever moves earlier, or on from a time that has passed: a later
    /// deadline is found when it fires, and requests on a busy connection,
    /// each moving its deadline on, neither move the timer nor wake the
    /// task (see [`Self::update`]). Read and recorded under one lock, so
    /// that no update falls between them.
    fn next_wake(&self, now: Instant, timer: &Sleep) -> (Phase, Instant, Instant) {
        let mut tracked = self.tracked();
        // No connection timeout while busy; look again now and then.
        let deadline = phase_deadline(tracked.phase, &self.options).unwrap_or(now + self.options.idle_timeout);
        let wake = if deadline < timer.deadline() || timer.is_elapsed() { deadline } else { timer.deadline() };
        tracked.sleeps_until = wake;
        (tracked.phase, deadline, wake)
    }

    /// The connection's task set its timer to `until` (tests).
    #[cfg(test)]
    fn sleeps_until(&self, until: Instant) {
        self.tracked().sleeps_until = until;
    }

    fn update(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut tracked = self.tracked();
        tracked.phase = f(tracked.phase);
        // Into head or idle: a deadline appears. The task looks again only
        // when it is sooner than its timer; a later one it finds when the
        // timer fires.
        let sooner = phase_deadline(tracked.phase, &self.options).is_some_and(|d| d < tracked.sleeps_until);
        drop(tracked);
        if sooner {
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: an idle connection starts its next request's head.
    fn bytes_read(&self) {
        if matches!(self.phase(), Phase::Idle { .. }) {
            self.update(|phase| match phase {
                Phase::Idle { .. } => Phase::Head { since: Instant::now() },
                other => other,
            });
        }
    }

    /// A request's headers are in.
    fn request_started(&self) {
        self.update(|phase| match phase {
            Phase::Busy { requests } => Phase::Busy { requests: requests + 1 },
            _ => Phase::Busy { requests: 1 },
        });
    }

    /// A request is answered and its body read or dropped.
    fn request_finished(&self) {
        self.update(|phase| match phase {
            Phase::Busy { requests } if requests > 1 => Phase::Busy { requests: requests - 1 },
            _ => Phase::Idle { since: Instant::now() },
        });
    }
}

/// Held by a request's body and its answer's body; the request is finished
/// when both are gone.
struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The socket, telling the connection's state when bytes arrive.
struct TrackedIo {
    stream: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for TrackedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The router, with each request's body and answer wrapped to track the
/// connection's phase, and the peer's address as [`ConnectInfo`] (as
/// `into_make_service_with_connect_info` gives it).
#[derive(Clone)]
struct ConnService {
    router: Router,
    state: Arc<ConnState>,
    options: ServerOptions,
    peer: SocketAddr,
}

type ServiceFuture = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.state.request_started();
        let guard = Arc::new(RequestGuard(self.state.clone()));
        let expects_continue =
            request.headers().get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let timeout = self.options.header_read_timeout;
        let drain_bytes = self.options.drain_bytes;
        let mut request = request.map(|inner| RequestBody {
            inner: Some(inner),
            guard: Some(guard.clone()),
            timeout,
            deadline: Instant::now() + timeout,
            timer: None,
            polled: false,
            ended: false,
            timed_out: false,
            expects_continue,
            drain_bytes,
        });
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let mut router = self.router.clone();
        Box::pin(async move {
            let response = tower_service::Service::call(&mut router, request).await?;
            Ok(response.map(|inner| ResponseBody { inner, _guard: guard }))
        })
    }
}

/// An answer's body, holding its request's guard until it is written.
struct ResponseBody {
    inner: axum::body::Body,
    _guard: Arc<RequestGuard>,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body did not arrive within the header-read timeout of its
/// headers.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} of its headers")]
pub(crate) struct BodyTimeout(Duration);

/// A request's body: ends in an error when it is late, and when dropped
/// before its end (an early answer), is read and discarded in the background
/// so the client can finish sending and read the answer.
struct RequestBody {
    inner: Option<Incoming>,
    guard: Option<Arc<RequestGuard>>,
    /// The header-read timeout, which the body gets too.
    timeout: Duration,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    polled: bool,
    ended: bool,
    timed_out: bool,
    expects_continue: bool,
    drain_bytes: u64,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        this.polled = true;
        if this.ended || this.timed_out {
            return Poll::Ready(None);
        }
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => {
                this.ended = true;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                ready!(timer.as_mut().poll(cx));
                this.timed_out = true;
                Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.timed_out || self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else { return };
        // Nothing more will come: the body ended, broke or is late, or the
        // client waits for `100 Continue` before sending it (and, given the
        // answer instead, will not send it).
        let unsent = self.expects_continue && !self.polled;
        if self.ended || self.timed_out || inner.is_end_stream() || unsent {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(inner, self.guard.take(), self.drain_bytes));
        }
    }
}

/// Reads and discards `body` until it ends, `limit` bytes, or [`DRAIN_TIME`].
/// Then the body is dropped: if it ended, the connection serves its next
/// request; if not, hyper closes it.
async fn drain(mut body: Incoming, guard: Option<Arc<RequestGuard>>, limit: u64) {
    let deadline = Instant::now() + DRAIN_TIME;
    let mut read = 0u64;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        read += frame.data_ref().map_or(0, |data| data.len() as u64);
        if read > limit {
            break;
        }
    }
    drop((body, guard));
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    /// A header timeout shorter than the idle one, as by default.
    const OPTIONS: ServerOptions = ServerOptions {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(10),
        max_connections: 1,
        drain_bytes: 0,
    };

    #[tokio::test]
    async fn phases_follow_bytes_and_requests() {
        let options = OPTIONS;
        let state = ConnState::new(options);
        assert!(matches!(state.phase(), Phase::Head { .. }), "a new connection owes its headers");
        state.request_started();
        state.bytes_read();
        assert!(matches!(state.phase(), Phase::Busy { requests: 1 }), "body bytes keep it busy");
        state.request_started();
        state.request_finished();
        assert!(matches!(state.phase(), Phase::Busy { requests: 1 }));
        assert!(state.changed.notified().now_or_never().is_none(), "no new deadline yet");
        state.request_finished();
        assert!(matches!(state.phase(), Phase::Idle { .. }));
        assert!(
            state.changed.notified().now_or_never().is_none(),
            "the idle deadline is later than the task's timer (the head's): the timer finds it"
        );
        // The timer fired, and the task now sleeps until the idle deadline.
        state.sleeps_until(Instant::now() + options.idle_timeout);
        state.bytes_read();
        assert!(matches!(state.phase(), Phase::Head { .. }), "a next request's first byte starts its head");
        assert!(state.changed.notified().now_or_never().is_some(), "the task learns of the sooner deadline");
        state.bytes_read();
        assert!(state.changed.notified().now_or_never().is_none(), "more bytes of the head change nothing");
        // The task sleeps until the head's deadline; the next request's
        // head, after this one, ends later: no wake-up for it.
        state.sleeps_until(Instant::now() + options.header_read_timeout);
        state.request_started();
        state.request_finished();
        state.bytes_read();
        assert!(matches!(state.phase(), Phase::Head { .. }));
        assert!(state.changed.notified().now_or_never().is_none(), "a later deadline wakes nobody");
    }

    #[tokio::test]
    async fn the_timer_moves_only_earlier_until_it_fires() {
        let options = OPTIONS;
        let state = ConnState::new(options);
        let now = Instant::now();
        let mut timer = std::pin::pin!(tokio::time::sleep_until(now + Duration::from_secs(5)));
        let (phase, deadline, wake) = state.next_wake(now, &timer);
        assert!(matches!(phase, Phase::Head { .. }));
        assert!(deadline < now + Duration::from_secs(5) && wake == deadline, "the head's deadline is sooner");
        timer.as_mut().reset(wake);
        // Busy, then idle: the idle deadline is later than the timer, which stays.
        state.request_started();
        state.request_finished();
        let (phase, deadline, wake) = state.next_wake(Instant::now(), &timer);
        assert!(matches!(phase, Phase::Idle { .. }));
        assert!(deadline > wake && wake == timer.deadline(), "a later deadline waits for the timer");
        assert!(state.changed.notified().now_or_never().is_none());
    }
}
