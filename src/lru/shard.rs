//! One shard: a slab, a hash index from key to slot, the lossy hit buffer, the expiries
//! not yet handed to the reaper, and the shard's counters.
//!
//! The index is a `HashTable<u32>` of slots hashed by the key stored in the slab, so each
//! key is stored once. Lookups take the read lock; anything that changes the list or the
//! index takes the write lock and first replays the hit buffer, so eviction always sees
//! every hit that was buffered.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hashbrown::{DefaultHashBuilder, HashTable};
use parking_lot::RwLock;

use super::access::AccessBuffer;
use super::policy::Policy;
use super::slab::{Slab, TooBig, entry_len};
use super::stale::removal_time;
use crate::clock::Nanos;

/// An entry's expiry as told to the reaper: it is still current while the slot has this
/// generation and an entry that leaves the cache at this time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Expiry {
    /// When the reaper removes the entry: its deadline, or the end of its stale window
    /// (see `stale::removal_time`).
    pub(crate) deadline: Nanos,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

/// Most entries a shard reserves room for up front (nodes and index); past it the slab
/// and index grow by doubling. Up to this, a shard is sized once for its capacity (growing
/// by doubling leaves the freed smaller blocks resident: 47.3 B per entry at 1M entries
/// against 45.1 pre-sized), and a huge PROXY_MAX_KEYS costs nothing until used (64 shards
/// reserve at most 4M nodes: 80 MB of address space, about 8 MB touched for the index).
const PRESIZE_ENTRIES: usize = 65_536;

/// Buckets of a shard's table of invalidations: each holds the sequence number of the
/// latest invalidation of a key hashing to it. A fill is cancelled when its key's bucket
/// saw an invalidation since its ticket: its own key's, or, rarely, another key's of the
/// same bucket (a write to an unrelated key cancels a fill with odds of one in this many,
/// whatever the write rate). 8 KiB per shard.
pub(crate) const INVALIDATION_BUCKETS: usize = 1024;

/// The invalidation bucket of a key hash: its high bits (the low ones pick the shard and
/// the index's slot).
pub(crate) fn bucket(hash: u64) -> usize {
    ((hash >> 40) as usize) % INVALIDATION_BUCKETS
}

/// Slack added to bounds that are "twice the capacity" so tiny shards do not compact
/// on every other insert.
const BOUND_SLACK: usize = 64;

/// Counters of one shard; Relaxed atomics, summed on read. On their own cache lines, so
/// bumping them does not evict the lock word or the shard state from other cores.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    pub(crate) inserts: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) expirations: AtomicU64,
    /// Calls of `Cache::invalidate` on this shard.
    pub(crate) invalidations: AtomicU64,
    /// Fills refused because of an invalidation or a clear after their ticket.
    pub(crate) cancelled_fills: AtomicU64,
    /// Live entries; written only under the write lock.
    pub(crate) size: AtomicU64,
}

impl Counters {
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A shard, aligned to its own cache lines so two shards never share one.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Shard {
    pub(crate) state: RwLock<ShardState>,
    pub(crate) reads: AccessBuffer,
    pub(crate) counters: Counters,
    /// Set when `pending` is non-empty, so the reaper skips idle shards without locking.
    pub(crate) has_pending: AtomicBool,
    /// Invalidations of this shard so far: the sequence number of the latest one. Written
    /// (Release) only under the write lock, by `invalidate`; read (Acquire) without a lock
    /// by `Cache::ticket`.
    pub(crate) invalidation_seq: AtomicU64,
}

impl Shard {
    /// A shard of `capacity` entries evicting by `policy`.
    pub(crate) fn new(capacity: usize, policy: Policy) -> Shard {
        Shard {
            state: RwLock::new(ShardState::new(capacity, policy)),
            reads: AccessBuffer::new(),
            counters: Counters::default(),
            has_pending: AtomicBool::new(false),
            invalidation_seq: AtomicU64::new(0),
        }
    }
}

/// What an insert did besides storing the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Displaced {
    Nothing,
    /// The key was there: its value and deadline were replaced.
    Replaced,
    /// The least recently used entry was evicted to make room.
    Evicted,
}

