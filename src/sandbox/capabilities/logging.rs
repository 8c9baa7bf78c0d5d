//! Plugin output into the host's log: `wasi:logging` records and the lines a
//! component writes to stdout and stderr become `tracing` events (target
//! `plugin`) tagged with plugin, tool and call id.
//!
//! [`CallLog`] is the one place plugin output is let through: it caps the
//! volume per call (the rest is counted and dropped, and the call carries
//! on), redacts the plugin's own secrets, and cuts long lines, in that
//! order: a secret is never cut in two, nor a piece of one left at a cut.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::async_trait;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::Capabilities;

/// Longest line or record kept; longer ones are cut (the rest of a line is
/// dropped).
pub const MAX_LINE_BYTES: usize = 4096;
/// Longest `wasi:logging` context kept.
const MAX_CONTEXT_BYTES: usize = 256;
/// What each record costs against the budget on top of its text, so a flood
/// of empty records runs out too.
const RECORD_OVERHEAD: usize = 64;
/// How many of the last lines a log keeps for [`CallLog::recent`].
const RECENT_LINES: usize = 8;
/// How much of each of them.
const RECENT_LINE_BYTES: usize = 300;

/// The severity of a plugin's log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `trace`.
    Trace,
    /// `debug`.
    Debug,
    /// `info`, and lines on stdout.
    Info,
    /// `warn`, and lines on stderr.
    Warn,
    /// `error` and `critical`.
    Error,
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `wasi:cli/stdout`.
    Stdout,
    /// `wasi:cli/stderr`.
    Stderr,
}

/// The log of one call (or one load) of one plugin, shared by its
/// `wasi:logging` implementation and its stdout and stderr streams.
pub struct CallLog {
    capabilities: Arc<Capabilities>,
    tool: String,
    call_id: String,
    limit: usize,
    /// How long an unfinished line may grow before it is logged cut: a line
    /// and enough past the cut to see a secret that starts before it whole.
    line_cap: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    used: usize,
    dropped_records: usize,
    dropped_bytes: usize,
    stdout: LineBuffer,
    stderr: LineBuffer,
    /// The last non-blank lines and records let through, redacted and cut.
    recent: std::collections::VecDeque<String>,
}

/// The unfinished line of one stream.
#[derive(Default)]
struct LineBuffer {
    line: Vec<u8>,
    /// The line was logged cut; the rest of it, up to its newline, is dropped.
    skipping: bool,
}

impl LineBuffer {
    /// Adds `bytes`, pushing each line that is complete (or over `cap`,
    /// cut) onto `lines`.
    fn push(&mut self, mut bytes: &[u8], cap: usize, lines: &mut Vec<Vec<u8>>) {
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|&b| b == b'\n');
            if self.skipping {
                match newline {
                    Some(end) => (self.skipping, bytes) = (false, &bytes[end + 1..]),
                    None => bytes = &[],
                }
                continue;
            }
            let room = cap - self.line.len();
            match newline {
                Some(end) if end < room => {
                    self.line.extend_from_slice(&bytes[..end]);
                    lines.push(std::mem::take(&mut self.line));
                    bytes = &bytes[end + 1..];
                }
                _ => {
                    let taken = room.min(bytes.len());
                    self.line.extend_from_slice(&bytes[..taken]);
                    bytes = &bytes[taken..];
                    if self.line.len() >= cap {
                        lines.push(std::mem::take(&mut self.line));
                        self.skipping = true;
                    }
                }
            }
        }
    }
}

impl CallLog {
    /// A log for one call of `tool` in call `call_id`, letting through about
    /// `limit` bytes.
    pub fn new(capabilities: Arc<Capabilities>, tool: &str, call_id: &str, limit: usize) -> Self {
        let line_cap = MAX_LINE_BYTES + capabilities.values().redactor().span();
        Self {
            capabilities,
            tool: tool.to_owned(),
            call_id: call_id.to_owned(),
            limit,
            line_cap,
            state: Mutex::new(State::default()),
        }
    }

    /// A `wasi:logging` record.
    pub fn record(&self, level: Level, context: &str, message: &str) {
        if self.admit(message.len() + context.len()) {
            self.emit(level, context, message);
        }
    }

