//! Admission to the instance pool: a call waits for room in the pool, within
//! its own time, instead of failing (and failing other plugins' calls) when
//! the pool is full.
//!
//! The pooling allocator has fixed numbers of slots (set in `engine.rs`):
//! component instances and fiber stacks ([`POOL_COMPONENT_INSTANCES`]), core
//! instances, memories and tables ([`POOL_CORE_INSTANCES`] each). A call that
//! finds no slot fails with "maximum concurrent limit ... reached", whoever
//! filled the pool. So every instantiation first takes [`PLACES`] from one
//! semaphore, as many as the slots it will use of the scarcest kind: its
//! *cost*, at least [`MIN_COST`]. Places are fewer than slots, so the pool
//! itself is never full; a call that gets no place within its time fails
//! with [`ToolFailure::Busy`].
//!
//! A plugin's `max_concurrent_calls` (by default a quarter of the places, at
//! its cost) keeps one plugin from taking them all (`plugins/snapshot.rs`).
//!
//! An idle instance kept for reuse ([`super::reuse`]) keeps its places. When
//! a call finds no room, every idle instance is dropped first, so instances
//! kept for later never make a call wait.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::wasmparser::{Instance, Parser, Payload};

use crate::types::{Limits, ToolFailure};

/// Component instances, and fiber stacks (one per call running), in the
/// pool (`engine.rs` sizes the pooling allocator with these).
pub(super) const POOL_COMPONENT_INSTANCES: u32 = 1_500;
/// Core instances, and memories and tables, in the pool.
pub(super) const POOL_CORE_INSTANCES: u32 = 3_000;
/// Most core instances one component may be made of.
pub(super) const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;

/// Places, in core-instance slots: fewer than the pool has, for a margin.
pub const PLACES: u32 = POOL_CORE_INSTANCES - POOL_CORE_INSTANCES / 15;

/// The least a call costs: its component instance and its fiber stack come
/// from pools half the size of the core-instance pool.
pub const MIN_COST: u32 = POOL_CORE_INSTANCES.div_ceil(POOL_COMPONENT_INSTANCES);

// Every call takes MIN_COST places or more, so the component instances and
// stacks it needs come free before the places do: the pool is never full.
const _: () = {
    assert!(PLACES < POOL_CORE_INSTANCES);
    assert!(PLACES / MIN_COST < POOL_COMPONENT_INSTANCES);
    assert!(MAX_CORE_INSTANCES_PER_COMPONENT <= PLACES);
};

/// The places of the instance pool, shared by every plugin of a runtime.
/// Cheap to clone.
#[derive(Clone)]
pub(crate) struct InstancePool {
    places: Arc<Semaphore>,
    /// The idle lists of plugins that reuse instances, to empty when full.
    idle: Arc<Mutex<Vec<Weak<dyn Reclaim>>>>,
}

/// Something holding idle instances (and so places) that it can let go.
pub(crate) trait Reclaim: Send + Sync {
    /// Drops every idle instance; returns how many.
    fn drop_idle(&self) -> usize;
}

impl InstancePool {
    /// A pool with [`PLACES`] places.
    pub fn new() -> Self {
        Self { places: Arc::new(Semaphore::new(PLACES as usize)), idle: Arc::default() }
    }

    /// Lets the pool drop `idle`'s instances when a call finds no room.
    pub fn register_idle(&self, idle: Weak<dyn Reclaim>) {
        let mut lists = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        lists.retain(|list| list.strong_count() > 0);
        lists.push(idle);
    }

    /// Drops every idle instance of every plugin; returns how many.
    fn drop_idle(&self) -> usize {
        let lists: Vec<_> =
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).iter().filter_map(Weak::upgrade).collect();
        lists.iter().map(|list| list.drop_idle()).sum()
    }

    /// Takes `cost` places for one instance, waiting at most `limits.timeout`
    /// (and taking what it waited from `limits.timeout`). Held until dropped:
    /// keep it with the instance's store, and drop it after the store.
    pub async fn enter(&self, cost: u32, limits: &mut Limits) -> Result<OwnedSemaphorePermit, ToolFailure> {
        if let Ok(places) = self.places.clone().try_acquire_many_owned(cost) {
            return Ok(places);
        }
        let dropped = self.drop_idle();
        if dropped > 0 {
            tracing::debug!(dropped, "the instance pool is full: idle instances dropped to make room");
            if let Ok(places) = self.places.clone().try_acquire_many_owned(cost) {
                return Ok(places);
            }
        }
        let started = tokio::time::Instant::now();
        tracing::debug!(cost, "the instance pool is full: the call waits for room");
        match tokio::time::timeout(limits.timeout, self.places.clone().acquire_many_owned(cost)).await {
            Ok(places) => {
                limits.timeout = limits.timeout.saturating_sub(started.elapsed());
                Ok(places.expect("the pool's semaphore is never closed"))
            }
            Err(_) => {
                tracing::warn!(cost, waited = ?limits.timeout, "a call found no room in the instance pool in time");
                Err(full(limits.timeout))
            }
        }
    }
}

