//! `switchboard new` end to end, per language, as a plugin author would go:
//! the real binary writes a project into a temporary folder (outside this
//! repository), its `./build.sh` installs the pinned toolchain from the
//! language's registry and builds `dist/NAME.wasm`, its unit tests run
//! without Switchboard, and `switchboard call` answers through the same core
//! as the server: the greeting for `{"name": "Ada"}`, with the plugin's log
//! line, and the schema error for `{}`.
//!
//! The toolchains' downloads are cached in `target/scaffold-cache/` (npm's
//! cache, Go's build cache, one cargo target folder; pip's cache too, where
//! the registry lets pip cache), so mostly only the first run on a machine
//! downloads them. Each step's time is printed
//! (`cargo test --test it scaffold -- --nocapture`); nothing asserts on it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{Value, json};

/// The scaffolds build one at a time: each keeps both cores busy.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/scaffold-cache")
}

/// Runs `command` with the caches set, failing the test with its output
/// when it fails (unless `may_fail`).
fn run(command: &mut Command, may_fail: bool) -> Output {
    let cache = cache();
    command
        .env("npm_config_cache", cache.join("npm"))
        .env("PIP_CACHE_DIR", cache.join("pip"))
        .env("GOCACHE", cache.join("go-build"))
        .env("CARGO_TARGET_DIR", cache.join("cargo-target"))
        // Logs as plain text whatever the environment says.
        .env_remove("RUST_LOG")
        .env_remove("SWITCHBOARD_LOG_FORMAT")
        .env_remove("SWITCHBOARD_PLUGINS")
        .env_remove("SWITCHBOARD_CONFIG");
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    if !may_fail && !output.status.success() {
        panic!(
            "{command:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}

fn switchboard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
}

/// new -> ./build.sh setup -> ./build.sh -> ./build.sh test -> call, timed.
/// Returns the project (in the temporary folder, removed on drop).
fn scaffold_end_to_end(lang: &str) -> (tempfile::TempDir, PathBuf) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let name = format!("hello_{lang}");
    let parent = tempfile::tempdir().unwrap();
    let project = parent.path().join(&name);
    let mut times = Vec::new();

    let started = Instant::now();
    let created = run(switchboard().args(["new", lang, &name, "--dir"]).arg(parent.path()), false);
    times.push(("new", started.elapsed()));
    let said = String::from_utf8_lossy(&created.stdout);
    assert!(said.contains(&format!("switchboard call {name}")), "{said}");
    let script = project.join("build.sh");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_ne!(std::fs::metadata(&script).unwrap().permissions().mode() & 0o111, 0, "build.sh is not executable");
    }
    // A second `new` of the same name leaves the project alone.
    let again = run(switchboard().args(["new", lang, &name, "--dir"]).arg(parent.path()), true);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let step = Instant::now();
    run(Command::new(&script).arg("setup").current_dir(&project), false);
    let toolchain = step.elapsed();

    let step = Instant::now();
    run(Command::new(&script).current_dir(&project), false);
    times.push(("./build.sh", step.elapsed()));
    let dist = project.join("dist");
    let mut built: Vec<_> = std::fs::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| !f.starts_with('.'))
        .collect();
    built.sort();
    assert_eq!(built, [format!("{name}.toml"), format!("{name}.wasm")], "dist/ holds the plugin and its manifest only");

    let step = Instant::now();
    let answer = run(
        switchboard().args(["call", &name, r#"{"name": "Ada"}"#, "--plugins"]).arg(&dist).current_dir(&project),
        false,
    );
    times.push(("first call", step.elapsed()));
    let to_first_answer = started.elapsed() - toolchain;
    let result: Value = serde_json::from_slice(&answer.stdout).expect("call prints the result as JSON");
    assert_eq!(result, json!({"message": "Hello, Ada!"}));
    let log = String::from_utf8_lossy(&answer.stderr);
    assert!(log.contains("greeting Ada"), "call shows the plugin's log line: {log}");
    assert!(log.contains(&format!("ok: {name}")) && log.contains(" ms"), "call says how long it took: {log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log that is not a terminal: {log:?}");
    // The same, its log as JSON lines.
    let json_log = run(
        switchboard().args(["call", &name, r#"{"name": "Ada"}"#, "--log-format", "json", "--plugins"]).arg(&dist),
        false,
    );
    let records: Vec<Value> =
        String::from_utf8_lossy(&json_log.stderr).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        records.iter().any(|r| r["fields"]["message"].as_str().is_some_and(|m| m.starts_with("greeting Ada"))
            && r["fields"]["plugin"] == name.as_str()),
        "{records:?}"
    );

    let step = Instant::now();
    run(Command::new(&script).arg("test").current_dir(&project), false);
    times.push(("unit tests", step.elapsed()));

    let refused = run(switchboard().args(["call", &name, "{}", "--plugins"]).arg(&dist), true);
    assert_eq!(refused.status.code(), Some(1));
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains(r#"invalid arguments: "name" is a required property"#), "{error}");
    assert!(!error.contains("greeting"), "the plugin ran although the arguments were refused: {error}");

    let steps: Vec<String> = times.iter().map(|(step, time)| format!("{step} {:.1} s", time.as_secs_f64())).collect();
    eprintln!(
        "scaffold {lang}: new to first answer {:.1} s ({}); toolchain install {:.1} s",
        to_first_answer.as_secs_f64(),
        steps.join(", "),
        toolchain.as_secs_f64()
    );
    (parent, project)
}

#[test]
fn new_rust_project_builds_tests_and_answers() {
    scaffold_end_to_end("rust");
}

#[test]
fn new_javascript_project_builds_tests_and_answers_and_names_a_bad_tool_description() {
    let (_parent, project) = scaffold_end_to_end("js");
    // The issue's mistake: `parametersSchema` misspelled. The load error
    // quotes componentize-js's own words and names the fields.
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let source = project.join("index.js");
    let code = std::fs::read_to_string(&source).unwrap();
    assert!(code.contains("parametersSchema: JSON.stringify(SCHEMA)"));
    std::fs::write(
        &source,
        code.replace("parametersSchema: JSON.stringify(SCHEMA)", "parameterSchema: JSON.stringify(SCHEMA)"),
    )
    .unwrap();
    run(Command::new(project.join("build.sh")).current_dir(&project), false);
    let checked = run(switchboard().args(["check", "--plugins"]).arg(project.join("dist")), true);
    assert_eq!(checked.status.code(), Some(1));
    let report = String::from_utf8_lossy(&checked.stdout);
    assert!(report.contains("FAILED hello_js"), "{report}");
    assert!(report.contains("expected a string, received [undefined]"), "{report}");
    assert!(report.contains("`parametersSchema`"), "{report}");
    // `call` says why the tool is missing.
    let called = run(
        switchboard().args(["call", "hello_js", r#"{"name": "Ada"}"#, "--plugins"]).arg(project.join("dist")),
        true,
    );
    assert_eq!(called.status.code(), Some(1));
    let error = String::from_utf8_lossy(&called.stderr);
    assert!(
        error.contains("hello_js did not load") && error.contains("expected a string, received [undefined]"),
        "{error}"
    );
}

#[test]
fn new_typescript_project_builds_tests_and_answers() {
    scaffold_end_to_end("ts");
}

#[test]
fn new_python_project_builds_tests_and_answers() {
    scaffold_end_to_end("python");
}

#[test]
fn new_go_project_builds_tests_and_answers() {
    scaffold_end_to_end("go");
}
