//! The cache with one shard, checked op by op against a plain reference model: a `Vec`
//! ordered by recency (front = most recently used) with a deadline per entry.

use std::time::Duration;

use proptest::prelude::*;
use proxyredis::clock::Clock;
use proxyredis::lru::{Cache, CacheStats};

const TTL_MS: u64 = 10;

#[derive(Clone, Debug)]
enum Op {
    Get(u8),
    Insert(u8, u16),
    Remove(u8),
    Advance(u64),
    /// Compare the whole recency order (replays buffered hits, like any writer does).
    CheckOrder,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..12;
    prop_oneof![
        4 => key.clone().prop_map(Op::Get),
        4 => (key.clone(), any::<u16>()).prop_map(|(k, v)| Op::Insert(k, v)),
        1 => key.prop_map(Op::Remove),
        1 => (0u64..=TTL_MS + 2).prop_map(Op::Advance),
        1 => Just(Op::CheckOrder),
    ]
}

/// The reference: entries most recently used first.
struct Model {
    capacity: usize,
    now_ms: u64,
    entries: Vec<(u8, u16, u64)>, // (key, value, deadline_ms)
    stats: CacheStats,
}

impl Model {
    fn position(&self, key: u8) -> Option<usize> {
        self.entries.iter().position(|e| e.0 == key)
    }

    fn get(&mut self, key: u8) -> Option<u16> {
        match self.position(key) {
            Some(i) if self.entries[i].2 <= self.now_ms => {
                self.entries.remove(i);
                self.stats.expirations += 1;
                self.stats.misses += 1;
                None
            }
            Some(i) => {
                let entry = self.entries.remove(i);
                self.entries.insert(0, entry);
                self.stats.hits += 1;
                Some(entry.1)
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Returns the key evicted to make room, if any.
    fn insert(&mut self, key: u8, value: u16) -> Option<u8> {
        let mut evicted = None;
        if let Some(i) = self.position(key) {
            self.entries.remove(i);
        } else if self.entries.len() == self.capacity {
            evicted = self.entries.pop().map(|e| e.0);
            self.stats.evictions += 1;
        }
        self.entries.insert(0, (key, value, self.now_ms + TTL_MS));
        self.stats.inserts += 1;
        evicted
    }

    fn remove(&mut self, key: u8) -> bool {
        self.position(key).map(|i| self.entries.remove(i)).is_some()
    }
}

/// The value stored for `v`: its two bytes, then a tail whose length depends on `v`, so
/// values go from 2 bytes to past the size that gets its own allocation, and replacing
/// and evicting them leaves holes big enough for the arena to compact.
fn value_bytes(v: u16) -> Vec<u8> {
    let mut bytes = v.to_le_bytes().to_vec();
    bytes.resize(2 + usize::from(v % 5) * 1700, v as u8);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn single_shard_cache_matches_reference_model(
        capacity in 1usize..8,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let clock = Clock::manual();
        let cache = Cache::with_shards(capacity, Duration::from_millis(TTL_MS), clock.clone(), 1);
        let mut model = Model { capacity, now_ms: 0, entries: Vec::new(), stats: CacheStats::default() };

        for op in &ops {
            match *op {
                Op::Get(k) => {
                    let got = cache.get(&[k]);
                    prop_assert_eq!(got, model.get(k).map(value_bytes), "get {}", k);
                }
                Op::Insert(k, v) => {
                    prop_assert!(cache.insert(&[k], &value_bytes(v)));
                    if let Some(evicted) = model.insert(k, v) {
                        prop_assert!(!cache.peek_contains(&[evicted]), "evicted {} is the model's LRU", evicted);
                    }
                }
                Op::Remove(k) => prop_assert_eq!(cache.remove(&[k]), model.remove(k), "remove {}", k),
                Op::CheckOrder => {
                    let order: Vec<Vec<u8>> = model.entries.iter().map(|e| vec![e.0]).collect();
                    prop_assert_eq!(cache.keys_by_recency(0), order);
                }
                Op::Advance(ms) => {
                    clock.advance(Duration::from_millis(ms));
                    model.now_ms += ms;
                }
            }
            // Without replaying buffered hits: the same keys are held.
            for k in 0..12u8 {
                prop_assert_eq!(cache.peek_contains(&[k]), model.position(k).is_some(), "holds {}", k);
            }
            let mut expected = model.stats;
            expected.size = model.entries.len() as u64;
            prop_assert_eq!(cache.stats(), expected, "counters after {:?}", op);
            prop_assert_eq!(cache.len(), model.entries.len());
        }
        let order: Vec<Vec<u8>> = model.entries.iter().map(|e| vec![e.0]).collect();
        prop_assert_eq!(cache.keys_by_recency(0), order);
        cache.validate();
    }
}
