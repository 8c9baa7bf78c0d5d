#![no_main]
//! `[http] allowed_hosts` patterns, and matching request URLs against them.

use libfuzzer_sys::fuzz_target;

mod timed;

fuzz_target!(|data: &[u8]| timed::run(data, switchboard::fuzzing::allowed_host));
