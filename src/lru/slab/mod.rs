//! The slab of one shard: a `Vec` of 20-byte nodes addressed by `u32` slot, with an
//! intrusive doubly linked recency list and a free list threaded through the same `next`
//! field, and the shard's entry bytes.
//!
//! Invariants (checked by `Slab::validate`, in test builds):
//! - every slot is either free (no entry, on the free list) or live (an entry, linked into
//!   the recency list), exactly once;
//! - `prev`/`next` of live nodes agree, `head` has no `prev`, `tail` has no `next`;
//! - a slot's generation is never 0 and changes whenever the slot is freed, so a
//!   `(slot, generation)` pair held outside the lock names at most one entry's lifetime;
//! - the arena's live byte count is the sum of the live arena entries' sizes; live entries
//!   and listed holes never overlap and lie within the arena;
//! - every large-entry index is used by exactly one live node or listed free exactly once.
//!
//! An entry is stored as `deadline (u64 LE) || key length (u16 LE) || value length (u32
//! LE) || key || value`, packed into the shard's arena or, when large, in an allocation of
//! its own: see [`store`], which owns the entry bytes.

mod store;

use std::sync::atomic::{AtomicU32, Ordering};

use self::store::Store;
use self::store::{FREE, header, split_entry};
#[cfg(any(test, feature = "test-hooks"))]
use self::store::{HEADER_LEN, LARGE_BIT, LARGE_ENTRY};
pub(crate) use self::store::{TooBig, entry_len};
use crate::clock::Nanos;

/// Arena bytes reserved per node reserved.
const RESERVE_PER_ENTRY: usize = 64;

/// Most arena bytes reserved up front per shard.
const RESERVE_MAX: usize = 64 << 20;

/// The "no slot" link.
pub(crate) const NIL: u32 = u32::MAX;

/// One slot: a live entry or a free slot. 20 bytes.
#[derive(Debug)]
pub(crate) struct Node {
    /// Towards the most recently used end; unused while free.
    prev: u32,
    /// Towards the least recently used end; the next free slot while free.
    next: u32,
    /// Lifetime counter of this slot, never 0.
    pub(crate) generation: u32,
    /// Where the entry is: arena offset, or `LARGE_BIT | index`; `FREE` if none.
    loc: u32,
    /// Reference bit for CLOCK-style eviction in sharded caches: set (1) by a hit under
    /// the read lock, cleared when the node is linked at the front.
    referenced: AtomicU32,
}

/// Nodes, recency list, free list and entry bytes of one shard.
#[derive(Debug)]
pub(crate) struct Slab {
    nodes: Vec<Node>,
    store: Store,
    /// Most recently used live slot.
    head: u32,
    /// Least recently used live slot: the next to evict.
    tail: u32,
    /// First free slot.
    free: u32,
    /// Live slots.
    len: usize,
}

impl Slab {
    /// An empty slab with room for `entries` nodes and their bytes (at [`RESERVE_PER_ENTRY`]
    /// each) reserved. Both grow by doubling past that, so callers pass a small start, not
    /// the shard's capacity.
    pub(crate) fn with_capacity(entries: usize) -> Slab {
        Slab {
            nodes: Vec::with_capacity(entries),
            store: Store::with_arena_capacity(
                entries.saturating_mul(RESERVE_PER_ENTRY).min(RESERVE_MAX),
            ),
            head: NIL,
            tail: NIL,
            free: NIL,
            len: 0,
        }
    }

    /// Live entries.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Nodes ever allocated (live + free).
    #[cfg(any(test, feature = "test-hooks"))]
    pub(crate) fn slots(&self) -> usize {
        self.nodes.len()
    }

    /// Arena bytes in use, holes included.
    #[cfg(test)]
    pub(crate) fn arena_len(&self) -> usize {
        self.store.arena.len()
    }

    /// Deadline, key and value of live `slot`.
    #[inline]
    pub(crate) fn parts(&self, slot: u32) -> (Nanos, &[u8], &[u8]) {
        split_entry(self.store.bytes_from(self.nodes[slot as usize].loc))
    }

