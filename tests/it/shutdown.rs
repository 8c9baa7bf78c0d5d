//! Graceful shutdown of `switchboard serve` on SIGTERM: `/readyz` fails at
//! once, the listener then closes, calls in flight are answered, and the
//! process exits 0.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{SECRET, code_cache, plugins_dir, signed_webhook, tool_calls};

const CALLS: usize = 50;
const SLEEP_MS: u64 = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_answers_the_calls_in_flight_and_exits_zero() {
    let plugins = plugins_dir(&["misbehave"]);
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("switchboard.toml");
    // 400 ms of 503 from /readyz before the listener closes, to poll it.
    let cache = code_cache();
    std::fs::write(
        &config,
        format!("shutdown_delay_ms = 400\nshutdown_grace_ms = 2000\ncache_dir = {:?}\n", cache.display().to_string()),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--no-watch", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--plugins")
        .arg(plugins.path())
        .arg("--config")
        .arg(&config)
        .env("SWITCHBOARD_SECRET", SECRET)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // A new connection for each request: the probes must see the listener.
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(5)).build().unwrap();
    let readyz = async |client: &reqwest::Client| client.get(format!("{url}/readyz")).send().await;
    crate::common::eventually("the server is ready", async || readyz(&fresh).await.is_ok_and(|r| r.status() == 200))
        .await;

    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let started = Instant::now();
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let body = tool_calls(&[(&format!("sleep-{i}"), "sleep", json!({ "ms": SLEEP_MS }))]);
                let response =
                    signed_webhook(&client, &url, &body).send().await.expect("the call in flight is answered");
                let status = response.status().as_u16();
                (status, response.json::<serde_json::Value>().await.unwrap_or_default())
            })
        })
        .collect();
    // The calls are sent and sleeping in their plugins.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().expect("the server runs") as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let signalled = Instant::now();

    // /readyz fails at once (the listener is still open for the delay).
    let mut answered_503 = None;
    while signalled.elapsed() < Duration::from_secs(2) {
        match readyz(&fresh).await {
            Ok(r) if r.status() == 503 => {
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["ready"], false, "{body}");
                answered_503 = Some(signalled.elapsed());
                break;
            }
            Ok(r) => assert_eq!(r.status(), 200, "before the signal lands"),
            Err(e) => panic!("/readyz unreachable before it answered 503: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let answered_503 = answered_503.expect("/readyz answered 503 after SIGTERM");

    // Then the listener closes: new connections are refused while the calls
    // in flight are still running.
    let mut refused = None;
    while signalled.elapsed() < Duration::from_secs(3) {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused = Some(signalled.elapsed());
                break;
            }
            Err(e) => panic!("connecting failed otherwise: {e}"),
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let refused = refused.expect("new connections are refused after the listener closed");
    let in_flight = calls.iter().filter(|call| !call.is_finished()).count();
    assert!(child.try_wait().unwrap().is_none(), "the server still runs while calls are in flight");

    let mut answered = 0;
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"][0]["result"], json!({ "slept_ms": SLEEP_MS }), "{body}");
        answered += 1;
    }
    let exit = tokio::time::timeout(Duration::from_secs(5), child.wait()).await.expect("the server exits").unwrap();
    assert!(exit.success(), "exit status {exit}");
    eprintln!(
        "SIGTERM with {CALLS} calls in flight: {answered} answered, exit {}; /readyz 503 after {answered_503:?}, \
         connection refused after {refused:?} (calls still in flight then: {in_flight}), all done in {:?}",
        exit.code().unwrap_or(-1),
        started.elapsed()
    );
    assert_eq!(answered, CALLS);
}
