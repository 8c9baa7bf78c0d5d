//! Duplicate tool calls: the same `tool_call_id` gets the same answer, once.
//!
//! A retried "book_appointment" must not book twice. The first call with a
//! [`DedupKey`] (a digest of the call id, the tool call id, the tool name
//! and the arguments) runs; a later duplicate within the TTL gets the stored answer without
//! running the plugin, and a duplicate that arrives while the first is still
//! running waits for its answer. The store is in memory by default; with
//! several replicas behind a load balancer, Redis shares it, and a call whose
//! replica dies while running it is taken over by a waiting duplicate within
//! a second (see [`RedisStore`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::OnceCell;

/// A call's answer: its JSON result, or the message the LLM sees.
pub type Answer = Result<Box<RawValue>, String>;

/// What identifies a call for de-duplication: the first 16 bytes of a
/// SHA-256 over the platform's call id, the tool call id, the tool's name
/// and its arguments. A retry repeats all four; a model that reuses short
/// ids (`call_0`) across turns asks something else, and runs. Fixed-size, so
/// the store keeps and hashes 16 bytes per answer, whatever the ids.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DedupKey([u8; 16]);

impl DedupKey {
    /// The key of `tool` called with `arguments` as `tool_call_id` in call `call_id`.
    pub fn new(call_id: &str, tool_call_id: &str, tool: &str, arguments: &str) -> Self {
        use sha2::{Digest, Sha256};
        let mut digest = Sha256::new();
        // Each part after its length, so no two different calls digest the same bytes.
        for part in [call_id, tool_call_id, tool, arguments] {
            digest.update((part.len() as u64).to_le_bytes());
            digest.update(part);
        }
        let mut key = [0; 16];
        key.copy_from_slice(&digest.finalize()[..16]);
        Self(key)
    }

    /// The key's Redis name.
    fn redis_key(&self) -> String {
        format!("switchboard:tool-call:{}", hex::encode(self.0))
    }
}

impl std::fmt::Debug for DedupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DedupKey({})", hex::encode(self.0))
    }
}

/// Where answers are remembered.
#[derive(Debug, Clone)]
pub struct DedupSettings {
    /// How long an answer is remembered.
    pub ttl: Duration,
    /// Most answers kept in memory (oldest dropped first).
    pub max_entries: usize,
    /// Most bytes of answers (with their keys) kept in memory, oldest
    /// dropped first. Default 64 MiB.
    pub max_bytes: usize,
    /// Share answers through this Redis (`redis://host:port/db`) instead of memory.
    pub redis_url: Option<String>,
}

impl Default for DedupSettings {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(600), max_entries: 100_000, max_bytes: 64 << 20, redis_url: None }
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
            None => Dedup::Memory(MemoryStore::new(settings.ttl, settings.max_entries, settings.max_bytes)),
            Some(url) => Dedup::Redis(RedisStore::connect(url, settings.ttl).await?),
        })
    }

    /// Runs `run` for the first call with `key`; returns its answer, and
    /// whether this call was a duplicate answered from the store.
    pub async fn once(&self, key: DedupKey, deadline: Instant, run: impl Future<Output = Answer>) -> (Answer, bool) {
        match self {
            Dedup::Memory(store) => store.once(key, run).await,
            // Boxed: its round trips to Redis are large futures; held inline
            // they would make every call's future as large, with the
            // in-memory store too.
            Dedup::Redis(store) => Box::pin(store.once(key, deadline, run)).await,
        }
    }
}

/// In-memory answers, each computed once even under concurrent duplicates.
pub struct MemoryStore {
    ttl: Duration,
    max_entries: usize,
    max_bytes: usize,
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    slots: HashMap<DedupKey, Slot>,
    /// Keys in insertion order; with one TTL this is also expiry order.
    order: VecDeque<(Instant, DedupKey)>,
    /// Bytes of the answers kept, with their keys ([`Slot::bytes`] summed).
    bytes: usize,
}

/// One key's answer, or the place a running first call will put it.
struct Slot {
    cell: Arc<OnceCell<Answer>>,
    /// What the answer and its key take, once there is an answer (0 before).
    bytes: usize,
}

/// What keeping one answer costs besides its text: the map and queue
/// entries with their keys, and the cell (an estimate).
const SLOT_OVERHEAD: usize = 160;

