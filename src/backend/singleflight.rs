//! Single flight: concurrent misses for one key share one fetch.
//!
//! A key is in the map from the moment its first waiter queues a fetch until the fetch is
//! answered; later waiters join the list, unless the key was invalidated (or the cache
//! cleared) since the flight began: then the flight is detached (its fetch answers those
//! who joined before and stores nothing, its ticket being cancelled) and the newcomer
//! leads a fetch of its own, so no request is answered from a fetch older than an
//! invalidation it followed. The count of requests in flight is bounded ([`MAX_QUEUED`]):
//! past it, misses are refused at once rather than queued without bound while Redis is
//! slow. The proxy's own commands (readiness PINGs) are not in the map but count against
//! the same bound ([`SingleFlight::reserve`]); forwarded commands have the lane's bound.
//! Invariant: `queued` equals the number of flights (in the map or detached) plus the
//! commands reserved and not yet unreserved, because every flight begins in
//! [`SingleFlight::join`] (which counts it) and ends in [`SingleFlight::release`] (which
//! uncounts it) exactly once, and every command is reserved once before it is queued and
//! unreserved once when it is answered (or could not be queued).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::job::Waiter;
use crate::lru::{Cache, Ticket};

/// Most distinct keys (plus commands) waiting on Redis at once.
pub const MAX_QUEUED: usize = 10_000;

/// What joining a key's flight did.
pub enum Joined {
    /// A fetch is already under way; the waiter will be answered with it.
    Follower,
    /// The waiter leads a new flight: the caller must queue its fetch with this ticket
    /// (taken when the flight began) and release it as `flight`.
    Leader {
        /// The flight's number, for [`SingleFlight::release`].
        flight: u64,
        /// The fill's ticket.
        ticket: Ticket,
    },
    /// Too many keys in flight: nothing was recorded.
    Full,
}

/// One fetch under way and who waits for it.
struct Flight {
    id: u64,
    ticket: Ticket,
    waiters: Vec<Waiter>,
}

/// The keys being fetched and who waits for each.
#[derive(Default)]
pub struct SingleFlight {
    map: DashMap<Box<[u8]>, Flight>,
    /// Flights taken off their key because it was invalidated (or the cache cleared)
    /// while they ran: their fetch still answers the waiters that joined before.
    detached: DashMap<u64, Vec<Waiter>>,
    queued: AtomicUsize,
    next_id: AtomicU64,
}

impl SingleFlight {
    /// Adds `waiter` to the flight of `key`. A flight whose key was invalidated (or the
    /// cache cleared) since it began is not joined: it is detached (its fetch answers only
    /// those who joined before, and stores nothing) and the waiter leads a new one, so no
    /// request that arrives after an invalidation is answered from a fetch older than it.
    /// `before_lead` runs with the key's entry held and no flight under way: when it
    /// returns true (the value turned up meanwhile, e.g. a fetch just ended) no flight is
    /// started and [`Joined::Follower`] is not returned either: the caller answered the
    /// waiter itself, and `None` comes back.
    pub fn join(
        &self,
        key: &[u8],
        waiter: Waiter,
        cache: &Cache,
        before_lead: impl FnOnce() -> bool,
    ) -> Option<Joined> {
        match self.map.entry(Box::from(key)) {
            Entry::Occupied(mut e) => {
                if !cache.outdated(e.get().ticket, key) {
                    e.get_mut().waiters.push(waiter);
                    return Some(Joined::Follower);
                }
                if !self.count_one() {
                    return Some(Joined::Full);
                }
                let (flight, joined) = self.begin(cache, key, waiter);
                let old = std::mem::replace(e.get_mut(), flight);
                self.detached.insert(old.id, old.waiters);
                Some(joined)
            }
            Entry::Vacant(e) => {
                if before_lead() {
                    return None;
                }
                if !self.count_one() {
                    return Some(Joined::Full);
                }
                let (flight, joined) = self.begin(cache, key, waiter);
                e.insert(flight);
                Some(joined)
            }
        }
    }

