//! The call log in embedded SQLite: `calls.sqlite3` in the data folder, in
//! WAL mode (readers never wait for the writer). The writer and the readers
//! have a connection each; both run on tokio's blocking threads.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params, params_from_iter};

use super::rows::{Batch, summary, tool_call_entry, webhook_entry};
use super::sql::{self, Dialect, Param};
use crate::core::call_log::query::{CallEntry, CallSummary};

/// The file in the data folder.
pub(crate) const FILE: &str = "calls.sqlite3";

pub(crate) struct Sqlite {
    /// `None` for a log opened only to read it.
    writer: Option<Arc<Mutex<Connection>>>,
    reader: Arc<Mutex<Connection>>,
}

fn error(e: rusqlite::Error) -> String {
    e.to_string()
}

/// Runs `work` on a blocking thread with `connection`.
async fn with<T: Send + 'static>(
    connection: &Arc<Mutex<Connection>>,
    work: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
) -> Result<T, String> {
    let connection = connection.clone();
    tokio::task::spawn_blocking(move || {
        let mut connection = connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        work(&mut connection).map_err(error)
    })
    .await
    .map_err(|e| format!("the call log's database task failed: {e}"))?
}

impl Sqlite {
    /// Opens `dir`/calls.sqlite3; with `create`, makes the folder, the file
    /// and the tables when missing, and opens it for writing.
    pub async fn open(dir: PathBuf, create: bool) -> Result<Self, String> {
        tokio::task::spawn_blocking(move || Self::open_now(dir, create))
            .await
            .map_err(|e| format!("opening the call log failed: {e}"))?
    }

