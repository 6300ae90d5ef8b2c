//! The sharded, slab-backed, intrusive LRU cache with one global time to live.
//!
//! Keys hash (foldhash) to one of a power-of-two number of shards, each behind its own
//! `RwLock`. A shard is a slab of nodes linked into a recency list by `u32` indices, plus a
//! `HashTable<u32>` index of slots (see [`shard`]). Entries (`deadline || lengths || key ||
//! value`) are packed into one byte arena per shard (see [`slab`]): no allocation and no
//! allocator header per entry, and 20-byte nodes. A hit copies the value out under the
//! read lock ([`Cache::get_with`]), allocating nothing and touching no shared reference
//! count; 1,000,000 entries of 16-byte keys and 32-byte values cost about 46 bytes each
//! beyond key and value (node 20, arena header and alignment 16, index about 10).
//!
//! Capacity is split between shards (the first shards take the remainder), so the cache
//! never holds more than its capacity. Up to [`SINGLE_SHARD_MAX`] entries there is one shard
//! and eviction order is global; above, each shard evicts its own least recently used entry.
//!
//! Ordering: a hit holds only the read lock and records `(slot, generation)` in a lossy
//! per-shard buffer; the buffer is replayed in order by whoever takes the write lock
//! (insert, remove, expiry, or the reader that filled it), always before an eviction
//! decision. With one shard, reads from one thread, one after another, are therefore
//! promoted exactly in order: LRU order is exact for a single client (the reader that
//! fills the buffer drains it before it returns, waiting for the write lock if need be).
//! Under contention, hits of other readers that land while the buffer is full are dropped
//! from it (still served and counted), so LRU order is approximate: a hot entry can lose a
//! promotion, never a value. With several shards (capacity above [`SINGLE_SHARD_MAX`]),
//! each shard evicts by CLOCK, the classic LRU approximation: a hit only sets the entry's
//! reference bit (a relaxed store, skipped when already set; no relink, no buffer, no
//! write lock), and eviction walks from the least recently inserted or rescued end,
//! giving each referenced entry a second chance at the front (clearing its bit) and
//! evicting the first unreferenced one. An entry read since it last reached the front
//! is therefore never evicted before one that was not read.
//!
//! The policy is a type, [`Policy`] ([`Cache::policy`]): [`Policy::ExactLru`] for one
//! shard, [`Policy::Clock`] for several. It says what a hit records and which entry a full
//! shard evicts; the hit path matches on it once, as it did on the `bool` it replaced.
//!
//! Expiry: an entry with `deadline <= now` is absent for every read; the read that finds it
//! removes it. The reaper ([`crate::reaper`]) removes the rest in the background.
//!
//! Memory: nothing is sized by the capacity, which may be billions. A shard starts with
//! room for at most 1,024 entries, and its slab, arena and index grow (by doubling) as
//! entries arrive.
//!
//! Coherence (Redis invalidation messages): [`Cache::invalidate`] removes a key and
//! cancels the fills of it in flight; [`Cache::clear`] removes everything (counting
//! neither evictions nor expirations) and cancels every fill in flight. A fill takes a
//! [`Ticket`] ([`Cache::ticket`]: two atomic loads, no lock, no allocation) before sending
//! its request to Redis and stores the answer with [`Cache::fill`], which decides under
//! the shard's write lock and never stores a value if the key was invalidated, or the
//! cache cleared, after the ticket was taken. Each shard numbers its invalidations and
//! remembers the key hashes of the last 64; a ticket holds the shard's number and the
//! cache's clear epoch. A fill is cancelled when the epoch changed, when one of the
//! invalidations since its ticket was of its key's hash, or when more than 64 were (it can
//! no longer tell): an invalidation of an unrelated key costs at most a later refetch.
//! [`Cache::insert`] stays unconditional. Cleared slots keep their nodes with a new
//! generation, so the reaper's heap entries and buffered hits that name them are stale,
//! never wrong.

