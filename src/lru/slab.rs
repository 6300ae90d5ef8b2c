//! The slab of one shard: a `Vec` of 20-byte nodes addressed by `u32` slot, with an
//! intrusive doubly linked recency list and a free list threaded through the same `next`
//! field, and the shard's entry bytes.
//!
//! Invariants (checked by [`Slab::validate`]):
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
//! LE) || key || value`. Entries up to [`LARGE_ENTRY`] bytes are packed back to back into
//! one growable byte arena per shard: no allocation per entry, no allocator header, no
//! alignment padding, no pointer in the node (it holds a 31-bit offset, so a shard's arena
//! holds up to 2 GiB of such small entries; past that, inserts are refused). Removing an
//! entry leaves a hole, which the next entry of exactly that length reuses; once holes pass
//! a quarter of the arena, the next write that finds none to reuse compacts it (a copy of
//! the live entries, amortized over the bytes freed since the last compaction). Larger
//! entries get an allocation of their own, so compaction never copies big values.

use std::sync::atomic::{AtomicU32, Ordering};

use hashbrown::HashMap;

use crate::clock::Nanos;

/// Arena bytes reserved per node reserved.
const RESERVE_PER_ENTRY: usize = 64;

/// The "no slot" link.
pub(crate) const NIL: u32 = u32::MAX;

/// Bytes in front of the key: deadline, key length, value length.
pub(crate) const HEADER_LEN: usize = 14;

/// Entries (header included) longer than this get their own allocation.
pub(crate) const LARGE_ENTRY: usize = 4096;

/// `loc` of a node whose entry has its own allocation: this bit plus the index in `large`.
const LARGE_BIT: u32 = 1 << 31;

/// `loc` of a free node.
const FREE: u32 = u32::MAX;

/// Holes below this many bytes are never worth a compaction.
const COMPACT_MIN: usize = 16 * 1024;

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

/// Why an entry could not be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TooBig;

/// Entry bytes of one shard: the packed arena and the entries too large for it.
#[derive(Debug, Default)]
struct Store {
    arena: Vec<u8>,
    /// Bytes of `arena` held by live entries (the rest are holes).
    live: usize,
    /// Offsets of holes by exact length: a new entry of that length takes one instead of
    /// growing the arena, so a cache whose entries keep their sizes seldom compacts.
    holes: HashMap<u16, Vec<u32>>,
    /// Entries larger than [`LARGE_ENTRY`]; an empty box is a free index.
    large: Vec<Box<[u8]>>,
    large_free: Vec<u32>,
}

/// The header of the entry at the start of `bytes` (which may run on past the entry), and
/// the bytes after it.
#[inline(always)]
fn header(bytes: &[u8]) -> ((Nanos, usize, usize), &[u8]) {
    let (head, rest) = bytes
        .split_first_chunk::<HEADER_LEN>()
        .expect("an entry starts with its header");
    let [d0, d1, d2, d3, d4, d5, d6, d7, k0, k1, v0, v1, v2, v3] = *head;
    let deadline = Nanos::from_le_bytes([d0, d1, d2, d3, d4, d5, d6, d7]);
    let key_len = usize::from(u16::from_le_bytes([k0, k1]));
    let value_len = u32::from_le_bytes([v0, v1, v2, v3]) as usize;
    ((deadline, key_len, value_len), rest)
}

/// Deadline, key and value of the entry at the start of `bytes`.
#[inline(always)]
fn split_entry(bytes: &[u8]) -> (Nanos, &[u8], &[u8]) {
    let ((deadline, key_len, value_len), rest) = header(bytes);
    let (key, rest) = rest.split_at(key_len);
    (deadline, key, &rest[..value_len])
}

/// Writes one entry into `out`, which is exactly as long as the entry.
fn write_entry(out: &mut [u8], deadline: Nanos, key: &[u8], value: &[u8]) {
    let (head, rest) = out.split_at_mut(HEADER_LEN);
    head[..8].copy_from_slice(&deadline.to_le_bytes());
    head[8..10].copy_from_slice(&(key.len() as u16).to_le_bytes());
    head[10..].copy_from_slice(&(value.len() as u32).to_le_bytes());
    let (k, v) = rest.split_at_mut(key.len());
    k.copy_from_slice(key);
    v.copy_from_slice(value);
}

