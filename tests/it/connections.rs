//! The HTTP server of `serve`: early answers reach clients that write their
//! whole body first, and slow, idle or stalled connections cannot starve
//! real calls (header-read and idle timeouts, the connection cap, the
//! open-file limit).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard::{sign, unix_now};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{SECRET, TestServer, call, code_cache, fixture, fresh_id, plugins_dir, signed_webhook, tool_calls};

/// The server's address, from its URL.
fn addr(server: &TestServer) -> SocketAddr {
    server.url.trim_start_matches("http://").parse().unwrap()
}

/// A POST /webhook head with the JSON content type; `signed` adds a valid
/// signature of `body`, `extra` more header lines.
fn webhook_head(body: &[u8], signed: bool, extra: &str) -> String {
    let mut head = String::from("POST /webhook HTTP/1.1\r\nHost: switchboard\r\nContent-Type: application/json\r\n");
    if signed {
        let ts = unix_now();
        let signature = sign(SECRET.as_bytes(), ts, body);
        head += &format!("X-Webhook-Timestamp: {ts}\r\nX-Webhook-Signature: {signature}\r\n");
    }
    head + extra + "\r\n"
}

/// Reads one response (head, then a `Content-Length` body) from a blocking
/// socket: the status code and the body.
fn read_response(stream: &mut std::net::TcpStream) -> std::io::Result<(u16, String)> {
    let mut bytes = Vec::new();
    let mut byte = [0u8; 1];
    while !bytes.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before the response head"));
        }
        bytes.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&bytes).to_string();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .expect("a content-length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Writes the whole request, then reads the answer, as Python's `requests`
/// and Java's `HttpURLConnection` do. Returns the open socket too.
///
/// The socket's send buffer is small, as over a real network: on loopback
/// the kernel would otherwise take megabytes at once, and the write would
/// be over before the server answered and closed.
fn write_then_read(addr: SocketAddr, head: &str, body: &[u8]) -> (std::io::Result<(u16, String)>, std::net::TcpStream) {
    let mut stream = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_send_buffer_size(32 << 10).unwrap();
        socket.connect(addr).await.unwrap().into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let sent = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body));
    let answer = sent.and_then(|()| read_response(&mut stream));
    (answer, stream)
}

