//! The call log in PostgreSQL, shared by replicas. A batch is three
//! statements in one transaction, each taking whole columns as arrays
//! (`UNNEST`), so a batch costs three round trips whatever its size. A
//! connection that breaks is opened again on next use (and the tables made
//! again, if the database came back without them): while the database is
//! gone, writes fail (the writer drops and counts them) and answers go on.

use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, IsolationLevel, Row};

use super::connection::ConnectionSettings;
use super::rows::{Batch, summary, tool_call_entry, webhook_entry};
use super::sql::{self, Dialect, Param};
use crate::core::call_log::query::{CallEntry, CallSummary};

/// Taken while creating the schema, so replicas starting together do not
/// race on `CREATE TABLE IF NOT EXISTS`.
const SCHEMA_LOCK: i64 = 0x5357_4954_4348_4c47; // "SWITCHLG"

pub(crate) struct Postgres {
    settings: ConnectionSettings,
    writer: Mutex<Option<Client>>,
    reader: Mutex<Option<Client>>,
}

fn error(e: tokio_postgres::Error) -> String {
    // The server's own message says most ("relation ... does not exist").
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {}", db.message()),
        None => {
            // With its causes: "error performing TLS handshake" alone does
            // not say the certificate was not trusted.
            let mut message = format!("PostgreSQL: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                message.push_str(&format!(": {c}"));
                cause = c.source();
            }
            message
        }
    }
}

async fn connect(settings: &ConnectionSettings) -> Result<Client, String> {
    settings.connect().await.map_err(|e| {
        let mut message = format!("cannot connect to the call log's database: {}", error(e));
        if settings.uses_tls() && message.contains("certificate") {
            message.push_str(" (for a private CA, name its PEM file with sslrootcert=PATH in database_url)");
        } else if !settings.uses_tls() && message.contains("no encryption") {
            message.push_str(" (the server wants TLS: add sslmode=verify-full to database_url)");
        }
        message
    })
}

/// The open client in `slot`, or a new one; a new writer's connection
/// first makes the tables when missing (the database may have come back
/// empty: a failover, a restore).
async fn client<'a>(
    settings: &ConnectionSettings,
    slot: &'a mut Option<Client>,
    writes: bool,
) -> Result<&'a mut Client, String> {
    if slot.as_ref().is_none_or(|c| c.is_closed()) {
        let mut client = connect(settings).await?;
        if writes {
            create_schema(&mut client).await?;
        }
        *slot = Some(client);
    }
    Ok(slot.as_mut().expect("just set"))
}

/// Creates the tables and indexes when missing, one replica at a time.
async fn create_schema(client: &mut Client) -> Result<(), String> {
    let transaction = client.transaction().await.map_err(error)?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await.map_err(error)?;
    transaction.batch_execute(&sql::schema(Dialect::Postgres)).await.map_err(error)?;
    transaction.commit().await.map_err(error)
}

impl Postgres {
    /// Connects; with `create`, makes the tables and indexes when missing.
    pub async fn open(url: &str, create: bool) -> Result<Self, String> {
        let settings = ConnectionSettings::parse(url)?;
        let mut first = connect(&settings).await?;
        if create {
            create_schema(&mut first).await?;
        }
        Ok(Self { settings, writer: Mutex::new(Some(first)), reader: Mutex::new(None) })
    }

    /// Writes `batch` in one transaction, and gives it back for reuse.
    pub async fn write(&self, batch: Batch) -> (Batch, Result<(), String>) {
        let mut slot = self.writer.lock().await;
        let result = match client(&self.settings, &mut slot, true).await {
            Ok(client) => self.write_with(client, &batch).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            // Start again from a new connection next time.
            *slot = None;
        }
        (batch, result)
    }

