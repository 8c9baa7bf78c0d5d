//! The findings of an outside probe, each reproduced against a real server on
//! loopback (or the real binary) with real compiled plugins: secrets leaking
//! past redaction, tool names that break `/metrics`, a `ca_file` that reads
//! anything, IPv4-translated addresses, and request smuggling.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::capabilities::{LogCapture, write_manifest};
use crate::common::{
    SECRET, TestServer, call, eventually, fixture, metric, plugin_wasm, plugins_dir, serve_upstream, tool_calls,
};
use switchboard::{sign, unix_now};

/// A plugin secret with a quote, a backslash, a slash and `<`: each is
/// escaped in JSON by one encoder or another.
const PLUGIN_SECRET: &str = r#"sk_live_4f"9Q\z</Kp2Lx8Rw3"#;

/// `[secrets] token = PLUGIN_SECRET`, as a manifest writes it (a literal string).
fn secret_manifest() -> String {
    format!("[secrets]\ntoken = '{PLUGIN_SECRET}'\n")
}

/// Panics when `text` holds any piece of 8 characters or more of `secret`:
/// as written, JSON-escaped (once or twice) or percent-encoded.
fn assert_no_piece_of(secret: &str, what: &str, text: &str) {
    let chars: Vec<char> = secret.chars().collect();
    for piece in chars.windows(8).map(|w| w.iter().collect::<String>()) {
        let escaped = serde_json::to_string(&piece).unwrap().trim_matches('"').to_owned();
        let twice = serde_json::to_string(&escaped).unwrap().trim_matches('"').to_owned();
        let percent: String = piece
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        for form in [&piece, &escaped, &twice, &percent] {
            assert!(!text.contains(form.as_str()), "{what} holds {form:?}, a piece of the secret:\n{text}");
        }
    }
}

/// POSTs `body` signed, and returns the status and the body as text.
async fn send_text(server: &TestServer, body: &[u8]) -> (u16, String) {
    let response = server.send(body).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

fn assistant_request(customer: &str) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&fixture("assistant-request.request.json")).unwrap();
    body["message"]["customer"]["number"] = json!(customer);
    serde_json::to_vec(&body).unwrap()
}

