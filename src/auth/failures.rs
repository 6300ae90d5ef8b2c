//! Failed logins, and how much each one slows the next answer down: a guesser on one
//! connection, or on many connections from one address, gets a reply that comes later
//! with every failure, and a connection is closed after [`MAX_FAILURES`].
//!
//! The delay for the `n`-th failure (`n` the larger of the connection's count and its
//! address's) is [`FIRST_DELAY`] doubled `n - 1` times, at most [`MAX_DELAY`]. An address
//! forgets one failure per [`FORGET_ONE_EVERY`] without failures, so a client that
//! mistyped once is not slowed for good. Addresses are kept in a fixed-size
//! set-associative table (bounded memory however many addresses come, O(1) per failure),
//! keyed as the per-address rate limit keys them (an IPv6 client by its /64); an address
//! not in its set takes the way with the fewest failures, so a guesser is the last to be
//! forgotten. A good login resets the connection's count, never the address's (a client
//! with one good token must not be able to guess the others faster).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock::{Clock, Nanos};
use crate::throttle::address_key;

/// Failed logins after which a connection is closed (after the last one's reply): a
/// client with the right token gets it right at once, a guesser must reconnect.
pub const MAX_FAILURES: u32 = 10;

/// The delay of the reply to a first failure.
pub const FIRST_DELAY: Duration = Duration::from_millis(10);

/// The longest delay of a reply to a failure (reached at the 8th): long enough that
/// guessing costs, short enough that a client which mistyped is not taken for dead.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// An address forgets one failure per this long without failures.
pub const FORGET_ONE_EVERY: Duration = Duration::from_secs(30);

/// Ways per set: a set follows this many addresses at once.
const WAYS: usize = 4;

/// Sets: 1024 × 4 ways = 4096 addresses followed at once, about 128 KiB.
const SETS: usize = 1024;

/// One address's failures.
#[derive(Clone, Copy, Default)]
struct Way {
    /// [`address_key`] + 1, so that 0 marks an empty way.
    tag: u128,
    failures: u32,
    /// When the last failure was recorded.
    last: Nanos,
}

impl Way {
    /// Failures left after forgetting one per [`FORGET_ONE_EVERY`] since the last.
    fn current(&self, now: Nanos) -> u32 {
        let every = FORGET_ONE_EVERY.as_nanos() as Nanos;
        let forgotten = now.saturating_sub(self.last) / every;
        let forgotten = u32::try_from(forgotten).unwrap_or(u32::MAX);
        self.failures.saturating_sub(forgotten)
    }
}

/// Failed logins per client address, shared by every loop.
pub struct FailedLogins {
    sets: Box<[Mutex<[Way; WAYS]>]>,
    hasher: RandomState,
    clock: Clock,
}

impl FailedLogins {
    /// An empty table on `clock`.
    pub fn new(clock: Clock) -> FailedLogins {
        FailedLogins {
            sets: (0..SETS)
                .map(|_| Mutex::new([Way::default(); WAYS]))
                .collect(),
            hasher: RandomState::new(),
            clock,
        }
    }

    /// Records one failure from `ip`; its failures now, this one included.
    pub fn record(&self, ip: IpAddr) -> u32 {
        let address = address_key(ip);
        let tag = address.wrapping_add(1);
        let set = self.hasher.hash_one(address) as usize % SETS;
        let now = self.clock.now();
        let mut ways = self.sets[set].lock();
        let i = match ways.iter().position(|w| w.tag == tag) {
            Some(i) => i,
            None => {
                let (i, _) = ways
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, w)| if w.tag == 0 { 0 } else { w.current(now) })
                    .expect("a set has ways");
                ways[i] = Way {
                    tag,
                    failures: 0,
                    last: now,
                };
                i
            }
        };
        let way = &mut ways[i];
        way.failures = way.current(now).saturating_add(1);
        way.last = now;
        way.failures
    }
}

/// How long the reply to a failure is held back when it is the `failures`-th (of its
/// connection or its address, whichever has more); `failures` >= 1.
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_DELAY * (1 << doublings)).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_up_to_its_cap() {
        let ms = |n| delay(n).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(7)], [10, 20, 40, 640]);
        assert_eq!(ms(8), 1000);
        assert_eq!(ms(u32::MAX), 1000);
    }

    #[test]
    fn an_address_counts_its_failures_and_forgets_them_slowly() {
        let clock = Clock::manual();
        clock.advance(Duration::from_secs(1));
        let t = FailedLogins::new(clock.clone());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let counts: Vec<u32> = (0..5).map(|_| t.record(a)).collect();
        assert_eq!(counts, [1, 2, 3, 4, 5]);
        assert_eq!(t.record(b), 1, "another address has a count of its own");
        clock.advance(FORGET_ONE_EVERY * 2);
        assert_eq!(t.record(a), 4, "two forgotten, one added");
        clock.advance(FORGET_ONE_EVERY * 100);
        assert_eq!(t.record(a), 1);
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_the_guesser() {
        let clock = Clock::manual();
        let t = FailedLogins::new(clock.clone());
        let guesser: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            t.record(guesser);
        }
        // Many addresses with one failure each: fewer failures than the guesser, so they
        // are the ones forgotten.
        for i in 0..(SETS * WAYS * 2) as u32 {
            t.record(std::net::Ipv4Addr::from(0x0a00_0000 + i).into());
        }
        assert_eq!(t.record(guesser), 6);
        assert_eq!(t.sets.len(), SETS);
    }
}