    async fn write_with(&self, client: &mut Client, batch: &Batch) -> Result<(), String> {
        let transaction = client.transaction().await.map_err(error)?;
        let t: Vec<_> = batch.tool_calls().collect();
        if !t.is_empty() {
            let columns: [&(dyn ToSql + Sync); 12] = [
                &t.iter().map(|r| r.at).collect::<Vec<_>>(),
                &t.iter().map(|r| r.text.call_id).collect::<Vec<_>>(),
                &t.iter().map(|r| r.text.tool_call_id).collect::<Vec<_>>(),
                &t.iter().map(|r| r.text.tool).collect::<Vec<_>>(),
                &t.iter().map(|r| r.text.plugin).collect::<Vec<_>>(),
                &t.iter().map(|r| r.text.version).collect::<Vec<_>>(),
                &t.iter().map(|r| r.door).collect::<Vec<_>>(),
                &t.iter().map(|r| r.outcome).collect::<Vec<_>>(),
                &t.iter().map(|r| r.duration_us).collect::<Vec<_>>(),
                &t.iter().map(|r| r.text.arguments).collect::<Vec<_>>(),
                &t.iter().map(|r| r.text.result).collect::<Vec<_>>(),
                &t.iter().map(|r| r.text.error).collect::<Vec<_>>(),
            ];
            let statement = format!(
                "INSERT INTO tool_calls ({}) SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], \
                 $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[])",
                sql::TOOL_CALL_COLUMNS
            );
            transaction.execute(&statement, &columns).await.map_err(error)?;
        }
        let w = &batch.webhooks;
        if !w.is_empty() {
            let columns: [&(dyn ToSql + Sync); 6] = [
                &w.iter().map(|r| r.at).collect::<Vec<_>>(),
                &w.iter().map(|r| r.call_id.as_str()).collect::<Vec<_>>(),
                &w.iter().map(|r| r.event).collect::<Vec<_>>(),
                &w.iter().map(|r| r.http_status).collect::<Vec<_>>(),
                &w.iter().map(|r| r.duration_us).collect::<Vec<_>>(),
                &w.iter().map(|r| r.detail.as_deref()).collect::<Vec<_>>(),
            ];
            let statement = format!(
                "INSERT INTO webhooks ({}) SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], \
                 $5::bigint[], $6::text[])",
                sql::WEBHOOK_COLUMNS
            );
            transaction.execute(&statement, &columns).await.map_err(error)?;
        }
        let c: Vec<_> = batch.calls.values().collect();
        let ids: Vec<&str> = batch.calls.keys().map(String::as_str).collect();
        if !c.is_empty() {
            let columns: [&(dyn ToSql + Sync); 10] = [
                &ids,
                &c.iter().map(|r| r.first_at).collect::<Vec<_>>(),
                &c.iter().map(|r| r.last_at).collect::<Vec<_>>(),
                &c.iter().map(|r| r.customer_number.as_deref()).collect::<Vec<_>>(),
                &c.iter().map(|r| r.phone_number.as_deref()).collect::<Vec<_>>(),
                &c.iter().map(|r| r.tool_calls).collect::<Vec<_>>(),
                &c.iter().map(|r| r.failed).collect::<Vec<_>>(),
                &c.iter().map(|r| r.status.as_deref()).collect::<Vec<_>>(),
                &c.iter().map(|r| r.ended_reason.as_deref()).collect::<Vec<_>>(),
                &c.iter().map(|r| r.duration_seconds).collect::<Vec<_>>(),
            ];
            transaction.execute(&sql::merge_call(Dialect::Postgres), &columns).await.map_err(error)?;
        }
        transaction.commit().await.map_err(error)
    }

    pub async fn prune(&self, before_ms: i64) -> Result<u64, String> {
        let mut slot = self.writer.lock().await;
        let client = client(&self.settings, &mut slot, true).await?;
        let transaction = client.transaction().await.map_err(error)?;
        let mut gone = 0;
        for statement in sql::PRUNE {
            gone += transaction.execute(statement, &[&before_ms]).await.map_err(error)?;
        }
        transaction.commit().await.map_err(error)?;
        Ok(gone)
    }

