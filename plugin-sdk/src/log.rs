//! Log records from a plugin, through `wasi:logging`: Switchboard writes them
//! to its own log, tagged with the plugin, the tool and the call id. Lines
//! printed to stdout and stderr end up there too (as `info` and `warn`).
//!
//! Switchboard keeps about 64 KiB of log output per call and drops the rest,
//! and replaces the plugin's secrets with `***`; still, log what helps an
//! operator, not the caller's personal data.
//!
//! ```
//! switchboard_sdk::log::info("looking up free slots");
//! switchboard_sdk::log::warn(format!("calendar answered {}", 503));
//! ```
//!
//! Outside WebAssembly the records go to stderr.

/// How important a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Step-by-step detail.
    Trace,
    /// Detail for debugging.
    Debug,
    /// Normal events.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// Logs `message` at `level`; `context` groups related records (any text).
pub fn log(level: Level, context: &str, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::wasm::bindings::wasi::logging::logging;
        let level = match level {
            Level::Trace => logging::Level::Trace,
            Level::Debug => logging::Level::Debug,
            Level::Info => logging::Level::Info,
            Level::Warn => logging::Level::Warn,
            Level::Error => logging::Level::Error,
        };
        logging::log(level, context, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {context}: {message}");
}

/// Logs at `trace`.
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, "", message.as_ref());
}

/// Logs at `debug`.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, "", message.as_ref());
}

/// Logs at `info`.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, "", message.as_ref());
}

/// Logs at `warn`.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, "", message.as_ref());
}

/// Logs at `error`.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, "", message.as_ref());
}