    /// The key of live `slot`.
    #[inline]
    pub(crate) fn key(&self, slot: u32) -> &[u8] {
        let ((_, key_len, _), rest) = header(self.store.bytes_from(self.nodes[slot as usize].loc));
        &rest[..key_len]
    }

    /// When the entry of live `slot` expires (it is absent from `deadline <= now` on).
    #[inline]
    pub(crate) fn deadline(&self, slot: u32) -> Nanos {
        header(self.store.bytes_from(self.nodes[slot as usize].loc))
            .0
            .0
    }

    /// The generation of `slot`.
    #[inline]
    pub(crate) fn generation(&self, slot: u32) -> u32 {
        self.nodes[slot as usize].generation
    }

    /// Whether `slot` is live with generation `generation`.
    #[inline]
    pub(crate) fn live(&self, slot: u32, generation: u32) -> bool {
        self.nodes
            .get(slot as usize)
            .is_some_and(|n| n.generation == generation && n.loc != FREE)
    }

    /// The least recently used live slot.
    pub(crate) fn tail(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    /// Stores an entry in a free (or new) slot and links it at the front.
    pub(crate) fn insert_front(
        &mut self,
        deadline: Nanos,
        key: &[u8],
        value: &[u8],
    ) -> Result<u32, TooBig> {
        let loc = self.store.write(deadline, key, value, &mut self.nodes)?;
        let slot = if self.free != NIL {
            let slot = self.free;
            let node = &mut self.nodes[slot as usize];
            debug_assert_eq!(node.loc, FREE, "free list holds only free slots");
            self.free = node.next;
            node.loc = loc;
            slot
        } else {
            let Some(slot) = u32::try_from(self.nodes.len()).ok().filter(|&s| s != NIL) else {
                self.store.free(loc);
                return Err(TooBig);
            };
            self.nodes.push(Node {
                prev: NIL,
                next: NIL,
                generation: 1,
                loc,
                referenced: AtomicU32::new(0),
            });
            slot
        };
        self.link_front(slot);
        self.len += 1;
        Ok(slot)
    }

    /// Gives live `slot` a new entry (same key) and makes it the most recently used.
    pub(crate) fn replace(
        &mut self,
        slot: u32,
        deadline: Nanos,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), TooBig> {
        let old = self.nodes[slot as usize].loc;
        if !self.store.overwrite(old, deadline, key, value) {
            let loc = self.store.write(deadline, key, value, &mut self.nodes)?;
            // A compaction may have moved the old entry: free it where it is now.
            let old = self.nodes[slot as usize].loc;
            self.store.free(old);
            self.nodes[slot as usize].loc = loc;
        }
        self.move_to_front(slot);
        Ok(())
    }

    /// Unlinks and frees a live slot, bumping its generation.
    pub(crate) fn remove(&mut self, slot: u32) {
        self.unlink(slot);
        let free = self.free;
        let node = &mut self.nodes[slot as usize];
        let loc = std::mem::replace(&mut node.loc, FREE);
        debug_assert_ne!(loc, FREE, "only live slots are removed");
        node.generation = match node.generation.wrapping_add(1) {
            0 => 1,
            g => g,
        };
        node.next = free;
        node.prev = NIL;
        self.free = slot;
        self.len -= 1;
        self.store.free(loc);
    }

    /// Frees every slot, bumping the generation of each live one, and drops all entry
    /// bytes. Nodes stay allocated, so generations keep telling lifetimes apart.
    pub(crate) fn clear(&mut self) {
        self.store.clear();
        self.head = NIL;
        self.tail = NIL;
        self.free = NIL;
        self.len = 0;
        // Thread the free list from the last slot down, so slot 0 is reused first.
        for (slot, node) in self.nodes.iter_mut().enumerate().rev() {
            if node.loc != FREE {
                node.loc = FREE;
                node.generation = match node.generation.wrapping_add(1) {
                    0 => 1,
                    g => g,
                };
            }
            node.prev = NIL;
            node.next = self.free;
            *node.referenced.get_mut() = 0;
            self.free = slot as u32;
        }
    }

    /// Makes a live slot the most recently used.
    #[inline]
    pub(crate) fn move_to_front(&mut self, slot: u32) {
        if self.head != slot {
            self.unlink(slot);
            self.link_front(slot);
        }
    }

    /// Sets live `slot`'s reference bit; needs only shared access (a hit holds the read
    /// lock). The store is skipped when the bit is already set, so a hot entry's node
    /// stays a shared cache line.
    #[inline]
    pub(crate) fn mark_referenced(&self, slot: u32) {
        let bit = &self.nodes[slot as usize].referenced;
        if bit.load(Ordering::Relaxed) == 0 {
            bit.store(1, Ordering::Relaxed);
        }
    }

    /// Clears live `slot`'s reference bit; says whether it was set.
    #[inline]
    pub(crate) fn take_referenced(&mut self, slot: u32) -> bool {
        std::mem::take(self.nodes[slot as usize].referenced.get_mut()) != 0
    }

    fn link_front(&mut self, slot: u32) {
        let old_head = self.head;
        {
            let node = &mut self.nodes[slot as usize];
            node.prev = NIL;
            node.next = old_head;
            *node.referenced.get_mut() = 0;
        }
        if old_head != NIL {
            self.nodes[old_head as usize].prev = slot;
        } else {
            self.tail = slot;
        }
        self.head = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let node = &self.nodes[slot as usize];
            debug_assert_ne!(node.loc, FREE, "only live slots are linked");
            (node.prev, node.next)
        };
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
    }

