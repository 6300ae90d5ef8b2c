//! The entry bytes of one shard's slab: one packed byte arena plus an allocation per
//! large entry. Nodes ([`super::Node`]) point at their entry by `loc`: an arena offset, or
//! [`LARGE_BIT`] and an index into the large entries, or [`FREE`].
//!
//! An entry is stored as `deadline (u64 LE) || key length (u16 LE) || value length (u32
//! LE) || key || value` (with a stale window, the deadline's lowest bit also says whether
//! the entry may be served stale: see `lru::stale`; this room stores it as given). Entries up to [`LARGE_ENTRY`] bytes are packed back to back into
//! one growable byte arena per shard: no allocation per entry, no allocator header, no
//! alignment padding, no pointer in the node (it holds a 31-bit offset, so a shard's arena
//! holds up to 2 GiB of such small entries; past that, inserts are refused). Removing an
//! entry leaves a hole, which the next entry of exactly that length reuses; once holes pass
//! a quarter of the arena, the next write that finds none to reuse compacts it (a copy of
//! the live entries, amortized over the bytes freed since the last compaction). Larger
//! entries get an allocation of their own, so compaction never copies big values.
//!
//! Invariants (checked by `Store::validate`, through `Slab::validate`, in test builds): live
//! arena entries and listed holes never overlap and lie within the arena; every
//! large-entry index is used by exactly one live node or listed free exactly once.

use hashbrown::HashMap;

use super::Node;
use crate::clock::Nanos;

/// Bytes in front of the key: deadline, key length, value length.
pub(super) const HEADER_LEN: usize = 14;

/// Entries (header included) longer than this get their own allocation.
pub(super) const LARGE_ENTRY: usize = 4096;

/// `loc` of a node whose entry has its own allocation: this bit plus the index in `large`.
pub(super) const LARGE_BIT: u32 = 1 << 31;

/// `loc` of a free node.
pub(super) const FREE: u32 = u32::MAX;

/// Holes below this many bytes are never worth a compaction.
const COMPACT_MIN: usize = 16 * 1024;

/// Why an entry could not be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TooBig;

/// Entry bytes of one shard: the packed arena and the entries too large for it.
#[derive(Debug, Default)]
pub(super) struct Store {
    pub(super) arena: Vec<u8>,
    /// Bytes of `arena` held by live entries (the rest are holes).
    pub(super) live: usize,
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
pub(super) fn header(bytes: &[u8]) -> ((Nanos, usize, usize), &[u8]) {
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
pub(super) fn split_entry(bytes: &[u8]) -> (Nanos, &[u8], &[u8]) {
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
    /// Drops every entry, keeping the arena's capacity (a cleared cache refills into the
    /// room it had, instead of growing again by doubling).
    pub(super) fn clear(&mut self) {
        self.arena.clear();
        self.live = 0;
        self.holes.clear();
        self.large.clear();
        self.large_free.clear();
    }

    /// An empty store with room for `bytes` arena bytes reserved.
    pub(super) fn with_arena_capacity(bytes: usize) -> Store {
        Store {
            arena: Vec::with_capacity(bytes),
            ..Store::default()
        }
    }

    /// The bytes of the entry at `loc`: header, key, value.
    #[inline]
    pub(super) fn entry(&self, loc: u32) -> &[u8] {
        if loc & LARGE_BIT != 0 {
            return &self.large[(loc & !LARGE_BIT) as usize];
        }
        let start = loc as usize;
        let ((_, key_len, value_len), _) = header(&self.arena[start..]);
        &self.arena[start..start + HEADER_LEN + key_len + value_len]
    }

    /// The bytes from the start of the entry at `loc` on (past its end, for an arena entry).
    #[inline(always)]
    pub(super) fn bytes_from(&self, loc: u32) -> &[u8] {
        if loc & LARGE_BIT != 0 {
            &self.large[(loc & !LARGE_BIT) as usize]
        } else {
            &self.arena[loc as usize..]
        }
    }

    /// Stores a new entry; returns its `loc`. May first compact the arena, pointing the
    /// `nodes` of the entries it moves at their new place.
    pub(super) fn write(
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
    pub(super) fn overwrite(
        &mut self,
        loc: u32,
        deadline: Nanos,
        key: &[u8],
        value: &[u8],
    ) -> bool {
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
    pub(super) fn free(&mut self, loc: u32) {
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

    #[cfg(any(test, feature = "test-hooks"))]
    /// Panics unless live arena entries and listed holes never overlap, lie within the
    /// arena, and (with unlisted holes) cover it; and unless every large-entry index is used
    /// by exactly one live node or listed free exactly once.
    pub(super) fn validate(&self, nodes: &[Node]) {
        let store = self;
        let mut spans: Vec<(usize, usize, bool)> = Vec::new(); // (start, len, is_hole)
        let mut large_used = vec![false; store.large.len()];
        for node in nodes.iter().filter(|n| n.loc != FREE) {
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
}
