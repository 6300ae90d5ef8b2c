//! Fills with tickets: a fill never stores a value fetched before an invalidation of its
//! key, or a clear, that happened after its ticket was taken.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use proxyredis::clock::Clock;
use proxyredis::lru::{Cache, Fill, Policy};

fn cache(capacity: usize, shards: usize) -> Cache {
    Cache::with_shards(capacity, Duration::from_secs(3600), Clock::manual(), shards)
}

#[test]
fn a_fill_after_an_invalidation_of_its_key_is_cancelled() {
    let c = cache(16, 1);
    c.insert(b"k", b"old");
    let ticket = c.ticket(b"k");
    assert!(c.invalidate(b"k"), "the entry was there");
    assert!(!c.invalidate(b"k"), "and is gone");
    assert_eq!(c.fill(ticket, b"k", b"stale"), Fill::Cancelled);
    assert!(c.get(b"k").is_none());
    let s = c.stats();
    assert_eq!((s.invalidations, s.cancelled_fills, s.size), (2, 1, 0));
    c.validate();
}

#[test]
fn a_fill_after_a_clear_is_cancelled_and_clear_empties_the_cache() {
    let c = cache(10_000, 16);
    for i in 0..1000u32 {
        c.insert(&i.to_be_bytes(), b"v");
    }
    let ticket = c.ticket(b"k");
    c.clear();
    assert!(c.is_empty());
    let s = c.stats();
    assert_eq!((s.size, s.evictions, s.expirations), (0, 0, 0));
    assert_eq!(c.fill(ticket, b"k", b"stale"), Fill::Cancelled);
    assert!(c.get(b"k").is_none());
    c.validate();
    // The cache is usable afterwards.
    let ticket = c.ticket(b"k");
    assert_eq!(c.fill(ticket, b"k", b"fresh"), Fill::Stored);
    assert_eq!(c.get(b"k").as_deref(), Some(&b"fresh"[..]));
    c.validate();
}

#[test]
fn clear_where_removes_only_the_picked_keys_and_cancels_fills_in_flight() {
    let c = cache(10_000, 16);
    for i in 0..1000u32 {
        c.insert(&i.to_be_bytes(), b"v");
    }
    let even = |k: &[u8]| k.len() == 4 && k[3].is_multiple_of(2);
    let before = c.ticket(&7u32.to_be_bytes());
    assert_eq!(c.clear_where(even), 500);
    assert_eq!(c.len(), 500);
    for i in 0..1000u32 {
        assert_eq!(c.get(&i.to_be_bytes()).is_some(), i % 2 == 1, "{i}");
    }
    let s = c.stats();
    assert_eq!((s.evictions, s.expirations), (0, 0));
    // A fill in flight is cancelled even for a key that was kept (it is only refetched).
    assert_eq!(
        c.fill(before, &7u32.to_be_bytes(), b"older"),
        Fill::Cancelled
    );
    c.validate();
    let after = c.ticket(&8u32.to_be_bytes());
    assert_eq!(c.fill(after, &8u32.to_be_bytes(), b"new"), Fill::Stored);
    assert_eq!(c.clear_where(|_| false), 0);
    assert_eq!(c.len(), 501);
    c.validate();
}

#[test]
fn a_ticket_taken_after_the_invalidation_fills() {
    let c = cache(16, 1);
    c.insert(b"k", b"old");
    c.invalidate(b"k");
    let ticket = c.ticket(b"k");
    assert_eq!(c.fill(ticket, b"k", b"new"), Fill::Stored);
    assert_eq!(c.get(b"k").as_deref(), Some(&b"new"[..]));
    assert_eq!(c.stats().inserts, 2);
}

#[test]
fn an_invalidation_of_another_key_of_the_shard_does_not_cancel_a_fill() {
    let c = cache(16, 1);
    let ticket = c.ticket(b"k");
    let mine = c.invalidation_bucket(b"k");
    let others = (0..u32::MAX)
        .map(u32::to_be_bytes)
        .filter(|k| c.invalidation_bucket(k) != mine);
    for key in others.take(63) {
        c.invalidate(&key);
    }
    assert_eq!(c.fill(ticket, b"k", b"v"), Fill::Stored);
    assert_eq!(c.stats().cancelled_fills, 0);
}

#[test]
fn thousands_of_writes_to_other_keys_cancel_nothing_but_their_bucket() {
    let c = cache(16, 1);
    let ticket = c.ticket(b"k");
    let mine = c.invalidation_bucket(b"k");
    let (others, neighbours): (Vec<u32>, Vec<u32>) =
        (0..20_000u32).partition(|i| c.invalidation_bucket(&i.to_be_bytes()) != mine);
    // A write-heavy Redis: 10,000 writes to keys not being fetched during one fetch.
    for i in &others[..10_000] {
        c.invalidate(&i.to_be_bytes());
    }
    assert_eq!(c.fill(ticket, b"k", b"v"), Fill::Stored);
    // A key of the same bucket is indistinguishable: cancelled, to be safe.
    let ticket = c.ticket(b"k");
    c.invalidate(&neighbours[0].to_be_bytes());
    assert_eq!(c.fill(ticket, b"k", b"v2"), Fill::Cancelled);
    assert_eq!(c.get(b"k").as_deref(), Some(&b"v"[..]));
}