mod access;
mod policy;
mod shard;
mod slab;

use std::cell::Cell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hashbrown::DefaultHashBuilder;

pub use self::policy::Policy;
pub(crate) use self::shard::Expiry;
use self::shard::{Counters, Displaced, Shard, ShardState};
use self::slab::TooBig;
use crate::clock::{Clock, Nanos};

/// Capacities up to this use one shard, so eviction follows exact global LRU order.
pub const SINGLE_SHARD_MAX: usize = 4096;

/// Fewest shards for a sharded cache: enough to keep lock contention low on a few cores.
const MIN_SHARDS: usize = 16;

/// Most shards: more only adds per-shard fixed cost and makes each shard's LRU coarser.
const MAX_SHARDS: usize = 64;

/// Aim for at least this many entries per shard, so per-shard LRU stays close to global LRU.
const TARGET_SHARD_ENTRIES: usize = 2048;

/// Counters of one cache, summed over its shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads that found a live entry.
    pub hits: u64,
    /// Reads that found nothing, or only an expired entry.
    pub misses: u64,
    /// Entries added or replaced.
    pub inserts: u64,
    /// Entries removed to make room (capacity).
    pub evictions: u64,
    /// Entries removed because their deadline passed.
    pub expirations: u64,
    /// Entries held now.
    pub size: u64,
    /// Calls of [`Cache::invalidate`] (whether or not the key was held).
    pub invalidations: u64,
    /// Fills refused ([`Fill::Cancelled`]) because of an invalidation or a clear after
    /// their ticket.
    pub cancelled_fills: u64,
}

/// Taken before the request for `key` is sent to Redis; proves which invalidations the
/// fill has seen. 24 bytes, no allocation.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    /// The cache's clear epoch when the ticket was taken.
    epoch: u64,
    /// The latest invalidation of the key's shard when the ticket was taken.
    seq: u64,
    /// The key's hash: a ticket filled under another key is cancelled.
    hash: u64,
}

/// What a fill did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// The value was stored (as by [`Cache::insert`]).
    Stored,
    /// Nothing was stored: the key (or, conservatively, another key of its shard) was
    /// invalidated, or the cache cleared, after the ticket was taken.
    Cancelled,
    /// Nothing was stored: the entry is too big (as when [`Cache::insert`] returns false).
    TooBig,
}

/// Stripes of the hit and miss counters.
const LOOKUP_STRIPES: usize = 16;

