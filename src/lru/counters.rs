//! The cache's counters: hits and misses striped over cache lines by thread, and
//! [`CacheStats`], their sum with every shard's own counters (inserts, evictions,
//! expirations, invalidations, cancelled fills, size; see [`super::shard`]).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::Cache;

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
    /// Fills refused ([`super::Fill::Cancelled`]) because of an invalidation or a clear
    /// after their ticket.
    pub cancelled_fills: u64,
}

/// Stripes of the hit and miss counters.
const LOOKUP_STRIPES: usize = 16;

/// Hit and miss counts of the threads on one stripe, on their own cache lines: lookups on
/// different threads write different lines (a shared counter would bounce between cores
/// on every hit).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(super) struct LookupCounters {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
}

impl LookupCounters {
    /// One cache's stripes, all zero.
    pub(super) fn stripes() -> Box<[LookupCounters]> {
        (0..LOOKUP_STRIPES)
            .map(|_| LookupCounters::default())
            .collect()
    }
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's stripe, handed out round robin on its first lookup.
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

impl Cache {
    /// The calling thread's hit and miss counters.
    #[inline]
    pub(super) fn lookups(&self) -> &LookupCounters {
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
}
