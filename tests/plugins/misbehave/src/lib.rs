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
//! | `alloc_churn`  | `{"rounds": N, "mib": M}` | allocates and frees M MiB N times    |
//! | `flood_logs`   | `{"records": N}` | N wasi:logging records, N stdout and N stderr lines |
//! | `http_get`     | `{"url": U, "bearer_secret"?: K}` | GET U (with secret K as bearer token) |
//! | `http_post`    | `{"url": U, "body": B}` | POST B as JSON to U                     |
//! | `config`       | `{"key": K}` | the config value K, or `null`                     |
//! | `leak_secret`  | `{"key": K}` | logs secret K and fails with it in the message    |
//! | `secret_result` | `{"key": K}` | answers secret K as a value, inside a JSON string, and percent-encoded in a URL |
//! | `secret_long_log` | `{"key": K, "pad": N}` | logs N bytes then secret K (across the 4 KiB cut when N is near it), as a record, on stdout and on stderr, and JSON-escaped |
//! | `read_env`     | any         | the names of its environment variables            |
//! | `read_file`    | `{"path": P}` | reads file P                                     |
//! | `raw_tcp`      | `{"addr": A}` | opens a TCP connection to A (wasi:sockets)       |
//! | `header_flood` | `{"fields": N, "value_bytes": M}` | holds N `wasi:http` fields, each with one M-byte header |
//! | `resource_flood` | `{"count": N}` | holds N `wasi:clocks` pollables (resource-table entries) |
//! | `body_flood`   | `{"requests": N}` | holds N outgoing requests, each body filled as far as the host takes it |
//! | `big_result`   | `{"count": N}` | answers a JSON string of N bytes                  |
//! | `remember_caller` | `{"then"?: "trap" \| "loop"}` | keeps the caller's number in a global; answers `{"previous": <the number kept before>, "calls": <calls this instance served>}`, or then traps or loops |

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_sdk::prelude::*;
use switchboard_sdk::{config, http, log};

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

/// Arguments of `alloc_churn`.
#[derive(Deserialize, JsonSchema)]
struct Churn {
    /// How many times to allocate and free
    rounds: u32,
    /// MiB per allocation
    mib: usize,
}

/// Allocates `mib` MiB, touches every page, frees it; `rounds` times. Memory
/// in use never grows past one block, so it stays under any sane limit.
fn alloc_churn(args: Churn, _: &CallContext) -> Result<Value, ToolError> {
    let mut checksum = 0u64;
    for round in 0..args.rounds {
        let mut block = vec![0u8; args.mib << 20];
        for page in block.chunks_mut(4096) {
            page[0] = round as u8;
        }
        checksum = checksum.wrapping_add(black_box(&block).iter().step_by(4096).map(|&b| b as u64).sum::<u64>());
    }
    Ok(json!({ "rounds": args.rounds, "checksum": checksum }))
}

/// Arguments of `flood_logs`.
#[derive(Deserialize, JsonSchema)]
struct Flood {
    /// Records (and lines on each stream) to write
    records: u32,
}

/// Writes `records` log records, stdout lines and stderr lines, 200 bytes each.
fn flood_logs(args: Flood, _: &CallContext) -> Result<Value, ToolError> {
    let line = "x".repeat(200);
    for i in 0..args.records {
        log::info(format!("record {i} {line}"));
        println!("stdout {i} {line}");
        eprintln!("stderr {i} {line}");
    }
    Ok(json!({ "done": true }))
}

/// Arguments of `http_get`.
#[derive(Deserialize, JsonSchema)]
struct Get {
    /// Absolute URL
    url: String,
    /// A secret (by key) to send as a bearer token
    bearer_secret: Option<String>,
}

fn http_get(args: Get, _: &CallContext) -> Result<Value, ToolError> {
    let mut request = http::Request::get(&args.url);
    if let Some(key) = &args.bearer_secret {
        request = request.bearer_auth(config::secret(key)?.expose());
    }
    let response = request.send()?;
    Ok(json!({ "status": response.status, "body": response.text() }))
}

