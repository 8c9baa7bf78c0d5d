//! Capabilities granted per plugin: outbound HTTP through the allow-list,
//! configuration and secrets, logs; and hostile plugins that try to get
//! around them. Every upstream is a real HTTP server on loopback.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::common::{TestServer, call, eventually, plugin_wasm, plugins_dir, results, tool_calls};

/// What an upstream saw.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    /// `/gate` requests being answered now, and the most at once.
    open: AtomicUsize,
    most_open: AtomicUsize,
    authorization: Mutex<Vec<String>>,
    bookings: Mutex<HashMap<(String, String), String>>,
}

/// A small calendar service and a few test routes, on a free loopback port.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Seen>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

#[derive(Clone)]
struct UpstreamState {
    seen: Arc<Seen>,
    api_key: String,
}

const SLOTS: [&str; 3] = ["09:00", "10:00", "11:00"];

impl Upstream {
    async fn start(api_key: &str) -> Self {
        let seen = Arc::new(Seen::default());
        let state = UpstreamState { seen: seen.clone(), api_key: api_key.to_owned() };
        let app = axum::Router::new()
            .route("/hello", get(|| async { "hello from upstream" }))
            .route("/echo", post(|body: String| async move { body }))
            .route("/big", get(|| async { "x".repeat(2 << 20) }))
            .route(
                "/big-chunked",
                get(|| async {
                    let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'y'; 32 << 10])));
                    axum::body::Body::from_stream(futures::stream::iter(chunks))
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "too late"
                }),
            )
            .route("/gate", get(gate).post(gate_upload))
            .route("/v1/availability", get(availability))
            .route("/v1/bookings", post(book))
            .layer(axum::middleware::from_fn_with_state(state.clone(), count))
            .with_state(state);
        let (addr, stop) = crate::common::serve_upstream(app).await;
        Self { addr, seen, _stop: stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::SeqCst)
    }
}

async fn count(
    State(state): State<UpstreamState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    state.seen.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(auth) = request.headers().get("authorization") {
        state.seen.authorization.lock().unwrap().push(auth.to_str().unwrap_or_default().to_owned());
    }
    next.run(request).await
}

fn authorized(state: &UpstreamState, headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {}", state.api_key))
}

async fn availability(
    State(state): State<UpstreamState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    if !authorized(&state, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad key"})));
    }
    let date = query.get("date").cloned().unwrap_or_default();
    let bookings = state.seen.bookings.lock().unwrap();
    let free: Vec<&str> =
        SLOTS.into_iter().filter(|t| !bookings.contains_key(&(date.clone(), t.to_string()))).collect();
    (StatusCode::OK, Json(json!({ "date": date, "slots": free })))
}

async fn book(State(state): State<UpstreamState>, headers: HeaderMap, Json(body): Json<Value>) -> impl IntoResponse {
    if !authorized(&state, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad key"})));
    }
    let key =
        (body["date"].as_str().unwrap_or_default().to_owned(), body["time"].as_str().unwrap_or_default().to_owned());
    let mut bookings = state.seen.bookings.lock().unwrap();
    if bookings.contains_key(&key) {
        return (StatusCode::CONFLICT, Json(json!({"error": "taken"})));
    }
    let id = format!("bk_{}", bookings.len() + 1);
    bookings.insert(key, body["phone"].as_str().unwrap_or("-").to_owned());
    (StatusCode::CREATED, Json(json!({ "id": id, "date": body["date"], "time": body["time"] })))
}

/// Writes `NAME.toml` into the server's plugin folder (or a folder being prepared).
pub(crate) fn write_manifest(dir: &std::path::Path, name: &str, text: &str) {
    replace_file(&dir.join(format!("{name}.toml")), text);
}

/// Writes `text` to `path` through a hidden temporary file in the same folder
/// and a rename, as deploy tools do.
fn replace_file(path: &std::path::Path, text: &str) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A server with `misbehave` alone in its plugins folder, `manifest` beside it.
async fn serve_misbehave(manifest: &str) -> TestServer {
    let dir = plugins_dir(&["misbehave"]);
    write_manifest(dir.path(), "misbehave", manifest);
    TestServer::serve_dir(dir, |_| {}).await
}

/// The message of a failed entry; panics on success.
fn error_of(entry: &Value) -> String {
    entry["error"].as_str().unwrap_or_else(|| panic!("expected an error, got {entry}")).to_owned()
}