    /// Bytes written to stdout or stderr; complete lines are logged.
    pub fn write(&self, stream: Stream, bytes: &[u8]) {
        let mut lines = Vec::new();
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let buffer = match stream {
                Stream::Stdout => &mut state.stdout,
                Stream::Stderr => &mut state.stderr,
            };
            buffer.push(bytes, self.line_cap, &mut lines);
        }
        for line in lines {
            self.line(stream, &line);
        }
    }

    fn line(&self, stream: Stream, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\n', '\r']);
        if self.admit(line.len()) {
            let (level, context) = match stream {
                Stream::Stdout => (Level::Info, "stdout"),
                Stream::Stderr => (Level::Warn, "stderr"),
            };
            self.emit(level, context, line);
        }
    }

    /// The last few lines and records the plugin logged (redacted, cut),
    /// oldest first: what a load error quotes, since the plugin's own words
    /// usually name the cause that a trap does not.
    pub fn recent(&self) -> Vec<String> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).recent.iter().cloned().collect()
    }

    /// Counts a record against the budget; `false` when it is over.
    fn admit(&self, len: usize) -> bool {
        let cost = len.min(MAX_LINE_BYTES) + RECORD_OVERHEAD;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.used + cost > self.limit {
            let first = state.dropped_records == 0;
            state.dropped_records += 1;
            state.dropped_bytes += len;
            drop(state);
            if first {
                tracing::warn!(
                    target: "plugin",
                    plugin = %self.capabilities.plugin(), tool = %self.tool, call_id = %self.call_id,
                    limit_bytes = self.limit,
                    "plugin log limit reached; the rest of this call's output is dropped"
                );
            }
            return false;
        }
        state.used += cost;
        true
    }

    /// Logs one record: redacted, then cut (one pass over everything the
    /// plugin emits, message and context alike).
    fn emit(&self, level: Level, context: &str, message: &str) {
        let redactor = self.capabilities.values().redactor();
        let message = redactor.redact_cut(message, MAX_LINE_BYTES);
        let context = redactor.redact_cut(context, MAX_CONTEXT_BYTES);
        if !message.trim().is_empty() {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.recent.len() == RECENT_LINES {
                state.recent.pop_front();
            }
            // `message` is redacted already: cutting it is enough.
            let line = message.trim_end();
            let cut = line.floor_char_boundary(RECENT_LINE_BYTES);
            state.recent.push_back(if cut < line.len() { format!("{}…", &line[..cut]) } else { line.to_owned() });
        }
        let (plugin, tool, call_id) = (self.capabilities.plugin(), &self.tool, &self.call_id);
        macro_rules! event {
            ($level:expr) => {
                tracing::event!(target: "plugin", $level, plugin = %plugin, tool = %tool, call_id = %call_id, context = %context, "{message}")
            };
        }
        match level {
            Level::Trace => event!(tracing::Level::TRACE),
            Level::Debug => event!(tracing::Level::DEBUG),
            Level::Info => event!(tracing::Level::INFO),
            Level::Warn => event!(tracing::Level::WARN),
            Level::Error => event!(tracing::Level::ERROR),
        }
    }
}

impl CallLog {
    /// Logs the unfinished lines, and how much was dropped: the end of a
    /// call. Dropping the log does it too; an instance that serves another
    /// call ([`super::super::reuse`]) keeps the log until the next call's
    /// replaces it, so it flushes when the call ends.
    pub fn flush(&self) {
        let (stdout, stderr) = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            (std::mem::take(&mut state.stdout.line), std::mem::take(&mut state.stderr.line))
        };
        if !stdout.is_empty() {
            self.line(Stream::Stdout, &stdout);
        }
        if !stderr.is_empty() {
            self.line(Stream::Stderr, &stderr);
        }
        let (dropped_records, dropped_bytes) = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            (std::mem::take(&mut state.dropped_records), std::mem::take(&mut state.dropped_bytes))
        };
        if dropped_records > 0 {
            tracing::warn!(
                target: "plugin",
                plugin = %self.capabilities.plugin(), tool = %self.tool, call_id = %self.call_id,
                dropped_records, dropped_bytes,
                "plugin output over the per-call limit was dropped"
            );
        }
    }
}

impl Drop for CallLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The log of the call an instance is running: what its stdout and stderr
/// write to. A fresh instance serves one call, so this never changes; an
/// instance that serves several gets each call's log set here.
#[derive(Clone)]
pub struct CurrentLog(Arc<Mutex<Arc<CallLog>>>);

impl CurrentLog {
    /// Starting with `log`.
    pub fn new(log: Arc<CallLog>) -> Self {
        Self(Arc::new(Mutex::new(log)))
    }

    /// From now on, output goes to `log`.
    pub fn set(&self, log: Arc<CallLog>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = log;
    }

    fn write(&self, stream: Stream, bytes: &[u8]) {
        let log = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        log.write(stream, bytes);
    }
}

