//! Duplicate tool calls: the same `tool_call_id` gets the same answer, once.
//!
//! A retried "book_appointment" must not book twice. The first call with a
//! key (the call id, the tool call id and a digest of the tool name and
//! arguments, see `dispatch`) runs; a later duplicate within the TTL gets the stored answer without
//! running the plugin, and a duplicate that arrives while the first is still
//! running waits for its answer. The store is in memory by default; with
//! several replicas behind a load balancer, Redis shares it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::OnceCell;

/// A call's answer: its JSON result, or the message the LLM sees.
pub type Answer = Result<Box<RawValue>, String>;

/// Where answers are remembered.
#[derive(Debug, Clone)]
pub struct DedupSettings {
    /// How long an answer is remembered.
    pub ttl: Duration,
    /// Most answers kept in memory (oldest dropped first).
    pub max_entries: usize,
    /// Share answers through this Redis (`redis://host:port/db`) instead of memory.
    pub redis_url: Option<String>,
}

impl Default for DedupSettings {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(600), max_entries: 100_000, redis_url: None }
    }
}

/// The duplicate detector.
pub enum Dedup {
    /// In this process only.
    Memory(MemoryStore),
    /// Shared by every replica using the same Redis.
    Redis(RedisStore),
}

impl Dedup {
    /// Builds the store `settings` asks for (connecting to Redis if named).
    pub async fn new(settings: &DedupSettings) -> Result<Self, redis::RedisError> {
        Ok(match &settings.redis_url {
            None => Dedup::Memory(MemoryStore::new(settings.ttl, settings.max_entries)),
            Some(url) => Dedup::Redis(RedisStore::connect(url, settings.ttl).await?),
        })
    }

    /// Runs `run` for the first call with `key`; returns its answer, and
    /// whether this call was a duplicate answered from the store.
    pub async fn once(&self, key: String, deadline: Instant, run: impl Future<Output = Answer>) -> (Answer, bool) {
        match self {
            Dedup::Memory(store) => store.once(key, run).await,
            Dedup::Redis(store) => store.once(key, deadline, run).await,
        }
    }
}

/// In-memory answers, each computed once even under concurrent duplicates.
pub struct MemoryStore {
    ttl: Duration,
    max_entries: usize,
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    slots: HashMap<String, Arc<OnceCell<Answer>>>,
    /// Keys in insertion order; with one TTL this is also expiry order.
    order: VecDeque<(Instant, String)>,
}

impl MemoryStore {
    /// A store remembering answers for `ttl`, at most `max_entries` of them.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self { ttl, max_entries: max_entries.max(1), inner: Mutex::default() }
    }

    async fn once(&self, key: String, run: impl Future<Output = Answer>) -> (Answer, bool) {
        let cell = {
            let mut inner = self.inner.lock().expect("dedup lock");
            let now = Instant::now();
            while let Some((at, _)) = inner.order.front() {
                if now.duration_since(*at) < self.ttl && inner.order.len() < self.max_entries {
                    break;
                }
                let (_, old) = inner.order.pop_front().expect("front exists");
                inner.slots.remove(&old);
            }
            match inner.slots.get(&key) {
                Some(cell) => cell.clone(),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    inner.slots.insert(key.clone(), cell.clone());
                    inner.order.push_back((now, key));
                    cell
                }
            }
        };
        let mut ran = false;
        let answer = cell
            .get_or_init(|| async {
                ran = true;
                run.await
            })
            .await;
        (answer.clone(), !ran)
    }
}

/// Answers shared through Redis.
pub struct RedisStore {
    connection: redis::aio::ConnectionManager,
    ttl: Duration,
}

/// Stored while the first call runs.
const PENDING: &str = "pending";
/// How long a pending marker outlives a crashed replica.
const PENDING_TTL: Duration = Duration::from_secs(30);
/// How often a waiting duplicate looks for the first call's answer.
const POLL: Duration = Duration::from_millis(10);