/// Collects what is logged on the current thread (tests run on a
/// current-thread runtime, so this includes the server and its plugins).
#[derive(Clone, Default)]
pub(crate) struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    pub(crate) fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let capture = Self::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (capture, tracing::subscriber::set_default(subscriber))
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn outbound_http_is_denied_until_granted_then_allowed_for_that_host_only() {
    let upstream = Upstream::start("unused").await;
    let other = Upstream::start("unused").await;
    let server = TestServer::start(&["misbehave"]).await;

    // Deny: no manifest, no network. The request never leaves the host.
    let denied = call(&server, "http_get", json!({"url": upstream.url("/hello")})).await;
    let message = error_of(&denied);
    assert_eq!(
        message,
        format!(
            "HTTP request to http://{}:{} denied: it is not in this plugin's allowed hosts",
            "127.0.0.1",
            upstream.addr.port()
        )
    );
    assert_eq!(upstream.requests(), 0);

    // Grant: a manifest naming the upstream, picked up by hot reload.
    write_manifest(
        server.plugins_path(),
        "misbehave",
        &format!("[http]\nallowed_hosts = [\"{}\"]\n", upstream.url("")),
    );
    eventually("the grant to take effect", async || {
        call(&server, "http_get", json!({"url": upstream.url("/hello")})).await.get("error").is_none()
    })
    .await;

    // Allow: that host, any path and method...
    let allowed = call(&server, "http_get", json!({"url": upstream.url("/hello?x=1")})).await;
    assert_eq!(allowed["result"], json!({"status": 200, "body": "hello from upstream"}));
    let posted = call(&server, "http_post", json!({"url": upstream.url("/echo"), "body": {"a": [1, 2]}})).await;
    assert_eq!(posted["result"], json!({"status": 200, "body": "{\"a\":[1,2]}"}));
    // ...and nothing else: another port on the same address, or another name for it.
    let before = other.requests();
    let elsewhere = call(&server, "http_get", json!({"url": other.url("/hello")})).await;
    assert!(error_of(&elsewhere).contains("denied"), "{elsewhere}");
    let by_name =
        call(&server, "http_get", json!({"url": format!("http://localhost:{}/hello", upstream.addr.port())})).await;
    assert!(error_of(&by_name).contains("denied"), "{by_name}");
    let https = call(&server, "http_get", json!({"url": format!("https://{}/hello", upstream.addr)})).await;
    assert!(error_of(&https).contains("denied"), "{https}");
    assert_eq!(other.requests(), before);

    // Revoke: removing the manifest takes the grant away again.
    std::fs::remove_file(server.plugins_path().join("misbehave.toml")).unwrap();
    eventually("the grant to be revoked", async || {
        call(&server, "http_get", json!({"url": upstream.url("/hello")})).await.get("error").is_some()
    })
    .await;
}

#[tokio::test]
async fn a_name_that_resolves_to_a_private_address_needs_an_explicit_grant() {
    let upstream = Upstream::start("unused").await;
    let port = upstream.addr.port();
    // `localhost` is allowed, but not to resolve to loopback; any host on
    // port 9 is allowed, but only at public addresses.
    let server =
        serve_misbehave(&format!("[http]\nallowed_hosts = [\"http://localhost:{port}\", \"http://*:9\"]\n")).await;
    let entry = call(&server, "http_get", json!({"url": format!("http://localhost:{port}/hello")})).await;
    assert_eq!(
        error_of(&entry),
        format!(
            "HTTP request to http://localhost:{port} refused: it resolves to a private or local address this plugin may not reach"
        )
    );
    // Literal loopback, cloud metadata, IPv4-mapped IPv6, unspecified, private
    // ranges: all refused before any connection is tried.
    for url in [
        "http://127.0.0.1:9/",
        "http://169.254.169.254:9/latest/meta-data/",
        "http://[::ffff:127.0.0.1]:9/",
        "http://[fd00:ec2::254]:9/",
        "http://0.0.0.0:9/",
        "http://10.1.2.3:9/",
        "http://[::1]:9/",
    ] {
        let entry = call(&server, "http_get", json!({ "url": url })).await;
        assert!(error_of(&entry).contains("resolves to a private or local address"), "{url}: {entry}");
    }
    assert_eq!(upstream.requests(), 0);

    // The explicit grant: the flag on the entry...
    write_manifest(
        server.plugins_path(),
        "misbehave",
        &format!("[http]\nallowed_hosts = [{{ host = \"http://localhost:{port}\", allow_private = true }}]\n"),
    );
    eventually("allow_private to take effect", async || {
        call(&server, "http_get", json!({"url": format!("http://localhost:{port}/hello")})).await["result"]["status"]
            == 200
    })
    .await;
    // ...or the address itself.
    write_manifest(
        server.plugins_path(),
        "misbehave",
        &format!("[http]\nallowed_hosts = [\"http://127.0.0.1:{port}\"]\n"),
    );
    eventually("the literal address to be allowed", async || {
        call(&server, "http_get", json!({"url": upstream.url("/hello")})).await["result"]["status"] == 200
    })
    .await;
    let by_name = call(&server, "http_get", json!({"url": format!("http://localhost:{port}/hello")})).await;
    assert!(error_of(&by_name).contains("denied"), "the address grants the address, not a name: {by_name}");
}

