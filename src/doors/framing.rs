//! Requests whose length is ambiguous are refused: one that carries both
//! `Content-Length` and `Transfer-Encoding` gets 400 and the connection is
//! closed.
//!
//! Such a request is how requests are smuggled past a proxy: if the proxy
//! in front frames it by `Content-Length` and this server by
//! `Transfer-Encoding` (or the other way round), the two disagree on where
//! it ends, and bytes one takes for a body the other takes for a request.
//! RFC 9112 (section 6.3) lets a server refuse it, and says the connection
//! must then be closed.
//!
//! hyper reads such a request as chunked and drops its `Content-Length`
//! before the router sees the headers, so the refusal takes two parts:
//!
//! - [`FramingGuard`] wraps each connection of [`serve`](crate::serve). It
//!   follows HTTP/1 framing (request heads, `Content-Length` bodies, chunked
//!   bodies), and in a head with both headers it renames `Transfer-Encoding`
//!   in place to [`AMBIGUOUS_MARKER`], a name of the same length: hyper then
//!   frames the request by its `Content-Length`, and the router sees the mark.
//! - [`RefuseAmbiguousLayer`], a layer on every route, answers a marked request
//!   (or one that still has both headers, under another server) with 400
//!   `{"error": "..."}` and `Connection: close`.
//!
//! Framing the guard cannot follow is framing hyper refuses too (a chunk
//! size that is not hexadecimal, a head larger than hyper reads): the guard
//! then ends the stream, and the connection closes. HTTP/2 (prior
//! knowledge) has no such ambiguity and passes through untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What `Transfer-Encoding` is renamed to in a request that also has a
/// `Content-Length`: a header name of the same length (17 bytes).
pub(crate) const AMBIGUOUS_MARKER: &str = "x-ambiguous-frame";

/// Largest request head followed; hyper refuses smaller ones already (431).
const MAX_HEAD_BYTES: usize = 512 << 10;
/// Largest chunk-size line or trailer section followed.
const MAX_LINE_BYTES: usize = 64 << 10;
/// Bytes read from the socket at a time.
const READ_BYTES: usize = 8 << 10;

/// `POST /webhook` and every other route: refuses a request with both
/// `Content-Length` and `Transfer-Encoding` (see the module's documentation).
/// A layer of its own rather than axum's `from_fn`, which boxes the next
/// service and the future of every request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefuseAmbiguousLayer;

impl<S> tower_layer::Layer<S> for RefuseAmbiguousLayer {
    type Service = RefuseAmbiguous<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RefuseAmbiguous(inner)
    }
}

/// The service of [`RefuseAmbiguousLayer`] in front of `S`.
#[derive(Debug, Clone)]
pub(crate) struct RefuseAmbiguous<S>(S);

impl<S: tower_service::Service<Request, Response = Response>> tower_service::Service<Request> for RefuseAmbiguous<S> {
    type Response = Response;
    type Error = S::Error;
    type Future = futures::future::Either<std::future::Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let headers = request.headers();
        let ambiguous = headers.contains_key(AMBIGUOUS_MARKER)
            || (headers.contains_key(header::TRANSFER_ENCODING) && headers.contains_key(header::CONTENT_LENGTH));
        match ambiguous {
            false => futures::future::Either::Right(self.0.call(request)),
            true => futures::future::Either::Left(std::future::ready(Ok(refusal(&request)))),
        }
    }
}

