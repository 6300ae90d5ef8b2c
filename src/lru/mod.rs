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
//! never holds more than its capacity. The shard count ([`Cache::for_loops`]) grows with
//! the capacity above [`SMALL_CACHE_MAX`] entries and with the event loops that read the
//! cache ([`SHARDS_PER_LOOP`] each), so that loops do not queue on one lock, but never
//! leaves a shard fewer than [`MIN_SHARD_ENTRIES`]. A cache read by one loop, or smaller
//! than twice that minimum, is one shard and its eviction order is global; otherwise each
//! shard evicts its own least recently used entry.
//!
//! Ordering: a hit holds only the read lock and records `(slot, generation)` in a lossy
//! per-shard buffer; the buffer is replayed in order by whoever takes the write lock
//! (insert, remove, expiry, or the reader that filled it), always before an eviction
//! decision. With one shard, reads from one thread, one after another, are therefore
//! promoted exactly in order: LRU order is exact for a single client (the reader that
//! fills the buffer drains it before it returns, waiting for the write lock if need be).
//! Under contention, hits of other readers that land while the buffer is full are dropped
//! from it (still served and counted), so LRU order is approximate: a hot entry can lose a
//! promotion, never a value. With several shards,
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
//! removes it. The reaper ([`crate::reaper`]) removes the rest in the background. With a
//! stale window (`stale`), both leave an expired entry that may be served stale until
//! the window has passed too; reads still miss it.
//!
//! Memory: nothing is sized by the capacity alone, which may be billions. A shard reserves
//! room for its capacity up to 65,536 entries, and past that its slab, arena and index grow
//! (by doubling) as entries arrive.
//!
//! Coherence (Redis invalidation messages, see `coherence`): [`Cache::invalidate`]
//! removes a key and cancels the fills of it in flight; [`Cache::clear`] removes
//! everything and cancels every fill in flight. A fill takes a [`Ticket`]
//! ([`Cache::ticket`]) before sending its request to Redis and stores the answer with
//! [`Cache::fill`], which never stores a value if the key was invalidated, or the cache
//! cleared, after the ticket was taken. [`Cache::insert`] stays unconditional.
//!
//! Files: this one holds [`Cache`], its construction, lookups, inserts and removals;
//! `counters` the hit and miss stripes and [`CacheStats`]; `coherence` tickets, fills,
//! invalidation and clear; `stale` the stale window and stale answers; `expiries`
//! what the expiry reaper calls; `shard`, `slab`,
//! `access` and `policy` the parts of a shard; `tests.rs` the unit tests. Hooks that
//! only tests use (`hooks.rs`: `Cache::validate`, `Cache::keys_by_recency`, ...) exist
//! only in test builds and with the `test-hooks` feature.
//!
//! This room knows keys, values and deadlines only: nothing of HTTP, RESP, Redis, the
//! event loops or the counters' rendering (it imports nothing but `clock`).

mod access;
mod coherence;
mod counters;
mod expiries;
#[cfg(any(test, feature = "test-hooks"))]
mod hooks;
mod policy;
mod shard;
mod slab;
mod stale;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hashbrown::DefaultHashBuilder;

pub use self::coherence::{Fill, Ticket};
pub use self::counters::CacheStats;
use self::counters::LookupCounters;
pub use self::policy::Policy;
pub(crate) use self::shard::Expiry;
use self::shard::{Counters, Displaced, Shard, ShardState};
use self::slab::TooBig;
#[cfg(test)]
pub use self::stale::expired_entry_for_test;
use crate::clock::{Clock, Nanos};

/// Capacities up to this use one shard when one event loop reads the cache, so eviction
/// follows exact global LRU order; above it, shards follow the capacity too.
pub const SMALL_CACHE_MAX: usize = 4096;

/// Shards per event loop: with this many, two loops' lookups rarely meet on one lock (the
/// shard of a key is random), where one shard for all loops made every hit of every loop
/// bounce one lock's cache line.
pub const SHARDS_PER_LOOP: usize = 4;

/// Fewest entries a shard keeps when the cache is split for its loops: a shard's own LRU
/// order strays from the global one by about one shard's share of the cache, so a small
/// cache stays one shard (exact LRU) below twice this.
pub const MIN_SHARD_ENTRIES: usize = 64;

/// Fewest shards for a sharded cache: enough to keep lock contention low on a few cores.
const MIN_SHARDS: usize = 16;

/// Most shards: more only adds per-shard fixed cost and makes each shard's LRU coarser.
const MAX_SHARDS: usize = 64;

/// Aim for at least this many entries per shard, so per-shard LRU stays close to global LRU.
const TARGET_SHARD_ENTRIES: usize = 2048;

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
    /// How long past its deadline an entry may be served stale; 0: never (see `stale`).
    stale_window: Nanos,
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
    /// A cache of at most `capacity` entries (>= 1), each living `ttl` after insertion,
    /// read by one event loop.
    pub fn new(capacity: usize, ttl: Duration, clock: Clock) -> Cache {
        Cache::for_loops(capacity, ttl, clock, 1)
    }

    /// Like [`Cache::new`] for a cache that `loops` event loops read at once: sharded for
    /// them as far as the capacity allows (see [`SHARDS_PER_LOOP`]).
    pub fn for_loops(capacity: usize, ttl: Duration, clock: Clock, loops: usize) -> Cache {
        Cache::with_shards(capacity, ttl, clock, default_shards(capacity, loops))
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
            lookup_counters: LookupCounters::stripes(),
            shard_mask: shards.len() as u64 - 1,
            shards,
            hasher: DefaultHashBuilder::default(),
            capacity,
            policy,
            ttl: u64::try_from(ttl.as_nanos()).unwrap_or(Nanos::MAX),
            clock,
            epoch: AtomicU64::new(0),
            stale_window: 0,
        }
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
                self.remove_expired(shard, hash, key, deadline, now);
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

    /// Removes `key`, found expired (with `deadline`) by a read, unless someone replaced it
    /// meanwhile or it is kept for stale answers.
    #[cold]
    fn remove_expired(&self, shard: &Shard, hash: u64, key: &[u8], deadline: Nanos, now: Nanos) {
        if self.keeps_expired(deadline, now) {
            return;
        }
        let mut state = shard.state.write();
        state.apply_reads(&shard.reads);
        if let Some(slot) = state.find(hash, key)
            && !self.keeps_expired(state.slab.deadline(slot), now)
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
        let deadline = stale::deadline(self.clock.now(), self.ttl, self.stale_window, true);
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
        if state.reaped() {
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
}

/// Shards for `capacity` entries read by `loops` event loops: a power of two, the most of
/// what the capacity and the loops ask for, at most [`MAX_SHARDS`] and never so many that
/// a shard holds fewer than [`MIN_SHARD_ENTRIES`] (one shard when even two would).
fn default_shards(capacity: usize, loops: usize) -> usize {
    let for_capacity = if capacity <= SMALL_CACHE_MAX {
        1
    } else {
        (capacity / TARGET_SHARD_ENTRIES)
            .next_power_of_two()
            .max(MIN_SHARDS)
    };
    let for_loops = if loops <= 1 {
        1
    } else {
        loops
            .saturating_mul(SHARDS_PER_LOOP)
            .min(MAX_SHARDS)
            .next_power_of_two()
    };
    let room = (capacity / MIN_SHARD_ENTRIES).max(1);
    let room = 1 << room.ilog2();
    for_capacity.max(for_loops).min(room).min(MAX_SHARDS)
}

#[cfg(test)]
mod tests;
