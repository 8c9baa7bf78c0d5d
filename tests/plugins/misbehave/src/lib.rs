//! `misbehave`: a test plugin for Switchboard's integration tests. Besides
//! two well-behaved tools it has one tool per hostile behaviour the host
//! must contain; each does exactly what its name says.
//!
//! | tool           | arguments   | behaviour                                          |
//! |----------------|-------------|----------------------------------------------------|
//! | `ok`           | any         | answers `{"ok": true, "args": <arguments>}`        |
//! | `context`      | any         | answers the `CallContext` as JSON                  |
//! | `fail`         | any         | `failed("this tool always fails")`                 |
//! | `not_found`    | any         | `not-found("nothing here")`                        |
//! | `trap`         | any         | panics with "deliberate trap" (a trap)             |
//! | `loop_forever` | any         | loops forever without host calls                   |
//! | `sleep`        | `{"ms": N}` | sleeps N ms (wasi clocks), answers `{"slept_ms":N}`|
//! | `spin`         | `{"ms": N}` | busy-waits N ms, answers `{"spun_ms": N}`          |
//! | `memory_bomb`  | any         | allocates 1 MiB blocks until allocation fails      |
//! | `recurse`      | any         | recurses without bound until the stack overflows   |

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_sdk::prelude::*;

/// A duration in milliseconds.
#[derive(Deserialize, JsonSchema)]
struct Millis {
    /// Milliseconds
    ms: u64,
}

fn ok(args: Value, _: &CallContext) -> Result<Value, ToolError> {
    Ok(json!({ "ok": true, "args": args }))
}

/// `{"call_id": ..., "call_type": ..., "tool_call_id": ..., "customer_number":
/// ..., "phone_number": ..., "assistant_metadata": <JSON or null>,
/// "deadline_ms": ...}`
fn context(_: Value, ctx: &CallContext) -> Result<CallContext, ToolError> {
    Ok(ctx.clone())
}

fn fail(_: Value, _: &CallContext) -> Result<Value, ToolError> {
    Err(ToolError::failed("this tool always fails"))
}

fn not_found(_: Value, _: &CallContext) -> Result<Value, ToolError> {
    Err(ToolError::not_found("nothing here"))
}

fn trap(_: Value, _: &CallContext) -> Result<Value, ToolError> {
    panic!("deliberate trap")
}

/// Pure computation, no host calls: only fuel or epoch interruption stops it.
fn loop_forever(_: Value, _: &CallContext) -> Result<Value, ToolError> {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Blocks in the host (`wasi:clocks` poll) for `ms` milliseconds.
fn sleep(args: Millis, _: &CallContext) -> Result<Value, ToolError> {
    std::thread::sleep(Duration::from_millis(args.ms));
    Ok(json!({ "slept_ms": args.ms }))
}

/// Burns CPU for `ms` milliseconds, reading the clock in between.
fn spin(args: Millis, _: &CallContext) -> Result<Value, ToolError> {
    let until = Duration::from_millis(args.ms);
    let start = Instant::now();
    let mut spins = 0u64;
    while start.elapsed() < until {
        spins = black_box(spins.wrapping_add(1));
    }
    Ok(json!({ "spun_ms": args.ms }))
}

/// Grows memory 1 MiB at a time, writing to every page, until the host
/// refuses to grow it; the failed allocation aborts (a trap).
fn memory_bomb(_: Value, _: &CallContext) -> Result<Value, ToolError> {
    const MIB: usize = 1 << 20;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; MIB];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        hoard.push(black_box(block));
        black_box(&hoard);
    }
}

/// Recurses until the stack overflows (a trap). Each frame keeps a buffer
/// in linear memory and uses the callee's result, so it is neither a tail
/// call nor a loop.
fn recurse(_: Value, _: &CallContext) -> Result<Value, ToolError> {
    Ok(json!({ "depth": descend(0) }))
}

#[inline(never)]
fn descend(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    // Never true; black_box keeps the compiler from knowing that.
    if black_box(depth) == u64::MAX {
        return frame[0];
    }
    descend(black_box(depth + 1)).wrapping_add(black_box(frame)[31])
}

switchboard_sdk::plugin! {
    tool "ok" => ok, "Answer {\"ok\": true, \"args\": <arguments>}";
    tool "context" => context, "Answer the call context as JSON";
    tool "fail" => fail, "Always fail";
    tool "not_found" => not_found, "Always answer not-found";
    tool "trap" => trap, "Panic (trap)";
    tool "loop_forever" => loop_forever, "Loop forever without host calls";
    tool "sleep" => sleep, "Sleep `ms` milliseconds";
    tool "spin" => spin, "Busy-wait `ms` milliseconds";
    tool "memory_bomb" => memory_bomb, "Allocate memory until it runs out";
    tool "recurse" => recurse, "Recurse until the stack overflows";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: &str, ctx: &CallContext) -> Result<Value, ToolError> {
        plugin().call(name, arguments, ctx).map(|answer| serde_json::from_str(&answer).unwrap())
    }

    #[test]
    fn well_behaved_tools() {
        let ctx = CallContext {
            call_id: "call-1".into(),
            call_type: "inbound_phone_call".into(),
            tool_call_id: "tc-1".into(),
            customer_number: Some("+31612345678".into()),
            phone_number: None,
            assistant_metadata: Some(json!({"tenant": "acme"})),
            deadline_ms: 4500,
        };
        assert_eq!(call("ok", r#"{"x":[1]}"#, &ctx), Ok(json!({"ok": true, "args": {"x": [1]}})));
        assert_eq!(
            call("context", "{}", &ctx),
            Ok(json!({
                "call_id": "call-1",
                "call_type": "inbound_phone_call",
                "tool_call_id": "tc-1",
                "customer_number": "+31612345678",
                "phone_number": null,
                "assistant_metadata": {"tenant": "acme"},
                "deadline_ms": 4500
            }))
        );
        assert_eq!(call("fail", "{}", &ctx), Err(ToolError::failed("this tool always fails")));
        assert_eq!(call("not_found", "{}", &ctx), Err(ToolError::not_found("nothing here")));
        assert_eq!(call("sleep", r#"{"ms":5}"#, &ctx), Ok(json!({"slept_ms": 5})));
        assert_eq!(call("spin", r#"{"ms":5}"#, &ctx), Ok(json!({"spun_ms": 5})));
        assert!(matches!(call("sleep", "{}", &ctx), Err(ToolError::InvalidArguments(_))));
    }

    #[test]
    #[should_panic(expected = "deliberate trap")]
    fn trap_panics() {
        let _ = call("trap", "{}", &CallContext::default());
    }
}
