//! The call log: every webhook and tool call kept in a real database
//! (SQLite in a data folder, or a real PostgreSQL), read back through
//! `/api/calls` and `switchboard calls`, across a restart and across
//! replicas; and never in the way of an answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::CallLogSettings;

use crate::capabilities::write_manifest;
use crate::common::{PostgresServer, TestServer, eventually, metric, plugins_dir, tool_calls_on};

/// A status-update (`status`) or end-of-call-report of call `call_id`
/// from `customer`.
fn event_from(customer: &str, call_id: &str, kind: &str, status: &str) -> Vec<u8> {
    let mut message = json!({
        "type": kind,
        "call": {"id": call_id, "type": "inbound_phone_call", "status": status},
        "customer": {"number": customer},
    });
    if kind == "end-of-call-report" {
        message["duration_seconds"] = json!(84);
        message["summary"] = json!("Booked for Tuesday.");
        message["end_reason"] = json!("user_hangup");
        message["messages"] = json!([{"role": "user", "content": "Tuesday please"}]);
    }
    serde_json::to_vec(&json!({ "message": message })).unwrap()
}

/// The same, from +31612345678.
fn event(call_id: &str, kind: &str, status: &str) -> Vec<u8> {
    event_from("+31612345678", call_id, kind, status)
}

/// `GET /api/calls/{call_id}` once it holds `entries` entries.
async fn story(server: &TestServer, call_id: &str, entries: usize) -> Value {
    let url = format!("{}/api/calls/{call_id}", server.url);
    let mut last = Value::Null;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let response = server.client.get(&url).send().await.unwrap();
        if response.status() == 200 {
            last = response.json().await.unwrap();
            if last["entries"].as_array().map(Vec::len) == Some(entries) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("call {call_id} never had {entries} entries; last seen: {last:#}");
}

fn kinds(story: &Value) -> Vec<String> {
    story["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| match e["kind"].as_str().unwrap() {
            "webhook" => e["event"].as_str().unwrap().to_owned(),
            _ => format!("{}:{}", e["tool"].as_str().unwrap(), e["outcome"].as_str().unwrap()),
        })
        .collect()
}

fn sqlite(dir: &std::path::Path) -> impl FnOnce(&mut switchboard::Settings) {
    let dir = dir.to_owned();
    move |s| s.call_log = Some(CallLogSettings::sqlite(dir))
}

#[tokio::test]
async fn a_call_is_kept_whole_in_order_and_read_back_after_a_restart_and_from_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&["echo"], sqlite(data.path())).await;
    let body = tool_calls_on(
        "call-story",
        "+15550001111",
        &[("t-ok", "echo", json!({"city": "Utrecht"})), ("t-unknown", "no_such_tool", json!({}))],
    );
    assert_eq!(server.send(&body).await.status(), 200);
    assert_eq!(server.send(&event("call-story", "status-update", "in-progress")).await.status(), 200);
    assert_eq!(server.send(&event("call-story", "end-of-call-report", "ended")).await.status(), 200);

    // A tool-calls webhook is kept as its tool calls; other webhooks as
    // entries of their own.
    let story = story(&server, "call-story", 4).await;
    assert_eq!(kinds(&story), ["echo:ok", "no_such_tool:error", "status-update", "end-of-call-report"], "{story:#}");
    let [ok, unknown, status, report] = story["entries"].as_array().unwrap().clone().try_into().unwrap();
    assert_eq!((status["http_status"].as_i64(), report["http_status"].as_i64()), (Some(200), Some(200)));
    assert_eq!(ok["arguments"], json!({"city": "Utrecht"}));
    assert_eq!(ok["result"], json!({"echo": {"city": "Utrecht"}}));
    assert_eq!(
        (ok["tool_call_id"].as_str(), ok["plugin"].as_str(), ok["door"].as_str()),
        (Some("t-ok"), Some("echo"), Some("webhook"))
    );
    assert_eq!(ok["version"].as_str().map(str::len), Some(12));
    assert!(ok["duration_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(unknown["error"], "unknown tool \"no_such_tool\": no loaded plugin provides it");
    assert_eq!(unknown["plugin"], Value::Null);
    assert_eq!(status["detail"], json!({"status": "in-progress"}));
    assert_eq!(report["detail"]["summary"], "Booked for Tuesday.");
    assert_eq!(report["detail"]["messages"][0]["content"], "Tuesday please");
    let call = &story["call"];
    assert_eq!((call["tool_calls"].as_i64(), call["failed"].as_i64()), (Some(2), Some(1)));
    assert_eq!((call["status"].as_str(), call["ended_reason"].as_str()), (Some("ended"), Some("user_hangup")));
    assert_eq!(
        (call["customer_number"].as_str(), call["duration_seconds"].as_f64()),
        (Some("+31612345678"), Some(84.0))
    );

    // A new server on the same data folder reads the same story.
    drop(server);
    let again = TestServer::start_with(&["echo"], sqlite(data.path())).await;
    assert_eq!(self::story(&again, "call-story", 4).await["entries"], story["entries"]);
    let missing = again.client.get(format!("{}/api/calls/nobody", again.url)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"], "no call \"nobody\" in the call log");

    // So does `switchboard calls`, from another process, while the server runs.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["calls", "--call", "call-story", "--json", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let from_cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(from_cli["entries"], story["entries"]);
    let table = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["calls", "--errors", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("call-story") && table.contains("ended (user_hangup)"), "{table}");
    let none = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["calls", "--data-dir", "/nonexistent/switchboard-data"])
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no call log at /nonexistent/switchboard-data/calls.sqlite3")
    );
}