#[tokio::test]
async fn responses_are_capped_and_requests_end_before_the_call_does() {
    let upstream = Upstream::start("unused").await;
    let dir = plugins_dir(&["misbehave", "echo"]);
    write_manifest(
        dir.path(),
        "misbehave",
        &format!(
            "timeout_ms = 1500\n[http]\nallowed_hosts = [\"{}\", \"https://{}\"]\nmax_response_bytes = 65536\n",
            upstream.url(""),
            upstream.addr
        ),
    );
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let started = Instant::now();
    let body = tool_calls(&[
        ("big", "http_get", json!({"url": upstream.url("/big")})),
        ("chunked", "http_get", json!({"url": upstream.url("/big-chunked")})),
        ("slow", "http_get", json!({"url": upstream.url("/slow")})),
        ("tls", "http_get", json!({"url": format!("https://{}/hello", upstream.addr)})),
        ("quick", "echo", json!({"a": 1})),
    ]);
    let results = results(&server, &body).await;
    let elapsed = started.elapsed();
    let origin = format!("http://127.0.0.1:{}", upstream.addr.port());
    assert_eq!(error_of(&results[0]), format!("the response from {origin} is too large"), "declared length");
    assert_eq!(error_of(&results[1]), format!("the response from {origin} is too large"), "streamed body");
    // The request gives up a little before the call's deadline, so the
    // plugin still answers, with its own message.
    assert_eq!(error_of(&results[2]), format!("HTTP request to {origin} timed out"));
    // https to a plain-HTTP server: the TLS handshake fails, and says so.
    let tls = error_of(&results[3]);
    assert!(
        tls.starts_with(&format!("HTTP request to https://{}:{} failed", "127.0.0.1", upstream.addr.port())),
        "{tls}"
    );
    assert_eq!(results[4]["result"], json!({"echo": {"a": 1}}));
    assert!(elapsed < Duration::from_millis(2500), "answered after {elapsed:?}");
}

/// Answers after 150 ms, counting how many requests it holds at once.
async fn gate(State(state): State<UpstreamState>) -> &'static str {
    let open = state.seen.open.fetch_add(1, Ordering::SeqCst) + 1;
    state.seen.most_open.fetch_max(open, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    state.seen.open.fetch_sub(1, Ordering::SeqCst);
    "through"
}

/// Reads the whole request body, then answers as `gate` does, with the
/// number of bytes it read, padded with spaces to 4 MiB: an answer too large
/// for the host to buffer unread.
async fn gate_upload(state: State<UpstreamState>, body: axum::body::Body) -> String {
    let received = axum::body::to_bytes(body, usize::MAX).await.map_or(0, |bytes| bytes.len());
    let answer = format!("{} {received}", gate(state).await);
    let padding = " ".repeat(UPLOAD_ANSWER_BYTES - answer.len());
    answer + &padding
}

const UPLOAD_ANSWER_BYTES: usize = 4 << 20;

#[tokio::test]
async fn a_calls_requests_open_at_once_are_capped_and_the_rest_wait_for_a_place() {
    // (manifest line, requests sent at once, the most the upstream may see at once)
    for (setting, count, cap) in [("max_concurrent_requests = 3\n", 10, 3), ("", 10, 8)] {
        let upstream = Upstream::start("unused").await;
        let server = serve_misbehave(&format!("[http]\nallowed_hosts = [\"{}\"]\n{setting}", upstream.url(""))).await;
        let started = Instant::now();
        let burst = call(&server, "http_burst", json!({"url": upstream.url("/gate"), "count": count})).await;
        let elapsed = started.elapsed();
        let answers = burst["result"].as_array().unwrap_or_else(|| panic!("{burst}"));
        assert_eq!(answers.len(), count, "{burst}");
        assert!(
            answers.iter().all(|a| *a == json!({"status": 200, "body": "through"})),
            "every request got through: {burst}"
        );
        // Sent together (not one by one), but never more than the cap at once.
        assert_eq!(upstream.seen.most_open.load(Ordering::SeqCst), cap, "{setting:?}");
        let rounds = count.div_ceil(cap) as u32;
        assert!(elapsed >= Duration::from_millis(150) * rounds, "{count} requests, {cap} at a time, took {elapsed:?}");
    }
}