/// Arguments of `http_burst`.
#[derive(Deserialize, JsonSchema)]
struct Burst {
    /// Absolute URL, fetched `count` times at once
    url: String,
    /// How many requests
    count: usize,
    /// When set, each request is a POST with a body of this many bytes
    body_bytes: Option<usize>,
}

/// GETs `url` `count` times at once (`http::send_all`), or POSTs a body of
/// `body_bytes` to it; each answer's status and body (trailing whitespace
/// trimmed), or its error, in order.
fn http_burst(args: Burst, _: &CallContext) -> Result<Value, ToolError> {
    let request = || match args.body_bytes {
        Some(size) => http::Request::post(&args.url).body(vec![b'b'; size]),
        None => http::Request::get(&args.url),
    };
    let requests = (0..args.count).map(|_| request()).collect();
    let answers = http::send_all(requests)
        .into_iter()
        .map(|answer| match answer {
            Ok(response) => json!({ "status": response.status, "body": response.text().trim_end() }),
            Err(e) => json!({ "error": e.to_string() }),
        })
        .collect::<Vec<_>>();
    Ok(json!(answers))
}

/// Arguments of `http_post`.
#[derive(Deserialize, JsonSchema)]
struct Post {
    /// Absolute URL
    url: String,
    /// JSON body
    body: Value,
}

fn http_post(args: Post, _: &CallContext) -> Result<Value, ToolError> {
    let response = http::post_json(&args.url, &args.body)?;
    Ok(json!({ "status": response.status, "body": response.text() }))
}

/// A configuration key.
#[derive(Deserialize, JsonSchema)]
struct Key {
    /// The key
    key: String,
}

fn config_value(args: Key, _: &CallContext) -> Result<Value, ToolError> {
    Ok(json!({ "value": config::try_get(&args.key)? }))
}

/// Tries to get a secret out through the log and the error message.
fn leak_secret(args: Key, _: &CallContext) -> Result<Value, ToolError> {
    let secret = config::secret(&args.key)?;
    log::warn(format!("the secret is {}", secret.expose()));
    eprintln!("the secret is {}", secret.expose());
    Err(ToolError::failed(format!("the secret is {}", secret.expose())))
}

fn read_env(_: Value, _: &CallContext) -> Result<Value, ToolError> {
    let names: Vec<String> = std::env::vars().map(|(name, _)| name).collect();
    Ok(json!({ "vars": names }))
}

/// A file path.
#[derive(Deserialize, JsonSchema)]
struct FilePath {
    /// Path to read
    path: String,
}

fn read_file(args: FilePath, _: &CallContext) -> Result<Value, ToolError> {
    match std::fs::read_to_string(&args.path) {
        Ok(text) => Ok(json!({ "read": text.len() })),
        Err(e) => Err(ToolError::failed(format!("cannot read {}: {e}", args.path))),
    }
}

/// A socket address.
#[derive(Deserialize, JsonSchema)]
struct Addr {
    /// `host:port`
    addr: String,
}

fn raw_tcp(args: Addr, _: &CallContext) -> Result<Value, ToolError> {
    match std::net::TcpStream::connect(&args.addr) {
        Ok(_) => Ok(json!({ "connected": true })),
        Err(e) => Err(ToolError::failed(format!("cannot connect to {}: {e}", args.addr))),
    }
}

/// Arguments of `header_flood`.
#[derive(Deserialize, JsonSchema)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))] // read by the wasm32 tools only
struct HeaderFlood {
    /// How many `fields` resources to create and hold
    fields: usize,
    /// Bytes of the one header value in each
    value_bytes: usize,
}

/// Arguments of `resource_flood` and `big_result`.
#[derive(Deserialize, JsonSchema)]
struct Count {
    /// How many
    count: usize,
}

