//! The reaper's state and one pass of its work, [`ReaperCore`]: a min-heap of expiries per
//! shard, fed from the shards' pending lists and drained of every deadline that has
//! passed, in batches of at most `REAP_BATCH` removals under one write lock. The thread of
//! [`super::Reaper`] runs one pass after another; tests (and, with the `test-hooks`
//! feature, integration tests and examples) run passes synchronously.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use super::MAX_SLEEP;
use crate::clock::Nanos;
use crate::lru::{Cache, Expiry};

/// Expired entries removed under one acquisition of the shard locks; bounds how long a
/// pass can hold a write lock against readers.
const REAP_BATCH: usize = 512;

/// Heap entries allowed per shard beyond twice its capacity before a compaction pass.
const HEAP_SLACK: usize = 64;

/// The reaper's state and one pass of its work, usable synchronously in tests.
///
/// It keeps one min-heap of [`Expiry`] per shard (the shard is the heap's index, so an
/// entry costs 16 bytes, not 24). While it exists the cache records expiries for it;
/// dropping it stops that. One reaper per cache.
#[derive(Debug)]
pub struct ReaperCore {
    cache: Arc<Cache>,
    heaps: Vec<BinaryHeap<Reverse<Expiry>>>,
    /// Most heap entries per shard before compaction.
    heap_bounds: Vec<usize>,
    /// Reused buffer, so steady-state passes do not allocate.
    batch: Vec<Expiry>,
}

impl ReaperCore {
    /// A reaper state for `cache`, tracking every entry it holds now and from now on.
    pub fn new(cache: Arc<Cache>) -> ReaperCore {
        let shards = cache.shard_count();
        let mut batch = Vec::new();
        let heaps = (0..shards)
            .map(|shard| {
                batch.clear();
                cache.start_reaping(shard, &mut batch);
                batch.drain(..).map(Reverse).collect()
            })
            .collect();
        let heap_bounds = (0..shards)
            .map(|shard| 2 * cache.shard_capacity(shard) + HEAP_SLACK)
            .collect();
        ReaperCore {
            cache,
            heaps,
            heap_bounds,
            batch: Vec::with_capacity(REAP_BATCH),
        }
    }

    /// Collects new expiries and removes every entry whose deadline has passed;
    /// returns how many entries it removed.
    pub fn run_once(&mut self) -> usize {
        let now = self.cache.clock().now();
        let mut removed = 0;
        for shard in 0..self.heaps.len() {
            self.collect(shard);
            let heap = &mut self.heaps[shard];
            loop {
                self.batch.clear();
                while self.batch.len() < REAP_BATCH
                    && heap.peek().is_some_and(|Reverse(e)| e.deadline <= now)
                {
                    let Reverse(expiry) = heap.pop().expect("peeked");
                    self.batch.push(expiry);
                }
                if self.batch.is_empty() {
                    break;
                }
                removed += self.cache.expire_batch(shard, &self.batch, now);
            }
        }
        self.batch.clear();
        removed
    }

    /// Moves a shard's pending expiries into its heap, compacting the heap when too large.
    fn collect(&mut self, shard: usize) {
        self.batch.clear();
        self.cache.take_expiries(shard, &mut self.batch);
        let heap = &mut self.heaps[shard];
        heap.extend(self.batch.drain(..).map(Reverse));
        if heap.len() > self.heap_bounds[shard] {
            // Drop entries that no longer describe a live entry (one lock for the shard).
            let mut all: Vec<Expiry> = std::mem::take(heap)
                .into_vec()
                .into_iter()
                .map(|Reverse(e)| e)
                .collect();
            self.cache.retain_current(shard, &mut all);
            *heap = all.into_iter().map(Reverse).collect();
        }
    }

    /// Expiries tracked in the heaps.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn heap_len(&self) -> usize {
        self.heaps.iter().map(BinaryHeap::len).sum()
    }

    /// The earliest deadline tracked.
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.heaps
            .iter()
            .filter_map(|heap| heap.peek().map(|Reverse(e)| e.deadline))
            .min()
    }

    /// How long to sleep before the next pass.
    pub(super) fn sleep_time(&self) -> Duration {
        match self.next_deadline() {
            Some(deadline) => {
                let wait = deadline.saturating_sub(self.cache.clock().now());
                Duration::from_nanos(wait).min(MAX_SLEEP)
            }
            None => MAX_SLEEP,
        }
    }
}

impl Drop for ReaperCore {
    fn drop(&mut self) {
        self.cache.stop_reaping();
    }
}
