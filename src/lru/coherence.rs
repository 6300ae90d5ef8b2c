//! Coherence with Redis's invalidation messages: tickets, fills, invalidation and clear.
//!
//! [`Cache::invalidate`] removes a key and cancels the fills of it in flight;
//! [`Cache::clear`] removes everything (counting neither evictions nor expirations) and
//! cancels every fill in flight; [`Cache::clear_where`] removes only the entries whose key
//! it picks, and cancels every fill in flight too. A fill takes a [`Ticket`] ([`Cache::ticket`]: two atomic
//! loads, no lock, no allocation) before sending its request to Redis and stores the
//! answer with [`Cache::fill`], which decides under the shard's write lock and never
//! stores a value if the key was invalidated, or the cache cleared, after the ticket was
//! taken. Each shard numbers its invalidations and keeps, in a table of 1,024 buckets by
//! key hash, the number of the latest invalidation of each bucket; a ticket holds the
//! shard's number and the cache's clear epoch. A fill is cancelled when the epoch changed
//! or when its key's bucket saw an invalidation since its ticket: its own key's, or with
//! odds of one in 1,024 per write an unrelated key's, at any rate of writes (a write-heavy
//! Redis announcing thousands of writes during one fetch no longer cancels every fill of
//! the shard); an unrelated cancellation costs at most a later refetch. [`Cache::insert`] stays unconditional. Cleared slots
//! keep their nodes with a new generation, so the reaper's heap entries and buffered hits
//! that name them are stale, never wrong.

use std::sync::atomic::Ordering;

use super::shard::Counters;

/// Most entries [`Cache::clear_where`] removes under one hold of a shard's write lock.
const CLEAR_CHUNK: usize = 1024;
use super::{Cache, stale};

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
    /// Nothing was stored: the key (or, conservatively, another key of its invalidation bucket) was
    /// invalidated, or the cache cleared, after the ticket was taken.
    Cancelled,
    /// Nothing was stored: the entry is too big (as when [`Cache::insert`] returns false).
    TooBig,
}

impl Cache {
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
    /// was taken. May also cancel when another key of the same invalidation bucket was
    /// invalidated: that costs only a later refetch. A ticket taken for another key is cancelled.
    pub fn fill(&self, ticket: Ticket, key: &[u8], value: &[u8]) -> Fill {
        self.fill_within(ticket, key, value, None)
    }

    /// [`Cache::fill`] for a key that expires in Redis in `key_ttl`: the entry's deadline
    /// is the earlier of the cache's TTL and the key's own, so it never outlives the key;
    /// for the same reason it may be served stale (see `stale`) only if the key outlives
    /// the stale window too.
    pub fn fill_within(
        &self,
        ticket: Ticket,
        key: &[u8],
        value: &[u8],
        key_ttl: Option<std::time::Duration>,
    ) -> Fill {
        let own = key_ttl.map(|own| own.as_nanos().min(u64::MAX as u128) as u64);
        let lifetime = own.map_or(self.ttl, |own| own.min(self.ttl));
        let stale_ok = own.is_none_or(|own| own >= self.ttl.saturating_add(self.stale_window));
        let deadline = stale::deadline(self.clock.now(), lifetime, self.stale_window, stale_ok);
        let (hash, shard) = self.locate(key);
        let mut state = shard.state.write();
        // The decision and the store happen under the shard's write lock, which
        // `invalidate` (of this shard) and `clear` (of every shard) also take. So for an
        // invalidation or a clear after the ticket, either
        // - its locked section came first: this section happens after it and sees its
        //   effect. `invalidate` stored `invalidation_seq` > `ticket.seq` and recorded the
        //   seq in the key's bucket under that lock, so `invalidated_since` finds the
        //   bucket's seq past the ticket's: cancelled. `clear` bumped
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

    /// Whether a fill of `key` under `ticket` would be cancelled now: the key (or,
    /// conservatively, another key of its invalidation bucket) was invalidated, or the cache cleared,
    /// since the ticket was taken. No lock unless the key's shard saw an invalidation.
    pub fn outdated(&self, ticket: Ticket, key: &[u8]) -> bool {
        let (hash, shard) = self.locate(key);
        if ticket.hash != hash || self.epoch.load(Ordering::Acquire) != ticket.epoch {
            return true;
        }
        let latest = shard.invalidation_seq.load(Ordering::Acquire);
        latest != ticket.seq
            && shard
                .state
                .read()
                .invalidated_since(hash, ticket.seq, latest)
    }

    /// The invalidation bucket of `key` in its shard (tests of cancellation).
    #[cfg(feature = "test-hooks")]
    pub fn invalidation_bucket(&self, key: &[u8]) -> usize {
        super::shard::bucket(self.locate(key).0)
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

    /// Removes the entries whose key `doomed` picks (a cluster node's slots) and, like
    /// [`Cache::clear`], cancels every fill whose ticket was taken before this call
    /// (conservatively: those of other keys are only fetched again). The number removed.
    ///
    /// Each shard is read under its read lock (hits go on meanwhile), and the entries
    /// picked are removed under the write lock [`CLEAR_CHUNK`] at a time, each only if its
    /// slot still holds the same entry (same generation): a shard of a large cache is never
    /// locked for the length of a pass over it. Entries picked stay readable until their
    /// chunk is removed, as they were before the call.
    pub fn clear_where(&self, doomed: impl Fn(&[u8]) -> bool) -> usize {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let mut removed = 0;
        let mut picked: Vec<(u32, u32)> = Vec::new();
        for shard in self.shards.iter() {
            picked.clear();
            {
                let state = shard.state.read();
                picked.extend(
                    state
                        .slab
                        .iter_recency()
                        .filter(|&slot| doomed(state.slab.key(slot)))
                        .map(|slot| (slot, state.slab.generation(slot))),
                );
            }
            for chunk in picked.chunks(CLEAR_CHUNK) {
                let mut state = shard.state.write();
                state.apply_reads(&shard.reads);
                for &(slot, generation) in chunk {
                    if state.slab.live(slot, generation) {
                        state.remove_slot(&self.hasher, slot);
                        removed += 1;
                    }
                }
                shard
                    .counters
                    .size
                    .store(state.slab.len() as u64, Ordering::Relaxed);
            }
        }
        removed
    }
}
