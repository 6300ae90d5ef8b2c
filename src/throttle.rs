//! Rate limits as GCRA token buckets: a "theoretical arrival time" per bucket; a request
//! is allowed while that time is no further ahead of now than the burst allowance.
//!
//! - [`Throttle`]: one bucket in one atomic, lock-free: the process-wide limit on lookups
//!   (PROXY_RATE_LIMIT_RPS; when 0 (off) the check is a single branch), and one per
//!   principal for PROXY_CLIENT_RATE_LIMIT_RPS.
//! - [`AddressThrottle`]: PROXY_CLIENT_RATE_LIMIT_RPS per client address, in a table of
//!   fixed size (bounded memory however many addresses come) and O(1) per request; see
//!   its doc for what happens when addresses outnumber its slots.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::clock::{Clock, Nanos};

/// A token bucket of `rate` per second with a burst of `burst` requests.
pub struct Throttle {
    /// Nanoseconds per token; 0 means unlimited.
    interval: Nanos,
    /// How far ahead of now the arrival time may run: burst × interval.
    tolerance: Nanos,
    tat: AtomicU64,
    clock: Clock,
}

impl Throttle {
    /// A limit of `rate` per second (0 = off) allowing bursts of `burst` at once.
    pub fn new(rate: u64, burst: u64, clock: Clock) -> Throttle {
        let interval = if rate == 0 {
            0
        } else {
            1_000_000_000 / rate.max(1)
        };
        Throttle {
            interval: interval.max(u64::from(rate != 0)),
            tolerance: interval.max(1) * burst.max(1),
            tat: AtomicU64::new(0),
            clock,
        }
    }

    /// Whether the limit is off.
    pub fn is_unlimited(&self) -> bool {
        self.interval == 0
    }

    /// Takes one token; false when the request is over the limit.
    #[inline]
    pub fn allow(&self) -> bool {
        if self.interval == 0 {
            return true;
        }
        let now = self.clock.now();
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now);
            if start - now >= self.tolerance {
                return false;
            }
            match self.tat.compare_exchange_weak(
                tat,
                start + self.interval,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => tat = seen,
            }
        }
    }
}

impl Throttle {
    /// Takes `cost` tokens at once (a forwarded command weighs more than a lookup): it
    /// passes while the bucket is not over its burst, and its whole cost is then owed, so
    /// the requests after it wait for the tokens it took.
    pub fn allow_n(&self, cost: u64) -> bool {
        if self.interval == 0 {
            return true;
        }
        let now = self.clock.now();
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let mut next = tat;
            if !gcra(
                &mut next,
                now,
                self.interval.saturating_mul(cost),
                self.tolerance,
            ) {
                return false;
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(seen) => tat = seen,
            }
        }
    }
}

/// One GCRA step on `tat`: true (and `tat` advanced by `interval`, the request's cost) when
/// a request may pass at `now`.
#[inline]
fn gcra(tat: &mut Nanos, now: Nanos, interval: Nanos, tolerance: Nanos) -> bool {
    let start = (*tat).max(now);
    if start - now >= tolerance {
        return false;
    }
    *tat = start.saturating_add(interval);
    true
}

/// A client address as the per-address table keys it: an IPv4 address as itself (mapped
/// into IPv6), an IPv6 address by its /64, the block one host or one customer usually
/// gets, so that a client cannot escape its limit by using more addresses of its own /64.
pub fn address_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6) & !u128::from(u64::MAX),
        },
    }
}

/// Ways per set of [`AddressThrottle`]: a set holds this many addresses at once.
const WAYS: usize = 4;

/// Sets of [`AddressThrottle`]: 2048 × 4 ways = 8192 addresses followed at once, about
/// 200 KiB. A bucket matters only while it is not full (for at most its burst time, a
/// tenth of a second at the default burst), so this many addresses must be throttled in
/// the same instant before any is forgotten.
const SETS: usize = 2048;

/// One bucket of the per-address table.
#[derive(Clone, Copy, Default)]
struct Way {
    /// [`address_key`] + 1, so that 0 marks an empty way.
    tag: u128,
    tat: Nanos,
}

/// A token bucket per client address, `rate` per second with a burst of `burst`, in a
/// fixed-size set-associative table: an address hashes (keyed at random per process, so
/// clients cannot aim at one set) to a set of [`WAYS`] buckets under one small lock. An
/// address not in its set takes the way whose bucket is the fullest (the earliest arrival
/// time). A full bucket carries no state (a fresh one is the same), so forgetting it
/// loses nothing; only when every way of a set is in use at once does an address lose its
/// debt, and then the one nearest to full, which gets at most one burst more.
pub struct AddressThrottle {
    interval: Nanos,
    tolerance: Nanos,
    sets: Box<[Mutex<[Way; WAYS]>]>,
    hasher: RandomState,
    clock: Clock,
}

