//! The hand-off between the request path and the writer: records are
//! appended to a [`Pending`] buffer behind a mutex, and the writer swaps the
//! whole buffer for an empty one each batch. A record costs its request one
//! uncontended lock and a copy of its text; no allocation, no wake-up (the
//! writer is woken once per batch, by the first record into an empty queue).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Notify, oneshot};

use super::record::Pending;

/// Tool-call text held at most while waiting; more is dropped as when the
/// queue is full (a record's values are cut to `max_value_bytes` only when
/// written, after their secrets are redacted).
pub(crate) const MAX_QUEUED_BYTES: usize = 64 << 20;

/// The queue: records waiting for the writer, and flushes asked for.
pub(crate) struct Queue {
    waiting: Mutex<Waiting>,
    /// Woken by the first record into an empty queue, a flush, and the end.
    wake: Notify,
    /// Woken by a flush: write now rather than at the end of the gathering.
    flush_now: Notify,
    capacity: usize,
    closed: AtomicBool,
}

#[derive(Default)]
struct Waiting {
    records: Pending,
    flushes: Vec<oneshot::Sender<()>>,
}

impl Queue {
    /// A queue holding at most `capacity` records.
    pub fn new(capacity: usize) -> Self {
        Self {
            waiting: Mutex::default(),
            wake: Notify::new(),
            flush_now: Notify::new(),
            capacity: capacity.max(1),
            closed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a record with `add`, unless the queue is full: then `false`.
    pub fn push(&self, add: impl FnOnce(&mut Pending)) -> bool {
        let mut waiting = self.lock();
        let records = &mut waiting.records;
        if records.len() >= self.capacity || records.text_bytes() >= MAX_QUEUED_BYTES {
            return false;
        }
        let first = records.len() == 0;
        add(records);
        drop(waiting);
        if first {
            self.wake.notify_one();
        }
        true
    }

    /// Asks the writer to write what is queued now; `done` is answered once
    /// it is written (or dropped).
    pub fn flush(&self, done: oneshot::Sender<()>) {
        self.lock().flushes.push(done);
        self.wake.notify_one();
        self.flush_now.notify_one();
    }

    /// No more records will come: the writer ends once the queue is empty.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Waits for a record or a flush: `false` once the queue is closed and empty.
    pub async fn wait(&self) -> bool {
        loop {
            {
                let waiting = self.lock();
                if waiting.records.len() > 0 || !waiting.flushes.is_empty() {
                    return true;
                }
                if self.closed.load(Ordering::Acquire) {
                    return false;
                }
            }
            self.wake.notified().await;
        }
    }

    /// Waits `gather`, or less when a flush is asked for.
    pub async fn gather(&self, gather: std::time::Duration) {
        if !self.lock().flushes.is_empty() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(gather) => {}
            _ = self.flush_now.notified() => {}
        }
    }

    /// Takes what is waiting: swaps it with `into` (emptied) and gives the
    /// flushes it answers.
    pub fn take(&self, into: &mut Pending) -> Vec<oneshot::Sender<()>> {
        into.clear();
        let mut waiting = self.lock();
        std::mem::swap(&mut waiting.records, into);
        std::mem::take(&mut waiting.flushes)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::core::call_log::record::{NewToolCall, Outcome, ToolCallText};

    fn add(call_id: &str) -> impl FnOnce(&mut Pending) + '_ {
        move |pending| {
            pending.push_tool_call(NewToolCall {
                at: UNIX_EPOCH,
                plugin: None,
                door: "webhook",
                outcome: Outcome::Ok,
                duration: Duration::ZERO,
                text: ToolCallText { call_id, tool: "echo", ..ToolCallText::default() },
            })
        }
    }

    #[tokio::test]
    async fn records_wait_until_taken_and_a_full_queue_refuses_more() {
        let queue = Queue::new(2);
        assert!(queue.push(add("a")) && queue.push(add("b")));
        assert!(!queue.push(add("c")), "full");
        assert!(queue.wait().await);
        let mut batch = Pending::default();
        assert!(queue.take(&mut batch).is_empty());
        let ids: Vec<_> = batch.tool_calls.iter().map(|r| batch.text_of(r).call_id).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(queue.push(add("c")), "room again once taken");
        queue.close();
        assert!(queue.wait().await, "closed, but a record still waits");
        queue.take(&mut batch);
        assert!(!queue.wait().await, "closed and empty");
    }

    #[tokio::test]
    async fn a_flush_wakes_the_writer_and_cuts_the_gathering_short() {
        let queue = std::sync::Arc::new(Queue::new(10));
        let writer = tokio::spawn({
            let queue = queue.clone();
            async move {
                assert!(queue.wait().await);
                let started = std::time::Instant::now();
                queue.gather(Duration::from_secs(30)).await;
                let mut batch = Pending::default();
                let flushes = queue.take(&mut batch);
                flushes.into_iter().for_each(|done| done.send(()).unwrap());
                started.elapsed()
            }
        });
        let (done, written) = oneshot::channel();
        queue.flush(done);
        written.await.unwrap();
        assert!(writer.await.unwrap() < Duration::from_secs(30));
    }
}
