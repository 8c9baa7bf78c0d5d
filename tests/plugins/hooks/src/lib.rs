//! Test plugin for the hooks: answers `assistant-request` by the caller's
//! number (some numbers misbehave on purpose, two pass the secret `token` on)
//! and receives call events (a `summary` of `fail` or `leak` is refused, the
//! latter with the secret in the error).

use serde_json::{Value, json};
use switchboard_sdk::prelude::*;

fn assistant_request(message: &Value) -> Result<Value, String> {
    let caller = message["customer"]["number"].as_str().unwrap_or("unknown");
    match caller {
        "+3100000001" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "+3100000002" => panic!("deliberate trap in assistant-request"),
        "+3100000003" => Ok(json!({"bogus": true})),
        "+3100000004" => Err("no assistant for you".into()),
        // A careless plugin passing its key on: in an answer, and in an error.
        "+3100000005" => Ok(json!({ "error": format!("card declined for key {}", secret()?) })),
        "+3100000006" => Err(format!("no assistant: the CRM refused key {}", secret()?)),
        _ => Ok(json!({
            "assistant": {
                "first_message": format!("Hello {caller}"),
                "llm_config": {"provider": "openai", "model": "gpt-4.1"},
                "metadata": {"call_id": message["call"]["id"]},
            }
        })),
    }
}

fn on_event(message: &Value) -> Result<(), String> {
    if let Some(ms) = message["test_sleep_ms"].as_u64() {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    if message["summary"] == "fail" {
        return Err("this report was refused".into());
    }
    if message["summary"] == "leak" {
        return Err(format!("the CRM refused key {}", secret()?));
    }
    Ok(())
}

/// The plugin's secret `token` (its manifest grants it).
fn secret() -> Result<String, String> {
    switchboard_sdk::config::secret("token").map(|s| s.expose().to_owned()).map_err(|e| e.to_string())
}

fn ping(_args: Value, _ctx: &CallContext) -> Result<&'static str, ToolError> {
    Ok("pong")
}

switchboard_sdk::plugin! {
    tool "ping" => ping, "Answers pong";
    on_assistant_request => assistant_request;
    on_event => on_event;
}