    /// A new flight of `key` led by `waiter`, its ticket taken now.
    fn begin(&self, cache: &Cache, key: &[u8], waiter: Waiter) -> (Flight, Joined) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let ticket = cache.ticket(key);
        let flight = Flight {
            id,
            ticket,
            waiters: vec![waiter],
        };
        (flight, Joined::Leader { flight: id, ticket })
    }

    /// Counts one more request in flight; false (counting nothing) at the bound.
    fn count_one(&self) -> bool {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Ends flight `flight` of `key`: its waiters (empty if there was none).
    pub fn release(&self, key: &[u8], flight: u64) -> Vec<Waiter> {
        let waiters = match self.map.remove_if(key, |_, f| f.id == flight) {
            Some((_, f)) => Some(f.waiters),
            None => self.detached.remove(&flight).map(|(_, w)| w),
        };
        match waiters {
            Some(waiters) => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                waiters
            }
            None => Vec::new(),
        }
    }

    /// Whether `flight` is still the flight of `key` (not detached by an invalidation).
    pub fn is_current(&self, key: &[u8], flight: u64) -> bool {
        self.map.get(key).is_some_and(|f| f.id == flight)
    }

    /// Counts one command in flight; false (counting nothing) when the bound is reached.
    pub fn reserve(&self) -> bool {
        self.count_one()
    }

    /// Uncounts a command counted by [`SingleFlight::reserve`].
    pub fn unreserve(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }

    /// Keys and commands in flight now.
    pub fn len(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// True when nothing is in flight.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use std::time::Duration;

    fn cache() -> Cache {
        Cache::new(100, Duration::from_secs(60), Clock::manual())
    }

    /// Joins `key` and returns the flight it leads (panics when it does not lead).
    fn lead(f: &SingleFlight, c: &Cache, key: &[u8], seq: u64) -> u64 {
        match f.join(key, Waiter::for_test(seq), c, || false) {
            Some(Joined::Leader { flight, .. }) => flight,
            _ => panic!("expected to lead"),
        }
    }

    #[test]
    fn one_leader_many_followers_one_release() {
        let (f, c) = (SingleFlight::default(), cache());
        let flight = lead(&f, &c, b"k", 1);
        assert!(matches!(
            f.join(b"k", Waiter::for_test(2), &c, || false),
            Some(Joined::Follower)
        ));
        assert_eq!(f.len(), 1);
        assert_eq!(
            f.release(b"k", flight),
            vec![Waiter::for_test(1), Waiter::for_test(2)]
        );
        assert!(f.is_empty());
        assert!(f.release(b"k", flight).is_empty());
        assert!(f.is_empty(), "a second release must not uncount");
    }

    #[test]
    fn a_request_after_an_invalidation_starts_its_own_fetch() {
        let (f, c) = (SingleFlight::default(), cache());
        let old = lead(&f, &c, b"k", 1);
        c.invalidate(b"k");
        let new = lead(&f, &c, b"k", 2);
        assert_ne!(old, new);
        assert!(matches!(
            f.join(b"k", Waiter::for_test(3), &c, || false),
            Some(Joined::Follower)
        ));
        assert_eq!(f.len(), 2, "both fetches are in flight");
        assert!(!f.is_current(b"k", old) && f.is_current(b"k", new));
        assert_eq!(f.release(b"k", old), vec![Waiter::for_test(1)]);
        assert_eq!(
            f.release(b"k", new),
            vec![Waiter::for_test(2), Waiter::for_test(3)]
        );
        assert!(f.is_empty());
        let cleared = lead(&f, &c, b"j", 4);
        c.clear();
        assert_ne!(lead(&f, &c, b"j", 5), cleared, "a clear detaches too");
    }

    #[test]
    fn a_value_found_before_leading_starts_no_flight() {
        let (f, c) = (SingleFlight::default(), cache());
        assert!(f.join(b"k", Waiter::for_test(1), &c, || true).is_none());
        assert!(f.is_empty());
    }

    #[test]
    fn full_records_nothing() {
        let (f, c) = (SingleFlight::default(), cache());
        for i in 0..MAX_QUEUED {
            lead(&f, &c, i.to_string().as_bytes(), 0);
        }
        assert!(matches!(
            f.join(b"x", Waiter::for_test(0), &c, || false),
            Some(Joined::Full)
        ));
        assert_eq!(f.len(), MAX_QUEUED);
        assert!(!f.reserve(), "commands share the bound");
        assert_eq!(f.len(), MAX_QUEUED);
    }

    #[test]
    fn commands_and_keys_share_one_bound() {
        let (f, c) = (SingleFlight::default(), cache());
        for _ in 0..MAX_QUEUED - 1 {
            assert!(f.reserve());
        }
        let flight = lead(&f, &c, b"k", 1);
        assert!(!f.reserve());
        assert!(matches!(
            f.join(b"j", Waiter::for_test(2), &c, || false),
            Some(Joined::Full)
        ));
        f.unreserve();
        assert!(f.reserve(), "a command answered frees its place");
        assert_eq!(f.release(b"k", flight), vec![Waiter::for_test(1)]);
        for _ in 0..MAX_QUEUED - 1 {
            f.unreserve();
        }
        assert!(f.is_empty());
    }
}