/// Length of the entry for `key` and `value`, or `TooBig` for a key over 64 KiB or a value
/// over 4 GiB.
#[inline]
pub(crate) fn entry_len(key: &[u8], value: &[u8]) -> Result<usize, TooBig> {
    if u16::try_from(key.len()).is_err() || u32::try_from(value.len()).is_err() {
        return Err(TooBig);
    }
    Ok(HEADER_LEN + key.len() + value.len())
}

impl Store {
    /// The bytes of the entry at `loc`: header, key, value.
    #[inline]
    fn entry(&self, loc: u32) -> &[u8] {
        if loc & LARGE_BIT != 0 {
            return &self.large[(loc & !LARGE_BIT) as usize];
        }
        let start = loc as usize;
        let ((_, key_len, value_len), _) = header(&self.arena[start..]);
        &self.arena[start..start + HEADER_LEN + key_len + value_len]
    }

    /// The bytes from the start of the entry at `loc` on (past its end, for an arena entry).
    #[inline(always)]
    fn bytes_from(&self, loc: u32) -> &[u8] {
        if loc & LARGE_BIT != 0 {
            &self.large[(loc & !LARGE_BIT) as usize]
        } else {
            &self.arena[loc as usize..]
        }
    }

    /// Stores a new entry; returns its `loc`. May first compact the arena, pointing the
    /// `nodes` of the entries it moves at their new place.
    fn write(
        &mut self,
        deadline: Nanos,
        key: &[u8],
        value: &[u8],
        nodes: &mut [Node],
    ) -> Result<u32, TooBig> {
        let len = entry_len(key, value)?;
        if len > LARGE_ENTRY {
            let mut bytes = vec![0; len].into_boxed_slice();
            write_entry(&mut bytes, deadline, key, value);
            let index = match self.large_free.pop() {
                Some(index) => {
                    self.large[index as usize] = bytes;
                    index
                }
                None => {
                    let index = u32::try_from(self.large.len())
                        .ok()
                        .filter(|&i| i < LARGE_BIT - 1)
                        .ok_or(TooBig)?;
                    self.large.push(bytes);
                    index
                }
            };
            return Ok(LARGE_BIT | index);
        }
        let reuse = self
            .holes
            .get_mut(&(len as u16))
            .and_then(|offsets| offsets.pop());
        if let Some(start) = reuse {
            let start = start as usize;
            write_entry(&mut self.arena[start..start + len], deadline, key, value);
            self.live += len;
            return Ok(start as u32);
        }
        let holes = self.arena.len() - self.live;
        if holes > COMPACT_MIN && holes * 4 > self.arena.len() {
            self.compact(nodes);
        }
        let start = self.arena.len();
        let loc = u32::try_from(start)
            .ok()
            .filter(|&l| l < LARGE_BIT)
            .ok_or(TooBig)?;
        self.arena.resize(start + len, 0);
        write_entry(&mut self.arena[start..], deadline, key, value);
        self.live += len;
        Ok(loc)
    }

    /// Overwrites the entry at `loc` in place when the new one has the same size there.
    fn overwrite(&mut self, loc: u32, deadline: Nanos, key: &[u8], value: &[u8]) -> bool {
        let Ok(len) = entry_len(key, value) else {
            return false;
        };
        if loc & LARGE_BIT != 0 {
            let bytes = &mut self.large[(loc & !LARGE_BIT) as usize];
            if bytes.len() != len {
                return false;
            }
            write_entry(bytes, deadline, key, value);
            return true;
        }
        let start = loc as usize;
        if self.entry(loc).len() != len {
            return false;
        }
        write_entry(&mut self.arena[start..start + len], deadline, key, value);
        true
    }