/// Arguments of `body_flood`.
#[derive(Deserialize, JsonSchema)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))] // read by the wasm32 tools only
struct BodyFlood {
    /// How many outgoing requests (each with a body) to create and hold
    requests: usize,
}

/// The tools that use WASI below the SDK, through the raw bindings it
/// generates (its `__private` glue: fine for a test plugin that must do what
/// the SDK never does). Only in a component; natively they fail.
#[cfg(target_arch = "wasm32")]
mod raw {
    use super::*;
    use switchboard_sdk::__private::bindings::wasi;

    /// Creates `fields` header-field resources, each holding one header of
    /// `value_bytes`, and keeps them all: host memory the plugin's own memory
    /// cap does not see. Fails with the first refusal the host returns as an
    /// error.
    pub fn header_flood(args: HeaderFlood, _: &CallContext) -> Result<Value, ToolError> {
        use wasi::http::types::Fields;
        let value = vec![b'v'; args.value_bytes];
        let mut held = Vec::with_capacity(args.fields);
        for i in 0..args.fields {
            let fields = Fields::new();
            fields
                .append("x-flood", &value)
                .map_err(|e| ToolError::failed(format!("the host refused header {i}: {e:?}")))?;
            held.push(fields);
        }
        Ok(json!({ "created": black_box(held).len() }))
    }

    /// Creates and holds `count` pollables: entries of the host's resource table.
    pub fn resource_flood(args: Count, _: &CallContext) -> Result<Value, ToolError> {
        let held: Vec<_> =
            (0..args.count).map(|_| wasi::clocks::monotonic_clock::subscribe_duration(1_000_000_000)).collect();
        Ok(json!({ "created": black_box(held).len() }))
    }

    /// Creates `requests` outgoing requests and writes into each body as much
    /// as the host accepts without sending it anywhere: request bodies
    /// buffered in the host. Answers how many bodies were made and the bytes
    /// they took.
    pub fn body_flood(args: BodyFlood, _: &CallContext) -> Result<Value, ToolError> {
        use wasi::http::types::{Fields, OutgoingRequest};
        let chunk = vec![b'b'; 1 << 20];
        let mut held = Vec::with_capacity(args.requests);
        let mut buffered = 0u64;
        for _ in 0..args.requests {
            let request = OutgoingRequest::new(Fields::new());
            let body = request.body().map_err(|()| ToolError::failed("no request body"))?;
            let stream = body.write().map_err(|()| ToolError::failed("no request body stream"))?;
            loop {
                let room = stream.check_write().map_err(|e| ToolError::failed(format!("{e:?}")))?;
                if room == 0 {
                    break;
                }
                let now = (room as usize).min(chunk.len());
                stream.write(&chunk[..now]).map_err(|e| ToolError::failed(format!("{e:?}")))?;
                buffered += now as u64;
            }
            held.push((stream, body, request));
        }
        Ok(json!({ "requests": black_box(held).len(), "buffered": buffered }))
    }
}

/// Natively (unit tests) there is no host to flood.
#[cfg(not(target_arch = "wasm32"))]
mod raw {
    use super::*;

    fn outside() -> ToolError {
        ToolError::failed("only inside Switchboard")
    }

    pub fn header_flood(_: HeaderFlood, _: &CallContext) -> Result<Value, ToolError> {
        Err(outside())
    }

    pub fn resource_flood(_: Count, _: &CallContext) -> Result<Value, ToolError> {
        Err(outside())
    }

    pub fn body_flood(_: BodyFlood, _: &CallContext) -> Result<Value, ToolError> {
        Err(outside())
    }
}

/// Answers a JSON string of `count` bytes (a result larger than any answer
/// the platform needs).
fn big_result(args: Count, _: &CallContext) -> Result<Value, ToolError> {
    Ok(Value::String("x".repeat(args.count)))
}