/// A JSON body of about `size` bytes (the signature covers it; the server
/// refuses it before decoding anyway).
fn big_body(size: usize) -> Vec<u8> {
    let mut body = br#"{"message":{"type":"status-update","pad":""#.to_vec();
    body.resize(size - 3, b'x');
    body.extend_from_slice(br#""}}"#);
    body
}

/// Sends a signed status-update on an open socket and expects its 200: the
/// connection still serves after a refused body was drained.
fn still_serves(stream: &mut std::net::TcpStream) {
    let body = fixture("status-update.request.ended.json");
    let head = webhook_head(&body, true, &format!("Content-Length: {}\r\n", body.len()));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    assert_eq!(read_response(stream).unwrap(), (200, "{}".to_owned()));
}

#[tokio::test]
async fn a_body_over_the_limit_gets_its_413_when_the_client_writes_it_all_first() {
    let server = TestServer::start(&["echo"]).await;
    let addr = addr(&server);
    tokio::task::spawn_blocking(move || {
        let body = big_body(3 << 20);
        let expected = (413, r#"{"error":"body is larger than the limit of 1048576 bytes"}"#.to_owned());
        for round in 0..5 {
            // With a Content-Length over the limit: refused before reading.
            let head = webhook_head(&body, true, &format!("Content-Length: {}\r\n", body.len()));
            let (answer, mut stream) = write_then_read(addr, &head, &body);
            assert_eq!(answer.unwrap_or_else(|e| panic!("round {round}, Content-Length: {e}")), expected);
            still_serves(&mut stream);
            // Chunked: refused once 1 MiB has been read.
            let mut chunked = Vec::new();
            for chunk in body.chunks(64 << 10) {
                chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                chunked.extend_from_slice(chunk);
                chunked.extend_from_slice(b"\r\n");
            }
            chunked.extend_from_slice(b"0\r\n\r\n");
            let head = webhook_head(&body, true, "Transfer-Encoding: chunked\r\n");
            let (answer, mut stream) = write_then_read(addr, &head, &chunked);
            assert_eq!(answer.unwrap_or_else(|e| panic!("round {round}, chunked: {e}")), expected);
            still_serves(&mut stream);
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_unsigned_large_body_gets_its_401_when_the_client_writes_it_all_first() {
    let server = TestServer::start(&["echo"]).await;
    let addr = addr(&server);
    tokio::task::spawn_blocking(move || {
        // Under the 1 MiB limit; the missing signature is refused before the body is read.
        let body = big_body(1000 << 10);
        for round in 0..5 {
            let head = webhook_head(&body, false, &format!("Content-Length: {}\r\n", body.len()));
            let (answer, mut stream) = write_then_read(addr, &head, &body);
            let (status, text) = answer.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!((status, text.as_str()), (401, r#"{"error":"missing X-Webhook-Signature header"}"#));
            still_serves(&mut stream);
        }
    })
    .await
    .unwrap();
}

/// Raises this process's open-file limit as far as it goes; returns it.
fn raise_open_file_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap()
}

/// How a stalled connection stalls.
#[derive(Clone, Copy, Debug)]
enum Stall {
    /// Connects and sends nothing.
    Silent,
    /// Sends part of its headers.
    PartialHeaders,
    /// Sends its headers and part of its body.
    PartialBody,
}

/// The value of one sample of the server's metrics (`name{labels}`), 0 when absent.
async fn metric(server: &TestServer, sample: &str) -> f64 {
    let text = server.metrics().await;
    text.lines()
        .find_map(|line| line.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// Opens a connection that stalls as `stall` says.
async fn stalled(addr: SocketAddr, stall: Stall) -> (TcpStream, Instant) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let opened = Instant::now();
    match stall {
        Stall::Silent => {}
        Stall::PartialHeaders => {
            stream.write_all(b"POST /webhook HTTP/1.1\r\nHost: switchboard\r\nContent-Ty").await.unwrap();
        }
        Stall::PartialBody => {
            let body = big_body(4000);
            let head = webhook_head(&body, true, &format!("Content-Length: {}\r\n", body.len()));
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.write_all(&body[..1000]).await.unwrap();
        }
    }
    (stream, opened)
}

/// Opens `count` stalled connections, a third of each kind, 100 at a time:
/// fewer than a listen backlog of 128 (tokio's), whose overflow the client
/// would see as a second's wait for the retransmitted SYN.
async fn open_stalled(addr: SocketAddr, count: usize) -> Vec<(TcpStream, Instant, Stall)> {
    let kinds = [Stall::Silent, Stall::PartialHeaders, Stall::PartialBody];
    let mut open = Vec::with_capacity(count);
    for batch in (0..count).collect::<Vec<_>>().chunks(100) {
        let opening = batch.iter().map(|i| {
            let kind = kinds[i % 3];
            async move {
                let (stream, opened) = stalled(addr, kind).await;
                (stream, opened, kind)
            }
        });
        open.extend(futures::future::join_all(opening).await);
    }
    open
}

/// Waits for the server to close a stalled connection; returns how long
/// after opening it did, and what it sent before (an answer to a late body).
async fn closed_after(mut stream: TcpStream, opened: Instant) -> (Duration, Vec<u8>) {
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not close a stalled connection within 15 s");
    (opened.elapsed(), received)
}

#[tokio::test]
async fn a_signed_call_is_answered_while_a_thousand_connections_stall_and_they_are_closed_on_time() {
    let limit = raise_open_file_limit();
    // Each stalled connection is two descriptors here (client and server
    // side); leave room for the tests running beside this one.
    let count = 1200.min((limit.saturating_sub(600) / 2) as usize);
    if count < 1200 {
        eprintln!("open-file limit {limit}: {count} stalled connections instead of 1200");
    }
    let header_read_timeout = Duration::from_millis(500);
    let server = TestServer::start_with(&["echo"], |s| s.header_read_timeout = header_read_timeout).await;
    // Warm up: the first call pays for instantiating the plugin's code.
    assert_eq!(call(&server, "echo", json!({"warm": true})).await["result"], json!({"echo": {"warm": true}}));

    let started = Instant::now();
    let open = open_stalled(addr(&server), count).await;
    let opening = started.elapsed();
    let started = Instant::now();
    let entry = call(&server, "echo", json!({"text": "still here"})).await;
    let answered = started.elapsed();
    eprintln!(
        "{count} stalled connections opened in {:.0} ms; a signed echo call answered in {:.1} ms",
        opening.as_secs_f64() * 1e3,
        answered.as_secs_f64() * 1e3
    );
    assert_eq!(entry["result"], json!({"echo": {"text": "still here"}}));
    assert!(answered < Duration::from_secs(5), "answered in {answered:?}");
    // An operator sees them: every stalled connection is open (the test's
    // own client holds one or two more).
    let open_now = metric(&server, r#"switchboard_connections_open{listener="main"}"#).await;
    assert!(open_now >= count as f64 && open_now <= count as f64 + 2.0, "{open_now} open, {count} stalled");

    let closing = open.into_iter().map(|(stream, opened, kind)| async move {
        let (after, received) = closed_after(stream, opened).await;
        (kind, after, received)
    });
    let closed = futures::future::join_all(closing).await;
    let slowest = closed.iter().map(|(_, after, _)| *after).max().unwrap();
    eprintln!("all {count} closed by the server; the last {:.0} ms after it opened", slowest.as_secs_f64() * 1e3);
    for (kind, after, received) in closed {
        // Never before the timeout (minus timer rounding).
        assert!(after >= header_read_timeout - Duration::from_millis(20), "{kind:?} closed after {after:?}");
        let received = String::from_utf8_lossy(&received);
        match kind {
            // A late body ends the request: it is answered, then closed.
            Stall::PartialBody => assert!(received.starts_with("HTTP/1.1 400"), "{kind:?}: {received}"),
            _ => assert!(received.is_empty(), "{kind:?}: {received}"),
        }
    }
    // Those that never sent their headers were closed by the header-read
    // timeout, and counted so; a late body is a request's (answered 400).
    let no_headers = (0..count).filter(|i| i % 3 != 2).count() as f64;
    let timed_out =
        metric(&server, r#"switchboard_connections_timed_out_total{listener="main",phase="headers"}"#).await;
    assert_eq!(timed_out, no_headers);
    let open_after = metric(&server, r#"switchboard_connections_open{listener="main"}"#).await;
    assert!(open_after <= 2.0, "{open_after} still counted open after the stalled ones closed");
    let accepted = metric(&server, r#"switchboard_connections_accepted_total{listener="main"}"#).await;
    assert!(accepted >= count as f64, "{accepted} accepted");
}

/// Sends a signed status-update on a kept-alive connection and reads its 200.
async fn status_update(stream: &mut TcpStream) {
    let body = fixture("status-update.request.ended.json");
    let head = webhook_head(&body, true, &format!("Content-Length: {}\r\n", body.len()));
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    while !received.ends_with(b"\r\n\r\n{}") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the answer: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buf[..n]);
    }
    assert!(received.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&received));
}

#[tokio::test]
async fn a_kept_alive_connection_waits_for_the_idle_timeout_not_the_header_timeout() {
    let server = TestServer::start_with(&["echo"], |s| {
        s.header_read_timeout = Duration::from_millis(300);
        s.idle_timeout = Duration::from_millis(1500);
    })
    .await;
    let mut stream = TcpStream::connect(addr(&server)).await.unwrap();
    status_update(&mut stream).await;
    // Idle for longer than the header timeout: still open, and serving.
    tokio::time::sleep(Duration::from_millis(800)).await;
    status_update(&mut stream).await;
    let idle_from = Instant::now();
    let (after, received) = closed_after(stream, idle_from).await;
    assert!(received.is_empty());
    assert!(after >= Duration::from_millis(1480) && after < Duration::from_secs(5), "closed after {after:?}");
    let idle = metric(&server, r#"switchboard_connections_timed_out_total{listener="main",phase="idle"}"#).await;
    assert_eq!(idle, 1.0, "one connection closed for being idle");
    let headers = metric(&server, r#"switchboard_connections_timed_out_total{listener="main",phase="headers"}"#).await;
    assert_eq!(headers, 0.0, "a kept-alive connection waiting is idle, not late with its headers");
}

#[tokio::test]
async fn at_the_connection_cap_a_new_connection_waits_for_a_stalled_one_to_time_out() {
    let server = TestServer::start_with(&["echo"], |s| {
        s.header_read_timeout = Duration::from_millis(700);
        s.max_connections = 12;
    })
    .await;
    let open = open_stalled(addr(&server), 12).await;
    // The server has accepted them all by the time it would answer.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let entry = call(&server, "echo", json!({"n": 1})).await;
    let waited = started.elapsed();
    eprintln!("at the cap, a signed call answered after {:.0} ms", waited.as_secs_f64() * 1e3);
    assert_eq!(entry["result"], json!({"echo": {"n": 1}}));
    // It could not be served before a slot freed (700 ms after the stalled
    // connections opened, 100 ms before the call).
    assert!(waited >= Duration::from_millis(450), "answered after {waited:?}: the cap did not hold");
    drop(open);
    let paused = metric(&server, r#"switchboard_connection_cap_reached_total{listener="main"}"#).await;
    assert!(paused >= 1.0, "the cap was reached {paused} times");
}

/// `switchboard serve` as a child process, killed when dropped.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl ServerProcess {
    /// Starts `switchboard serve` through `sh -c` (so `shell_prefix`, such as
    /// `ulimit -n 256;`, applies to it) with the plugins of `plugins` and
    /// `flags`; waits until GET /readyz answers.
    async fn start(shell_prefix: &str, plugins: &Path, flags: &[&str]) -> Self {
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let config = plugins.join("switchboard.toml");
        std::fs::write(&config, format!("cache_dir = {:?}\n", code_cache().display().to_string())).unwrap();
        let log = plugins.join("server.log");
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("{shell_prefix} exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_switchboard"))
            .args(["serve", "--no-watch", "--listen", &addr.to_string()])
            .arg("--plugins")
            .arg(plugins)
            .arg("--config")
            .arg(&config)
            .args(flags)
            .env("SWITCHBOARD_SECRET", SECRET)
            .env("RUST_LOG", "switchboard=info,warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut server = Self { child, addr, log };
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(response) = client.get(format!("http://{addr}/readyz")).send().await
                && response.status() == 200
            {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("switchboard serve exited with {status}: {}", server.log_text());
            }
            assert!(started.elapsed() < Duration::from_secs(30), "not ready in 30 s: {}", server.log_text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server's log so far, without colours.
    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut plain = String::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // An escape sequence: up to its final letter.
                chars.by_ref().find(char::is_ascii_alphabetic);
            } else {
                plain.push(c);
            }
        }
        plain
    }

    /// Sends one signed echo call; returns the time to its answer.
    async fn echo(&self, client: &reqwest::Client, text: &str) -> Duration {
        let id = fresh_id();
        let body = tool_calls(&[(&id, "echo", json!({ "text": text }))]);
        let started = Instant::now();
        let response = signed_webhook(client, &format!("http://{}", self.addr), &body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let answer: serde_json::Value = response.json().await.unwrap();
        let took = started.elapsed();
        assert_eq!(answer["results"][0]["result"], json!({ "echo": { "text": text } }), "{answer}");
        took
    }

    /// The number of descriptors the server has open (Linux).
    fn open_files(&self) -> Option<usize> {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).ok().map(|d| d.count())
    }

    /// The server's resident memory in KiB (Linux).
    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix(" kB")?.trim().parse().ok())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn at_the_open_file_limit_a_signed_call_is_answered_once_stalled_connections_time_out() {
    raise_open_file_limit();
    let dir = plugins_dir(&["echo"]);
    // 256 descriptors, hard limit too: the server cannot raise it, and keeps
    // its connection cap below it.
    let server =
        ServerProcess::start("ulimit -n 256 || exit 99;", dir.path(), &["--header-read-timeout-ms", "1000"]).await;
    let log = server.log_text();
    assert!(log.contains("now=256"), "the start-up log names the open-file limit: {log}");
    // More stalled connections than the server has descriptors.
    let open = open_stalled(server.addr, 400).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    let took = server.echo(&client, "at the limit").await;
    eprintln!(
        "256 descriptors, 400 stalled connections: a signed echo call answered in {:.0} ms",
        took.as_secs_f64() * 1e3
    );
    let log = server.log_text();
    assert!(log.contains("serving_at_most=192"), "the cap is lowered to fit the limit: {log}");
    drop(open);
    // And it keeps answering.
    server.echo(&client, "after").await;
}

/// The figure for BENCHMARKS.md: 10,000 idle or half-sent connections open
/// on the release binary with its default settings, then signed echo calls
/// one after another. Not run by default (two processes with 10,000 sockets
/// each); run it with:
///
/// ```sh
/// cargo test --release -p switchboard --test it ten_thousand -- --ignored --nocapture
/// ```
#[tokio::test]
#[ignore = "a benchmark: 10,000 connections; see BENCHMARKS.md"]
async fn ten_thousand_stalled_connections_and_a_signed_call() {
    const STALLED: usize = 10_000;
    let limit = raise_open_file_limit();
    assert!(limit >= STALLED as u64 + 1000, "needs an open-file hard limit above {}: {limit}", STALLED + 1000);
    let dir = plugins_dir(&["echo"]);
    let server = ServerProcess::start("", dir.path(), &[]).await;
    let kept_alive = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    // A new connection for every call, as a platform without a pool would.
    let fresh = reqwest::Client::builder().timeout(Duration::from_secs(15)).pool_max_idle_per_host(0).build().unwrap();
    let calls = async |label: &str| {
        let mut kept = Vec::new();
        let mut new = Vec::new();
        for i in 0..100 {
            kept.push(server.echo(&kept_alive, &format!("{label} {i}")).await);
            new.push(server.echo(&fresh, &format!("{label} new {i}")).await);
        }
        (kept, new)
    };
    // Warm up, then the same calls without stalled connections, for comparison.
    calls("warm").await;
    let (files_before, rss_before) = (server.open_files(), server.rss_kib());
    let (kept_before, new_before) = calls("before").await;
    let started = Instant::now();
    let open = open_stalled(server.addr, STALLED).await;
    let opening = started.elapsed();
    let (files_open, rss_open) = (server.open_files(), server.rss_kib());
    let (kept_during, new_during) = calls("during").await;
    let measured = started.elapsed();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let summary = |mut times: Vec<Duration>| {
        times.sort();
        format!("p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", ms(times[50]), ms(times[98]), ms(times[99]))
    };
    eprintln!(
        "{STALLED} stalled connections (a third each silent, partial headers, partial body) opened in {:.0} ms",
        ms(opening)
    );
    eprintln!("server descriptors: {files_before:?} before, {files_open:?} with them open");
    eprintln!("server VmRSS: {rss_before:?} KiB before, {rss_open:?} KiB with them open");
    eprintln!("100 signed echo calls, kept-alive connection, none stalled: {}", summary(kept_before));
    eprintln!("100 signed echo calls, new connection each, none stalled: {}", summary(new_before));
    eprintln!("100 signed echo calls, kept-alive connection, {STALLED} stalled: {}", summary(kept_during));
    eprintln!("100 signed echo calls, new connection each, {STALLED} stalled: {}", summary(new_during));
    eprintln!("all measured within {:.0} ms of starting to open the stalled connections", ms(measured));
    drop(open);
}
