//! The writer: the one task that takes records off the queue and writes
//! them, a batch at a time, so a request never waits for the database.
//! It also keeps the last hour's figures ([`Stats`]) and prunes what is
//! older than the retention. A batch that cannot be written (the database
//! slow, full or gone) is dropped, logged and counted; the next is tried
//! afresh.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::record::{Record, ToolCallRecord, ToolCallText, epoch_ms, epoch_us};
use super::settings::CallLogSettings;
use super::stats::Stats;
use super::store::{Batch, Store, ToolCallRow};
use crate::core::metrics::Metrics;

/// What goes through the queue.
#[allow(
    clippy::large_enum_variant,
    reason = "records are nearly every message; boxing each would allocate on the request path"
)]
pub(crate) enum Message {
    /// A record to write.
    Record(Record),
    /// Write everything queued before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// Most records written in one transaction.
const MAX_BATCH: usize = 4096;
/// How long the writer gathers records before writing: the most a record
/// waits before it can be read back (plus the write itself).
const GATHER: Duration = Duration::from_millis(50);
/// How often old records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// At most one warning about dropped records per this long.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Runs until every sender is gone and the queue is empty.
pub(crate) async fn run(
    store: Arc<Store>,
    mut queue: mpsc::Receiver<Message>,
    settings: Arc<CallLogSettings>,
    stats: Arc<Mutex<Stats>>,
    metrics: Arc<Metrics>,
) {
    let mut pruned: Option<Instant> = None;
    let mut warned: Option<Instant> = None;
    // Buffers kept from batch to batch.
    let mut messages = Vec::with_capacity(MAX_BATCH);
    let mut records = Vec::with_capacity(MAX_BATCH);
    let mut batch = Batch::default();
    loop {
        if queue.recv_many(&mut messages, MAX_BATCH).await == 0 {
            return;
        }
        if messages.len() < MAX_BATCH && !matches!(messages.last(), Some(Message::Flush(_))) {
            tokio::time::sleep(GATHER).await;
            let room = MAX_BATCH - messages.len();
            if room > 0 && !queue.is_empty() {
                queue.recv_many(&mut messages, room).await;
            }
        }
        let mut flushes = Vec::new();
        for message in messages.drain(..) {
            match message {
                Message::Record(record) => records.push(record),
                Message::Flush(done) => flushes.push(done),
            }
        }
        if !records.is_empty() {
            {
                let mut stats = stats.lock().unwrap_or_else(|p| p.into_inner());
                records.iter().for_each(|r| {
                    if let Record::ToolCall(t) = r {
                        stats.add(t)
                    }
                });
            }
            batch.fill(records.drain(..), |t| row(t, &settings));
            let rows = batch.len();
            let written;
            (batch, written) = store.write(batch).await;
            match written {
                Ok(()) => metrics.record_call_log_written(rows),
                Err(e) => {
                    metrics.record_call_log_dropped("write_failed", rows);
                    if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                        warned = Some(Instant::now());
                        tracing::warn!(records = rows, error = %e, "call log: records dropped, the database did not take them (answers are not delayed)");
                    }
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
        if settings.retention_days > 0 && pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned = Some(Instant::now());
            let keep = Duration::from_secs(u64::from(settings.retention_days) * 86_400);
            let cutoff = epoch_ms(SystemTime::now().checked_sub(keep).unwrap_or(SystemTime::UNIX_EPOCH));
            match store.prune(cutoff).await {
                Ok(0) => {}
                Ok(gone) => tracing::info!(
                    rows = gone,
                    retention_days = settings.retention_days,
                    "call log: old records pruned"
                ),
                Err(e) => tracing::warn!(error = %e, "call log: pruning old records failed"),
            }
        }
    }
}

/// A tool call as stored: plugin secrets redacted, captures as configured,
/// long values cut. Its text is copied again only when one of these
/// changes it.
fn row(mut call: ToolCallRecord, settings: &CallLogSettings) -> ToolCallRow {
    let limit = settings.max_value_bytes;
    let plugin = call.plugin.as_deref();
    let stored = |text: &str| -> Option<String> {
        let redacted = plugin.filter(|p| p.has_secrets()).map(|p| p.redact(text.to_owned())).filter(|r| r != text);
        match redacted {
            Some(text) => Some(cut_owned(text, limit)),
            None => (text.len() > limit).then(|| cut(text, limit)),
        }
    };
    let fields = call.text();
    let result = fields.result.filter(|_| settings.capture_results);
    let (new_result, new_error) = (result.and_then(stored), fields.error.and_then(stored));
    if new_result.is_some() || new_error.is_some() || result.is_none() && fields.result.is_some() {
        let text = ToolCallText {
            result: new_result.as_deref().or(result),
            error: new_error.as_deref().or(fields.error),
            ..fields
        }
        .pack();
        call.text = text;
    }
    call.arguments = call.arguments.take().filter(|_| settings.capture_arguments).map(|text| {
        let text = match call.plugin.as_deref() {
            Some(plugin) => plugin.redact_shared(text),
            None => text,
        };
        if text.len() > limit { cut(&text, limit).into() } else { text }
    });
    ToolCallRow { at: epoch_us(call.at), record: call }
}

/// `text`, or [`cut`] when longer than `limit` bytes.
fn cut_owned(text: String, limit: usize) -> String {
    if text.len() <= limit { text } else { cut(&text, limit) }
}

/// `text` (longer than `limit` bytes) cut: a JSON string that says so,
/// with its beginning.
fn cut(text: &str, limit: usize) -> String {
    let start = &text[..text.floor_char_boundary(limit)];
    serde_json::Value::String(format!("{start}… (cut: {} bytes in all)", text.len())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_value_is_cut_to_a_json_string_that_says_so() {
        assert_eq!(cut_owned("{\"a\":1}".into(), 100), "{\"a\":1}");
        let cut = cut_owned(format!("\"{}\"", "é".repeat(100)), 11);
        let shown: String = serde_json::from_str(&cut).unwrap();
        assert_eq!(shown, format!("\"{}… (cut: 202 bytes in all)", "é".repeat(5)));
    }
}