/// The answer to a request with both `Content-Length` and `Transfer-Encoding`.
fn refusal(request: &Request) -> Response {
    tracing::warn!(
        method = %request.method(), path = %request.uri().path(),
        "request refused: it has both Content-Length and Transfer-Encoding (a request smuggling attempt, or a broken proxy)"
    );
    let error = "a request may not have both Content-Length and Transfer-Encoding";
    let body = serde_json::json!({ "error": error }).to_string();
    (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/json"), (header::CONNECTION, "close")], body)
        .into_response()
}

/// A connection's byte stream, marking requests whose length is ambiguous
/// on the way in (see the module's documentation). Writes pass through.
pub(crate) struct FramingGuard<T> {
    io: T,
    framing: Framing,
    /// Bytes followed and ready for the reader, from `taken` on.
    ready: Vec<u8>,
    taken: usize,
}

impl<T> FramingGuard<T> {
    /// Guards `io`, a new connection.
    pub fn new(io: T) -> Self {
        Self { io, framing: Framing::default(), ready: Vec::new(), taken: 0 }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FramingGuard<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.taken < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.taken);
                buf.put_slice(&this.ready[this.taken..this.taken + n]);
                this.taken += n;
                if this.taken == this.ready.len() {
                    this.ready.clear();
                    this.taken = 0;
                    if this.ready.capacity() > 4 * READ_BYTES {
                        this.ready.shrink_to(READ_BYTES);
                    }
                }
                return Poll::Ready(Ok(()));
            }
            match this.framing.state {
                State::Passthrough => return Pin::new(&mut this.io).poll_read(cx, buf),
                State::Ended => return Poll::Ready(Ok(())),
                _ => {}
            }
            let mut scratch = [0u8; READ_BYTES];
            let mut read = ReadBuf::new(&mut scratch);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The end of the stream: a head still held goes on as it is.
                this.ready.append(&mut this.framing.held);
                this.framing.state = State::Ended;
                continue;
            }
            this.framing.feed(read.filled(), &mut this.ready);
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FramingGuard<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Where in the byte stream of HTTP/1 requests the guard is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The head of a request (the first one when `first`).
    Head { first: bool },
    /// Bytes of a `Content-Length` body left.
    Body(u64),
    /// A chunk-size line.
    ChunkSize,
    /// Bytes of a chunk left.
    ChunkData(u64),
    /// The line end after a chunk's data.
    ChunkEnd,
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers,
    /// HTTP/2: nothing to follow.
    Passthrough,
    /// The end of the stream, reached or forced.
    Ended,
}

/// Follows request framing through the bytes of a connection.
#[derive(Debug)]
struct Framing {
    state: State,
    /// An unfinished head or line, held until it ends.
    held: Vec<u8>,
    /// Trailer bytes of the current chunked body.
    trailers: usize,
}

impl Default for Framing {
    fn default() -> Self {
        Self { state: State::Head { first: true }, held: Vec::new(), trailers: 0 }
    }
}

