#![no_main]
//! The webhook signature check with its headers (`Verifier::verify`), on
//! `TIMESTAMP\nSIGNATURE\nBODY` (see `switchboard::fuzzing::signature`).

use libfuzzer_sys::fuzz_target;

mod timed;

fuzz_target!(|data: &[u8]| timed::run(data, switchboard::fuzzing::signature));
