//! The eviction policy of a shard, as a type: what a hit records, and which entry a full
//! shard evicts. Every shard of a cache has the same policy, chosen by its shard count.

use super::access::{AccessBuffer, Recorded};
use super::slab::Slab;

/// How a cache orders its entries for eviction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Exact LRU (a cache of one shard): a hit is buffered as `(slot, generation)` and
    /// replayed as a relink under the write lock, in order; the tail is evicted.
    ExactLru,
    /// CLOCK (a sharded cache): a hit sets the node's reference bit under the read lock;
    /// eviction gives a referenced tail a second chance at the front instead.
    Clock,
}

impl Policy {
    /// The policy of a cache of `shards` shards.
    pub(crate) fn for_shards(shards: usize) -> Policy {
        if shards == 1 {
            Policy::ExactLru
        } else {
            Policy::Clock
        }
    }

    /// Records a hit on live `slot` under the shard's read lock; true when the hit buffer
    /// is full and the caller should drain it under the write lock (only [`Policy::ExactLru`]
    /// buffers hits). On the hit path: one match on the discriminant, as the `bool` it
    /// replaces compiled to.
    #[inline(always)]
    pub(crate) fn record_hit(self, slab: &Slab, reads: &AccessBuffer, slot: u32) -> bool {
        match self {
            Policy::ExactLru => reads.record(slot, slab.generation(slot)) == Recorded::Full,
            Policy::Clock => {
                slab.mark_referenced(slot);
                false
            }
        }
    }

    /// The entry a full shard evicts: the least recently used one, except that under
    /// [`Policy::Clock`] a referenced tail has its bit cleared and moves to the front
    /// (second chance). Ends within one pass: every node it passes over loses its bit.
    pub(crate) fn victim(self, slab: &mut Slab) -> u32 {
        loop {
            let tail = slab.tail().expect("a full shard has a tail");
            match self {
                Policy::ExactLru => return tail,
                Policy::Clock => {
                    if !slab.take_referenced(tail) {
                        return tail;
                    }
                    slab.move_to_front(tail);
                }
            }
        }
    }
}