/// Answers the in-memory store makes room for at start: at most its
/// `max_entries`, so a store sized for a busy server does not grow its
/// table (rehashing it, and touching fresh pages) while it fills.
const PRESIZED_ENTRIES: usize = 1 << 17;

impl MemoryInner {
    /// Drops the oldest answer; false when there is none.
    fn drop_oldest(&mut self) -> bool {
        let Some((_, old)) = self.order.pop_front() else { return false };
        if let Some(slot) = self.slots.remove(&old) {
            self.bytes -= slot.bytes;
        }
        true
    }
}

impl MemoryStore {
    /// A store remembering answers for `ttl`, at most `max_entries` of them
    /// and at most `max_bytes` of answers and keys.
    pub fn new(ttl: Duration, max_entries: usize, max_bytes: usize) -> Self {
        let max_entries = max_entries.max(1);
        let presized = max_entries.min(PRESIZED_ENTRIES);
        let inner =
            MemoryInner { slots: HashMap::with_capacity(presized), order: VecDeque::with_capacity(presized), bytes: 0 };
        Self { ttl, max_entries, max_bytes, inner: Mutex::new(inner) }
    }

    async fn once(&self, key: DedupKey, run: impl Future<Output = Answer>) -> (Answer, bool) {
        let cell = {
            let mut inner = self.inner.lock().expect("dedup lock");
            let now = Instant::now();
            while let Some((at, _)) = inner.order.front() {
                if now.duration_since(*at) < self.ttl && inner.order.len() < self.max_entries {
                    break;
                }
                inner.drop_oldest();
            }
            match inner.slots.get(&key) {
                Some(slot) => slot.cell.clone(),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    inner.slots.insert(key, Slot { cell: cell.clone(), bytes: 0 });
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
        if ran {
            self.count(key, &cell, answer);
        }
        (answer.clone(), !ran)
    }

    /// Counts a new answer's bytes, then drops the oldest answers while the
    /// store holds more than `max_bytes`. An answer larger than that alone is
    /// not kept (its duplicates run again).
    fn count(&self, key: DedupKey, cell: &Arc<OnceCell<Answer>>, answer: &Answer) {
        let bytes = SLOT_OVERHEAD
            + match answer {
                Ok(result) => result.get().len(),
                Err(message) => message.len(),
            };
        let mut inner = self.inner.lock().expect("dedup lock");
        // The slot may be gone already (expired or dropped while the call ran).
        match inner.slots.get_mut(&key) {
            Some(slot) if Arc::ptr_eq(&slot.cell, cell) => slot.bytes = bytes,
            _ => return,
        }
        if bytes > self.max_bytes {
            // Its place in `order` stays; dropping it later finds nothing (or a newer slot, early).
            inner.slots.remove(&key);
            return;
        }
        inner.bytes += bytes;
        while inner.bytes > self.max_bytes && inner.drop_oldest() {}
    }
}

/// Answers shared through Redis.
///
/// The first replica to see a key claims it with a short lease (`SET NX PX`,
/// holding `pending:` and a token of its own) and renews the lease while the
/// call runs, only while the claim is still its own (compare-and-set). A
/// duplicate polls for the answer; if the claim lapses, its owner stopped
/// (killed, crashed, or its request dropped), and the duplicate claims the
/// call and runs it itself, at once rather than at its deadline. The
/// answer replaces the claim for the TTL; the first answer stored wins.
pub struct RedisStore {
    connection: redis::aio::ConnectionManager,
    ttl: Duration,
}

/// A claim's value: this prefix, then its owner's token. (Replicas before
/// leases stored `pending` alone, for 30 s; they are waited for, as then.)
const PENDING: &str = "pending";
/// How long a claim lives without renewal: how long a duplicate may wait
/// for a call whose replica died before it takes the call over.
const LEASE: Duration = Duration::from_millis(1000);
/// How often a running call's replica renews its claim.
const RENEW_EVERY: Duration = Duration::from_millis(300);
/// A waiting duplicate takes over a lapsed claim only with this much time
/// left before its own deadline. With less it would most likely time out
/// (and its timeout be stored as the answer); it answers that the first call
/// is still running instead, and the platform's next retry runs it.
const TAKEOVER_MIN_LEFT: Duration = Duration::from_millis(1000);
/// How often a waiting duplicate looks for the first call's answer.
const POLL: Duration = Duration::from_millis(10);
/// The longest a command may take before Redis counts as unreachable. (While
/// the connection is re-established, commands otherwise wait for it.)
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Extends the lease `KEYS[1]` if it still holds `ARGV[1]` (this owner's claim).
const RENEW_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// Stores answer `ARGV[1]` for `ARGV[2]` ms unless an answer is there
/// already: over a claim (this owner's, or a duplicate's that took the call
/// over) or nothing (a lease that lapsed while the call ran).
const STORE_SCRIPT: &str = r"
local held = redis.call('GET', KEYS[1])
if held == false or string.sub(held, 1, 7) == 'pending' then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0";

#[derive(Serialize, Deserialize)]
enum Stored {
    #[serde(rename = "ok")]
    Ok(Box<RawValue>),
    #[serde(rename = "error")]
    Error(String),
}

/// What a waiting duplicate ends with.
enum Waited {
    /// The first call's answer (or why there is none).
    Answer(Answer),
    /// The first call's claim lapsed and this duplicate claimed the call.
    Claimed,
}

impl RedisStore {
    /// Connects to `url`.
    pub async fn connect(url: &str, ttl: Duration) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        // Reconnects at least every second while Redis is away (the default
        // backs off to a minute), and never waits long for a connection.
        let config =
            redis::aio::ConnectionManagerConfig::new().set_connection_timeout(REDIS_TIMEOUT * 2).set_max_delay(1000);
        let connection = redis::aio::ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { connection, ttl })
    }

    async fn once(&self, key: DedupKey, deadline: Instant, run: impl Future<Output = Answer>) -> (Answer, bool) {
        let key = key.redis_key();
        let claim = format!("{PENDING}:{}", owner_token());
        let mut conn = self.connection.clone();
        match try_claim(&mut conn, &key, &claim).await {
            // Redis is unreachable: answering matters more than de-duplicating.
            Err(e) => {
                tracing::warn!(error = %e, "dedup store unreachable; running the call without de-duplication");
                return (run.await, false);
            }
            Ok(true) => {}
            Ok(false) => match wait_for_answer(&mut conn, &key, &claim, deadline).await {
                Waited::Answer(answer) => return (answer, true),
                Waited::Claimed => {
                    tracing::warn!(key = %key, "the first call with this id stopped without an answer (its replica died?); running it here");
                }
            },
        }
        let answer = {
            let run = std::pin::pin!(run);
            let renewing = std::pin::pin!(renew(conn.clone(), &key, &claim));
            match futures::future::select(run, renewing).await {
                futures::future::Either::Left((answer, _)) => answer,
                // The claim is someone else's now: finish anyway (the call may
                // have done half its work), without renewing theirs.
                futures::future::Either::Right(((), run)) => run.await,
            }
        };
        self.store(&mut conn, &key, &answer).await;
        (answer, false)
    }

    /// Stores `answer` for duplicates, unless one is stored already.
    async fn store(&self, conn: &mut redis::aio::ConnectionManager, key: &str, answer: &Answer) {
        let stored = match answer {
            Ok(raw) => Stored::Ok(raw.clone()),
            Err(message) => Stored::Error(message.clone()),
        };
        let text = serde_json::to_string(&stored).expect("answers serialize");
        let store =
            redis::cmd("EVAL").arg(STORE_SCRIPT).arg(1).arg(key).arg(text).arg(self.ttl.as_millis() as u64).clone();
        let saved: Result<i64, _> = query(conn, &store).await;
        match saved {
            Ok(1) => {}
            Ok(_) => {
                tracing::info!(key = %key, "another replica stored this call's answer first; duplicates get that one")
            }
            Err(e) => tracing::warn!(error = %e, "cannot store the answer for duplicates"),
        }
    }
}

/// Runs `command`, or fails when Redis does not answer within [`REDIS_TIMEOUT`].
async fn query<T: redis::FromRedisValue>(
    conn: &mut redis::aio::ConnectionManager,
    command: &redis::Cmd,
) -> redis::RedisResult<T> {
    match tokio::time::timeout(REDIS_TIMEOUT, command.query_async(conn)).await {
        Ok(result) => result,
        Err(_) => Err(redis::RedisError::from((
            redis::ErrorKind::IoError,
            "no answer from Redis",
            format!("within {REDIS_TIMEOUT:?}"),
        ))),
    }
}

/// A token naming one claim: random per process, counted within it.
fn owner_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let process = PROCESS.get_or_init(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish()
    });
    format!("{process:016x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Claims `key` with `claim` for one lease, if nobody holds it.
async fn try_claim(conn: &mut redis::aio::ConnectionManager, key: &str, claim: &str) -> redis::RedisResult<bool> {
    let set = redis::cmd("SET").arg(key).arg(claim).arg("NX").arg("PX").arg(LEASE.as_millis() as u64).clone();
    Ok(query::<Option<String>>(conn, &set).await?.is_some())
}

/// Renews `claim` on `key` every [`RENEW_EVERY`] while it is still there;
/// returns when it is not (the lease lapsed and another replica claimed the
/// call, or its answer is stored). Redis errors are logged and retried.
async fn renew(mut conn: redis::aio::ConnectionManager, key: &str, claim: &str) {
    let renew = redis::cmd("EVAL").arg(RENEW_SCRIPT).arg(1).arg(key).arg(claim).arg(LEASE.as_millis() as u64).clone();
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match query::<i64>(&mut conn, &renew).await {
            Ok(1) => {}
            Ok(_) => {
                tracing::warn!(key = %key, "lost the claim on a running tool call (its lease lapsed); another replica may run it too");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew the claim on a running tool call"),
        }
    }
}

/// Polls `key` for the first call's answer until `deadline`; claims the call
/// with `claim` when the first call's claim lapses with time left to run it.
async fn wait_for_answer(
    conn: &mut redis::aio::ConnectionManager,
    key: &str,
    claim: &str,
    deadline: Instant,
) -> Waited {
    let get = redis::cmd("GET").arg(key).clone();
    loop {
        let value: Result<Option<String>, _> = query(conn, &get).await;
        // The first call's claim lapsed (and there was too little time left here to run it).
        let lapsed = matches!(value, Ok(None));
        match value {
            Ok(Some(text)) if !text.starts_with(PENDING) => {
                return Waited::Answer(match serde_json::from_str(&text) {
                    Ok(Stored::Ok(raw)) => Ok(raw),
                    Ok(Stored::Error(message)) => Err(message),
                    Err(e) => Err(format!("the stored answer of the first call is unreadable: {e}")),
                });
            }
            // Still running, on a replica that renews its claim.
            Ok(Some(_)) => {}
            Ok(None) if deadline.saturating_duration_since(Instant::now()) >= TAKEOVER_MIN_LEFT => {
                match try_claim(conn, key, claim).await {
                    Ok(true) => return Waited::Claimed,
                    Ok(false) => {} // another duplicate claimed it first
                    Err(e) => return Waited::Answer(Err(format!("cannot read the first call's answer: {e}"))),
                }
            }
            Ok(None) => {}
            Err(e) => return Waited::Answer(Err(format!("cannot read the first call's answer: {e}"))),
        }
        if Instant::now() + POLL >= deadline {
            return Waited::Answer(Err(if lapsed {
                "the first call with this id stopped without an answer; try again".to_owned()
            } else {
                "the first call with this id is still running".to_owned()
            }));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    impl From<&str> for DedupKey {
        fn from(id: &str) -> Self {
            DedupKey::new("call", id, "tool", "{}")
        }
    }

    #[test]
    fn keys_differ_whenever_a_part_differs_and_parts_cannot_run_together() {
        let key = DedupKey::new("call-1", "t-1", "book", r#"{"at":9}"#);
        assert_eq!(key, DedupKey::new("call-1", "t-1", "book", r#"{"at":9}"#));
        assert_ne!(key, DedupKey::new("call-2", "t-1", "book", r#"{"at":9}"#));
        assert_ne!(key, DedupKey::new("call-1", "t-2", "book", r#"{"at":9}"#));
        assert_ne!(key, DedupKey::new("call-1", "t-1", "cancel", r#"{"at":9}"#));
        assert_ne!(key, DedupKey::new("call-1", "t-1", "book", r#"{"at":10}"#));
        assert_ne!(DedupKey::new("ab", "c", "t", "{}"), DedupKey::new("a", "bc", "t", "{}"));
        assert!(key.redis_key().starts_with("switchboard:tool-call:") && key.redis_key().len() == 22 + 32);
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[tokio::test]
    async fn memory_runs_once_for_sequential_and_concurrent_duplicates() {
        let store = MemoryStore::new(Duration::from_secs(60), 100, 1 << 20);
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
        let store = MemoryStore::new(Duration::from_millis(30), 2, 1 << 20);
        let ok = || async { Ok(raw("1")) };
        assert!(!store.once("a".into(), ok()).await.1);
        assert!(store.once("a".into(), ok()).await.1);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(!store.once("a".into(), ok()).await.1, "expired");
        assert!(!store.once("b".into(), ok()).await.1);
        assert!(!store.once("c".into(), ok()).await.1);
        assert!(!store.once("a".into(), ok()).await.1, "evicted as the oldest of more than 2");
    }

    #[tokio::test]
    async fn memory_keeps_at_most_max_bytes_of_answers() {
        let answer = |size: usize| async move { Ok(raw(&format!("\"{}\"", "x".repeat(size - 2)))) };
        let slot = |size: usize| SLOT_OVERHEAD + size;
        let store = MemoryStore::new(Duration::from_secs(60), 100, slot(1000) * 3);
        for key in ["a", "b", "c"] {
            assert!(!store.once(key.into(), answer(1000)).await.1);
        }
        assert_eq!(store.inner.lock().unwrap().bytes, slot(1000) * 3);
        assert!(store.once("a".into(), answer(1000)).await.1, "three fit");
        // A fourth answer makes room by dropping the oldest.
        assert!(!store.once("d".into(), answer(1000)).await.1);
        assert!(!store.once("a".into(), answer(1000)).await.1, "dropped for bytes");
        // An answer larger than the whole store is answered, not kept.
        let (big, duplicate) = store.once("big".into(), answer(slot(1000) * 4)).await;
        assert!(big.is_ok() && !duplicate);
        assert!(!store.once("big".into(), answer(10)).await.1, "not kept");
        assert!(store.once("a".into(), answer(1000)).await.1, "nor did it push the others out");
        let inner = store.inner.lock().unwrap();
        assert!(inner.bytes <= slot(1000) * 3, "{}", inner.bytes);
        assert_eq!(inner.bytes, inner.slots.values().map(|s| s.bytes).sum::<usize>());
    }

    /// A real `redis-server` on a free loopback port, stopped when dropped
    /// (as tests/it/common starts one; `apt-get install redis-server`).
    struct Redis {
        url: String,
        child: std::process::Child,
    }

    impl Redis {
        async fn start() -> Self {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let mut child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server must be installed for the Redis tests (apt-get install redis-server)");
            for _ in 0..200 {
                if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                    return Self { url: format!("redis://127.0.0.1:{port}/0"), child };
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("redis-server did not start on port {port}");
        }

        /// A replica's store: a connection of its own.
        async fn replica(&self) -> RedisStore {
            RedisStore::connect(&self.url, Duration::from_secs(60)).await.unwrap()
        }

        /// A plain connection, to look at (and tamper with) what replicas store.
        async fn raw(&self) -> redis::aio::MultiplexedConnection {
            redis::Client::open(self.url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap()
        }
    }

    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Where key `k` of the tests lives in Redis.
    fn stored() -> String {
        DedupKey::from("k").redis_key()
    }

    async fn get(conn: &mut redis::aio::MultiplexedConnection) -> Option<String> {
        redis::cmd("GET").arg(stored()).query_async(conn).await.unwrap()
    }

    /// Polls until `k` holds a claim.
    async fn claimed(conn: &mut redis::aio::MultiplexedConnection) {
        for _ in 0..200 {
            if get(conn).await.is_some_and(|v| v.starts_with("pending:")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("never claimed");
    }

    fn in_9s() -> Instant {
        Instant::now() + Duration::from_secs(9)
    }

    #[tokio::test]
    async fn redis_a_call_longer_than_its_lease_keeps_its_claim_while_it_runs() {
        let redis = Redis::start().await;
        let (a, b) = (redis.replica().await, redis.replica().await);
        let runs = AtomicUsize::new(0);
        let run = |ms: u64| {
            let runs = &runs;
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(raw(r#"{"booked":1}"#))
            }
        };
        // 2.5 leases long: without renewals, b would take it over and run it again.
        let (first, duplicate) = tokio::join!(a.once("k".into(), in_9s(), run(2500)), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            b.once("k".into(), in_9s(), run(10)).await
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(!first.1 && duplicate.1);
        assert_eq!(duplicate.0.unwrap().get(), r#"{"booked":1}"#);
        let stored = get(&mut redis.raw().await).await.unwrap();
        assert_eq!(stored, r#"{"ok":{"booked":1}}"#, "the answer replaced the claim");
    }

    #[tokio::test]
    async fn redis_a_duplicate_takes_over_within_a_lease_when_the_owner_dies() {
        let redis = Redis::start().await;
        let (a, b, c) = (redis.replica().await, redis.replica().await, redis.replica().await);
        let mut conn = redis.raw().await;
        // a claims the call and never answers; killing its task stops its renewals, as a killed replica's.
        let owner = tokio::spawn(async move { a.once("k".into(), in_9s(), std::future::pending()).await });
        claimed(&mut conn).await;
        tokio::time::sleep(RENEW_EVERY + Duration::from_millis(100)).await; // renewed at least once
        owner.abort();
        let killed = Instant::now();
        let runs = AtomicUsize::new(0);
        let (answer, duplicate) = b
            .once("k".into(), in_9s(), async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(raw(r#"{"booked":2}"#))
            })
            .await;
        let waited = killed.elapsed();
        assert!(!duplicate, "b ran it");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(answer.unwrap().get(), r#"{"booked":2}"#);
        assert!(waited <= LEASE + Duration::from_millis(300), "took over after {waited:?}");
        // Later duplicates get b's answer.
        let (again, duplicate) = c.once("k".into(), in_9s(), async { Ok(raw("3")) }).await;
        assert!(duplicate);
        assert_eq!(again.unwrap().get(), r#"{"booked":2}"#);
    }

    #[tokio::test]
    async fn redis_a_replica_renews_only_its_own_claim_and_never_overwrites_an_answer() {
        let redis = Redis::start().await;
        let (a, b) = (redis.replica().await, redis.replica().await);
        let mut conn = redis.raw().await;
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let owner = tokio::spawn(async move {
            a.once("k".into(), in_9s(), async {
                let _ = finished.await;
                Ok(raw(r#""mine""#))
            })
            .await
        });
        claimed(&mut conn).await;
        // As if a's lease lapsed (a stalled) and another replica claimed the call.
        let _: () = redis::cmd("SET")
            .arg(stored())
            .arg("pending:other")
            .arg("PX")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        tokio::time::sleep(LEASE + Duration::from_millis(200)).await;
        assert_eq!(get(&mut conn).await, None, "a did not renew the other replica's claim");
        // The other replica answers first; a, finishing later, keeps it.
        let _: () = redis::cmd("SET").arg(stored()).arg(r#"{"ok":"theirs"}"#).query_async(&mut conn).await.unwrap();
        finish.send(()).unwrap();
        let (mine, duplicate) = owner.await.unwrap();
        assert!(!duplicate);
        assert_eq!(mine.unwrap().get(), r#""mine""#);
        assert_eq!(get(&mut conn).await.unwrap(), r#"{"ok":"theirs"}"#, "the first answer stays");
        let (theirs, _) = b.once("k".into(), in_9s(), async { Ok(raw("0")) }).await;
        assert_eq!(theirs.unwrap().get(), r#""theirs""#);
    }

    #[tokio::test]
    async fn redis_a_duplicate_near_its_deadline_does_not_take_over() {
        let redis = Redis::start().await;
        let b = redis.replica().await;
        let mut conn = redis.raw().await;
        // A dead replica's claim, lapsing in 200 ms; b has 600 ms left: too little to run the call.
        let _: () = redis::cmd("SET")
            .arg(stored())
            .arg("pending:dead")
            .arg("PX")
            .arg(200)
            .query_async(&mut conn)
            .await
            .unwrap();
        let ran = AtomicUsize::new(0);
        let deadline = Instant::now() + Duration::from_millis(600);
        let (answer, _) = b
            .once("k".into(), deadline, async {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok(raw("1"))
            })
            .await;
        assert_eq!(answer.unwrap_err(), "the first call with this id stopped without an answer; try again");
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(get(&mut conn).await, None, "left for the next retry");
    }

    #[tokio::test]
    async fn redis_gone_runs_the_call_without_de_duplication() {
        let redis = Redis::start().await;
        let a = redis.replica().await;
        drop(redis);
        // The first command finds the connection broken; the next ones wait
        // for a reconnection, at most REDIS_TIMEOUT, then run anyway.
        for _ in 0..3 {
            let started = Instant::now();
            let (answer, duplicate) = a.once("k".into(), in_9s(), async { Ok(raw("1")) }).await;
            assert!(answer.is_ok() && !duplicate);
            assert!(started.elapsed() < REDIS_TIMEOUT + Duration::from_millis(300), "{:?}", started.elapsed());
        }
    }
}
