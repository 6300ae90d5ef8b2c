//! Stale-if-error: expired entries kept a while for lookups whose fetch from Redis fails.
//!
//! With a stale window `W` > 0 ([`Cache::with_stale_window`]), an entry whose deadline
//! has passed stays in its shard until `deadline + W` (the reaper removes it then; a read
//! that finds it expired leaves it), though every read still misses it: an expired entry
//! is never a hit. When the miss's fetch fails, [`Cache::stale_into`] hands its value out
//! with its age. Eviction treats such an entry like any other (nothing reads it, so it
//! drifts to the cold end), and [`Cache::invalidate`] and [`Cache::clear`] remove entries
//! whatever their deadline, so an invalidated value is never kept for stale use.
//!
//! Not every entry may be served stale: one whose key, when it was fetched, was due to
//! expire in Redis before `deadline + W` may not (its key is gone by then, and a cached
//! value never outlives its key). Which is which is the deadline's lowest bit: odd, the
//! entry may be served stale and its deadline is exactly the cache's TTL after it was
//! cached (so its age is known); even, it may not. That costs no byte per entry and leaves
//! the hit path, which only compares the deadline with the time, as it was; a deadline
//! moves at most 1 ns earlier for it, and only while `W` > 0. With `W` = 0 deadlines are
//! stored as computed and nothing here changes what the cache does.

use std::time::Duration;

use super::Cache;
use crate::clock::Nanos;

/// The deadline to store for an entry cached at `now` that lives `lifetime`, in a cache
/// whose stale window is `window`; `stale_ok`: it may be served stale past it.
#[inline]
pub(super) fn deadline(now: Nanos, lifetime: Nanos, window: Nanos, stale_ok: bool) -> Nanos {
    let exact = now.saturating_add(lifetime);
    match (window, stale_ok) {
        (0, _) => exact,
        // The odd number at or just below `exact`, so never later than asked.
        (_, true) => exact.saturating_sub(1) | 1,
        (_, false) => exact & !1,
    }
}

/// Whether the entry whose stored deadline is `deadline` may be served stale.
#[inline]
pub(super) fn may_serve_stale(deadline: Nanos, window: Nanos) -> bool {
    window > 0 && deadline & 1 == 1
}

/// When the entry whose stored deadline is `deadline` leaves the cache: at its deadline,
/// or `window` later if it may be served stale.
#[inline]
pub(super) fn removal_time(deadline: Nanos, window: Nanos) -> Nanos {
    if may_serve_stale(deadline, window) {
        deadline.saturating_add(window)
    } else {
        deadline
    }
}

impl Cache {
    /// Keeps expired entries up to `window` past their deadline for [`Cache::stale_into`]
    /// (zero, the default: none). Set before the cache is shared or a reaper started.
    pub fn with_stale_window(mut self, window: Duration) -> Cache {
        let window = u64::try_from(window.as_nanos()).unwrap_or(Nanos::MAX);
        self.stale_window = window;
        for shard in self.shards.iter_mut() {
            shard.state.get_mut().set_stale_window(window);
        }
        self
    }

    /// How long past its deadline an entry may be served stale.
    pub fn stale_window(&self) -> Duration {
        Duration::from_nanos(self.stale_window)
    }

    /// For a lookup of `key` whose fetch failed: appends the value to `out` and returns its
    /// age (the time since it was cached) when the entry expired less than the stale window
    /// before `now` and may be served stale. A live entry, or none, gives `None`. Counts
    /// nothing and promotes nothing.
    pub fn stale_into(&self, key: &[u8], now: Nanos, out: &mut Vec<u8>) -> Option<Duration> {
        if self.stale_window == 0 {
            return None;
        }
        let (hash, shard) = self.locate(key);
        let state = shard.state.read();
        let (deadline, _, value) = state.slab.parts(state.find(hash, key)?);
        let expired = deadline <= now;
        if !expired || !may_serve_stale(deadline, self.stale_window) {
            return None;
        }
        if removal_time(deadline, self.stale_window) <= now {
            return None;
        }
        out.extend_from_slice(value);
        // A stale-eligible entry lived exactly the cache's TTL (see the module doc).
        let cached_at = deadline.saturating_sub(self.ttl);
        Some(Duration::from_nanos(now.saturating_sub(cached_at)))
    }

    /// Whether an entry with `deadline`, found expired at `now`, is to be left for stale
    /// answers rather than removed.
    #[inline]
    pub(super) fn keeps_expired(&self, deadline: Nanos, now: Nanos) -> bool {
        removal_time(deadline, self.stale_window) > now
    }
}