/// Hit and miss counts of the threads on one stripe, on their own cache lines: lookups on
/// different threads write different lines (a shared counter would bounce between cores
/// on every hit).
#[derive(Debug, Default)]
#[repr(align(128))]
struct LookupCounters {
    hits: AtomicU64,
    misses: AtomicU64,
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's stripe, handed out round robin on its first lookup.
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The concurrent LRU cache with a global time to live.
pub struct Cache {
    lookup_counters: Box<[LookupCounters]>,
    shards: Box<[Shard]>,
    /// `shards.len() - 1`; the shard count is a power of two.
    shard_mask: u64,
    hasher: DefaultHashBuilder,
    capacity: usize,
    policy: Policy,
    ttl: Nanos,
    clock: Clock,
    /// Calls of [`Cache::clear`] so far: a fill whose ticket saw an older epoch is cancelled.
    epoch: AtomicU64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("shards", &self.shards.len())
            .field("capacity", &self.capacity)
            .field("ttl_ns", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A cache of at most `capacity` entries (>= 1), each living `ttl` after insertion.
    pub fn new(capacity: usize, ttl: Duration, clock: Clock) -> Cache {
        Cache::with_shards(capacity, ttl, clock, default_shards(capacity))
    }

    /// Like [`Cache::new`] with an explicit shard count (a power of two, at most `capacity`).
    pub fn with_shards(capacity: usize, ttl: Duration, clock: Clock, shards: usize) -> Cache {
        assert!(capacity >= 1, "cache capacity must be at least 1");
        assert!(
            shards.is_power_of_two(),
            "shard count must be a power of two"
        );
        assert!(
            shards <= capacity,
            "every shard must hold at least one entry"
        );
        let base = capacity / shards;
        let extra = capacity % shards;
        let policy = Policy::for_shards(shards);
        let shards: Box<[Shard]> = (0..shards)
            .map(|i| Shard::new(base + usize::from(i < extra), policy))
            .collect();
        Cache {
            lookup_counters: (0..LOOKUP_STRIPES)
                .map(|_| LookupCounters::default())
                .collect(),
            shard_mask: shards.len() as u64 - 1,
            shards,
            hasher: DefaultHashBuilder::default(),
            capacity,
            policy,
            ttl: u64::try_from(ttl.as_nanos()).unwrap_or(Nanos::MAX),
            clock,
            epoch: AtomicU64::new(0),
        }
    }

    /// The calling thread's hit and miss counters.
    #[inline]
    fn lookups(&self) -> &LookupCounters {
        let stripe = STRIPE.with(|stripe| {
            let mut n = stripe.get();
            if n == usize::MAX {
                n = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % LOOKUP_STRIPES;
                stripe.set(n);
            }
            n
        });
        &self.lookup_counters[stripe]
    }

    #[inline]
    fn locate(&self, key: &[u8]) -> (u64, &Shard) {
        let hash = self.hasher.hash_one(key);
        // hashbrown uses the low bits (bucket) and the top 7 bits (tag); take the shard from
        // the middle so keys within a shard still spread over both.
        let shard = ((hash >> 32) & self.shard_mask) as usize;
        (hash, &self.shards[shard])
    }

    /// Looks `key` up and returns a copy of its value; a hit moves the entry to the front
    /// of its shard's LRU order. Allocates the copy: the proxy's lookups use
    /// [`Cache::get_with`], which does not.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get_with(key, self.clock.now(), <[u8]>::to_vec)
    }