/// Answers secret `key` in three forms a careless plugin might pass it on in.
fn secret_result(args: Key, _: &CallContext) -> Result<Value, ToolError> {
    let secret = config::secret(&args.key)?;
    let secret = secret.expose();
    let percent: String = secret
        .bytes()
        .map(|b| match b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            true => (b as char).to_string(),
            false => format!("%{b:02X}"),
        })
        .collect();
    Ok(json!({
        "value": secret,
        "nested": json!({ "upstream_said": { "key": secret } }).to_string(),
        "url": format!("https://api.example.com/v1?key={percent}"),
    }))
}

/// Arguments of `secret_long_log`.
#[derive(Deserialize, JsonSchema)]
struct LongLog {
    /// The secret's key
    key: String,
    /// Bytes written before the secret
    pad: usize,
}

/// Logs `pad` bytes followed by secret `key` and more text, so that the
/// secret falls across the host's 4 KiB line cut when `pad` is near it: as a
/// `wasi:logging` record, a stdout line and a stderr line; then a line of
/// JSON that holds the secret escaped.
fn secret_long_log(args: LongLog, _: &CallContext) -> Result<Value, ToolError> {
    let secret = config::secret(&args.key)?;
    let line = format!("{}{} and then some", "x".repeat(args.pad), secret.expose());
    log::info(&line);
    println!("{line}");
    eprintln!("{line}");
    let escaped = json!({ "request": { "authorization": secret.expose() } }).to_string();
    log::warn(&escaped);
    eprintln!("{escaped}");
    Ok(json!({ "logged": line.len() }))
}

/// What `remember_caller` does after keeping the number.
#[derive(Deserialize, JsonSchema)]
struct Remember {
    /// `trap` or `loop`, to end the call badly after keeping the number
    #[serde(default)]
    then: Option<String>,
}

/// The last caller's number and the calls this instance served: state that
/// survives from one call to the next only in an instance that is reused.
static REMEMBERED: std::sync::Mutex<(Option<String>, u64)> = std::sync::Mutex::new((None, 0));

fn remember_caller(args: Remember, ctx: &CallContext) -> Result<Value, ToolError> {
    let (previous, calls) = {
        let mut kept = REMEMBERED.lock().unwrap_or_else(|e| e.into_inner());
        kept.1 += 1;
        (std::mem::replace(&mut kept.0, ctx.customer_number.clone()), kept.1)
    };
    match args.then.as_deref() {
        Some("trap") => panic!("deliberate trap after keeping the number"),
        Some("loop") => loop_forever(Value::Null, ctx),
        _ => Ok(json!({ "previous": previous, "calls": calls })),
    }
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
    tool "alloc_churn" => alloc_churn, "Allocate and free memory repeatedly";
    tool "flood_logs" => flood_logs, "Write many log records and output lines";
    tool "http_get" => http_get, "GET a URL";
    tool "http_post" => http_post, "POST JSON to a URL";
    tool "http_burst" => http_burst, "GET a URL several times at once";
    tool "config" => config_value, "Read a configuration value";
    tool "leak_secret" => leak_secret, "Try to leak a secret through logs and errors";
    tool "read_env" => read_env, "List environment variables";
    tool "read_file" => read_file, "Read a file";
    tool "raw_tcp" => raw_tcp, "Open a raw TCP connection";
    tool "secret_result" => secret_result, "Answer a secret in several forms";
    tool "secret_long_log" => secret_long_log, "Log a secret across the line cut";
    tool "header_flood" => raw::header_flood, "Hold many large HTTP header fields";
    tool "resource_flood" => raw::resource_flood, "Hold many host resources";
    tool "body_flood" => raw::body_flood, "Hold many outgoing request bodies, filled";
    tool "big_result" => big_result, "Answer a string of `count` bytes";
    tool "remember_caller" => remember_caller, "Keep the caller's number; answer the one kept before";
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