fn full(waited: Duration) -> ToolFailure {
    ToolFailure::Busy(format!("the server is at capacity: no room to run the tool came free within {waited:?}"))
}

/// What one instance of a component costs: its core instances, memories or
/// tables (the most of them), and at least [`MIN_COST`]. Reads `bytes` off
/// the async threads (a component may be tens of MB).
pub(crate) async fn component_cost(component: &wasmtime::component::Component, bytes: Arc<Vec<u8>>) -> u32 {
    let (memories, tables) = match component.resources_required() {
        Some(needs) => (needs.num_memories, needs.num_tables),
        None => (MAX_CORE_INSTANCES_PER_COMPONENT, MAX_CORE_INSTANCES_PER_COMPONENT),
    };
    let instances = tokio::task::spawn_blocking(move || core_instances(&bytes)).await.ok().flatten();
    cost(instances.unwrap_or(MAX_CORE_INSTANCES_PER_COMPONENT).max(memories).max(tables))
}

/// What one instance of a core module (a command plugin) costs.
pub(crate) fn module_cost(module: &wasmtime::Module) -> u32 {
    let needs = module.resources_required();
    cost(needs.num_memories.max(needs.num_tables).max(1))
}

fn cost(slots: u32) -> u32 {
    slots.clamp(MIN_COST, PLACES)
}

/// How many calls of a plugin whose instances cost `cost` fill a quarter of
/// the places: its `max_concurrent_calls` unless its manifest or the
/// configuration says otherwise.
pub(crate) fn default_max_concurrent_calls(cost: u32) -> usize {
    (PLACES / 4 / cost.max(1)).max(1) as usize
}

/// The core instances a component creates when instantiated (nested
/// components included); `None` if it does not parse.
fn core_instances(bytes: &[u8]) -> Option<u32> {
    let mut count = 0;
    for payload in Parser::new(0).parse_all(bytes) {
        if let Payload::InstanceSection(section) = payload.ok()? {
            for instance in section {
                count += u32::from(matches!(instance.ok()?, Instance::Instantiate { .. }));
            }
        }
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_a_plugin_takes_at_most_a_quarter_of_the_places() {
        assert_eq!(default_max_concurrent_calls(3), 233);
        assert_eq!(default_max_concurrent_calls(PLACES), 1);
    }

    #[tokio::test]
    async fn a_full_pool_makes_calls_wait_within_their_time() {
        let pool = InstancePool::new();
        let all = pool.places.try_acquire_many(PLACES).unwrap();
        let mut limits = Limits { timeout: Duration::from_millis(30), ..Limits::default() };
        let refused = pool.enter(MIN_COST, &mut limits).await.unwrap_err();
        assert_eq!(refused.to_string(), "the server is at capacity: no room to run the tool came free within 30ms");
        drop(all);
        let mut limits = Limits::default();
        let places = pool.enter(5, &mut limits).await.unwrap();
        assert_eq!((places.num_permits(), limits.timeout), (5, Limits::default().timeout), "no wait, no time taken");
    }

    #[tokio::test]
    async fn a_full_pool_drops_idle_instances_before_a_call_waits() {
        use crate::sandbox::reuse::{Idle, Lease, Reuse};
        let pool = InstancePool::new();
        let reuse = Reuse { max_calls: 10, idle_timeout: Duration::from_secs(60) };
        let idle = Idle::new(reuse, &pool).unwrap();
        // An idle "instance" holding every place but one.
        let mut limits = Limits::default();
        idle.put(Lease::fresh(pool.enter(PLACES - 1, &mut limits).await.unwrap()));
        let places = pool.enter(MIN_COST, &mut limits).await.unwrap();
        assert_eq!((places.num_permits(), limits.timeout), (MIN_COST as usize, Limits::default().timeout));
        assert!(idle.take().is_none(), "the idle instance was dropped to make room");
    }
}
