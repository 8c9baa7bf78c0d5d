//! Integration tests: a real Switchboard on loopback, real compiled plugins.
//! One test binary, so wasmtime is linked once.

mod capabilities;
mod command;
mod common;
mod languages;
mod ops;
mod protocol;
mod reload;
mod tool_calls;
mod webhook;