impl Framing {
    /// Follows `data` (the next bytes read), appending what may go on to `out`.
    fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mut rest = self.step(data, out);
        while let Some(data) = rest {
            rest = self.step(&data, out);
        }
    }

    /// Follows `data` up to its end, or up to the end of a request head:
    /// then gives back the bytes after the head, still to follow.
    fn step(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Option<Vec<u8>> {
        while !data.is_empty() {
            match self.state {
                State::Passthrough => {
                    out.extend_from_slice(data);
                    return None;
                }
                State::Ended => return None,
                State::Body(left) | State::ChunkData(left) => {
                    let n = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    let left = left - n as u64;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::Head { first: false },
                        (State::Body(_), left) => State::Body(left),
                        (_, 0) => State::ChunkEnd,
                        (_, left) => State::ChunkData(left),
                    };
                }
                State::Head { first } => {
                    if self.held.is_empty() {
                        // Empty lines before a request line are skipped (by httparse too).
                        let blank = data.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
                        out.extend_from_slice(&data[..blank]);
                        data = &data[blank..];
                        if data.is_empty() {
                            return None;
                        }
                        // The usual case: the whole head arrived in one read.
                        // It is followed where it lands in `out`, not held.
                        if let Some(end) = head_end(data) {
                            let start = out.len();
                            out.extend_from_slice(&data[..end]);
                            self.state = framing_of_head(&mut out[start..], first);
                            data = &data[end..];
                            continue;
                        }
                    }
                    let from = self.held.len().saturating_sub(2);
                    self.held.extend_from_slice(data);
                    data = &[];
                    let Some(end) = head_end(&self.held[from..]).map(|end| from + end) else {
                        if self.held.len() > MAX_HEAD_BYTES {
                            self.end(out);
                        }
                        continue;
                    };
                    let rest = self.held.split_off(end);
                    self.state = framing_of_head(&mut self.held, first);
                    out.append(&mut self.held);
                    return (!rest.is_empty()).then_some(rest);
                }
                State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
                        self.held.extend_from_slice(data);
                        if self.held.len() > MAX_LINE_BYTES {
                            self.end(out);
                        }
                        return None;
                    };
                    self.held.extend_from_slice(&data[..=newline]);
                    data = &data[newline + 1..];
                    let line = std::mem::take(&mut self.held);
                    let content = line.strip_suffix(b"\n").unwrap_or(&line);
                    let content = content.strip_suffix(b"\r").unwrap_or(content);
                    out.extend_from_slice(&line);
                    self.state = match self.state {
                        State::ChunkSize => match chunk_size(content) {
                            Some(0) => {
                                self.trailers = 0;
                                State::Trailers
                            }
                            Some(size) => State::ChunkData(size),
                            None => State::Ended,
                        },
                        State::ChunkEnd if content.is_empty() => State::ChunkSize,
                        State::Trailers if content.is_empty() => State::Head { first: false },
                        State::Trailers if self.trailers + line.len() <= MAX_LINE_BYTES => {
                            self.trailers += line.len();
                            State::Trailers
                        }
                        _ => State::Ended,
                    };
                }
            }
        }
        None
    }

    /// Lets what is held go on, then ends the stream.
    fn end(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.held);
        self.state = State::Ended;
    }
}

/// Reads the complete request head `head`, marks it (in place) when its
/// length is ambiguous, and says what follows it.
fn framing_of_head(head: &mut [u8], first: bool) -> State {
    let mut lines = split_lines(head);
    let Some((_, request_line)) = lines.next() else { return State::Ended };
    if first && head[request_line].starts_with(b"PRI * HTTP/2.0") {
        return State::Passthrough;
    }
    let (mut transfer_encodings, mut lengths) = (Vec::new(), ContentLengths::default());
    for (start, line) in lines {
        let text = &head[line.clone()];
        let Some(colon) = text.iter().position(|&b| b == b':') else { continue };
        let name = &text[..colon];
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encodings.push(start);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            lengths.add(&text[colon + 1..]);
        }
    }
    match (transfer_encodings.is_empty(), lengths.seen) {
        (true, false) => State::Head { first: false },
        (false, false) => State::ChunkSize,
        (true, true) | (false, true) => {
            for start in transfer_encodings {
                head[start..start + AMBIGUOUS_MARKER.len()].copy_from_slice(AMBIGUOUS_MARKER.as_bytes());
            }
            match lengths.agreed() {
                Some(0) => State::Head { first: false },
                Some(length) => State::Body(length),
                // hyper answers an unreadable length with 400 and closes.
                None => State::Ended,
            }
        }
    }
}

/// Where a request head ends (after its empty line), if it does in `bytes`.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = bytes[from..].iter().position(|&b| b == b'\n') {
        let at = from + at;
        match bytes.get(at + 1..) {
            Some([b'\n', ..]) => return Some(at + 2),
            Some([b'\r', b'\n', ..]) => return Some(at + 3),
            _ => from = at + 1,
        }
    }
    None
}

/// The lines of a head, as (start, range without the line end).
fn split_lines(head: &[u8]) -> impl Iterator<Item = (usize, std::ops::Range<usize>)> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= head.len() {
            return None;
        }
        let end = head[start..].iter().position(|&b| b == b'\n').map_or(head.len(), |i| start + i);
        let line_end = if end > start && head[end - 1] == b'\r' { end - 1 } else { end };
        let line = (start, start..line_end);
        start = end + 1;
        (line_end > line.0).then_some(line)
    })
}

