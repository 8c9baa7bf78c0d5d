// Shared body of the two reload_probe binaries (included by each, after it
// defines `VERSION`). Like plugins/echo_command: reads the request on stdin
// and prints `{"version": VERSION, "echo": <arguments>}`.

use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("cannot read the request: {e}");
        return ExitCode::FAILURE;
    }
    let request: serde_json::Value = match serde_json::from_str(&input) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("the request is not JSON: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", serde_json::json!({ "version": VERSION, "echo": request["arguments"] }));
    ExitCode::SUCCESS
}
