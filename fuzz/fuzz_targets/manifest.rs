#![no_main]
//! Plugin manifests (`NAME.toml`): parsing, and what loading reads from one.

use libfuzzer_sys::fuzz_target;

mod timed;

fuzz_target!(|data: &[u8]| timed::run(data, switchboard::fuzzing::manifest));
