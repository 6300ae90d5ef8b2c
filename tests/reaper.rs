//! The reaper removes expired entries without any read touching them, and its heap and
//! the cache's slab stay bounded under churn.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proxyredis::clock::Clock;
use proxyredis::lru::Cache;
use proxyredis::reaper::{Reaper, ReaperCore};

/// Polls `done` until it holds or a few seconds pass.
fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let give_up = Instant::now() + Duration::from_secs(5);
    while Instant::now() < give_up {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}

#[test]
fn expired_entries_vanish_without_reads() {
    let clock = Clock::manual();
    let cache = Arc::new(Cache::new(10_000, Duration::from_secs(1), clock.clone()));
    let reaper = Reaper::spawn(Arc::clone(&cache));
    for i in 0..5_000u32 {
        cache.insert(&i.to_le_bytes(), b"value");
    }
    assert_eq!(cache.len(), 5_000);
    clock.advance(Duration::from_millis(999));
    std::thread::sleep(Duration::from_millis(120)); // two reaper passes: nothing is due yet
    assert_eq!(cache.len(), 5_000, "nothing expires before its deadline");
    clock.advance(Duration::from_millis(1));
    assert!(wait_until(|| cache.is_empty()), "reaper emptied the cache");
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.misses),
        (0, 0),
        "no read touched the entries"
    );
    assert_eq!(stats.expirations, 5_000);
    assert!(wait_until(|| reaper.heap_len() == 0), "heap drained too");
    reaper.stop();
    cache.validate();
}

#[test]
fn entries_cached_before_the_reaper_started_are_reaped_too() {
    let clock = Clock::manual();
    let cache = Arc::new(Cache::new(100, Duration::from_secs(1), clock.clone()));
    for i in 0..50u32 {
        cache.insert(&i.to_le_bytes(), b"v");
    }
    assert_eq!(
        cache.pending_expiries(),
        0,
        "nothing recorded without a reaper"
    );
    let reaper = Reaper::spawn(Arc::clone(&cache));
    clock.advance(Duration::from_secs(1));
    assert!(wait_until(|| cache.is_empty()));
    reaper.stop();
    cache.insert(b"after", b"v");
    assert_eq!(
        cache.pending_expiries(),
        0,
        "recording stops with the reaper"
    );
}

#[test]
fn expired_entries_vanish_with_the_real_clock() {
    let cache = Arc::new(Cache::new(100, Duration::from_millis(20), Clock::real()));
    let _reaper = Reaper::spawn(Arc::clone(&cache));
    for i in 0..100u32 {
        cache.insert(&i.to_le_bytes(), b"v");
    }
    assert!(wait_until(|| cache.is_empty()));
    assert_eq!(cache.stats().expirations, 100);
}

#[test]
fn reinserted_entry_outlives_its_first_deadline() {
    let clock = Clock::manual();
    let cache = Arc::new(Cache::with_shards(
        8,
        Duration::from_millis(100),
        clock.clone(),
        1,
    ));
    let mut core = ReaperCore::new(Arc::clone(&cache));
    cache.insert(b"k", b"1");
    core.run_once();
    clock.advance(Duration::from_millis(50));
    cache.insert(b"k", b"2");
    clock.advance(Duration::from_millis(60));
    assert_eq!(
        core.run_once(),
        0,
        "first deadline passed, but the entry was replaced"
    );
    assert_eq!(cache.get(b"k").as_deref(), Some(&b"2"[..]));
    clock.advance(Duration::from_millis(40));
    assert_eq!(core.run_once(), 1);
    assert!(cache.is_empty());
}

#[test]
fn heap_and_slab_stay_bounded_under_churn() {
    const CAPACITY: usize = 64;
    let clock = Clock::manual();
    let cache = Arc::new(Cache::with_shards(
        CAPACITY,
        Duration::from_millis(50),
        clock.clone(),
        1,
    ));
    let mut core = ReaperCore::new(Arc::clone(&cache));
    let mut max_heap = 0;
    for i in 0..200_000u32 {
        // Half re-inserts of a few hot keys (same slot, new deadline), half new keys.
        let key = if i % 2 == 0 { i % 16 } else { i };
        cache.insert(&key.to_le_bytes(), b"v");
        if i % 7 == 0 {
            clock.advance(Duration::from_millis(1));
        }
        if i % 100 == 0 {
            core.run_once();
            max_heap = max_heap.max(core.heap_len());
        }
        assert!(cache.len() <= CAPACITY);
    }
    assert!(cache.slots() <= CAPACITY, "slab never grows past capacity");
    assert!(
        max_heap <= 2 * CAPACITY + 1024 + 100,
        "heap stayed bounded: {max_heap}"
    );
    assert!(cache.pending_expiries() <= 2 * CAPACITY + 64);
    cache.validate();
}

#[test]
fn heap_stays_bounded_with_the_clock_standing_still() {
    const CAPACITY: usize = 32;
    let clock = Clock::manual();
    let cache = Arc::new(Cache::with_shards(
        CAPACITY,
        Duration::from_secs(60),
        clock,
        1,
    ));
    let mut core = ReaperCore::new(Arc::clone(&cache));
    for i in 0..100_000u32 {
        cache.insert(&(i % 40).to_le_bytes(), b"v"); // identical deadlines, many duplicates
        if i % 50 == 0 {
            core.run_once();
            assert!(core.heap_len() <= 2 * CAPACITY + 64 + 50);
        }
    }
    core.run_once();
    assert!(core.heap_len() <= 2 * CAPACITY + 64 + 50);
}

#[test]
fn running_reaper_keeps_heap_bounded_under_churn() {
    const CAPACITY: usize = 500;
    let clock = Clock::manual();
    let cache = Arc::new(Cache::with_shards(
        CAPACITY,
        Duration::from_millis(20),
        clock.clone(),
        4,
    ));
    let reaper = Reaper::spawn(Arc::clone(&cache));
    let mut max_heap = 0;
    for i in 0..100_000u32 {
        let key = if i % 3 == 0 { i % 50 } else { i };
        cache.insert(&key.to_le_bytes(), b"v");
        if i % 50 == 0 {
            clock.advance(Duration::from_millis(1));
            max_heap = max_heap.max(reaper.heap_len());
        }
    }
    assert!(cache.slots() <= CAPACITY);
    // Each shard's heap is compacted past 2x its capacity + 64, and between passes at
    // most one pass's inserts arrive (pending is itself bounded the same way).
    let bound = 2 * (2 * CAPACITY + 4 * 64);
    assert!(max_heap <= bound, "heap {max_heap} > {bound}");
    clock.advance(Duration::from_millis(100));
    assert!(wait_until(|| cache.is_empty()));
    assert!(wait_until(|| reaper.heap_len() == 0));
    reaper.stop();
    cache.validate();
}
