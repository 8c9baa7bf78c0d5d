//! Integration tests: a real Switchboard on loopback, real compiled plugins.
//! One test binary, so wasmtime is linked once.

mod common;
mod ops;
mod tool_calls;
mod webhook;
