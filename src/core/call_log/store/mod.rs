//! Where the call log lives: embedded SQLite (one file in the data folder)
//! or a PostgreSQL that several replicas share. Both keep the same three
//! tables, written in batches by the writer task and read by the API and
//! the CLI:
//!
//! - `tool_calls`: one row per tool call;
//! - `webhooks`: one row per webhook answered;
//! - `calls`: one row per call id, summed up as records arrive, so listing
//!   recent calls reads an index rather than the whole log.

mod connection;
mod postgres;
mod rows;
pub(crate) mod sql;
mod sqlite;

use std::path::PathBuf;

use super::query::{CallEntry, CallQuery, CallStory, CallSummary, CallsError};
pub(crate) use rows::Batch;
use sql::Dialect;

/// Where the log is kept.
#[derive(Clone, PartialEq, Eq)]
pub enum CallLogDatabase {
    /// SQLite, in `calls.sqlite3` in this folder (created when missing).
    Sqlite(PathBuf),
    /// PostgreSQL at this URL (`postgres://user:password@host:port/db`, or
    /// `host=... user=...`), shared by replicas. TLS with `sslmode=require`
    /// or stricter (the certificate always verified; a private CA named by
    /// `sslrootcert=PATH`).
    Postgres(String),
}

impl std::fmt::Debug for CallLogDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallLogDatabase::Sqlite(dir) => f.debug_tuple("Sqlite").field(dir).finish(),
            // The URL may hold a password.
            CallLogDatabase::Postgres(_) => f.write_str("Postgres(..)"),
        }
    }
}

/// A database the log is written to and read from.
pub(crate) enum Store {
    Sqlite(sqlite::Sqlite),
    Postgres(Box<postgres::Postgres>),
}

impl Store {
    /// Opens (and creates, when missing) the log's database, its tables and indexes.
    pub async fn open(database: &CallLogDatabase) -> Result<Self, String> {
        match database {
            CallLogDatabase::Sqlite(dir) => Ok(Store::Sqlite(sqlite::Sqlite::open(dir.clone(), true).await?)),
            CallLogDatabase::Postgres(url) => Ok(Store::Postgres(Box::new(postgres::Postgres::open(url, true).await?))),
        }
    }

    /// Opens an existing log to read it (`switchboard calls`); creates nothing.
    pub async fn open_existing(database: &CallLogDatabase) -> Result<Self, String> {
        match database {
            CallLogDatabase::Sqlite(dir) => Ok(Store::Sqlite(sqlite::Sqlite::open(dir.clone(), false).await?)),
            CallLogDatabase::Postgres(url) => {
                Ok(Store::Postgres(Box::new(postgres::Postgres::open(url, false).await?)))
            }
        }
    }

    /// Writes `batch` in one transaction, and gives it back (its buffers
    /// are reused for the next).
    pub async fn write(&self, batch: Batch) -> (Batch, Result<(), String>) {
        match self {
            Store::Sqlite(s) => s.write(batch).await,
            Store::Postgres(p) => p.write(batch).await,
        }
    }

    /// Deletes what was logged before `before_ms`; how many rows went.
    pub async fn prune(&self, before_ms: i64) -> Result<u64, String> {
        match self {
            Store::Sqlite(s) => s.prune(before_ms).await,
            Store::Postgres(p) => p.prune(before_ms).await,
        }
    }

    /// One page of calls (one more than asked, when there are more).
    pub async fn calls(&self, query: &CallQuery) -> Result<Vec<CallSummary>, CallsError> {
        let dialect = match self {
            Store::Sqlite(_) => Dialect::Sqlite,
            Store::Postgres(_) => Dialect::Postgres,
        };
        let (text, params) = sql::list_calls(query, dialect).map_err(CallsError::BadQuery)?;
        let read = match self {
            Store::Sqlite(s) => s.calls(text, params).await,
            Store::Postgres(p) => p.calls(text, params).await,
        };
        read.map_err(CallsError::Unavailable)
    }