#[tokio::test]
async fn calls_are_found_by_number_tool_and_outcome_and_paged_without_gaps() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&["echo", "misbehave"], sqlite(data.path())).await;
    for i in 0..7 {
        let (tool, arguments) = if i % 3 == 0 { ("fail", json!({})) } else { ("echo", json!({"i": i})) };
        let body =
            tool_calls_on(&format!("call-{i}"), &format!("+1555000{i}"), &[(&format!("t-{i}"), tool, arguments)]);
        assert_eq!(server.send(&body).await.status(), 200);
    }
    let list = async |query: &str| server.get_json(&format!("/api/calls?{query}")).await;
    let ids = |page: &Value| -> Vec<String> {
        page["calls"].as_array().unwrap().iter().map(|c| c["call_id"].as_str().unwrap().to_owned()).collect()
    };
    eventually("all seven calls listed", async || ids(&list("").await).len() == 7).await;

    assert_eq!(ids(&list("number=%2B15550004").await), ["call-4"]);
    let mut failed = ids(&list("outcome=failed").await);
    failed.sort();
    assert_eq!(failed, ["call-0", "call-3", "call-6"]);
    assert_eq!(ids(&list("tool=fail&outcome=error").await).len(), 3);
    assert_eq!(ids(&list("tool=echo").await).len(), 4);
    assert!(ids(&list("tool=echo&outcome=failed").await).is_empty());

    // Pages of 3: every call once, newest first.
    let mut seen = Vec::new();
    let mut page = list("limit=3").await;
    loop {
        seen.extend(ids(&page));
        let Some(next) = page["next_before"].as_str() else { break };
        page = list(&format!("limit=3&before={}", urlencode(next))).await;
    }
    let mut all = ids(&list("").await);
    assert_eq!(seen, all, "pages add up to the whole list");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 7);

    for (query, message) in [
        ("outcome=maybe", "unknown outcome \"maybe\""),
        ("from=yesterday", "is not a time"),
        ("before=garbage", "not a page cursor"),
    ] {
        let response = server.client.get(format!("{}/api/calls?{query}", server.url)).send().await.unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let error = response.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(message), "{query}: {error}");
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn timeouts_duplicates_invalid_arguments_and_tries_are_logged_as_such() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&["echo", "misbehave"], |s| {
        s.tool_calls_budget = Duration::from_millis(600);
        s.call_log = Some(CallLogSettings::sqlite(data.path()));
    })
    .await;
    let body = tool_calls_on(
        "call-outcomes",
        "+15550002222",
        &[("t-slow", "loop_forever", json!({})), ("t-bad", "echo", json!("not an object"))],
    );
    assert_eq!(server.send(&body).await.status(), 200);
    let twice = tool_calls_on("call-outcomes", "+15550002222", &[("t-twice", "echo", json!({"n": 1}))]);
    assert_eq!(server.send(&twice).await.status(), 200);
    assert_eq!(server.send(&twice).await.status(), 200);

    let story = story(&server, "call-outcomes", 4).await;
    let mut seen = kinds(&story);
    seen.sort();
    assert_eq!(seen, ["echo:duplicate", "echo:invalid_arguments", "echo:ok", "loop_forever:timeout"], "{story:#}");
    let entry =
        |outcome: &str| story["entries"].as_array().unwrap().iter().find(|e| e["outcome"] == outcome).unwrap().clone();
    assert!(entry("timeout")["error"].as_str().unwrap().contains("did not answer within"), "{story:#}");
    assert_eq!(entry("duplicate")["result"], json!({"echo": {"n": 1}}));
    assert_eq!(entry("duplicate")["arguments"], json!({"n": 1}));
    // Unusable arguments are kept as sent: what the LLM really said.
    assert_eq!(entry("invalid_arguments")["arguments"], json!("not an object"));
    assert_eq!(story["call"]["failed"], 2);

    // The dashboard's "try a tool" runs the tool, answers, and is logged under its own door.
    let tried: Value = server
        .client
        .post(format!("{}/api/try", server.url))
        .json(&json!({"tool": "echo", "arguments": {"from": "dashboard"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tried["result"], json!({"echo": {"from": "dashboard"}}));
    let tries = self::story(&server, "dashboard", 1).await;
    assert_eq!(
        (tries["entries"][0]["door"].as_str(), tries["entries"][0]["outcome"].as_str()),
        (Some("dashboard"), Some("ok"))
    );
    let refused =
        server.client.post(format!("{}/api/try", server.url)).json(&json!({"arguments": {}})).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("missing field `tool`"));

    // The last hour's figures per tool.
    let stats = server.get_json("/api/stats").await;
    let echo = stats["tools"].as_array().unwrap().iter().find(|t| t["tool"] == "echo").unwrap().clone();
    assert_eq!((echo["calls"].as_u64(), echo["failed"].as_u64()), (Some(4), Some(1)), "{stats:#}");
}

#[tokio::test]
async fn captures_can_be_turned_off_and_plugin_secrets_never_reach_the_database() {
    let secret = "sk_live_call_log_0123456789";
    let data = tempfile::tempdir().unwrap();
    let dir = plugins_dir(&["misbehave"]);
    write_manifest(dir.path(), "misbehave", &format!("[secrets]\ntoken = \"{secret}\"\n"));
    let server = TestServer::serve_dir(dir, sqlite(data.path())).await;
    let body = tool_calls_on(
        "call-secret",
        "+15550003333",
        &[("t-leak", "leak_secret", json!({"key": "token"})), ("t-echo", "ok", json!({"note": secret}))],
    );
    assert_eq!(server.send(&body).await.status(), 200);
    let story = story(&server, "call-secret", 2).await;
    let text = story.to_string();
    assert!(!text.contains(secret), "{story:#}");
    assert!(text.contains("the secret is ***"), "{story:#}");
    drop(server);
    for file in std::fs::read_dir(data.path()).unwrap().flatten() {
        let bytes = std::fs::read(file.path()).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds the secret",
            file.path().display()
        );
    }

    let quiet = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&["echo"], |s| {
        s.call_log = Some(CallLogSettings {
            capture_arguments: false,
            capture_results: false,
            capture_reports: false,
            ..CallLogSettings::sqlite(quiet.path())
        })
    })
    .await;
    let body = tool_calls_on("call-quiet", "+15550004444", &[("t-1", "echo", json!({"card": "4111"}))]);
    assert_eq!(server.send(&body).await.status(), 200);
    assert_eq!(server.send(&event("call-quiet", "end-of-call-report", "ended")).await.status(), 200);
    let story = self::story(&server, "call-quiet", 2).await;
    let tool = &story["entries"][0];
    assert_eq!((&tool["arguments"], &tool["result"], &tool["outcome"]), (&Value::Null, &Value::Null, &json!("ok")));
    assert_eq!(story["entries"][1]["detail"], json!({"ended_reason": "user_hangup", "duration_seconds": 84.0}));
}

