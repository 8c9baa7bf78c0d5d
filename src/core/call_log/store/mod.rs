//! Where the call log lives: embedded SQLite (one file in the data folder)
//! or a PostgreSQL that several replicas share. Both keep the same three
//! tables, written in batches by the writer task and read by the API and
//! the CLI:
//!
//! - `tool_calls`: one row per tool call;
//! - `webhooks`: one row per webhook answered;
//! - `calls`: one row per call id, summed up as records arrive, so listing
//!   recent calls reads an index rather than the whole log.

mod postgres;
mod rows;
pub(crate) mod sql;
mod sqlite;

use std::path::PathBuf;

use super::query::{CallEntry, CallQuery, CallStory, CallSummary};
pub(crate) use rows::{Batch, ToolCallRow};
use sql::Dialect;

/// Where the log is kept.
#[derive(Clone, PartialEq, Eq)]
pub enum CallLogDatabase {
    /// SQLite, in `calls.sqlite3` in this folder (created when missing).
    Sqlite(PathBuf),
    /// PostgreSQL at this URL (`postgres://user:password@host:port/db`, or
    /// `host=... user=...`), shared by replicas. Plain TCP, no TLS.
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
            CallLogDatabase::Postgres(url) => {
                Ok(Store::Postgres(Box::new(postgres::Postgres::open(url.clone(), true).await?)))
            }
        }
    }

    /// Opens an existing log to read it (`switchboard calls`); creates nothing.
    pub async fn open_existing(database: &CallLogDatabase) -> Result<Self, String> {
        match database {
            CallLogDatabase::Sqlite(dir) => Ok(Store::Sqlite(sqlite::Sqlite::open(dir.clone(), false).await?)),
            CallLogDatabase::Postgres(url) => {
                Ok(Store::Postgres(Box::new(postgres::Postgres::open(url.clone(), false).await?)))
            }
        }
    }

    /// Writes `batch` in one transaction.
    pub async fn write(&self, batch: Batch) -> Result<(), String> {
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
    pub async fn calls(&self, query: &CallQuery) -> Result<Vec<CallSummary>, String> {
        let dialect = match self {
            Store::Sqlite(_) => Dialect::Sqlite,
            Store::Postgres(_) => Dialect::Postgres,
        };
        let (text, params) = sql::list_calls(query, dialect)?;
        match self {
            Store::Sqlite(s) => s.calls(text, params).await,
            Store::Postgres(p) => p.calls(text, params).await,
        }
    }

    /// Everything logged about `call_id`, in order; `None` for a call never logged.
    pub async fn story(&self, call_id: &str) -> Result<Option<CallStory>, String> {
        let found = match self {
            Store::Sqlite(s) => s.story(call_id.to_owned()).await?,
            Store::Postgres(p) => p.story(call_id).await?,
        };
        Ok(found.map(|(call, mut entries)| {
            // Stable: at the same millisecond, a request's webhook comes before its tool calls.
            entries.sort_by_key(|e| (e.at_ms(), matches!(e, CallEntry::ToolCall { .. })));
            CallStory { call, entries }
        }))
    }
}
