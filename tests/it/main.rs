//! Integration tests: a real Switchboard on loopback, real compiled plugins.
//! One test binary, so wasmtime is linked once.

mod command;
mod common;
mod ops;
mod reload;
mod tool_calls;
mod webhook;