    fn open_now(dir: PathBuf, create: bool) -> Result<Self, String> {
        let path = dir.join(FILE);
        let writer = if create {
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create data folder {}: {e}", dir.display()))?;
            let connection =
                Connection::open(&path).map_err(|e| format!("cannot open {}: {}", path.display(), error(e)))?;
            connection
                .busy_timeout(Duration::from_secs(5))
                .and_then(|_| connection.pragma_update(None, "journal_mode", "WAL"))
                .and_then(|_| connection.pragma_update(None, "synchronous", "NORMAL"))
                .and_then(|_| connection.execute_batch(&sql::schema(Dialect::Sqlite)))
                .map_err(|e| format!("cannot set up the call log in {}: {}", path.display(), error(e)))?;
            Some(Arc::new(Mutex::new(connection)))
        } else {
            if !path.exists() {
                return Err(format!(
                    "no call log at {}: give the data folder the server uses (--data-dir, SWITCHBOARD_DATA or data_dir)",
                    path.display()
                ));
            }
            None
        };
        let reader = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.busy_timeout(Duration::from_secs(5)).map(|_| c))
            .map_err(|e| format!("cannot read {}: {}", path.display(), error(e)))?;
        Ok(Self { writer, reader: Arc::new(Mutex::new(reader)) })
    }

    /// Writes `batch` in one transaction; gives the batch back, emptied of
    /// nothing, so the writer reuses its buffers.
    pub async fn write(&self, batch: Batch) -> (Batch, Result<(), String>) {
        let Some(writer) = &self.writer else { return (batch, Err("the call log was opened to read only".into())) };
        match with(writer, move |connection| Ok((insert(connection, &batch), batch))).await {
            Ok((written, batch)) => (batch, written.map_err(error)),
            Err(e) => (Batch::default(), Err(e)),
        }
    }

    pub async fn prune(&self, before_ms: i64) -> Result<u64, String> {
        let writer = self.writer.as_ref().ok_or("the call log was opened to read only")?;
        with(writer, move |connection| {
            let transaction = connection.transaction()?;
            let mut gone = 0;
            for statement in sql::PRUNE {
                gone +=
                    transaction.execute(&sql::placeholders(statement.to_owned(), Dialect::Sqlite), [before_ms])? as u64;
            }
            transaction.commit()?;
            Ok(gone)
        })
        .await
    }

    pub async fn calls(&self, text: String, params: Vec<Param>) -> Result<Vec<CallSummary>, String> {
        with(&self.reader, move |connection| {
            let values = params.into_iter().map(|p| match p {
                Param::Text(t) => rusqlite::types::Value::Text(t),
                Param::Int(i) => rusqlite::types::Value::Integer(i),
            });
            let mut statement = connection.prepare_cached(&text)?;
            let rows = statement.query_map(params_from_iter(values), summary_of)?;
            rows.collect()
        })
        .await
    }

    pub async fn story(&self, call_id: String) -> Result<Option<(CallSummary, Vec<(i64, CallEntry)>)>, String> {
        with(&self.reader, move |connection| {
            // One snapshot for the three reads: a batch written between
            // them could otherwise show entries its summary does not count.
            let connection = connection.transaction()?;
            let call = connection
                .prepare_cached(&format!("SELECT {} FROM calls WHERE call_id = ?1", sql::SUMMARY_COLUMNS))?
                .query_row([&call_id], summary_of)
                .optional()?;
            let Some(call) = call else { return Ok(None) };
            let mut entries: Vec<(i64, CallEntry)> = connection
                .prepare_cached(&format!(
                    "SELECT {} FROM tool_calls WHERE call_id = ?1 ORDER BY at, id",
                    sql::TOOL_CALL_COLUMNS
                ))?
                .query_map([&call_id], |r| {
                    Ok(tool_call_entry(
                        r.get(0)?,
                        r.get(3)?,
                        r.get(2)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                        r.get(11)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            let webhooks = connection
                .prepare_cached(&format!(
                    "SELECT {} FROM webhooks WHERE call_id = ?1 ORDER BY at, id",
                    sql::WEBHOOK_COLUMNS
                ))?
                .query_map([&call_id], |r| Ok(webhook_entry(r.get(0)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            entries.extend(webhooks);
            Ok(Some((call, entries)))
        })
        .await
    }
}

fn summary_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<CallSummary> {
    Ok(summary(
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

/// Inserts `batch`'s rows and merges its summaries, in one transaction.
fn insert(connection: &mut Connection, batch: &Batch) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    let tool_calls: Vec<_> = batch.tool_calls().collect();
    insert_rows(&transaction, "tool_calls", sql::TOOL_CALL_COLUMNS, &tool_calls, |row| {
        let text = &row.text;
        [
            int(row.at),
            self::text(Some(text.call_id)),
            self::text(Some(text.tool_call_id)),
            self::text(Some(text.tool)),
            self::text(text.plugin),
            self::text(text.version),
            self::text(Some(row.door)),
            self::text(Some(row.outcome)),
            int(row.duration_us),
            self::text(text.arguments),
            self::text(text.result),
            self::text(text.error),
        ]
    })?;
    insert_rows(&transaction, "webhooks", sql::WEBHOOK_COLUMNS, &batch.webhooks, |row| {
        [
            int(row.at),
            text(Some(&row.call_id)),
            text(Some(row.event)),
            int(row.http_status),
            int(row.duration_us),
            text(row.detail.as_deref()),
        ]
    })?;
    {
        let mut merge =
            transaction.prepare_cached(&sql::placeholders(sql::merge_call(Dialect::Sqlite), Dialect::Sqlite))?;
        for (call_id, row) in &batch.calls {
            merge.execute(params![
                call_id,
                row.first_at,
                row.last_at,
                row.customer_number,
                row.phone_number,
                row.tool_calls,
                row.failed,
                row.status,
                row.ended_reason,
                row.duration_seconds
            ])?;
        }
    }
    transaction.commit()
}

/// A text column's value, borrowed (NULL when absent).
fn text(value: Option<&str>) -> ToSqlOutput<'_> {
    match value {
        Some(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
        None => ToSqlOutput::Owned(Value::Null),
    }
}

/// An integer column's value.
fn int(value: i64) -> ToSqlOutput<'static> {
    ToSqlOutput::Owned(Value::Integer(value))
}

/// Rows one INSERT statement takes: the statement's own cost (starting its
/// program, resetting it) is shared by that many rows.
const ROWS_PER_INSERT: usize = 32;

/// Inserts `rows` into `table`, [`ROWS_PER_INSERT`] to a statement (the
/// last few one by one, so two statements per table stay prepared).
fn insert_rows<'r, R, const N: usize>(
    transaction: &rusqlite::Transaction<'_>,
    table: &str,
    columns: &str,
    rows: &'r [R],
    values: impl Fn(&'r R) -> [ToSqlOutput<'r>; N],
) -> rusqlite::Result<()> {
    let statement = |count: usize| {
        let row = format!("({})", vec!["?"; N].join(", "));
        format!("INSERT INTO {table} ({columns}) VALUES {}", vec![row; count].join(", "))
    };
    let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
    if chunks.len() > 0 {
        let mut many = transaction.prepare_cached(&statement(ROWS_PER_INSERT))?;
        for chunk in &mut chunks {
            many.execute(params_from_iter(chunk.iter().flat_map(&values)))?;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut one = transaction.prepare_cached(&statement(1))?;
        for row in rest {
            one.execute(params_from_iter(values(row)))?;
        }
    }
    Ok(())
}