#[derive(Serialize, Deserialize)]
enum Stored {
    #[serde(rename = "ok")]
    Ok(Box<RawValue>),
    #[serde(rename = "error")]
    Error(String),
}

impl RedisStore {
    /// Connects to `url`.
    pub async fn connect(url: &str, ttl: Duration) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let connection = redis::aio::ConnectionManager::new(client).await?;
        Ok(Self { connection, ttl })
    }

    async fn once(&self, key: String, deadline: Instant, run: impl Future<Output = Answer>) -> (Answer, bool) {
        let key = format!("switchboard:tool-call:{key}");
        let mut conn = self.connection.clone();
        let claimed: Result<Option<String>, _> = redis::cmd("SET")
            .arg(&key)
            .arg(PENDING)
            .arg("NX")
            .arg("PX")
            .arg(PENDING_TTL.as_millis() as u64)
            .query_async(&mut conn)
            .await;
        match claimed {
            // Redis is unreachable: answering matters more than de-duplicating.
            Err(e) => {
                tracing::warn!(error = %e, "dedup store unreachable; running the call without de-duplication");
                (run.await, false)
            }
            Ok(Some(_)) => {
                let answer = run.await;
                let stored = match &answer {
                    Ok(raw) => Stored::Ok(raw.clone()),
                    Err(message) => Stored::Error(message.clone()),
                };
                let text = serde_json::to_string(&stored).expect("answers serialize");
                let saved: Result<(), _> = redis::cmd("SET")
                    .arg(&key)
                    .arg(text)
                    .arg("PX")
                    .arg(self.ttl.as_millis() as u64)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = saved {
                    tracing::warn!(error = %e, "cannot store the answer for duplicates");
                }
                (answer, false)
            }
            Ok(None) => (wait_for_answer(&mut conn, &key, deadline).await, true),
        }
    }
}

async fn wait_for_answer(conn: &mut redis::aio::ConnectionManager, key: &str, deadline: Instant) -> Answer {
    loop {
        let value: Result<Option<String>, _> = redis::cmd("GET").arg(key).query_async(conn).await;
        match value {
            Ok(Some(text)) if text != PENDING => {
                return match serde_json::from_str(&text) {
                    Ok(Stored::Ok(raw)) => Ok(raw),
                    Ok(Stored::Error(message)) => Err(message),
                    Err(e) => Err(format!("the stored answer of the first call is unreadable: {e}")),
                };
            }
            Ok(_) => {}
            Err(e) => return Err(format!("cannot read the first call's answer: {e}")),
        }
        if Instant::now() + POLL >= deadline {
            return Err("the first call with this id is still running".to_owned());
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[tokio::test]
    async fn memory_runs_once_for_sequential_and_concurrent_duplicates() {
        let store = MemoryStore::new(Duration::from_secs(60), 100);
        let runs = AtomicUsize::new(0);
        let run = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(raw(r#"{"booked":true}"#))
        };
        let (a, b) = tokio::join!(store.once("k".into(), run()), store.once("k".into(), run()));
        let (c, c_dup) = store.once("k".into(), run()).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(a.0.unwrap().get(), r#"{"booked":true}"#);
        assert_eq!(b.0.unwrap().get(), r#"{"booked":true}"#);
        assert!(a.1 != b.1, "exactly one of the concurrent calls ran");
        assert!(c_dup);
        assert_eq!(c.unwrap().get(), r#"{"booked":true}"#);
        let (_, other_dup) = store.once("other".into(), run()).await;
        assert!(!other_dup);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn memory_forgets_after_the_ttl_and_beyond_capacity() {
        let store = MemoryStore::new(Duration::from_millis(30), 2);
        let ok = || async { Ok(raw("1")) };
        assert!(!store.once("a".into(), ok()).await.1);
        assert!(store.once("a".into(), ok()).await.1);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(!store.once("a".into(), ok()).await.1, "expired");
        assert!(!store.once("b".into(), ok()).await.1);
        assert!(!store.once("c".into(), ok()).await.1);
        assert!(!store.once("a".into(), ok()).await.1, "evicted as the oldest of more than 2");
    }
}
