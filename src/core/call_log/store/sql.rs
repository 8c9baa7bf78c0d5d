//! The call log's SQL, for both databases: the schema, the merge of a
//! call's summary, and the one query built from filters ([`list_calls`]).
//! Placeholders are written `$1`; SQLite reads them as `?1`.

use crate::core::call_log::query::{CallQuery, MAX_PAGE, parse_cursor};
use crate::core::call_log::record::{Outcome, epoch_ms};

/// Which database a statement is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// The tables and indexes, created when missing. A row's `at` is in
/// microseconds since the epoch; a summary's `first_at` and `last_at` in
/// milliseconds. `{id}`, `{int}` and
/// `{real}` are filled per dialect. Each index costs every write its
/// update, so there are only those the reads need: recent calls
/// (`last_at`), by number, and one call's rows (`call_id`: the story, the
/// tool and outcome filters, which check each listed call's rows, and
/// pruning, which deletes whole calls).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    first_at {int} NOT NULL,
    last_at {int} NOT NULL,
    customer_number TEXT,
    phone_number TEXT,
    tool_calls {int} NOT NULL DEFAULT 0,
    failed {int} NOT NULL DEFAULT 0,
    status TEXT,
    ended_reason TEXT,
    duration_seconds {real}
);
CREATE INDEX IF NOT EXISTS calls_by_last_at ON calls (last_at, call_id);
CREATE INDEX IF NOT EXISTS calls_by_customer ON calls (customer_number);
CREATE INDEX IF NOT EXISTS calls_by_phone ON calls (phone_number);
CREATE TABLE IF NOT EXISTS tool_calls (
    id {id},
    at {int} NOT NULL,
    call_id TEXT NOT NULL,
    tool_call_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    plugin TEXT,
    version TEXT,
    door TEXT NOT NULL,
    outcome TEXT NOT NULL,
    duration_us {int} NOT NULL,
    arguments TEXT,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS tool_calls_by_call ON tool_calls (call_id, at);
CREATE TABLE IF NOT EXISTS webhooks (
    id {id},
    at {int} NOT NULL,
    call_id TEXT NOT NULL,
    event TEXT NOT NULL,
    http_status {int} NOT NULL,
    duration_us {int} NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS webhooks_by_call ON webhooks (call_id, at);
";

/// The schema in `dialect`.
pub(crate) fn schema(dialect: Dialect) -> String {
    let (id, int, real) = match dialect {
        Dialect::Sqlite => ("INTEGER PRIMARY KEY", "INTEGER", "REAL"),
        Dialect::Postgres => ("BIGSERIAL PRIMARY KEY", "BIGINT", "DOUBLE PRECISION"),
    };
    SCHEMA.replace("{id}", id).replace("{int}", int).replace("{real}", real)
}

/// Merges a batch's summary of a call into the stored one: a later status,
/// reason or number replaces an earlier one, counts add up.
pub(crate) fn merge_call(dialect: Dialect) -> String {
    let (least, greatest) = match dialect {
        Dialect::Sqlite => ("min", "max"),
        Dialect::Postgres => ("LEAST", "GREATEST"),
    };
    let values = match dialect {
        Dialect::Sqlite => "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        // One statement for the whole batch: a column per array.
        Dialect::Postgres => {
            "SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], \
             $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::float8[])"
        }
    };
    format!(
        "INSERT INTO calls (call_id, first_at, last_at, customer_number, phone_number, tool_calls, failed, \
         status, ended_reason, duration_seconds) {values}
         ON CONFLICT (call_id) DO UPDATE SET
           first_at = {least}(calls.first_at, excluded.first_at),
           last_at = {greatest}(calls.last_at, excluded.last_at),
           customer_number = COALESCE(excluded.customer_number, calls.customer_number),
           phone_number = COALESCE(excluded.phone_number, calls.phone_number),
           tool_calls = calls.tool_calls + excluded.tool_calls,
           failed = calls.failed + excluded.failed,
           status = COALESCE(excluded.status, calls.status),
           ended_reason = COALESCE(excluded.ended_reason, calls.ended_reason),
           duration_seconds = COALESCE(excluded.duration_seconds, calls.duration_seconds)"
    )
}

pub(crate) const TOOL_CALL_COLUMNS: &str =
    "at, call_id, tool_call_id, tool, plugin, version, door, outcome, duration_us, arguments, result, error";
pub(crate) const WEBHOOK_COLUMNS: &str = "at, call_id, event, http_status, duration_us, detail";
pub(crate) const SUMMARY_COLUMNS: &str = "call_id, first_at, last_at, customer_number, phone_number, tool_calls, failed, status, ended_reason, duration_seconds";

/// Deletes the calls last active before `$1`, whole: their rows, then
/// their summaries.
pub(crate) const PRUNE: [&str; 3] = [
    "DELETE FROM tool_calls WHERE call_id IN (SELECT call_id FROM calls WHERE last_at < $1)",
    "DELETE FROM webhooks WHERE call_id IN (SELECT call_id FROM calls WHERE last_at < $1)",
    "DELETE FROM calls WHERE last_at < $1",
];

/// A value bound to a placeholder of [`list_calls`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

/// The query for one page of `query` (one call more than the page, to tell
/// whether another page follows), with its parameters in order.
pub(crate) fn list_calls(query: &CallQuery, dialect: Dialect) -> Result<(String, Vec<Param>), String> {
    let mut params = Vec::new();
    let mut bind = |param: Param| {
        params.push(param);
        format!("${}", params.len())
    };
    let mut conditions = Vec::new();
    if let Some(number) = query.number.as_deref().filter(|n| !n.is_empty()) {
        let n = bind(Param::Text(number.to_owned()));
        conditions.push(format!("(customer_number = {n} OR phone_number = {n})"));
    }
    let from = query.from.map(epoch_ms);
    let to = query.to.map(epoch_ms);
    if let Some(from) = from {
        conditions.push(format!("last_at >= {}", bind(Param::Int(from))));
    }
    if let Some(to) = to {
        conditions.push(format!("first_at <= {}", bind(Param::Int(to))));
    }
    if let Some(cursor) = query.before.as_deref().filter(|c| !c.is_empty()) {
        let (at, id) = parse_cursor(cursor)?;
        let (at, id) = (bind(Param::Int(at)), bind(Param::Text(id)));
        conditions.push(format!("(last_at < {at} OR (last_at = {at} AND call_id < {id}))"));
    }
    let tool = query.tool.as_deref().filter(|t| !t.is_empty());
    let outcomes = match query.outcome.as_deref().filter(|o| !o.is_empty()) {
        None => None,
        Some("failed") => Some(Outcome::ALL.iter().filter(|o| o.failed()).map(|o| o.as_str()).collect::<Vec<_>>()),
        Some(name) => match Outcome::ALL.iter().find(|o| o.as_str() == name) {
            Some(outcome) => Some(vec![outcome.as_str()]),
            None => {
                let known: Vec<_> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
                return Err(format!("unknown outcome {name:?}: use one of {}, or failed", known.join(", ")));
            }
        },
    };
    // Any failure without a tool: the summary counts them already.
    let outcomes = match (tool, query.outcome.as_deref()) {
        (None, Some("failed")) => {
            conditions.push("failed > 0".to_owned());
            None
        }
        _ => outcomes,
    };
    if tool.is_some() || outcomes.is_some() {
        let mut inner = Vec::new();
        if let Some(tool) = tool {
            inner.push(format!("tool = {}", bind(Param::Text(tool.to_owned()))));
        }
        if let Some(outcomes) = outcomes {
            let list: Vec<String> = outcomes.into_iter().map(|o| bind(Param::Text(o.to_owned()))).collect();
            inner.push(format!("outcome IN ({})", list.join(", ")));
        }
        // Rows are timed in microseconds.
        if let Some(from) = from {
            inner.push(format!("at >= {}", bind(Param::Int(from.saturating_mul(1000)))));
        }
        if let Some(to) = to {
            inner.push(format!("at <= {}", bind(Param::Int(to.saturating_mul(1000).saturating_add(999)))));
        }
        // EXISTS rather than IN: the newest calls are walked by index and
        // each checked through its own rows, so a page of a common tool or
        // outcome stops after the page, however long the log.
        // SQLite is told which index: without statistics it may pick the
        // tool's, and scan every call of that tool for each call listed.
        let rows = match dialect {
            Dialect::Sqlite => "tool_calls t INDEXED BY tool_calls_by_call",
            Dialect::Postgres => "tool_calls t",
        };
        conditions
            .push(format!("EXISTS (SELECT 1 FROM {rows} WHERE t.call_id = calls.call_id AND {})", inner.join(" AND ")));
    }
    let limit = query.limit.clamp(1, MAX_PAGE) + 1;
    let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    let text = format!(
        "SELECT {SUMMARY_COLUMNS} FROM calls {filter} ORDER BY last_at DESC, call_id DESC LIMIT {}",
        bind(Param::Int(limit as i64))
    );
    Ok((placeholders(text, dialect), params))
}

/// `text` with its `$N` placeholders as `dialect` writes them.
pub(crate) fn placeholders(text: String, dialect: Dialect) -> String {
    match dialect {
        Dialect::Postgres => text,
        Dialect::Sqlite => text.replace('$', "?"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_conditions_with_their_own_parameters() {
        let query = CallQuery {
            number: Some("+1555".into()),
            tool: Some("echo".into()),
            outcome: Some("failed".into()),
            before: Some("1000:call-9".into()),
            limit: 10,
            ..CallQuery::default()
        };
        let (text, params) = list_calls(&query, Dialect::Postgres).unwrap();
        assert!(text.contains("(customer_number = $1 OR phone_number = $1)"), "{text}");
        assert!(text.contains("(last_at < $2 OR (last_at = $2 AND call_id < $3))"), "{text}");
        assert!(text.contains("tool = $4 AND outcome IN ($5, $6, $7)"), "{text}");
        assert!(text.ends_with("LIMIT $8"), "{text}");
        let any_failure = CallQuery { outcome: Some("failed".into()), ..CallQuery::default() };
        let (failed, _) = list_calls(&any_failure, Dialect::Postgres).unwrap();
        assert!(failed.contains("WHERE failed > 0 ORDER BY") && !failed.contains("FROM tool_calls"), "{failed}");
        assert_eq!(params[0], Param::Text("+1555".into()));
        assert_eq!(params[7], Param::Int(11));
        let (sqlite, _) = list_calls(&query, Dialect::Sqlite).unwrap();
        assert!(sqlite.contains("phone_number = ?1") && !sqlite.contains('$'), "{sqlite}");
    }

    #[test]
    fn an_unknown_outcome_or_cursor_is_refused_plainly() {
        let bad = CallQuery { outcome: Some("oops".into()), ..CallQuery::default() };
        assert!(list_calls(&bad, Dialect::Sqlite).unwrap_err().contains("unknown outcome \"oops\""));
        let bad = CallQuery { before: Some("nope".into()), ..CallQuery::default() };
        assert!(list_calls(&bad, Dialect::Sqlite).unwrap_err().contains("not a page cursor"));
    }
}
