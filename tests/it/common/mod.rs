//! Shared test helpers: compiled plugins, a real server on loopback, and a
//! client that signs requests as the platform does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use switchboard::{CompileSettings, Settings, Switchboard, sign, unix_now};
use tempfile::TempDir;

pub const SECRET: &str = "whsec_test_secret_12345";

/// The command that builds the plugins the tests load (`./test.sh` runs it).
const BUILD_COMMAND: &str = "plugins/build.sh tests";

/// The folder holding the test and example plugins, built before the tests
/// by `plugins/build.sh tests` (`./test.sh` runs it): `NAME.wasm` for the
/// components echo, lookup_contact, business_hours, book_appointment,
/// misbehave and hooks, and the WASI commands echo_command and
/// command_misbehave. Tests only read these files; they build nothing.
pub fn built_plugins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-plugins/all");
        assert!(
            all.is_dir(),
            "target/test-plugins/all is missing: run `./test.sh`, or `{BUILD_COMMAND}` before `cargo test`"
        );
        all
    })
}

/// A precompiled-code cache shared by all tests, so each plugin version is
/// compiled once per run rather than once per test.
pub fn code_cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-plugins/code-cache")
}

/// The path of a built plugin; panics, naming the command that builds it,
/// when it is missing.
pub fn plugin_wasm(name: &str) -> PathBuf {
    let path = built_plugins().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "target/test-plugins/all/{name}.wasm is missing: run `./test.sh`, or `{BUILD_COMMAND}` before `cargo test`"
    );
    path
}

/// A spec fixture's exact bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spec").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A plugins folder holding copies of the named built plugins.
pub fn plugins_dir(plugins: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in plugins {
        std::fs::copy(plugin_wasm(name), dir.path().join(format!("{name}.wasm"))).unwrap();
    }
    dir
}

/// A POST of `body` to `base`'s /webhook, signed now with the test secret, as
/// the platform sends it (for servers other than a [`TestServer`]).
pub fn signed_webhook(client: &reqwest::Client, base: &str, body: &[u8]) -> reqwest::RequestBuilder {
    let request = client.post(format!("{base}/webhook")).header("Content-Type", "application/json");
    signed(request, body, SECRET, unix_now())
}

/// `request` with `body` and the headers that sign it with `secret` at `timestamp`.
fn signed(request: reqwest::RequestBuilder, body: &[u8], secret: &str, timestamp: u64) -> reqwest::RequestBuilder {
    request
        .header("X-Webhook-Timestamp", timestamp.to_string())
        .header("X-Webhook-Signature", sign(secret.as_bytes(), timestamp, body))
        .body(body.to_vec())
}

/// A Switchboard serving on a free loopback port, stopped when dropped.
pub struct TestServer {
    pub url: String,
    pub client: reqwest::Client,
    dir: TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestServer {
    /// Serves the named plugins with the test secret and default settings.
    pub async fn start(plugins: &[&str]) -> Self {
        Self::start_with(plugins, |_| {}).await
    }

    /// Serves the named plugins after `configure` adjusts the settings.
    pub async fn start_with(plugins: &[&str], configure: impl FnOnce(&mut Settings)) -> Self {
        Self::serve_dir(plugins_dir(plugins), configure).await
    }

    /// Serves an already prepared plugins folder, once every plugin in it
    /// has loaded (or failed to).
    pub async fn serve_dir(dir: TempDir, configure: impl FnOnce(&mut Settings)) -> Self {
        let (server, switchboard) = Self::serve_dir_at_once(dir, configure).await;
        switchboard.plugins_loaded().await;
        server
    }

    /// Serves an already prepared plugins folder as soon as `Switchboard`
    /// starts: plugins that must be compiled may still be loading.
    pub async fn serve_dir_at_once(
        dir: TempDir,
        configure: impl FnOnce(&mut Settings),
    ) -> (Self, std::sync::Arc<Switchboard>) {
        let mut settings = Settings {
            plugins_dir: dir.path().to_owned(),
            secrets: vec![SECRET.to_owned()],
            cache_dir: Some(code_cache()),
            // No background compiles of optimised code, unless a test asks:
            // large plugins serve on baseline code (from the shared cache),
            // and no test pays for another's 20 s Cranelift compiles.
            compile: CompileSettings { background_threads: 0, ..CompileSettings::default() },
            ..Settings::default()
        };
        configure(&mut settings);
        let switchboard = std::sync::Arc::new(Switchboard::start(settings).await.expect("switchboard starts"));
        let serving = switchboard.clone();
        // A backlog of 1024, as `switchboard serve` listens with (tokio's
        // `bind` gives 128): tests that open many connections at once.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1024).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            switchboard::serve(listener, &serving, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        (Self { url, client, dir, _shutdown: tx }, switchboard)
    }

    /// POSTs `body` to /webhook, signed now with the test secret.
    pub async fn send(&self, body: &[u8]) -> reqwest::Response {
        self.send_signed(body, SECRET, unix_now()).await
    }

    /// POSTs `body` signed with `secret` at `timestamp`.
    pub async fn send_signed(&self, body: &[u8], secret: &str, timestamp: u64) -> reqwest::Response {
        signed(self.webhook(), body, secret, timestamp).send().await.unwrap()
    }

    /// A POST /webhook request with the JSON content type and nothing else.
    pub fn webhook(&self) -> reqwest::RequestBuilder {
        self.client.post(format!("{}/webhook", self.url)).header("Content-Type", "application/json")
    }

    /// The plugins folder this server watches.
    pub fn plugins_path(&self) -> &Path {
        self.dir.path()
    }

    /// GET `path` as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.client.get(format!("{}{path}", self.url)).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }
}

/// A tool-calls body with one entry per `(id, name, arguments)`.
pub fn tool_calls(calls: &[(&str, &str, serde_json::Value)]) -> Vec<u8> {
    tool_calls_on("call-1", "+31612345678", calls)
}

/// A tool-calls body of call `call_id` from `customer`, with one entry per
/// `(id, name, arguments)`.
pub fn tool_calls_on(call_id: &str, customer: &str, calls: &[(&str, &str, serde_json::Value)]) -> Vec<u8> {
    let list: Vec<_> = calls
        .iter()
        .map(|(id, name, arguments)| {
            serde_json::json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "message": {
            "type": "tool-calls",
            "timestamp": "2025-12-13T12:00:00.000Z",
            "call": {"id": call_id, "type": "inbound_phone_call", "status": "in-progress"},
            "phone_number": {"number": "+31850835037"},
            "customer": {"number": customer},
            "tool_call_list": list,
        }
    }))
    .unwrap()
}