#[tokio::test]
async fn requests_waiting_for_a_place_with_large_bodies_go_out_as_earlier_ones_finish() {
    // Bodies and answers larger than the host buffers: a request waiting for
    // a place takes only part of its body, and the request holding the place
    // keeps it until its answer is read. So the plugin must read the earlier
    // answers while the later bodies are still being written.
    let (count, cap, body_bytes) = (3, 1, 8 << 20);
    let upstream = Upstream::start("unused").await;
    let origin = upstream.url("");
    let server = serve_misbehave(&format!(
        "timeout_ms = 8000\n[http]\nallowed_hosts = [\"{origin}\"]\nmax_concurrent_requests = {cap}\nmax_response_bytes = {UPLOAD_ANSWER_BYTES}\n"
    ))
    .await;
    let burst =
        call(&server, "http_burst", json!({"url": upstream.url("/gate"), "count": count, "body_bytes": body_bytes}))
            .await;
    let answers = burst["result"].as_array().unwrap_or_else(|| panic!("{burst}"));
    let expected = json!({"status": 200, "body": format!("through {body_bytes}")});
    assert!(answers.len() == count && answers.iter().all(|a| *a == expected), "every upload got through: {burst}");
    assert_eq!(upstream.seen.most_open.load(Ordering::SeqCst), cap);
}

