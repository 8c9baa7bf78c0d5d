#![no_main]
//! The webhook event decoder (`POST /webhook` bodies).

use libfuzzer_sys::fuzz_target;

mod timed;

fuzz_target!(|data: &[u8]| timed::run(data, switchboard::fuzzing::decode));
