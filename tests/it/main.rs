//! Integration tests: a real Switchboard on loopback, real compiled plugins.
//! One test binary, so wasmtime is linked once.

mod call_log;
mod capabilities;
mod command;
mod common;
mod connections;
mod dashboard;
mod dev;
mod host_limits;
mod languages;
mod mcp;
mod ops;
mod protocol;
mod reload;
mod replicas;
mod reuse;
mod scaffold;
mod security;
mod shutdown;
mod tiers;
mod tool_calls;
mod webhook;
