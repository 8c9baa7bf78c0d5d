//! A replica killed mid-call, through the real pieces: three `switchboard
//! serve` processes sharing one real `redis-server` (`[dedup] redis_url`),
//! behind a real HAProxy, serving `book_appointment` against a slow calendar
//! on loopback that books once per `Idempotency-Key`. One replica is killed
//! (SIGKILL) while its calls wait on the calendar; every failed delivery is
//! sent again through HAProxy with the same ids, as the platform would.
//!
//! The CI test books 30 times; the longer run (300) is `#[ignore]`d, its
//! command is in docs/operations.md.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::common::{RedisServer, SECRET, code_cache, plugin_wasm, serve_upstream, signed_webhook};

/// How long the calendar takes to answer a new booking (made as it arrives).
const BOOKING_TAKES: Duration = Duration::from_millis(1500);
const CALENDAR_KEY: &str = "calendar-test-key";
/// Deliveries of one booking before the test gives up on it (unanswered).
const MOST_ATTEMPTS: usize = 20;

/// What the calendar saw.
#[derive(Default)]
struct Ledger {
    /// Booking requests, with a key or without.
    requests: AtomicUsize,
    without_key: AtomicUsize,
    /// Requests whose key was booked already: answered with that booking.
    /// Without the key each would have been a second booking.
    repeats: AtomicUsize,
    /// Bookings being answered now (made, answer not yet sent).
    in_flight: AtomicUsize,
    /// Booking id and when it was made, by key.
    booked: Mutex<HashMap<String, (String, Instant)>>,
    /// Bookings made (one per key, one per request without a key), by the
    /// name booked for: each booking of the test is for a name of its own.
    made: Mutex<HashMap<String, usize>>,
}