#[tokio::test]
async fn an_upload_to_a_closed_port_fails_at_once_not_at_the_deadline() {
    // A port nothing listens on (bound, then released).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server =
        serve_misbehave(&format!("[http]\nallowed_hosts = [{{ host = \"http://{closed}\", allow_private = true }}]\n"))
            .await;
    let started = Instant::now();
    let url = format!("http://{closed}/upload");
    let burst = call(&server, "http_burst", json!({"url": url, "count": 2, "body_bytes": 8 << 20})).await;
    let refused = json!({"error": format!("HTTP request to http://{closed} failed: connection refused")});
    assert_eq!(burst["result"], json!([refused, refused]), "{burst}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

/// The environment variable the test manifests read the calendar key from:
/// one cargo sets for every test run, so no test has to change the
/// environment of the whole process.
const KEY_VAR: &str = "CARGO_PKG_NAME";

fn calendar_key() -> String {
    std::env::var(KEY_VAR).unwrap_or_else(|_| panic!("{KEY_VAR} is set by cargo for test runs"))
}

/// A folder with `book_appointment` granted the calendar at `upstream`, and
/// `misbehave` with a grant of its own elsewhere.
fn calendar_dir(upstream: &Upstream, elsewhere: &Upstream) -> tempfile::TempDir {
    let dir = plugins_dir(&["book_appointment", "misbehave", "echo"]);
    write_manifest(
        dir.path(),
        "book_appointment",
        &format!(
            r#"
timeout_ms = 4000
[http]
allowed_hosts = ["{origin}"]
[config]
base_url = "{origin}/v1"
[secrets]
api_key = {{ env = "{KEY_VAR}" }}
"#,
            origin = upstream.url("")
        ),
    );
    write_manifest(
        dir.path(),
        "misbehave",
        &format!(
            "[http]\nallowed_hosts = [\"{}\"]\n[secrets]\nown_token = \"misbehave-token-123\"\n",
            elsewhere.url("")
        ),
    );
    dir
}

#[tokio::test]
async fn book_appointment_checks_and_books_a_slot_with_its_key() {
    let upstream = Upstream::start(&calendar_key()).await;
    let elsewhere = Upstream::start("unused").await;
    let server = TestServer::serve_dir(calendar_dir(&upstream, &elsewhere), |_| {}).await;

    let free = call(&server, "check_availability", json!({"date": "2025-12-15"})).await;
    assert_eq!(free["result"], json!({"date": "2025-12-15", "free_slots": ["09:00", "10:00", "11:00"]}));

    let booked = call(&server, "book_appointment", json!({"date": "2025-12-15", "time": "10:00", "name": "Jan"})).await;
    assert_eq!(
        booked["result"],
        json!({"confirmed": true, "booking_id": "bk_1", "date": "2025-12-15", "time": "10:00", "name": "Jan",
               "message": "Booked Jan on 2025-12-15 at 10:00."})
    );
    // The caller's number from the webhook reached the calendar.
    let bookings = upstream.seen.bookings.lock().unwrap().clone();
    assert_eq!(bookings[&("2025-12-15".to_owned(), "10:00".to_owned())], "+31612345678");
    // Every request carried the key from the host's environment.
    let auth = upstream.seen.authorization.lock().unwrap().clone();
    assert_eq!(auth.len(), 2, "check_availability, then the booking itself");
    assert!(auth.iter().all(|a| *a == format!("Bearer {}", calendar_key())), "{auth:?}");

    let taken = call(&server, "book_appointment", json!({"date": "2025-12-15", "time": "10:00", "name": "Ann"})).await;
    assert_eq!(error_of(&taken), "10:00 on 2025-12-15 is not free. Free times: 09:00, 11:00.");
    let bad = call(&server, "book_appointment", json!({"date": "next monday", "time": "10:00", "name": "Ann"})).await;
    assert!(error_of(&bad).contains("YYYY-MM-DD"), "{bad}");
}

#[tokio::test]
async fn one_plugin_gets_its_host_and_secret_and_every_other_plugin_is_refused() {
    let upstream = Upstream::start(&calendar_key()).await;
    let elsewhere = Upstream::start("unused").await;
    let server = TestServer::serve_dir(calendar_dir(&upstream, &elsewhere), |_| {}).await;
    assert!(call(&server, "check_availability", json!({"date": "2025-12-15"})).await["result"].is_object());
    let served = upstream.requests();

    // misbehave has a grant of its own, but not the calendar's host...
    let entry = call(&server, "http_get", json!({"url": upstream.url("/v1/availability?date=2025-12-15")})).await;
    assert!(error_of(&entry).contains("denied"), "{entry}");
    // ...nor the calendar's key or configuration, while it does see its own.
    for key in ["api_key", "base_url", KEY_VAR, "PATH"] {
        assert_eq!(call(&server, "config", json!({ "key": key })).await["result"], json!({"value": null}), "{key}");
    }
    let own = call(&server, "http_get", json!({"url": elsewhere.url("/hello"), "bearer_secret": "own_token"})).await;
    assert_eq!(own["result"]["status"], 200);
    assert_eq!(*elsewhere.seen.authorization.lock().unwrap(), ["Bearer misbehave-token-123"]);
    // echo has no manifest: nothing at all.
    assert_eq!(upstream.requests(), served, "no other plugin reached the calendar");

    // A manifest whose secret cannot be resolved is a load error that says why.
    write_manifest(server.plugins_path(), "echo", "[secrets]\ntoken = { env = \"SWITCHBOARD_TEST_SURELY_UNSET\" }\n");
    eventually("the load error", async || {
        server.get_json("/plugins").await["errors"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await;
    let plugins = server.get_json("/plugins").await;
    let error = plugins["errors"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("echo.toml")
            && error.contains(
                "secret `token` reads the environment variable SWITCHBOARD_TEST_SURELY_UNSET, which is not set"
            ),
        "{error}"
    );
}

#[tokio::test]
async fn secrets_stay_out_of_logs_errors_results_and_endpoints() {
    let (logs, _guard) = LogCapture::start();
    let upstream = Upstream::start("unused").await;
    let secret = "sk_live_0123456789abcdef";
    let server = serve_misbehave(&format!(
        "[http]\nallowed_hosts = [\"{}\"]\n[secrets]\ntoken = \"{secret}\"\n",
        upstream.url("")
    ))
    .await;

    let leaked = call(&server, "leak_secret", json!({"key": "token"})).await;
    assert_eq!(error_of(&leaked), "the secret is ***");
    let used = call(&server, "http_get", json!({"url": upstream.url("/hello"), "bearer_secret": "token"})).await;
    assert_eq!(used["result"]["status"], 200);
    assert_eq!(*upstream.seen.authorization.lock().unwrap(), [format!("Bearer {secret}")], "the upstream got it");
    let echoed = call(&server, "http_post", json!({"url": upstream.url("/echo"), "body": {"echo": secret}})).await;
    assert_eq!(echoed["result"]["body"], "{\"echo\":\"***\"}", "not even through a result");

    for path in ["/plugins", "/tools", "/metrics"] {
        let text = server.client.get(format!("{}{path}", server.url)).send().await.unwrap().text().await.unwrap();
        assert!(!text.contains(secret), "{path} shows the secret");
    }
    let logs = logs.text();
    assert!(!logs.contains(secret), "the secret is in the log:\n{logs}");
    let plugin_lines: Vec<&str> =
        logs.lines().filter(|l| l.contains("the secret is") && l.contains("plugin=misbehave")).collect();
    assert_eq!(plugin_lines.len(), 2, "wasi:logging and stderr:\n{logs}");
    for line in plugin_lines {
        assert!(line.contains("the secret is *** plugin=misbehave tool=leak_secret call_id=call-1"), "{line}");
    }
}

#[tokio::test]
async fn hostile_plugins_are_contained_and_the_server_keeps_answering() {
    let (logs, _guard) = LogCapture::start();
    let upstream = Upstream::start("unused").await;
    let dir = plugins_dir(&["misbehave", "echo"]);
    write_manifest(dir.path(), "misbehave", "memory_mib = 32\n");
    let server = Arc::new(TestServer::serve_dir(dir, |s| s.tool_calls_budget = Duration::from_secs(3)).await);
    let hostile = tool_calls(&[
        ("flood", "flood_logs", json!({"records": 2_000})),
        ("churn", "alloc_churn", json!({"rounds": 200, "mib": 8})),
        ("env", "read_env", json!({})),
        ("file", "read_file", json!({"path": "/etc/passwd"})),
        ("cwd", "read_file", json!({"path": "Cargo.toml"})),
        ("tcp", "raw_tcp", json!({"addr": upstream.addr.to_string()})),
        ("http", "http_get", json!({"url": upstream.url("/hello")})),
        ("mem", "memory_bomb", json!({})),
        ("loop", "loop_forever", json!({})),
        ("panic", "trap", json!({})),
        ("ok", "echo", json!({"still": "here"})),
    ]);
    let hostile = {
        let server = server.clone();
        tokio::spawn(async move { results(&server, &hostile).await })
    };
    // While that runs (the loop holds a core for 3 s), other requests answer at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let started = Instant::now();
        let quick = call(&server, "echo", json!({"n": 1})).await;
        assert_eq!(quick["result"], json!({"echo": {"n": 1}}));
        assert!(started.elapsed() < Duration::from_millis(1500), "a normal call waited {:?}", started.elapsed());
    }
    let results = hostile.await.unwrap();
    let by_id: HashMap<&str, &Value> = results.iter().map(|r| (r["tool_call_id"].as_str().unwrap(), r)).collect();
    assert_eq!(by_id["flood"]["result"], json!({"done": true}), "a flood of output is dropped, the call goes on");
    assert_eq!(by_id["churn"]["result"]["rounds"], 200, "churn under the cap is fine");
    assert_eq!(by_id["env"]["result"], json!({"vars": []}), "no environment variables");
    assert!(error_of(by_id["file"]).starts_with("cannot read /etc/passwd"), "{}", by_id["file"]);
    assert!(error_of(by_id["cwd"]).starts_with("cannot read Cargo.toml"), "{}", by_id["cwd"]);
    assert!(error_of(by_id["tcp"]).starts_with(&format!("cannot connect to {}", upstream.addr)), "{}", by_id["tcp"]);
    assert!(error_of(by_id["http"]).contains("denied"), "{}", by_id["http"]);
    assert_eq!(error_of(by_id["mem"]), "the tool ran out of memory (limit 32 MiB)");
    assert!(error_of(by_id["loop"]).contains("did not answer within"), "{}", by_id["loop"]);
    assert!(error_of(by_id["panic"]).contains("the tool crashed"), "{}", by_id["panic"]);
    assert_eq!(by_id["ok"]["result"], json!({"echo": {"still": "here"}}));
    assert_eq!(upstream.requests(), 0, "neither raw TCP nor HTTP got out");

    // The flood reached the log capped, tagged, and with one notice.
    let logs = logs.text();
    let flood: Vec<&str> = logs.lines().filter(|l| l.contains("tool=flood_logs")).collect();
    let kept = flood
        .iter()
        .filter(|l| ["plugin: record ", "plugin: stdout ", "plugin: stderr "].iter().any(|p| l.contains(p)))
        .count();
    assert!(kept > 50 && kept < 600, "kept {kept} of 6,000 records and lines");
    assert_eq!(flood.iter().filter(|l| l.contains("plugin log limit reached")).count(), 1);
    assert!(flood.iter().any(|l| l.contains("dropped_records=")), "the drop is counted");
    // The panic message went to the log, from stderr.
    assert!(logs.lines().any(|l| l.contains("tool=trap") && l.contains("deliberate trap")), "{logs}");
}

#[tokio::test]
async fn command_plugins_get_config_as_environment_and_no_http() {
    let dir = plugins_dir(&[]);
    std::fs::copy(plugin_wasm("command_misbehave"), dir.path().join("env.wasm")).unwrap();
    write_manifest(dir.path(), "env", "[config]\nregion = \"eu\"\n[secrets]\ntoken = \"cmd-secret-456\"\n");
    std::fs::copy(plugin_wasm("command_misbehave"), dir.path().join("greet.wasm")).unwrap();
    write_manifest(dir.path(), "greet", "[http]\nallowed_hosts = [\"https://api.example.com\"]\n");
    // Any [http] key is refused, not silently ignored.
    std::fs::copy(plugin_wasm("command_misbehave"), dir.path().join("capped.wasm")).unwrap();
    write_manifest(dir.path(), "capped", "[http]\nmax_response_bytes = 1000\nmax_concurrent_requests = 2\n");
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let entry = call(&server, "env", json!({})).await;
    assert_eq!(
        entry["result"],
        json!({"env": {"region": "eu", "token": "***"}}),
        "only its own values; secrets redacted"
    );
    let plugins = server.get_json("/plugins").await;
    let error_of = |name: &str| {
        let errors = plugins["errors"].as_array().unwrap();
        let entry = errors.iter().find(|e| e["error"].as_str().unwrap().contains(&format!("{name}.toml")));
        entry.unwrap_or_else(|| panic!("no load error for {name}: {plugins}"))["error"].as_str().unwrap().to_owned()
    };
    let greet = error_of("greet");
    assert!(
        greet.contains("[http] allowed_hosts is set, but a command plugin (WASI preview 1) cannot make HTTP requests"),
        "{greet}"
    );
    let capped = error_of("capped");
    assert!(
        capped.contains("[http] max_response_bytes, max_concurrent_requests are set, but a command plugin"),
        "{capped}"
    );
}

#[tokio::test]
async fn fuel_caps_instructions_when_metering_is_on() {
    let dir = plugins_dir(&["misbehave", "echo"]);
    write_manifest(dir.path(), "misbehave", "fuel = 50_000_000\n");
    let server = TestServer::serve_dir(dir, |s| s.plugin_defaults.fuel = Some(5_000_000_000)).await;
    let started = Instant::now();
    let entries =
        results(&server, &tool_calls(&[("loop", "loop_forever", json!({})), ("ok", "echo", json!({}))])).await;
    assert_eq!(error_of(&entries[0]), "the tool used up its fuel (50000000 units)");
    assert!(started.elapsed() < Duration::from_secs(5), "fuel, not the 9 s deadline, stopped it");
    assert_eq!(entries[1]["result"], json!({"echo": {}}), "the default fuel is plenty for a normal call");

    // Without metering, a manifest asking for fuel is refused with the way out.
    let server = serve_misbehave("fuel = 50_000_000\n").await;
    let error = server.get_json("/plugins").await["errors"][0]["error"].as_str().unwrap().to_owned();
    assert!(error.contains("`fuel` is set, but fuel metering is off") && error.contains("plugin_fuel"), "{error}");
}

/// A real HTTPS server on loopback whose certificate (for `localhost`) is
/// issued by a certificate authority made for the test, as an internal
/// service's would be; answers every request with `hello over tls`.
struct TlsUpstream {
    port: u16,
    /// The authority's certificate, PEM.
    ca_pem: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TlsUpstream {
    async fn start() -> Self {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

        let crate::common::TestCertificate { ca_pem, certificate, key } =
            crate::common::TestCertificate::new(&["localhost"]);
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![certificate.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let accept_loop = async {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else { continue };
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        // A client that does not trust the certificate hangs up here.
                        let Ok(tls) = acceptor.accept(tcp).await else { return };
                        let hello = hyper::service::service_fn(|_request| async {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from_static(b"hello over tls"),
                            )))
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), hello)
                            .await;
                    });
                }
            };
            tokio::select! {
                () = accept_loop => {}
                _ = stopped => {}
            }
        });
        Self { port, ca_pem, _stop: stop }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}/hello", self.port)
    }
}