#[test]
fn a_ticket_filled_under_another_key_is_cancelled() {
    let c = cache(16, 1);
    let ticket = c.ticket(b"a");
    assert_eq!(c.fill(ticket, b"b", b"v"), Fill::Cancelled);
}

#[test]
fn a_fill_too_big_says_so() {
    let c = cache(16, 1);
    let ticket = c.ticket(&[b'k'; 65_536]);
    assert_eq!(c.fill(ticket, &[b'k'; 65_536], b"v"), Fill::TooBig);
}

#[test]
fn policy_follows_the_shard_count() {
    assert_eq!(cache(16, 1).policy(), Policy::ExactLru);
    assert_eq!(cache(16, 4).policy(), Policy::Clock);
}

/// Readers take a ticket, read the model's version of a key, and fill it; a writer bumps
/// the model's version, invalidates the key, and then publishes the version as
/// "invalidated". Whenever a checker reads a published version and then the cache, the
/// cache holds that version or a newer one, never an older one. Clears (whole, and of
/// half the keys) run too.
fn versions_never_go_back(shards: usize, keys: usize) {
    const WRITES: u64 = 3000;
    let c = cache(1024, shards);
    let model: Vec<AtomicU64> = (0..keys).map(|_| AtomicU64::new(0)).collect();
    let invalidated: Vec<AtomicU64> = (0..keys).map(|_| AtomicU64::new(0)).collect();
    let done = AtomicBool::new(false);
    let key = |i: usize| (i as u32).to_be_bytes();
    let check = |i: usize| {
        let floor = invalidated[i].load(Ordering::Acquire);
        if let Some(v) = c.get(&key(i)) {
            let v = u64::from_le_bytes(v.try_into().expect("8-byte value"));
            assert!(
                v >= floor,
                "key {i}: cache holds {v}, invalidated up to {floor}"
            );
        }
    };
    std::thread::scope(|scope| {
        for t in 0..2 {
            let (c, model, done) = (&c, &model, &done);
            scope.spawn(move || {
                let mut i = t;
                while !done.load(Ordering::Relaxed) {
                    i = (i * 7 + 3) % keys;
                    let ticket = c.ticket(&key(i));
                    let version = model[i].load(Ordering::Acquire);
                    std::thread::yield_now();
                    c.fill(ticket, &key(i), &version.to_le_bytes());
                    check(i);
                }
            });
        }
        scope.spawn(|| {
            // At least WRITES writes, and on until some fill was stored (so the checks are
            // not vacuous on a loaded machine where the readers start late), within 10 s.
            let started = std::time::Instant::now();
            let mut n = 0u64;
            while n < WRITES
                || (c.stats().inserts == 0
                    && started.elapsed() < std::time::Duration::from_secs(10))
            {
                let i = (n as usize * 5) % keys;
                let version = model[i].fetch_add(1, Ordering::AcqRel) + 1;
                c.invalidate(&key(i));
                invalidated[i].fetch_max(version, Ordering::AcqRel);
                if n % 500 == 499 {
                    c.clear();
                } else if n % 500 == 249 {
                    // A cluster node's keys dropped: half of them, by key.
                    c.clear_where(|k| k[3] % 2 == 0);
                }
                check(i);
                n += 1;
            }
            done.store(true, Ordering::Relaxed);
        });
    });
    for i in 0..keys {
        check(i);
    }
    let s = c.stats();
    assert!(
        s.invalidations >= WRITES,
        "{} invalidations",
        s.invalidations
    );
    assert!(s.inserts > 0, "some fills were stored");
    c.validate();
}

#[test]
fn concurrent_fills_never_store_a_version_older_than_an_invalidation_one_shard() {
    versions_never_go_back(1, 8);
}

#[test]
fn concurrent_fills_never_store_a_version_older_than_an_invalidation_sharded() {
    versions_never_go_back(4, 40);
}

#[test]
fn a_fill_never_outlives_its_keys_own_ttl() {
    let clock = Clock::manual();
    let c = Cache::new(16, std::time::Duration::from_secs(60), clock.clone());
    let t = c.ticket(b"short");
    let within = Some(std::time::Duration::from_millis(50));
    assert_eq!(c.fill_within(t, b"short", b"v", within), Fill::Stored);
    let t = c.ticket(b"long");
    let longer = Some(std::time::Duration::from_secs(3600));
    assert_eq!(c.fill_within(t, b"long", b"v", longer), Fill::Stored);
    clock.advance(std::time::Duration::from_millis(49));
    assert!(c.get(b"short").is_some());
    clock.advance(std::time::Duration::from_millis(1));
    assert!(
        c.get(b"short").is_none(),
        "gone when the key expires in Redis"
    );
    clock.advance(std::time::Duration::from_secs(60));
    assert!(
        c.get(b"long").is_none(),
        "the cache's own TTL still bounds it"
    );
}
