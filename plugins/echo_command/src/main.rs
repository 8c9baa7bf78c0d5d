//! `echo_command`: a plugin in the WASI-command style, with no SDK at all.
//!
//! Switchboard writes one request to stdin:
//! `{"name": "echo_command", "arguments": {...}, "call": {"id": ..., ...}}`
//! and reads the result JSON from stdout. Exiting non-zero is an error whose
//! message is what was written to stderr.
//!
//! Build: `cargo build --profile plugin --target wasm32-wasip1 -p echo_command`
//! (or `plugins/build.sh`). The tool name is the file stem, `echo_command`,
//! unless `echo_command.toml` lists tools.

use std::io::Read;
use std::process::ExitCode;

use serde_json::{Value, json};

fn main() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("cannot read the request: {e}");
        return ExitCode::FAILURE;
    }
    let request: Value = match serde_json::from_str(&input) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("the request is not JSON: {e}");
            return ExitCode::FAILURE;
        }
    };
    let arguments = &request["arguments"];
    // A deliberate failure path, so the error contract can be seen working.
    if arguments.get("fail").is_some() {
        eprintln!("asked to fail: {}", arguments["fail"]);
        return ExitCode::from(3);
    }
    println!("{}", json!({ "echo": arguments }));
    ExitCode::SUCCESS
}
