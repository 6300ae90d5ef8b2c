//! The slab of one shard: a `Vec` of nodes addressed by `u32` slot, with an intrusive
//! doubly linked recency list and a free list threaded through the same `next` field.
//!
//! Invariants (checked by [`Slab::validate`]):
//! - every slot is either free (no bytes, on the free list) or live (bytes, linked into the
//!   recency list), exactly once;
//! - `prev`/`next` of live nodes agree, `head` has no `prev`, `tail` has no `next`;
//! - a slot's generation is never 0 and changes whenever the slot is freed, so a
//!   `(slot, generation)` pair held outside the lock names at most one entry's lifetime.
//!
//! An entry's bytes are one allocation: `deadline (8 bytes, LE) || key || value`. The
//! deadline lives there, not in the node, because it changes only together with the value
//! (a re-insert stores new bytes), and it keeps the node at 40 bytes.

use std::sync::Arc;

use crate::clock::Nanos;

/// The "no slot" link.
pub(crate) const NIL: u32 = u32::MAX;

/// Bytes in front of the key in an entry's allocation: the deadline.
pub(crate) const HEADER_LEN: usize = 8;

/// Scratch space kept by a thread between inserts larger than it is worth keeping.
const SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    /// Per-thread buffer where an entry is assembled before its one allocation is made.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One allocation holding `deadline || key || value`.
pub(crate) fn entry_bytes(deadline: Nanos, key: &[u8], value: &[u8]) -> Arc<[u8]> {
    // Assembling in a reused buffer and copying with `Arc::from(&[u8])` is one allocation
    // and two `memcpy`s; collecting an iterator into an `Arc` would copy byte by byte.
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        buf.clear();
        buf.extend_from_slice(&deadline.to_le_bytes());
        buf.extend_from_slice(key);
        buf.extend_from_slice(value);
        let bytes = Arc::from(&buf[..]);
        if buf.capacity() > SCRATCH_KEEP {
            *buf = Vec::new();
        }
        bytes
    })
}

/// One slot: a live entry or a free slot.
#[derive(Debug)]
pub(crate) struct Node {
    /// `deadline || key || value`; `None` while the slot is free.
    pub(crate) bytes: Option<Arc<[u8]>>,
    /// Towards the most recently used end; unused while free.
    prev: u32,
    /// Towards the least recently used end; the next free slot while free.
    next: u32,
    /// Lifetime counter of this slot, never 0.
    pub(crate) generation: u32,
    /// Length of the key in `bytes`.
    pub(crate) key_len: u32,
    /// The slab's `tick` when this node was last linked at the front.
    promoted: u32,
}

impl Node {
    /// The key bytes of a live node (empty for a free one).
    #[inline]
    pub(crate) fn key(&self) -> &[u8] {
        match &self.bytes {
            Some(bytes) => &bytes[HEADER_LEN..HEADER_LEN + self.key_len as usize],
            None => &[],
        }
    }

    /// When the entry expires (it is absent from `deadline <= now` on); 0 for a free node.
    #[inline]
    pub(crate) fn deadline(&self) -> Nanos {
        self.bytes.as_deref().map_or(0, |bytes| {
            let mut header = [0; HEADER_LEN];
            header.copy_from_slice(&bytes[..HEADER_LEN]);
            Nanos::from_le_bytes(header)
        })
    }
}

/// Nodes, recency list and free list of one shard.
#[derive(Debug)]
pub(crate) struct Slab {
    nodes: Vec<Node>,
    /// Most recently used live slot.
    head: u32,
    /// Least recently used live slot: the next to evict.
    tail: u32,
    /// First free slot.
    free: u32,
    /// Live slots.
    len: usize,
    /// Links at the front so far (wrapping): `tick - node.promoted` bounds how many nodes
    /// are ahead of a node in the list.
    tick: u32,
}

impl Slab {
    /// An empty slab with room for `capacity` nodes reserved up front.
    pub(crate) fn with_capacity(capacity: usize) -> Slab {
        Slab {
            nodes: Vec::with_capacity(capacity),
            head: NIL,
            tail: NIL,
            free: NIL,
            len: 0,
            tick: 0,
        }
    }

