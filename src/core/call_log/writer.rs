//! The writer: the one task that takes records off the queue and writes
//! them, a batch at a time, so a request never waits for the database.
//! It also keeps the last hour's figures ([`Stats`]) and prunes what is
//! older than the retention. A batch that cannot be written (the database
//! slow, full or gone) is dropped, logged and counted; the next is tried
//! afresh.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::queue::Queue;
use super::record::{Field, Pending, epoch_ms};
use super::settings::CallLogSettings;
use super::stats::Stats;
use super::store::{Batch, Store};
use crate::core::metrics::Metrics;

/// How long the writer gathers records before writing: the most a record
/// waits before it can be read back (plus the write itself).
const GATHER: Duration = Duration::from_millis(50);
/// How often old records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// At most one warning about dropped records per this long.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Runs until the queue is closed and empty.
pub(crate) async fn run(
    store: Arc<Store>,
    queue: Arc<Queue>,
    settings: Arc<CallLogSettings>,
    stats: Arc<Mutex<Stats>>,
    metrics: Arc<Metrics>,
) {
    let mut pruned: Option<Instant> = None;
    let mut warned: Option<Instant> = None;
    // Its buffers are kept from batch to batch.
    let mut batch = Batch::default();
    while queue.wait().await {
        queue.gather(GATHER).await;
        let flushes = queue.take(&mut batch.records);
        if batch.records.len() > 0 {
            {
                let mut stats = stats.lock().unwrap_or_else(|p| p.into_inner());
                let records = &batch.records;
                records.tool_calls.iter().for_each(|r| stats.add(r, records.text_of(r).tool));
            }
            for index in 0..batch.records.tool_calls.len() {
                shape(&mut batch.records, index, &settings);
            }
            batch.prepare();
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

/// Makes tool call `index` of `records` as stored: plugin secrets redacted,
/// captures as configured, long values cut. Its text is copied again only
/// when one of these changes it.
fn shape(records: &mut Pending, index: usize, settings: &CallLogSettings) {
    let limit = settings.max_value_bytes;
    let record = &records.tool_calls[index];
    let plugin = record.secrets.as_deref();
    // `Some(new)` when the stored value differs from the one sent.
    let stored = |text: &str| -> Option<String> {
        let redacted = plugin.map(|p| p.redact(text.to_owned())).filter(|r| r != text);
        match redacted {
            Some(text) => Some(cut_owned(text, limit)),
            None => (text.len() > limit).then(|| cut(text, limit)),
        }
    };
    let kept = |value: Option<&str>, capture: bool| match value {
        Some(_) if !capture => Some(None),
        Some(text) => stored(text).map(Some),
        None => None,
    };
    let text = records.text_of(record);
    let changes = [
        (Field::Arguments, kept(text.arguments, settings.capture_arguments)),
        (Field::Result, kept(text.result, settings.capture_results)),
        (Field::Error, kept(text.error, true)),
    ];
    for (field, change) in changes {
        if let Some(value) = change {
            records.replace(index, field, value.as_deref());
        }
    }
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