impl AddressThrottle {
    /// A limit of `rate` per second per address (`rate` >= 1) with bursts of `burst`.
    pub fn new(rate: u64, burst: u64, clock: Clock) -> AddressThrottle {
        let interval = (1_000_000_000 / rate.max(1)).max(1);
        AddressThrottle {
            interval,
            tolerance: interval * burst.max(1),
            sets: (0..SETS)
                .map(|_| Mutex::new([Way::default(); WAYS]))
                .collect(),
            hasher: RandomState::new(),
            clock,
        }
    }

    /// Takes one token of the bucket of `ip` (as [`address_key`] groups addresses); false
    /// when over its limit.
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.allow_n(ip, 1)
    }

    /// Takes `cost` tokens of the bucket of `ip` (see [`Throttle::allow_n`]).
    pub fn allow_n(&self, ip: IpAddr, cost: u64) -> bool {
        let address = address_key(ip);
        let tag = address.wrapping_add(1);
        let set = self.hasher.hash_one(address) as usize % SETS;
        let now = self.clock.now();
        let mut ways = self.sets[set].lock();
        let way = match ways.iter().position(|w| w.tag == tag) {
            Some(i) => i,
            None => {
                let (i, _) = ways
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, w)| if w.tag == 0 { 0 } else { w.tat })
                    .expect("a set has ways");
                ways[i] = Way { tag, tat: 0 };
                i
            }
        };
        let interval = self.interval.saturating_mul(cost);
        gcra(&mut ways[way].tat, now, interval, self.tolerance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let clock = Clock::manual();
        let t = Throttle::new(10, 5, clock.clone());
        let allowed = (0..20).filter(|_| t.allow()).count();
        assert_eq!(allowed, 5);
        clock.advance(Duration::from_millis(100));
        assert!(t.allow());
        assert!(!t.allow());
        clock.advance(Duration::from_secs(10));
        assert_eq!((0..20).filter(|_| t.allow()).count(), 5);
    }

    #[test]
    fn addresses_have_buckets_of_their_own() {
        let clock = Clock::manual();
        clock.advance(Duration::from_secs(1));
        let t = AddressThrottle::new(10, 2, clock.clone());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!((0..20).filter(|_| t.allow(a)).count(), 2);
        assert_eq!((0..20).filter(|_| t.allow(b)).count(), 2);
        clock.advance(Duration::from_millis(100));
        assert!(t.allow(a));
        assert!(!t.allow(a));
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_busy_buckets() {
        let clock = Clock::manual();
        clock.advance(Duration::from_secs(1));
        let t = AddressThrottle::new(1, 5, clock.clone());
        let noisy: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!((0..10).filter(|_| t.allow(noisy)).count(), 5);
        // Far more addresses than ways pass through, one request each: their buckets are
        // fuller than the noisy one's, so they are the ones forgotten and it stays throttled.
        for i in 0..(SETS * WAYS * 2) as u32 {
            t.allow(std::net::Ipv4Addr::from(0x0a00_0000 + i).into());
            assert!(!t.allow(noisy), "forgotten after {i} addresses");
        }
        assert_eq!(t.sets.len(), SETS);
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_bucket() {
        let a = address_key("2001:db8:1:2::1".parse().unwrap());
        let b = address_key("2001:db8:1:2:ffff::9".parse().unwrap());
        let c = address_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let v4 = address_key("127.0.0.1".parse().unwrap());
        assert_eq!(v4, address_key("::ffff:127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn a_costly_request_takes_its_weight_of_tokens() {
        let clock = Clock::manual();
        clock.advance(Duration::from_secs(1));
        let t = Throttle::new(10, 10, clock.clone());
        assert!(
            t.allow_n(10),
            "a full bucket lets a request of its size pass"
        );
        assert!(!t.allow(), "and it is empty after");
        clock.advance(Duration::from_millis(100));
        assert!(t.allow());
        let a = AddressThrottle::new(10, 10, clock.clone());
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert!(a.allow_n(ip, 100));
        clock.advance(Duration::from_secs(5));
        assert!(!a.allow(ip), "100 tokens take 10 s to come back at 10/s");
        clock.advance(Duration::from_secs(5));
        assert!(a.allow(ip));
    }

    #[test]
    fn zero_is_unlimited() {
        let t = Throttle::new(0, 0, Clock::manual());
        assert!((0..1000).all(|_| t.allow()));
    }
}