    /// Everything logged about `call_id`, in order; `None` for a call never logged.
    pub async fn story(&self, call_id: &str) -> Result<Option<CallStory>, String> {
        let found = match self {
            Store::Sqlite(s) => s.story(call_id.to_owned()).await?,
            Store::Postgres(p) => p.story(call_id).await?,
        };
        Ok(found.map(|(call, mut entries)| {
            // Stable: at the same millisecond, a request's webhook comes before its tool calls.
            entries.sort_by_key(|(at_us, e)| (*at_us, matches!(e, CallEntry::ToolCall { .. })));
            CallStory { call, entries: entries.into_iter().map(|(_, entry)| entry).collect() }
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::core::call_log::record::{NewToolCall, Outcome, Pending, ToolCallText, WebhookRecord, epoch_ms};

    fn tool_call(records: &mut Pending, call_id: &str, at: SystemTime, outcome: Outcome) {
        let tool_call_id = format!("{call_id}-t");
        records.push_tool_call(NewToolCall {
            at,
            plugin: None,
            door: "webhook",
            outcome,
            duration: Duration::from_millis(3),
            text: ToolCallText {
                call_id,
                tool_call_id: &tool_call_id,
                tool: "echo",
                customer_number: Some("+1555"),
                arguments: Some("{\"a\":1}"),
                error: Some("boom"),
                ..ToolCallText::default()
            },
        });
    }

    #[tokio::test]
    async fn summaries_merge_across_batches_and_pruning_removes_whole_old_calls() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&CallLogDatabase::Sqlite(dir.path().into())).await.unwrap();
        let now = SystemTime::now();
        let old = now - Duration::from_secs(10 * 86_400);
        let status = |call_id: &str, at, status: &str| WebhookRecord {
            at,
            event: "status-update",
            call_id: call_id.into(),
            customer_number: None,
            phone_number: Some("+3185".into()),
            http_status: 200,
            duration: Duration::ZERO,
            status: Some(status.into()),
            ended_reason: None,
            duration_seconds: None,
            detail: None,
        };
        let mut batch = Batch::default();
        tool_call(&mut batch.records, "old", old, Outcome::Error);
        tool_call(&mut batch.records, "new", now, Outcome::Ok);
        batch.records.webhooks.push(status("new", now, "in-progress"));
        batch.prepare();
        let (mut batch, written) = store.write(batch).await;
        written.unwrap();
        let later = now + Duration::from_millis(5);
        batch.records.clear();
        tool_call(&mut batch.records, "new", later, Outcome::Timeout);
        batch.records.webhooks.push(status("new", later, "ended"));
        batch.prepare();
        let (mut batch, written) = store.write(batch).await;
        written.unwrap();

        let story = store.story("new").await.unwrap().unwrap();
        let call = &story.call;
        assert_eq!((call.tool_calls, call.failed, call.status.as_deref()), (2, 1, Some("ended")));
        assert_eq!((call.customer_number.as_deref(), call.phone_number.as_deref()), (Some("+1555"), Some("+3185")));
        assert_eq!(story.entries.len(), 4);

        // More rows than one INSERT takes: whole statements and the rest one by one.
        batch.records.clear();
        for i in 0..70 {
            tool_call(&mut batch.records, "many", now + Duration::from_micros(i), Outcome::Ok);
        }
        batch.prepare();
        store.write(batch).await.1.unwrap();
        let story = store.story("many").await.unwrap().unwrap();
        assert_eq!((story.entries.len(), story.call.tool_calls), (70, 70));

        let gone = store.prune(epoch_ms(now - Duration::from_secs(7 * 86_400))).await.unwrap();
        assert_eq!(gone, 2, "the old call: its one tool call and its summary");
        assert!(store.story("old").await.unwrap().is_none());
        assert_eq!(store.story("new").await.unwrap().unwrap().entries.len(), 4);
    }
}