    /// Looks `key` up as of `now`, a reading of this cache's clock taken by the caller,
    /// and on a hit returns what `read` makes of the value. `read` runs under the shard's
    /// read lock (other readers go on; writers of this shard wait), so it should only copy
    /// the bytes somewhere, such as into a buffer the caller reuses: a hit allocates nothing and
    /// touches no shared reference count. An entry whose deadline is at or before `now` is
    /// absent. An event loop reads the clock once when a batch of pipelined requests
    /// arrives and looks every key of the batch up as of that moment.
    #[inline]
    pub fn get_with<R>(&self, key: &[u8], now: Nanos, read: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let (hash, shard) = self.locate(key);
        let (answer, full) = {
            let state = shard.state.read();
            let Some(slot) = state.find(hash, key) else {
                drop(state);
                self.lookups().misses.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            let (deadline, _, value) = state.slab.parts(slot);
            if deadline <= now {
                drop(state);
                self.remove_expired(shard, hash, key, now);
                self.lookups().misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            let answer = read(value);
            let full = state.policy.record_hit(&state.slab, &shard.reads, slot);
            (answer, full)
        };
        if full {
            // Only the exact (one-shard) LRU buffers hits. Drain it now, waiting for the
            // write lock if a writer or the reaper holds it: a client whose reads follow one
            // another then never finds the buffer full, so none of its hits is dropped.
            shard.state.write().apply_reads(&shard.reads);
        }
        self.lookups().hits.fetch_add(1, Ordering::Relaxed);
        Some(answer)
    }

    /// [`Cache::get_with`] that appends the value to `out`; true on a hit. The proxy's
    /// lookups use this with a buffer each event loop reuses.
    #[inline]
    pub fn get_into(&self, key: &[u8], now: Nanos, out: &mut Vec<u8>) -> bool {
        self.get_with(key, now, |value| out.extend_from_slice(value))
            .is_some()
    }

    /// What `read` makes of the live value of `key` as of now, without counting a hit or
    /// a miss and without promoting it: for a second look that must not skew the counters
    /// or the LRU order.
    pub fn peek_with<R>(&self, key: &[u8], read: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let (hash, shard) = self.locate(key);
        let state = shard.state.read();
        let (deadline, _, value) = state.slab.parts(state.find(hash, key)?);
        (deadline > self.clock.now()).then(|| read(value))
    }

    /// Removes `key` found expired by a read, unless someone replaced it meanwhile.
    #[cold]
    fn remove_expired(&self, shard: &Shard, hash: u64, key: &[u8], now: Nanos) {
        let mut state = shard.state.write();
        state.apply_reads(&shard.reads);
        if let Some(slot) = state.find(hash, key)
            && state.slab.deadline(slot) <= now
        {
            state.remove_slot(&self.hasher, slot);
            Counters::bump(&shard.counters.expirations);
            shard
                .counters
                .size
                .store(state.slab.len() as u64, Ordering::Relaxed);
        }
    }

    /// Adds or replaces `key`, evicting the least recently used entry of the shard if full.
    /// Returns false, storing nothing and evicting nothing, when the key is longer than
    /// 65,535 bytes or the value than 4 GiB (or the shard's arena is full).
    pub fn insert(&self, key: &[u8], value: &[u8]) -> bool {
        let deadline = self.clock.now().saturating_add(self.ttl);
        let (hash, shard) = self.locate(key);
        let mut state = shard.state.write();
        state.apply_reads(&shard.reads);
        let displaced =
            Self::store_locked(shard, &mut state, &self.hasher, hash, deadline, key, value);
        drop(state);
        Self::count_insert(shard, displaced)
    }

    /// The write-locked part of an insert into `shard`, whose state `state` is.
    fn store_locked(
        shard: &Shard,
        state: &mut ShardState,
        hasher: &DefaultHashBuilder,
        hash: u64,
        deadline: Nanos,
        key: &[u8],
        value: &[u8],
    ) -> Result<Displaced, TooBig> {
        let displaced = state.insert(hasher, hash, deadline, key, value);
        shard
            .counters
            .size
            .store(state.slab.len() as u64, Ordering::Relaxed);
        if state.tracking() {
            shard.has_pending.store(true, Ordering::Release);
        }
        displaced
    }

    /// Counts an insert into `shard` after its lock is released; true if it stored.
    fn count_insert(shard: &Shard, displaced: Result<Displaced, TooBig>) -> bool {
        match displaced {
            Ok(displaced) => {
                Counters::bump(&shard.counters.inserts);
                if displaced == Displaced::Evicted {
                    Counters::bump(&shard.counters.evictions);
                }
                true
            }
            Err(TooBig) => false,
        }
    }

    /// A ticket for a fill of `key`: take it before sending the request for `key` to
    /// Redis, and pass it to [`Cache::fill`] with the answer. Two atomic loads, no lock.
    pub fn ticket(&self, key: &[u8]) -> Ticket {
        let (hash, shard) = self.locate(key);
        Ticket {
            // Epoch first: a clear that bumps it after this load cancels the fill.
            epoch: self.epoch.load(Ordering::Acquire),
            // Acquire pairs with the Release store of `invalidate`: a ticket that sees an
            // invalidation also sees everything its caller did before it (such as a
            // model's new version in the tests, or Redis's answer ordering in the proxy).
            seq: shard.invalidation_seq.load(Ordering::Acquire),
            hash,
        }
    }

    /// Stores `value` unless `key` was invalidated, or the cache cleared, after `ticket`
    /// was taken. May also cancel when another key of the same shard was invalidated
    /// (always when more than 64 were since the ticket): that
    /// costs only a later refetch. A ticket taken for another key is cancelled.
    pub fn fill(&self, ticket: Ticket, key: &[u8], value: &[u8]) -> Fill {
        let deadline = self.clock.now().saturating_add(self.ttl);
        let (hash, shard) = self.locate(key);
        let mut state = shard.state.write();
        // The decision and the store happen under the shard's write lock, which
        // `invalidate` (of this shard) and `clear` (of every shard) also take. So for an
        // invalidation or a clear after the ticket, either
        // - its locked section came first: this section happens after it and sees its
        //   effect. `invalidate` stored `invalidation_seq` > `ticket.seq` and recorded the
        //   key's hash in the ring under that lock, so `invalidated_since` finds the hash
        //   or finds the ring no longer covers the ticket: cancelled. `clear` bumped
        //   `epoch` before taking this shard's lock, so `epoch` != `ticket.epoch`:
        //   cancelled. Or
        // - this section came first: the value is stored, and the invalidation or clear,
        //   which removes it under the same lock afterwards, takes it out again.
        // Either way no value fetched under the ticket survives the invalidation or clear.
        // Sequence numbers only grow (u64, never wrapping), so `ticket.seq` <= the value
        // read here whenever the ticket was taken before this call.
        let cancelled = ticket.hash != hash
            || self.epoch.load(Ordering::Acquire) != ticket.epoch
            || state.invalidated_since(
                hash,
                ticket.seq,
                shard.invalidation_seq.load(Ordering::Relaxed),
            );
        if cancelled {
            drop(state);
            Counters::bump(&shard.counters.cancelled_fills);
            return Fill::Cancelled;
        }
        state.apply_reads(&shard.reads);
        let displaced =
            Self::store_locked(shard, &mut state, &self.hasher, hash, deadline, key, value);
        drop(state);
        if Self::count_insert(shard, displaced) {
            Fill::Stored
        } else {
            Fill::TooBig
        }
    }

    /// Removes `key` and cancels fills of it whose ticket was taken before this call.
    /// True if an entry was removed.
    pub fn invalidate(&self, key: &[u8]) -> bool {
        let (hash, shard) = self.locate(key);
        let mut state = shard.state.write();
        state.apply_reads(&shard.reads);
        // Under the write lock: the ring entry and the new sequence number are seen
        // together by every later `fill` of this shard (see there).
        let seq = shard.invalidation_seq.load(Ordering::Relaxed) + 1;
        state.record_invalidation(seq, hash);
        shard.invalidation_seq.store(seq, Ordering::Release);
        let removed = state.remove_key(hash, key);
        shard
            .counters
            .size
            .store(state.slab.len() as u64, Ordering::Relaxed);
        drop(state);
        Counters::bump(&shard.counters.invalidations);
        removed
    }

    /// Removes every entry (counted neither as evictions nor as expirations) and cancels
    /// every fill whose ticket was taken before this call. Shards are emptied one after
    /// another: a concurrent insert may land in a shard already emptied.
    pub fn clear(&self) {
        // Bump the epoch before emptying any shard: a fill that takes a shard's lock after
        // this call has emptied that shard sees the new epoch (see `fill`).
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for shard in self.shards.iter() {
            let mut state = shard.state.write();
            // Drop buffered hits: they name slots whose generation is about to change.
            state.apply_reads(&shard.reads);
            state.clear();
            shard.counters.size.store(0, Ordering::Relaxed);
        }
    }

    /// Removes `key`; true if it was present.
    pub fn remove(&self, key: &[u8]) -> bool {
        let (hash, shard) = self.locate(key);
        let mut state = shard.state.write();
        state.apply_reads(&shard.reads);
        let removed = state.remove_key(hash, key);
        shard
            .counters
            .size
            .store(state.slab.len() as u64, Ordering::Relaxed);
        drop(state);
        removed
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.counters.size.load(Ordering::Relaxed) as usize)
            .sum()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configured capacity in entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Counters summed over all shards.
    pub fn stats(&self) -> CacheStats {
        let mut stats = CacheStats::default();
        for stripe in self.lookup_counters.iter() {
            stats.hits += stripe.hits.load(Ordering::Relaxed);
            stats.misses += stripe.misses.load(Ordering::Relaxed);
        }
        for shard in self.shards.iter() {
            let c = &shard.counters;
            stats.inserts += c.inserts.load(Ordering::Relaxed);
            stats.evictions += c.evictions.load(Ordering::Relaxed);
            stats.expirations += c.expirations.load(Ordering::Relaxed);
            stats.invalidations += c.invalidations.load(Ordering::Relaxed);
            stats.cancelled_fills += c.cancelled_fills.load(Ordering::Relaxed);
            stats.size += c.size.load(Ordering::Relaxed);
        }
        stats
    }

    /// The clock the cache reads deadlines from.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// How the cache evicts: [`Policy::ExactLru`] with one shard, else [`Policy::Clock`].
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Number of shards (a power of two).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
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

    // ---- for the reaper -------------------------------------------------------------

    /// Entries shard `shard` may hold.
    pub(crate) fn shard_capacity(&self, shard: usize) -> usize {
        self.shards[shard].state.read().capacity()
    }

    /// Makes inserts into shard `shard` record expiries for a reaper, and appends the
    /// expiries of its live entries to `out`. One reaper per cache.
    pub(crate) fn start_tracking(&self, shard: usize, out: &mut Vec<Expiry>) {
        let shard = &self.shards[shard];
        let mut state = shard.state.write();
        state.start_tracking(out);
        shard.has_pending.store(false, Ordering::Relaxed);
    }

    /// Stops recording expiries in every shard (the reaper is gone).
    pub(crate) fn stop_tracking(&self) {
        for shard in self.shards.iter() {
            shard.state.write().stop_tracking();
        }
    }

    /// Moves shard `shard`'s new expiries into `out` (skips the lock when there are none).
    pub(crate) fn take_expiries(&self, shard: usize, out: &mut Vec<Expiry>) {
        let shard = &self.shards[shard];
        if !shard.has_pending.swap(false, Ordering::Acquire) {
            return;
        }
        let mut state = shard.state.write();
        state.take_pending(out);
    }

    /// Removes the entries of `batch` (all in shard `shard`) that are still current and
    /// past their deadline, under one write lock; returns how many.
    pub(crate) fn expire_batch(&self, shard: usize, batch: &[Expiry], now: Nanos) -> usize {
        let shard = &self.shards[shard];
        let mut state = shard.state.write();
        state.apply_reads(&shard.reads);
        let removed = batch
            .iter()
            .filter(|e| state.expire(&self.hasher, e, now))
            .count();
        shard
            .counters
            .size
            .store(state.slab.len() as u64, Ordering::Relaxed);
        shard
            .counters
            .expirations
            .fetch_add(removed as u64, Ordering::Relaxed);
        removed
    }

    /// Keeps the expiries of shard `shard` that still describe a live entry, one each.
    pub(crate) fn retain_current(&self, shard: usize, expiries: &mut Vec<Expiry>) {
        self.shards[shard].state.read().retain_current(expiries);
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

fn default_shards(capacity: usize) -> usize {
    if capacity <= SINGLE_SHARD_MAX {
        1
    } else {
        (capacity / TARGET_SHARD_ENTRIES)
            .next_power_of_two()
            .clamp(MIN_SHARDS, MAX_SHARDS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(capacity: usize, shards: usize) -> Cache {
        Cache::with_shards(capacity, Duration::from_secs(10), Clock::manual(), shards)
    }

    #[test]
    fn shard_count_is_one_up_to_4096_then_sharded() {
        assert_eq!(default_shards(1), 1);
        assert_eq!(default_shards(4096), 1);
        let n = default_shards(4097);
        assert!(n.is_power_of_two() && (16..=64).contains(&n));
        assert_eq!(default_shards(10_000_000), 64);
    }

    #[test]
    fn capacity_split_sums_exactly() {
        for capacity in [4097, 10_000, 100_003, 1 << 20] {
            let c = Cache::new(capacity, Duration::from_secs(1), Clock::manual());
            c.validate();
            assert_eq!(c.capacity(), capacity);
        }
    }

    #[test]
    fn get_with_reads_the_value_bytes_only() {
        let c = cache(4, 1);
        assert!(c.insert(b"key", b"value"));
        let mut out = b"prefix ".to_vec();
        let now = c.clock().now();
        assert_eq!(
            c.get_with(b"key", now, |v| out.extend_from_slice(v)),
            Some(())
        );
        assert_eq!(out, b"prefix value");
        assert_eq!(c.get_with(b"nope", now, |v| v.len()), None);
        assert!(c.insert(b"", b""));
        assert_eq!(c.get(b"").as_deref(), Some(&b""[..]));
        assert_eq!(
            c.peek_with(b"key", <[u8]>::to_vec).as_deref(),
            Some(&b"value"[..])
        );
        let s = c.stats();
        assert_eq!((s.hits, s.misses), (2, 1), "peek counts nothing");
    }

    #[test]
    fn get_into_appends_the_value_on_a_hit_only() {
        let c = cache(4, 1);
        c.insert(b"key", b"value");
        let now = c.clock().now();
        let mut out = b"[".to_vec();
        assert!(c.get_into(b"key", now, &mut out));
        assert!(!c.get_into(b"nope", now, &mut out));
        assert_eq!(out, b"[value");
    }

    #[test]
    fn values_of_every_size_round_trip_through_arena_and_large_entries() {
        let c = cache(64, 1);
        for len in [0usize, 1, 7, 8, 9, 100, 4000, 4080, 4081, 5000, 1 << 20] {
            let value: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            assert!(c.insert(&len.to_be_bytes(), &value));
            assert_eq!(
                c.get(&len.to_be_bytes()).as_deref(),
                Some(&value[..]),
                "{len}"
            );
        }
        // Replace each with another size, churn, and read back again.
        for len in [0usize, 1, 7, 8, 9, 100, 4000, 4080, 4081, 5000, 1 << 20] {
            let value = vec![b'x'; (len * 3 + 1) % 9000];
            assert!(c.insert(&len.to_be_bytes(), &value));
            assert_eq!(c.get(&len.to_be_bytes()).as_deref(), Some(&value[..]));
        }
        c.validate();
    }

    #[test]
    fn full_shard_evicts_least_recently_read() {
        let c = cache(3, 1);
        c.insert(b"a", b"1");
        c.insert(b"b", b"2");
        c.insert(b"c", b"3");
        assert!(c.get(b"a").is_some());
        c.insert(b"d", b"4");
        assert!(c.get(b"b").is_none(), "b was least recently used");
        assert!(c.get(b"a").is_some());
        c.validate();
        let s = c.stats();
        assert_eq!((s.evictions, s.size, s.inserts), (1, 3, 4));
    }

    #[test]
    fn sharded_eviction_gives_read_entries_a_second_chance() {
        let c = cache(8, 2); // 4 entries per shard
        let keys: Vec<Vec<u8>> = (0u32..)
            .map(|i| i.to_be_bytes().to_vec())
            .filter(|k| std::ptr::eq(c.locate(k).1, &c.shards[0]))
            .take(6)
            .collect();
        for key in &keys[..4] {
            c.insert(key, b"v");
        }
        assert!(c.get(&keys[0]).is_some(), "keys[0] is now referenced");
        c.insert(&keys[4], b"v");
        assert!(
            c.peek_contains(&keys[0]),
            "the read entry got a second chance"
        );
        assert!(
            !c.peek_contains(&keys[1]),
            "the oldest unread entry was evicted"
        );
        // keys[0] went to the front with its bit cleared: unread since, it ages again.
        c.insert(&keys[5], b"v");
        assert!(!c.peek_contains(&keys[2]));
        assert!(c.peek_contains(&keys[0]));
        assert_eq!(c.stats().evictions, 2);
        c.validate();
    }

    #[test]
    fn many_sequential_hits_keep_exact_order() {
        let c = cache(100, 1);
        for i in 0..100u32 {
            c.insert(&i.to_be_bytes(), b"v");
        }
        // Read in reverse, several buffer-lengths' worth, then check the whole order.
        for round in 0..5 {
            for i in (0..100u32).rev() {
                assert!(c.get(&i.to_be_bytes()).is_some(), "round {round} key {i}");
            }
        }
        let order: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_be_bytes().to_vec()).collect();
        assert_eq!(c.keys_by_recency(0), order);
        c.validate();
    }

    #[test]
    fn expired_entry_is_a_miss_and_removed_on_read() {
        let clock = Clock::manual();
        let c = Cache::with_shards(4, Duration::from_millis(100), clock.clone(), 1);
        c.insert(b"k", b"v");
        clock.advance(Duration::from_millis(99));
        assert!(c.get(b"k").is_some());
        clock.advance(Duration::from_millis(1));
        assert!(c.get(b"k").is_none(), "deadline <= now is expired");
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.expirations, s.size), (1, 1, 1, 0));
        c.validate();
    }

    #[test]
    fn reinsert_replaces_value_and_deadline() {
        let clock = Clock::manual();
        let c = Cache::with_shards(4, Duration::from_millis(100), clock.clone(), 1);
        c.insert(b"k", b"old");
        clock.advance(Duration::from_millis(60));
        c.insert(b"k", b"new");
        clock.advance(Duration::from_millis(60));
        assert_eq!(c.get(b"k").as_deref(), Some(&b"new"[..]));
        assert_eq!(c.len(), 1);
        c.validate();
    }

    #[test]
    fn remove_reports_presence() {
        let c = cache(4, 1);
        c.insert(b"k", b"v");
        assert!(c.remove(b"k"));
        assert!(!c.remove(b"k"));
        assert!(c.is_empty());
        c.validate();
    }

    #[test]
    fn pending_expiries_are_not_recorded_without_a_reaper() {
        let c = cache(8, 1);
        c.insert(b"k", b"v");
        assert_eq!(c.pending_expiries(), 0);
    }

    #[test]
    fn pending_expiries_stay_bounded_when_the_reaper_lags() {
        let c = cache(8, 1);
        c.start_tracking(0, &mut Vec::new());
        for i in 0..10_000u32 {
            c.insert(&(i % 20).to_be_bytes(), b"v");
        }
        assert!(c.pending_expiries() <= 2 * 8 + 64);
        c.validate();
    }

    #[test]
    fn a_key_over_64_kib_is_refused_without_evicting_anything() {
        let c = cache(1, 1);
        assert!(c.insert(b"k", b"v"));
        let long = vec![b'k'; 65_536];
        assert!(!c.insert(&long, b"v"));
        assert!(c.get(&long).is_none());
        assert_eq!(
            c.get(b"k").as_deref(),
            Some(&b"v"[..]),
            "nothing was evicted for it"
        );
        assert!(
            c.insert(&long[..65_535], b"v"),
            "65,535 bytes is the longest key"
        );
        assert_eq!(c.stats().evictions, 1);
        c.validate();
    }

    #[test]
    fn a_huge_capacity_costs_memory_only_for_what_is_stored() {
        // Near PROXY_MAX_KEYS's maximum: tables pre-sized with the capacity would ask for
        // hundreds of GiB here and abort the process.
        let c = Cache::new(4_000_000_000, Duration::from_secs(10), Clock::manual());
        assert_eq!(c.shard_count(), MAX_SHARDS);
        for i in 0..1000u32 {
            assert!(c.insert(&i.to_be_bytes(), b"v"));
        }
        for i in 0..1000u32 {
            assert_eq!(c.get(&i.to_be_bytes()).as_deref(), Some(&b"v"[..]));
        }
        assert_eq!(c.len(), 1000);
        assert_eq!(c.slots(), 1000);
        c.validate();
    }

    #[test]
    fn cache_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Cache>();
    }
}