#[tokio::test]
async fn https_is_verified_against_the_public_roots_plus_the_manifests_ca_file() {
    let upstream = TlsUpstream::start().await;
    let grant = |ca_file: &str| {
        format!(
            "[http]\nallowed_hosts = [{{ host = \"https://localhost:{}\", allow_private = true }}]\n{ca_file}",
            upstream.port
        )
    };

    // Trusted through the plugin's own ca_file (relative to the plugins folder).
    let dir = plugins_dir(&["misbehave"]);
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("certs/internal-ca.pem"), &upstream.ca_pem).unwrap();
    write_manifest(dir.path(), "misbehave", &grant("ca_file = \"certs/internal-ca.pem\"\n"));
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let fetched = call(&server, "http_get", json!({"url": upstream.url()})).await;
    assert_eq!(fetched["result"], json!({"status": 200, "body": "hello over tls"}), "{fetched}");

    // The same grant without it: the certificate is not trusted, and the error says so.
    let server = serve_misbehave(&grant("")).await;
    let refused = call(&server, "http_get", json!({"url": upstream.url()})).await;
    let error = error_of(&refused);
    assert_eq!(
        error,
        format!(
            "HTTP request to https://localhost:{} failed: the server's TLS certificate is not trusted",
            upstream.port
        )
    );

    // A ca_file that holds no certificate keeps the plugin from loading, and says why.
    let dir = plugins_dir(&["misbehave"]);
    std::fs::write(dir.path().join("not-a-ca.pem"), "just text\n").unwrap();
    write_manifest(dir.path(), "misbehave", &grant("ca_file = \"not-a-ca.pem\"\n"));
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let error = server.get_json("/plugins").await["errors"][0]["error"].as_str().unwrap().to_owned();
    assert!(error.contains("misbehave.toml: [http] ca_file:") && error.contains("holds no PEM certificate"), "{error}");
}

