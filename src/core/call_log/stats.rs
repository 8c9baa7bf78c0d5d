//! Per-tool figures for the last hour (calls, failures, p50, p99), kept in
//! memory by the writer as records pass through it, so the dashboard gets
//! them without scanning the database. Each replica knows its own calls.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::record::ToolCallRecord;

/// Minutes the figures cover.
const WINDOW_MINUTES: usize = 60;
/// Duration buckets: bucket `i` holds durations below 2^((i+1)/2) µs, so
/// each is √2 wide; the last holds everything from about 23 s up.
const BUCKETS: usize = 50;

/// Tool calls of the last hour, per tool.
#[derive(Default)]
pub(crate) struct Stats {
    tools: HashMap<String, Window>,
}

/// One tool's last hour, a slot per minute.
struct Window {
    minutes: Vec<Minute>,
}

#[derive(Clone)]
struct Minute {
    /// Minutes since the epoch this slot holds; slots of older minutes are stale.
    minute: u64,
    calls: u64,
    failed: u64,
    durations: [u32; BUCKETS],
}

impl Minute {
    fn empty(minute: u64) -> Self {
        Self { minute, calls: 0, failed: 0, durations: [0; BUCKETS] }
    }
}

/// One tool's figures, as `GET /api/stats` shows them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ToolStats {
    /// The tool.
    pub tool: String,
    /// Calls in the window.
    pub calls: u64,
    /// Of them, failed (error, timeout, invalid arguments).
    pub failed: u64,
    /// `failed / calls` (0 without calls).
    pub error_rate: f64,
    /// Calls per minute over the window.
    pub per_minute: f64,
    /// Median duration, in milliseconds (to within a bucket, about ±20 %).
    pub p50_ms: f64,
    /// 99th percentile duration, in milliseconds.
    pub p99_ms: f64,
}

fn minute_of(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map(|d| d.as_secs() / 60).unwrap_or(0)
}

fn bucket_of(duration: Duration) -> usize {
    let micros = duration.as_micros().max(1) as f64;
    ((micros.log2() * 2.0) as usize).min(BUCKETS - 1)
}

/// The upper bound of bucket `i`, in milliseconds.
fn bucket_ms(i: usize) -> f64 {
    2f64.powf((i + 1) as f64 / 2.0) / 1000.0
}

impl Stats {
    /// Counts one tool call.
    pub fn add(&mut self, call: &ToolCallRecord, tool: &str) {
        let minute = minute_of(call.at);
        if !self.tools.contains_key(tool) {
            self.tools.insert(tool.to_owned(), Window { minutes: vec![Minute::empty(0); WINDOW_MINUTES] });
        }
        let window = self.tools.get_mut(tool).expect("just inserted");
        let slot = &mut window.minutes[minute as usize % WINDOW_MINUTES];
        if slot.minute != minute {
            *slot = Minute::empty(minute);
        }
        slot.calls += 1;
        slot.failed += u64::from(call.outcome.failed());
        slot.durations[bucket_of(call.duration)] += 1;
    }

    /// Every tool called in the hour before `now`, by name.
    pub fn figures(&self, now: SystemTime) -> Vec<ToolStats> {
        let current = minute_of(now);
        let mut figures: Vec<ToolStats> = self
            .tools
            .iter()
            .filter_map(|(tool, window)| {
                let live = window.minutes.iter().filter(|m| m.minute + (WINDOW_MINUTES as u64) > current);
                let (mut calls, mut failed, mut durations) = (0, 0, [0u64; BUCKETS]);
                for m in live {
                    calls += m.calls;
                    failed += m.failed;
                    durations.iter_mut().zip(m.durations).for_each(|(sum, n)| *sum += u64::from(n));
                }
                (calls > 0).then(|| ToolStats {
                    tool: tool.clone(),
                    calls,
                    failed,
                    error_rate: failed as f64 / calls as f64,
                    per_minute: calls as f64 / WINDOW_MINUTES as f64,
                    p50_ms: percentile(&durations, calls, 0.50),
                    p99_ms: percentile(&durations, calls, 0.99),
                })
            })
            .collect();
        figures.sort_by(|a, b| a.tool.cmp(&b.tool));
        figures
    }
}

/// The upper bound of the bucket holding the `q` quantile.
fn percentile(durations: &[u64; BUCKETS], calls: u64, q: f64) -> f64 {
    let rank = ((calls as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in durations.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return (bucket_ms(i) * 1000.0).round() / 1000.0;
        }
    }
    bucket_ms(BUCKETS - 1)
}

#[cfg(test)]
mod tests {
    use super::super::record::{NewToolCall, Outcome, Pending, ToolCallText};
    use super::*;

    fn add(stats: &mut Stats, tool: &str, at: SystemTime, ms: u64, outcome: Outcome) {
        let mut pending = Pending::default();
        pending.push_tool_call(NewToolCall {
            at,
            plugin: None,
            door: "webhook",
            outcome,
            duration: Duration::from_millis(ms),
            text: ToolCallText { call_id: "c", tool_call_id: "t", tool, ..ToolCallText::default() },
        });
        let record = &pending.tool_calls[0];
        stats.add(record, pending.text_of(record).tool);
    }

    #[test]
    fn the_last_hour_counts_and_older_minutes_do_not() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000 * 60);
        let mut stats = Stats::default();
        for i in 0..98 {
            add(&mut stats, "echo", now - Duration::from_secs(i % 50 * 60), 2, Outcome::Ok);
        }
        add(&mut stats, "echo", now, 900, Outcome::Timeout);
        add(&mut stats, "echo", now, 900, Outcome::Error);
        // Two hours ago: out of the window, and its slot is reused.
        add(&mut stats, "old", now - Duration::from_secs(7200), 1, Outcome::Ok);
        let figures = stats.figures(now);
        assert_eq!(figures.len(), 1, "{figures:?}");
        let echo = &figures[0];
        assert_eq!((echo.calls, echo.failed), (100, 2));
        assert!((echo.error_rate - 0.02).abs() < 1e-9);
        assert!(echo.p50_ms >= 2.0 && echo.p50_ms < 2.9, "{echo:?}");
        assert!(echo.p99_ms >= 900.0 && echo.p99_ms < 1300.0, "{echo:?}");
    }
}