    /// Live slots from most to least recently used.
    pub(crate) fn iter_recency(&self) -> impl Iterator<Item = u32> + '_ {
        let mut cursor = self.head;
        std::iter::from_fn(move || {
            (cursor != NIL).then(|| {
                let slot = cursor;
                cursor = self.nodes[slot as usize].next;
                slot
            })
        })
    }

    /// Panics unless every invariant in the module doc holds.
    #[cfg(any(test, feature = "test-hooks"))]
    pub(crate) fn validate(&self) {
        let n = self.nodes.len();
        let mut seen = vec![false; n];

        let mut live = 0usize;
        let mut arena_live = 0usize;
        let mut prev = NIL;
        let mut cursor = self.head;
        while cursor != NIL {
            assert!((cursor as usize) < n, "link {cursor} out of bounds");
            assert!(!seen[cursor as usize], "slot {cursor} linked twice");
            seen[cursor as usize] = true;
            let node = &self.nodes[cursor as usize];
            assert_ne!(node.loc, FREE, "free slot {cursor} on the recency list");
            assert_eq!(node.prev, prev, "prev of slot {cursor}");
            let entry = self.store.entry(node.loc);
            let ((_, key_len, value_len), _) = header(entry);
            assert_eq!(entry.len(), HEADER_LEN + key_len + value_len);
            if node.loc & LARGE_BIT == 0 {
                assert!(entry.len() <= LARGE_ENTRY, "small entries are in the arena");
                arena_live += entry.len();
            } else {
                assert!(
                    entry.len() > LARGE_ENTRY,
                    "large entries have their own box"
                );
            }
            prev = cursor;
            cursor = node.next;
            live += 1;
        }
        assert_eq!(self.tail, prev, "tail is the last linked slot");
        assert_eq!(live, self.len, "len counts the linked slots");
        assert_eq!(arena_live, self.store.live, "arena live bytes");
        assert!(self.store.live <= self.store.arena.len());
        self.store.validate(&self.nodes);

        let mut free = 0usize;
        cursor = self.free;
        while cursor != NIL {
            assert!((cursor as usize) < n, "free link {cursor} out of bounds");
            assert!(!seen[cursor as usize], "slot {cursor} both linked and free");
            seen[cursor as usize] = true;
            assert_eq!(
                self.nodes[cursor as usize].loc, FREE,
                "live slot on free list"
            );
            cursor = self.nodes[cursor as usize].next;
            free += 1;
        }
        assert_eq!(live + free, n, "every slot is free or linked");
        assert!(self.nodes.iter().all(|node| node.generation != 0));
    }
}

#[cfg(test)]
mod tests;
