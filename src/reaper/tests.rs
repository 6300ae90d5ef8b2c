//! Unit tests of the reaper: prompt stop, stale heap entries after a clear or a re-insert.

use super::*;
use crate::clock::Clock;

#[test]
fn stop_is_prompt() {
    let cache = Arc::new(Cache::new(16, Duration::from_secs(3600), Clock::real()));
    let reaper = Reaper::spawn(cache);
    let started = std::time::Instant::now();
    reaper.stop();
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn heap_entries_of_cleared_keys_are_harmless() {
    let clock = Clock::manual();
    let cache = Arc::new(Cache::with_shards(
        8,
        Duration::from_millis(10),
        clock.clone(),
        1,
    ));
    let mut core = ReaperCore::new(Arc::clone(&cache));
    cache.insert(b"a", b"1");
    cache.insert(b"b", b"1");
    core.run_once();
    assert_eq!(core.heap_len(), 2);
    cache.clear();
    // Same slots, same deadlines as the cleared entries, but new generations.
    cache.insert(b"c", b"2");
    clock.advance(Duration::from_millis(5));
    cache.insert(b"d", b"2");
    clock.advance(Duration::from_millis(5)); // the cleared entries' deadline: c's too
    assert_eq!(
        core.run_once(),
        1,
        "only c expired; stale entries removed nothing"
    );
    assert_eq!(cache.get(b"d").as_deref(), Some(&b"2"[..]));
    assert_eq!(cache.stats().expirations, 1);
    cache.validate();
}

#[test]
fn run_once_skips_reinserted_entries() {
    let clock = Clock::manual();
    let cache = Arc::new(Cache::with_shards(
        8,
        Duration::from_millis(10),
        clock.clone(),
        1,
    ));
    let mut core = ReaperCore::new(Arc::clone(&cache));
    cache.insert(b"a", b"1");
    cache.insert(b"b", b"1");
    clock.advance(Duration::from_millis(5));
    cache.insert(b"a", b"2"); // new deadline 15 ms
    clock.advance(Duration::from_millis(5)); // now 10 ms: b expired, a not
    assert_eq!(core.run_once(), 1);
    assert_eq!(cache.get(b"a").as_deref(), Some(&b"2"[..]));
    assert_eq!(core.heap_len(), 1, "only a's current expiry is left");
    clock.advance(Duration::from_millis(5));
    assert_eq!(core.run_once(), 1);
    assert!(cache.is_empty());
    assert_eq!(cache.stats().expirations, 2);
    cache.validate();
}

#[test]
fn with_a_stale_window_expired_entries_are_reaped_when_it_ends() {
    let clock = Clock::manual();
    let cache = Cache::with_shards(8, Duration::from_millis(10), clock.clone(), 1)
        .with_stale_window(Duration::from_millis(100));
    let cache = Arc::new(cache);
    let mut core = ReaperCore::new(Arc::clone(&cache));
    cache.insert(b"a", b"1");
    // A key that expires in Redis before the window ends goes at its deadline.
    let ticket = cache.ticket(b"b");
    let own = Some(Duration::from_millis(50));
    cache.fill_within(ticket, b"b", b"2", own);
    clock.advance(Duration::from_millis(10));
    assert_eq!(
        core.run_once(),
        1,
        "b at its deadline; a kept for stale answers"
    );
    assert_eq!(cache.held_expired(), 1);
    assert!(cache.get(b"a").is_none(), "expired: a miss");
    clock.advance(Duration::from_millis(99));
    assert_eq!(core.run_once(), 0);
    clock.advance(Duration::from_millis(1));
    assert_eq!(core.run_once(), 1, "a once its window has passed");
    assert!(cache.is_empty());
    assert_eq!(cache.stats().expirations, 2);
    cache.validate();
}