/// A calendar on loopback: `POST /v1/bookings` books at once and answers
/// after [`BOOKING_TAKES`]; a request whose `Idempotency-Key` was booked
/// already gets that booking back at once (`200`), as idempotent APIs do.
struct Calendar {
    origin: String,
    ledger: Arc<Ledger>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Calendar {
    async fn start() -> Self {
        let ledger = Arc::new(Ledger::default());
        let app = axum::Router::new()
            .route("/v1/bookings", post(book))
            .route("/v1/availability", get(|| async { Json(json!({"slots": []})) }))
            .with_state(ledger.clone());
        let (addr, stop) = serve_upstream(app).await;
        Self { origin: format!("http://{addr}"), ledger, _stop: stop }
    }
}

async fn book(
    State(ledger): State<Arc<Ledger>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {CALENDAR_KEY}")) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad key"})));
    }
    ledger.requests.fetch_add(1, Ordering::SeqCst);
    let answer = |id: &str| Json(json!({"id": id, "date": body["date"], "time": body["time"]}));
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let id = {
        let mut booked = ledger.booked.lock().unwrap();
        if let Some((id, _)) = key.as_ref().and_then(|key| booked.get(key)) {
            ledger.repeats.fetch_add(1, Ordering::SeqCst);
            return (StatusCode::OK, answer(id));
        }
        let id = {
            let mut made = ledger.made.lock().unwrap();
            *made.entry(body["name"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
            format!("bk_{}", made.values().sum::<usize>())
        };
        match key {
            Some(key) => {
                booked.insert(key, (id.clone(), Instant::now()));
            }
            None => {
                ledger.without_key.fetch_add(1, Ordering::SeqCst);
            }
        }
        id
    };
    ledger.in_flight.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(BOOKING_TAKES).await;
    ledger.in_flight.fetch_sub(1, Ordering::SeqCst);
    (StatusCode::CREATED, answer(&id))
}

/// A free loopback port (bound, then released for a child process to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The child processes of one run, killed when dropped; their logs are
/// printed when the test fails.
struct Processes {
    dir: tempfile::TempDir,
    children: Vec<(String, Option<Child>)>,
}

impl Processes {
    fn spawn(&mut self, name: &str, command: &mut Command) {
        let log = std::fs::File::create(self.log(name)).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.children.push((name.to_owned(), Some(child)));
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// Kills `name` with SIGKILL, as an OOM killer or a lost machine would.
    fn kill(&mut self, name: &str) {
        let (_, child) = self.children.iter_mut().find(|(n, _)| n == name).expect("a child of this run");
        let mut child = child.take().expect("still running");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            if let Some(child) = child {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            for (name, _) in &self.children {
                let log = std::fs::read_to_string(self.log(name)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- {name} (last lines)\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
        }
    }
}

/// `book_appointment`, granted the calendar on loopback, in a plugins folder of its own.
fn plugins_folder(dir: &Path, calendar: &Calendar) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(plugin_wasm("book_appointment"), plugins.join("book_appointment.wasm")).unwrap();
    std::fs::write(
        plugins.join("book_appointment.toml"),
        format!(
            "timeout_ms = 8000\n[http]\nallowed_hosts = [{{ host = \"{origin}\", allow_private = true }}]\n\
             [config]\nbase_url = \"{origin}/v1\"\n[secrets]\napi_key = \"{CALENDAR_KEY}\"\n",
            origin = calendar.origin
        ),
    )
    .unwrap();
    plugins
}

/// Three replicas (each `serve` on a port of its own, sharing `redis`) behind
/// HAProxy; returns HAProxy's URL once every replica has loaded its plugin.
async fn start_fleet(processes: &mut Processes, calendar: &Calendar, redis: &RedisServer) -> String {
    let dir = processes.dir.path().to_owned();
    let plugins = plugins_folder(&dir, calendar);
    let config = dir.join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            "plugins = {plugins:?}\nsecrets = [\"{SECRET}\"]\ncache_dir = {cache:?}\n\n[dedup]\nredis_url = \"{redis}\"\n",
            cache = code_cache(),
            redis = redis.url
        ),
    )
    .unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    for (i, port) in ports.iter().enumerate() {
        processes.spawn(
            &format!("replica-{i}"),
            Command::new(env!("CARGO_BIN_EXE_switchboard"))
                .args(["serve", "--no-watch", "--config"])
                .arg(&config)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .env("RUST_LOG", "warn"),
        );
    }
    let client = reqwest::Client::new();
    for port in &ports {
        let ready = async || {
            let Ok(response) = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await else {
                return false;
            };
            response.json::<Value>().await.is_ok_and(|r| r["plugins"] == 1 && r["failed"] == 0)
        };
        wait_for(&format!("replica on port {port} to load book_appointment"), Duration::from_secs(60), ready).await;
    }

    let front = free_port();
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, port)| format!("    server replica-{i} 127.0.0.1:{port} check inter 200ms fall 2 rise 1\n"))
        .collect();
    let haproxy_config = dir.join("haproxy.cfg");
    std::fs::write(
        &haproxy_config,
        format!(
            "global\n    maxconn 1024\n    nbthread 1\n\n\
             defaults\n    mode http\n    option redispatch\n    retries 0\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n\n\
             frontend webhooks\n    bind 127.0.0.1:{front}\n    default_backend replicas\n\n\
             backend replicas\n    balance roundrobin\n    option httpchk GET /healthz\n    http-check expect status 200\n{servers}"
        ),
    )
    .unwrap();
    processes.spawn("haproxy", Command::new(haproxy()).arg("-db").arg("-f").arg(&haproxy_config));
    let url = format!("http://127.0.0.1:{front}");
    let up = async || client.get(format!("{url}/healthz")).send().await.is_ok_and(|r| r.status() == 200);
    wait_for("HAProxy to answer", Duration::from_secs(10), up).await;
    url
}

/// `haproxy`: on the PATH, or where Debian's package puts it (`/usr/sbin`
/// is not on every user's PATH).
fn haproxy() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("haproxy"))
        .find(|file| file.is_file())
        .expect("haproxy must be installed for the replica tests (apt-get install haproxy; ./test.sh installs it)")
}

