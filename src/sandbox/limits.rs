//! Memory accounting for one instance: a cap on the sum of all its linear
//! memories, not on each one, so a plugin cannot multiply its limit by
//! declaring several memories.

use wasmtime::ResourceLimiter;

/// Caps the total linear memory of everything instantiated in one store.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: usize,
    used: usize,
    exceeded: bool,
}

impl MemoryLimiter {
    /// A limiter allowing `limit` bytes in total.
    pub fn new(limit: usize) -> Self {
        Self { limit, used: 0, exceeded: false }
    }

    /// A new call in the same instance, allowed `limit` bytes in total: the
    /// memory the instance already has still counts.
    pub fn begin_call(&mut self, limit: usize) {
        self.limit = limit;
        self.exceeded = false;
    }

    /// Whether a growth was refused because of the cap.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.used - current.min(self.used) + desired;
        if total > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_the_sum_of_all_memories() {
        let mut l = MemoryLimiter::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(!l.memory_growing(0, 60, None).unwrap(), "a second memory counts against the same cap");
        assert!(l.exceeded());
        assert!(l.memory_growing(60, 90, None).unwrap());
    }
}