    /// Copies the live arena entries (those `nodes` point at) into a new arena without
    /// holes, and points the nodes at their new place.
    fn compact(&mut self, nodes: &mut [Node]) {
        let room = (self.live + self.live / 4 + LARGE_ENTRY).max(self.arena.capacity() / 2);
        let mut arena = Vec::with_capacity(room);
        for node in nodes.iter_mut() {
            if node.loc == FREE || node.loc & LARGE_BIT != 0 {
                continue;
            }
            let start = arena.len();
            arena.extend_from_slice(self.entry(node.loc));
            node.loc = start as u32;
        }
        debug_assert_eq!(arena.len(), self.live);
        self.arena = arena;
        self.holes.clear();
    }

    /// Frees the entry at `loc`.
    fn free(&mut self, loc: u32) {
        if loc & LARGE_BIT != 0 {
            let index = loc & !LARGE_BIT;
            self.large[index as usize] = Box::default();
            self.large_free.push(index);
            if self.large_free.len() == self.large.len() {
                self.large = Vec::new();
                self.large_free = Vec::new();
            }
        } else {
            let len = self.entry(loc).len();
            self.live -= len;
            if self.live == 0 {
                self.arena.clear();
                self.holes.clear();
            } else {
                self.holes.entry(len as u16).or_default().push(loc);
            }
        }
    }
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
            store: Store {
                arena: Vec::with_capacity(entries.saturating_mul(RESERVE_PER_ENTRY)),
                ..Store::default()
            },
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
        self.store = Store::default();
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

    /// Panics unless live arena entries and listed holes never overlap, lie within the
    /// arena, and (with unlisted holes) cover it; and unless every large-entry index is used
    /// by exactly one live node or listed free exactly once.
    fn validate_store(&self) {
        let store = &self.store;
        let mut spans: Vec<(usize, usize, bool)> = Vec::new(); // (start, len, is_hole)
        let mut large_used = vec![false; store.large.len()];
        for node in self.nodes.iter().filter(|n| n.loc != FREE) {
            if node.loc & LARGE_BIT != 0 {
                let index = (node.loc & !LARGE_BIT) as usize;
                assert!(!large_used[index], "large entry {index} used twice");
                large_used[index] = true;
            } else {
                spans.push((node.loc as usize, store.entry(node.loc).len(), false));
            }
        }
        for (&len, offsets) in &store.holes {
            spans.extend(
                offsets
                    .iter()
                    .map(|&at| (at as usize, usize::from(len), true)),
            );
        }
        spans.sort_unstable();
        let mut end = 0;
        for &(start, len, hole) in &spans {
            assert!(
                start >= end,
                "arena span at {start} overlaps the one before"
            );
            assert!(len > 0 || hole, "empty live entry at {start}");
            end = start + len;
        }
        assert!(end <= store.arena.len(), "arena spans end inside the arena");
        for &index in &store.large_free {
            let index = index as usize;
            assert!(!large_used[index], "large entry {index} both used and free");
            assert!(
                store.large[index].is_empty(),
                "free large entry {index} is empty"
            );
            large_used[index] = true;
        }
        assert!(
            large_used.iter().all(|&u| u),
            "every large index used or free"
        );
    }

    /// Panics unless every invariant in the module doc holds.
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
        self.validate_store();

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
mod tests {
    use super::*;

    fn put(slab: &mut Slab, key: &str) -> u32 {
        slab.insert_front(7, key.as_bytes(), b"value").unwrap()
    }

    #[test]
    fn node_is_20_bytes() {
        assert_eq!(std::mem::size_of::<Node>(), 20);
    }

    #[test]
    fn entries_hold_deadline_key_and_value() {
        let mut slab = Slab::with_capacity(4);
        let a = slab.insert_front(42, b"key", b"value").unwrap();
        assert_eq!(slab.parts(a), (42, &b"key"[..], &b"value"[..]));
        let big = vec![9u8; LARGE_ENTRY];
        let b = slab.insert_front(43, b"big", &big).unwrap();
        assert_eq!(slab.parts(b), (43, &b"big"[..], &big[..]));
        assert_eq!(slab.arena_len(), HEADER_LEN + 8);
        slab.validate();
    }

