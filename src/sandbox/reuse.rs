//! Instances that serve several calls, for plugins that opt in with
//! `max_instance_reuse = N` in their manifest.
//!
//! By default every call gets a fresh instance, so nothing one caller leaves
//! in memory can reach the next. Instantiating is most of a short call's
//! cost, though, and a plugin whose author accepts that its memory and
//! globals carry over from one call to the next may let an instance serve
//! up to N calls, one at a time.
//!
//! An instance goes back to its plugin version's idle list only after a call
//! that returned (a tool error is a return); one whose call trapped, timed
//! out, ran out of memory or fuel, or was cancelled is dropped with its
//! store. Idle instances are dropped after their idle time, when their plugin
//! version is unloaded (a reload never hands a call to an old version's
//! instance: each version has its own list), and whenever the instance pool
//! has no room for a call ([`super::pool`]). Each call still gets its own
//! deadline, fuel, memory cap, log and outbound-request budget: the plugin's
//! code sets those up per call (`component.rs`), this module only keeps the
//! instances.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::pool::{InstancePool, Reclaim};

/// How long an idle instance is kept by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A plugin's reuse settings (`max_instance_reuse`, `instance_idle_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reuse {
    /// Calls one instance serves before it is dropped; 1 means a fresh
    /// instance per call.
    pub max_calls: u32,
    /// How long an instance may wait idle before it is dropped.
    pub idle_timeout: Duration,
}

impl Default for Reuse {
    fn default() -> Self {
        Self { max_calls: 1, idle_timeout: DEFAULT_IDLE_TIMEOUT }
    }
}

impl Reuse {
    /// Whether an instance may serve more than one call.
    pub fn enabled(&self) -> bool {
        self.max_calls > 1
    }
}

/// One plugin version's idle instances. Cheap to clone; the instances are
/// dropped with the last clone.
pub(crate) struct Idle<T> {
    list: Arc<IdleList<T>>,
}

impl<T> Clone for Idle<T> {
    fn clone(&self) -> Self {
        Self { list: self.list.clone() }
    }
}

/// An instance out of the idle list (or new), serving one call.
pub(crate) struct Lease<T> {
    /// The instance.
    pub instance: T,
    /// Calls it served before this one.
    served: u32,
}

impl<T> Lease<T> {
    /// A new instance, about to serve its first call.
    pub fn fresh(instance: T) -> Self {
        Self { instance, served: 0 }
    }

    /// Whether the instance served a call before this one.
    #[cfg(test)]
    pub fn is_reused(&self) -> bool {
        self.served > 0
    }
}

struct IdleList<T> {
    reuse: Reuse,
    entries: Mutex<Vec<Entry<T>>>,
}

struct Entry<T> {
    lease: Lease<T>,
    since: Instant,
}

impl<T: Send + 'static> Idle<T> {
    /// An idle list for instances under `reuse`, which the instance pool
    /// may empty when it is full; `None` when `reuse` is one call per
    /// instance. Idle instances past their time are dropped by a task on the
    /// current tokio runtime (and, without one, when the list is next used).
    pub fn new(reuse: Reuse, pool: &InstancePool) -> Option<Self> {
        if !reuse.enabled() {
            return None;
        }
        let list = Arc::new(IdleList { reuse, entries: Mutex::new(Vec::new()) });
        let weak: Weak<dyn Reclaim> = Arc::downgrade(&list) as Weak<IdleList<T>>;
        pool.register_idle(weak);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&list)));
        }
        Some(Self { list })
    }

    /// The most recently used idle instance still within its idle time.
    pub fn take(&self) -> Option<Lease<T>> {
        let (taken, expired) = {
            let mut entries = self.list.lock();
            let expired = self.list.split_expired(&mut entries);
            (entries.pop().map(|entry| entry.lease), expired)
        };
        drop(expired);
        taken
    }

    /// Returns an instance after a call that returned; it is dropped instead
    /// if it has served its calls.
    pub fn put(&self, mut lease: Lease<T>) {
        lease.served += 1;
        if lease.served >= self.list.reuse.max_calls {
            return;
        }
        self.list.lock().push(Entry { lease, since: Instant::now() });
    }

    /// How many instances are idle.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.list.lock().len()
    }
}

impl<T> IdleList<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry<T>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the entries idle for longer than the idle time out of `entries`
    /// (the oldest are first), for the caller to drop outside the lock.
    fn split_expired(&self, entries: &mut Vec<Entry<T>>) -> Vec<Entry<T>> {
        let now = Instant::now();
        let keep_from = entries.partition_point(|entry| now.duration_since(entry.since) >= self.reuse.idle_timeout);
        entries.drain(..keep_from).collect()
    }
}

impl<T: Send> Reclaim for IdleList<T> {
    fn drop_idle(&self) -> usize {
        let all = std::mem::take(&mut *self.lock());
        all.len()
    }
}

/// Drops `list`'s expired instances every quarter of its idle time, until
/// the list is gone.
async fn sweep<T: Send + 'static>(list: Weak<IdleList<T>>) {
    let period = match list.upgrade() {
        Some(list) => (list.reuse.idle_timeout / 4).max(Duration::from_millis(10)),
        None => return,
    };
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(list) = list.upgrade() else { return };
        let expired = list.split_expired(&mut list.lock());
        drop(expired);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reuse(max_calls: u32, idle_ms: u64) -> Reuse {
        Reuse { max_calls, idle_timeout: Duration::from_millis(idle_ms) }
    }

    #[test]
    fn one_call_per_instance_keeps_no_list() {
        assert!(Idle::<u32>::new(Reuse::default(), &InstancePool::new()).is_none());
    }

    #[test]
    fn an_instance_serves_at_most_its_calls_and_the_latest_is_taken_first() {
        let idle = Idle::new(reuse(3, 60_000), &InstancePool::new()).unwrap();
        idle.put(Lease::fresh("a"));
        idle.put(Lease::fresh("b"));
        let b = idle.take().unwrap();
        assert_eq!((b.instance, b.is_reused()), ("b", true));
        idle.put(b);
        let b = idle.take().unwrap();
        idle.put(b);
        assert_eq!(idle.take().unwrap().instance, "a", "b served its 3 calls and was dropped");
        assert!(idle.take().is_none());
    }

    #[test]
    fn instances_idle_past_their_time_are_not_taken() {
        let idle = Idle::new(reuse(100, 20), &InstancePool::new()).unwrap();
        idle.put(Lease::fresh(1));
        std::thread::sleep(Duration::from_millis(40));
        idle.put(Lease::fresh(2));
        assert_eq!(idle.take().unwrap().instance, 2);
        assert!(idle.take().is_none(), "1 expired");
    }

    #[tokio::test]
    async fn the_sweeper_drops_expired_instances_without_a_call() {
        let idle = Idle::new(reuse(100, 20), &InstancePool::new()).unwrap();
        idle.put(Lease::fresh(1));
        let started = Instant::now();
        while idle.len() > 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "never swept");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
