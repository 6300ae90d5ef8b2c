//! Single flight: concurrent misses for one key share one fetch.
//!
//! A key is in the map from the moment its first waiter queues a fetch until the fetch is
//! answered; later waiters join the list. The count of requests in flight is bounded
//! ([`MAX_QUEUED`]): past it, misses are refused at once rather than queued without bound
//! while Redis is slow. Other commands (forwarded ones, readiness PINGs) are not in the map
//! but count against the same bound ([`SingleFlight::reserve`]). Invariant: `queued` equals
//! the number of keys in the map plus the commands reserved and not yet unreserved, because
//! every key enters through [`SingleFlight::join`] (which counts it) and leaves through
//! [`SingleFlight::release`] (which uncounts it) exactly once, and every command is
//! reserved once before it is queued and unreserved once when it is answered (or could not
//! be queued).

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::job::Waiter;

/// Most distinct keys (plus commands) waiting on Redis at once.
pub const MAX_QUEUED: usize = 10_000;

/// What joining a key's flight did.
pub enum Joined {
    /// A fetch is already under way; the waiter will be answered with it.
    Follower,
    /// The waiter leads a new flight: the caller must queue the fetch (or release it).
    Leader,
    /// Too many keys in flight: nothing was recorded.
    Full,
}

/// The keys being fetched and who waits for each.
#[derive(Default)]
pub struct SingleFlight {
    map: DashMap<Box<[u8]>, Vec<Waiter>>,
    queued: AtomicUsize,
}

impl SingleFlight {
    /// Adds `waiter` to the flight of `key`. `before_lead` runs with the key's entry held
    /// and no flight under way: when it returns true (the value turned up meanwhile, e.g. a
    /// fetch just ended) no flight is started and [`Joined::Follower`] is not returned either:
    /// the caller answered the waiter itself, and `None` comes back.
    pub fn join(
        &self,
        key: &[u8],
        waiter: Waiter,
        before_lead: impl FnOnce() -> bool,
    ) -> Option<Joined> {
        match self.map.entry(Box::from(key)) {
            Entry::Occupied(mut e) => {
                e.get_mut().push(waiter);
                Some(Joined::Follower)
            }
            Entry::Vacant(e) => {
                if before_lead() {
                    return None;
                }
                if self.queued.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED {
                    self.queued.fetch_sub(1, Ordering::AcqRel);
                    return Some(Joined::Full);
                }
                e.insert(vec![waiter]);
                Some(Joined::Leader)
            }
        }
    }

    /// Ends the flight of `key`: its waiters (empty if there was none).
    pub fn release(&self, key: &[u8]) -> Vec<Waiter> {
        match self.map.remove(key) {
            Some((_, waiters)) => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                waiters
            }
            None => Vec::new(),
        }
    }

    /// Counts one command in flight; false (counting nothing) when the bound is reached.
    pub fn reserve(&self) -> bool {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
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

    #[test]
    fn one_leader_many_followers_one_release() {
        let f = SingleFlight::default();
        assert!(matches!(
            f.join(b"k", Waiter::for_test(1), || false),
            Some(Joined::Leader)
        ));
        assert!(matches!(
            f.join(b"k", Waiter::for_test(2), || false),
            Some(Joined::Follower)
        ));
        assert_eq!(f.len(), 1);
        assert_eq!(
            f.release(b"k"),
            vec![Waiter::for_test(1), Waiter::for_test(2)]
        );
        assert!(f.is_empty());
        assert!(f.release(b"k").is_empty());
        assert!(f.is_empty(), "a second release must not uncount");
    }

    #[test]
    fn a_value_found_before_leading_starts_no_flight() {
        let f = SingleFlight::default();
        assert!(f.join(b"k", Waiter::for_test(1), || true).is_none());
        assert!(f.is_empty());
    }

    #[test]
    fn full_records_nothing() {
        let f = SingleFlight::default();
        for i in 0..MAX_QUEUED {
            let key = i.to_string();
            assert!(matches!(
                f.join(key.as_bytes(), Waiter::for_test(0), || false),
                Some(Joined::Leader)
            ));
        }
        assert!(matches!(
            f.join(b"x", Waiter::for_test(0), || false),
            Some(Joined::Full)
        ));
        assert_eq!(f.len(), MAX_QUEUED);
        assert!(f.release(b"x").is_empty());
        assert!(!f.reserve(), "commands share the bound");
        assert_eq!(f.len(), MAX_QUEUED);
    }

    #[test]
    fn commands_and_keys_share_one_bound() {
        let f = SingleFlight::default();
        for _ in 0..MAX_QUEUED - 1 {
            assert!(f.reserve());
        }
        assert!(matches!(
            f.join(b"k", Waiter::for_test(1), || false),
            Some(Joined::Leader)
        ));
        assert!(!f.reserve());
        assert!(matches!(
            f.join(b"j", Waiter::for_test(2), || false),
            Some(Joined::Full)
        ));
        f.unreserve();
        assert!(f.reserve(), "a command answered frees its place");
        assert_eq!(f.release(b"k"), vec![Waiter::for_test(1)]);
        for _ in 0..MAX_QUEUED - 1 {
            f.unreserve();
        }
        assert!(f.is_empty());
    }
}