/// Finding 4: a secret in a JSON result (escaped), across the 4 KiB log
/// cut, in a command plugin's cut messages, and in the answers and errors of
/// the hooks. None of it may reach an answer, a log line or an endpoint.
#[tokio::test]
async fn secrets_in_every_form_stay_out_of_answers_logs_and_endpoints() {
    let (logs, _guard) = LogCapture::start();
    let dir = plugins_dir(&["misbehave", "hooks", "command_misbehave"]);
    write_manifest(dir.path(), "misbehave", &secret_manifest());
    write_manifest(dir.path(), "hooks", &secret_manifest());
    write_manifest(
        dir.path(),
        "command_misbehave",
        &format!(
            "{}[[tools]]\nname = \"env\"\n[[tools]]\nname = \"leak_stderr\"\n[[tools]]\nname = \"leak_stdout\"\n",
            secret_manifest()
        ),
    );
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let mut answers = String::new();

    // A JSON result: the secret escaped, nested in a JSON string, in a URL.
    let body = tool_calls(&[("r1", "secret_result", json!({"key": "token"}))]);
    let (status, text) = send_text(&server, &body).await;
    assert_eq!(status, 200);
    let result = &serde_json::from_str::<Value>(&text).unwrap()["results"][0]["result"];
    assert_eq!(result["value"], "***", "{text}");
    let nested: Value = serde_json::from_str(result["nested"].as_str().unwrap()).unwrap();
    assert_eq!(nested, json!({"upstream_said": {"key": "***"}}), "still valid JSON, redacted inside");
    assert_eq!(result["url"], "https://api.example.com/v1?key=***");
    answers.push_str(&text);

    // An error, and log lines that put the secret across the 4 KiB cut.
    let (_, text) = send_text(&server, &tool_calls(&[("e1", "leak_secret", json!({"key": "token"}))])).await;
    assert!(text.contains(r#""error":"the secret is ***""#), "{text}");
    answers.push_str(&text);
    for pad in [4096 - 20, 4096 - 8, 4096 - 3, 4096 - 1, 4096] {
        let entry = call(&server, "secret_long_log", json!({"key": "token", "pad": pad})).await;
        assert!(entry["result"]["logged"].is_number(), "{entry}");
    }

    // A command plugin: its environment as a JSON result, and the messages
    // cut at 1,000 (stderr) and 200 characters (stdout that is not JSON).
    let entry = call(&server, "env", json!({})).await;
    assert_eq!(entry["result"]["env"]["token"], "***", "{entry}");
    answers.push_str(&entry.to_string());
    for tool in ["leak_stderr", "leak_stdout"] {
        let entry = call(&server, tool, json!({})).await;
        let error = entry["error"].as_str().unwrap_or_else(|| panic!("{tool}: {entry}"));
        assert!(error.ends_with('…'), "{tool}: cut: {error}");
        answers.push_str(&entry.to_string());
    }

    // The hooks: an assistant-request answer that carries the secret, one
    // whose error carries it (logged), and an event whose error carries it.
    let (status, text) = send_text(&server, &assistant_request("+3100000005")).await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&text).unwrap()),
        (200, json!({"error": "card declined for key ***"}))
    );
    answers.push_str(&text);
    let (status, text) = send_text(&server, &assistant_request("+3100000006")).await;
    assert_eq!((status, text.as_str()), (200, "{}"), "the saved assistant takes the call");
    let mut report: Value = serde_json::from_slice(&fixture("end-of-call-report.request.json")).unwrap();
    report["message"]["summary"] = json!("leak");
    let (status, _) = send_text(&server, &serde_json::to_vec(&report).unwrap()).await;
    assert_eq!(status, 200);
    eventually("the event delivery fails", async || {
        let metrics = server.metrics().await;
        metric(
            &metrics,
            r#"switchboard_event_deliveries_total{plugin="hooks",event="end-of-call-report",outcome="error"}"#,
        ) == 1.0
    })
    .await;

    for path in ["/plugins", "/tools", "/metrics", "/readyz"] {
        let text = server.client.get(format!("{}{path}", server.url)).send().await.unwrap().text().await.unwrap();
        assert_no_piece_of(PLUGIN_SECRET, path, &text);
    }
    assert_no_piece_of(PLUGIN_SECRET, "the answers", &answers);
    let logs = logs.text();
    assert_no_piece_of(PLUGIN_SECRET, "the log", &logs);
    // The log still says what happened, with the secret replaced.
    for expected in
        ["the CRM refused key ***", "no assistant: the CRM refused key ***", r#"{"request":{"authorization":"***"}}"#]
    {
        assert!(logs.contains(expected), "the log lacks {expected:?}:\n{logs}");
    }
    let cut: Vec<&str> = logs.lines().filter(|l| l.contains("tool=secret_long_log") && l.contains("xxx…")).collect();
    assert_eq!(cut.len(), 15, "5 lines on each of 3 channels, each cut once:\n{}", cut.join("\n"));
}