/// A component's stdout or stderr, feeding a [`CallLog`].
#[derive(Clone)]
pub struct LogOutput {
    log: CurrentLog,
    stream: Stream,
}

impl LogOutput {
    /// `stream` of the call logged by `log`.
    pub fn new(log: CurrentLog, stream: Stream) -> Self {
        Self { log, stream }
    }
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait]
impl OutputStream for LogOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.log.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[async_trait]
impl Pollable for LogOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for LogOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, bytes: &[u8]) -> Poll<std::io::Result<usize>> {
        self.log.write(self.stream, bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::capabilities::Grants;
    use crate::sandbox::capabilities::values::Secret;
    use std::io::Write;

    /// Collects formatted log output of the current thread.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(run: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    fn capabilities() -> Arc<Capabilities> {
        let mut grants = Grants::default();
        grants.values.secrets.insert("api_key".into(), Secret::new("sk_live_abcdef"));
        Arc::new(Capabilities::new("calendar", grants))
    }

    #[test]
    fn lines_and_records_are_tagged_and_secrets_redacted() {
        let out = capture(|| {
            let log = CallLog::new(capabilities(), "book", "call-7", 10_000);
            log.record(Level::Info, "booking", "using key sk_live_abcdef");
            log.write(Stream::Stderr, b"half a ");
            log.write(Stream::Stderr, b"line\nsecond");
            log.write(Stream::Stdout, b"out\r\n");
            drop(log);
        });
        // The fmt layout: `LEVEL plugin: MESSAGE field=value ...`.
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(
            lines[0].contains("INFO plugin: using key *** plugin=calendar tool=book call_id=call-7 context=booking")
        );
        assert!(lines[1].contains("WARN plugin: half a line plugin=calendar") && lines[1].contains("context=stderr"));
        assert!(lines[2].contains("INFO plugin: out plugin=calendar") && lines[2].contains("context=stdout"));
        assert!(lines[3].contains("plugin: second plugin="), "an unfinished line is logged at the end: {}", lines[3]);
        assert!(!out.contains("sk_live_abcdef"));
    }

    #[test]
    fn output_over_the_limit_is_counted_and_dropped() {
        let out = capture(|| {
            let log = CallLog::new(capabilities(), "flood", "call-1", 2_000);
            for i in 0..1_000 {
                log.record(Level::Info, "", &format!("record {i}"));
            }
            let mut bytes = Vec::new();
            for _ in 0..1_000 {
                writeln!(bytes, "{}", "x".repeat(100)).unwrap();
            }
            log.write(Stream::Stdout, &bytes);
            log.write(Stream::Stdout, &vec![b'y'; 3 * MAX_LINE_BYTES]);
        });
        let kept = out.lines().filter(|l| l.contains("record ")).count();
        assert!((10..=30).contains(&kept), "kept {kept} records under a 2,000-byte budget");
        assert_eq!(out.matches("plugin log limit reached").count(), 1, "{out}");
        assert!(out.contains("dropped_records=") && out.contains("plugin output over the per-call limit"));
        assert!(out.lines().count() < 40, "{}", out.lines().count());
    }

    #[test]
    fn long_lines_are_redacted_then_cut_and_the_rest_dropped() {
        let out = capture(|| {
            let log = CallLog::new(capabilities(), "long", "call-2", 1 << 20);
            // The secret across the cut, on each stream and as a record;
            // the stream lines are written in pieces, and run on past the cap.
            for pad in [MAX_LINE_BYTES - 5, MAX_LINE_BYTES - 1, MAX_LINE_BYTES + 2] {
                let line = format!("{}sk_live_abcdef{}", "x".repeat(pad), "y".repeat(3 * MAX_LINE_BYTES));
                log.record(Level::Info, "sk_live_abcdef", &line);
                for piece in line.as_bytes().chunks(1000) {
                    log.write(Stream::Stdout, piece);
                }
                log.write(Stream::Stdout, b"\nnext line\n");
            }
        });
        assert!(!out.contains("sk_live") && !out.contains("abcdef"), "a piece of the secret is in the log");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 9, "each long line once, cut; then `next line`: {}", lines.len());
        assert!(lines.iter().filter(|l| l.contains("x…")).count() == 6, "cut before the secret");
        assert_eq!(lines.iter().filter(|l| l.contains("plugin: next line ")).count(), 3);
        assert!(lines.iter().all(|l| l.len() < MAX_LINE_BYTES + 200), "cut at about 4 KiB");
    }
}