    /// Runs `work` on the reader connection (opened again if it broke).
    async fn on_reader<T>(&self, work: impl AsyncFnOnce(&mut Client) -> Result<T, String>) -> Result<T, String> {
        let mut slot = self.reader.lock().await;
        let client = client(&self.settings, &mut slot, false).await?;
        let result = work(client).await;
        if result.is_err() && client.is_closed() {
            *slot = None;
        }
        result
    }

    /// Runs a read on the reader connection.
    async fn read(&self, text: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, String> {
        self.on_reader(async |client: &mut Client| client.query(text, params).await.map_err(error)).await
    }

    pub async fn calls(&self, text: String, params: Vec<Param>) -> Result<Vec<CallSummary>, String> {
        let params: Vec<Box<dyn ToSql + Sync + Send>> = params
            .into_iter()
            .map(|p| match p {
                Param::Text(t) => Box::new(t) as Box<dyn ToSql + Sync + Send>,
                Param::Int(i) => Box::new(i),
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let rows = self.read(&text, &refs).await?;
        rows.iter().map(summary_of).collect()
    }

    pub async fn story(&self, call_id: &str) -> Result<Option<(CallSummary, Vec<(i64, CallEntry)>)>, String> {
        let found = self.on_reader(async |client: &mut Client| story_rows(client, call_id).await).await?;
        let Some((call, tool_calls, webhooks)) = found else { return Ok(None) };
        let call = summary_of(&call)?;
        let mut entries = Vec::with_capacity(tool_calls.len() + webhooks.len());
        for r in &tool_calls {
            entries.push(tool_call_entry(
                get(r, 0)?,
                get(r, 3)?,
                get(r, 2)?,
                get(r, 4)?,
                get(r, 5)?,
                get(r, 6)?,
                get(r, 7)?,
                get(r, 8)?,
                get(r, 9)?,
                get(r, 10)?,
                get(r, 11)?,
            ));
        }
        for r in &webhooks {
            entries.push(webhook_entry(get(r, 0)?, get(r, 2)?, get(r, 3)?, get(r, 4)?, get(r, 5)?));
        }
        Ok(Some((call, entries)))
    }
}

/// A call's summary, tool calls and webhooks, read in one snapshot (a
/// batch written meanwhile could otherwise show entries its summary does
/// not count).
async fn story_rows(client: &mut Client, call_id: &str) -> Result<Option<(Row, Vec<Row>, Vec<Row>)>, String> {
    let snapshot = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(error)?;
    let summary = format!("SELECT {} FROM calls WHERE call_id = $1", sql::SUMMARY_COLUMNS);
    let Some(call) = snapshot.query_opt(&summary, &[&call_id]).await.map_err(error)? else { return Ok(None) };
    let tool_calls = format!("SELECT {} FROM tool_calls WHERE call_id = $1 ORDER BY at, id", sql::TOOL_CALL_COLUMNS);
    let tool_calls = snapshot.query(&tool_calls, &[&call_id]).await.map_err(error)?;
    let webhooks = format!("SELECT {} FROM webhooks WHERE call_id = $1 ORDER BY at, id", sql::WEBHOOK_COLUMNS);
    let webhooks = snapshot.query(&webhooks, &[&call_id]).await.map_err(error)?;
    snapshot.commit().await.map_err(error)?;
    Ok(Some((call, tool_calls, webhooks)))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, String> {
    row.try_get(i).map_err(error)
}

fn summary_of(r: &Row) -> Result<CallSummary, String> {
    Ok(summary(
        get(r, 0)?,
        get(r, 1)?,
        get(r, 2)?,
        get(r, 3)?,
        get(r, 4)?,
        get(r, 5)?,
        get(r, 6)?,
        get(r, 7)?,
        get(r, 8)?,
        get(r, 9)?,
    ))
}
