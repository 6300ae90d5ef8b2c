//! Hooks for tests only (unit tests, and with the `test-hooks` feature the integration
//! tests, examples and benches): look inside the shards and check their invariants. The
//! running proxy never calls them; they exist only in such builds.

use std::sync::atomic::Ordering;

use super::Cache;

impl Cache {
    /// Entries held past their deadline now (kept for stale answers, or not yet reaped).
    #[doc(hidden)]
    pub fn held_expired(&self) -> usize {
        let now = self.clock.now();
        self.shards
            .iter()
            .map(|s| {
                let state = s.state.read();
                state
                    .slab
                    .iter_recency()
                    .filter(|&slot| state.slab.deadline(slot) <= now)
                    .count()
            })
            .sum()
    }

    /// Keys of one shard from most to least recently used (replays buffered hits first).
    #[doc(hidden)]
    pub fn keys_by_recency(&self, shard: usize) -> Vec<Vec<u8>> {
        let shard = &self.shards[shard];
        let mut state = shard.state.write();
        state.apply_reads(&shard.reads);
        state
            .slab
            .iter_recency()
            .map(|slot| state.slab.key(slot).to_vec())
            .collect()
    }

    /// Whether `key` is stored (expired or not), without counting, promoting or expiring.
    #[doc(hidden)]
    pub fn peek_contains(&self, key: &[u8]) -> bool {
        let (hash, shard) = self.locate(key);
        shard.state.read().find(hash, key).is_some()
    }

    /// Slab slots allocated over all shards (live + free): the memory high-water mark.
    #[doc(hidden)]
    pub fn slots(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.state.read().slab.slots())
            .sum()
    }

    /// Panics unless every shard's invariants hold: each slot free or linked exactly once,
    /// links consistent, index and list agree, size within capacity, counters match.
    #[doc(hidden)]
    pub fn validate(&self) {
        let mut total_capacity = 0;
        for (i, shard) in self.shards.iter().enumerate() {
            let state = shard.state.read();
            state.validate(&self.hasher);
            total_capacity += state.capacity();
            assert_eq!(
                shard.counters.size.load(Ordering::Relaxed),
                state.slab.len() as u64,
                "size counter of shard {i}"
            );
            for slot in state.slab.iter_recency() {
                let key = state.slab.key(slot);
                assert!(
                    std::ptr::eq(self.locate(key).1, shard),
                    "key of slot {slot} hashes to shard {i}"
                );
            }
        }
        assert_eq!(
            total_capacity, self.capacity,
            "shard capacities sum to capacity"
        );
    }

    /// Expiries buffered in the shards, not yet collected by a reaper.
    #[doc(hidden)]
    pub fn pending_expiries(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.state.read().pending_len())
            .sum()
    }
}