/// The data behind a shard's lock. Aligned so it does not share a cache line with the
/// lock word, which every reader writes: lookups on other cores keep their copy of it.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct ShardState {
    pub(crate) slab: Slab,
    index: HashTable<u32>,
    capacity: usize,
    /// What a hit records and which entry is evicted.
    pub(crate) policy: Policy,
    /// Whether a reaper collects expiries; without one, `pending` stays empty.
    reaped: bool,
    /// Expiries of entries inserted since the reaper last looked, oldest first.
    pending: Vec<Expiry>,
    /// The latest invalidation of a key of each bucket (see [`INVALIDATION_BUCKETS`]).
    invalidated: Box<[u64]>,
    /// The cache's stale window: expired entries that may be served stale are removed
    /// this long after their deadline.
    stale_window: Nanos,
}

impl ShardState {
    fn new(capacity: usize, policy: Policy) -> ShardState {
        ShardState {
            // Only a small start is sized by the capacity (which may be billions): slab and
            // index grow as entries arrive, each by doubling, so growth is amortized.
            slab: Slab::with_capacity(capacity.min(PRESIZE_ENTRIES)),
            index: HashTable::with_capacity(capacity.min(PRESIZE_ENTRIES)),
            capacity,
            policy,
            reaped: false,
            pending: Vec::new(),
            invalidated: vec![0; INVALIDATION_BUCKETS].into_boxed_slice(),
            stale_window: 0,
        }
    }

    /// Sets the cache's stale window (before any reaper tracks this shard).
    pub(crate) fn set_stale_window(&mut self, window: Nanos) {
        self.stale_window = window;
    }

    /// The reaper's deadline for the live entry in `slot`.
    #[inline]
    fn removal_time(&self, slot: u32) -> Nanos {
        removal_time(self.slab.deadline(slot), self.stale_window)
    }

