#![no_main]
//! The configuration file (`--config`): the binary's own `FileConfig`, and
//! the settings it resolves to. `src/cli/config.rs` is compiled in here as
//! it is into the binary: it uses only Switchboard's public API.

use std::io::{Seek, Write};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/cli/config.rs"]
mod config;
mod timed;

fuzz_target!(|data: &[u8]| timed::run(data, check));

fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(parsed) = toml::from_str::<config::FileConfig>(text) else { return };
    // `resolve` reads the file itself (and validates what it holds).
    let (file, path) = &mut *file().lock().unwrap_or_else(|e| e.into_inner());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(data))
        .expect("the config file is written");
    let overrides = config::Overrides { config: Some(path.clone()), ..Default::default() };
    let Ok((_, settings)) = config::resolve(&overrides).map_err(|e| e.to_string()) else { return };
    // A limit is never less than what the file asks for (the largest a `usize` holds, at most).
    if let Some(mib) = parsed.plugin_memory_mib {
        let bytes = settings.plugin_defaults.memory_bytes;
        assert!(bytes >> 20 >= mib.min(usize::MAX >> 20), "plugin_memory_mib = {mib} gives {bytes} bytes");
    }
}

/// A file that only this process sees, and that nothing leaves behind: made,
/// removed at once, and read through `/proc/self/fd`.
fn file() -> &'static Mutex<(std::fs::File, PathBuf)> {
    static FILE: OnceLock<Mutex<(std::fs::File, PathBuf)>> = OnceLock::new();
    FILE.get_or_init(|| {
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join(format!("switchboard-fuzz-config-{}.toml", std::process::id()));
        let file = std::fs::File::create(&path).expect("a temporary file");
        std::fs::remove_file(&path).expect("a temporary file");
        let fd_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        Mutex::new((file, fd_path))
    })
}
