//! Unit tests of the cache: sharding, lookups, eviction order, expiry on read, limits.

use super::*;

fn cache(capacity: usize, shards: usize) -> Cache {
    Cache::with_shards(capacity, Duration::from_secs(10), Clock::manual(), shards)
}

#[test]
fn shard_count_is_one_up_to_4096_then_sharded() {
    assert_eq!(default_shards(1, 1), 1);
    assert_eq!(default_shards(4096, 1), 1);
    let n = default_shards(4097, 1);
    assert!(n.is_power_of_two() && (16..=64).contains(&n));
    assert_eq!(default_shards(10_000_000, 1), 64);
}

#[test]
fn a_small_cache_read_by_several_loops_is_sharded_per_loop() {
    // The default PROXY_MAX_KEYS=1000 on two and on eight loops: no loop shares one lock
    // with all the others, and every shard keeps at least MIN_SHARD_ENTRIES entries.
    assert_eq!(default_shards(1000, 2), 8);
    assert_eq!(default_shards(1000, 8), 8);
    assert_eq!(default_shards(4096, 4), 16);
    assert_eq!(default_shards(4096, 64), MAX_SHARDS);
    // Too small to split: exact LRU order stays.
    assert_eq!(default_shards(3, 16), 1);
    assert_eq!(default_shards(127, 16), 1);
    assert_eq!(default_shards(128, 16), 2);
    for capacity in [1, 2, 63, 64, 100, 128, 1000, 4095, 4096, 4097, 1 << 20] {
        for loops in [1, 2, 3, 8, 16, 64, 1000] {
            let shards = default_shards(capacity, loops);
            assert!(shards.is_power_of_two() && shards <= MAX_SHARDS);
            if shards > 1 {
                assert!(capacity / shards >= MIN_SHARD_ENTRIES, "{capacity} {loops}");
            }
            if loops > 1 && capacity >= MIN_SHARD_ENTRIES * MAX_SHARDS {
                assert!(
                    shards >= (loops * SHARDS_PER_LOOP).min(MAX_SHARDS),
                    "{capacity}"
                );
            }
            let c = Cache::for_loops(capacity, Duration::from_secs(1), Clock::manual(), loops);
            assert_eq!((c.shard_count(), c.capacity()), (shards, capacity));
            c.validate();
        }
    }
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
    c.start_reaping(0, &mut Vec::new());
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