/// Runs the `switchboard` binary with `args`; stdout and stderr together.
/// Killed after 60 s (loading must never hang).
fn run_binary(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .arg("--plugins")
        .arg(dir)
        .env_remove("SWITCHBOARD_CONFIG")
        .env("RUST_LOG", "switchboard=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("switchboard {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code(), text)
}

/// Finding 4, last part: a manifest that does not parse is shown by
/// `GET /plugins`, logged and printed by `switchboard check`, naming the
/// line, the column and the reason, never quoting the line (here the
/// secret's own).
#[tokio::test]
async fn manifest_parse_errors_name_the_line_and_column_never_the_text() {
    let (logs, _guard) = LogCapture::start();
    let numeric = "4111111111111111";
    let cases = [
        ("syntax", format!("timeout_ms = 100\n[secrets]\ntoken = '{PLUGIN_SECRET}' oops\n"), "line 3, column"),
        ("type", format!("timeout_ms = '{PLUGIN_SECRET}'\n"), "line 1, column 14: invalid type: string, expected u64"),
        ("number", format!("[secrets]\ncard = {numeric}\n"), "line 2, column 8: invalid type: integer, expected"),
    ];
    let dir = plugins_dir(&[]);
    for (name, manifest, _) in &cases {
        std::fs::copy(plugin_wasm("echo_command"), dir.path().join(format!("{name}.wasm"))).unwrap();
        write_manifest(dir.path(), name, manifest);
    }
    let (code, printed) = run_binary(&["check"], dir.path());
    assert_eq!(code, Some(1), "{printed}");
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let plugins = server.get_json("/plugins").await;
    for (name, _, expected) in &cases {
        let error = plugins["errors"].as_array().unwrap().iter().find(|e| e["name"] == *name).unwrap()["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(error.contains(&format!("{name}.toml: {expected}")), "{error}");
        assert!(printed.contains(&format!("FAILED {name}: ")) && printed.contains(expected), "{printed}");
    }
    for (what, text) in
        [("GET /plugins", plugins.to_string()), ("switchboard check", printed), ("the log", logs.text())]
    {
        assert_no_piece_of(PLUGIN_SECRET, what, &text);
        assert_no_piece_of(numeric, what, &text);
    }
}

/// Finding 6: a command plugin's tool names follow the rule a component's
/// do (a load error naming the tool and the rule), and a plugin name that
/// is not a tool name (a file name with a quote and newlines) cannot write
/// lines into `/metrics`.
#[tokio::test]
async fn command_tool_names_are_checked_and_metric_labels_cannot_break_the_exposition() {
    let long = "t".repeat(5_000);
    let names =
        [("space", "has space"), ("empty", ""), ("long", long.as_str()), ("quote", "a\"b"), ("newline", "a\nb")];
    let dir = plugins_dir(&[]);
    for (plugin, tool) in names {
        std::fs::copy(plugin_wasm("command_misbehave"), dir.path().join(format!("{plugin}.wasm"))).unwrap();
        let manifest = format!("[[tools]]\nname = {}\n", toml_string(tool));
        write_manifest(dir.path(), plugin, &manifest);
    }
    std::fs::copy(plugin_wasm("command_misbehave"), dir.path().join("good.wasm")).unwrap();
    write_manifest(dir.path(), "good", "[[tools]]\nname = \"good_tool-1\"\n");
    // A subscriber whose file name injects a sample, if labels are not escaped.
    let evil = "x\"} 1\nswitchboard_injected_total 1\n#";
    std::fs::copy(plugin_wasm("hooks"), dir.path().join(format!("{evil}.wasm"))).unwrap();
    let server = TestServer::serve_dir(dir, |_| {}).await;

    let plugins = server.get_json("/plugins").await;
    let errors = plugins["errors"].as_array().unwrap();
    for (plugin, tool) in names {
        let error = errors.iter().find(|e| e["name"] == plugin).unwrap_or_else(|| panic!("{plugin} loaded: {plugins}"));
        let error = error["error"].as_str().unwrap();
        let shown = serde_json::to_string(&tool.chars().take(64).collect::<String>()).unwrap();
        assert!(error.contains(&format!("{plugin}.toml: [[tools]]: tool name {shown}")), "{error}");
        assert!(
            error.contains("must start with a letter or `_` and use only letters, digits, `_` and `-` (at most 64)"),
            "{error}"
        );
        assert!(error.len() < 400, "{error}");
    }
    assert_eq!(errors.len(), names.len(), "{plugins}");
    let tools = server.tool_names().await;
    assert!(tools.contains(&"good_tool-1".to_owned()) && tools.contains(&"ping".to_owned()), "{tools:?}");

    let mut report: Value = serde_json::from_slice(&fixture("end-of-call-report.request.json")).unwrap();
    report["message"]["summary"] = json!("fine");
    assert_eq!(server.send(&serde_json::to_vec(&report).unwrap()).await.status(), 200);
    assert_eq!(call(&server, "good_tool-1", json!({})).await["result"]["tool"], "good_tool-1");
    eventually("the delivery is counted", async || server.metrics().await.contains("event_deliveries_total{")).await;
    let metrics = server.metrics().await;
    assert!(!metrics.lines().any(|l| l.starts_with("switchboard_injected")), "{metrics}");
    for line in metrics.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        assert!(
            line.starts_with("switchboard_") && line.rsplit(' ').next().unwrap().parse::<f64>().is_ok(),
            "{line:?}"
        );
    }
    assert!(metrics.contains(r#"plugin="x\"} 1\nswitchboard_injected_total 1\n#""#), "escaped: {metrics}");
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Finding 7: `[http] ca_file` reads only a regular file of at most 1 MiB
/// inside the plugins folder. A path out of it is refused alike whether or
/// not its target exists; a FIFO or `/dev/zero` never hangs or floods the
/// load. Checked with the binary (a hang would kill it) and a server.
#[cfg(unix)]
#[tokio::test]
async fn a_ca_file_must_be_a_small_regular_file_inside_the_plugins_folder() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\n").unwrap();
    let dir = plugins_dir(&[]);
    let refused = "is not inside the plugins folder: name a file in it by a relative path";
    // (plugin, ca_file, what the error says)
    let mut cases: Vec<(&str, String, &str)> = vec![
        ("shadow", "/etc/shadow".into(), refused),
        ("nothing", "/etc/surely-not-a-file-here".into(), refused),
        ("up", "../../../../../../etc/passwd".into(), refused),
        ("zero", "/dev/zero".into(), refused),
        ("big", "big.pem".into(), "big.pem is larger than 1024 KiB"),
        ("fifo", "certs/fifo.pem".into(), "certs/fifo.pem is not a regular file"),
        ("folder", "certs".into(), "certs is not a regular file"),
    ];
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("big.pem"), vec![b'a'; (1 << 20) + 1]).unwrap();
    let fifo = std::ffi::CString::new(dir.path().join("certs/fifo.pem").into_os_string().into_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo");
    for (link, target) in [
        ("to-shadow", Path::new("/etc/shadow").to_owned()),
        ("to-missing", Path::new("/etc/surely-not-a-file-here").to_owned()),
        ("to-zero", Path::new("/dev/zero").to_owned()),
        ("to-outside", outside.path().join("ca.pem")),
        ("to-outside-folder", outside.path().to_owned()),
    ] {
        std::os::unix::fs::symlink(&target, dir.path().join(format!("certs/{link}"))).unwrap();
    }
    for link in ["to-shadow", "to-missing", "to-zero", "to-outside"] {
        cases.push((link, format!("certs/{link}"), refused));
    }
    cases.push(("via-folder", "certs/to-outside-folder/ca.pem".into(), refused));
    for (plugin, ca_file, _) in &cases {
        std::fs::copy(plugin_wasm("echo_command"), dir.path().join(format!("{}.wasm", plugin.replace('-', "_"))))
            .unwrap();
        let manifest = format!("[http]\nca_file = {}\n", toml_string(ca_file));
        write_manifest(dir.path(), &plugin.replace('-', "_"), &manifest);
    }

    let started = Instant::now();
    let (code, printed) = run_binary(&["check"], dir.path());
    assert_eq!(code, Some(1), "{printed}");
    assert!(started.elapsed() < Duration::from_secs(30), "loading took {:?}", started.elapsed());
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let plugins = server.get_json("/plugins").await;
    let error_of = |plugin: &str| {
        let errors = plugins["errors"].as_array().unwrap();
        let error = errors.iter().find(|e| e["name"] == plugin.replace('-', "_"));
        error.unwrap_or_else(|| panic!("{plugin} loaded: {plugins}"))["error"].as_str().unwrap().to_owned()
    };
    for (plugin, ca_file, expected) in &cases {
        let error = error_of(plugin);
        assert!(error.contains("[http] ca_file: ") && error.contains(expected), "{plugin}: {error}");
        for tell in ["denied", "No such file", "ermission", "os error"] {
            assert!(!error.contains(tell), "{plugin}: {error}");
        }
        if *expected == refused {
            let line = printed.lines().find(|l| l.contains(&format!("FAILED {}:", plugin.replace('-', "_")))).unwrap();
            assert!(line.ends_with(&format!("[http] ca_file: {ca_file} {refused} (a path that leads out of it, absolute, through `..` or through a symbolic link, is refused)")), "{line}");
        }
    }
    // Existing and missing files outside, directly or through a link: the same words.
    let without_path =
        |plugin: &str| error_of(plugin).replace(&cases.iter().find(|c| c.0 == plugin).unwrap().1, "PATH");
    assert_eq!(without_path("shadow"), without_path("nothing").replace("nothing", "shadow"));
    assert_eq!(without_path("to-shadow"), without_path("to-missing").replace("to_missing", "to_shadow"));
}

/// Finding 8: an IPv4-translated address (`::ffff:0:a.b.c.d`) is judged by
/// the IPv4 address inside, as IPv4-mapped, NAT64 and IPv4-compatible ones
/// are: a plugin allowed any public host cannot reach loopback through one.
#[tokio::test]
async fn ipv6_forms_of_a_private_ipv4_address_are_refused() {
    let upstream = axum::Router::new().route("/hello", axum::routing::get(|| async { "hello" }));
    let (addr, _stop) = serve_upstream(upstream).await;
    let port = addr.port();
    let dir = plugins_dir(&["misbehave"]);
    write_manifest(dir.path(), "misbehave", &format!("[http]\nallowed_hosts = [\"http://*:{port}\"]\n"));
    let server = TestServer::serve_dir(dir, |_| {}).await;
    for host in ["[::ffff:0:7f00:1]", "[::ffff:0:a9fe:a9fe]", "[64:ff9b::7f00:1]", "[::7f00:1]", "[::ffff:127.0.0.1]"] {
        let entry = call(&server, "http_get", json!({"url": format!("http://{host}:{port}/hello")})).await;
        let error = entry["error"].as_str().unwrap_or_else(|| panic!("{host} was reached: {entry}"));
        assert!(
            error.ends_with("refused: it resolves to a private or local address this plugin may not reach"),
            "{host}: {error}"
        );
    }
    // The same grant reaches nothing private by name either; a public address would pass (not tested offline).
    let entry = call(&server, "http_get", json!({"url": format!("http://127.0.0.1:{port}/hello")})).await;
    assert!(entry["error"].as_str().is_some_and(|e| e.contains("refused")), "{entry}");
}

/// Writes `request` on a fresh connection to `server` and reads until the
/// server closes it (at most 10 s).
async fn raw_exchange(server: &TestServer, request: &[u8]) -> String {
    let addr = server.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A signed `POST /webhook` head for `body`, with `framing` lines.
fn webhook_head(body: &[u8], framing: &str) -> String {
    let timestamp = unix_now();
    let signature = sign(SECRET.as_bytes(), timestamp, body);
    format!(
        "POST /webhook HTTP/1.1\r\nHost: switchboard\r\nContent-Type: application/json\r\nX-Webhook-Timestamp: {timestamp}\r\nX-Webhook-Signature: {signature}\r\n{framing}\r\n"
    )
}

/// Finding 9: a request with both `Content-Length` and `Transfer-Encoding`
/// (smuggling past a proxy that trusts one of them) is refused with 400 and
/// a JSON error, the connection is closed, and what it smuggled is never
/// answered, whichever header the proxy would trust and in either order.
#[tokio::test]
async fn a_request_with_both_content_length_and_transfer_encoding_is_refused() {
    let server = TestServer::start(&["echo"]).await;
    let body = tool_calls(&[("s1", "echo", json!({"n": 1}))]);
    let smuggled = "GET /healthz HTTP/1.1\r\nHost: switchboard\r\n\r\n";
    let chunk = format!("{:x}\r\n{}\r\n0\r\n\r\n", body.len(), String::from_utf8_lossy(&body));
    let requests = [
        // A proxy trusting Content-Length forwards the body, then the smuggled request.
        format!(
            "{}{}{smuggled}",
            webhook_head(&body, &format!("Content-Length: {}\r\nTransfer-Encoding: chunked\r\n", body.len())),
            String::from_utf8_lossy(&body)
        ),
        format!(
            "{}{}{smuggled}",
            webhook_head(&body, &format!("transfer-encoding: chunked\r\ncontent-length: {}\r\n", body.len())),
            String::from_utf8_lossy(&body)
        ),
        // A proxy trusting Transfer-Encoding: the chunked body hides a request after 4 bytes.
        format!("{}{chunk}{smuggled}", webhook_head(&body, "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n")),
        // Not only the webhook.
        format!(
            "GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
    ];
    for request in &requests {
        let answer = raw_exchange(&server, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
        assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
        assert_eq!(
            serde_json::from_str::<Value>(body).unwrap_or_else(|e| panic!("{body:?}: {e}")),
            json!({"error": "a request may not have both Content-Length and Transfer-Encoding"})
        );
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "the smuggled request got an answer: {answer}");
    }
    let metrics = server.metrics().await;
    assert_eq!(metric(&metrics, "switchboard_tool_calls_total{"), 0.0, "no tool ran: {metrics}");
}

/// The guard that refuses them follows framing exactly: requests pipelined
/// on one connection, by length and chunked, all get their answers.
#[tokio::test]
async fn pipelined_requests_by_length_and_chunked_pass_the_framing_guard() {
    let server = TestServer::start(&["echo"]).await;
    let by_length = tool_calls(&[("p1", "echo", json!({"n": 1}))]);
    let chunked = tool_calls(&[("p2", "echo", json!({"n": 2}))]);
    let (first, rest) = chunked.split_at(10);
    let request = [
        "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n".to_owned(),
        webhook_head(&by_length, &format!("Content-Length: {}\r\n", by_length.len())),
        String::from_utf8_lossy(&by_length).into_owned(),
        webhook_head(&chunked, "Transfer-Encoding: chunked\r\n"),
        format!("{:x};ext=1\r\n{}\r\n", first.len(), String::from_utf8_lossy(first)),
        format!("{:X}\r\n{}\r\n0\r\nX-Trailer: 1\r\n\r\n", rest.len(), String::from_utf8_lossy(rest)),
        "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_owned(),
    ]
    .concat();
    let answer = raw_exchange(&server, request.as_bytes()).await;
    assert_eq!(answer.matches("HTTP/1.1 200 OK\r\n").count(), 4, "{answer}");
    assert!(answer.contains(r#"{"results":[{"tool_call_id":"p1","result":{"echo":{"n":1}}}]}"#), "{answer}");
    assert!(answer.contains(r#"{"results":[{"tool_call_id":"p2","result":{"echo":{"n":2}}}]}"#), "{answer}");
}
