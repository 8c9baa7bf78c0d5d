//! reload_probe, version "b".
const VERSION: &str = "b";
include!("../probe.rs");