    /// Entries this shard may hold.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The live slot holding `key`.
    #[inline]
    pub(crate) fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        let slab = &self.slab;
        self.index
            .find(hash, |&slot| slab.key(slot) == key)
            .copied()
    }

    /// Replays buffered hits in order; stale ones (slot freed since) are skipped.
    #[inline]
    pub(crate) fn apply_reads(&mut self, reads: &AccessBuffer) {
        let slab = &mut self.slab;
        reads.drain(|slot, generation| {
            if slab.live(slot, generation) {
                slab.move_to_front(slot);
            }
        });
    }

    /// Adds or replaces an entry and makes it the most recently used; says what it
    /// displaced. Stores nothing (and displaces nothing) when the entry is too big.
    pub(crate) fn insert(
        &mut self,
        hasher: &DefaultHashBuilder,
        hash: u64,
        deadline: Nanos,
        key: &[u8],
        value: &[u8],
    ) -> Result<Displaced, TooBig> {
        // Refuse an entry that cannot be stored before evicting anything for it.
        entry_len(key, value)?;
        let (slot, displaced) = if let Some(slot) = self.find(hash, key) {
            if let Err(too_big) = self.slab.replace(slot, deadline, key, value) {
                // The new value cannot be stored (the arena is full): do not keep serving
                // the old one in its place.
                self.remove_slot(hasher, slot);
                return Err(too_big);
            }
            (slot, Displaced::Replaced)
        } else {
            let mut displaced = Displaced::Nothing;
            if self.slab.len() >= self.capacity {
                let victim = self.policy.victim(&mut self.slab);
                self.remove_slot(hasher, victim);
                displaced = Displaced::Evicted;
            }
            let slot = self.slab.insert_front(deadline, key, value)?;
            let slab = &self.slab;
            self.index
                .insert_unique(hash, slot, |&s| hasher.hash_one(slab.key(s)));
            (slot, displaced)
        };
        if !self.reaped {
            return Ok(displaced);
        }
        let generation = self.slab.generation(slot);
        self.pending.push(Expiry {
            deadline: removal_time(deadline, self.stale_window),
            slot,
            generation,
        });
        if self.pending.len() > 2 * self.capacity + BOUND_SLACK {
            // No reaper is collecting (or it is far behind): keep only current expiries.
            let mut pending = std::mem::take(&mut self.pending);
            self.retain_current(&mut pending);
            self.pending = pending;
        }
        Ok(displaced)
    }

    /// Records invalidation `seq` (the shard's previous one plus one) of the key hashing
    /// to `hash`.
    pub(crate) fn record_invalidation(&mut self, seq: u64, hash: u64) {
        self.invalidated[bucket(hash)] = seq;
    }

    /// Whether a fill of the key hashing to `hash`, whose ticket saw invalidation
    /// `since` as the shard's latest, may have missed an invalidation of its key, now
    /// that `latest` is: true when an invalidation after `since` was of a key of its
    /// bucket (its own, or another one sharing the bucket).
    pub(crate) fn invalidated_since(&self, hash: u64, since: u64, latest: u64) -> bool {
        latest > since && self.invalidated[bucket(hash)] > since
    }

    /// Removes every entry. Slots stay allocated (free, generation bumped) so that a
    /// `(slot, generation)` held by the reaper or the hit buffer never names a later entry;
    /// entry bytes, pending expiries and index entries are dropped.
    pub(crate) fn clear(&mut self) {
        self.slab.clear();
        self.index.clear();
        self.pending.clear();
    }

    /// Removes the entry for `key`; true if it was there.
    pub(crate) fn remove_key(&mut self, hash: u64, key: &[u8]) -> bool {
        let slab = &self.slab;
        match self.index.find_entry(hash, |&slot| slab.key(slot) == key) {
            Ok(entry) => {
                let (slot, _) = entry.remove();
                self.slab.remove(slot);
                true
            }
            Err(_) => false,
        }
    }

    /// Removes a live slot from index and slab.
    pub(crate) fn remove_slot(&mut self, hasher: &DefaultHashBuilder, slot: u32) {
        let hash = hasher.hash_one(self.slab.key(slot));
        match self.index.find_entry(hash, |&s| s == slot) {
            Ok(entry) => {
                entry.remove();
            }
            Err(_) => panic!("live slot {slot} is in the index"),
        }
        self.slab.remove(slot);
    }

    /// Whether inserts record expiries for a reaper.
    pub(crate) fn reaped(&self) -> bool {
        self.reaped
    }

    /// Starts recording expiries for a reaper and hands it those of every live entry.
    pub(crate) fn start_reaping(&mut self, out: &mut Vec<Expiry>) {
        self.reaped = true;
        self.pending.clear();
        out.extend(self.slab.iter_recency().map(|slot| Expiry {
            deadline: self.removal_time(slot),
            slot,
            generation: self.slab.generation(slot),
        }));
    }

    /// Stops recording expiries (the reaper is gone) and frees what was recorded.
    pub(crate) fn stop_reaping(&mut self) {
        self.reaped = false;
        self.pending = Vec::new();
    }

    /// Moves the expiries not yet handed out into `out`.
    pub(crate) fn take_pending(&mut self, out: &mut Vec<Expiry>) {
        out.append(&mut self.pending);
    }

    /// Whether `expiry` still describes a live entry.
    #[inline]
    pub(crate) fn is_current(&self, expiry: &Expiry) -> bool {
        self.slab.live(expiry.slot, expiry.generation)
            && self.removal_time(expiry.slot) == expiry.deadline
    }

    /// Keeps only the expiries that still describe a live entry, one per entry.
    pub(crate) fn retain_current(&self, expiries: &mut Vec<Expiry>) {
        expiries.retain(|e| self.is_current(e));
        expiries.sort_unstable();
        expiries.dedup();
    }

    /// Removes the entry `expiry` names if it is current and its time to leave has passed.
    pub(crate) fn expire(
        &mut self,
        hasher: &DefaultHashBuilder,
        expiry: &Expiry,
        now: Nanos,
    ) -> bool {
        if self.is_current(expiry) && expiry.deadline <= now {
            self.remove_slot(hasher, expiry.slot);
            true
        } else {
            false
        }
    }

    /// Expiries waiting for the reaper.
    #[cfg(any(test, feature = "test-hooks"))]
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Panics unless slab, index and bounds agree.
    #[cfg(any(test, feature = "test-hooks"))]
    pub(crate) fn validate(&self, hasher: &DefaultHashBuilder) {
        self.slab.validate();
        assert!(self.slab.len() <= self.capacity, "size within capacity");
        assert_eq!(self.index.len(), self.slab.len(), "index and list agree");
        for slot in self.slab.iter_recency() {
            let key = self.slab.key(slot);
            assert_eq!(
                self.find(hasher.hash_one(key), key),
                Some(slot),
                "index maps the key of slot {slot} to it"
            );
        }
        assert!(self.pending.len() <= 2 * self.capacity + BOUND_SLACK);
    }
}