    #[test]
    fn replace_in_place_or_moved_keeps_the_key_and_new_value() {
        let mut slab = Slab::with_capacity(4);
        let a = put(&mut slab, "a");
        let b = put(&mut slab, "b");
        slab.replace(a, 8, b"a", b"VALUE").unwrap(); // same size: in place
        assert_eq!(slab.parts(a), (8, &b"a"[..], &b"VALUE"[..]));
        assert_eq!(slab.iter_recency().collect::<Vec<_>>(), vec![a, b]);
        slab.replace(b, 9, b"b", &[1; 100]).unwrap(); // larger: moved
        assert_eq!(slab.parts(b), (9, &b"b"[..], &[1; 100][..]));
        slab.replace(b, 10, b"b", &[2; 5000]).unwrap(); // now large
        slab.replace(b, 11, b"b", b"v").unwrap(); // back in the arena
        assert_eq!(slab.parts(b), (11, &b"b"[..], &b"v"[..]));
        slab.validate();
    }

    #[test]
    fn holes_are_compacted_away() {
        let mut slab = Slab::with_capacity(4);
        let slots: Vec<u32> = (0..10_000)
            .map(|i| put(&mut slab, &format!("key{i}")))
            .collect();
        let full = slab.arena_len();
        for &slot in slots.iter().step_by(2) {
            slab.remove(slot);
        }
        slab.validate();
        // The next write compacts: the arena holds the live half plus the new entry.
        put(&mut slab, "new");
        slab.validate();
        assert!(
            slab.arena_len() < full * 6 / 10,
            "{} of {full}",
            slab.arena_len()
        );
        for (i, &slot) in slots.iter().enumerate().skip(1).step_by(2) {
            assert_eq!(slab.key(slot), format!("key{i}").as_bytes());
        }
    }

    #[test]
    fn reference_bit_is_set_by_hits_and_cleared_by_relinking() {
        let mut slab = Slab::with_capacity(4);
        let a = put(&mut slab, "a");
        let b = put(&mut slab, "b");
        slab.mark_referenced(a);
        slab.mark_referenced(a);
        assert!(slab.take_referenced(a));
        assert!(!slab.take_referenced(a), "taking clears it");
        slab.mark_referenced(b);
        slab.move_to_front(a);
        slab.move_to_front(b);
        assert!(!slab.take_referenced(b), "linking at the front clears it");
    }

    #[test]
    fn new_slots_link_at_front_and_tail_is_oldest() {
        let mut slab = Slab::with_capacity(4);
        let a = put(&mut slab, "a");
        let b = put(&mut slab, "b");
        let c = put(&mut slab, "c");
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
        let mut slab = Slab::with_capacity(4);
        let a = put(&mut slab, "a");
        let _b = put(&mut slab, "b");
        let generation = slab.generation(a);
        assert!(slab.live(a, generation));
        slab.remove(a);
        slab.validate();
        assert!(!slab.live(a, generation), "old generation is dead");
        let again = put(&mut slab, "c");
        assert_eq!(again, a, "free list is reused before growing");
        assert_eq!(slab.slots(), 2);
        assert_ne!(slab.generation(again), generation);
        assert!(
            !slab.live(a, generation),
            "reuse keeps the old generation dead"
        );
        slab.validate();
    }

    #[test]
    fn removing_head_tail_and_middle_keeps_links_consistent() {
        let mut slab = Slab::with_capacity(4);
        let slots: Vec<u32> = (0..5).map(|i| put(&mut slab, &i.to_string())).collect();
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
        assert_eq!(slab.arena_len(), 0, "an empty arena is reset");
    }

    #[test]
    fn generation_skips_zero_on_wrap() {
        let mut slab = Slab::with_capacity(4);
        let a = put(&mut slab, "a");
        slab.nodes[a as usize].generation = u32::MAX;
        slab.remove(a);
        assert_eq!(slab.generation(a), 1);
        slab.validate();
    }
}
