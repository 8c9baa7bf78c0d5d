//! The whole protocol: assistant-request, events to subscribers, async tools,
//! duplicate tool calls (in memory and through a real Redis), argument
//! validation, and tool definitions.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::{AssistantRoute, DedupSettings};

use crate::common::{RedisServer, TestServer, fixture, metric, plugins_dir, results, tool_calls};

fn assistant_request(phone: &str, customer: &str) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&fixture("assistant-request.request.json")).unwrap();
    body["message"]["phone_number"]["number"] = json!(phone);
    body["message"]["customer"]["number"] = json!(customer);
    serde_json::to_vec(&body).unwrap()
}

async fn answer(server: &TestServer, body: &[u8]) -> Value {
    let response = server.send(body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Polls /metrics until `check` holds, for up to 10 s.
async fn metrics_until(server: &TestServer, what: &str, check: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let metrics = server.metrics().await;
        if check(&metrics) {
            return metrics;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "timed out waiting for {what}:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn static_routes_answer_every_documented_shape() {
    let shapes = ["default", "personalize-greeting", "override-llm", "max-duration", "reject", "transient", "hybrid"];
    let routes: Vec<AssistantRoute> = shapes
        .iter()
        .enumerate()
        .map(|(i, shape)| AssistantRoute {
            phone_number: None,
            customer_number: Some(format!("+3161000000{i}")),
            response: serde_json::from_slice(&fixture(&format!("assistant-request.response.{shape}.json"))).unwrap(),
        })
        .collect();
    let server = TestServer::start_with(&["echo"], |s| s.assistant.routes = routes.clone()).await;
    for (i, route) in routes.iter().enumerate() {
        let got = answer(&server, &assistant_request("+31850835037", &format!("+3161000000{i}"))).await;
        assert_eq!(got, route.response, "{}", shapes[i]);
    }
    // No route and no plugin: `{}`, the saved assistant.
    assert_eq!(answer(&server, &assistant_request("+31850835037", "+31699999999")).await, json!({}));
}

#[tokio::test]
async fn the_most_specific_route_wins() {
    let route = |phone: Option<&str>, customer: Option<&str>, greeting: &str| AssistantRoute {
        phone_number: phone.map(str::to_owned),
        customer_number: customer.map(str::to_owned),
        response: json!({"assistant": {"first_message": greeting}}),
    };
    let routes = vec![
        route(None, None, "anyone"),
        route(Some("+3120"), None, "Amsterdam office"),
        route(Some("+3120"), Some("+316VIP"), "Welcome back"),
    ];
    let server = TestServer::start_with(&["echo"], |s| s.assistant.routes = routes).await;
    let greeting = async |phone, customer| {
        answer(&server, &assistant_request(phone, customer)).await["assistant"]["first_message"].clone()
    };
    assert_eq!(greeting("+3120", "+316VIP").await, "Welcome back");
    assert_eq!(greeting("+3120", "+316000").await, "Amsterdam office");
    assert_eq!(greeting("+3110", "+316VIP").await, "anyone");
}

#[tokio::test]
async fn a_plugin_answers_assistant_request_and_tools_can_be_injected() {
    let server = TestServer::start_with(&["hooks", "echo"], |s| s.assistant.inject_tools = true).await;
    let got = answer(&server, &fixture("assistant-request.request.json")).await;
    let assistant = &got["assistant"];
    assert_eq!(assistant["first_message"], "Hello +31612345678");
    assert_eq!(assistant["metadata"]["call_id"], "5c4d030f-43e3-4e65-899e-8148521e660f");
    let tools: Vec<&str> =
        assistant["llm_config"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(tools, ["echo", "ping"]);
    assert_eq!(assistant["llm_config"]["model"], "gpt-4.1", "the rest of llm_config is kept");
    let metrics = server.metrics().await;
    assert_eq!(metric(&metrics, r#"switchboard_assistant_requests_total{source="plugin"}"#), 1.0);
}

#[tokio::test]
async fn assistant_request_failures_and_timeouts_answer_empty_inside_the_budget() {
    let budget = Duration::from_millis(600);
    let server = TestServer::start_with(&["hooks"], |s| s.assistant.budget = budget).await;
    for caller in ["+3100000001", "+3100000002", "+3100000003", "+3100000004"] {
        let started = Instant::now();
        let got = answer(&server, &assistant_request("+31850835037", caller)).await;
        assert_eq!(got, json!({}), "{caller} must fall back to the saved assistant");
        assert!(
            started.elapsed() < budget + Duration::from_millis(400),
            "{caller} answered after {:?}",
            started.elapsed()
        );
    }
    let metrics = server.metrics().await;
    assert_eq!(metric(&metrics, r#"switchboard_assistant_requests_total{source="fallback"}"#), 4.0);
}

#[tokio::test]
async fn events_reach_subscribing_plugins() {
    let server = TestServer::start(&["hooks", "echo"]).await;
    for name in ["status-update.request.in-progress.json", "status-update.request.ended.json"] {
        assert_eq!(answer(&server, &fixture(name)).await, json!({}));
    }
    let mut report: Value = serde_json::from_slice(&fixture("end-of-call-report.request.json")).unwrap();
    report["message"]["summary"] = json!("fail");
    assert_eq!(answer(&server, &serde_json::to_vec(&report).unwrap()).await, json!({}));
    let metrics = metrics_until(&server, "deliveries", |m| {
        metric(m, r#"switchboard_event_deliveries_total{plugin="hooks",event="status-update",outcome="ok"}"#) == 2.0
            && metric(
                m,
                r#"switchboard_event_deliveries_total{plugin="hooks",event="end-of-call-report",outcome="error"}"#,
            ) == 1.0
    })
    .await;
    assert!(!metrics.contains(r#"plugin="echo""#), "plugins without subscriptions get nothing");
}

#[tokio::test]
async fn a_full_event_queue_drops_without_delaying_the_answer() {
    let server = TestServer::start_with(&["hooks"], |s| s.event_queue_capacity = 1).await;
    let mut slow: Value = serde_json::from_slice(&fixture("status-update.request.ended.json")).unwrap();
    slow["message"]["test_sleep_ms"] = json!(1500);
    let body = serde_json::to_vec(&slow).unwrap();
    let started = Instant::now();
    for _ in 0..40 {
        assert_eq!(answer(&server, &body).await, json!({}));
    }
    // 40 acknowledgements while each delivery takes 1.5 s: none waited for a subscriber.
    assert!(started.elapsed() < Duration::from_millis(1500), "acknowledgements were delayed: {:?}", started.elapsed());
    let metrics = server.metrics().await;
    let dropped = metric(&metrics, r#"switchboard_events_dropped_total{event="status-update"}"#);
    assert!(dropped >= 1.0, "a full queue drops events:\n{metrics}");
}

#[tokio::test]
async fn an_async_tool_answers_at_once_and_its_work_still_happens() {
    let dir = plugins_dir(&["misbehave"]);
    std::fs::write(
        dir.path().join("misbehave.toml"),
        "[[tools]]\nname = \"sleep\"\nasync = true\nasync_response = \"Working on it\"\n",
    )
    .unwrap();
    let server = TestServer::serve_dir(dir, |_| {}).await;
    let started = Instant::now();
    let results = results(&server, &tool_calls(&[("bg", "sleep", json!({"ms": 1200}))])).await;
    assert!(started.elapsed() < Duration::from_millis(1000), "an async tool must not be waited for");
    assert_eq!(results[0], json!({"tool_call_id": "bg", "result": "Working on it"}));
    metrics_until(&server, "the background call to finish", |m| {
        metric(m, r#"switchboard_tool_calls_total{tool="sleep",door="webhook",outcome="ok"}"#) == 1.0
    })
    .await;
    let tools = server.get_json("/tools").await;
    let sleep = tools["llm_config"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "sleep").unwrap().clone();
    assert_eq!(sleep["async"], true);
    assert_eq!(sleep["async_response"], "Working on it");
}

#[tokio::test]
async fn duplicate_ids_run_the_plugin_once_in_memory() {
    let server = TestServer::start(&["echo", "misbehave"]).await;
    let first = results(&server, &tool_calls(&[("dup-1", "echo", json!({"n": 1}))])).await;
    let again = results(&server, &tool_calls(&[("dup-1", "echo", json!({"n": 1}))])).await;
    assert_eq!(first, again);
    // The same id asking something else (a model reusing `call_0`-style ids) is not a duplicate.
    let other = results(&server, &tool_calls(&[("dup-1", "echo", json!({"n": 2}))])).await;
    assert_eq!(other[0]["result"], json!({"echo": {"n": 2}}));
    // Concurrent duplicates: the second waits for the first's answer.
    let body = tool_calls(&[("dup-2", "sleep", json!({"ms": 300}))]);
    let (a, b) = tokio::join!(results(&server, &body), results(&server, &body));
    assert_eq!(a, b);
    assert_eq!(a[0]["result"], json!({"slept_ms": 300}));
    let metrics = server.metrics().await;
    assert_eq!(metric(&metrics, r#"switchboard_tool_calls_total{tool="echo",door="webhook",outcome="ok"}"#), 2.0);
    assert_eq!(metric(&metrics, r#"switchboard_tool_calls_total{tool="sleep",door="webhook",outcome="ok"}"#), 1.0);
    assert_eq!(metric(&metrics, "switchboard_duplicate_tool_calls_total"), 2.0);
}

#[tokio::test]
async fn a_replayed_answer_says_so_in_a_header() {
    let server = TestServer::start(&["echo"]).await;
    let body = tool_calls(&[("replay-1", "echo", json!({"n": 1}))]);
    let first = server.send(&body).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("switchboard-replayed").is_none(), "{:?}", first.headers());
    let again = server.send(&body).await;
    assert_eq!(again.headers().get("switchboard-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    assert_eq!(first.json::<Value>().await.unwrap(), again.json::<Value>().await.unwrap());
    // A new tool-call id runs the plugin: no header.
    let fresh = server.send(&tool_calls(&[("replay-2", "echo", json!({"n": 1}))])).await;
    assert!(fresh.headers().get("switchboard-replayed").is_none());
}

#[tokio::test]
async fn duplicate_ids_run_once_across_replicas_sharing_redis() {
    let redis = RedisServer::start().await;
    let settings = |s: &mut switchboard::Settings| {
        s.dedup = Some(DedupSettings { redis_url: Some(redis.url.clone()), ..DedupSettings::default() })
    };
    let a = TestServer::start_with(&["echo", "misbehave"], settings).await;
    let b = TestServer::start_with(&["echo", "misbehave"], settings).await;
    let body = tool_calls(&[("redis-1", "echo", json!({"book": "once"}))]);
    let first = results(&a, &body).await;
    let second = results(&b, &body).await;
    assert_eq!(first, second);
    assert_eq!(first[0]["result"], json!({"echo": {"book": "once"}}));
    assert_eq!(
        metric(&b.metrics().await, r#"switchboard_tool_calls_total{tool="echo""#),
        0.0,
        "replica b did not run it"
    );
    assert_eq!(metric(&b.metrics().await, "switchboard_duplicate_tool_calls_total"), 1.0);

    // Concurrent: b's duplicate arrives while a still runs the first.
    let slow = tool_calls(&[("redis-2", "sleep", json!({"ms": 400}))]);
    let (x, y) = tokio::join!(results(&a, &slow), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        results(&b, &slow).await
    });
    assert_eq!(x, y);
    assert_eq!(y[0]["result"], json!({"slept_ms": 400}));
    let ran = metric(&a.metrics().await, r#"switchboard_tool_calls_total{tool="sleep",door="webhook",outcome="ok"}"#)
        + metric(&b.metrics().await, r#"switchboard_tool_calls_total{tool="sleep",door="webhook",outcome="ok"}"#);
    assert_eq!(ran, 1.0, "the plugin ran once across both replicas");
}

#[tokio::test]
async fn schema_violations_come_back_as_readable_errors() {
    let server = TestServer::start(&["lookup_contact", "business_hours"]).await;
    let body =
        tool_calls(&[("missing", "lookup_contact", json!({})), ("wrong-type", "lookup_contact", json!({"query": 42}))]);
    let results = results(&server, &body).await;
    assert_eq!(results[0]["error"], "invalid arguments: \"query\" is a required property");
    assert_eq!(results[1]["error"], "invalid arguments: `query`: 42 is not of type \"string\"");
    let metrics = server.metrics().await;
    assert_eq!(
        metric(&metrics, r#"switchboard_tool_calls_total{tool="lookup_contact",door="webhook",outcome="error"}"#),
        2.0
    );
}

/// The platform's tool definition, as its docs and fixtures show it.
fn platform_tool_schema() -> Value {
    json!({
        "type": "object",
        "required": ["name", "description", "parameters", "async"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_-]{0,63}$"},
            "description": {"type": "string"},
            "url": {"type": "string", "pattern": "^https?://"},
            "async": {"type": "boolean"},
            "async_response": {"type": "string"},
            "parameters": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"const": "object"}, "properties": {"type": "object"}, "required": {"type": "array", "items": {"type": "string"}}}
            }
        },
        "additionalProperties": false
    })
}

#[tokio::test]
async fn switchboard_tools_prints_valid_platform_tool_definitions() {
    let dir = plugins_dir(&["echo", "lookup_contact", "business_hours", "echo_command"]);
    let config = dir.path().join("switchboard.toml");
    std::fs::write(&config, "plugins = \".\"\npublic_url = \"https://voice.example.com/\"\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["tools", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let tools = printed["llm_config"]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 4);
    let validator = jsonschema::validator_for(&platform_tool_schema()).unwrap();
    for tool in tools {
        let errors: Vec<String> = validator.iter_errors(tool).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{tool}: {errors:?}");
        assert_eq!(tool["url"], "https://voice.example.com/webhook");
    }
    // The spec's own example validates too, so the schema is the platform's shape.
    let spec: Value = serde_json::from_slice(&fixture("tool-definition.lookup_contact.json")).unwrap();
    assert!(validator.is_valid(&spec["llm_config"]["tools"][0]));
}