/// For the protocols' unit tests: a cache (60 s TTL, 30 s stale window, a manual clock)
/// whose entry `key` = `value` expired one second ago, and its clock.
#[cfg(test)]
pub fn expired_entry_for_test(key: &[u8], value: &[u8]) -> (Cache, crate::clock::Clock) {
    let clock = crate::clock::Clock::manual();
    let cache = Cache::new(100, Duration::from_secs(60), clock.clone())
        .with_stale_window(Duration::from_secs(30));
    cache.insert(key, value);
    clock.advance(Duration::from_secs(61));
    (cache, clock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::lru::Fill;

    const TTL: Duration = Duration::from_millis(100);
    const WINDOW: Duration = Duration::from_millis(1000);

    fn cache(window: Duration) -> (Cache, Clock) {
        let clock = Clock::manual();
        let cache = Cache::with_shards(8, TTL, clock.clone(), 1).with_stale_window(window);
        (cache, clock)
    }

    fn stale(cache: &Cache, key: &[u8]) -> Option<(Vec<u8>, Duration)> {
        let mut out = Vec::new();
        let age = cache.stale_into(key, cache.clock().now(), &mut out)?;
        Some((out, age))
    }

    #[test]
    fn deadlines_say_whether_an_entry_may_be_served_stale_and_are_never_later() {
        for now in [0, 1, 2, 999, 1_000_000] {
            for lifetime in [1, 2, 100_000_000] {
                let exact = now + lifetime;
                assert_eq!(deadline(now, lifetime, 0, true), exact);
                assert_eq!(deadline(now, lifetime, 0, false), exact);
                let ok = deadline(now, lifetime, 10, true);
                let not = deadline(now, lifetime, 10, false);
                assert!(ok <= exact && exact - ok <= 1 && may_serve_stale(ok, 10));
                assert!(not <= exact && exact - not <= 1 && !may_serve_stale(not, 10));
                assert_eq!(removal_time(ok, 10), ok + 10);
                assert_eq!(removal_time(not, 10), not);
                assert!(!may_serve_stale(ok, 0), "no window, no stale answers");
            }
        }
    }

    #[test]
    fn an_expired_entry_is_a_miss_yet_kept_for_stale_answers_until_its_window_ends() {
        let (c, clock) = cache(WINDOW);
        assert_eq!(c.stale_window(), WINDOW);
        c.insert(b"k", b"v");
        assert_eq!(stale(&c, b"k"), None, "a live entry is no stale answer");
        clock.advance(TTL);
        assert!(c.get(b"k").is_none(), "expired: a miss");
        assert_eq!(c.len(), 1, "the read left it for stale answers");
        assert_eq!(stale(&c, b"k"), Some((b"v".to_vec(), TTL)));
        clock.advance(Duration::from_millis(500));
        let (_, age) = stale(&c, b"k").expect("within the window");
        assert_eq!(
            age,
            Duration::from_millis(600),
            "age counts from the insert"
        );
        clock.advance(Duration::from_millis(500));
        assert_eq!(stale(&c, b"k"), None, "the window has passed");
        assert!(c.get(b"k").is_none());
        assert_eq!(c.len(), 0, "a read past the window removes it");
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.expirations), (0, 2, 1));
        c.validate();
    }

    #[test]
    fn without_a_window_nothing_changes() {
        let (c, clock) = cache(Duration::ZERO);
        c.insert(b"k", b"v");
        clock.advance(TTL);
        assert_eq!(stale(&c, b"k"), None);
        assert!(c.get(b"k").is_none());
        assert_eq!(c.len(), 0, "removed by the read that found it expired");
    }

    #[test]
    fn a_key_expiring_in_redis_within_the_window_is_never_served_stale() {
        let (c, clock) = cache(WINDOW);
        let short = Some(Duration::from_millis(50));
        let within = Some(TTL + WINDOW - Duration::from_millis(1));
        let beyond = Some(TTL + WINDOW);
        for (key, own) in [
            (&b"a"[..], short),
            (b"b", within),
            (b"c", beyond),
            (b"d", None),
        ] {
            let ticket = c.ticket(key);
            assert_eq!(c.fill_within(ticket, key, b"v", own), Fill::Stored);
        }
        clock.advance(TTL);
        assert_eq!(stale(&c, b"a"), None, "its key is gone in Redis by now");
        assert_eq!(
            stale(&c, b"b"),
            None,
            "its key is gone before the window ends"
        );
        assert!(stale(&c, b"c").is_some());
        assert!(stale(&c, b"d").is_some());
    }

    #[test]
    fn invalidated_or_cleared_entries_are_no_stale_answers() {
        let (c, clock) = cache(WINDOW);
        c.insert(b"a", b"1");
        c.insert(b"b", b"2");
        c.insert(b"c", b"3");
        clock.advance(TTL);
        assert!(c.invalidate(b"a"), "an expired entry is removed too");
        assert_eq!(stale(&c, b"a"), None);
        assert!(c.remove(b"b"));
        assert_eq!(stale(&c, b"b"), None);
        assert!(stale(&c, b"c").is_some());
        c.clear();
        assert_eq!(stale(&c, b"c"), None);
        assert_eq!(c.held_expired(), 0);
    }

    #[test]
    fn a_new_value_replaces_the_stale_one() {
        let (c, clock) = cache(WINDOW);
        c.insert(b"k", b"old");
        clock.advance(TTL);
        c.insert(b"k", b"new");
        assert_eq!(c.get(b"k").as_deref(), Some(&b"new"[..]));
        clock.advance(TTL);
        assert_eq!(stale(&c, b"k").map(|(v, _)| v), Some(b"new".to_vec()));
    }
}