#[tokio::test]
async fn a_full_queue_drops_records_and_delays_no_answer() {
    let data = tempfile::tempdir().unwrap();
    let server = Arc::new(
        TestServer::start_with(&["echo"], |s| {
            s.call_log = Some(CallLogSettings { queue_capacity: 2, ..CallLogSettings::sqlite(data.path()) })
        })
        .await,
    );
    let sends: Vec<_> = (0..40)
        .map(|i| {
            let server = server.clone();
            tokio::spawn(async move {
                let body = tool_calls_on(&format!("flood-{i}"), "+15550005555", &[("t", "echo", json!({"i": i}))]);
                server.send(&body).await.status()
            })
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.unwrap(), 200);
    }
    let metrics = server.metrics().await;
    let dropped = metric(&metrics, "switchboard_call_log_dropped_total{reason=\"queue_full\"}");
    assert!(dropped > 0.0, "{metrics}");
    // What was not dropped is written.
    eventually("the kept records written", async || {
        let metrics = server.metrics().await;
        metric(&metrics, "switchboard_call_log_written_total") + dropped >= 40.0
    })
    .await;
}

#[tokio::test]
async fn replicas_sharing_postgres_see_each_others_calls_and_survive_it_going_away() {
    let mut postgres = PostgresServer::start().await;
    let replica = async || {
        TestServer::start_with(&["echo"], |s| s.call_log = Some(CallLogSettings::postgres(postgres.url.clone()))).await
    };
    let (a, b) = (replica().await, replica().await);
    let body = tool_calls_on("call-shared", "+15550006666", &[("t-a", "echo", json!({"via": "a"}))]);
    assert_eq!(a.send(&body).await.status(), 200);
    assert_eq!(b.send(&event_from("+15550006666", "call-shared", "status-update", "ended")).await.status(), 200);
    // Either replica tells the whole story.
    let from_b = story(&b, "call-shared", 2).await;
    assert_eq!(kinds(&from_b), ["echo:ok", "status-update"]);
    assert_eq!(story(&a, "call-shared", 2).await["entries"], from_b["entries"]);
    assert_eq!(from_b["call"]["status"], "ended");

    // The CLI reads it too, with the database URL from a config file.
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), format!("[call_log]\ndatabase_url = \"{}\"\n", postgres.url)).unwrap();
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["calls", "--number", "+15550006666", "--json", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let page: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(page["calls"][0]["call_id"], "call-shared");

    // The database goes away: answers go on, on time; the records are dropped and counted.
    postgres.stop();
    for i in 0..5 {
        let body = tool_calls_on("call-dark", "+15550007777", &[(&format!("t-{i}"), "echo", json!({"i": i}))]);
        let started = Instant::now();
        let response = a.send(&body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap()["results"][0]["result"], json!({"echo": {"i": i}}));
        assert!(started.elapsed() < Duration::from_secs(2), "an answer waited {:?}", started.elapsed());
    }
    eventually("the failed writes counted", async || {
        metric(&a.metrics().await, "switchboard_call_log_dropped_total{reason=\"write_failed\"}") >= 1.0
    })
    .await;
    // It comes back: new records are written again.
    postgres.start_again().await;
    let body = tool_calls_on("call-back", "+15550008888", &[("t-back", "echo", json!({}))]);
    assert_eq!(a.send(&body).await.status(), 200);
    assert_eq!(kinds(&story(&b, "call-back", 1).await), ["echo:ok"]);

    // It comes back empty (a failover to a fresh database): the first batch
    // fails, and the writer makes the tables again for the next.
    let (admin, connection) = tokio_postgres::connect(&postgres.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    admin.batch_execute("DROP TABLE tool_calls, webhooks, calls").await.unwrap();
    let failed = metric(&a.metrics().await, "switchboard_call_log_dropped_total{reason=\"write_failed\"}");
    let lost = tool_calls_on("call-lost", "+15550008888", &[("t-lost", "echo", json!({}))]);
    assert_eq!(a.send(&lost).await.status(), 200);
    eventually("the write into the missing tables to fail", async || {
        metric(&a.metrics().await, "switchboard_call_log_dropped_total{reason=\"write_failed\"}") > failed
    })
    .await;
    let body = tool_calls_on("call-anew", "+15550008888", &[("t-anew", "echo", json!({}))]);
    assert_eq!(a.send(&body).await.status(), 200);
    assert_eq!(kinds(&story(&b, "call-anew", 1).await), ["echo:ok"]);
}

/// A shared log on a PostgreSQL that takes TLS only: `sslmode=verify-full`
/// with the database's CA in `sslrootcert` connects and logs; without TLS,
/// or with TLS but not trusting the CA, nothing connects, and the error says
/// what to change.
#[tokio::test]
async fn the_shared_log_reaches_a_postgresql_that_takes_tls_only() {
    let (postgres, ca) = PostgresServer::start_tls().await;
    let open = async |url: String| switchboard::CallLogReader::open(&CallLogSettings::postgres(url)).await.map(drop);

    let plain = open(postgres.url.clone()).await.unwrap_err();
    assert!(plain.contains("no encryption") && plain.contains("add sslmode=verify-full"), "{plain}");
    let untrusted = open(format!("{}?sslmode=require", postgres.url)).await.unwrap_err();
    assert!(untrusted.contains("certificate") && untrusted.contains("sslrootcert=PATH"), "{untrusted}");

    let url = format!("{}?sslmode=verify-full&sslrootcert={}", postgres.url, urlencode(&ca.display().to_string()));
    let server = TestServer::start_with(&["echo"], |s| s.call_log = Some(CallLogSettings::postgres(url.clone()))).await;
    let body = tool_calls_on("call-tls", "+15550009999", &[("t-tls", "echo", json!({"over": "tls"}))]);
    assert_eq!(server.send(&body).await.status(), 200);
    let story = story(&server, "call-tls", 1).await;
    assert_eq!(story["entries"][0]["arguments"], json!({"over": "tls"}), "{story}");
    // The key-value form, read by the CLI's reader.
    let pairs = format!(
        "host=127.0.0.1 port={} user=switchboard dbname=postgres sslmode=verify-ca sslrootcert='{}'",
        postgres.url.rsplit(':').next().unwrap().split('/').next().unwrap(),
        ca.display()
    );
    open(pairs).await.unwrap();
}