#[tokio::test]
async fn changing_a_ca_file_reloads_the_plugins_that_trust_it() {
    let upstream = TlsUpstream::start().await;
    let other_ca = TlsUpstream::start().await.ca_pem; // a CA that did not sign upstream's certificate
    let grant = |ca_file: &str| {
        format!(
            "[http]\nallowed_hosts = [{{ host = \"https://localhost:{}\", allow_private = true }}]\nca_file = \"{ca_file}\"\n",
            upstream.port
        )
    };
    let fetch = async |server: &TestServer| call(server, "http_get", json!({"url": upstream.url()})).await;
    let trusted = json!({"status": 200, "body": "hello over tls"});

    // The file, in a folder that does not exist yet, is missing: no plugin.
    let server = serve_misbehave(&grant("certs/internal-ca.pem")).await;
    let errors = server.get_json("/plugins").await["errors"].clone();
    assert!(errors[0]["error"].as_str().unwrap().contains("cannot read"), "{errors}");

    // Folder and file appear (the wrong CA): the plugin loads, and does not trust upstream.
    let certs = server.plugins_path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    replace_file(&certs.join("internal-ca.pem"), &other_ca);
    eventually("the plugin loads once its CA file exists", async || {
        fetch(&server).await["error"].as_str().is_some_and(|e| e.contains("certificate is not trusted"))
    })
    .await;

    // The file is rotated to the CA that signed upstream's certificate: trusted, manifest untouched.
    replace_file(&certs.join("internal-ca.pem"), &upstream.ca_pem);
    eventually("the rotated CA is trusted", async || fetch(&server).await["result"] == trusted).await;

    // Also for a file in the plugins folder itself, edited in place.
    let in_folder = server.plugins_path().join("internal-ca.pem");
    std::fs::write(&in_folder, &other_ca).unwrap();
    write_manifest(server.plugins_path(), "misbehave", &grant("internal-ca.pem"));
    eventually("the manifest now names the wrong CA", async || {
        fetch(&server).await["error"].as_str().is_some_and(|e| e.contains("certificate is not trusted"))
    })
    .await;
    std::fs::write(&in_folder, &upstream.ca_pem).unwrap();
    eventually("the edited CA file is read again", async || fetch(&server).await["result"] == trusted).await;
    assert!(server.get_json("/plugins").await["errors"].as_array().unwrap().is_empty());
}