    /// Live entries.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Nodes ever allocated (live + free).
    pub(crate) fn slots(&self) -> usize {
        self.nodes.len()
    }

    #[inline]
    pub(crate) fn node(&self, slot: u32) -> &Node {
        &self.nodes[slot as usize]
    }

    #[inline]
    pub(crate) fn node_mut(&mut self, slot: u32) -> &mut Node {
        &mut self.nodes[slot as usize]
    }

    /// The live node at `slot` if it still has generation `generation`.
    #[inline]
    pub(crate) fn live(&self, slot: u32, generation: u32) -> Option<&Node> {
        self.nodes
            .get(slot as usize)
            .filter(|n| n.generation == generation && n.bytes.is_some())
    }

    /// The least recently used live slot.
    pub(crate) fn tail(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    /// Stores an entry in a free (or new) slot and links it at the front.
    pub(crate) fn insert_front(&mut self, bytes: Arc<[u8]>, key_len: u32) -> u32 {
        let slot = if self.free != NIL {
            let slot = self.free;
            let node = &mut self.nodes[slot as usize];
            debug_assert!(node.bytes.is_none(), "free list holds only free slots");
            self.free = node.next;
            node.bytes = Some(bytes);
            node.key_len = key_len;
            slot
        } else {
            let slot = u32::try_from(self.nodes.len())
                .ok()
                .filter(|&s| s != NIL)
                .expect("a shard holds fewer than u32::MAX slots");
            self.nodes.push(Node {
                bytes: Some(bytes),
                prev: NIL,
                next: NIL,
                generation: 1,
                key_len,
                promoted: 0,
            });
            slot
        };
        self.link_front(slot);
        self.len += 1;
        slot
    }

    /// Unlinks and frees a live slot, bumping its generation; returns its bytes.
    pub(crate) fn remove(&mut self, slot: u32) -> Arc<[u8]> {
        self.unlink(slot);
        let free = self.free;
        let node = &mut self.nodes[slot as usize];
        let bytes = node.bytes.take().expect("only live slots are removed");
        node.generation = match node.generation.wrapping_add(1) {
            0 => 1,
            g => g,
        };
        node.next = free;
        node.prev = NIL;
        self.free = slot;
        self.len -= 1;
        bytes
    }

    /// Makes a live slot the most recently used.
    #[inline]
    pub(crate) fn move_to_front(&mut self, slot: u32) {
        if self.head != slot {
            self.unlink(slot);
            self.link_front(slot);
        }
    }

    /// At most how many nodes are ahead of live `slot` in the list (exact when never
    /// re-promoted lazily; an upper bound always, until the tick wraps).
    #[inline]
    pub(crate) fn age(&self, slot: u32) -> u32 {
        self.tick.wrapping_sub(self.nodes[slot as usize].promoted)
    }

    fn link_front(&mut self, slot: u32) {
        let old_head = self.head;
        {
            let node = &mut self.nodes[slot as usize];
            node.prev = NIL;
            node.next = old_head;
            node.promoted = self.tick;
        }
        self.tick = self.tick.wrapping_add(1);
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
            debug_assert!(node.bytes.is_some(), "only live slots are linked");
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
    pub(crate) fn validate(&self) {
        let n = self.nodes.len();
        let mut seen = vec![false; n];

        let mut live = 0usize;
        let mut prev = NIL;
        let mut cursor = self.head;
        while cursor != NIL {
            assert!((cursor as usize) < n, "link {cursor} out of bounds");
            assert!(!seen[cursor as usize], "slot {cursor} linked twice");
            seen[cursor as usize] = true;
            let node = &self.nodes[cursor as usize];
            assert!(
                node.bytes.is_some(),
                "free slot {cursor} on the recency list"
            );
            assert_eq!(node.prev, prev, "prev of slot {cursor}");
            assert!(
                HEADER_LEN + node.key_len as usize <= node.bytes.as_ref().map_or(0, |b| b.len())
            );
            prev = cursor;
            cursor = node.next;
            live += 1;
        }
        assert_eq!(self.tail, prev, "tail is the last linked slot");
        assert_eq!(live, self.len, "len counts the linked slots");

        let mut free = 0usize;
        cursor = self.free;
        while cursor != NIL {
            assert!((cursor as usize) < n, "free link {cursor} out of bounds");
            assert!(!seen[cursor as usize], "slot {cursor} both linked and free");
            seen[cursor as usize] = true;
            assert!(
                self.nodes[cursor as usize].bytes.is_none(),
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
mod tests {
    use super::*;

    fn bytes(s: &str) -> Arc<[u8]> {
        entry_bytes(7, s.as_bytes(), b"value")
    }

    #[test]
    fn entry_bytes_hold_deadline_key_and_value() {
        let mut slab = Slab::with_capacity(1);
        let a = slab.insert_front(entry_bytes(42, b"key", b"value"), 3);
        assert_eq!(slab.node(a).key(), b"key");
        assert_eq!(slab.node(a).deadline(), 42);
        assert_eq!(
            &slab.node(a).bytes.as_ref().unwrap()[HEADER_LEN + 3..],
            b"value"
        );
    }

    #[test]
    fn age_bounds_the_position() {
        let mut slab = Slab::with_capacity(3);
        let a = slab.insert_front(bytes("a"), 1);
        let b = slab.insert_front(bytes("b"), 1);
        assert_eq!((slab.age(a), slab.age(b)), (2, 1));
        slab.move_to_front(a);
        assert_eq!((slab.age(a), slab.age(b)), (1, 2));
    }

    #[test]
    fn new_slots_link_at_front_and_tail_is_oldest() {
        let mut slab = Slab::with_capacity(4);
        let a = slab.insert_front(bytes("a"), 1);
        let b = slab.insert_front(bytes("b"), 1);
        let c = slab.insert_front(bytes("c"), 1);
        slab.validate();
        assert_eq!(slab.iter_recency().collect::<Vec<_>>(), vec![c, b, a]);
        assert_eq!(slab.tail(), Some(a));
        slab.move_to_front(a);
        slab.validate();
        assert_eq!(slab.iter_recency().collect::<Vec<_>>(), vec![a, c, b]);
        slab.move_to_front(c);
        slab.validate();
        assert_eq!(slab.iter_recency().collect::<Vec<_>>(), vec![c, a, b]);
    }

    #[test]
    fn freed_slot_is_reused_with_a_new_generation() {
        let mut slab = Slab::with_capacity(2);
        let a = slab.insert_front(bytes("a"), 1);
        let _b = slab.insert_front(bytes("b"), 1);
        let generation = slab.node(a).generation;
        assert!(slab.live(a, generation).is_some());
        assert_eq!(&slab.remove(a)[HEADER_LEN..HEADER_LEN + 1], b"a");
        slab.validate();
        assert!(slab.live(a, generation).is_none(), "old generation is dead");
        let again = slab.insert_front(bytes("c"), 1);
        assert_eq!(again, a, "free list is reused before growing");
        assert_eq!(slab.slots(), 2);
        assert_ne!(slab.node(again).generation, generation);
        assert!(
            slab.live(a, generation).is_none(),
            "reuse keeps the old generation dead"
        );
        slab.validate();
    }

    #[test]
    fn removing_head_tail_and_middle_keeps_links_consistent() {
        let mut slab = Slab::with_capacity(5);
        let slots: Vec<u32> = (0..5)
            .map(|i| slab.insert_front(bytes(&i.to_string()), 1))
            .collect();
        slab.remove(slots[2]);
        slab.validate();
        slab.remove(slots[4]); // head
        slab.validate();
        slab.remove(slots[0]); // tail
        slab.validate();
        assert_eq!(
            slab.iter_recency().collect::<Vec<_>>(),
            vec![slots[3], slots[1]]
        );
        slab.remove(slots[3]);
        slab.remove(slots[1]);
        slab.validate();
        assert_eq!(slab.len(), 0);
        assert_eq!(slab.tail(), None);
    }

    #[test]
    fn generation_skips_zero_on_wrap() {
        let mut slab = Slab::with_capacity(1);
        let a = slab.insert_front(bytes("a"), 1);
        slab.node_mut(a).generation = u32::MAX;
        slab.remove(a);
        assert_eq!(slab.node(a).generation, 1);
        slab.validate();
    }
}