/// The `Content-Length` values of one head, checked as they are read.
#[derive(Default)]
struct ContentLengths {
    /// Whether the head has one.
    seen: bool,
    /// The length all values so far agree on.
    length: Option<u64>,
    /// A value that is not a number, or that disagrees with another.
    unreadable: bool,
}

impl ContentLengths {
    /// Takes one header value: a number, or a list of equal numbers.
    fn add(&mut self, value: &[u8]) {
        self.seen = true;
        for part in value.split(|&b| b == b',') {
            let part = part.trim_ascii();
            let number = match part.iter().all(u8::is_ascii_digit) && !part.is_empty() {
                true => std::str::from_utf8(part).ok().and_then(|digits| digits.parse::<u64>().ok()),
                false => None,
            };
            match number {
                Some(n) if self.length.is_none_or(|length| length == n) => self.length = Some(n),
                _ => self.unreadable = true,
            }
        }
    }

    /// The length all values agree on, or `None`.
    fn agreed(&self) -> Option<u64> {
        if self.unreadable { None } else { self.length }
    }
}

/// The size in a chunk-size line (`1a;ext=1`), or `None`.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|&b| b == b';').next()?.trim_ascii();
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the reader gets from `input`, fed in pieces of `step` bytes.
    fn follow(input: &[u8], step: usize) -> (Vec<u8>, State) {
        let mut framing = Framing::default();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            framing.feed(piece, &mut out);
        }
        (out, framing.state)
    }

    #[test]
    fn requests_pass_unchanged_however_they_arrive() {
        let stream: &[u8] = b"\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n\
            POST /webhook HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
            POST /webhook HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: 1\r\n\r\n\
            GET /x HTTP/1.1\nHost: a\n\n";
        for step in [1, 2, 7, stream.len()] {
            let (out, state) = follow(stream, step);
            assert_eq!(out, stream, "step {step}");
            assert_eq!(state, State::Head { first: false }, "step {step}");
        }
    }

    #[test]
    fn both_lengths_mark_the_request_and_it_is_framed_by_content_length() {
        for head in [
            "POST /webhook HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /webhook HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\nContent-Length: 5\r\n\r\n",
        ] {
            let stream = format!("{head}0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n");
            for step in [1, 3, stream.len()] {
                let (out, _) = follow(stream.as_bytes(), step);
                let out = String::from_utf8(out).unwrap();
                assert!(out.contains("x-ambiguous-frame: chunked\r\n") && !out.to_lowercase().contains("transfer"));
                assert_eq!(out.len(), stream.len(), "renamed in place");
            }
        }
    }

    #[test]
    fn a_head_whole_in_one_read_is_followed_as_one_split_across_reads() {
        let streams: [&[u8]; 6] = [
            b"POST /webhook HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nokGET /x HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"\r\n\r\nPOST / HTTP/1.1\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\nGET / HTTP/1.1\n\n",
        ];
        for stream in streams {
            let piecewise = follow(stream, 1);
            for step in 2..=stream.len() {
                assert_eq!(follow(stream, step), piecewise, "{} in pieces of {step}", String::from_utf8_lossy(stream));
            }
        }
        // Agreeing lengths frame the body; disagreeing or empty ones end the stream.
        assert_eq!(follow(streams[2], streams[2].len()).1, State::Head { first: false });
        assert_eq!(follow(streams[3], streams[3].len()).1, State::Ended);
        assert_eq!(follow(streams[4], streams[4].len()).1, State::Ended);
    }

    #[test]
    fn http2_passes_through_and_broken_framing_ends_the_stream() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04";
        assert_eq!(follow(preface, 5), (preface.to_vec(), State::Passthrough));
        let bad_chunk = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET / HTTP/1.1\r\n\r\n";
        let (out, state) = follow(bad_chunk, 4);
        assert_eq!(state, State::Ended);
        assert!(out.ends_with(b"zz\r\n"), "nothing after the broken chunk line goes on");
        let bad_length = b"POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello";
        assert_eq!(follow(bad_length, 100).1, State::Ended);
    }
}