async fn wait_for(what: &str, most: Duration, check: impl AsyncFn() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < most, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Booking `i`'s webhook: a phone call of its own with one tool call.
fn booking_body(i: usize) -> Vec<u8> {
    let arguments = json!({"date": "2026-03-02", "time": format!("{:02}:{:02}", 8 + i / 60 % 10, i % 60), "name": format!("Caller {i}")});
    serde_json::to_vec(&json!({
        "message": {
            "type": "tool-calls",
            "timestamp": "2026-03-01T12:00:00.000Z",
            "call": {"id": format!("call-{i}"), "type": "inbound_phone_call", "status": "in-progress"},
            "phone_number": {"number": "+31850835037"},
            "customer": {"number": "+31612345678"},
            "tool_call_list": [{"id": format!("tool-{i}"), "type": "function",
                                "function": {"name": "book_appointment", "arguments": arguments}}],
        }
    }))
    .unwrap()
}

/// The key `book_appointment` sends for booking `i` (`call_id:tool_call_id`).
fn key_of(i: usize) -> String {
    format!("call-{i}:tool-{i}")
}

/// How one booking went, seen from the platform.
#[derive(Debug)]
struct Booking {
    /// The tool call's result entry, once a delivery was answered.
    answer: Option<Value>,
    /// Deliveries sent.
    attempts: usize,
    /// The first delivery's failure: the status HAProxy answered, or 0 when the connection failed.
    first_failure: Option<(u16, Instant)>,
    /// From the first failed delivery to the answer.
    recovered_in: Option<Duration>,
}

/// Sends booking `i` through `url`, again with the same ids after each
/// failed delivery, until a delivery is answered.
async fn deliver(client: &reqwest::Client, url: &str, i: usize) -> Booking {
    let body = booking_body(i);
    let mut booking = Booking { answer: None, attempts: 0, first_failure: None, recovered_in: None };
    while booking.attempts < MOST_ATTEMPTS {
        booking.attempts += 1;
        let sent = signed_webhook(client, url, &body).send().await;
        let status = match sent {
            Ok(response) if response.status() == 200 => {
                let json: Value = response.json().await.unwrap();
                booking.answer = Some(json["results"][0].clone());
                booking.recovered_in = booking.first_failure.map(|(_, at)| at.elapsed());
                return booking;
            }
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        booking.first_failure.get_or_insert((status, Instant::now()));
        // A replica refusing connections is marked down within two health
        // checks; until then a retry may land on it again.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    booking
}

/// What a run measured.
#[derive(Debug)]
struct Figures {
    bookings: usize,
    at_once: usize,
    /// First deliveries cut off by the kill (HAProxy's 502, or the connection failed).
    orphaned: usize,
    /// ...of which the calendar had booked before the delivery failed.
    orphaned_after_booking: usize,
    /// First deliveries refused because the dead replica was not yet marked down (503).
    refused: usize,
    slowest_orphan_retry: Duration,
    /// Booking requests the calendar got, and the distinct keys it booked.
    requests: usize,
    keys: usize,
    /// Booking requests the calendar answered from its key store: each would
    /// have been a second booking without the key.
    repeats: usize,
    /// Names booked more than once, and booking requests without a key.
    booked_twice: usize,
    without_key: usize,
    /// Answers that are not the calendar's booking for that call, and bookings never answered.
    lost: usize,
    unanswered: usize,
    took: Duration,
}

async fn kill_a_replica_mid_call(bookings: usize, at_once: usize) -> Figures {
    let redis = RedisServer::start().await;
    let calendar = Calendar::start().await;
    let mut processes = Processes { dir: tempfile::tempdir().unwrap(), children: Vec::new() };
    let url = start_fleet(&mut processes, &calendar, &redis).await;

    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let started = Instant::now();
    let (sent, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let runs = {
        let (client, url, sent, done) = (client.clone(), url.clone(), sent.clone(), done.clone());
        tokio::spawn(async move {
            use futures::StreamExt;
            futures::stream::iter(0..bookings)
                .map(|i| {
                    let (client, url, sent, done) = (&client, &url, &sent, &done);
                    async move {
                        sent.fetch_add(1, Ordering::SeqCst);
                        let booking = deliver(client, url, i).await;
                        done.fetch_add(1, Ordering::SeqCst);
                        (i, booking)
                    }
                })
                .buffer_unordered(at_once)
                .collect::<Vec<_>>()
                .await
        })
    };
    // A third of the way in, once every call under way waits on the
    // calendar (booked, not yet answered): kill replica 0.
    let mid_call = || {
        let (sent, done) = (sent.load(Ordering::SeqCst), done.load(Ordering::SeqCst));
        done >= bookings / 3 && sent > done && calendar.ledger.in_flight.load(Ordering::SeqCst) >= sent - done
    };
    let waiting = Instant::now();
    while !mid_call() {
        assert!(waiting.elapsed() < Duration::from_secs(120), "the bookings never got a third of the way");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    processes.kill("replica-0");
    let mut outcomes = runs.await.unwrap();
    let took = started.elapsed();
    outcomes.sort_by_key(|(i, _)| *i);

    let booked = calendar.ledger.booked.lock().unwrap();
    let mut figures = Figures {
        bookings,
        at_once,
        orphaned: 0,
        orphaned_after_booking: 0,
        refused: 0,
        slowest_orphan_retry: Duration::ZERO,
        requests: calendar.ledger.requests.load(Ordering::SeqCst),
        keys: booked.len(),
        repeats: calendar.ledger.repeats.load(Ordering::SeqCst),
        booked_twice: calendar.ledger.made.lock().unwrap().values().filter(|n| **n > 1).count(),
        without_key: calendar.ledger.without_key.load(Ordering::SeqCst),
        lost: 0,
        unanswered: 0,
        took,
    };
    for (i, booking) in &outcomes {
        let record = booked.get(&key_of(*i));
        match (&booking.answer, record) {
            (None, _) => figures.unanswered += 1,
            (Some(answer), Some((id, _)))
                if answer["result"]["confirmed"] == true && answer["result"]["booking_id"] == id.as_str() => {}
            (Some(answer), _) => {
                eprintln!("booking {i} answered {answer} (calendar: {record:?})");
                figures.lost += 1;
            }
        }
        match booking.first_failure {
            Some((502 | 0, failed_at)) => {
                figures.orphaned += 1;
                if record.is_some_and(|(_, made)| *made < failed_at) {
                    figures.orphaned_after_booking += 1;
                }
                figures.slowest_orphan_retry =
                    figures.slowest_orphan_retry.max(booking.recovered_in.unwrap_or(Duration::MAX));
            }
            Some(_) => figures.refused += 1,
            None => {}
        }
    }
    eprintln!("{figures}");
    figures
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} bookings, {} at a time, through HAProxy to 3 replicas; one killed (SIGKILL) a third of the way in; {:.1} s in all",
            self.bookings,
            self.at_once,
            self.took.as_secs_f64()
        )?;
        writeln!(
            f,
            "  orphaned calls (first delivery cut by the kill): {}, {} of them booked before it; deliveries refused (503): {}",
            self.orphaned, self.orphaned_after_booking, self.refused
        )?;
        writeln!(f, "  slowest retry of an orphaned call: {:.2} s", self.slowest_orphan_retry.as_secs_f64())?;
        writeln!(
            f,
            "  bookings made twice: {} (booking requests: {} for {} keys, {} of them repeats the calendar answered by key; without a key: {})",
            self.booked_twice, self.requests, self.keys, self.repeats, self.without_key
        )?;
        write!(f, "  lost / unanswered: {} / {}", self.lost, self.unanswered)
    }
}

/// Bookings through a fleet that loses a replica mid-call are each made
/// once and all answered; the retries of the dead replica's calls take over
/// its lapsed claims within about a second.
fn check(figures: &Figures) {
    assert_eq!((figures.lost, figures.unanswered), (0, 0), "every booking answered with its booking");
    assert_eq!(figures.without_key, 0, "every booking request carried its Idempotency-Key");
    assert_eq!(figures.booked_twice, 0, "no call booked twice");
    assert_eq!(figures.keys, figures.bookings, "one key booked per booking");
    assert_eq!(figures.requests, figures.keys + figures.repeats, "{figures:?}");
    assert!(figures.orphaned >= 1, "the kill caught calls mid-flight: {figures:?}");
    // Switchboard ran a call again only when its replica died with it.
    assert!(figures.repeats <= figures.orphaned, "{figures:?}");
    // Goal 2 s: the dead claim lapses within a lease (1 s) and the retry
    // gets the calendar's booking back at once. The margin is for a loaded
    // machine, and for a call killed before it reached the calendar (its
    // retry books anew: 1.5 s more).
    assert!(figures.slowest_orphan_retry < Duration::from_secs(3), "{figures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_call_loses_no_booking_and_books_none_twice() {
    check(&kill_a_replica_mid_call(30, 8).await);
}

/// The longer run of BENCHMARKS.md ("A replica killed mid-call"):
/// `cargo test -p switchboard --test it replicas::three_hundred -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "about a minute; the figures of BENCHMARKS.md"]
async fn three_hundred_bookings_with_a_replica_killed_mid_call() {
    check(&kill_a_replica_mid_call(300, 8).await);
}
