//! What the call log keeps and where: [`CallLogSettings`].

use std::path::PathBuf;

use super::store::CallLogDatabase;

/// Where the call log is kept and what goes in it.
///
/// ```
/// let settings = switchboard::CallLogSettings {
///     capture_results: false,
///     ..switchboard::CallLogSettings::sqlite("/var/lib/switchboard")
/// };
/// assert_eq!(settings.retention_days, 7);
/// ```
#[derive(Debug, Clone)]
pub struct CallLogSettings {
    /// The database.
    pub database: CallLogDatabase,
    /// Records older than this many days are deleted (checked hourly); 0
    /// keeps them forever. Default 7.
    pub retention_days: u32,
    /// Keep each tool call's arguments (default on).
    pub capture_arguments: bool,
    /// Keep each tool call's result (default on). Errors are always kept.
    pub capture_results: bool,
    /// Keep the end-of-call report's summary, analysis and transcript
    /// (default on); its reason and length are always kept.
    pub capture_reports: bool,
    /// Arguments, results and errors longer than this are cut (default 16 KiB).
    pub max_value_bytes: usize,
    /// Records waiting to be written; more are dropped (default 10,000;
    /// and at most 64 MiB of their text).
    pub queue_capacity: usize,
}

impl CallLogSettings {
    /// The log in embedded SQLite, in `data_dir`/calls.sqlite3, with the defaults.
    pub fn sqlite(data_dir: impl Into<PathBuf>) -> Self {
        Self::with(CallLogDatabase::Sqlite(data_dir.into()))
    }

    /// The log in PostgreSQL at `url`, with the defaults.
    pub fn postgres(url: impl Into<String>) -> Self {
        Self::with(CallLogDatabase::Postgres(url.into()))
    }

    fn with(database: CallLogDatabase) -> Self {
        Self {
            database,
            retention_days: 7,
            capture_arguments: true,
            capture_results: true,
            capture_reports: true,
            max_value_bytes: 16 << 10,
            queue_capacity: 10_000,
        }
    }
}
