//! The cache's side of the expiry reaper ([`crate::reaper`]): a shard records the
//! expiry of each insert only while a reaper tracks it, hands those over in batches, and
//! removes the entries a reaper found past their deadline, skipping any whose slot was
//! freed or re-inserted since (generation or deadline changed).

use std::sync::atomic::Ordering;

use super::Cache;
use super::shard::Expiry;
use crate::clock::Nanos;

impl Cache {
    /// Entries shard `shard` may hold.
    pub(crate) fn shard_capacity(&self, shard: usize) -> usize {
        self.shards[shard].state.read().capacity()
    }

    /// Makes inserts into shard `shard` record expiries for a reaper, and appends the
    /// expiries of its live entries to `out`. One reaper per cache.
    pub(crate) fn start_reaping(&self, shard: usize, out: &mut Vec<Expiry>) {
        let shard = &self.shards[shard];
        let mut state = shard.state.write();
        state.start_reaping(out);
        shard.has_pending.store(false, Ordering::Relaxed);
    }

    /// Stops recording expiries in every shard (the reaper is gone).
    pub(crate) fn stop_reaping(&self) {
        for shard in self.shards.iter() {
            shard.state.write().stop_reaping();
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
}
