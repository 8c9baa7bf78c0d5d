//! A WASI-command test plugin whose behaviour is chosen by the tool name it
//! is called with (tool names come from the file stem or the manifest).

use std::io::{Read, Write};
use std::process::ExitCode;

use serde_json::{Value, json};

fn main() -> ExitCode {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("read stdin");
    let request: Value = serde_json::from_str(&input).expect("request is JSON");
    let name = request["name"].as_str().unwrap_or_default();
    match name {
        "fail" => {
            eprintln!("the command failed on purpose");
            ExitCode::from(2)
        }
        "silent_fail" => ExitCode::from(7),
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "flood" => {
            let line = "x".repeat(1024);
            let mut out = std::io::stdout().lock();
            loop {
                if writeln!(out, "{line}").is_err() {
                    return ExitCode::from(1);
                }
            }
        }
        "env" => {
            let vars: serde_json::Map<String, Value> = std::env::vars().map(|(k, v)| (k, Value::String(v))).collect();
            println!("{}", json!({ "env": vars }));
            ExitCode::SUCCESS
        }
        "garbage" => {
            println!("this is not json");
            ExitCode::SUCCESS
        }
        // The secret `token` where a message is cut: stderr at 1,000
        // characters, non-JSON stdout at 200.
        "leak_stderr" => {
            eprintln!("{}{}", "e".repeat(990), std::env::var("token").unwrap_or_default());
            ExitCode::from(1)
        }
        "leak_stdout" => {
            println!("{}{}", "g".repeat(195), std::env::var("token").unwrap_or_default());
            ExitCode::SUCCESS
        }
        _ => {
            println!(
                "{}",
                json!({ "tool": name, "arguments": request["arguments"], "call_id": request["call"]["id"] })
            );
            ExitCode::SUCCESS
        }
    }
}