/// Sends a tool-calls body and returns its `results`.
pub async fn results(server: &TestServer, body: &[u8]) -> Vec<serde_json::Value> {
    let response = server.send(body).await;
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    json["results"].as_array().expect("results array").clone()
}

/// A real `redis-server` on a free loopback port, stopped when dropped.
pub struct RedisServer {
    pub url: String,
    child: std::process::Child,
}

impl RedisServer {
    /// Starts `redis-server` (installed by `.ci/run`; `apt-get install redis-server`).
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the Redis tests (apt-get install redis-server)");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Self { url: format!("redis://127.0.0.1:{port}/0"), child };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start on port {port}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of a Prometheus sample line starting with `prefix` (0 if absent).
pub fn metric(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

impl TestServer {
    /// The names of the tools GET /tools lists, in its order.
    pub async fn tool_names(&self) -> Vec<String> {
        let tools = self.get_json("/tools").await;
        tools["llm_config"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// GET /metrics as text.
    pub async fn metrics(&self) -> String {
        self.client.get(format!("{}/metrics", self.url)).send().await.unwrap().text().await.unwrap()
    }
}

/// A fresh tool call id for every call, as the platform sends them (the
/// server answers a repeated id from its duplicate store).
pub fn fresh_id() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!("t-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Runs one tool call through the webhook, with a fresh id, and returns its entry.
pub async fn call(server: &TestServer, tool: &str, arguments: serde_json::Value) -> serde_json::Value {
    let id = fresh_id();
    let mut entries = results(server, &tool_calls(&[(&id, tool, arguments)])).await;
    assert_eq!(entries[0]["tool_call_id"], id.as_str());
    entries.remove(0)
}

/// Polls `check` until it is true, for up to 10 s.
pub async fn eventually<F: AsyncFn() -> bool>(what: &str, check: F) {
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Serves `app` on a free loopback port until the returned sender is dropped:
/// the upstream HTTP servers that plugins call in tests.
pub async fn serve_upstream(app: axum::Router) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (addr, tx)
}

/// The compiled entries of a code cache folder (none if it does not exist
/// yet), with their modification times: a load that compiles writes one.
pub fn cache_entries(cache: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut entries: Vec<_> = std::fs::read_dir(cache)
        .map(|dir| dir.map(|e| e.unwrap().path()).collect())
        .unwrap_or_else(|_| Vec::new())
        .into_iter()
        .filter(|p: &PathBuf| p.extension().is_some_and(|e| e == "cwasm"))
        .map(|p| {
            let modified = std::fs::metadata(&p).unwrap().modified().unwrap();
            (p, modified)
        })
        .collect();
    entries.sort();
    entries
}

/// Calls kept coming from a few tasks while a test changes something under
/// them (a reload, a swap of tiers): each task calls `one(server, i)` with
/// numbers of its own, back to back, until [`KeepCalling::finish`]. `one`
/// asserts its answer; a wrong one fails the test when the tasks are joined.
pub struct KeepCalling {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    answered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl KeepCalling {
    pub fn start<F, Fut>(server: &std::sync::Arc<TestServer>, tasks: u64, one: F) -> Self
    where
        F: Fn(std::sync::Arc<TestServer>, u64) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks = (0..tasks)
            .map(|task| {
                let (server, stop, answered, one) = (server.clone(), stop.clone(), answered.clone(), one.clone());
                tokio::spawn(async move {
                    let mut i = task * 1_000_000;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        one(server.clone(), i).await;
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Self { stop, answered, tasks }
    }

    /// Calls answered (and checked) so far.
    pub fn answered(&self) -> usize {
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the calls and waits for them; panics with `what` if one failed.
    pub async fn finish(self, what: &str) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect(what);
        }
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A server certificate for `names`, issued by a certificate authority
/// made for the test, as an internal service's would be.
pub struct TestCertificate {
    /// The authority's certificate, PEM.
    pub ca_pem: String,
    pub certificate: rcgen::Certificate,
    pub key: rcgen::KeyPair,
}

impl TestCertificate {
    pub fn new(names: &[&str]) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Switchboard test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certificate = rcgen::CertificateParams::new(names).unwrap().signed_by(&key, &ca).unwrap();
        Self { ca_pem: ca.pem(), certificate, key }
    }
}

/// A real PostgreSQL (Debian's package) in a temporary folder, on a free
/// loopback port, stopped when dropped. As root (CI), it runs as the
/// `postgres` user the package creates: PostgreSQL refuses to run as root.
pub struct PostgresServer {
    pub url: String,
    port: u16,
    dir: TempDir,
    child: Option<std::process::Child>,
    /// With TLS: the server's options for it (see [`Self::start_tls`]).
    tls_options: Vec<String>,
}

impl PostgresServer {
    /// Initialises a cluster and starts it.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// Like [`Self::start`], but TLS only: a certificate for `127.0.0.1`
    /// signed by a CA made here, whose PEM file is returned, and every
    /// connection without TLS refused (`hostssl` in `pg_hba.conf`).
    pub async fn start_tls() -> (Self, PathBuf) {
        let server = Self::start_with(true).await;
        let ca = server.dir.path().join("ca.pem");
        (server, ca)
    }

    async fn start_with(tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(status.success(), "chown to the postgres user (is the postgresql package installed?)");
        }
        let initdb = pg_command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "switchboard", "--auth=trust", "-E", "UTF8", "-N"])
            .output()
            .expect("initdb runs");
        assert!(initdb.status.success(), "initdb: {}", String::from_utf8_lossy(&initdb.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let tls_options = if tls { Self::make_tls(dir.path(), &data) } else { Vec::new() };
        let mut server = Self {
            url: format!("postgres://switchboard@127.0.0.1:{port}/postgres"),
            port,
            dir,
            child: None,
            tls_options,
        };
        server.start_again().await;
        server
    }

    /// Writes a CA (`ca.pem` in `dir`), the server's certificate and key,
    /// and a `pg_hba.conf` that takes TLS connections only; returns the
    /// server's options that turn TLS on.
    fn make_tls(dir: &Path, data: &Path) -> Vec<String> {
        let TestCertificate { ca_pem, certificate, key } = TestCertificate::new(&["127.0.0.1", "localhost"]);
        std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
        let (cert_file, key_file) = (data.join("server.crt"), data.join("server.key"));
        std::fs::write(&cert_file, certificate.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        // PostgreSQL refuses a key others may read, or one it does not own.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let hba = data.join("pg_hba.conf");
        std::fs::write(&hba, "hostssl all all 127.0.0.1/32 trust\nlocal all all trust\n").unwrap();
        if is_root() {
            let status =
                Command::new("chown").args(["postgres:postgres"]).args([&cert_file, &key_file, &hba]).status().unwrap();
            assert!(status.success());
        }
        vec![
            "-c".into(),
            "ssl=on".into(),
            "-c".into(),
            format!("ssl_cert_file={}", cert_file.display()),
            "-c".into(),
            format!("ssl_key_file={}", key_file.display()),
        ]
    }

    /// Starts the server again after [`Self::stop`], on the same port and data.
    pub async fn start_again(&mut self) {
        let child = pg_command("postgres")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(&self.tls_options)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("postgres starts");
        self.child = Some(child);
        for _ in 0..400 {
            // Up: it connects, or (TLS only) refuses a plain connection in
            // words of its own, rather than "starting up".
            match tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await {
                Ok(_) => return,
                Err(e)
                    if e.as_db_error()
                        .is_some_and(|db| db.code() != &tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW) =>
                {
                    return;
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("postgres did not start on port {}", self.port);
    }

    /// Stops the server at once (as a crash would), keeping its data.
    pub fn stop(&mut self) {
        let _ = pg_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// A PostgreSQL program (from Debian's versioned folder, where the package
/// puts it), run as the `postgres` user when this process is root.
fn pg_command(program: &str) -> Command {
    let path = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|versions| versions.flatten().map(|v| v.path().join("bin").join(program)).find(|p| p.exists()))
        .unwrap_or_else(|| PathBuf::from(program));
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    }
}
