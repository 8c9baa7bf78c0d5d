//! reload_probe, version "a".
const VERSION: &str = "a";
include!("../probe.rs");
